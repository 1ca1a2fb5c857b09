"""PoseNet's first deconvolution as one matrix product plus a col2im (``F.fold``), on the CPU.

A transposed convolution scatters, for every input pixel, the product of its C input values with the
C × C_out·k·k weight into a k×k patch of the output at ``stride × position − padding``; summing the overlapping
patches is exactly ``F.fold``. So ``conv_transpose2d(x, W) = fold(X @ W)`` with X the B·h·w × C matrix of input
pixels and W reshaped to C × C_out·k·k. Autograd differentiates both (``fold``'s backward is ``unfold``), so the
same expression serves training and inference.

Why: PoseNet's first deconvolution (InterNet's head, ``models/posenet.py``) reads 2048 channels on an 8×8 map. oneDNN
runs that transposed convolution at about 40 % of the CPU's matmul rate; as one GEMM it runs near the rate. Measured
on a 2-core Xeon (AVX-512), batch 8, one hand branch: forward 51 -> 28 ms, forward + backward 112 -> 82 ms
(``experiments/performance/README.md``). For PoseNet's later deconvolutions (256 channels on 16×16 and 32×32) the
fold over the large output is slower than oneDNN, so only the first one uses it. On other devices the layer is a
plain ``nn.ConvTranspose2d`` (cuDNN's kernels need no such help).

The result equals ``conv_transpose2d`` up to floating-point summation order (tests:
``tests/test_inference_optimizations.py``, values and gradients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_transpose2d_gemm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, bias, stride, padding)`` as GEMM + fold (groups 1, dilation 1, no output
    padding)."""
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

    Only groups 1, dilation 1 and no output padding are supported (PoseNet's deconvolutions); anything else is
    refused when the layer is built. On a non-CPU device the forward is ``nn.ConvTranspose2d``'s.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if self.groups != 1 or self.dilation != (1, 1) or self.output_padding != (0, 0):
            raise ValueError(
                f"GemmConvTranspose2d needs groups=1, dilation 1 and no output padding, got groups={self.groups}, "
                f"dilation={self.dilation}, output_padding={self.output_padding}"
            )

    @classmethod
    def from_deconv(cls, deconv: nn.ConvTranspose2d) -> GemmConvTranspose2d:
        """A copy of ``deconv`` (weights, bias, device and dtype) as this class."""
        return _copy_as(cls, deconv)

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


def as_plain_deconv(layer: nn.ConvTranspose2d) -> nn.ConvTranspose2d:
    """The same layer as a plain ``nn.ConvTranspose2d`` (oneDNN's kernel on the CPU), e.g. to measure the GEMM path."""
    return _copy_as(nn.ConvTranspose2d, layer)


def _copy_as(cls: type[nn.ConvTranspose2d], layer: nn.ConvTranspose2d) -> nn.ConvTranspose2d:
    """``layer`` rebuilt as ``cls`` with the same geometry, weights, device, dtype and ``requires_grad``."""
    copy = cls(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,  # type: ignore[arg-type]
        stride=layer.stride,  # type: ignore[arg-type]
        padding=layer.padding,  # type: ignore[arg-type]
        output_padding=layer.output_padding,  # type: ignore[arg-type]
        groups=layer.groups,
        dilation=layer.dilation,  # type: ignore[arg-type]
        bias=layer.bias is not None,
        device=layer.weight.device,
        dtype=layer.weight.dtype,
    )
    copy.load_state_dict(layer.state_dict())
    copy.requires_grad_(layer.weight.requires_grad)
    return copy


__all__ = ["GemmConvTranspose2d", "as_plain_deconv", "conv_transpose2d_gemm"]
