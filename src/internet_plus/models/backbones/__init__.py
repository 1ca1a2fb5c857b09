"""Feature extractors: images B×3×H×W -> features B×C×(H/32)×(W/32); each has an ``out_channels`` attribute.

``build_backbone(name, **fields)`` builds one from its Hydra config node (``conf/backbone/*.yaml``): ``name`` picks the
class and every other field is a constructor argument, so any field can be overridden from the command line.
"""

from __future__ import annotations

from typing import Any

from torch import nn

BACKBONES = ("internet_plus", "resnet50")


def build_backbone(name: str, **fields: Any) -> nn.Module:
    """Build the feature extractor called ``name`` (one of ``BACKBONES``) with the given fields."""
    if name == "resnet50":
        from internet_plus.models.backbones.resnet import ResNet50Backbone

        return ResNet50Backbone(**fields)
    if name == "internet_plus":
        from internet_plus.models.backbones.internet_plus import InterNetPlusBackbone

        return InterNetPlusBackbone(**fields)
    raise ValueError(f"unknown backbone name {name!r}; valid names: {', '.join(BACKBONES)}")


__all__ = ["BACKBONES", "build_backbone"]
