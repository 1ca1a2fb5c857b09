"""The depthwise convolution with a channels-last weight gradient on the CPU (``models/layers/depthwise.py``) equals
``nn.Conv2d`` in value and gradients (every speed-up keeps a test that guards its exactness)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from internet_plus.models.layers.depthwise import DepthwiseConv2d
from internet_plus.models.layers.inverted_residual import InvertedResidual


def _pair(channels: int, kernel: int, stride: int) -> tuple[DepthwiseConv2d, nn.Conv2d]:
    torch.manual_seed(0)
    layer = DepthwiseConv2d(channels, kernel, stride=stride)
    reference = nn.Conv2d(channels, channels, kernel, stride=stride, padding=kernel // 2, groups=channels, bias=False)
    reference.load_state_dict(layer.state_dict())
    return layer, reference


@pytest.mark.parametrize(("channels", "kernel", "stride", "size"), [(12, 5, 1, 9), (8, 5, 2, 10), (16, 7, 2, 11)])
def test_channels_last_weight_gradient_equals_autograd(channels: int, kernel: int, stride: int, size: int) -> None:
    layer, reference = _pair(channels, kernel, stride)
    x = torch.randn(3, channels, size, size, requires_grad=True)
    assert layer._use_channels_last_weight_grad(x)  # the fast path is the one under test
    got, want = layer(x), reference(x)
    assert got.grad_fn is not None and "DepthwiseConvChannelsLastWeightGrad" in type(got.grad_fn).__name__
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    grad_out = torch.randn(want.shape)
    got_x, got_w = torch.autograd.grad(got, (x, layer.weight), grad_out)
    want_x, want_w = torch.autograd.grad(want, (x, reference.weight), grad_out)
    torch.testing.assert_close(got_x, want_x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-5)


def test_weight_gradient_alone_and_frozen_weights() -> None:
    """Input without grad (the first layer's case) and a frozen weight both work."""
    layer, reference = _pair(6, 5, 1)
    x = torch.randn(2, 6, 8, 8)
    (got_w,) = torch.autograd.grad(layer(x).square().sum(), layer.weight)
    (want_w,) = torch.autograd.grad(reference(x).square().sum(), reference.weight)
    torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-5)
    layer.weight.requires_grad_(False)
    x.requires_grad_(True)
    assert not layer._use_channels_last_weight_grad(x)
    (got_x,) = torch.autograd.grad(layer(x).sum(), x)
    (want_x,) = torch.autograd.grad(reference(x).sum(), x)
    torch.testing.assert_close(got_x, want_x)


def test_plain_path_where_the_fast_one_does_not_apply() -> None:
    """3×3 kernels, autocast, no grad and float64 use nn.Conv2d's own forward and backward."""
    small, _ = _pair(4, 3, 1)
    x = torch.randn(1, 4, 6, 6)
    assert not small._use_channels_last_weight_grad(x)
    large, _ = _pair(4, 5, 1)
    with torch.no_grad():
        assert not large._use_channels_last_weight_grad(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not large._use_channels_last_weight_grad(x)
    assert not large.double()._use_channels_last_weight_grad(x.double())


def test_inverted_residual_uses_it_with_the_conv2d_state_dict() -> None:
    block = InvertedResidual(8, 8, kernel=5, stride=1, expansion=3)
    assert type(block.depthwise[0]) is DepthwiseConv2d
    assert block.depthwise[0].groups == 24 and block.depthwise[0].bias is None
    assert "depthwise.0.weight" in block.state_dict()
