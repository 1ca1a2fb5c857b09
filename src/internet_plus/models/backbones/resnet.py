"""InterNet's feature extractor: torchvision's ResNet-50 without average pooling and fc (InterNet+ paper §3.1).

Output: B×2048×(H/32)×(W/32); 23,508,032 parameters (the paper's Table 3: 23.51 M, 89.68 MiB).
ImageNet weights (torchvision's ``IMAGENET1K_V1``, the classic weights InterNet loads) are used only when asked for:
``pretrained: true`` takes them from torchvision's cache (``$TORCH_HOME``) or downloads them, and
``weights_path`` loads a local file. Both fail with a message that says what to do when the weights cannot be had.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50


class PretrainedWeightsError(RuntimeError):
    """ImageNet weights were requested but cannot be obtained."""


class ResNet50Backbone(nn.Module):
    """ResNet-50 stem + layer1-4 (InterNet's ``BackboneNet``)."""

    out_channels = 2048

    def __init__(self, pretrained: bool = False, weights_path: str | None = None) -> None:
        super().__init__()
        net = resnet50(weights=None)
        if weights_path:
            missing, unexpected = net.load_state_dict(self._load_local(weights_path), strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise PretrainedWeightsError(
                    f"model.backbone.weights_path={weights_path} is not a torchvision ResNet-50 state dict: "
                    f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                    f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
                )
        elif pretrained:
            net.load_state_dict(self._download())
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    @staticmethod
    def _load_local(path: str) -> dict[str, torch.Tensor]:
        file = Path(path).expanduser()
        if not file.is_file():
            raise PretrainedWeightsError(f"model.backbone.weights_path={path}: no such file")
        state = torch.load(file, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        return {k: v for k, v in state.items() if not k.startswith("fc.")}

    @staticmethod
    def _download() -> dict[str, torch.Tensor]:
        weights = ResNet50_Weights.IMAGENET1K_V1
        try:
            return weights.get_state_dict(progress=False)
        except Exception as err:  # network errors come in many types (URLError, OSError, HTTPError...)
            raise PretrainedWeightsError(
                f"model.backbone.pretrained=true but torchvision's ImageNet ResNet-50 weights ({weights.url}) could "
                f"not be loaded ({type(err).__name__}: {err}). Download the file on a machine with internet access "
                f"and put it in {torch.hub.get_dir()}/checkpoints/, or pass model.backbone.weights_path=/path/to/file, "
                "or train from scratch with model.backbone.pretrained=false."
            ) from err

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
