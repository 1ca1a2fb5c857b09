"""Coordinate attention written other ways, timed inside InterNet+, for the GPU check's ``profile`` section.

The H200's recorded tables put about half of InterNet+'s GPU time in its seven coordinate-attention modules (paper
§4.1.2; see :mod:`~internet_plus.tools.gpu_check.components`). The part-by-part profile names the kernels; this
measures what other formulations of the same module, equal in exact arithmetic, would buy on the whole network, so
that a change to the model is chosen by a measurement:

- ``as built``: :class:`~internet_plus.models.layers.CoordinateAttention` (Hou et al.'s formulation: 1×1
  convolutions over the pooled N×C×(H+W)×1 strip);
- ``1×1 convolutions as matrix products``: the same weights applied by ``F.linear`` to the strip laid out as
  N×(H+W)×C, a plain GEMM instead of a convolution over a one-pixel-wide map (:func:`attention_as_matmuls`; the same
  parameters and state, so a checkpoint is unchanged);
- ``channels-last``: the whole model and its input in channels-last memory format (cuDNN's NHWC kernels);
- ``without attention``: the module replaced by the identity. This is not the paper's network but the floor: what
  the stage costs at most.

Both the eval forward pass at the smallest and largest inference batch (float16 on a GPU) and the training step at
the paper's batch under the check's mixed precision (forward, InterNet's loss, backward, fused AdamW: the training
goal's ratio) are timed. Each formulation's outputs, and its first training loss from the same weights, are compared
with the as-built ones within the precision's tolerance; the identity is not compared. The model is restored after
each formulation.
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
from internet_plus.tools.benchmark import autocast, build_model, synthetic_batch, training_step_fn
from internet_plus.tools.gpu_check.compiled_training import FIRST_LOSS_RTOL
from internet_plus.tools.gpu_check.helpers import calibrated_internet_plus, output_errors
from internet_plus.tools.gpu_check.settings import AUTOCAST, PARITY_RTOL, Report, Settings
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
    f = h-swish(BN(z·W1ᵀ + b1)), a_h = σ(f_h·W_hᵀ + b_h), a_w = σ(f_w·W_wᵀ + b_w), out = x · a_h · a_w. The module's
    own BatchNorm runs on the strip (as a N×mip×(H+W)×1 view), so training and eval mode, and the running statistics'
    updates, are those of ``module(x)``."""
    h = x.shape[2]
    strip = torch.cat([x.mean(dim=3), x.mean(dim=2)], dim=2).transpose(1, 2)  # N×(H+W)×C
    y = F.linear(strip, module.conv1.weight.flatten(1), module.conv1.bias)  # N×(H+W)×mip
    y = module.act(module.bn1(y.transpose(1, 2).unsqueeze(3))).squeeze(3).transpose(1, 2)  # N×(H+W)×mip
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
    (float32 in the CPU dry run), beside the as-built module's, and its training step (:func:`training_variants`)."""
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
    return {"precision": pname, "results": results, "training": training_variants(settings, report)}


def training_variants(settings: Settings, report: Report) -> dict[str, Any]:
    """Each formulation's training step at the paper's batch under the check's precision: s/iteration (median after
    the warm-up) and the first loss, every formulation from the same initial weights."""
    device = torch.device(settings.device)
    precision = settings.compiled_precision
    torch.manual_seed(0)
    model = build_model("internet_plus", settings.input_size).to(device).train()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    batch = synthetic_batch(settings.batch_size, settings.input_size, device)
    entry: dict[str, Any] = {}
    for name in FORMULATIONS:
        model.load_state_dict(initial)
        with formulation(model, name) as layout:
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
            losses: list[float] = []
            laid_out = {**batch, "image": layout(batch["image"])}
            step = training_step_fn(model, laid_out, optimizer, amp_dtype=AUTOCAST[precision], losses=losses)
            median = statistics.median(timed_runs(step, device, settings.warmup, settings.repeats))
        entry[name] = {"time_per_iteration_s": median, "first_loss": losses[0]}
        if name not in (AS_BUILT, WITHOUT):
            ref = entry[AS_BUILT]["first_loss"]
            err = abs(losses[0] - ref) / abs(ref)
            entry[name]["first_loss_rel_err"] = err
            report.check(
                "profile",
                f"internet_plus training step: coordinate attention {name}, first loss == as built's",
                err <= FIRST_LOSS_RTOL[precision],
                f"{losses[0]:.6g} vs {ref:.6g}, relative {err:.1e} (tolerance {FIRST_LOSS_RTOL[precision]:g})",
            )
    for name in FORMULATIONS[1:]:
        entry[name]["speedup"] = entry[AS_BUILT]["time_per_iteration_s"] / entry[name]["time_per_iteration_s"]
    return {"precision": precision, "batch_size": settings.batch_size, "results": entry}
