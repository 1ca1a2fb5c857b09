"""GPU readiness in one command: the mixed-precision and DDP training paths exercised, the paper's Tables 3 and 4
measured on the GPU, and whether the input pipeline keeps the GPU fed.

    python -m internet_plus.tools.gpu_check [--out DIR] [--budget-s 600] [--sections a,b] [--dry-run]
    make gpu-check [OUT=DIR] [ARGS="--sections inference,data_wait"]

Sections, in the order they run (each one's time is recorded; a section that would start after ``--budget-s`` is
recorded as skipped, never silently dropped):

1. ``training_matrix`` — every backbone of the registry (``conf/backbone/*.yaml``) × ``32-true`` / ``16-mixed`` /
   ``bf16-mixed`` (and channels-last on for InterNet+ and InterNet under ``16-mixed``): 30 optimiser steps of the
   real ``Trainer.fit`` path (``HandPoseModule`` with AdamW in its fused implementation, the synthetic
   ``SyntheticDataModule`` at 256 px, augmentation off, so that the loss of a fixed set must fall). Checks: every
   loss finite; the mean of the last five losses below the mean of the first five; under ``16-mixed`` the
   ``GradScaler`` skips at most ``MAX_SKIPPED_STEPS`` steps and fewer than ``MAX_SKIP_RUN`` in a row (no overflow
   loop).
2. ``loss_parity`` — the lean heatmap loss (``lean_heatmap_mse``, custom backward) against the dense one
   (``dense_heatmap_mse``) on heatmaps produced under float16 and bfloat16 autocast: value and gradient within
   ``LOSS_RTOL`` (both evaluate in float32 from the same 16-bit heatmaps, so only summation order differs).
3. ``ddp`` — in a child process: ``strategy=ddp`` on one device with ``sync_batchnorm`` (every ``BatchNorm`` must
   have become ``SyncBatchNorm``), the DataModule's per-process batch and evaluation sharding, fit + test with
   finite metrics; then ``train.py trainer=ddp`` itself (``trainer.devices=1`` on a one-GPU machine, the real 2 on a
   machine with two or more GPUs) with ``metrics.json`` checked.
4. ``inference`` — per backbone, eager inference at batch 1, 8, 32 in float32 (cuDNN's TF32 as PyTorch defaults),
   float16 and bfloat16 autocast; ``optimize_for_inference`` against eager (same precision); ``torch.compile`` of
   that copy for InterNet+ and InterNet (float16 at every batch size, bfloat16 at the largest). Parity is the
   relative L2 error of the heatmaps, root depth and hand logits within ``PARITY_RTOL[precision]``; the untrained
   models' BatchNorm statistics are first calibrated on the input (``calibrate_batchnorm``), since in eval mode with
   the initial statistics InterNet+'s features vanish and float16 would compare zeros.
5. ``training_speed`` — Table 3: per backbone, parameters, MiB, s/iteration at the paper's batch (16 per GPU) for
   each precision (warm-up, median), ``torch.cuda.max_memory_allocated`` over a step.
6. ``data_wait`` — 200 training steps of InterNet+ under ``16-mixed`` with the real DataModules (RHD-format PNGs from
   the synthetic generator, InterHand2.6M-format JPEGs), augmentation on, at ``num_workers=auto`` and at one worker
   per core but one; the data wait is the time the training loop waits between steps (the GPU synchronised at each
   step's end) over the whole time, steps after the first ten. Also each format's per-core pipeline rate.

The InterNet+/InterNet ratios are put beside the paper's (Table 4 throughput 0.875 at batch 1 and 1.152 at batch 32;
Table 3 0.58 vs 0.61 s/iteration) and the goals (≥ 1.35 inference at batch 32, ≥ 1.3 training, data wait ≤ 5 %).
Outputs: ``gpu_check.json`` (everything) and ``gpu_check.md`` (the tables) in ``--out``, by default
``experiments/performance/gpu_<device>/``; an existing report there is never overwritten (a new name is used).

On a machine without CUDA the command says so and runs ``--dry-run``: every section on the CPU at tiny sizes
(64 px, 2 backbones, a few steps; ``16-mixed`` and ``torch.compile`` are skipped), so that its own logic is checked
(CI runs it through the tests). It exits 0 when every check passed, 1 otherwise; the dry run produces no GPU figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as L
import torch

from internet_plus.accel import accelerate_inference
from internet_plus.models.backbones.registry import backbone_names
from internet_plus.models.inference import calibrate_batchnorm, optimize_for_inference
from internet_plus.models.summary import count_parameters, mebibytes
from internet_plus.tools.benchmark import (
    LABELS,
    PAPER_TABLES_3_4,
    autocast,
    build_model,
    paper_ratios,
    synthetic_batch,
    training_step_fn,
)
from internet_plus.tools.timing import cpu_name, timed_runs

ROOT = Path(__file__).resolve().parents[3]  # the repository (train.py, experiments/)
#: The models the paper measured (InterNet+ and InterNet); the full check runs every member of the backbone registry.
PAPER_MODELS = tuple(PAPER_TABLES_3_4["rows"])
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
AUTOCAST = {"32-true": None, "16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}

#: At most this many optimiser steps may be skipped by the GradScaler (inf/NaN gradients) in a 16-mixed run, and
#: fewer than ``MAX_SKIP_RUN`` in a row. The scale starts at 2^16, halves at each overflow and grows back only after
#: 2,000 clean steps, so a few isolated skips while it settles are normal; an overflow loop skips step after step.
MAX_SKIPPED_STEPS = 8
MAX_SKIP_RUN = 3
#: Lean vs dense heatmap loss: relative difference of the value and of the gradient (float32 sums in another order).
LOSS_RTOL = 1e-4
#: Inference copy vs eager, relative L2 error of each output. float32 eager convolutions use TF32 on cuDNN (PyTorch's
#: default), and folding BN changes the rounding: 1e-2. float16 keeps 11 significant bits, bfloat16 8.
PARITY_RTOL = {"float32": 1e-2, "float16": 2e-2, "bfloat16": 8e-2}
#: The GPU goals (measured here, not by tests).
GOALS = {"inference_ratio_b32": 1.35, "training_ratio": 1.3, "data_wait_fraction": 0.05}
SECTIONS = ("training_matrix", "loss_parity", "ddp", "inference", "training_speed", "data_wait")


# ---------------------------------------------------------------------------------------------------- settings
@dataclass
class Settings:
    """Sizes of one run: the full check on a GPU or the tiny CPU dry run."""

    device: str
    input_size: int = 256
    batch_size: int = 16  # InterNet: 16 samples per GPU
    steps: int = 30
    train_samples: int = 64
    backbones: tuple[str, ...] = field(default_factory=lambda: tuple(backbone_names()))
    precisions: tuple[str, ...] = PRECISIONS
    channels_last_models: tuple[str, ...] = PAPER_MODELS
    inference_batches: tuple[int, ...] = (1, 8, 32)
    warmup: int = 3
    repeats: int = 10
    compile: bool = True
    data_wait_steps: int = 200
    data_wait_samples: int = 512
    pipeline_samples: int = 200
    ddp_steps: int = 10
    budget_s: float = 600.0
    dry_run: bool = False
    workers: list[int] = field(default_factory=list)

    @classmethod
    def dry(cls) -> Settings:
        return cls(
            device="cpu",
            input_size=64,
            batch_size=4,
            steps=6,
            train_samples=8,
            backbones=PAPER_MODELS,
            precisions=("32-true",),  # 16-bit autocast on a CPU is slow and not what this checks
            channels_last_models=("internet_plus",),
            inference_batches=(1, 2),
            warmup=1,
            repeats=2,
            compile=False,
            data_wait_steps=8,
            data_wait_samples=16,
            pipeline_samples=8,
            ddp_steps=2,
            budget_s=600.0,
            dry_run=True,
        )


class Budget:
    """Wall-clock budget: sections that would start after it are recorded as skipped."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed


class Report:
    """Collects sections and named checks; ``failed`` lists the checks that did not pass."""

    def __init__(self) -> None:
        self.sections: dict[str, dict[str, Any]] = {}
        self.checks: list[dict[str, Any]] = []

    def check(self, section: str, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append({"section": section, "name": name, "passed": bool(passed), "detail": detail})
        return bool(passed)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["passed"]]

    def run(self, name: str, budget: Budget, fn: Callable[[], dict[str, Any]], min_left_s: float = 0.0) -> None:
        """Run one section, recording its time, its result or its error (a failed check), or why it was skipped."""
        if budget.left() < min_left_s:
            self.sections[name] = {"status": "skipped", "reason": f"time budget ({budget.seconds:.0f} s) spent"}
            print(f"[{name}] skipped: time budget spent", flush=True)
            return
        print(f"[{name}] started at {budget.elapsed:.0f} s", flush=True)
        start = time.perf_counter()
        try:
            result = fn()
            status = "ok"
        except Exception as exc:  # a section's failure is a failed check; the other sections still run
            result = {"error": f"{type(exc).__name__}: {exc}"}
            status = "error"
            self.check(name, "section ran", False, result["error"])
            print(f"[{name}] error: {result['error']}", flush=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.sections[name] = {"status": status, "seconds": time.perf_counter() - start, **result}
        print(f"[{name}] {status} in {self.sections[name]['seconds']:.1f} s", flush=True)


# ---------------------------------------------------------------------------------------------------- helpers
def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


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


# ---------------------------------------------------------------------------------------------------- sections
def training_matrix(settings: Settings, report: Report, data_dir: Path, budget: Budget) -> dict[str, Any]:
    """Section 1 (module docstring)."""
    runs: list[dict[str, Any]] = []
    combos = [(b, p, False) for b in settings.backbones for p in settings.precisions]
    amp = "16-mixed" if "16-mixed" in settings.precisions else settings.precisions[-1]
    combos += [(b, amp, True) for b in settings.channels_last_models]
    root = data_dir / "matrix"
    workers = min(4, os.cpu_count() or 1)
    for backbone, precision, channels_last in combos:
        name = f"{backbone} {precision}{' channels-last' if channels_last else ''}"
        if budget.left() < 0:
            runs.append({"backbone": backbone, "precision": precision, "channels_last": channels_last, "skipped": True})
            report.check("training_matrix", name, False, "not run: time budget spent")
            continue
        torch.manual_seed(0)
        model = make_module(backbone, settings.input_size, channels_last)
        recorder = StepRecorder()
        datamodule = synthetic_datamodule(root, settings, settings.train_samples, augment=False, workers=workers)
        with quiet_lightning():
            trainer = make_trainer(settings, precision, [recorder])
            trainer.fit(model, datamodule=datamodule)
        trend = loss_trend(recorder.losses)
        skips = skipped_steps(recorder.scales)
        longest_run = max_consecutive(skips)
        run = {
            "backbone": backbone,
            "precision": precision,
            "channels_last": channels_last,
            "steps": len(recorder.losses),
            "losses": recorder.losses,
            **trend,
            "ms_per_step_median": 1e3 * statistics.median(recorder.step_s[len(recorder.step_s) // 3 :]),
            "amp_skipped_steps": skips,
            "amp_final_scale": recorder.scales[-1][1] if recorder.scales else None,
            "optimizer": type(trainer.optimizers[0]).__name__,
            "fused": bool(trainer.optimizers[0].defaults.get("fused")),
        }
        runs.append(run)
        ok = trend["finite"] and trend["falling"] and len(skips) <= MAX_SKIPPED_STEPS and longest_run < MAX_SKIP_RUN
        report.check(
            "training_matrix",
            name,
            ok,
            f"loss {trend['first_mean']:.4g} -> {trend['last_mean']:.4g}, finite {trend['finite']}, "
            f"AMP skipped steps {skips}",
        )
        print(f"  {name}: loss {trend['first_mean']:.4g} -> {trend['last_mean']:.4g}, skips {skips}", flush=True)
        del model, trainer
    return {"runs": runs}


def loss_parity(settings: Settings, report: Report) -> dict[str, Any]:
    """Section 2: lean vs dense heatmap loss (value and gradient) on 16-bit autocast heatmaps."""
    from internet_plus.models.losses import InterNetLoss

    device = torch.device(settings.device)
    torch.manual_seed(0)
    model = build_model("internet_plus", settings.input_size).to(device).train()
    batch = synthetic_batch(settings.batch_size, settings.input_size, device)
    lean = InterNetLoss(model.codec, dense_heatmap=False)
    dense = InterNetLoss(model.codec, dense_heatmap=True)
    results = {}
    dtypes = (
        {"float16": torch.float16, "bfloat16": torch.bfloat16}
        if device.type == "cuda"
        else {"bfloat16": torch.bfloat16}
    )
    for name, dtype in dtypes.items():
        with autocast(device, dtype):
            heatmaps = model(batch["image"])["heatmaps"].detach()
        values, grads = [], []
        for criterion in (lean, dense):
            h = heatmaps.clone().requires_grad_(True)
            with autocast(device, dtype):
                value = criterion.heatmap_loss(h, batch["joints_img"], batch["joint_valid"])
            value.backward()
            values.append(value.detach().double())
            grads.append(h.grad.detach())
        value_err = float((values[0] - values[1]).abs() / values[1].abs().clamp_min(1e-30))
        grad_err = relative_error(grads[0], grads[1])
        results[name] = {
            "heatmap_dtype": str(heatmaps.dtype),
            "lean": float(values[0]),
            "dense": float(values[1]),
            "value_rel_err": value_err,
            "grad_rel_err": grad_err,
            "grad_dtype": str(grads[0].dtype),
        }
        report.check(
            "loss_parity",
            f"lean == dense under {name} autocast",
            value_err <= LOSS_RTOL and grad_err <= LOSS_RTOL,
            f"value {value_err:.2e}, gradient {grad_err:.2e} (tolerance {LOSS_RTOL:g})",
        )
    return {"tolerance": LOSS_RTOL, "results": results}


def ddp_child(settings: Settings, data_dir: Path) -> dict[str, Any]:
    """Runs in a child process: ``strategy=ddp`` on one device with synchronized BN, fit + test (section 3)."""
    probe = SyncBatchNormProbe()
    recorder = StepRecorder()
    torch.manual_seed(0)
    model = make_module("internet_plus", settings.input_size)
    datamodule = synthetic_datamodule(
        data_dir / "matrix", settings, settings.train_samples, augment=True, workers=min(4, os.cpu_count() or 1)
    )
    precision = "16-mixed" if settings.device == "cuda" else "32-true"
    trainer = make_trainer(
        settings,
        precision,
        [probe, recorder],
        strategy="ddp",
        sync_batchnorm=settings.device == "cuda",  # PyTorch's SyncBatchNorm runs on CUDA only
        use_distributed_sampler=False,
        max_steps=settings.ddp_steps,
    )
    trainer.fit(model, datamodule=datamodule)
    trainer.test(model, datamodule=datamodule, verbose=False)
    import torch.distributed as dist

    return {
        "strategy": type(trainer.strategy).__name__,
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "world_size": trainer.world_size,
        "precision": precision,
        "batchnorm": probe.counts,
        "global_batch": datamodule.batch_size,
        "per_process_batch": datamodule.per_device_batch_size,
        "test_samples_this_process": len(datamodule.test_set),
        "losses": recorder.losses,
        "test": {k: v for k, v in model.test_results.items() if not isinstance(v, list)},
    }


def ddp_section(settings: Settings, report: Report, data_dir: Path, script_args: list[str]) -> dict[str, Any]:
    """Section 3: the DDP child, then ``train.py trainer=ddp`` as a researcher runs it."""
    out = data_dir / "ddp_child.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--section", "ddp", "--data-dir", str(data_dir), *script_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stdout + proc.stderr)[-3000:]
        report.check("ddp", "strategy=ddp on one device", False, f"exit {proc.returncode}: {tail}")
        return {"child_exit": proc.returncode, "child_tail": tail}
    child = json.loads(out.read_text())
    bn = child["batchnorm"]
    if settings.device == "cuda":
        report.check(
            "ddp",
            "sync_batchnorm converted every BatchNorm",
            bn.get("sync_batchnorm", 0) > 0 and bn.get("plain_batchnorm", 1) == 0,
            str(bn),
        )
    test = child["test"]
    report.check(
        "ddp",
        "DDP fit + test: finite losses and metrics",
        all(math.isfinite(v) for v in child["losses"]) and bool(test) and all(math.isfinite(v) for v in test.values()),
        f"{len(child['losses'])} steps, test/epe_mm {test.get('test/epe_mm')}",
    )
    report.check(
        "ddp",
        "per-process batch = global batch / world size",
        child["per_process_batch"] * child["world_size"] == child["global_batch"],
        f"{child['global_batch']} global, {child['per_process_batch']} per process, {child['world_size']} process(es)",
    )
    result: dict[str, Any] = {"in_process": child}

    # train.py itself, as a researcher runs it
    gpus = torch.cuda.device_count() if settings.device == "cuda" else 0
    trainer_cfg = "ddp" if settings.device == "cuda" else "ddp_cpu"
    devices = 2 if gpus >= 2 else 1
    run_dir = data_dir / "train_py_ddp"
    overrides = [
        f"trainer={trainer_cfg}",
        f"trainer.devices={devices}",
        "trainer.max_epochs=1",
        f"+trainer.limit_train_batches={settings.ddp_steps}",
        "+trainer.limit_val_batches=2",
        "+trainer.limit_test_batches=2",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "dataset=synthetic",
        f"data.root={data_dir / 'matrix'}",
        f"data.num_train={settings.train_samples}",
        f"data.num_eval={max(8, settings.batch_size)}",
        f"data.batch_size={settings.batch_size * devices}",
        f"data.input_size={settings.input_size}",
        "data.val_fraction=0.25",
        "callbacks.step_checkpoint=null",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(
        [sys.executable, "train.py", *overrides], capture_output=True, text=True, timeout=400, cwd=ROOT
    )
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    ok = proc.returncode == 0 and bool(scalars) and all(math.isfinite(v) for v in scalars.values())
    report.check(
        "ddp",
        f"python train.py trainer={trainer_cfg} trainer.devices={devices}",
        ok,
        f"exit {proc.returncode}, test/epe_mm {scalars.get('test/epe_mm')}"
        + ("" if ok else f": {(proc.stdout + proc.stderr)[-2000:]}"),
    )
    result["train_py"] = {
        "command": "python train.py " + " ".join(overrides),
        "exit": proc.returncode,
        "devices": devices,
        "metrics": scalars,
    }
    return result


def _timed_inference(
    model: torch.nn.Module, images: torch.Tensor, dtype: torch.dtype | None, settings: Settings
) -> dict[str, float]:
    device = images.device

    def infer() -> Any:
        with torch.inference_mode(), autocast(device, dtype):
            return model(images)

    times = timed_runs(infer, device, settings.warmup, settings.repeats)
    median = statistics.median(times)
    return {"images_per_s": images.shape[0] / median, "median_s": median}


def _outputs(model: torch.nn.Module, images: torch.Tensor, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    with torch.inference_mode(), autocast(images.device, dtype):
        out = model(images)
    return {k: v.float().clone() for k, v in out.items()}


def inference_section(settings: Settings, report: Report, budget: Budget) -> dict[str, Any]:
    """Section 4: eager / optimised / compiled inference, parity and throughput (Table 4)."""
    device = torch.device(settings.device)
    precisions: dict[str, torch.dtype | None] = {"float32": None}
    if device.type == "cuda":
        precisions = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}
    results: dict[str, Any] = {}
    g = torch.Generator().manual_seed(0)
    inputs = {
        bs: torch.rand(bs, 3, settings.input_size, settings.input_size, generator=g).to(device)
        for bs in settings.inference_batches
    }
    largest = max(settings.inference_batches)
    for backbone in settings.backbones:
        torch.manual_seed(0)
        model = build_model(backbone, settings.input_size).to(device)
        calibrate_batchnorm(model, inputs[largest])
        entry: dict[str, Any] = {"eager": {}, "optimized": {}, "compiled": {}, "parity": {}}
        for pname, dtype in precisions.items():
            entry["eager"][pname] = {
                str(bs): _timed_inference(model, inputs[bs], dtype, settings) for bs in settings.inference_batches
            }
        # the rewritten copy (BN folded, branches merged, channels-last), with accel off and auto (a no-op on a GPU)
        for mode in ("off", "auto"):
            fast = optimize_for_inference(model, before_compile=partial(accelerate_inference, mode=mode))
            key = f"accel={mode}"
            entry["optimized"][key] = {}
            for pname, dtype in precisions.items():
                ref = _outputs(model, inputs[largest], dtype)
                errs = output_errors(_outputs(fast, inputs[largest], dtype), ref)
                timing = _timed_inference(fast, inputs[largest], dtype, settings)
                entry["optimized"][key][pname] = {"batch": largest, **timing}
                entry["parity"][f"optimized ({key}) {pname}"] = errs
                report.check(
                    "inference",
                    f"{backbone}: optimize_for_inference ({key}) == eager, {pname}",
                    max(errs.values()) <= PARITY_RTOL[pname],
                    ", ".join(f"{k} {v:.1e}" for k, v in errs.items()) + f" (tolerance {PARITY_RTOL[pname]:g})",
                )
            del fast
        if settings.compile and backbone in PAPER_MODELS and budget.left() > 60:
            compiled_plan = [("float16", bs) for bs in settings.inference_batches] + [("bfloat16", largest)]
            fast = optimize_for_inference(model, compile=True)
            for pname, bs in compiled_plan:
                dtype = precisions[pname]
                start = time.perf_counter()
                out = _outputs(fast, inputs[bs], dtype)
                _sync()
                compile_s = time.perf_counter() - start
                errs = output_errors(out, _outputs(model, inputs[bs], dtype))
                timing = _timed_inference(fast, inputs[bs], dtype, settings)
                entry["compiled"].setdefault(pname, {})[str(bs)] = {**timing, "first_pass_s": compile_s}
                entry["parity"][f"compiled {pname} batch {bs}"] = errs
                report.check(
                    "inference",
                    f"{backbone}: torch.compile == eager, {pname}, batch {bs}",
                    max(errs.values()) <= PARITY_RTOL[pname],
                    ", ".join(f"{k} {v:.1e}" for k, v in errs.items()),
                )
            del fast
            torch._dynamo.reset()
        results[backbone] = entry
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {
        "precisions": list(precisions),
        "batches": list(settings.inference_batches),
        "tolerance": PARITY_RTOL,
        "results": results,
    }


def training_speed(settings: Settings, report: Report) -> dict[str, Any]:
    """Section 5: Table 3 — parameters, MiB, s/iteration per precision at the paper's batch, peak memory."""
    device = torch.device(settings.device)
    results: dict[str, Any] = {}
    for backbone in settings.backbones:
        torch.manual_seed(0)
        model = build_model(backbone, settings.input_size).to(device).train()
        fe_params = count_parameters(model.backbone)
        entry: dict[str, Any] = {
            "feature_extractor_params": fe_params,
            "feature_extractor_mib": mebibytes(fe_params),
            "model_params": count_parameters(model),
            "precisions": {},
        }
        batch = synthetic_batch(settings.batch_size, settings.input_size, device)
        for precision in settings.precisions:
            if precision == "16-mixed" and device.type != "cuda":
                continue
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
            losses: list[float] = []
            step = training_step_fn(model, batch, optimizer, amp_dtype=AUTOCAST[precision], losses=losses)
            times = timed_runs(step, device, settings.warmup, settings.repeats)
            peak = None
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                step()
                _sync()
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            entry["precisions"][precision] = {
                "time_per_iteration_s": statistics.median(times),
                "images_per_s": settings.batch_size / statistics.median(times),
                "peak_memory_mib": peak,
                "losses_finite": all(math.isfinite(v) for v in losses),
            }
            report.check(
                "training_speed", f"{backbone} {precision}: finite losses", all(math.isfinite(v) for v in losses)
            )
            del optimizer
        results[backbone] = entry
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"batch_size": settings.batch_size, "results": results}


def _data_wait_sets(data_dir: Path, settings: Settings) -> tuple[dict[str, Path], dict[str, float]]:
    """Write the RHD-format and InterHand2.6M-format trees once; their roots and each format's per-core sample rate
    (one loader worker: the augmented training dataset read on one core)."""
    from internet_plus.tools.pipeline_bench import bench_dataset, make_interhand_dataset, make_rhd_dataset

    folder = data_dir / "pipeline"
    folder.mkdir(parents=True, exist_ok=True)
    datasets = {
        "rhd": make_rhd_dataset(folder, settings.data_wait_samples, input_size=settings.input_size),
        "interhand": make_interhand_dataset(folder, settings.data_wait_samples, input_size=settings.input_size),
    }
    roots = {"rhd": Path(datasets["rhd"].root), "interhand": folder / "InterHand2.6M"}
    warmup = min(10, settings.pipeline_samples)
    rates = {
        fmt: bench_dataset(ds, settings.pipeline_samples, warmup=warmup)["samples_per_s"]
        for fmt, ds in datasets.items()
    }
    return roots, rates


def data_wait(settings: Settings, report: Report, data_dir: Path) -> dict[str, Any]:
    """Section 6: the training loop's data wait with the real DataModules, at auto and at cores − 1 workers."""
    from internet_plus.data.datamodule import resolve_num_workers
    from internet_plus.data.interhand import InterHandDataModule
    from internet_plus.data.rhd import RHDDataModule

    roots, rates = _data_wait_sets(data_dir, settings)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    auto = resolve_num_workers("auto")
    worker_counts = sorted({auto, max(1, cores - 1)}) if not settings.workers else settings.workers
    precision = "16-mixed" if settings.device == "cuda" else "32-true"
    common = {
        "batch_size": settings.batch_size,
        "input_size": settings.input_size,
        "val_fraction": 0.0,
        "seed": 0,
    }
    runs = []
    for fmt in ("rhd", "interhand"):
        for workers in worker_counts:
            if fmt == "rhd":
                datamodule = RHDDataModule(
                    root=str(roots["rhd"]), num_workers=workers, cache_dir=str(data_dir / "cache"), **common
                )
            else:
                datamodule = InterHandDataModule(
                    root=str(roots["interhand"]), num_workers=workers, cache_dir=str(data_dir / "cache"), **common
                )
            torch.manual_seed(0)
            model = make_module("internet_plus", settings.input_size, lr=1e-4)
            recorder = StepRecorder()
            with quiet_lightning():
                trainer = make_trainer(settings, precision, [recorder], max_steps=settings.data_wait_steps)
                start = time.perf_counter()
                trainer.fit(model, datamodule=datamodule)
                total = time.perf_counter() - start
            skip = min(10, len(recorder.step_s) // 2)
            steps = recorder.step_s[skip:]
            waits = recorder.wait_s[max(0, skip - 1) :]
            busy, idle = sum(steps), sum(waits)
            fraction = idle / (busy + idle) if busy + idle > 0 else math.nan
            run = {
                "format": fmt,
                "workers": workers,
                "auto": workers == auto,
                "steps": len(recorder.step_s),
                "step_ms_median": 1e3 * statistics.median(steps) if steps else math.nan,
                "wait_ms_median": 1e3 * statistics.median(waits) if waits else math.nan,
                "wait_ms_p90": 1e3 * float(np.percentile(waits, 90)) if waits else math.nan,
                "data_wait_fraction": fraction,
                "samples_per_s": settings.batch_size * len(steps) / (busy + idle) if busy + idle > 0 else math.nan,
                "fit_seconds": total,
            }
            runs.append(run)
            print(
                f"  {fmt} workers {workers}: step {run['step_ms_median']:.1f} ms, wait {run['wait_ms_median']:.1f} ms, "
                f"data wait {fraction:.1%}",
                flush=True,
            )
            del model, trainer, datamodule
    return {
        "precision": precision,
        "cores": cores,
        "auto_workers": auto,
        "per_core_samples_per_s": rates,
        "runs": runs,
    }


# ---------------------------------------------------------------------------------------------------- goals
def goals(report: Report) -> dict[str, Any]:
    """InterNet+/InterNet ratios beside the paper's, and the data-wait goal, from the sections that ran."""
    out: dict[str, Any] = {"paper": paper_ratios(), "targets": GOALS}
    inference = report.sections.get("inference", {}).get("results", {})
    if all(m in inference for m in PAPER_MODELS):
        plus, base = inference["internet_plus"], inference["resnet50"]
        ratios: dict[str, dict[str, float]] = {}
        for kind in ("eager", "compiled"):
            for pname, by_batch in plus[kind].items():
                for bs, value in by_batch.items():
                    ref = base[kind].get(pname, {}).get(bs)
                    if ref:
                        ratios.setdefault(f"{kind} {pname}", {})[bs] = value["images_per_s"] / ref["images_per_s"]
        out["inference_ratios"] = ratios
        best_b32 = max((r.get("32", 0.0) for r in ratios.values()), default=0.0)
        out["inference_ratio_b32_best"] = best_b32
        out["inference_goal_met"] = best_b32 >= GOALS["inference_ratio_b32"]
    speed = report.sections.get("training_speed", {}).get("results", {})
    if all(m in speed for m in PAPER_MODELS):
        tr = {}
        for precision, value in speed["internet_plus"]["precisions"].items():
            ref = speed["resnet50"]["precisions"].get(precision)
            if ref:
                tr[precision] = ref["time_per_iteration_s"] / value["time_per_iteration_s"]
        out["training_speed_ratios"] = tr  # InterNet's s/iteration over InterNet+'s: > 1 means InterNet+ is faster
        out["training_goal_met"] = max(tr.values(), default=0.0) >= GOALS["training_ratio"]
    waits = report.sections.get("data_wait", {}).get("runs", [])
    auto = [r for r in waits if r["auto"]]
    if auto:
        worst = max(r["data_wait_fraction"] for r in auto)
        out["data_wait_auto_worst"] = worst
        out["data_wait_goal_met"] = worst <= GOALS["data_wait_fraction"]
    return out


# ---------------------------------------------------------------------------------------------------- Markdown
def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(headers: list[str]) -> list[str]:
    return [_row(*headers), _row(*(["---"] * len(headers)))]


def _md_matrix(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["## Training steps (Trainer.fit, fused AdamW, batch per GPU, augmentation off)", ""]
    lines += _table(
        ["backbone", "precision", "channels-last", "steps", "loss first 5 → last 5", "finite", "falling"]
        + ["AMP skipped steps", "ms/step"]
    )
    for r in runs:
        if r.get("skipped"):
            lines.append(_row(r["backbone"], r["precision"], r["channels_last"], "skipped", "", "", "", "", ""))
            continue
        loss = f"{_fmt(r['first_mean'], '.4g')} → {_fmt(r['last_mean'], '.4g')}"
        skips = r["amp_skipped_steps"] if r["precision"] == "16-mixed" else "–"
        ms = _fmt(r["ms_per_step_median"])
        lines.append(
            _row(
                r["backbone"],
                r["precision"],
                r["channels_last"],
                r["steps"],
                loss,
                r["finite"],
                r["falling"],
                skips,
                ms,
            )
        )
    return lines


def _md_loss_parity(results: dict[str, Any]) -> list[str]:
    lines = ["## Lean vs dense heatmap loss on 16-bit heatmaps", ""]
    lines += _table(["autocast", "lean", "dense", "value rel. err", "gradient rel. err"])
    for name, r in results.items():
        lines.append(
            _row(name, f"{r['lean']:.6g}", f"{r['dense']:.6g}", f"{r['value_rel_err']:.1e}", f"{r['grad_rel_err']:.1e}")
        )
    return lines


def _md_inference(inf: dict[str, Any]) -> list[str]:
    batches, precisions = inf["batches"], inf["precisions"]
    lines = ["## Table 4 — inference images/s (eval, inference_mode)", ""]
    lines += _table(["backbone", "mode", *(f"batch {b}" for b in batches)])
    for backbone, e in inf["results"].items():
        for kind in ("eager", "compiled"):
            for pname, by_batch in e[kind].items():
                cells = [_fmt(by_batch.get(str(b), {}).get("images_per_s")) for b in batches]
                lines.append(_row(LABELS.get(backbone, backbone), f"{kind} {pname}", *cells))
    for row, label in (("internet_plus", "InterNet+"), ("internet", "InterNet")):
        cells = [_fmt(PAPER_TABLES_3_4["table4"][row].get(b)) for b in batches]
        lines.append(_row(f"{label} (paper, 2080Ti)", "as published", *cells))
    lines += ["", "Inference copy (`optimize_for_inference`) at the largest batch, images/s:", ""]
    lines += _table(["backbone", "variant", *precisions])
    for backbone, e in inf["results"].items():
        for key, by_p in e["optimized"].items():
            cells = [_fmt(by_p[p]["images_per_s"]) for p in precisions]
            lines.append(_row(LABELS.get(backbone, backbone), key, *cells))
    return lines


def _md_training_speed(section: dict[str, Any]) -> list[str]:
    results = section["results"]
    precisions = sorted({p for e in results.values() for p in e["precisions"]}, key=PRECISIONS.index)
    lines = [f"## Table 3 — feature extractor and training step (batch {section['batch_size']})", ""]
    lines += _table(
        ["backbone", "FE params (M)", "FE MiB"]
        + [f"s/iter {p}" for p in precisions]
        + [f"peak MiB {p}" for p in precisions]
    )
    for backbone, e in results.items():
        cells = [_fmt(e["precisions"][p]["time_per_iteration_s"], ".4f") for p in precisions]
        cells += [_fmt(e["precisions"][p]["peak_memory_mib"], ".0f") for p in precisions]
        params, mib = f"{e['feature_extractor_params'] / 1e6:.2f}", f"{e['feature_extractor_mib']:.2f}"
        lines.append(_row(LABELS.get(backbone, backbone), params, mib, *cells))
    for row, label in (("internet_plus", "InterNet+"), ("internet", "InterNet")):
        t3 = PAPER_TABLES_3_4["table3"][row]
        time_cell = f"{t3['time_per_iteration_s']} (2080Ti, precision not stated)"
        lines.append(_row(f"{label} (paper)", f"{t3['params_m']:.2f}", f"{t3['size_mb']:.2f}", time_cell))
    return lines


def _md_data_wait(dw: dict[str, Any]) -> list[str]:
    rates = ", ".join(f"{k} {v:.0f} samples/s" for k, v in dw["per_core_samples_per_s"].items())
    lines = [
        f"## Data wait ({dw['precision']}, InterNet+, augmentation on; {dw['cores']} cores, "
        f"auto = {dw['auto_workers']} workers)",
        "",
        f"Per-core pipeline rate (one worker): {rates}.",
        "",
    ]
    lines += _table(["format", "workers", "steps", "step ms (median)", "wait ms (median / p90)", "data wait"])
    for r in dw["runs"]:
        workers = f"{r['workers']}{' (auto)' if r['auto'] else ''}"
        wait = f"{_fmt(r['wait_ms_median'])} / {_fmt(r['wait_ms_p90'])}"
        share = f"{_fmt(100 * r['data_wait_fraction'])} %"
        lines.append(_row(r["format"], workers, r["steps"], _fmt(r["step_ms_median"]), wait, share))
    return lines


def _md_ddp(ddp: dict[str, Any]) -> list[str]:
    c = ddp["in_process"]
    lines = [
        "## DDP",
        "",
        f"- in process: {c['strategy']} ({c['backend']}), world size {c['world_size']}, {c['precision']}, "
        f"BatchNorm {c['batchnorm']}, batch {c['global_batch']} global / {c['per_process_batch']} per process, "
        f"test/epe_mm {_fmt(c['test'].get('test/epe_mm'))}",
    ]
    if ddp.get("train_py"):
        t = ddp["train_py"]
        epe = _fmt(t["metrics"].get("test/epe_mm"))
        lines.append(f"- `train.py` on {t['devices']} device(s): exit {t['exit']}, test/epe_mm {epe}")
    return lines


def _met(flag: Any) -> str:
    return "met" if flag else "not met"


def _md_goals(g: dict[str, Any]) -> list[str]:
    pr = g["paper"]
    lines = ["## InterNet+/InterNet ratios and goals", ""]
    for kind, by_batch in g.get("inference_ratios", {}).items():
        lines.append(f"- inference {kind}: " + ", ".join(f"batch {b} {v:.3f}" for b, v in by_batch.items()))
    lines.append(
        f"- paper inference: batch 1 {pr['throughput']['1']:.3f}, batch 32 {pr['throughput']['32']:.3f}; "
        f"goal ≥ {GOALS['inference_ratio_b32']} at batch 32: {_met(g.get('inference_goal_met'))}"
    )
    if "training_speed_ratios" in g:
        ours = ", ".join(f"{p} {v:.3f}" for p, v in g["training_speed_ratios"].items())
        lines.append(
            f"- training speed (InterNet s/iter ÷ InterNet+ s/iter): {ours}; paper {1 / pr['time_per_iteration']:.3f}; "
            f"goal ≥ {GOALS['training_ratio']}: {_met(g.get('training_goal_met'))}"
        )
    if "data_wait_auto_worst" in g:
        lines.append(
            f"- data wait at auto workers (worst format): {100 * g['data_wait_auto_worst']:.1f} %; "
            f"goal ≤ {100 * GOALS['data_wait_fraction']:.0f} %: {_met(g.get('data_wait_goal_met'))}"
        )
    return lines


def markdown(report_json: dict[str, Any]) -> str:
    """The tables of ``gpu_check.md`` (everything is also in the JSON)."""
    m, s = report_json["machine"], report_json["sections"]
    lines = [
        f"# GPU check — {m['device_name']}",
        "",
        f"{m['date']}; torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}, Lightning {m['lightning']}; "
        f"{m['cpu_count']} CPU cores ({m['cpu']}); total {report_json['seconds']:.0f} s."
        + (" **CPU dry run: no GPU figures.**" if report_json["dry_run"] else ""),
        "",
        f"Checks: {report_json['passed']} passed, {report_json['failed']} failed.",
        "",
    ]
    for name, sec in s.items():
        if sec.get("status") != "ok":
            lines.append(f"- section `{name}`: **{sec.get('status')}** {sec.get('reason', sec.get('error', ''))}")
    renderers: list[tuple[Any, Callable[[Any], list[str]]]] = [
        (s.get("training_matrix", {}).get("runs"), _md_matrix),
        (s.get("loss_parity", {}).get("results"), _md_loss_parity),
        (s.get("inference") if s.get("inference", {}).get("results") else None, _md_inference),
        (s.get("training_speed") if s.get("training_speed", {}).get("results") else None, _md_training_speed),
        (s.get("data_wait") if s.get("data_wait", {}).get("runs") else None, _md_data_wait),
        (s.get("ddp") if s.get("ddp", {}).get("in_process") else None, _md_ddp),
        (report_json.get("goals"), _md_goals),
    ]
    for data, render in renderers:
        if data:
            lines += ["", *render(data)]
    failed = [c for c in report_json["checks"] if not c["passed"]]
    if failed:
        lines += ["", "## Failed checks", ""] + [f"- {c['section']}: {c['name']} — {c['detail']}" for c in failed]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- main
def machine_info(settings: Settings) -> dict[str, Any]:
    import pytorch_lightning

    cuda = settings.device == "cuda"
    return {
        "device_name": torch.cuda.get_device_name(0) if cuda else f"CPU dry run ({cpu_name()})",
        "device_count": torch.cuda.device_count() if cuda else 0,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "lightning": pytorch_lightning.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "date": datetime.date.today().isoformat(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for gpu_check.json/.md (default: experiments/performance/gpu_<device>)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="sections that would start after this many seconds are skipped (default 600)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny sizes on the CPU (what runs where there is no CUDA)"
    )
    parser.add_argument(
        "--workers", type=str, default="", help="data-wait worker counts, e.g. 8,15 (default: auto and cores - 1)"
    )
    parser.add_argument(
        "--sections", type=str, default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}"
    )
    parser.add_argument("--section", choices=["ddp"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available() and not args.dry_run
    settings = Settings(device="cuda") if cuda else Settings.dry()
    if args.budget_s is not None:
        settings.budget_s = args.budget_s
    if args.workers:
        settings.workers = [int(w) for w in args.workers.split(",")]
    script_args = ["--dry-run"] if settings.dry_run else []

    if args.section == "ddp":  # the child process of section 3
        result = ddp_child(settings, args.data_dir)
        (args.data_dir / "ddp_child.json").write_text(json.dumps(result, indent=1))
        return 0

    if not cuda:
        print(
            "no CUDA device here: running the CPU dry run of the check's own logic (64 px, 2 backbones, a few steps; "
            "16-mixed and torch.compile skipped). It produces no GPU figures.",
            flush=True,
        )
    if cuda:
        torch.backends.cudnn.benchmark = True
    machine = machine_info(settings)
    out = args.out or ROOT / "experiments" / "performance" / f"gpu_{device_slug(machine['device_name'])}"
    report = Report()
    budget = Budget(settings.budget_s)
    print(f"{machine['device_name']}: torch {machine['torch']}, budget {settings.budget_s:.0f} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = free_path(out / "gpu_check.json"), free_path(out / "gpu_check.md")

    def save() -> dict[str, Any]:
        """Write the report so far (after every section: a run cut short still leaves its figures)."""
        result = {
            "dry_run": settings.dry_run,
            "settings": asdict(settings),
            "machine": machine,
            "seconds": budget.elapsed,
            "sections": report.sections,
            "checks": report.checks,
            "passed": len(report.checks) - len(report.failed),
            "failed": len(report.failed),
            "goals": goals(report),
        }
        json_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
        md_path.write_text(markdown(result))
        return result

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        data_dir = Path(tmp)
        sections: list[tuple[str, Callable[[], dict[str, Any]], float]] = [
            ("training_matrix", lambda: training_matrix(settings, report, data_dir, budget), 0.0),
            ("loss_parity", lambda: loss_parity(settings, report), 0.0),
            ("ddp", lambda: ddp_section(settings, report, data_dir, script_args), 30.0),
            ("inference", lambda: inference_section(settings, report, budget), 20.0),
            ("training_speed", lambda: training_speed(settings, report), 15.0),
            ("data_wait", lambda: data_wait(settings, report, data_dir), 10.0),
        ]
        wanted = [n.strip() for n in args.sections.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(SECTIONS))
        if unknown:
            raise SystemExit(f"--sections: unknown {unknown}; choose from {', '.join(SECTIONS)}")
        for name, fn, min_left_s in sections:
            if name not in wanted:
                continue
            report.run(name, budget, fn, min_left_s=min_left_s)
            result = save()
    print(markdown(result))
    print(f"wrote {json_path} and {md_path}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
