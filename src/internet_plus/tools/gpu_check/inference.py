"""The GPU check's inference section: Table 4 on the GPU, eager, rewritten and compiled, with output parity."""

from __future__ import annotations

import statistics
import time
from functools import partial
from typing import Any

import torch

from internet_plus.accel import accelerate_inference
from internet_plus.models.inference import calibrate_batchnorm, optimize_for_inference
from internet_plus.tools.benchmark import (
    autocast,
    build_model,
)
from internet_plus.tools.gpu_check.helpers import _sync, output_errors
from internet_plus.tools.gpu_check.settings import PAPER_MODELS, PARITY_RTOL, Budget, Report, Settings
from internet_plus.tools.timing import timed_runs

#: ``torch.compile`` options of the inference copy per mode: Inductor with frozen weights (the copy's default), and
#: the same with CUDA graphs (what ``mode="reduce-overhead"`` adds; ``mode`` and ``options`` cannot be combined).
#: ``dynamic=False``: one graph specialised to each batch size. Without it, the second batch size of a mode would
#: recompile as a graph for any batch size (PyTorch's automatic dynamic shapes), timed unlike the first.
COMPILE_OPTIONS = {
    "default": {"dynamic": False, "options": {"freezing": True}},
    "reduce-overhead": {"dynamic": False, "options": {"freezing": True, "triton.cudagraphs": True}},
}


def compiled_plan(settings: Settings) -> dict[str, list[tuple[str, int]]]:
    """(precision, batch) pairs compiled per mode. Each pair compiles afresh (tens of seconds on a GPU), so the plan
    is short: the largest batch in float16 and bfloat16, and CUDA graphs at the smallest and largest batch, where
    launching kernels costs most and least."""
    small, large = min(settings.inference_batches), max(settings.inference_batches)
    return {
        "default": [("float16", large), ("bfloat16", large)],
        "reduce-overhead": [("float16", small), ("float16", large)],
    }


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


def _compiled_pair(
    entry: dict[str, Any],
    report: Report,
    backbone: str,
    mode: str,
    fast: torch.nn.Module,
    model: torch.nn.Module,
    images: torch.Tensor,
    pname: str,
    precisions: dict[str, torch.dtype | None],
    settings: Settings,
) -> None:
    """One (precision, batch) pair of the compile plan: the first pass (compilation), parity and throughput."""
    dtype = precisions[pname]
    bs = images.shape[0]
    key = pname if mode == "default" else f"{pname} {mode}"
    start = time.perf_counter()
    out = _outputs(fast, images, dtype)
    _sync()
    compile_s = time.perf_counter() - start
    errs = output_errors(out, _outputs(model, images, dtype))
    timing = _timed_inference(fast, images, dtype, settings)
    entry["compiled"].setdefault(key, {})[str(bs)] = {**timing, "first_pass_s": compile_s}
    entry["parity"][f"compiled {key} batch {bs}"] = errs
    report.check(
        "inference",
        f"{backbone}: torch.compile ({mode}) == eager, {pname}, batch {bs}",
        max(errs.values()) <= PARITY_RTOL[pname],
        ", ".join(f"{k} {v:.1e}" for k, v in errs.items()),
    )


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
        for mode in ("off", "auto") if device.type == "cpu" else ("off",):  # accel=auto changes nothing on a GPU
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
            for mode, plan in compiled_plan(settings).items():
                fast = optimize_for_inference(model, compile=True, compile_options=COMPILE_OPTIONS[mode])
                for pname, bs in plan:
                    try:
                        _compiled_pair(
                            entry, report, backbone, mode, fast, model, inputs[bs], pname, precisions, settings
                        )
                    except Exception as exc:  # a failed compilation is a failed check; the section's figures stay
                        error = f"{type(exc).__name__}: {exc}"
                        entry.setdefault("compile_errors", {})[f"{mode} {pname} batch {bs}"] = error
                        report.check(
                            "inference", f"{backbone}: torch.compile ({mode}), {pname}, batch {bs}: ran", False, error
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
