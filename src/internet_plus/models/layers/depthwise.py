"""The depthwise convolution of InterNet+'s inverted residual blocks (paper §4.1.1, Figure 3), with a faster weight
gradient on the CPU.

The layer is an ``nn.Conv2d`` with ``groups == channels`` (same arguments, parameters and state-dict keys). Its
forward value is ``nn.Conv2d``'s. Only the backward changes, and only in float32 training on the CPU for kernels of
at least 5×5: the weight gradient is computed by oneDNN on channels-last copies of the input and of the output
gradient, the input gradient as usual.

Why: oneDNN's weight-gradient kernel for depthwise 5×5 convolutions on NCHW tensors is several times slower than its
NHWC one, while the forward pass and the input gradient are fast in NCHW, and NHWC everywhere would slow the rest of
the network (batch norm's backward, the 1×1 convolutions' layout changes). Measured on a 2-core Xeon (AVX-512),
batch 8, the weight gradient alone, NCHW -> NHWC including both layout copies: 120 channels at 32×32 17.7 -> 4.2 ms,
72 channels 64 -> 32 (stride 2) 11.4 -> 4.2 ms, 48 channels 128 -> 64 (stride 2) 20.5 -> 17.6 ms, 480 channels at
16×16 6.9 -> 4.5 ms. For 3×3 kernels NCHW is faster (768 channels: 0.8 vs 2.6 ms), hence the threshold
:attr:`DepthwiseConv2d.channels_last_weight_grad_min_kernel`. About 30 ms of InterNet+'s 2 s training step at
batch 8 (``experiments/performance/README.md``).

The gradients equal autograd's up to floating-point summation order (``tests/test_depthwise.py``). Under autocast,
on other devices, with a bias, or for smaller kernels the layer is exactly ``nn.Conv2d``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable


class _DepthwiseConvChannelsLastWeightGrad(torch.autograd.Function):
    """Bias-free depthwise convolution whose weight gradient runs on channels-last copies (see the module docstring)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int]
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = list(stride), list(padding)
        return F.conv2d(x, weight, None, stride, padding, 1, weight.shape[0])

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        args = (None, ctx.stride, ctx.padding, [1, 1], False, [0, 0], weight.shape[0])
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad_out, x, weight, *args, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            nhwc = torch.channels_last
            grad_w = torch.ops.aten.convolution_backward(
                grad_out.contiguous(memory_format=nhwc),
                x.contiguous(memory_format=nhwc),
                weight,
                *args,
                [False, True, False],
            )[1]
            # Same memory, the weight's own strides: the gradient of a C×1×k×k weight comes back with channels-last
            # strides for the size-1 dimension, which DDP's gradient buckets report as a layout mismatch.
            grad_w = grad_w.as_strided(weight.size(), weight.stride())
        return grad_x, grad_w, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(channels, channels, kernel, stride, padding, groups=channels, bias=False)`` with a faster CPU
    weight gradient for large kernels (module docstring)."""

    #: Smallest kernel side whose weight gradient runs channels-last on the CPU (measured: 5×5 gains, 3×3 loses).
    channels_last_weight_grad_min_kernel: int = 5

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, bias: bool = False) -> None:
        super().__init__(
            channels, channels, kernel_size, stride=stride, padding=kernel_size // 2, groups=channels, bias=bias
        )

    def _use_channels_last_weight_grad(self, x: torch.Tensor) -> bool:
        return (
            torch.is_grad_enabled()
            and self.weight.requires_grad
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and self.bias is None
            and self.padding_mode == "zeros"
            and x.is_contiguous()
            and min(self.kernel_size) >= self.channels_last_weight_grad_min_kernel
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self._use_channels_last_weight_grad(x):
            return _DepthwiseConvChannelsLastWeightGrad.apply(x, self.weight, self.stride, self.padding)
        return super().forward(x)


__all__ = ["DepthwiseConv2d"]
