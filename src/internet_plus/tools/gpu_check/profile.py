"""The GPU check's ``profile`` section: is the eager training step bound by the GPU's work or by launching it?

For InterNet+ and InterNet, at the paper's batch under the check's mixed precision, a few eager training steps run
under ``torch.profiler`` (after a warm-up). Recorded per model: the step's wall time measured *without* the profiler
(which slows the host side down), the number of GPU kernels (and copies/memsets) a step launches, the GPU's busy time
per step (the sum of their durations: one stream, so they do not overlap) and its share of the wall time, and the ten
operations with the most device time. A busy share well below 1 means the GPU waits for the host to launch work:
fewer, fused kernels (``torch.compile``) or CUDA graphs (``compile.mode=reduce-overhead``) are then what speeds the
step up, not a smaller network. In the CPU dry run there is no device: the top-level ATen operations a step
dispatches are counted instead.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from internet_plus.tools.benchmark import build_model, synthetic_batch, training_step_fn
from internet_plus.tools.gpu_check.attention_variants import attention_variants
from internet_plus.tools.gpu_check.components import OTHER, component_costs, device_kernels
from internet_plus.tools.gpu_check.helpers import calibrated_internet_plus
from internet_plus.tools.gpu_check.settings import AUTOCAST, PAPER_MODELS, Report, Settings
from internet_plus.tools.timing import timed_runs

TOP_OPERATIONS = 10


def _top_level_aten(events: Any) -> list[Any]:
    """ATen operations called from outside ATen: one dispatch each from Python or autograd."""
    return [
        e
        for e in events
        if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))
    ]


def profile_step(backbone: str, settings: Settings) -> dict[str, Any]:
    """One model's profile (the module docstring)."""
    device = torch.device(settings.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = build_model(backbone, settings.input_size).to(device).train()
    batch = synthetic_batch(settings.batch_size, settings.input_size, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    step = training_step_fn(model, batch, optimizer, amp_dtype=AUTOCAST[settings.compiled_precision])
    wall_s = statistics.median(timed_runs(step, device, settings.warmup, settings.repeats))

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(settings.profile_steps):
            step()
        if cuda:
            torch.cuda.synchronize()
    n = settings.profile_steps
    events = prof.events()
    result: dict[str, Any] = {
        "wall_ms_per_step": 1e3 * wall_s,
        "aten_ops_per_step": len(_top_level_aten(events)) / n,
    }
    if cuda:
        device_events = device_kernels(events)
        busy_us = sum(e.time_range.elapsed_us() for e in device_events) / n
        result["device_events_per_step"] = len(device_events) / n
        result["device_busy_ms_per_step"] = busy_us / 1e3
        result["device_busy_fraction"] = busy_us / 1e6 / wall_s
        key, time_attr = "self_device_time_total", "self_device_time_total"
    else:
        key, time_attr = "self_cpu_time_total", "self_cpu_time_total"
    averages = sorted(prof.key_averages(), key=lambda a: getattr(a, time_attr), reverse=True)
    result["top_operations"] = [
        {"name": a.key, "calls_per_step": a.count / n, "ms_per_step": getattr(a, time_attr) / 1e3 / n}
        for a in averages[:TOP_OPERATIONS]
    ]
    result["top_by"] = key
    return result


def internet_plus_parts(settings: Settings, report: Report) -> dict[str, Any]:
    """InterNet+'s forward pass part by part (:mod:`~internet_plus.tools.gpu_check.components`) at the smallest and
    the largest inference batch, in float16 on a GPU (the precision where its gap to the ablation without coordinate
    attention is widest), in float32 in the CPU dry run."""
    dtype = torch.float16 if settings.device == "cuda" else None
    model, inputs = calibrated_internet_plus(settings)
    by_batch: dict[str, Any] = {}
    for bs, images in inputs.items():
        costs = component_costs(model, images, dtype, settings.warmup, settings.profile_steps)
        by_batch[str(bs)] = costs
        parts = costs["parts"]
        report.check(
            "profile",
            f"internet_plus batch {bs}: the named parts lie within the feature extractor's time",
            parts[OTHER]["share"] >= -1e-6 and all(p["share"] >= 0 for p in parts.values()),
            ", ".join(f"{label} {100 * p['share']:.1f} %" for label, p in parts.items()),
        )
    return by_batch


def _kept_apart(name: str, fn: Callable[[], dict[str, Any]], report: Report) -> dict[str, Any]:
    """One analysis of the section: its error is a failed check and the section's other figures stay."""
    try:
        return fn()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        report.check("profile", f"{name}: ran", False, error)
        return {"error": error}


def profile_section(settings: Settings, report: Report) -> dict[str, Any]:
    """Section ``profile``: :func:`profile_step` for InterNet+ and InterNet, InterNet+'s forward pass part by part
    (:func:`internet_plus_parts`) and its coordinate attention written other ways (:mod:`.attention_variants`)."""
    results = {}
    for backbone in PAPER_MODELS:
        r = profile_step(backbone, settings)
        results[backbone] = r
        counted = r.get("device_events_per_step", r["aten_ops_per_step"])
        report.check("profile", f"{backbone}: the profiler saw the step's work", counted > 0, f"{counted:.0f} per step")
        if "device_busy_fraction" in r:
            report.check(
                "profile",
                f"{backbone}: device busy time within the wall time",
                0.0 < r["device_busy_fraction"] <= 1.05,
                f"{r['device_busy_fraction']:.2f}",
            )
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return {
        "precision": settings.compiled_precision,
        "batch_size": settings.batch_size,
        "results": results,
        "internet_plus_parts": _kept_apart("InterNet+ parts", lambda: internet_plus_parts(settings, report), report),
        "attention_variants": _kept_apart("CA variants", lambda: attention_variants(settings, report), report),
    }
