"""Coordinate Attention (Hou, Zhou and Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021).

InterNet+ puts it inside the inverted residual blocks of its feature extractor in place of MoGA's SE block, on the
expanded ("hidden") tensor after the depthwise convolution (paper §4.1.2, Figure 3, Table 1 rows marked "CA").
"""

from __future__ import annotations

import torch
from torch import nn


class CoordinateAttention(nn.Module):
    """Coordinate attention: channel attention factorised into one map along H and one along W.

    For x of shape N×C×H×W (Hou et al. 2021, Eq. 4-9; official ``CoordAtt``):

    1. z_h = mean of x over W (N×C×H×1) and z_w = mean of x over H (N×C×1×W);
    2. f = h-swish(BN(conv1([z_h, z_w]))) with a shared 1×1 conv (with bias) C -> mip, mip = max(8, C // reduction);
    3. a_h = σ(conv_h(f_h)) (N×C×H×1) and a_w = σ(conv_w(f_w)) (N×C×1×W), two 1×1 convs (with bias) mip -> C;
    4. out = x · a_h · a_w (broadcast).

    It has 3·C·mip + 2·C + 3·mip parameters and works at any spatial size.

    Args:
        channels: C, the input and output channels.
        reduction: channel reduction of the shared bottleneck (32 in the paper and the official code).
    """

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"CoordinateAttention needs channels >= 1 and reduction >= 1, got {channels}, {reduction}")
        self.channels = channels
        self.mip = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, self.mip, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(self.mip)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(self.mip, channels, kernel_size=1)
        self.conv_w = nn.Conv2d(self.mip, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W -> N×C×H×W, ``x · a_h · a_w``."""
        _, _, h, w = x.shape
        x_h = x.mean(dim=3, keepdim=True)  # N×C×H×1
        x_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # N×C×W×1
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = torch.sigmoid(self.conv_h(y_h))  # N×C×H×1
        a_w = torch.sigmoid(self.conv_w(y_w.transpose(2, 3)))  # N×C×1×W
        return x * a_h * a_w

    def extra_repr(self) -> str:  # noqa: D102
        return f"channels={self.channels}, mip={self.mip}"
