"""The LightningModule: InterNet's pipeline (paper §3, Figure 1) with a pluggable feature extractor (paper §4).

``HandPoseModule`` composes

* ``backbone`` — the feature extractor (ResNet-50 for InterNet, the Table 1 network for InterNet+),
* ``posenet`` — InterNet's head (two 3-D heatmap branches, root-depth and hand-type MLPs),
* a :class:`~internet_plus.models.codec.HeatmapCodec` (targets and decoding) and InterNet's three losses,
* torchmetrics metrics for validation and test (``epe_mm``, ``epe_median_mm``, ``pck_curve``, ``auc_20_50``, their
  hand3d counterparts ``pck_curve_hand3d``, ``auc_20_50_hand3d``, ``epe_median_mm_hand3d``, and ``handedness_acc``)
  and a mean-training-pose baseline (``epe_mean_pose_mm``) that says whether a model learned;
  when the test data module declares the ``"interhand"`` protocol (``HandPoseDataModule.protocol``), InterNet's
  InterHand2.6M metrics too (``mpjpe_single_mm``, ``mpjpe_interacting_mm``, ``mpjpe_all_mm``, ``mrrpe_mm``, with
  InterNet's MRRPE wrist placement), created in :meth:`HandPoseModule.setup` only then: their states are sums
  reduced across processes and are not saved, so checkpoints are the same for every data set.

Every constructor argument is a plain value (a dict of numbers and strings, as Hydra composes it), so checkpoints
load with PyTorch's safe ``weights_only`` loading; the modules are built from those dicts here
(``docs/reference/design_notes.md`` §5.6). The optimiser and scheduler are Hydra ``_target_`` dicts: AdamW with
cosine annealing and warm restarts (T_0 = 2, T_mult = 3, paper §4.3) by default, InterNet's Adam + step decay as an
option (``conf/optimizer``).
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
import pytorch_lightning as L
import torch

from internet_plus.finite_loss import NonFiniteLossWatch
from internet_plus.joints import NUM_JOINTS
from internet_plus.metrics import HandednessAccuracy, PoseErrorMetrics
from internet_plus.metrics.interhand import InterHandMetrics, internet_mrrpe_roots
from internet_plus.metrics.pose import root_relative
from internet_plus.models.backbones import build_backbone
from internet_plus.models.codec import HeatmapCodec
from internet_plus.models.losses import InterNetLoss
from internet_plus.models.posenet import PoseNet
from internet_plus.optim import with_fused_default
from internet_plus.resolvers import BACKBONE_STRIDE, heatmap_size

#: ImageNet statistics, for ``input_norm: imagenet`` (InterNet itself feeds RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SCALAR_METRICS = ("epe_mm", "epe_median_mm", "auc_20_50", "auc_20_50_hand3d", "epe_median_mm_hand3d")
#: The list-valued ones (PCK curves), kept in the results (metrics.json) but not logged.
CURVE_METRICS = ("pck_curve", "pck_curve_hand3d")

#: The checkpoint key of the run's resolved ``data`` config node (plain values; see ``HandPoseModule.data_config``).
log = logging.getLogger(__name__)

DATA_CONFIG_KEY = "data_config"


class HandPoseModule(L.LightningModule):
    """Backbone + PoseNet, trained with InterNet's losses and evaluated in millimetres.

    Args:
        backbone: the ``model.backbone`` config node: ``_target_`` (a class of the ``conf/backbone`` group) plus its
            constructor fields.
        posenet: PoseNet fields (``in_channels`` is taken from the backbone when null).
        codec: :class:`HeatmapCodec` fields (input size, heatmap size, σ, depth ranges).
        loss: :class:`InterNetLoss` fields (``weights``, ``dense_heatmap``).
        optimizer: a Hydra ``_target_`` node of a ``torch.optim`` optimiser, called with the parameters.
        scheduler: a Hydra ``_target_`` node of an LR scheduler (called with the optimiser) or null, plus ``interval``.
        input_norm: ``none`` (InterNet: RGB in [0, 1]) or ``imagenet`` (mean/std normalisation).
        channels_last: run the network in channels-last memory format.
    """

    def __init__(
        self,
        backbone: dict[str, Any],
        posenet: dict[str, Any] | None = None,
        codec: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        input_norm: str = "none",
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if input_norm not in ("none", "imagenet"):
            raise ValueError(f"model.input_norm must be 'none' or 'imagenet', got {input_norm!r}")
        self.backbone = build_backbone(backbone)
        posenet_fields = dict(posenet or {})
        if posenet_fields.get("in_channels") is None:
            posenet_fields["in_channels"] = self.backbone.out_channels
        self.posenet = PoseNet(**posenet_fields)
        self.codec = HeatmapCodec(**(codec or {}))
        self._check_geometry()
        self.criterion = InterNetLoss(self.codec, **(loss or {}))
        self.optimizer_cfg = optimizer or {"_target_": "torch.optim.AdamW", "lr": 1e-4}
        self.scheduler_cfg = scheduler
        self.input_norm = input_norm
        self.channels_last = channels_last
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        # Mean root-relative training pose (42×3 mm, saved in checkpoints): the "did it learn?" baseline. The sums
        # are accumulated per rank during an epoch and reduced over ranks at its end.
        self.register_buffer("mean_pose", torch.zeros(NUM_JOINTS, 3))
        self.register_buffer("_pose_sum", torch.zeros(NUM_JOINTS, 3, dtype=torch.float64), persistent=False)
        self.register_buffer("_pose_count", torch.zeros(NUM_JOINTS, dtype=torch.float64), persistent=False)
        self.val_pose = PoseErrorMetrics()
        self.val_hand = HandednessAccuracy()
        self.monitor_pose = PoseErrorMetrics()  # the evaluation split scored every epoch (data.monitor_eval_split)
        self.monitor_hand = HandednessAccuracy()
        self.test_pose = PoseErrorMetrics()
        self.test_hand = HandednessAccuracy()
        self.test_mean_pose = PoseErrorMetrics()
        # InterHand2.6M's metrics, created by setup() when the data module's protocol asks for them.
        self.test_interhand: InterHandMetrics | None = None
        self.test_results: dict[str, float | list[float]] = {}
        # The first non-finite training loss, kept on the device and read at logging steps and checkpoint saves.
        self.loss_watch = NonFiniteLossWatch()
        # The resolved ``data`` config node of the run (plain values), set by the train task and saved with every
        # checkpoint under ``data_config``: ``eval.py ckpt_path=<file>`` alone evaluates on the run's own test set.
        # Not a hyperparameter: the model does not depend on it, and resuming on other data stays allowed.
        self.data_config: dict[str, Any] | None = None
        # One input image: Lightning's model summary counts the FLOPs with it (instead of printing 0).
        self.example_input_array = torch.zeros(1, 3, self.codec.input_size, self.codec.input_size)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def _check_geometry(self) -> None:
        """Fail at construction when the head's output and the codec's heatmap disagree (not hours later)."""
        c = self.codec
        if c.input_size % BACKBONE_STRIDE:
            raise ValueError(
                f"model.codec.input_size={c.input_size} must be a multiple of {BACKBONE_STRIDE} (the backbone's stride)"
            )
        side = heatmap_size(c.input_size, self.posenet.num_deconv)
        if side != c.heatmap_size:
            raise ValueError(
                f"the head produces {side}×{side} heatmaps for {c.input_size}-pixel inputs but model.codec."
                f"heatmap_size={c.heatmap_size}; set heatmap_size to input_size / 32 · 2^num_deconv"
            )
        if self.posenet.depth_bins != c.depth_bins or self.posenet.root_depth_bins != c.root_depth_bins:
            raise ValueError(
                f"model.posenet depth bins ({self.posenet.depth_bins}, root {self.posenet.root_depth_bins}) differ "
                f"from model.codec ({c.depth_bins}, root {c.root_depth_bins})"
            )

    def setup(self, stage: str) -> None:
        """Create the evaluation protocol's extra metrics: InterHand2.6M's when the data module's ``protocol`` is
        ``"interhand"`` (a registered submodule, so it follows the module's device; its states are not persistent)."""
        trainer = self._trainer
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        protocol = getattr(datamodule, "protocol", "rhd")
        if protocol == "interhand" and self.test_interhand is None:
            self.test_interhand = InterHandMetrics()

    # ------------------------------------------------------------------------------------------------ forward
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Apply the configured input normalisation to RGB images in [0, 1]."""
        if self.input_norm == "imagenet":
            images = (images - self.image_mean) / self.image_std
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images B×3×S×S in [0, 1] -> PoseNet outputs (heatmaps, root_logits, root_bins, hand_logits)."""
        return self.posenet(self.backbone(self.normalize(images)))

    # ------------------------------------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:  # noqa: D102
        outputs = self(batch["image"])
        losses = self.criterion(outputs, batch)
        bsz = batch["image"].shape[0]
        for name, value in losses.items():
            # The step value is this process's own (no communication in the step); the epoch mean is averaged over
            # the processes once, at the epoch's end (sync_dist applies to it alone). Neither is a progress-bar
            # value: Lightning reads those on the host after every step (see on_train_batch_end).
            self.log(f"train/{name}_step", value, on_step=True, on_epoch=False, batch_size=bsz)
            self.log(f"train/{name}_epoch", value, on_step=False, on_epoch=True, batch_size=bsz, sync_dist=True)
        self.loss_watch.update(losses, self.global_step, self.current_epoch, batch_idx)  # checked when read
        self._accumulate_mean_pose(batch)
        return losses["loss"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """At Lightning's logging steps (every ``trainer.log_every_n_steps``) and the first step of each epoch: raise
        on a non-finite loss since the last check (:mod:`internet_plus.finite_loss`), and show this step's loss on the
        progress bar. The bar's value is a host copy, so that Lightning's reading of progress-bar values after every
        step reads host memory; the other steps read nothing from the device."""
        every = self.trainer.log_every_n_steps if self._trainer is not None else 1
        if batch_idx != 0 and self.global_step % max(every, 1):  # global_step counts this step already
            return
        self.loss_watch.raise_if_seen(self.global_step - 1)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            host_copy = loss.detach().to("cpu", copy=True)
            self.log("loss", host_copy, prog_bar=True, logger=False, on_step=True, on_epoch=False)

    def on_train_end(self) -> None:  # noqa: D102
        self.loss_watch.raise_if_seen(self.global_step - 1)

    @torch.no_grad()
    def _accumulate_mean_pose(self, batch: dict[str, torch.Tensor]) -> None:
        rel = root_relative(batch["joints_cam"]).double()
        valid = batch["joint_annotated"].double()
        self._pose_sum += (rel * valid[..., None]).sum(0)
        self._pose_count += valid.sum(0)

    def on_train_epoch_start(self) -> None:  # noqa: D102
        self._pose_sum.zero_()
        self._pose_count.zero_()

    def on_train_epoch_end(self) -> None:  # noqa: D102
        total = self.trainer.strategy.reduce(self._pose_sum.clone(), reduce_op="sum")
        count = self.trainer.strategy.reduce(self._pose_count.clone(), reduce_op="sum")
        if count.sum() > 0:
            self.mean_pose.copy_((total / count.clamp(min=1)[:, None]).float())

    # ------------------------------------------------------------------------------------------------ evaluation
    def predict_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Decoded predictions for a batch: joints in input pixels and camera millimetres, root depth, hand type."""
        return self.codec.decode(self(batch["image"]), batch)

    def _val_prefix(self, dataloader_idx: int) -> str:
        """``val`` (the hold-out that selects ``best.ckpt``) or ``monitor`` (the evaluation split, logged only), as
        the data module lists its validation loaders (``val_prefixes``)."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        prefixes = getattr(datamodule, "val_prefixes", None) or ["val"]
        return prefixes[dataloader_idx]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:  # noqa: D102
        prefix = self._val_prefix(dataloader_idx)
        pose, hand = (self.val_pose, self.val_hand) if prefix == "val" else (self.monitor_pose, self.monitor_hand)
        self._evaluate(batch, pose, hand, prefix)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:  # noqa: D102
        pred = self._evaluate(batch, self.test_pose, self.test_hand, "test")
        baseline = self.mean_pose.to(batch["joints_cam"])[None].expand_as(batch["joints_cam"])
        self.test_mean_pose.update(baseline, batch["joints_cam"], batch["joint_annotated"])
        if self.test_interhand is not None:
            roots = internet_mrrpe_roots(
                pred["joints_img"],
                pred["rel_root_depth_mm"],
                batch["inv_trans"],
                batch["abs_root_depth"],
                batch["focal"],
                batch["princpt"],
            )
            self.test_interhand.update(
                pred["joints_cam"],
                batch["joints_cam"],
                batch["joint_annotated"],
                batch["hand_type"],
                pred["hand_prob"],
                batch["hand_type_valid"],
                pred_roots=roots,
            )

    def _evaluate(
        self, batch: dict[str, torch.Tensor], pose: PoseErrorMetrics, hand: HandednessAccuracy, split: str
    ) -> dict[str, torch.Tensor]:
        outputs = self(batch["image"])
        losses = self.criterion(outputs, batch)
        self.log(
            f"{split}/loss",
            losses["loss"],
            sync_dist=True,
            batch_size=batch["image"].shape[0],
            add_dataloader_idx=False,
        )
        pred = self.codec.decode(outputs, batch)
        pose.update(pred["joints_cam"], batch["joints_cam"], batch["joint_annotated"])
        hand.update(pred["hand_prob"], batch["hand_type"], batch["hand_type_valid"])
        return pred

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        for prefix in getattr(getattr(self._trainer, "datamodule", None), "val_prefixes", None) or ["val"]:
            pose, hand = (self.val_pose, self.val_hand) if prefix == "val" else (self.monitor_pose, self.monitor_hand)
            self._log_epoch_metrics(pose, hand, prefix)

    def on_test_epoch_end(self) -> None:  # noqa: D102
        results = self._log_epoch_metrics(self.test_pose, self.test_hand, "test")
        baseline = self.test_mean_pose.compute()
        self.test_mean_pose.reset()
        results["test/epe_mean_pose_mm"] = float(baseline["epe_mm"])
        self.log("test/epe_mean_pose_mm", baseline["epe_mm"], sync_dist=True)
        if self.test_interhand is not None:
            scored = self.test_interhand.scored()
            values = self.test_interhand.compute()  # synchronised across processes (the states are sums)
            self.test_interhand.reset()
            for name, value in values.items():
                key = f"test/{name}"
                if key in results:  # handedness_acc: the same definition (internet §5.3), logged above
                    continue
                if not scored[name]:  # e.g. a single-hand test subset: no interacting hands, no MRRPE
                    log.info("%s not reported: the test set has no sample it scores", key)
                    continue
                self.log(key, value, sync_dist=True)
                results[key] = float(value)
        # data.on_bad_sample=skip: how many evaluation samples the data module left out at setup (sample_checks).
        skipped = getattr(getattr(self.trainer, "datamodule", None), "skipped_test_samples", None)
        if skipped is not None:
            results["test/skipped_samples"] = float(skipped)
        self.test_results = results

    def _log_epoch_metrics(self, pose: PoseErrorMetrics, hand: HandednessAccuracy, split: str) -> dict[str, Any]:
        # The torchmetrics values are already reduced over all processes, so every process holds the same number;
        # logging them with sync_dist=True (a mean of equal values) is exact and is how Lightning expects epoch-level
        # values to be logged under DDP.
        values = pose.compute()
        hand_acc = hand.compute()
        pose.reset()
        hand.reset()
        results: dict[str, Any] = {}
        for name in SCALAR_METRICS:
            self.log(f"{split}/{name}", values[name], prog_bar=name == "epe_mm", sync_dist=True)
            results[f"{split}/{name}"] = float(values[name])
        self.log(f"{split}/handedness_acc", hand_acc, sync_dist=True)
        results[f"{split}/handedness_acc"] = float(hand_acc)
        for name in CURVE_METRICS:
            results[f"{split}/{name}"] = [float(v) for v in values[name]]
        return results

    # ------------------------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        self.loss_watch.raise_if_seen(self.global_step - 1)  # no checkpoint of a run that met a non-finite loss
        if self.data_config is not None:
            checkpoint[DATA_CONFIG_KEY] = self.data_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        self.data_config = checkpoint.get(DATA_CONFIG_KEY)

    # ------------------------------------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> Any:  # noqa: D102
        clipping = self._trainer is not None and self.trainer.gradient_clip_val is not None
        devices = {p.device.type for p in self.parameters()}
        optimizer_cfg = with_fused_default(self.optimizer_cfg, devices, gradient_clipping=clipping)  # optim.py
        optimizer = hydra.utils.instantiate(optimizer_cfg, params=self.parameters(), _convert_="all")
        if not self.scheduler_cfg:
            return optimizer
        cfg = dict(self.scheduler_cfg)
        interval = cfg.pop("interval", "epoch")
        scheduler = hydra.utils.instantiate(cfg, optimizer=optimizer, _convert_="all")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval, "name": "lr"}}


__all__ = ["DATA_CONFIG_KEY", "HandPoseModule"]
