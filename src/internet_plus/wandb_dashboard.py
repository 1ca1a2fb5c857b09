"""The W&B dashboard of a training run: run naming and grouping, metric summaries, PCK curves and skeleton images.

Two pieces, both used only when a :class:`~pytorch_lightning.loggers.WandbLogger` is configured (``logger=wandb``):

* :func:`resolve_wandb_node` completes the ``logger.wandb`` node before it is instantiated
  (:func:`internet_plus.tasks.common.instantiate_loggers`): ``group: null`` becomes the task name for a single run
  and ``<task_name>-<sweep directory name>`` for every job of a Hydra multirun, so the jobs of one sweep sit together
  in one group; ``log_model: auto`` becomes ``"all"`` (every checkpoint uploaded as an artifact) when W&B is online
  and ``False`` offline or disabled (offline artifacts would only fill the disk until ``wandb sync``).
* :class:`WandbDashboard`, a callback the train task adds next to the logger
  (:func:`dashboard_callbacks`). At the start of fitting it defines the summaries of the validation metrics (best,
  not last: ``val/epe_mm`` min, ``val/auc_20_50`` max, ``val/epe_median_mm`` and ``val/loss`` min). At the end of
  every validation epoch (not the sanity check) it logs

  - ``val/pck_curve``: the 3-D PCK curve (thresholds of :class:`~internet_plus.metrics.PoseErrorMetrics`, 20…50 mm)
    as a W&B line plot, backed by the table ``val/pck_curve_table`` (columns ``threshold_mm``, ``pck``);
  - ``val/predictions``: the first ``num_images`` samples of the first validation batch with the ground-truth
    skeleton (green) and the predicted one (magenta) drawn by :func:`internet_plus.visualize.draw_skeleton`.

  Without a hold-out (the paper recipes: ``data.val_fraction=0``, ``data.monitor_eval_split=true``) the first
  validation loader is the evaluation split, and both are logged as ``monitor/pck_curve`` and
  ``monitor/predictions``. The ``monitor/*`` metrics keep W&B's default summary, the last value: a best value over
  epochs would be a selection on the evaluation split.

  Both are logged against ``trainer/global_step``, the step axis :class:`WandbLogger` uses for all metrics.

The losses, learning rate and validation EPE/PCK AUC themselves reach W&B through the LightningModule's
``self.log`` and the ``lr_monitor`` callback; the resolved config through
:func:`internet_plus.tasks.common.log_config`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from internet_plus.visualize import draw_skeleton, to_uint8_image

log = logging.getLogger(__name__)

__all__ = [
    "GT_COLOR",
    "PRED_COLOR",
    "SUMMARIES",
    "WandbDashboard",
    "dashboard_callbacks",
    "resolve_wandb_node",
    "sweep_group",
]

#: Run-summary aggregation of the validation metrics: the best value of the run, not the last.
SUMMARIES: dict[str, str] = {
    "val/epe_mm": "min",
    "val/epe_median_mm": "min",
    "val/loss": "min",
    "val/auc_20_50": "max",
}

#: Skeleton colours of the validation images (RGB): ground truth green, prediction magenta, both hands alike.
GT_COLOR: tuple[int, int, int] = (40, 220, 40)
PRED_COLOR: tuple[int, int, int] = (255, 40, 255)

#: The step axis :class:`~pytorch_lightning.loggers.WandbLogger` defines for every metric.
STEP_METRIC = "trainer/global_step"

_ONLINE_MODES = ("online", "run")


def sweep_group(task_name: str) -> str:
    """The W&B group of a job: ``task_name`` for a single run, ``<task_name>-<sweep dir name>`` in a multirun.

    The sweep directory's name is its start time (``conf/hydra/default.yaml``), the same for every job of one sweep
    and different between sweeps, so each sweep gets a group of its own and its jobs appear side by side.
    """
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):  # not running under Hydra (a notebook, a plain script)
        return task_name
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return task_name
    sweep_dir = OmegaConf.select(hydra_cfg, "sweep.dir", default=None)
    return f"{task_name}-{Path(str(sweep_dir)).name}" if sweep_dir else task_name


def resolve_wandb_node(node: DictConfig, task_name: str, mode: str) -> DictConfig:
    """A copy of the ``logger.wandb`` node with ``group: null`` and ``log_model: auto`` filled in.

    Args:
        node: the WandbLogger ``_target_`` node as composed.
        task_name: the config's ``task_name`` (the group of a single run).
        mode: the W&B mode in force (``online``, ``offline``, ``disabled``; see
            :func:`internet_plus.tasks.common.prepare_wandb_environment`).

    Explicit values are kept: ``logger.wandb.group=my_group`` or ``logger.wandb.log_model=false`` win.
    """
    node = node.copy()
    with open_dict(node):
        if node.get("group") is None:
            node.group = sweep_group(task_name)
        if str(node.get("log_model", False)).lower() == "auto":
            node.log_model = "all" if mode in _ONLINE_MODES else False
    return node


def dashboard_callbacks(loggers: list[Logger], num_images: int = 4) -> list[L.Callback]:
    """``[WandbDashboard]`` when one of ``loggers`` is a :class:`WandbLogger`, else ``[]``."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        return [WandbDashboard(num_images=num_images)]
    return []


class WandbDashboard(L.Callback):
    """Validation PCK curves, skeleton images and best-value summaries in W&B (see the module docstring).

    Args:
        num_images: how many samples of the first validation batch to draw each validation epoch (0: none).
    """

    def __init__(self, num_images: int = 4) -> None:
        if int(num_images) < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        self.num_images = int(num_images)
        self._images: list[Any] = []

    @staticmethod
    def _wandb_logger(trainer: L.Trainer) -> WandbLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Define the summaries of the validation metrics (best value) on the W&B run."""
        logger = self._wandb_logger(trainer)
        if logger is not None:
            self._define_metrics(logger)

    @staticmethod
    @rank_zero_only
    def _define_metrics(logger: WandbLogger) -> None:
        run = logger.experiment  # creates the run and WandbLogger's own step-axis definitions first
        for name, summary in SUMMARIES.items():
            # A definition for a name replaces the "*" glob's, so the step axis is repeated here.
            run.define_metric(name, step_metric=STEP_METRIC, summary=summary)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Forget the images of the previous epoch."""
        self._images = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Draw predicted and ground-truth skeletons on the first samples of the first validation loader's first
        batch (rank 0)."""
        if batch_idx != 0 or dataloader_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if self.num_images == 0 or self._wandb_logger(trainer) is None:
            return
        self._images = self._draw(trainer, pl_module, batch)

    @torch.no_grad()
    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict[str, torch.Tensor]) -> list[Any]:
        import wandb

        with trainer.precision_plugin.forward_context():
            pred = pl_module.predict_batch(batch)  # type: ignore[operator]
        count = min(self.num_images, int(batch["image"].shape[0]))
        images = []
        for i in range(count):
            valid = batch["joint_valid"][i]
            canvas = to_uint8_image(batch["image"][i])
            canvas = draw_skeleton(canvas, batch["joints_img"][i], valid, colors=_one_color(GT_COLOR))
            canvas = draw_skeleton(canvas, pred["joints_img"][i].float(), valid, colors=_one_color(PRED_COLOR))
            error = _sample_epe(pred["joints_cam"][i], batch["joints_cam"][i], batch["joint_annotated"][i])
            hands = pred["hand_prob"][i].float().cpu().tolist()
            caption = (
                f"green: ground truth, magenta: prediction; EPE {error:.1f} mm; "
                f"P(right) {hands[0]:.2f}, P(left) {hands[1]:.2f}"
            )
            images.append(wandb.Image(canvas, caption=caption))
        return images

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log the epoch's PCK curve and the skeleton images.

        Lightning calls the callbacks' ``on_validation_epoch_end`` before the LightningModule's, which computes and
        resets the metrics: the curve is read here from ``pl_module.val_pose`` (on every rank, as computing it
        synchronises the ranks, so no rank may skip it; torchmetrics caches the result, so the module's own
        ``compute`` reuses it).
        """
        logger = self._wandb_logger(trainer)
        prefix = first_val_prefix(trainer)
        metric = getattr(pl_module, f"{prefix}_pose", None)
        if logger is None or trainer.sanity_checking or metric is None:
            self._images = []
            return
        curve = [float(v) for v in metric.compute()["pck_curve"]]
        payload: dict[str, Any] = {}
        if trainer.is_global_zero:
            if all(math.isfinite(v) for v in curve):
                payload[f"{prefix}/pck_curve"] = _pck_plot(metric.thresholds, curve, trainer.current_epoch, prefix)
            if self._images:
                payload[f"{prefix}/predictions"] = self._images
            if payload:
                logger.log_metrics(payload, step=trainer.global_step)
        self._images = []


def first_val_prefix(trainer: L.Trainer) -> str:
    """The metric prefix of the first validation loader: ``val`` (the hold-out), or ``monitor`` when the data module
    scores only the evaluation split (``val_prefixes``; ``val`` for a data module without them)."""
    prefixes = getattr(getattr(trainer, "datamodule", None), "val_prefixes", None)
    return prefixes[0] if prefixes else "val"


def _one_color(color: tuple[int, int, int]) -> dict[int, tuple[int, int, int]]:
    from internet_plus.joints import LEFT, RIGHT

    return {RIGHT: color, LEFT: color}


def _sample_epe(pred_cam: torch.Tensor, gt_cam: torch.Tensor, annotated: torch.Tensor) -> float:
    """Root-relative EPE (mm) of one sample, as :class:`~internet_plus.metrics.PoseErrorMetrics` scores it."""
    from internet_plus.metrics.pose import root_relative, root_relative_mask

    pred = root_relative(pred_cam[None].double())
    gt = root_relative(gt_cam[None].to(pred))
    valid = root_relative_mask(annotated[None].to(pred.device))
    errors = torch.linalg.vector_norm(pred - gt, dim=-1)[valid]
    return float(errors.mean()) if errors.numel() else float("nan")


def _pck_plot(thresholds: tuple[float, ...], curve: list[float], epoch: int, prefix: str = "val") -> Any:
    """A W&B line plot of PCK against the threshold in millimetres (``prefix``: ``val`` or ``monitor``)."""
    import wandb

    table = wandb.Table(columns=["threshold_mm", "pck"], data=[[t, p] for t, p in zip(thresholds, curve, strict=True)])
    pairs = zip(thresholds, thresholds[1:], curve, curve[1:], strict=False)
    area = sum((b - a) * (p + q) / 2.0 for a, b, p, q in pairs)
    auc = area / (thresholds[-1] - thresholds[0])
    split = "validation" if prefix == "val" else "evaluation split (monitor)"
    title = f"3D PCK, {split} epoch {epoch} (AUC {thresholds[0]:g}-{thresholds[-1]:g} mm: {auc:.3f})"
    return wandb.plot.line(table, "threshold_mm", "pck", title=title)
