"""The GPU check's settings, time budget and report of checks (what every section records into)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from internet_plus.models.backbones.registry import backbone_names
from internet_plus.tools.benchmark import (
    PAPER_TABLES_3_4,
)

ROOT = Path(__file__).resolve().parents[4]  # the repository (train.py, experiments/)
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
SECTIONS = (
    "training_matrix",
    "loss_parity",
    "ddp",
    "inference",
    "training_speed",
    "compiled_training",
    "profile",
    "data_wait",
)


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
    compile_backend: str = "inductor"  # the compiled_training section's backend (Dynamo alone, "eager", in the dry run)
    compiled_precision: str = "16-mixed"  # the compiled_training and profile sections' precision (trainer=gpu's)
    profile_steps: int = 5
    lightning_steps: int = 50  # the compiled_training section's Trainer.fit loop, timed steps after the warm-up
    data_wait_steps: int = 200
    data_wait_device_steps: int = 200  # each device path (warp_on / decode_on = device), at auto workers
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
            compile_backend="eager",  # Dynamo's tracing alone: Inductor's CPU code generation takes minutes here
            compiled_precision="32-true",
            profile_steps=2,
            lightning_steps=3,
            data_wait_steps=8,
            data_wait_device_steps=4,
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

    def run(
        self,
        name: str,
        budget: Budget,
        fn: Callable[[], dict[str, Any]],
        min_left_s: float = 0.0,
        action: str = "started",
    ) -> None:
        """Run one section, recording its time, its result or its error (a failed check), or why it was skipped.
        ``action`` is what the log line at its start says it does (a section started in the background is collected)."""
        if budget.left() < min_left_s:
            self.sections[name] = {"status": "skipped", "reason": f"time budget ({budget.seconds:.0f} s) spent"}
            print(f"[{name}] skipped: time budget spent", flush=True)
            return
        print(f"[{name}] {action} at {budget.elapsed:.0f} s", flush=True)
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
