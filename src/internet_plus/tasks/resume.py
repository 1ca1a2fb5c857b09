"""Resuming a run: which checkpoint (``resume=last|<file>`` or ``ckpt_path=<file>``), and that it fits the config.

A resumed run is a new run: it writes into its own new run directory (Hydra's ``hydra.run.dir``), never into the
directory of the run it resumes; the checkpoint is only read (through :func:`internet_plus.checkpoints.read_checkpoint`,
which names a file that is not a resumable checkpoint and says what it is). The model node of the current config must
equal the hyperparameters saved in the checkpoint, otherwise the resume is refused. The only things written next to
the resumed checkpoint are deletions: partial ``*.ckpt.tmp`` files that a killed save left there
(:func:`remove_partial_saves`). The resumed run's best checkpoint is carried into the new directory by
:class:`internet_plus.callbacks.CarryBestCheckpoint`, so the final test uses the same checkpoint as an uninterrupted
run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from internet_plus.checkpoints import check_resumable, read_checkpoint
from internet_plus.models.backbones.registry import backbone_node

log = logging.getLogger(__name__)

__all__ = [
    "ResumeMismatchError",
    "check_resume_compatible",
    "find_last_checkpoint",
    "remove_partial_saves",
    "resolve_resume",
]

#: A partial save (``<name>.ckpt.tmp``) untouched for this long is left over from a killed process, not being written.
STALE_PARTIAL_SAVE_S = 60.0


class ResumeMismatchError(RuntimeError):
    """The checkpoint to resume was trained with another model configuration than the current one."""


def find_last_checkpoint(runs_dir: str | Path, exclude: str | Path | None = None) -> Path:
    """The most recently written ``<runs_dir>/*/checkpoints/last.ckpt`` (not the one under ``exclude``)."""
    runs_dir = Path(runs_dir)
    skip = Path(exclude).resolve() if exclude is not None else None
    found = [
        p for p in runs_dir.glob("*/checkpoints/last.ckpt") if skip is None or not p.resolve().is_relative_to(skip)
    ]
    if not found:
        raise FileNotFoundError(f"resume=last: no run under {runs_dir} has a checkpoints/last.ckpt")
    return max(found, key=lambda p: p.stat().st_mtime_ns)


def resolve_resume(cfg: DictConfig) -> str | None:
    """The checkpoint ``trainer.fit`` continues from, checked against ``cfg.model``; ``None`` for a fresh run.

    ``resume=last`` picks the newest ``last.ckpt`` of ``<paths.log_dir>/<task_name>/runs``; ``resume=<file>`` and
    ``ckpt_path=<file>`` name the file (setting both is an error).

    Raises:
        ValueError: both ``resume`` and ``ckpt_path`` are set.
        FileNotFoundError: the checkpoint does not exist.
        CheckpointError: the file is not a resumable checkpoint of this project (the message says what it is).
        ResumeMismatchError: its saved hyperparameters differ from ``cfg.model``.
    """
    resume, ckpt_path = cfg.get("resume"), cfg.get("ckpt_path")
    if resume is not None and ckpt_path is not None:
        raise ValueError(f"set resume=... or ckpt_path=..., not both (resume={resume}, ckpt_path={ckpt_path})")
    target = resume if resume is not None else ckpt_path
    if target is None:
        return None
    if str(target) == "last":
        runs = Path(cfg.paths.log_dir) / cfg.task_name / "runs"
        path = find_last_checkpoint(runs, exclude=cfg.paths.output_dir)
        option = f"resume=last (the newest checkpoints/last.ckpt under {runs})"
    else:
        path = Path(str(target)).expanduser()
        option = "resume" if resume is not None else "ckpt_path"
    check_resume_compatible(path, cfg.model, option=option)
    remove_partial_saves(path.parent)
    log.info("resuming from %s; this run writes into its own new directory %s", path, cfg.paths.output_dir)
    return str(path)


def _plain_model_config(model_cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    container = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else model_cfg
    assert isinstance(container, Mapping)
    return {k: v for k, v in container.items() if not str(k).startswith("_")}  # _target_, _recursive_, _convert_


def _differences(saved: Any, current: Any, prefix: str) -> list[str]:
    if isinstance(saved, Mapping) and isinstance(current, Mapping):
        out: list[str] = []
        for key in sorted(set(saved) | set(current), key=str):
            name = f"{prefix}.{key}"
            if key not in current:
                out.append(f"{name}: {saved[key]!r} in the checkpoint, absent from the config")
            elif key not in saved:
                out.append(f"{name}: absent from the checkpoint, {current[key]!r} in the config")
            else:
                out += _differences(saved[key], current[key], name)
        return out
    if isinstance(saved, list | tuple) and isinstance(current, list | tuple) and len(saved) == len(current):
        return [
            d for i, (a, b) in enumerate(zip(saved, current, strict=True)) for d in _differences(a, b, f"{prefix}[{i}]")
        ]
    return [] if saved == current else [f"{prefix}: {saved!r} in the checkpoint, {current!r} in the config"]


def remove_partial_saves(folder: str | Path) -> list[Path]:
    """Delete the partial ``*.ckpt.tmp`` files a killed save left in ``folder`` (untouched for a minute); logged."""
    removed = []
    for tmp in sorted(Path(folder).glob("*.ckpt.tmp")):
        try:
            stat = tmp.stat()
            if time.time() - stat.st_mtime < STALE_PARTIAL_SAVE_S:
                continue  # possibly still being written by a live process
            tmp.unlink()
        except OSError:
            continue
        log.info("removed %s (%d bytes), the partial file of a save that was killed", tmp, stat.st_size)
        removed.append(tmp)
    return removed


def check_resume_compatible(
    path: str | Path, model_cfg: DictConfig | Mapping[str, Any], *, option: str = "resume"
) -> None:
    """Refuse a file that is not a resumable checkpoint of this project (named, with what it is), or whose saved
    hyperparameters differ from the model config (safe ``weights_only`` load).

    Raises:
        FileNotFoundError: there is no such file.
        CheckpointError: not a resumable checkpoint (an empty, text or truncated file, a plain state_dict, a
            weights-only ``best.ckpt``, another model's checkpoint, ...).
        ResumeMismatchError: listing every differing key (``model.<key>: <checkpoint> ..., <config> ...``).
    """
    ckpt = read_checkpoint(path, option=option)
    check_resumable(ckpt, path, option=option)
    saved = dict(ckpt["hyper_parameters"])
    if isinstance(saved.get("backbone"), Mapping) and "name" in saved["backbone"]:
        saved["backbone"] = backbone_node(saved["backbone"])  # saved before the backbone registry: name -> _target_
    diffs = _differences(saved, _plain_model_config(model_cfg), "model")
    if diffs:
        shown = "\n  ".join(diffs[:20])
        raise ResumeMismatchError(
            f"cannot resume from {path}: its model configuration differs from this run's:\n  {shown}\n"
            "Resume with the same model overrides as the run that wrote it (see its .hydra/overrides.yaml), or start "
            "a new run without resume/ckpt_path."
        )
