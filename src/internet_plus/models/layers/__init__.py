"""Building blocks of InterNet+'s feature extractor (paper §4.1-4.2)."""

from internet_plus.models.layers.acon import AconC, MetaAconC, acon_c
from internet_plus.models.layers.coord_attention import CoordinateAttention
from internet_plus.models.layers.fca import MultiSpectralAttention, dct_filters, get_freq_indices
from internet_plus.models.layers.inverted_residual import InvertedResidual, make_attention
from internet_plus.models.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "AconC",
    "CoordinateAttention",
    "InvertedResidual",
    "MetaAconC",
    "MultiSpectralAttention",
    "SqueezeExcite",
    "acon_c",
    "dct_filters",
    "get_freq_indices",
    "make_attention",
]
