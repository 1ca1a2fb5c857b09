"""OmegaConf resolvers the configs use, registered when the package is imported.

``${heatmap_size:<input_size>,<num_deconv>}`` — the side of PoseNet's heatmap for an input of ``input_size`` pixels:
the feature extractor's stride is 32 and each of PoseNet's ``num_deconv`` deconvolutions doubles the map, so
``input_size / 32 · 2^num_deconv`` (64 for InterNet's 256 px and 3 deconvolutions). ``conf/model/internet.yaml``
derives ``model.codec.heatmap_size`` from ``data.input_size`` with it, so that changing the input size alone works.
"""

from __future__ import annotations

from omegaconf import OmegaConf

#: The feature extractors' output stride (InterNet's ResNet-50 and InterNet+'s Table 1 network alike).
BACKBONE_STRIDE = 32


def heatmap_size(input_size: int, num_deconv: int) -> int:
    """PoseNet's heatmap side for ``input_size`` pixels; the input must be a multiple of the stride."""
    size, deconv = int(input_size), int(num_deconv)
    if size <= 0 or size % BACKBONE_STRIDE:
        raise ValueError(f"data.input_size={input_size} must be a positive multiple of {BACKBONE_STRIDE}")
    return size // BACKBONE_STRIDE * 2**deconv


def register_resolvers() -> None:
    """Register the resolvers once per process (importing ``internet_plus`` does it)."""
    if not OmegaConf.has_resolver("heatmap_size"):
        OmegaConf.register_new_resolver("heatmap_size", heatmap_size)


__all__ = ["BACKBONE_STRIDE", "heatmap_size", "register_resolvers"]
