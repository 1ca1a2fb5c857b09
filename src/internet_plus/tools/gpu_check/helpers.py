"""The GPU check's measuring helpers: errors, loss trends, AMP skipped steps, the Lightning module, trainer and
data it trains, quiet logs."""

from __future__ import annotations

import contextlib
import math
import os
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as L
import torch

from internet_plus.tools.benchmark import (
    build_model,
)
from internet_plus.tools.gpu_check.settings import Settings


# ---------------------------------------------------------------------------------------------------- helpers
def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_peak_memory_mib(step: Any, device: torch.device) -> float | None:
    """The memory one more call of ``step`` allocates at its peak beyond what is held before it
    (``torch.cuda.max_memory_allocated``), in MiB; ``None`` off CUDA."""
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    _sync()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def _accelerator(settings: Settings) -> str:
    return "gpu" if settings.device == "cuda" else "cpu"


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖₂ / ‖b‖₂ in float64 (0 when both are zero)."""
    a, b = a.double(), b.double()
    denom = float(b.norm())
    return float((a - b).norm()) / denom if denom > 0 else float((a - b).norm())


def output_errors(test: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, float]:
    """Relative L2 error of each network output (heatmaps, root depth, hand logits) against the reference."""
    return {k: relative_error(test[k].float(), ref[k].float()) for k in ("heatmaps", "root_bins", "hand_logits")}


def loss_trend(losses: list[float], window: int = 5) -> dict[str, Any]:
    """First/last-window means of a loss curve, whether every value is finite and whether it fell."""
    window = max(1, min(window, len(losses) // 2))
    first = statistics.fmean(losses[:window]) if losses else math.nan
    last = statistics.fmean(losses[-window:]) if losses else math.nan
    finite = bool(losses) and all(math.isfinite(v) for v in losses)
    return {"first_mean": first, "last_mean": last, "finite": finite, "falling": finite and last < first}


def skipped_steps(scales: list[tuple[float, float]]) -> list[int]:
    """Steps the GradScaler skipped: those after which the scale went down (it halves on inf/NaN gradients)."""
    return [i for i, (before, after) in enumerate(scales) if after < before]


def max_consecutive(steps: list[int]) -> int:
    """Length of the longest run of consecutive step numbers (``[2, 3, 12]`` → 2)."""
    longest = run = 0
    previous = None
    for step in steps:
        run = run + 1 if previous is not None and step == previous + 1 else 1
        longest = max(longest, run)
        previous = step
    return longest


def device_slug(name: str) -> str:
    """``NVIDIA H200`` → ``nvidia_h200`` (the folder name of a device's figures)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "device"


def free_path(path: Path) -> Path:
    """``path`` when it does not exist, else ``stem-2.suffix``, ``stem-3.suffix``, …: reports are never overwritten."""
    candidate, k = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        k += 1
    return candidate


class StepRecorder(L.Callback):
    """Per optimiser step: the loss, the wall time (device synchronised), the data wait before it and the AMP scale.

    The data wait of a step is the time from the previous step's end (after a device synchronisation, so that the
    GPU is idle from then on) to this step's start: the loader's ``next()``, the host-to-device copy and Lightning's
    bookkeeping, during which the GPU has nothing to do.
    """

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.step_s: list[float] = []
        self.wait_s: list[float] = []
        self.scales: list[tuple[float, float]] = []
        self._end: float | None = None
        self._start = 0.0
        self._scale = 0.0

    @staticmethod
    def _scaler(trainer: L.Trainer) -> Any:
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        return scaler if scaler is not None and scaler.is_enabled() else None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:  # noqa: D102
        now = time.perf_counter()
        if self._end is not None:
            self.wait_s.append(now - self._end)
        self._start = now
        scaler = self._scaler(trainer)
        self._scale = float(scaler.get_scale()) if scaler is not None else 0.0

    def on_train_batch_end(  # noqa: D102
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss.detach()))  # synchronises the device
        _sync()
        self._end = time.perf_counter()
        self.step_s.append(self._end - self._start)
        scaler = self._scaler(trainer)
        if scaler is not None:
            self.scales.append((self._scale, float(scaler.get_scale())))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        self._end = None  # the gap across an epoch boundary includes the loader's restart: not a steady-state wait


class SyncBatchNormProbe(L.Callback):
    """Counts ``SyncBatchNorm`` and plain ``BatchNorm`` modules once training starts (after Lightning's conversion)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        sync = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in pl_module.modules())
        plain = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in pl_module.modules()) - sync
        self.counts = {"sync_batchnorm": sync, "plain_batchnorm": plain}


def make_module(backbone: str, input_size: int, channels_last: bool = False, lr: float = 1e-3) -> L.LightningModule:
    """The full model as ``train.py`` builds it, with fused AdamW (``+model.optimizer.fused=true``; no schedule)."""
    model = build_model(backbone, input_size, channels_last)
    model.optimizer_cfg = {"_target_": "torch.optim.AdamW", "lr": lr, "weight_decay": 1e-2, "fused": True}
    return model


def make_trainer(settings: Settings, precision: str, callbacks: list[L.Callback], **kwargs: Any) -> L.Trainer:
    options: dict[str, Any] = {
        "accelerator": _accelerator(settings),
        "devices": 1,
        "precision": precision,
        "max_steps": settings.steps,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "benchmark": settings.device == "cuda",
        "callbacks": callbacks,
    }
    options.update(kwargs)
    return L.Trainer(**options)


def synthetic_datamodule(root: Path, settings: Settings, num_train: int, augment: bool, workers: int | str) -> Any:
    from internet_plus.data.synthetic.datamodule import SyntheticDataModule

    return SyntheticDataModule(
        root=str(root),
        num_train=num_train,
        num_eval=max(8, settings.batch_size),
        generator_workers=os.cpu_count() or 1,
        batch_size=settings.batch_size,
        num_workers=workers,
        input_size=settings.input_size,
        augmentation={"enabled": augment},
        val_fraction=0.0,
        seed=0,
    )


def shared_datamodule(settings: Settings, data_dir: Path, augment: bool) -> Any:
    """The synthetic set at ``data_dir/matrix`` that the training matrix, the DDP child and ``train.py`` all read
    (the same generator settings, so the set is written once), with up to 4 loader workers."""
    workers = min(4, os.cpu_count() or 1)
    return synthetic_datamodule(data_dir / "matrix", settings, settings.train_samples, augment, workers)


def calibrated_internet_plus(settings: Settings) -> tuple[torch.nn.Module, dict[int, torch.Tensor]]:
    """InterNet+ on the check's device in eval mode, its BatchNorm statistics calibrated on the largest batch (with the
    initial ones its features vanish and float16 would compare zeros), and random images at the smallest and the
    largest inference batch."""
    from internet_plus.models.inference import calibrate_batchnorm

    device = torch.device(settings.device)
    torch.manual_seed(0)
    model = build_model("internet_plus", settings.input_size).to(device)
    g = torch.Generator().manual_seed(0)
    batches = sorted({min(settings.inference_batches), max(settings.inference_batches)})
    size = settings.input_size
    inputs = {bs: torch.rand(bs, 3, size, size, generator=g).to(device) for bs in batches}
    calibrate_batchnorm(model, inputs[batches[-1]])
    return model.eval(), inputs


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's per-fit banners (GPU available, LOCAL_RANK, …) once per fit are noise in a 20-fit check."""
    import logging

    names = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
