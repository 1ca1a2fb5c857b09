"""ACON-C and Meta-ACON-C activations (Ma et al., "Activate or Not: Learning Customized Activation", CVPR 2021).

InterNet+ uses Meta-ACON-C as the activation of "Separable Conv 2" (paper §4.1.3, Eq. 1-4, Table 1 row 3).
ACON-C is the smooth maximum S_β(p1·x, p2·x) of two linear functions (paper Eq. 4):

    f(x) = (p1 − p2)·x · σ(β·(p1 − p2)·x) + p2·x.

β → ∞ gives max(p1·x, p2·x); β = 0 gives the mean (p1·x + p2·x)/2. ``AconC`` learns one β per channel;
``MetaAconC`` predicts β per sample and channel with a small network on the globally pooled input.
"""

from __future__ import annotations

import torch
from torch import nn


def acon_c(x: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """The ACON-C function (paper Eq. 4): ``(p1 − p2)·x·σ(β·(p1 − p2)·x) + p2·x``, all arguments broadcast."""
    dpx = (p1 - p2) * x
    return dpx * torch.sigmoid(beta * dpx) + p2 * x


class AconC(nn.Module):
    """ACON-C with a learnable switching factor β per channel (paper Eq. 4).

    Parameters (official ``AconC``): p1, p2 ~ N(0, 1) and β = 1, each of shape 1×C×1×1 (3·C parameters).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.p1 = nn.Parameter(torch.randn(1, channels, 1, 1))
        self.p2 = nn.Parameter(torch.randn(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return acon_c(x, self.p1, self.p2, self.beta)

    def extra_repr(self) -> str:  # noqa: D102
        return f"channels={self.channels}"


class MetaAconC(nn.Module):
    """Meta-ACON-C: ACON-C whose β is generated from the input (official ``MetaAconC``, the version with BN).

    β = σ(BN2(fc2(BN1(fc1(GAP(x)))))) of shape N×C×1×1, where fc1 is a 1×1 conv C -> M with bias,
    M = max(r, C // r), and fc2 a 1×1 conv M -> C with bias; there is no nonlinearity between them.
    p1, p2 ~ N(0, 1) of shape 1×C×1×1. Parameters: 2·C·M + 3·M + 5·C (640 for C = 16, r = 16).

    BN1 and BN2 see one value per channel and sample, so in training mode the batch must hold at least 2 samples
    (nmaac/acon#4); ``forward`` checks this and raises a ``ValueError`` saying so.

    Args:
        channels: C.
        r: reduction of the β network (16 in the paper's reference implementation).
    """

    def __init__(self, channels: int, r: int = 16) -> None:
        super().__init__()
        self.channels = channels
        hidden = max(r, channels // r)
        self.p1 = nn.Parameter(torch.randn(1, channels, 1, 1))
        self.p2 = nn.Parameter(torch.randn(1, channels, 1, 1))
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def switching_factor(self, x: torch.Tensor) -> torch.Tensor:
        """β for each sample and channel, N×C×1×1."""
        if self.training and x.shape[0] < 2:
            raise ValueError(
                f"MetaAconC got a training batch of {x.shape[0]} sample(s): its β network normalises one value per "
                "sample and channel with BatchNorm, which needs at least 2 samples per device in training mode. "
                "Use a per-device training batch size >= 2 (data.batch_size divided by the number of devices) and "
                "drop an incomplete last batch of 1 (drop_last), or set model.backbone.meta_acon=false (plain ACON-C, "
                "no batch-size limit)."
            )
        s = x.mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.bn2(self.fc2(self.bn1(self.fc1(s)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return acon_c(x, self.p1, self.p2, self.switching_factor(x))

    def extra_repr(self) -> str:  # noqa: D102
        return f"channels={self.channels}"
