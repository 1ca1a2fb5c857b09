"""Checkpoint safety: atomic checkpoint files, and a checkpoint on SIGTERM.

- :class:`AtomicCheckpointIO` writes ``<path>.tmp``, flushes it to disk, then renames it over ``<path>``
  (``os.replace``), so a crash or a full disk while saving leaves the previous checkpoint intact.
- :class:`SigtermCheckpoint`: on SIGTERM Lightning stops after the current batch and raises ``SIGTERMException``
  (it saves nothing by itself outside SLURM auto-requeue); this callback then saves ``last.ckpt`` so the run can resume.
- :class:`LastCheckpoint`: ``checkpoints/last.ckpt`` after every epoch (what resuming needs), a ``ModelCheckpoint``
  whose state key is its own, so it never collides with the ``best.ckpt`` callback (e.g. when that one's ``monitor`` is
  set to null) in Lightning's one-state-per-key rule.
- :class:`ValidationHistory`: appends every validation epoch's ``val/*`` scalars to ``<run dir>/val_history.jsonl``,
  so the convergence plot (``python -m internet_plus.tasks.collect``) works whatever the logger.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as L
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import get_filesystem
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

__all__ = ["AtomicCheckpointIO", "LastCheckpoint", "SigtermCheckpoint", "ValidationHistory"]


class LastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for the resumable ``last.ckpt``: the same behaviour, a state key of its own (the class name
    is part of Lightning's callback state key)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic: write ``<path>.tmp``, fsync, ``os.replace`` onto ``<path>``.

    Remote paths (``s3://`` …) keep Lightning's own fsspec transaction.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or get_filesystem(path).protocol not in ("file", ("file", "local")):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(os.fspath(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class SigtermCheckpoint(Callback):
    """Save ``<dirpath>/<filename>.ckpt`` when the run stops on SIGTERM (a cluster scheduler's pre-emption signal).

    Args:
        dirpath: the checkpoint folder (the run's ``checkpoints/``).
        filename: the file name without ``.ckpt``; ``last`` (default) so that the usual resume path picks it up.

    After the save, :attr:`saved_path` holds the file; the train task reports it and exits with status 143.
    """

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        self.dirpath = str(dirpath)
        self.filename = str(filename)
        self.saved_path: str | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        path = os.path.join(self.dirpath, f"{self.filename}.ckpt")
        trainer.save_checkpoint(path)  # every rank calls it; rank 0 writes (through AtomicCheckpointIO)
        self.saved_path = path
        if trainer.is_global_zero:
            log.warning(
                "SIGTERM: saved %s at global step %d (epoch %d)", path, trainer.global_step, trainer.current_epoch
            )


class ValidationHistory(Callback):
    """Append each validation epoch's scalar ``val/*`` metrics to ``<dirpath>/<filename>`` (one JSON object a line).

    Each line is ``{"epoch": e, "step": s, "val/epe_mm": ..., "val/auc_20_50": ..., ...}``: every scalar entry of
    ``trainer.callback_metrics`` whose name starts with ``val/`` (NaN written as ``null``). The file is opened in
    append mode, so a run that is resumed into the same folder continues its history. Only global rank 0 writes,
    and the sanity-check validation before training is skipped.

    It hooks ``on_validation_end``, which Lightning calls after the LightningModule's ``on_validation_epoch_end`` has
    logged the epoch's metrics (a callback's ``on_validation_epoch_end`` would run before them).

    Args:
        dirpath: the run directory.
        filename: the file name inside it (``val_history.jsonl``).
    """

    def __init__(self, dirpath: str, filename: str = "val_history.jsonl") -> None:
        self.dirpath = str(dirpath)
        self.filename = str(filename)

    @property
    def path(self) -> Path:
        """The history file."""
        return Path(self.dirpath) / self.filename

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        record: dict[str, Any] = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step)}
        for name, value in sorted(trainer.callback_metrics.items()):
            if not name.startswith("val/"):
                continue
            scalar = _scalar(value)
            if scalar is not _NOT_SCALAR:
                record[name] = scalar
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


_NOT_SCALAR = object()


def _scalar(value: Any) -> Any:
    """A number (``None`` for NaN) from a Python number or a one-element tensor; ``_NOT_SCALAR`` otherwise."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return _NOT_SCALAR
        value = value.detach().cpu().item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _NOT_SCALAR
    value = float(value)
    return None if math.isnan(value) else value
