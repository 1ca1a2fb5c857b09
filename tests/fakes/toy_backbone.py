"""A toy feature extractor that the backbone registry learns about from a yaml file alone (``tests/test_registry.py``).

Not a network of the paper: one stride-32 convolution, so that B×3×H×W images give B×channels×(H/32)×(W/32) features
as every backbone must, with an ``out_channels`` attribute that PoseNet's input width follows.
"""

from __future__ import annotations

import torch
from torch import nn


class ToyBackbone(nn.Module):
    """One 32×32 convolution with stride 32: images -> ``channels`` features at 1/32 of the input side."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.out_channels = channels
        self.patches = nn.Conv2d(3, channels, kernel_size=32, stride=32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×H×W -> B×channels×(H/32)×(W/32)."""
        return self.patches(x)
