"""The inverted residual block of InterNet+'s feature extractor (paper §4.1.1, Figure 3; MoGA's ``InvertedResidual``).

expand 1×1 (no bias) -> BN -> act -> depthwise k×k, stride s (no bias) -> BN -> act -> attention on the hidden
tensor (coordinate attention, paper §4.1.2; or SE for the Table 6 ablation) -> project 1×1 (no bias) -> BN,
plus the input when s = 1 and the input and output widths agree. As in MoGA the expansion conv is always present
and the hidden width is round(in·t).
"""

from __future__ import annotations

import torch
from torch import nn

from internet_plus.models.layers.coord_attention import CoordinateAttention
from internet_plus.models.layers.squeeze_excite import SqueezeExcite

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "hswish": nn.Hardswish}
ATTENTIONS = ("ca", "se", "none")


def make_attention(kind: str, channels: int, act: type[nn.Module] = nn.ReLU) -> nn.Module:
    """``"ca"``: CoordinateAttention (reduction 32); ``"se"``: SqueezeExcite (reduction 4, ``act`` inside);
    ``"none"``: identity."""
    if kind == "ca":
        return CoordinateAttention(channels, reduction=32)
    if kind == "se":
        return SqueezeExcite(channels, reduction=4, act=act)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown attention {kind!r}; valid: {', '.join(ATTENTIONS)}")


class InvertedResidual(nn.Module):
    """MoGA-style inverted residual block with optional attention on the hidden tensor (paper Figure 3).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel: depthwise kernel size k (padding k // 2).
        stride: depthwise stride.
        expansion: t; the hidden width is round(in_ch · t).
        act: ``"relu"`` or ``"hswish"`` (after the expansion and the depthwise conv).
        attention: ``"ca"`` | ``"se"`` | ``"none"``, applied after the depthwise BN + act.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        expansion: float,
        act: str = "relu",
        attention: str = "none",
    ) -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; valid: {', '.join(ACTIVATIONS)}")
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        act_cls = ACTIVATIONS[act]
        hidden = round(in_ch * expansion)
        self.in_ch, self.out_ch, self.hidden, self.stride = in_ch, out_ch, hidden, stride
        self.use_shortcut = stride == 1 and in_ch == out_ch
        self.expand = nn.Sequential(nn.Conv2d(in_ch, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act_cls())
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            act_cls(),
        )
        self.attention = make_attention(attention, hidden, act_cls)
        self.project = nn.Sequential(nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.project(self.attention(self.depthwise(self.expand(x))))
        return x + y if self.use_shortcut else y

    def extra_repr(self) -> str:  # noqa: D102
        shortcut = self.use_shortcut
        return f"in={self.in_ch}, hidden={self.hidden}, out={self.out_ch}, stride={self.stride}, shortcut={shortcut}"
