"""MoGA's squeeze-and-excitation block (Hu et al. 2018, in the MobileNetV3/MoGA form), the InterNet+ Table 6 ablation.

The paper compares coordinate attention against SE in the same positions (§4.1.2, Table 6 "with SE module").
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """SE as in MoGA's ``SELayer``: GAP -> 1×1 conv (bias) C -> C//r -> act -> 1×1 conv (bias) -> C -> hard-sigmoid.

    ``out = x · scale``. Parameters: 2·C·(C//r) + C//r + C.

    Args:
        channels: C.
        reduction: r (4 in MoGA and MobileNetV3).
        act: activation class used between the two convolutions (MoGA uses the block's own activation).
    """

    def __init__(self, channels: int, reduction: int = 4, act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        squeezed = channels // reduction
        if squeezed < 1:
            raise ValueError(f"SqueezeExcite: channels // reduction must be >= 1, got {channels} // {reduction}")
        self.channels = channels
        self.fc1 = nn.Conv2d(channels, squeezed, kernel_size=1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeezed, channels, kernel_size=1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        scale = self.gate(self.fc2(self.act(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * scale
