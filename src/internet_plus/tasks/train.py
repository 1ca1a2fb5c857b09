"""``python train.py``: fit a model, then test its best checkpoint on the data set's evaluation split.

Writes into the Hydra run directory: ``checkpoints/{best,last}.ckpt``, ``metrics.json`` (``test/<name>``), the
logger's files and ``.hydra/`` (the resolved config); a run directory that already holds another run's files is
refused before any work (:mod:`internet_plus.tasks.run_dir`). Checkpoints are written atomically
(:class:`~internet_plus.callbacks.AtomicCheckpointIO`), and only once their weights gave a finite training loss
(:class:`~internet_plus.callbacks.FiniteCheckpoints`). ``resume=last|<file>`` (or ``ckpt_path=<file>``) continues a
run in a new run directory (:mod:`internet_plus.tasks.resume`), from the resumed run's best validation score and
checkpoint (:class:`~internet_plus.callbacks.CarryBestCheckpoint`). On SIGTERM the run saves ``checkpoints/last.ckpt``
and exits with status 143 without testing.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import hydra
import pytorch_lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from internet_plus.accel import Accel
from internet_plus.callbacks import (
    AtomicCheckpointIO,
    CarryBestCheckpoint,
    FiniteCheckpoints,
    LastCheckpoint,
    SigtermCheckpoint,
)
from internet_plus.compile import CompileNetwork
from internet_plus.models.backbones.resnet import PretrainedWeightsError, initial_weights_replaced
from internet_plus.tasks.common import (
    check_accelerator,
    check_config,
    finish_wandb,
    format_metrics_table,
    instantiate_callbacks,
    instantiate_loggers,
    log_config,
    sigterm_deadline,
    tidy_logging,
    write_metrics_json,
)
from internet_plus.tasks.resume import resolve_resume
from internet_plus.tasks.run_dir import check_new_run_dir
from internet_plus.wandb_dashboard import dashboard_callbacks

log = logging.getLogger(__name__)


class MultirunWithDDPError(RuntimeError):
    """Hydra multirun and multi-device DDP in one process tree (docs/reference/design_notes.md §5.1)."""


def device_count(devices: object) -> int:
    """Number of devices a Trainer ``devices`` value asks for (-1 / "auto" count as "more than one")."""
    if isinstance(devices, list | tuple):
        return len(devices)
    if isinstance(devices, str):
        return 2 if devices in ("-1", "auto") else len(devices.split(",")) if "," in devices else int(devices)
    return 2 if devices == -1 else int(devices)


#: The Hydra launcher that runs each job of a multirun in a SLURM allocation of its own (``hydra/launcher=slurm``).
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def check_launch_mode(cfg: DictConfig) -> None:
    """Refuse a local Hydra multirun whose jobs use more than one device: Lightning's DDP re-launches ``sys.argv``.

    Under the SLURM launcher (``hydra/launcher=slurm``) each job is an allocation with one SLURM task per device, and
    Lightning takes its ranks from SLURM instead of re-launching; there the task count must match the devices.
    """
    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:  # not running under Hydra (e.g. called from a notebook)
        return
    devices = cfg.trainer.get("devices", 1)
    if hydra_cfg.mode != RunMode.MULTIRUN or device_count(devices) <= 1:
        return
    launcher = hydra_cfg.launcher
    if str(launcher.get("_target_", "")) != SLURM_LAUNCHER:
        raise MultirunWithDDPError(
            f"a local Hydra multirun (-m) cannot run jobs on {devices} devices: Lightning's DDP re-launches the "
            "command line in each rank, which would start the sweep again in every rank. Instead: sweep with one "
            "device per job (trainer=gpu or trainer=cpu), or run each multi-device configuration as its own "
            "command (a shell loop over `python train.py trainer=ddp ...`), or use the SLURM launcher "
            "(hydra/launcher=slurm), which runs one job per allocation with DDP inside it."
        )
    tasks = int(launcher.get("tasks_per_node", 1)) * int(launcher.get("nodes", 1))
    wanted = device_count(devices) * int(cfg.trainer.get("num_nodes", 1))
    if tasks != wanted:
        raise MultirunWithDDPError(
            f"hydra/launcher=slurm starts {tasks} SLURM task(s) per job but the trainer asks for {wanted} devices: "
            "Lightning needs one task per device (hydra.launcher.tasks_per_node=trainer.devices, "
            "hydra.launcher.nodes=trainer.num_nodes), otherwise it re-launches submitit's command line and fails."
        )


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train (and test) as configured; returns the test metrics (``test/<name>`` → value)."""
    tidy_logging()
    check_config(cfg)  # values that cannot work (data.batch_size=abc, trainer.max_epochs=0), named, before any work
    check_launch_mode(cfg)
    check_accelerator(cfg.trainer)
    compile_callback = CompileNetwork(cfg.get("compile"))  # a bad compile node fails here, before any work
    resume_from = resolve_resume(cfg)  # before any work: a wrong or mismatched checkpoint fails here
    job_name = HydraConfig.get().job.name if HydraConfig.initialized() else "train"
    check_new_run_dir(cfg.paths.output_dir, job_name)  # never write into another run's directory
    L.seed_everything(cfg.seed, workers=True)
    output_dir = cfg.paths.output_dir

    choice = HydraConfig.get().runtime.choices.get("backbone") if HydraConfig.initialized() else "?"
    log.info("model: backbone %s (%s)", choice, cfg.model.backbone._target_)
    # first: missing initial weights stop the run here, before any data work; a resumed run does not read them (its
    # checkpoint replaces every weight), so it resumes on a machine without the ImageNet file
    with initial_weights_replaced() if resume_from is not None else contextlib.nullcontext():
        model = build_model(cfg.model)
    model.data_config = OmegaConf.to_container(cfg.data, resolve=True)  # saved with every checkpoint
    log.info("data: %s", cfg.data._target_)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    datamodule.tests_after_fit = bool(cfg.get("test", True))  # check the test split at fit setup only if it is used

    if cfg.get("summary"):
        from internet_plus.models.summary import model_summary

        log.info("model summary\n%s", model_summary(model, cfg.data.input_size))

    with finish_wandb():
        loggers = instantiate_loggers(cfg.get("logger"), task_name=cfg.get("task_name", "train"))
        callbacks = instantiate_callbacks(cfg.get("callbacks")) + dashboard_callbacks(loggers)
        callbacks.append(Accel(cfg.get("accel", "auto")))  # CPU speed-ups, opt-in (accel.py)
        callbacks.append(compile_callback)  # torch.compile of the network, opt-in (compile.py)
        callbacks.append(FiniteCheckpoints())  # a checkpoint reaches the disk once its weights gave a finite loss
        if resume_from is not None:
            callbacks.append(CarryBestCheckpoint())  # the resumed run's best score and file, into this directory
        checkpoint_io = AtomicCheckpointIO()
        if not loggers:  # nothing to send learning rates to (logger=none)
            callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
        trainer: L.Trainer = hydra.utils.instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[checkpoint_io]
        )
        log_config(loggers, cfg, _parameter_counts(model))

        if cfg.get("train", True):
            try:
                with sigterm_deadline():  # SIGTERM ends the run even when a loader worker is blocked for good
                    trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
            except FloatingPointError as err:  # a non-finite loss or weights: say which checkpoint is good
                raise FloatingPointError(f"{err}; {checkpoint_io.last_good()}") from err
            except SIGTERMException:
                _exit_on_sigterm(trainer, callbacks, output_dir)

        results: dict[str, Any] = validation_results(trainer)  # for a sweeper's optimized_metric, not metrics.json
        if cfg.get("test", True):
            which = cfg.get("test_ckpt", "best")
            ckpt = checkpoint_to_test(trainer, which)
            log.info("testing the %s checkpoint, %s", which, ckpt or "the current weights")
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=True, verbose=False)
            test_results = dict(model.test_results)
            if ckpt is not None:
                test_results.update(scored_checkpoint(ckpt, which))
            results.update(test_results)
            if trainer.is_global_zero:
                path = write_metrics_json(test_results, output_dir)
                print(format_metrics_table(test_results))
                _print_baseline(test_results)
                log.info("metrics written to %s", path)
        if trainer.is_global_zero:
            log.info("run directory: %s", output_dir)
    return results


#: Exit status after SIGTERM (128 + 15, the shell's convention): the checkpoint is saved, the run is not finished.
SIGTERM_EXIT_STATUS = 143


def _exit_on_sigterm(trainer: L.Trainer, callbacks: list, output_dir: str) -> None:
    saved = next((cb.saved_path for cb in callbacks if isinstance(cb, SigtermCheckpoint) and cb.saved_path), None)
    if trainer.is_global_zero:
        where = (
            f"saved {saved}; resume with the same overrides plus resume={saved}"
            if saved
            else "no checkpoint saved (callbacks.sigterm_checkpoint is off)"
        )
        log.warning(
            "SIGTERM received: training stopped at global step %d (epoch %d), %s. Not testing. Run directory: %s",
            trainer.global_step,
            trainer.current_epoch,
            where,
            output_dir,
        )
    raise SystemExit(SIGTERM_EXIT_STATUS)


def validation_results(trainer: L.Trainer) -> dict[str, float]:
    """After fitting: the last logged scalar metrics (``val/epe_mm``, ``train/loss_epoch``, …) and, per monitoring
    checkpoint callback, the best monitored value as ``<monitor>_best`` (``val/epe_mm_best``)."""
    results: dict[str, float] = {}
    for name, value in trainer.callback_metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            results[name] = float(value)
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.monitor and cb.best_model_score is not None:
            results[f"{cb.monitor}_best"] = float(cb.best_model_score)
    return results


def build_model(node: DictConfig) -> L.LightningModule:
    """The LightningModule of ``cfg.model``; missing or wrong initial weights (``PretrainedWeightsError``) are raised
    as themselves, not inside Hydra's ``InstantiationException``, so that the message says what to do at once."""
    try:
        return hydra.utils.instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, PretrainedWeightsError):
            raise err.__cause__ from None
        raise


def checkpoint_to_test(trainer: L.Trainer, which: str) -> str | None:
    """The file ``test_ckpt`` names after a fit: ``best``, the best-checkpoint callback's file (``best.ckpt``; the
    first checkpoint callback that saved one); ``last``, ``last.ckpt``, the weights at the end of the schedule, as
    the paper reports them (§5.2). ``None`` when the fit saved nothing (``train=false``): the current weights."""
    if which == "last":
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, LastCheckpoint) and cb.last_model_path:
                return cb.last_model_path
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, LastCheckpoint) and cb.best_model_path:
                return cb.best_model_path
        if any(isinstance(cb, ModelCheckpoint) and cb.best_model_path for cb in trainer.checkpoint_callbacks):
            raise RuntimeError("test_ckpt=last, but callbacks.last_checkpoint is null: no last.ckpt was written")
        return None
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint):
            if cb.best_model_path:
                return cb.best_model_path
            if cb.last_model_path:
                return cb.last_model_path
    return None


def scored_checkpoint(path: str, which: str) -> dict[str, float]:
    """What ``metrics.json`` records of the tested checkpoint: ``test/ckpt_epochs``, the number of training epochs
    its weights saw (the paper's "taken from 189 epochs"; a checkpoint saved at the end of epoch ``e``, counted from
    0 as Lightning does, holds ``e + 1``), and ``test/ckpt_is_last``: 1 for ``test_ckpt=last``, 0 for ``best``."""
    epochs = int(torch.load(path, map_location="cpu", mmap=True, weights_only=True)["epoch"]) + 1
    return {"test/ckpt_epochs": float(epochs), "test/ckpt_is_last": float(which == "last")}


def _parameter_counts(model: L.LightningModule) -> dict[str, int]:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "params/backbone": count(model.backbone),
        "params/posenet": count(model.posenet),
        "params/total": count(model),
    }


def _print_baseline(results: dict[str, Any]) -> None:
    epe, base = results.get("test/epe_mm"), results.get("test/epe_mean_pose_mm")
    if epe is None or base is None or base != base or epe != epe:
        return
    ratio = epe / base if base else float("nan")
    print(
        f"test EPE {epe:.2f} mm vs {base:.2f} mm for always predicting the mean training pose "
        f"(ratio {ratio:.2f}; below 0.5 means the model learned the pose, not just the average hand)"
    )
