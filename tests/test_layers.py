"""Building blocks of InterNet+ (paper §4.1-4.2) against their formulas, on random inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from internet_plus.models.layers import (
    AconC,
    CoordinateAttention,
    InvertedResidual,
    MetaAconC,
    MultiSpectralAttention,
    SqueezeExcite,
    acon_c,
    dct_filters,
    get_freq_indices,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _randomize_bn(module: nn.Module) -> None:
    """Random affine parameters and running statistics, so eval-mode BN is not the identity."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)


def _bn_eval(y: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode BN on N×C×... with C on axis 1, written out."""
    shape = (1, -1) + (1,) * (y.dim() - 2)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (y - bn.running_mean.view(shape)) * scale.view(shape) + bn.bias.view(shape)


def _hswish(y: torch.Tensor) -> torch.Tensor:
    return y * torch.clamp(y + 3, 0, 6) / 6


def _conv1x1(y: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1×1 conv on N×C×L (channels on axis 1) as a matrix product."""
    w = conv.weight[:, :, 0, 0]
    out = torch.einsum("oc,ncl->nol", w, y)
    return out + conv.bias.view(1, -1, 1) if conv.bias is not None else out


# ---------------------------------------------------------------------------------------------- coordinate attention


@pytest.mark.parametrize(("channels", "mip"), [(16, 8), (256, 8), (768, 24), (2880, 90)])
def test_coordinate_attention_width_and_parameters(channels: int, mip: int) -> None:
    ca = CoordinateAttention(channels)
    assert ca.mip == mip == max(8, channels // 32)
    assert sum(p.numel() for p in ca.parameters()) == 3 * channels * mip + 2 * channels + 3 * mip


def test_coordinate_attention_matches_direct_computation() -> None:
    n, c, h, w = 2, 48, 5, 7
    ca = CoordinateAttention(c).eval()
    _randomize_bn(ca)
    for conv in (ca.conv1, ca.conv_h, ca.conv_w):
        nn.init.normal_(conv.bias, std=0.3)
    x = torch.randn(n, c, h, w)
    z_h = torch.mean(x, dim=3)  # N×C×H
    z_w = torch.mean(x, dim=2)  # N×C×W
    f = _hswish(_bn_eval(_conv1x1(torch.cat([z_h, z_w], dim=2), ca.conv1), ca.bn1))
    a_h = torch.sigmoid(_conv1x1(f[:, :, :h], ca.conv_h))  # N×C×H
    a_w = torch.sigmoid(_conv1x1(f[:, :, h:], ca.conv_w))  # N×C×W
    expected = x * a_h[:, :, :, None] * a_w[:, :, None, :]
    with torch.no_grad():
        torch.testing.assert_close(ca(x), expected, rtol=1e-5, atol=1e-6)


def test_coordinate_attention_trains_at_any_size() -> None:
    ca = CoordinateAttention(32).train()
    x = torch.randn(2, 32, 3, 9, requires_grad=True)
    out = ca(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None


# ------------------------------------------------------------------------------------------------------------- ACON


def _smooth_max(a: torch.Tensor, b: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 1 for n = 2: Σ x_i e^{β x_i} / Σ e^{β x_i}."""
    ea, eb = torch.exp(beta * a), torch.exp(beta * b)
    return (a * ea + b * eb) / (ea + eb)


def test_acon_c_is_the_smooth_maximum_of_eq1_and_eq4() -> None:
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    p1, p2 = torch.randn(1, 4, 1, 1, dtype=torch.float64), torch.randn(1, 4, 1, 1, dtype=torch.float64)
    beta = torch.rand(1, 4, 1, 1, dtype=torch.float64) * 2
    eq4 = (p1 - p2) * x * torch.sigmoid(beta * (p1 - p2) * x) + p2 * x
    torch.testing.assert_close(acon_c(x, p1, p2, beta), eq4)
    torch.testing.assert_close(acon_c(x, p1, p2, beta), _smooth_max(p1 * x, p2 * x, beta))


def test_acon_c_limits() -> None:
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    p1, p2 = torch.randn(1, 8, 1, 1, dtype=torch.float64), torch.randn(1, 8, 1, 1, dtype=torch.float64)
    zero = torch.zeros(1, 8, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(acon_c(x, p1, p2, zero), (p1 * x + p2 * x) / 2)
    huge = torch.full((1, 8, 1, 1), 1e9, dtype=torch.float64)
    torch.testing.assert_close(acon_c(x, p1, p2, huge), torch.maximum(p1 * x, p2 * x), rtol=0, atol=1e-7)
    # η_a = x, η_b = 0 and β = 1 is Swish / SiLU (ACON-A)
    one = torch.ones(1, 8, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(acon_c(x, one, zero, one), F.silu(x))


def test_acon_c_module_parameters() -> None:
    act = AconC(16)
    assert {name: tuple(p.shape) for name, p in act.named_parameters()} == {
        "p1": (1, 16, 1, 1),
        "p2": (1, 16, 1, 1),
        "beta": (1, 16, 1, 1),
    }
    assert torch.equal(act.beta, torch.ones(1, 16, 1, 1))
    x = torch.randn(2, 16, 3, 3)
    torch.testing.assert_close(act(x), acon_c(x, act.p1, act.p2, act.beta))
    act.train()(torch.randn(1, 16, 3, 3))  # no batch-size limit


@pytest.mark.parametrize(("channels", "params"), [(16, 640), (64, 2 * 64 * 16 + 3 * 16 + 5 * 64), (512, None)])
def test_meta_acon_c_parameters(channels: int, params: int | None) -> None:
    act = MetaAconC(channels, r=16)
    hidden = max(16, channels // 16)
    assert act.fc1.out_channels == hidden and act.fc1.bias is not None and act.fc2.bias is not None
    expected = 2 * channels * hidden + 3 * hidden + 5 * channels
    assert sum(p.numel() for p in act.parameters()) == expected
    if params is not None:
        assert expected == params


def test_meta_acon_c_beta_by_hand() -> None:
    act = MetaAconC(32, r=16).eval()
    _randomize_bn(act)
    x = torch.randn(3, 32, 6, 5)
    s = x.sum(dim=(2, 3)) / 30  # GAP, N×C
    h = _bn_eval(s @ act.fc1.weight[:, :, 0, 0].T + act.fc1.bias, act.bn1)  # no nonlinearity in between
    beta = torch.sigmoid(_bn_eval(h @ act.fc2.weight[:, :, 0, 0].T + act.fc2.bias, act.bn2))[:, :, None, None]
    with torch.no_grad():
        torch.testing.assert_close(act.switching_factor(x), beta)
        dpx = (act.p1 - act.p2) * x
        torch.testing.assert_close(act(x), dpx * torch.sigmoid(beta * dpx) + act.p2 * x)


def test_meta_acon_c_batch_of_one_in_training_is_a_clear_error() -> None:
    act = MetaAconC(16).train()
    with pytest.raises(ValueError, match=r"MetaAconC got a training batch of 1 sample.*>= 2"):
        act(torch.randn(1, 16, 4, 4))
    assert act(torch.randn(2, 16, 4, 4)).shape == (2, 16, 4, 4)
    with torch.no_grad():
        assert act.eval()(torch.randn(1, 16, 4, 4)).shape == (1, 16, 4, 4)


# ----------------------------------------------------------------------------------------------------------- FcaNet


def test_frequency_lists() -> None:
    u, v = get_freq_indices("top16")
    assert u == [0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2]
    assert v == [0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2]
    assert get_freq_indices("low4") == ([0, 0, 1, 1], [0, 1, 0, 1])
    assert get_freq_indices("bot1") == ([6], [6])
    for family in ("top", "bot", "low"):
        u32, v32 = get_freq_indices(f"{family}32")
        assert len(set(zip(u32, v32, strict=True))) == 32  # distinct frequencies
        assert all(0 <= f < 7 for f in u32 + v32)
        for n in (1, 2, 4, 8, 16):
            assert get_freq_indices(f"{family}{n}") == (u32[:n], v32[:n])
    with pytest.raises(ValueError, match="top3"):
        get_freq_indices("top3")


def _one_filter_per_group(filters: torch.Tensor, num_freq: int) -> torch.Tensor:
    group = filters.shape[0] // num_freq
    return filters[::group].reshape(num_freq, -1).double()


@pytest.mark.parametrize("size", [8, 7])
@pytest.mark.parametrize("method", ["top16", "low32", "bot32"])
def test_dct_filters_are_orthonormal(size: int, method: str) -> None:
    num = int(method[3:])
    filters = dct_filters(num * 2, size, size, method)
    assert filters.shape == (num * 2, size, size)
    assert torch.equal(filters[0], filters[1])  # channel groups share their frequency
    basis = _one_filter_per_group(filters, num)
    torch.testing.assert_close(basis @ basis.T, torch.eye(num, dtype=torch.float64), rtol=0, atol=1e-6)


def test_dct_dc_filter_is_scaled_global_average_pooling() -> None:
    filters = dct_filters(16, 8, 8, "top16")
    torch.testing.assert_close(filters[0], torch.full((8, 8), 1 / 8.0))  # (u, v) = (0, 0): 1/√(HW)
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close((x * filters[0]).sum(dim=(2, 3)), math.sqrt(64) * x.mean(dim=(2, 3)))


def test_dct_filter_formula_and_index_scaling() -> None:
    def basis(freq: int, n: int) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.float64)
        return torch.cos(math.pi * freq * (pos + 0.5) / n) / math.sqrt(n) * (math.sqrt(2) if freq else 1.0)

    u, v = get_freq_indices("top16")
    for size, scale in ((7, 1), (8, 1), (14, 2)):
        filters = dct_filters(32, size, size, "top16")
        for k in range(16):
            expected = torch.outer(basis(u[k] * scale, size), basis(v[k] * scale, size)).float()
            torch.testing.assert_close(filters[2 * k], expected)
            torch.testing.assert_close(filters[2 * k + 1], expected)
    # u indexes the height axis, v the width axis
    rect = dct_filters(16, 7, 14, "top16")
    torch.testing.assert_close(rect[3], torch.outer(basis(u[3], 7), basis(v[3] * 2, 14)).float())


def test_dct_filters_reject_bad_sizes() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        dct_filters(40, 8, 8, "top16")
    with pytest.raises(ValueError, match="at least 7"):
        dct_filters(32, 4, 4, "top16")
    with pytest.raises(ValueError, match="multiple of 16"):
        MultiSpectralAttention(24)


def _fca_by_hand(layer: MultiSpectralAttention, x: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    y = (pooled * dct_filters(layer.channels, *layer.dct_size, layer.freq_sel)).sum(dim=(2, 3))
    w1, w2 = layer.fc[0].weight, layer.fc[2].weight
    return x * torch.sigmoid(torch.relu(y @ w1.T) @ w2.T)[:, :, None, None]


def test_multi_spectral_attention_matches_formula() -> None:
    layer = MultiSpectralAttention(64, dct_size=(8, 8), reduction=16)
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _fca_by_hand(layer, x, x))


@pytest.mark.parametrize(("dct", "size"), [(7, 8), (8, 16), (8, 4)])
def test_multi_spectral_attention_pools_other_sizes(dct: int, size: int) -> None:
    layer = MultiSpectralAttention(32, dct_size=dct, reduction=16)
    x = torch.randn(2, 32, size, size)
    with torch.no_grad():
        out = layer(x)
        torch.testing.assert_close(out, _fca_by_hand(layer, x, F.adaptive_avg_pool2d(x, dct)))
    assert out.shape == x.shape  # the original, unpooled x is rescaled


def test_multi_spectral_attention_dct_is_a_buffer() -> None:
    layer = MultiSpectralAttention(1280, dct_size=8)
    params = dict(layer.named_parameters())
    assert set(params) == {"fc.0.weight", "fc.2.weight"}
    assert all(p.shape in {(80, 1280), (1280, 80)} for p in params.values())
    assert sum(p.numel() for p in params.values()) == 2 * 1280**2 // 16 == 204_800
    assert layer.fc[0].bias is None and layer.fc[2].bias is None
    state = layer.state_dict()
    assert "dct_weight" in state and state["dct_weight"].shape == (1280, 8, 8)
    assert "dct_weight" not in params
    assert not layer.dct_weight.requires_grad


# ---------------------------------------------------------------------------------------------------------------- SE


@pytest.mark.parametrize("act", [nn.ReLU, nn.Hardswish])
def test_squeeze_excite_by_hand(act: type[nn.Module]) -> None:
    se = SqueezeExcite(32, reduction=4, act=act)
    nn.init.normal_(se.fc1.bias)
    nn.init.normal_(se.fc2.bias)
    assert sum(p.numel() for p in se.parameters()) == 2 * 32 * 8 + 8 + 32
    x = torch.randn(2, 32, 5, 6)
    s = x.mean(dim=(2, 3))
    h = s @ se.fc1.weight[:, :, 0, 0].T + se.fc1.bias
    h = torch.relu(h) if act is nn.ReLU else _hswish(h)
    scale = torch.clamp((h @ se.fc2.weight[:, :, 0, 0].T + se.fc2.bias) / 6 + 0.5, 0, 1)  # hard sigmoid
    with torch.no_grad():
        torch.testing.assert_close(se(x), x * scale[:, :, None, None])


# -------------------------------------------------------------------------------------------------- inverted residual


def _silence_projection(block: InvertedResidual) -> None:
    """Zero the projection BN so the residual branch outputs exactly 0."""
    bn = block.project[1]
    nn.init.zeros_(bn.weight)
    nn.init.zeros_(bn.bias)


def test_inverted_residual_shortcut_present() -> None:
    block = InvertedResidual(24, 24, kernel=3, stride=1, expansion=3, act="relu", attention="none").eval()
    assert block.use_shortcut
    _silence_projection(block)
    x = torch.randn(2, 24, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)


@pytest.mark.parametrize(("in_ch", "out_ch", "stride"), [(24, 40, 1), (24, 24, 2), (24, 40, 2)])
def test_inverted_residual_shortcut_absent(in_ch: int, out_ch: int, stride: int) -> None:
    block = InvertedResidual(in_ch, out_ch, kernel=5, stride=stride, expansion=3, act="hswish", attention="ca").eval()
    assert not block.use_shortcut
    _silence_projection(block)
    with torch.no_grad():
        out = block(torch.randn(2, in_ch, 8, 8))
    assert out.shape == (2, out_ch, 8 // stride, 8 // stride)
    assert torch.count_nonzero(out) == 0


def test_inverted_residual_structure() -> None:
    block = InvertedResidual(24, 40, kernel=5, stride=2, expansion=2.5, act="hswish", attention="ca")
    assert block.hidden == 60 == round(24 * 2.5)
    expand, dw = block.expand[0], block.depthwise[0]
    assert expand.kernel_size == (1, 1) and expand.bias is None and isinstance(block.expand[2], nn.Hardswish)
    assert dw.kernel_size == (5, 5) and dw.stride == (2, 2) and dw.padding == (2, 2) and dw.groups == 60
    assert dw.bias is None and isinstance(block.depthwise[2], nn.Hardswish)
    assert isinstance(block.attention, CoordinateAttention) and block.attention.channels == 60
    assert block.project[0].bias is None and len(block.project) == 2  # linear bottleneck: no activation
    se_block = InvertedResidual(24, 40, kernel=5, stride=2, expansion=3, act="relu", attention="se")
    assert isinstance(se_block.attention, SqueezeExcite) and isinstance(se_block.attention.act, nn.ReLU)
    assert isinstance(InvertedResidual(24, 40, 3, 1, 3, "relu", "none").attention, nn.Identity)


def test_inverted_residual_rejects_unknown_options() -> None:
    with pytest.raises(ValueError, match="activation"):
        InvertedResidual(8, 8, 3, 1, 3, act="gelu")
    with pytest.raises(ValueError, match="attention"):
        InvertedResidual(8, 8, 3, 1, 3, attention="cbam")
