"""InterNet's PoseNet head (Moon et al., ECCV 2020; InterNet+ paper §3.1, Figure 2), unchanged by InterNet+.

From the feature map B×C×h×w it predicts (``docs/reference/internet.md`` §2.2):

* two identical 3-D heatmap branches, one per hand (no weight sharing): three 4×4/2 transposed convolutions
  (bias-free) each followed by BN + ReLU, then a 1×1 convolution (with bias) to ``joints_per_hand × depth_bins``
  channels, reshaped **joint-major, depth-minor** to B×21×D×H×W. The right-hand branch gives joints 0-20 and the
  left-hand branch joints 21-41 (the project's joint order);
* the relative root depth: global average pool → Linear(C, 512) → ReLU → Linear(512, R) → 1-D soft-argmax over the
  R bins (a continuous bin coordinate in [0, R-1]);
* the hand type: global average pool → Linear(C, 512) → ReLU → Linear(512, 2). The head returns **logits**; the
  sigmoid is applied by the decoder and the loss uses BCE-with-logits (the numerically safe equivalent of InterNet's
  BCE on sigmoid outputs, internet §3.3).

With 2048 input channels and the default sizes it has exactly 23,797,442 parameters. The input width follows the
backbone (``in_channels``), so InterNet+ (2048) and a 1280-wide variant both plug in unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from internet_plus.joints import JOINTS_PER_HAND


def soft_argmax_1d(logits: torch.Tensor) -> torch.Tensor:
    """Expectation of the bin index under softmax(logits) over the last axis: B×R -> B (InterNet's root depth)."""
    prob = torch.softmax(logits.float(), dim=-1)
    bins = torch.arange(logits.shape[-1], device=logits.device, dtype=prob.dtype)
    return (prob * bins).sum(dim=-1)


class HeatmapBranch(nn.Sequential):
    """One hand's 3-D heatmap branch: 3 × [ConvTranspose 4×4/2 (no bias) → BN → ReLU] → 1×1 conv (bias)."""

    def __init__(
        self,
        in_channels: int,
        deconv_channels: int = 256,
        num_deconv: int = 3,
        joints: int = JOINTS_PER_HAND,
        depth_bins: int = 64,
    ) -> None:
        layers: list[nn.Module] = []
        width = in_channels
        for _ in range(num_deconv):
            layers += [
                nn.ConvTranspose2d(width, deconv_channels, 4, stride=2, padding=1, output_padding=0, bias=False),
                nn.BatchNorm2d(deconv_channels),
                nn.ReLU(inplace=True),
            ]
            width = deconv_channels
        layers.append(nn.Conv2d(width, joints * depth_bins, kernel_size=1))
        super().__init__(*layers)
        self.joints = joints
        self.depth_bins = depth_bins

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = super().forward(features)
        b, _, h, w = out.shape
        return out.view(b, self.joints, self.depth_bins, h, w)  # channel c = joint * D + depth_bin


def _mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features))


class PoseNet(nn.Module):
    """InterNet's head. ``forward(features)`` returns a dict (see ``docs/architecture.md``).

    Args:
        in_channels: channels of the backbone's feature map (2048 for ResNet-50 and InterNet+).
        deconv_channels: width of the deconvolution layers (256 in InterNet).
        num_deconv: number of 4×4/2 deconvolutions; the heatmap side is ``feature side · 2**num_deconv``.
        depth_bins: D, depth bins of each joint's heatmap (64 in InterNet).
        root_depth_bins: R, bins of the 1-D root-depth distribution (64 in InterNet).
        mlp_hidden: hidden width of the root-depth and hand-type MLPs (512 in InterNet).
    """

    def __init__(
        self,
        in_channels: int = 2048,
        deconv_channels: int = 256,
        num_deconv: int = 3,
        depth_bins: int = 64,
        root_depth_bins: int = 64,
        mlp_hidden: int = 512,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_deconv = num_deconv
        self.depth_bins = depth_bins
        self.root_depth_bins = root_depth_bins
        self.right_hand = HeatmapBranch(in_channels, deconv_channels, num_deconv, JOINTS_PER_HAND, depth_bins)
        self.left_hand = HeatmapBranch(in_channels, deconv_channels, num_deconv, JOINTS_PER_HAND, depth_bins)
        #: Both branches as one network, set only on inference copies (``models/inference.py``).
        self.merged_heatmaps: nn.Module | None = None
        self.root_fc = _mlp(in_channels, mlp_hidden, root_depth_bins)
        self.hand_fc = _mlp(in_channels, mlp_hidden, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """InterNet's initialisation (``main/model.py: init_weights``): N(0, 0.001) convs, N(0, 0.01) linears."""
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def heatmap_volume(self, features: torch.Tensor) -> torch.Tensor:
        """B×42×D×H×W: the right hand's 21 joint heatmaps, then the left hand's."""
        if self.merged_heatmaps is not None:
            return self.merged_heatmaps(features)
        return torch.cat([self.right_hand(features), self.left_hand(features)], dim=1)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """B×C×h×w features -> heatmaps B×42×D×H×W, root_logits B×R, root_bins B, hand_logits B×2."""
        heatmaps = self.heatmap_volume(features)
        pooled = features.mean(dim=(2, 3))
        root_logits = self.root_fc(pooled)
        return {
            "heatmaps": heatmaps,
            "root_logits": root_logits,
            "root_bins": soft_argmax_1d(root_logits),
            "hand_logits": self.hand_fc(pooled),
        }
