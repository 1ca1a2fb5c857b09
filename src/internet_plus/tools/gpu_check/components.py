"""Where InterNet+'s forward pass spends its time, part by part, for the ``profile`` section.

The H200's Table 4 (``experiments/performance/gpu_nvidia_h200``) has the ablation variant without coordinate attention
1.9× faster than InterNet+ in float16 at batch 32 and 2× faster at batch 1, although the 7 coordinate-attention
modules add about 0.1 ms of memory traffic to a batch of 32 at the H200's bandwidth: the modules cost far more than
their arithmetic. This breakdown says which part of the network the device time goes to, so that the kernels to
speed up are named by a measurement rather than guessed.

Each part of the feature extractor (paper §4, Table 1) is wrapped in a ``torch.profiler.record_function`` range by
forward hooks: the inverted residual blocks' expansion, depthwise, attention (coordinate attention, or SE in that
ablation) and projection stages, FcaNet's multi-spectral attention, Meta-ACON-C and ACON-C, the whole feature
extractor and PoseNet. A range's device time is the sum of the kernels launched inside it (one stream: they do not
overlap), counted from the operations the profiler links them to; its host time is its wall time on the CPU, which
is what a pass costs when the GPU waits for the host. "Other feature-extractor layers" is the feature extractor's time
minus its named parts. On a GPU each named part also lists its longest-running kernels by name, which is what says
*why* a part is slow. In the CPU dry run there is no device time and the host times stand alone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from internet_plus.models.layers import (
    AconC,
    CoordinateAttention,
    InvertedResidual,
    MetaAconC,
    MultiSpectralAttention,
    SqueezeExcite,
)
from internet_plus.tools.benchmark import autocast
from internet_plus.tools.timing import sync

PREFIX = "component::"
#: The feature extractor's whole range and PoseNet's.
FEATURE_EXTRACTOR, POSENET = "feature extractor", "PoseNet"
OTHER = "other feature-extractor layers"
#: Each named part's longest-running kernels (by name) recorded on a GPU.
TOP_KERNELS = 3
#: A part's label for a module class anywhere in the feature extractor.
BY_CLASS: dict[type[nn.Module], str] = {
    CoordinateAttention: "block attention: coordinate attention",
    SqueezeExcite: "block attention: SE",
    MultiSpectralAttention: "FcaNet multi-spectral attention",
    MetaAconC: "Meta-ACON-C",
    AconC: "ACON-C",
}
#: The stages of each inverted residual block (its attribute -> label); its attention is labelled by its class.
BLOCK_STAGES = {"expand": "block expansion 1×1", "depthwise": "block depthwise", "project": "block projection 1×1"}


def labelled_parts(model: nn.Module) -> dict[nn.Module, str]:
    """Each module of a ``HandPoseModule`` that gets its own range, with its label."""
    parts: dict[nn.Module, str] = {model.backbone: FEATURE_EXTRACTOR, model.posenet: POSENET}
    for module in model.backbone.modules():
        if isinstance(module, InvertedResidual):
            parts.update({getattr(module, attr): label for attr, label in BLOCK_STAGES.items()})
        label = BY_CLASS.get(type(module))
        if label is not None:
            parts[module] = label
    return parts


@contextmanager
def ranges(parts: dict[nn.Module, str]) -> Iterator[None]:
    """Forward hooks that open a ``record_function`` range before each part and close it after."""
    open_ranges: list[Any] = []

    def enter(label: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any) -> None:
            span = record_function(PREFIX + label)
            span.__enter__()
            open_ranges.append(span)

        return hook

    def leave(_module: nn.Module, _inputs: Any, _output: Any) -> None:
        open_ranges.pop().__exit__(None, None, None)

    handles = []
    for module, label in parts.items():
        handles.append(module.register_forward_pre_hook(enter(label)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def component_costs(
    model: nn.Module, images: torch.Tensor, dtype: torch.dtype | None, warmup: int, passes: int
) -> dict[str, Any]:
    """Device and host time per forward pass of each part of ``model`` (eval, ``inference_mode``, ``dtype``
    autocast), over ``passes`` profiled passes after ``warmup`` unprofiled ones."""
    device = images.device
    cuda = device.type == "cuda"
    model.eval()

    def forward() -> None:
        with torch.inference_mode(), autocast(device, dtype):
            model(images)

    for _ in range(warmup):
        forward()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with ranges(labelled_parts(model)), profile(activities=activities) as prof:
        for _ in range(passes):
            forward()
        sync(device)

    device_us: dict[str, float] = defaultdict(float)
    host_us: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    kernels: dict[str, int] = defaultdict(int)
    by_kernel: dict[str, Counter[str]] = defaultdict(Counter)  # device µs per kernel name, per part
    for event in prof.events():
        if event.device_type != DeviceType.CPU or not event.name.startswith(PREFIX):
            continue
        label = event.name[len(PREFIX) :]
        calls[label] += 1
        host_us[label] += event.cpu_time_total
        if cuda:
            us, count = _device_work(event, by_kernel[label])
            device_us[label] += us
            kernels[label] += count
    named = [label for label in calls if label not in (FEATURE_EXTRACTOR, POSENET)]
    total_key = device_us if cuda else host_us
    total = total_key[FEATURE_EXTRACTOR] + total_key[POSENET]
    measured = {
        label: _part(label, calls, host_us, device_us, kernels, passes, total, cuda)
        for label in [*named, FEATURE_EXTRACTOR, POSENET]
    }
    for label in named if cuda else ():  # the kernels that take a part's time, by name
        top = by_kernel[label].most_common(TOP_KERNELS)
        measured[label]["top_kernels"] = [{"name": n, "ms_per_pass": us / 1e3 / passes} for n, us in top]
    whole = measured[FEATURE_EXTRACTOR]
    other = {k: whole[k] - sum(measured[label][k] for label in named) for k in whole if k != "calls_per_pass"}
    # in network order: the feature extractor's parts, the rest of it, its total, then PoseNet
    parts = {**{label: measured[label] for label in named}, OTHER: other}
    parts |= {FEATURE_EXTRACTOR: whole, POSENET: measured[POSENET]}
    result = {
        "batch_size": images.shape[0],
        "dtype": str(dtype or torch.float32).removeprefix("torch."),
        "passes": passes,
        "timed_by": "device" if cuda else "host",
        "ms_per_pass": total / 1e3 / passes,
        "parts": parts,
    }
    if cuda:  # every kernel of the passes, the input normalisation before the feature extractor included
        every = device_kernels(prof.events())
        result["device_ms_per_pass_all_kernels"] = sum(e.time_range.elapsed_us() for e in every) / 1e3 / passes
    return result


def device_kernels(events: Any) -> list[Any]:
    """Kernels, copies and memsets on the GPU (the profiler's device-side events). Not the device-side spans of
    ``record_function`` ranges (this module's parts, the optimiser's ``Optimizer.step#AdamW.step``): they overlap the
    kernels they hold, which would then count twice (torch's own summary table leaves them out the same way)."""
    return [e for e in events if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]


def _device_work(event: Any, by_kernel: Counter[str]) -> tuple[float, int]:
    """Device microseconds and the number of kernels (copies, memsets) launched inside a CPU range, its child
    operations' included; each kernel's time is also added to ``by_kernel`` under its name. The device-side copies
    of the ranges themselves (Kineto's GPU user annotations, which span the kernels they hold) are left out wherever
    the profiler attached them, so that nothing counts twice."""
    own = [k for k in event.kernels if not k.name.startswith(PREFIX)]
    for k in own:
        by_kernel[k.name] += k.duration
    us, count = float(sum(k.duration for k in own)), len(own)
    for child in event.cpu_children:
        child_us, child_count = _device_work(child, by_kernel)
        us, count = us + child_us, count + child_count
    return us, count


def _part(
    label: str,
    calls: dict[str, int],
    host_us: dict[str, float],
    device_us: dict[str, float],
    kernels: dict[str, int],
    passes: int,
    total_us: float,
    cuda: bool,
) -> dict[str, float]:
    part = {"calls_per_pass": calls[label] / passes, "host_ms_per_pass": host_us[label] / 1e3 / passes}
    if cuda:
        part["device_ms_per_pass"] = device_us[label] / 1e3 / passes
        part["kernels_per_pass"] = kernels[label] / passes
    timed = device_us[label] if cuda else host_us[label]
    part["share"] = timed / total_us if total_us > 0 else 0.0
    return part
