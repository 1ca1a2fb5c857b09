"""Pieces shared by the train and eval tasks: loggers, callbacks, the metrics table and ``metrics.json``."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class NoGPUError(RuntimeError):
    """The trainer config asks for a GPU on a machine where CUDA is not available."""


def check_accelerator(trainer_cfg: DictConfig | Mapping[str, Any]) -> None:
    """Stop at once, naming the CPU configs, when ``trainer.accelerator`` asks for a GPU that is not there.

    Without this check Lightning fails later with ``No supported gpu backend found!``, which names no way out.
    """
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if accelerator not in ("gpu", "cuda") or torch.cuda.is_available():
        return
    devices = trainer_cfg.get("devices", 1)
    several = str(trainer_cfg.get("strategy", "")).startswith("ddp") or str(devices) not in ("1", "auto")
    instead = "trainer=ddp_cpu (the same DDP code path on the CPU: 2 processes, gloo)" if several else "trainer=cpu"
    raise NoGPUError(
        f"trainer.accelerator={accelerator} asks for a GPU, but CUDA is not available on this machine "
        f"(torch.cuda.is_available() is False; torch {torch.__version__}). Use {instead}, or trainer=default, which "
        "picks the GPU when there is one and the CPU otherwise."
    )


def wandb_has_credentials() -> bool:
    """True when W&B can authenticate without asking: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import netrc

        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


def prepare_wandb_environment() -> str:
    """Make sure W&B never blocks or crashes for lack of an account: without credentials it runs offline.

    ``WANDB_MODE`` set by the user (``online``, ``offline``, ``disabled``) is respected. Returns the mode in force.
    """
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if not wandb_has_credentials():
        os.environ["WANDB_MODE"] = "offline"
        log.info("W&B: no credentials, logging offline (upload later: `wandb sync <run dir>/wandb/offline-run-*`)")
        return "offline"
    return "online"


def instantiate_loggers(cfg: DictConfig | None, task_name: str = "train") -> list[Logger]:
    """Instantiate every ``_target_`` node of the ``logger`` group (``logger=none`` gives an empty list).

    A W&B node gets its mode settled first (:func:`prepare_wandb_environment`) and its ``group: null`` and
    ``log_model: auto`` filled in from ``task_name``, the sweep and that mode
    (:func:`internet_plus.wandb_dashboard.resolve_wandb_node`).
    """
    loggers: list[Logger] = []
    for name, node in (cfg or {}).items():
        if node is None or "_target_" not in node:
            continue
        if "Wandb" in node["_target_"]:
            from internet_plus.wandb_dashboard import resolve_wandb_node

            node = resolve_wandb_node(node, task_name, prepare_wandb_environment())
        log.info("logger %s: %s", name, node["_target_"])
        loggers.append(hydra.utils.instantiate(node, _convert_="all"))
    return loggers


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    """Instantiate every ``_target_`` node of the ``callbacks`` group."""
    return [
        hydra.utils.instantiate(node, _convert_="all")
        for node in (cfg or {}).values()
        if node is not None and "_target_" in node
    ]


def log_config(loggers: list[Logger], cfg: DictConfig, extra: Mapping[str, Any]) -> None:
    """Send the resolved config (and ``extra``, e.g. parameter counts) to every logger as hyperparameters."""
    params = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(params, dict)
    params = {k: v for k, v in params.items() if k not in ("hydra",)}
    params.update(extra)
    for logger in loggers:
        logger.log_hyperparams(params)


def write_metrics_json(results: Mapping[str, Any], output_dir: str | Path) -> Path:
    """Write ``metrics.json`` (one flat object, keys ``test/<name>``) into the run directory, atomically."""
    path = Path(output_dir) / "metrics.json"
    clean = {k: _json_number(v) for k, v in sorted(results.items())}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(clean, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _json_number(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_json_number(v) for v in value]
    value = float(value)
    return None if math.isnan(value) else value


def format_metrics_table(results: Mapping[str, Any]) -> str:
    """The final metrics as a small table (lists such as the PCK curve are summarised)."""
    rows = []
    for key, value in sorted(results.items()):
        if isinstance(value, list | tuple):
            shown = f"[{len(value)} values: {value[0]:.3f} … {value[-1]:.3f}]" if value else "[]"
        else:
            shown = f"{value:.4f}" if value is not None else "n/a"
        rows.append((key, shown))
    width = max((len(k) for k, _ in rows), default=10)
    line = "-" * (width + 30)
    body = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    return f"{line}\n{'metric':<{width}}  value\n{line}\n{body}\n{line}"


@contextmanager
def finish_wandb() -> Iterator[None]:
    """Close the W&B run at the end of a job, so the next job of a multirun gets a run of its own.

    A job that raises is finished with exit code 1, so W&B marks its run as failed rather than finished.
    """
    exit_code = 1
    try:
        yield
        exit_code = 0
    finally:
        try:
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=exit_code)
        except ImportError:  # pragma: no cover - wandb is a dependency, but never fail a run over it
            pass
