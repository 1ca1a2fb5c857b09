"""PoseNet's first deconvolution as GEMM + col2im (``models/layers/gemm_deconv.py``) equals ``nn.ConvTranspose2d`` in
value and gradients (every speed-up keeps a test that guards its exactness)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from internet_plus.models.layers.gemm_deconv import GemmConvTranspose2d, as_plain_deconv
from internet_plus.models.posenet import PoseNet


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "bias", "channels_last"),
    [
        (4, 2, 1, False, True),
        (4, 2, 1, True, False),
        (3, 1, 1, True, True),
        (2, 2, 0, False, False),
        (5, 3, 2, True, True),
    ],
)
def test_gemm_conv_transpose_equals_conv_transpose_values_and_gradients(
    kernel: int, stride: int, padding: int, bias: bool, channels_last: bool
) -> None:
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(24, 10, kernel, stride=stride, padding=padding, bias=bias)
    gemm = GemmConvTranspose2d.from_deconv(deconv)
    assert gemm.state_dict().keys() == deconv.state_dict().keys()
    x = torch.randn(3, 24, 5, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    want, got = deconv(x), gemm(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    grad_out = torch.randn(want.shape)
    want_grads = torch.autograd.grad(want, (x, *deconv.parameters()), grad_out)
    got_grads = torch.autograd.grad(got, (x, *gemm.parameters()), grad_out)
    for w, g in zip(want_grads, got_grads, strict=True):
        assert (g - w).abs().max() <= 1e-5 * w.abs().max()


def test_gemm_conv_transpose_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(ValueError, match="groups=1"):
        GemmConvTranspose2d(4, 4, 4, stride=2, padding=1, groups=2)
    with pytest.raises(ValueError, match="output_padding"):
        GemmConvTranspose2d(4, 4, 4, stride=2, padding=1, output_padding=1)


def test_gemm_conv_transpose_keeps_its_weight_in_the_standard_layout() -> None:
    """``.to(channels_last)`` must not leave a weight that every forward would have to copy into a matrix."""
    layer = GemmConvTranspose2d(16, 8, 4, stride=2, padding=1).to(memory_format=torch.channels_last)
    assert layer.weight.is_contiguous()
    plain = as_plain_deconv(layer)
    assert type(plain) is nn.ConvTranspose2d and torch.equal(plain.weight, layer.weight)


def test_posenet_builds_its_first_deconvolution_with_the_gemm_layer() -> None:
    """Only the first (wide input, small map) deconvolution; the state-dict keys are those of nn.ConvTranspose2d."""
    posenet = PoseNet(in_channels=64, deconv_channels=16, depth_bins=4, root_depth_bins=4)
    for branch in (posenet.right_hand, posenet.left_hand):
        assert type(branch[0]) is GemmConvTranspose2d
        assert all(type(m) is nn.ConvTranspose2d for m in list(branch)[1:] if isinstance(m, nn.ConvTranspose2d))
    assert "right_hand.0.weight" in posenet.state_dict()


@pytest.mark.parametrize("bias", [False, True])
def test_gemm_conv_transpose_under_bfloat16_autocast_is_as_accurate_as_onednn(bias: bool) -> None:
    """16-bit columns are summed in float32 (as a convolution accumulates); the output keeps autocast's dtype."""
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(256, 64, 4, stride=2, padding=1, bias=bias)
    gemm = GemmConvTranspose2d.from_deconv(deconv)
    x = torch.randn(4, 256, 8, 8)
    with torch.no_grad():
        reference = deconv(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            onednn, got = deconv(x), gemm(x)
    assert got.dtype == onednn.dtype == torch.bfloat16
    scale = reference.abs().max()
    onednn_error = (onednn.float() - reference).abs().max() / scale
    assert (got.float() - reference).abs().max() / scale <= 1.25 * onednn_error
