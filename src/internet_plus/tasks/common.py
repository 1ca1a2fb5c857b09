"""Pieces shared by the train and eval tasks: loggers, callbacks, the metrics table and ``metrics.json``."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import re
import signal
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import Callback
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

log = logging.getLogger(__name__)


#: Log messages that carry no information for a user of this project (advertising tips of third-party packages).
QUIET_MESSAGES = (re.compile(r"^💡 Tip:"),)
#: Loggers whose messages are filtered (Lightning's rank-zero messages come through these).
RANK_ZERO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")
#: Lightning's package loggers, which add a console handler of their own when imported before logging is set up.
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning", "lightning.pytorch", "lightning.fabric")


class _DropQuietMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern.search(message) for pattern in QUIET_MESSAGES)


def tidy_logging() -> None:
    """Each thing said once: Lightning's lines go through the run's (Hydra's) handlers only, advertising tips are
    dropped, and a deprecation warning about Lightning's own internals (torch's ``LeafSpec``) is not shown.

    When ``pytorch_lightning`` is imported before logging is configured it gives its package logger a console handler
    of its own; once the root logger has handlers (Hydra's console and ``<task>.log`` file), that handler would print
    every line a second time, or keep it out of the log file. Idempotent.
    """
    if logging.getLogger().handlers:
        for name in LIGHTNING_LOGGERS:
            package_logger = logging.getLogger(name)
            for handler in list(package_logger.handlers):
                if type(handler) is logging.StreamHandler:
                    package_logger.removeHandler(handler)
            package_logger.propagate = True
    for name in RANK_ZERO_LOGGERS:
        rank_zero = logging.getLogger(name)
        if not any(isinstance(f, _DropQuietMessages) for f in rank_zero.filters):
            rank_zero.addFilter(_DropQuietMessages())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)`? is deprecated")
    if rank_zero_only.rank > 0:  # under DDP every process runs the task: the others' info lines would repeat rank 0's
        logging.getLogger("internet_plus").setLevel(logging.WARNING)


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


class ConfigValueError(ValueError):
    """A config value that cannot work, found before anything is built (the message names the key)."""


def _check_positive_int(key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise ConfigValueError(f"{key}={value!r} is not an integer; give a positive whole number (e.g. {key}=16)")
    if int(value) < 1:
        raise ConfigValueError(f"{key}={value!r} must be >= 1")


def _select(cfg: Mapping[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def check_config(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Refuse config values that cannot give a meaningful run, naming the key, before anything is built or written:
    ``data.batch_size`` not a positive integer, and, when the run trains (``train: true``), ``trainer.max_epochs`` or
    ``trainer.max_steps`` of 0 (Lightning would skip training and the run would test an untrained model).

    Raises:
        ConfigValueError: the first such value.
    """
    get = (lambda key: OmegaConf.select(cfg, key)) if isinstance(cfg, DictConfig) else (lambda key: _select(cfg, key))
    _check_positive_int("data.batch_size", get("data.batch_size"))
    if not (get("train") if get("train") is not None else True):
        return
    for key in ("trainer.max_epochs", "trainer.max_steps"):
        value = get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigValueError(f"{key}={value!r} is not an integer (-1: no limit)")
        if value == 0:
            raise ConfigValueError(
                f"{key}=0 trains nothing: the run would test an untrained model. Give a positive number, or run "
                "eval.py to test a checkpoint (train=false tests the initial weights on purpose)"
            )
    _check_checkpoint_selection(get)


#: ``test_ckpt``: which checkpoint of the fit the test scores.
TEST_CHECKPOINTS = ("best", "last")


def _check_checkpoint_selection(get: Any) -> None:
    """``test_ckpt`` is ``best`` or ``last``; ``best`` and the best-checkpoint monitor need the validation hold-out
    (``data.val_fraction`` > 0): without it Lightning would stop at the first epoch's end (a ``monitor/*`` metric
    is never used to select)."""
    which = get("test_ckpt") if get("test_ckpt") is not None else "best"
    if which not in TEST_CHECKPOINTS:
        raise ConfigValueError(f"test_ckpt={which!r}: expected one of {', '.join(TEST_CHECKPOINTS)}")
    monitor = get("callbacks.model_checkpoint.monitor") if get("callbacks.model_checkpoint") is not None else None
    if monitor is not None and str(monitor).startswith("monitor/"):
        raise ConfigValueError(
            f"callbacks.model_checkpoint.monitor={monitor}: monitor/* metrics score the evaluation split and never "
            "select a checkpoint; monitor a val/* metric (the hold-out of the training split) or null"
        )
    no_holdout = get("data.val_fraction") is not None and float(get("data.val_fraction")) == 0.0
    if no_holdout and monitor is not None and str(monitor).startswith("val/"):
        raise ConfigValueError(
            f"data.val_fraction=0 leaves no validation split for callbacks.model_checkpoint.monitor={monitor}: set "
            "callbacks.model_checkpoint.monitor=null (best.ckpt is then the latest epoch) and test_ckpt=last, as the "
            "paper recipes do, or hold out a validation split with data.val_fraction > 0"
        )
    if no_holdout and which == "best" and get("test") is not False:
        raise ConfigValueError(
            "test_ckpt=best with data.val_fraction=0: there is no validation split to choose the best checkpoint "
            "by. Use test_ckpt=last (the paper's rule: the result at the end of the schedule) or data.val_fraction > 0"
        )


#: After SIGTERM, how long training may take to stop on its own (finish the step, save ``last.ckpt``) before the
#: process exits anyway (:func:`sigterm_deadline`).
SIGTERM_DEADLINE_S = 120.0


@contextmanager
def sigterm_deadline(seconds: float = SIGTERM_DEADLINE_S, exit_status: int = 143) -> Iterator[None]:
    """Make SIGTERM end the process even when training cannot stop on its own (wrap ``trainer.fit`` in it).

    Lightning's SIGTERM handler only sets a flag that the training loop reads after the current step; a DataLoader
    worker (or the main process) blocked for good, e.g. in ``open()`` of a named pipe, never lets it get there.
    Inside this context a SIGTERM also starts a timer: if the process is still running ``seconds`` later, it logs
    why, kills its child processes (the loader workers) and exits with ``exit_status`` without saving. Lightning
    keeps a handler installed before ``fit`` and calls it from its own; a SIGTERM that arrives while Lightning's
    handler is not installed (before or after its fit loop) raises ``SystemExit(exit_status)`` at once. Only the
    main thread can install signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    timer: threading.Timer | None = None

    def on_sigterm(signum: int, frame: Any) -> None:
        nonlocal timer
        if signal.getsignal(signal.SIGTERM) is on_sigterm:  # called directly: nobody stops the run gracefully
            log.warning("SIGTERM received outside the training loop: exiting with status %d", exit_status)
            raise SystemExit(exit_status)
        if timer is None:
            timer = threading.Timer(seconds, _exit_after_deadline, (seconds, exit_status))
            timer.daemon = True
            timer.start()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if timer is not None:
            timer.cancel()


def _exit_after_deadline(seconds: float, exit_status: int) -> None:
    log.error(
        "SIGTERM: training did not stop within %g s of the signal (a data loader worker or the main process is "
        "blocked, e.g. reading a named pipe or a hung network file system); exiting with status %d without saving "
        "a checkpoint",
        seconds,
        exit_status,
    )
    for child in multiprocessing.active_children():
        child.kill()
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(exit_status)


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
        logger = hydra.utils.instantiate(node, _convert_="all")
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous") is None:
            # Lightning's WandbLogger always passes anonymous=None, which W&B >= 0.19 answers with a deprecation
            # warning in every run; leaving the setting out is the same (W&B's default).
            init.pop("anonymous", None)
        loggers.append(logger)
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


class NonFiniteMetricError(ValueError):
    """A test metric is missing (``None``), NaN or infinite: ``metrics.json`` is not written."""


def write_metrics_json(results: Mapping[str, Any], output_dir: str | Path) -> Path:
    """Write ``metrics.json`` (one flat object, keys ``test/<name>``) into the run directory, atomically.

    Raises:
        NonFiniteMetricError: a value (or an element of a list such as the PCK curve) is ``None``, NaN or infinite;
            names the keys, and nothing is written (a metric is never null in ``metrics.json``).
    """
    path = Path(output_dir) / "metrics.json"
    clean = {k: _json_number(v) for k, v in sorted(results.items())}
    bad = [k for k, v in clean.items() if not all(math.isfinite(x) for x in (v if isinstance(v, list) else [v]))]
    if bad:
        raise NonFiniteMetricError(
            f"not writing {path}: metric(s) {', '.join(bad)} are null or not finite "
            f"({', '.join(f'{k}={results[k]!r}' for k in bad[:5])}). A test set with no scorable sample for a "
            "metric gives no value: check the test split (data.on_bad_sample, data.verify=true) and the model "
            "(a non-finite prediction)."
        )
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(clean, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _json_number(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_json_number(v) for v in value]
    return math.nan if value is None else float(value)


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
