"""Coordinate attention written other ways, timed inside InterNet+, for the GPU check's ``profile`` section.

The H200's recorded tables put about half of InterNet+'s GPU time in its seven coordinate-attention modules (paper
§4.1.2; see :mod:`~internet_plus.tools.gpu_check.components`). The part-by-part profile names the kernels; this
measures what other formulations of the same module, equal in exact arithmetic, would buy on the whole eval forward
pass, so that a change to the model is chosen by a measurement:

- ``as built``: :class:`~internet_plus.models.layers.CoordinateAttention` (Hou et al.'s formulation: 1×1
  convolutions over the pooled N×C×(H+W)×1 strip);
- ``1×1 convolutions as matrix products``: the same weights applied by ``F.linear`` to the strip laid out as
  N×(H+W)×C, a plain GEMM instead of a convolution over a one-pixel-wide map (:func:`attention_as_matmuls`);
- ``channels-last``: the whole model and its input in channels-last memory format (cuDNN's NHWC kernels);
- ``without attention``: the module replaced by the identity. This is not the paper's network but the floor: what
  the stage costs at most.

Each formulation's outputs are compared with the as-built ones (relative L2 error, within the precision's
tolerance); the identity is not compared. The model is restored after each formulation.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import MethodType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from internet_plus.models.layers import CoordinateAttention
from internet_plus.tools.benchmark import autocast
from internet_plus.tools.gpu_check.helpers import calibrated_internet_plus, output_errors
from internet_plus.tools.gpu_check.settings import PARITY_RTOL, Report, Settings
from internet_plus.tools.timing import timed_runs

AS_BUILT, AS_MATMULS, CHANNELS_LAST, WITHOUT = (
    "as built",
    "1×1 convolutions as matrix products",
    "channels-last",
    "without attention",
)
FORMULATIONS = (AS_BUILT, AS_MATMULS, CHANNELS_LAST, WITHOUT)


def attention_as_matmuls(module: CoordinateAttention, x: torch.Tensor) -> torch.Tensor:
    """``module``'s output computed with matrix products: z = [mean over W, mean over H] as N×(H+W)×C, then
    f = h-swish(BN(z·W1ᵀ + b1)), a_h = σ(f_h·W_hᵀ + b_h), a_w = σ(f_w·W_wᵀ + b_w), out = x · a_h · a_w. Equal to
    ``module(x)`` in eval mode (BatchNorm with its running statistics), which is the only mode it is timed in."""
    if module.training:
        raise RuntimeError("attention_as_matmuls computes the eval-mode module (BatchNorm's running statistics)")
    h = x.shape[2]
    strip = torch.cat([x.mean(dim=3), x.mean(dim=2)], dim=2).transpose(1, 2)  # N×(H+W)×C
    bn = module.bn1
    y = F.linear(strip, module.conv1.weight.flatten(1), module.conv1.bias).transpose(1, 2)  # N×mip×(H+W)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    y = module.act(y).transpose(1, 2)  # N×(H+W)×mip
    a_h = torch.sigmoid(F.linear(y[:, :h], module.conv_h.weight.flatten(1), module.conv_h.bias))  # N×H×C
    a_w = torch.sigmoid(F.linear(y[:, h:], module.conv_w.weight.flatten(1), module.conv_w.bias))  # N×W×C
    return x * a_h.transpose(1, 2).unsqueeze(3) * a_w.transpose(1, 2).unsqueeze(2)


@contextmanager
def formulation(model: nn.Module, name: str) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """``model`` with its coordinate attention in formulation ``name``; yields how to lay out an input batch.
    Everything is put back on exit."""
    modules = [m for m in model.modules() if isinstance(m, CoordinateAttention)]
    layout: Callable[[torch.Tensor], torch.Tensor] = lambda images: images  # noqa: E731
    try:
        if name == AS_MATMULS:
            for m in modules:
                m.forward = MethodType(attention_as_matmuls, m)  # type: ignore[method-assign]
        elif name == WITHOUT:
            for m in modules:
                m.forward = MethodType(lambda _self, x: x, m)  # type: ignore[method-assign]
        elif name == CHANNELS_LAST:
            model.to(memory_format=torch.channels_last)
            layout = lambda images: images.contiguous(memory_format=torch.channels_last)  # noqa: E731
        elif name != AS_BUILT:
            raise ValueError(f"unknown formulation {name!r}; valid: {', '.join(FORMULATIONS)}")
        yield layout
    finally:
        for m in modules:
            m.__dict__.pop("forward", None)
        if name == CHANNELS_LAST:
            model.to(memory_format=torch.contiguous_format)


def attention_variants(settings: Settings, report: Report) -> dict[str, Any]:
    """Each formulation's images/s and outputs at the smallest and largest inference batch, float16 on a GPU
    (float32 in the CPU dry run), beside the as-built module's."""
    device = torch.device(settings.device)
    dtype = torch.float16 if device.type == "cuda" else None
    pname = "float16" if dtype is not None else "float32"
    model, inputs = calibrated_internet_plus(settings)
    results: dict[str, Any] = {}
    for bs, images in inputs.items():
        reference: dict[str, torch.Tensor] = {}
        entry: dict[str, Any] = {}
        for name in FORMULATIONS:
            with formulation(model, name) as layout:
                batch = layout(images)

                def forward(batch: torch.Tensor = batch) -> dict[str, torch.Tensor]:
                    with torch.inference_mode(), autocast(device, dtype):
                        return model(batch)

                out = {k: v.float().clone() for k, v in forward().items()}
                median = statistics.median(timed_runs(forward, device, settings.warmup, settings.repeats))
            entry[name] = {"images_per_s": bs / median, "ms_per_pass": 1e3 * median}
            if name == AS_BUILT:
                reference = out
            elif name != WITHOUT:
                errs = output_errors(out, reference)
                entry[name]["output_rel_err"] = errs
                report.check(
                    "profile",
                    f"internet_plus batch {bs}: coordinate attention {name} == as built, {pname}",
                    max(errs.values()) <= PARITY_RTOL[pname],
                    ", ".join(f"{k} {v:.1e}" for k, v in errs.items()) + f" (tolerance {PARITY_RTOL[pname]:g})",
                )
        for name in FORMULATIONS[1:]:
            entry[name]["speedup"] = entry[name]["images_per_s"] / entry[AS_BUILT]["images_per_s"]
        results[str(bs)] = entry
    return {"precision": pname, "results": results}
