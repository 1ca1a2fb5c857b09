"""Checkpoint safety: atomic checkpoint files, only good weights saved, the best carried over a resume, SIGTERM.

- :class:`AtomicCheckpointIO` writes ``<path>.tmp``, flushes it to disk, then renames it over ``<path>``
  (``os.replace``), so a crash or a full disk while saving leaves the previous checkpoint intact. It refuses to save
  weights that hold a non-finite value, and it can hold a save back in memory until the weights are known to be good.
- :class:`FiniteCheckpoints`: during fitting, a checkpoint reaches the disk only once the next training step's loss
  with its weights came out finite (or training ended normally); on a non-finite loss the held-back save is dropped,
  so ``last.ckpt`` never holds the weights that produced it. :meth:`AtomicCheckpointIO.last_good` names what is left.
- :class:`CarryBestCheckpoint`: a run resumed into a new directory starts from the resumed run's best validation
  score and its best checkpoint file (copied into the new ``checkpoints/``), so the final test uses the same
  checkpoint as an uninterrupted run.
- :class:`SigtermCheckpoint`: on SIGTERM Lightning stops after the current batch and raises ``SIGTERMException``
  (it saves nothing by itself outside SLURM auto-requeue); this callback then saves ``last.ckpt`` so the run can resume.
- :class:`LastCheckpoint`: ``checkpoints/last.ckpt`` after every epoch (what resuming needs), a ``ModelCheckpoint``
  whose state key is its own, so it never collides with the ``best.ckpt`` callback (e.g. when that one's ``monitor`` is
  set to null) in Lightning's one-state-per-key rule.
- :class:`ValidationHistory`: appends every validation epoch's ``val/*`` scalars to ``<run dir>/val_history.jsonl``,
  so the convergence plot (``python -m internet_plus.tasks.collect``) works whatever the logger.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytorch_lightning as L
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import get_filesystem
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

__all__ = [
    "AtomicCheckpointIO",
    "CarryBestCheckpoint",
    "FiniteCheckpoints",
    "LastCheckpoint",
    "SigtermCheckpoint",
    "ValidationHistory",
]


class LastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for the resumable ``last.ckpt``: the same behaviour, a state key of its own (the class name
    is part of Lightning's callback state key)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic: write ``<path>.tmp``, fsync, ``os.replace`` onto ``<path>``.

    Every save first checks the weights (``state_dict``): a non-finite value raises ``FloatingPointError`` naming the
    tensor, and nothing is written. With :attr:`defer` on (:class:`FiniteCheckpoints` switches it on while fitting) a
    save is serialised in memory at once (so it holds exactly the state of that moment) and written by
    :meth:`commit`, or dropped by :meth:`discard`. :attr:`written` maps every file written to its global step.
    Remote paths (``s3://`` …) keep Lightning's own fsspec transaction.
    """

    def __init__(self) -> None:
        super().__init__()
        self.defer = False
        self.pending: dict[Path, tuple[bytes, int | None]] = {}
        self.written: dict[str, int | None] = {}

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        step = checkpoint.get("global_step")
        _check_finite_weights(checkpoint, path, step)
        if storage_options is not None or get_filesystem(path).protocol not in ("file", ("file", "local")):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(os.fspath(path))
        if self.defer:
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            self.pending[path] = (buffer.getvalue(), step)
            return
        _write_atomically(path, lambda f: torch.save(checkpoint, f))
        self.written[str(path)] = step

    def remove_checkpoint(self, path: _PATH) -> None:
        local = Path(os.fspath(path))
        self.pending.pop(local, None)
        self.written.pop(str(local), None)
        super().remove_checkpoint(path)

    def commit(self) -> list[Path]:
        """Write every held-back save (atomically); returns the files written."""
        done = []
        while self.pending:
            path, (data, step) = next(iter(self.pending.items()))
            _write_atomically(path, lambda f, data=data: f.write(data))
            del self.pending[path]
            self.written[str(path)] = step
            done.append(path)
        return done

    def discard(self) -> dict[Path, int | None]:
        """Drop every held-back save; returns them (file → global step)."""
        dropped = {path: step for path, (_, step) in self.pending.items()}
        self.pending.clear()
        return dropped

    def last_good(self) -> str:
        """The checkpoints this run wrote (the last good ones), for an error message."""
        files = [p for p in self.written if Path(p).is_file()]
        if not files:
            return "no checkpoint was written before it"
        shown = ", ".join(f"{p} (global step {self.written[p]})" for p in files)
        return f"the last good checkpoint{'s' if len(files) > 1 else ''}: {shown}"


def _check_finite_weights(checkpoint: dict[str, Any], path: _PATH, step: int | None) -> None:
    weights = {
        name: value
        for name, value in (checkpoint.get("state_dict") or {}).items()
        if isinstance(value, torch.Tensor) and value.is_floating_point()
    }
    if not weights:
        return
    finite = torch.stack([torch.isfinite(value).all() for value in weights.values()])
    if bool(finite.all()):  # one device synchronisation per save, not one per tensor
        return
    name = next(name for name, ok in zip(weights, finite.tolist(), strict=True) if not ok)
    bad = int((~torch.isfinite(weights[name])).sum())
    raise FloatingPointError(
        f"not saving {os.fspath(path)} at global step {step}: weight {name!r} holds {bad} non-finite "
        "value(s); the checkpoints already on disk are left as they are"
    )


def _write_atomically(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """``write`` into ``<path>.tmp``, fsync, rename onto ``path``; the partial file is removed on any failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _atomic_io(trainer: L.Trainer) -> AtomicCheckpointIO | None:
    checkpoint_io = getattr(trainer.strategy, "checkpoint_io", None)
    return checkpoint_io if isinstance(checkpoint_io, AtomicCheckpointIO) else None


class FiniteCheckpoints(Callback):
    """Save only weights known to be good: a checkpoint taken during fitting is held back in memory
    (:attr:`AtomicCheckpointIO.defer`) until the next training step's loss came out finite with its weights, or
    training ended; a ``FloatingPointError`` (the non-finite loss of ``HandPoseModule.training_step``) drops it.

    Without this, ``every_n_train_steps=1`` with a diverging learning rate keeps in ``last.ckpt`` the exploded weights
    (finite, but huge) that produce the NaN one step later. Any other exception (SIGTERM, a crash) writes the held-back
    save, as an immediate save would have. A no-op unless the trainer's checkpoint IO is :class:`AtomicCheckpointIO`.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        checkpoint_io = _atomic_io(trainer)
        if checkpoint_io is not None and stage == "fit":
            checkpoint_io.defer = True

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        checkpoint_io = _atomic_io(trainer)
        if checkpoint_io is not None and checkpoint_io.pending and bool(torch.isfinite(loss).all()):
            checkpoint_io.commit()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        checkpoint_io = _atomic_io(trainer)
        if checkpoint_io is None:
            return
        if isinstance(exception, FloatingPointError):
            for path, step in checkpoint_io.discard().items():
                log.warning("not saved: %s of global step %s, whose weights gave the non-finite loss", path, step)
        self._finish(trainer)

    @staticmethod
    def _finish(trainer: L.Trainer) -> None:
        checkpoint_io = _atomic_io(trainer)
        if checkpoint_io is not None:
            checkpoint_io.commit()
            checkpoint_io.defer = False


class CarryBestCheckpoint(Callback):
    """On a resume into a new run directory, start every monitoring ``ModelCheckpoint`` from the resumed run's best.

    Lightning restores a ``ModelCheckpoint``'s best score only when its folder is unchanged, so a run resumed into a
    new directory forgot the best epoch before the interruption and tested the best epoch after it. This callback
    copies the resumed run's best file(s) into the new folder (``checkpoints/best.ckpt``) and sets the best score and
    path from the resumed checkpoint's callback state. A best file that is gone, or that was rewritten after the
    resumed checkpoint (its global step is later), is not carried over (a warning says so).
    """

    def __init__(self) -> None:
        self._states: dict[str, Any] = {}
        self._step = 0

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._states = dict(checkpoint.get("callbacks") or {})
        self._step = int(checkpoint.get("global_step", 0))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for cb in trainer.checkpoint_callbacks:
            state = self._states.get(cb.state_key) if isinstance(cb, ModelCheckpoint) else None
            if state is None or not cb.monitor or not cb.dirpath or state.get("best_model_score") is None:
                continue
            old_dir = state.get("dirpath")
            if not old_dir or Path(old_dir).resolve() == Path(cb.dirpath).resolve():
                continue  # the same folder: Lightning restored everything itself
            self._carry(trainer, cb, state)

    def _carry(self, trainer: L.Trainer, cb: ModelCheckpoint, state: dict[str, Any]) -> None:
        scores = dict(state.get("best_k_models") or {state["best_model_path"]: state["best_model_score"]})
        carried: dict[str, Any] = {}
        for old, score in scores.items():
            source = Path(old)
            step = _saved_step(source)
            if step is None or step > self._step:
                why = "is gone" if step is None else f"was rewritten after the resumed checkpoint (global step {step})"
                log.warning(
                    "resume: the resumed run's best checkpoint %s (%s = %.6g) %s: not carried over; this run's best "
                    "covers the epochs after the resume",
                    source,
                    cb.monitor,
                    float(score),
                    why,
                )
                continue
            target = Path(cb.dirpath) / source.name
            if trainer.is_global_zero:
                _write_atomically(target, lambda f, source=source: _copy_into(source, f))
            carried[str(target)] = score
        if not carried:
            return
        best_old = state["best_model_path"]
        best = str(Path(cb.dirpath) / Path(best_old).name)
        if best not in carried:
            return
        cb.best_k_models = carried
        cb.best_model_path, cb.best_model_score = best, carried[best]
        cb.kth_best_model_path = str(Path(cb.dirpath) / Path(state.get("kth_best_model_path") or best_old).name)
        cb.kth_value = state.get("kth_value", cb.best_model_score)
        if trainer.is_global_zero:
            log.info(
                "resume: best %s so far %.6g (%s), copied to %s", cb.monitor, float(cb.best_model_score), best_old, best
            )


def _saved_step(path: Path) -> int | None:
    """The global step saved in a checkpoint file, ``None`` when it is gone or unreadable."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt["global_step"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError):
        return None


def _copy_into(source: Path, f: IO[bytes]) -> None:
    with open(source, "rb") as src:
        shutil.copyfileobj(src, f, 16 * 1024 * 1024)


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
        checkpoint_io = _atomic_io(trainer)
        if checkpoint_io is not None:
            checkpoint_io.commit()  # not held back: the run stops here
        self.saved_path = path
        if trainer.is_global_zero:
            log.warning(
                "SIGTERM: saved %s at global step %d (epoch %d)", path, trainer.global_step, trainer.current_epoch
            )


class ValidationHistory(Callback):
    """Append each validation epoch's scalar ``val/*`` and ``monitor/*`` metrics to ``<dirpath>/<filename>`` (one
    JSON object a line): the convergence curves.

    Each line is ``{"epoch": e, "step": s, "val/epe_mm": ..., "val/auc_20_50": ..., ...}``: every scalar entry of
    ``trainer.callback_metrics`` whose name starts with ``val/`` (the hold-out of the training split) or ``monitor/``
    (the evaluation split, ``data.monitor_eval_split``) (NaN written as ``null``). The file is opened in
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
            if not name.startswith(("val/", "monitor/")):
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
