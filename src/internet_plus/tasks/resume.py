"""Resuming a run: which checkpoint (``resume=last|<file>`` or ``ckpt_path=<file>``), and that it fits the config.

A resumed run is a new run: it writes into its own new run directory (Hydra's ``hydra.run.dir``), never into the
directory of the run it resumes, and copies nothing from it; the checkpoint is only read. The model node of the
current config must equal the hyperparameters saved in the checkpoint, otherwise the resume is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from internet_plus.models.backbones.registry import backbone_node

log = logging.getLogger(__name__)

__all__ = ["ResumeMismatchError", "check_resume_compatible", "find_last_checkpoint", "resolve_resume"]


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
        ResumeMismatchError: its saved hyperparameters differ from ``cfg.model``.
    """
    resume, ckpt_path = cfg.get("resume"), cfg.get("ckpt_path")
    if resume is not None and ckpt_path is not None:
        raise ValueError(f"set resume=... or ckpt_path=..., not both (resume={resume}, ckpt_path={ckpt_path})")
    target = resume if resume is not None else ckpt_path
    if target is None:
        return None
    if str(target) == "last":
        path = find_last_checkpoint(Path(cfg.paths.log_dir) / cfg.task_name / "runs", exclude=cfg.paths.output_dir)
    else:
        path = Path(str(target)).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"resume from {path}: no such checkpoint file")
    check_resume_compatible(path, cfg.model)
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


def check_resume_compatible(path: str | Path, model_cfg: DictConfig | Mapping[str, Any]) -> None:
    """Refuse a checkpoint whose saved hyperparameters differ from the model config (safe ``weights_only`` load).

    Raises:
        ResumeMismatchError: listing every differing key (``model.<key>: <checkpoint> ..., <config> ...``).
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    saved = ckpt.get("hyper_parameters") if isinstance(ckpt, Mapping) else None
    if not isinstance(saved, Mapping):
        raise ResumeMismatchError(f"{path} holds no saved hyperparameters: not a checkpoint of this project's model")
    saved = dict(saved)
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
