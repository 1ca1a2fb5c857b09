"""Opt-in CPU speed-ups behind one switch, ``accel: auto | off`` (the root key of ``train.yaml``, ``eval.yaml`` and
``predict.yaml``).

The model classes are plain PyTorch and the paper's own layers. What this module holds changes no result, only how
fast the CPU computes it, and is applied *after* the model is built, by swapping modules or setting the allocator:

* **Freed memory kept in the process** (:func:`keep_freed_memory`). glibc's ``malloc`` serves every request above
  its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it when the tensor dies. InterNet's heatmap
  volumes are 44 MiB per image (42×64³ floats), so every pass would map them anew and pay a page fault per 4 KiB
  page. ``mallopt(M_MMAP_MAX, 0)`` and a high ``M_TRIM_THRESHOLD`` keep that memory for reuse (PyTorch's CPU
  performance guides give the same advice through jemalloc or tcmalloc). The resident set stays at its peak.
  Applied to training and inference.
* **PoseNet's first deconvolution as one matrix product plus a col2im** (:class:`GemmConvTranspose2d`). A
  transposed convolution scatters, for every input pixel, the product of its C input values with the
  C × C_out·k·k weight into a k×k patch of the output; summing the overlapping patches is ``F.fold``, so
  ``conv_transpose2d(x, W) = fold(X @ W)`` with X the B·h·w × C matrix of input pixels. The first deconvolution of
  each heatmap branch reads 2048 channels on an 8×8 map, where oneDNN's transposed convolution runs far below the
  machine's matmul rate and one GEMM runs near it. Applied to inference (test, predict, the inference copies).

``auto`` applies each where it was measured to help by at least 5 % of a step, on the CPU only (the figures are in
``experiments/performance/README.md``); on any other accelerator it does nothing. ``off`` applies nothing. Tricks
measured below 5 % of a step were removed rather than kept behind the switch (the depthwise weight-gradient path,
the fused optimiser step; see the same page). Swapped layers keep their parameters and state-dict keys, so
checkpoints load either way; the tests (``tests/test_accel.py``) check values and gradients against the plain
layers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.accelerators import CPUAccelerator
from torch import nn

log = logging.getLogger(__name__)

ACCEL_MODES = ("auto", "off")

#: ``mallopt`` parameters (glibc ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: The heap is trimmed only when more than this much is free at its top (mallopt takes a C int: 2 GiB − 1).
TRIM_THRESHOLD_BYTES = 2**31 - 1

_memory_kept = False


def check_accel(mode: str) -> str:
    """``mode`` if it is one of :data:`ACCEL_MODES`, else a ``ValueError`` naming the valid ones."""
    if mode not in ACCEL_MODES:
        raise ValueError(f"accel={mode!r} is not a mode; valid: {', '.join(ACCEL_MODES)}")
    return mode


def applies(mode: str, device: torch.device | str) -> bool:
    """Whether ``accel=mode`` changes anything on ``device`` (``auto`` on the CPU)."""
    return check_accel(mode) == "auto" and torch.device(device).type == "cpu"


# ------------------------------------------------------------------------------------------------ the allocator
def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (see the module docstring); True when applied (idempotent)."""
    global _memory_kept
    if _memory_kept:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        log.info("accel: not glibc (%s), allocator left as it is", platform.libc_ver()[0] or "unknown")
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    except (OSError, AttributeError) as err:  # no libc to load, or no mallopt in it
        log.info("accel: mallopt unavailable (%s)", err)
        return False
    _memory_kept = ok
    return ok


# ------------------------------------------------------------------------------------- GEMM + col2im deconvolution
def conv_transpose2d_gemm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, bias, stride, padding)`` as GEMM + fold (groups 1, dilation 1, no output
    padding). Autograd differentiates both (``fold``'s backward is ``unfold``)."""
    b, c, h, w = x.shape
    k_h, k_w = weight.shape[-2:]
    (s_h, s_w), (p_h, p_w) = stride, padding
    rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c)  # free for a channels-last input
    cols = (rows @ weight.reshape(c, -1)).view(b, h * w, -1).transpose(1, 2)
    out_h, out_w = (h - 1) * s_h - 2 * p_h + k_h, (w - 1) * s_w - 2 * p_w + k_w
    # Under 16-bit autocast the matmul gives 16-bit columns; their overlapping patches are summed in float32, as a
    # convolution accumulates, and rounded once.
    wide = cols.float() if cols.dtype in (torch.bfloat16, torch.float16) else cols
    out = F.fold(wide, (out_h, out_w), (k_h, k_w), stride=(s_h, s_w), padding=(p_h, p_w))
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1).to(out.dtype)
    return out.to(cols.dtype)


class GemmConvTranspose2d(nn.ConvTranspose2d):
    """An ``nn.ConvTranspose2d`` (same arguments, parameters and state-dict keys) computed as GEMM + fold on the CPU.

    Only groups 1, dilation 1 and no output padding are supported; anything else is refused when the layer is
    built. On a non-CPU device the forward is ``nn.ConvTranspose2d``'s.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.groups != 1 or self.dilation != (1, 1) or self.output_padding != (0, 0):
            raise ValueError(
                f"GemmConvTranspose2d needs groups=1, dilation 1 and no output padding, got groups={self.groups}, "
                f"dilation={self.dilation}, output_padding={self.output_padding}"
            )

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        """``Module._apply`` (``.to``, ``.cuda``, …), then the weight back in the standard layout, which the GEMM reads
        as a C × C_out·k·k matrix without a copy (``.to(memory_format=torch.channels_last)`` would otherwise make every
        forward copy it)."""
        super()._apply(fn, recurse)
        if not self.weight.is_contiguous():
            self.weight.data = self.weight.data.contiguous()
        return self

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:  # noqa: D102
        if x.device.type != "cpu" or x.dim() != 4 or output_size is not None:
            return super().forward(x, output_size)
        return conv_transpose2d_gemm(x, self.weight, self.bias, self.stride, self.padding)  # type: ignore[arg-type]


def _first_deconvolutions(model: nn.Module) -> list[nn.ConvTranspose2d]:
    """The first layer of every PoseNet heatmap branch (separate or merged) that GEMM can compute."""
    from internet_plus.models.inference import MergedHeatmapBranches
    from internet_plus.models.posenet import HeatmapBranch

    found = []
    for module in model.modules():
        if isinstance(module, (HeatmapBranch, MergedHeatmapBranches)):
            layer = (module.layers if isinstance(module, MergedHeatmapBranches) else module)[0]
            gemm_ready = layer.groups == 1 and layer.dilation == (1, 1) and layer.output_padding == (0, 0)
            if isinstance(layer, nn.ConvTranspose2d) and gemm_ready:
                found.append(layer)
    return found


def gemm_first_deconvolutions(model: nn.Module) -> int:
    """Compute PoseNet's first deconvolutions as GEMM + fold, in place (the same layer objects and parameters, so an
    optimiser holding them keeps working); the number of layers changed."""
    changed = 0
    for layer in _first_deconvolutions(model):
        if type(layer) is nn.ConvTranspose2d:
            layer.__class__ = GemmConvTranspose2d
            layer.weight.data = layer.weight.data.contiguous()  # the layout the GEMM reads without a copy
            changed += 1
    return changed


def plain_first_deconvolutions(model: nn.Module) -> int:
    """Undo :func:`gemm_first_deconvolutions` (oneDNN's kernel again, e.g. to measure what the GEMM buys)."""
    changed = 0
    for layer in _first_deconvolutions(model):
        if type(layer) is GemmConvTranspose2d:
            layer.__class__ = nn.ConvTranspose2d
            changed += 1
    return changed


# --------------------------------------------------------------------------------------------------- the switch
def accelerate_inference(model: nn.Module, mode: str) -> nn.Module:
    """Apply ``accel=mode`` to a model about to run inference on its own device (in place; returns it)."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    if applies(mode, device):
        keep_freed_memory()
        gemm_first_deconvolutions(model)
    return model


class Accel(pl.Callback):
    """``accel=mode`` for a Lightning run: on the CPU accelerator with ``auto``, freed memory is kept for every stage
    and PoseNet's first deconvolutions run as GEMM while testing and predicting; the training step keeps the plain
    layers (their gain there is under 5 %). The module leaves each stage with the layers it was built with."""

    def __init__(self, mode: str = "auto") -> None:
        self.mode = check_accel(mode)

    def _active(self, trainer: pl.Trainer) -> bool:
        return self.mode == "auto" and isinstance(trainer.accelerator, CPUAccelerator)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:  # noqa: D102
        if self._active(trainer):
            keep_freed_memory()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if self._active(trainer):
            gemm_first_deconvolutions(pl_module)

    on_predict_start = on_test_start

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        plain_first_deconvolutions(pl_module)

    on_predict_end = on_test_end


__all__ = [
    "ACCEL_MODES",
    "Accel",
    "GemmConvTranspose2d",
    "accelerate_inference",
    "applies",
    "check_accel",
    "conv_transpose2d_gemm",
    "gemm_first_deconvolutions",
    "keep_freed_memory",
    "plain_first_deconvolutions",
]
