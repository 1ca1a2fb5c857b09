"""The GPU check's data-wait section: how much of a training step waits for the real DataModules' batches.

Each format is measured on its loader paths (:data:`PATHS`): the default (decoding, warp and colour augmentation in
the loader workers) at every worker count, and at the ``auto`` worker count ``data.warp_on=device``
(:mod:`internet_plus.data.device_warp`) and, for the JPEG format (InterHand2.6M), ``data.decode_on=device``
(:mod:`internet_plus.data.device_decode`) too, so that one run compares them.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from internet_plus.tools.gpu_check.helpers import StepRecorder, make_module, make_trainer, quiet_lightning
from internet_plus.tools.gpu_check.settings import Budget, Report, Settings


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


#: Loader paths: name → (``data.warp_on``, ``data.decode_on``, the formats it applies to).
PATHS = {
    "worker": ("worker", "worker", ("rhd", "interhand")),
    "warp_on=device": ("device", "worker", ("rhd", "interhand")),
    "decode_on=device": ("device", "device", ("interhand",)),
}


#: A run does not start with less time than this left in the check's budget (it is recorded as skipped).
RUN_MIN_LEFT_S = 20.0


def _measure(
    fmt: str, path: str, root: Path, loader: dict[str, Any], steps_asked: int, precision: str, settings: Settings
) -> dict[str, Any]:
    """One run: InterNet+ trained ``steps_asked`` steps on the format's DataModule through the loader path."""
    from internet_plus.data.interhand import InterHandDataModule
    from internet_plus.data.rhd import RHDDataModule

    warp_on, decode_on, _ = PATHS[path]
    if fmt == "rhd":
        datamodule = RHDDataModule(root=str(root), warp_on=warp_on, **loader)
    else:
        datamodule = InterHandDataModule(root=str(root), warp_on=warp_on, decode_on=decode_on, **loader)
    datamodule.tests_after_fit = False  # only the training loader is measured; these sets have no test split
    torch.manual_seed(0)
    model = make_module("internet_plus", settings.input_size, lr=1e-4)
    recorder = StepRecorder()
    with quiet_lightning():
        trainer = make_trainer(settings, precision, [recorder], max_steps=steps_asked)
        start = time.perf_counter()
        trainer.fit(model, datamodule=datamodule)
        total = time.perf_counter() - start
    skip = min(10, len(recorder.step_s) // 2)
    steps = recorder.step_s[skip:]
    waits = recorder.wait_s[max(0, skip - 1) :]
    busy, idle = sum(steps), sum(waits)
    fraction = idle / (busy + idle) if busy + idle > 0 else math.nan
    return {
        "steps": len(recorder.step_s),
        "step_ms_median": 1e3 * statistics.median(steps) if steps else math.nan,
        "wait_ms_median": 1e3 * statistics.median(waits) if waits else math.nan,
        "wait_ms_p90": 1e3 * float(np.percentile(waits, 90)) if waits else math.nan,
        "data_wait_fraction": fraction,
        "samples_per_s": settings.batch_size * len(steps) / (busy + idle) if busy + idle > 0 else math.nan,
        "fit_seconds": total,
    }


def data_wait(settings: Settings, report: Report, data_dir: Path, budget: Budget | None = None) -> dict[str, Any]:
    """Section 6: the training loop's data wait with the real DataModules: the worker path at auto and at cores − 1
    workers, the device paths (:data:`PATHS`) at auto workers for ``settings.data_wait_device_steps`` steps. A run
    that fails is recorded with its error (a failed check), one that would start with under ``RUN_MIN_LEFT_S`` of
    ``budget`` left as skipped; the others still run."""
    from internet_plus.data.datamodule import resolve_num_workers

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
    plan = [
        (fmt, path, workers)
        for fmt in ("rhd", "interhand")
        for path, (_, _, formats) in PATHS.items()
        if fmt in formats
        for workers in (worker_counts if path == "worker" else [auto])
    ]
    for fmt, path, workers in plan:
        name = {"format": fmt, "path": path, "workers": workers, "auto": workers == auto}
        if budget is not None and budget.left() < RUN_MIN_LEFT_S:
            runs.append({**name, "skipped": f"time budget ({budget.seconds:.0f} s) nearly spent"})
            continue
        steps_asked = settings.data_wait_steps if path == "worker" else settings.data_wait_device_steps
        loader = {"num_workers": workers, "cache_dir": str(data_dir / "cache"), **common}
        try:
            run = {**name, **_measure(fmt, path, roots[fmt], loader, steps_asked, precision, settings)}
        except Exception as exc:  # a path that fails is a failed check; the other runs still measure
            run = {**name, "error": f"{type(exc).__name__}: {exc}"}
            report.check("data_wait", f"{fmt} {path} workers {workers}: ran", False, run["error"])
            print(f"  {fmt} {path} workers {workers}: {run['error']}", flush=True)
        else:
            print(
                f"  {fmt} {path} workers {workers}: step {run['step_ms_median']:.1f} ms, "
                f"wait {run['wait_ms_median']:.1f} ms, data wait {run['data_wait_fraction']:.1%}",
                flush=True,
            )
        runs.append(run)
    return {
        "precision": precision,
        "cores": cores,
        "auto_workers": auto,
        "per_core_samples_per_s": rates,
        "runs": runs,
    }
