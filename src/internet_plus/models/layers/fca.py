"""FcaNet multi-spectral channel attention (Qin et al., "FcaNet: Frequency Channel Attention Networks", ICCV 2021).

InterNet+ applies it to the 1280×8×8 output of "Last Conv" (paper §4.2, Table 1 row 18). Global average pooling is
the (0, 0) coefficient of the 2-D DCT; FcaNet splits the channels into groups and pools each group with a different
DCT basis function instead, then excites the channels as SE does. The DCT filter bank is fixed (a buffer, not a
parameter), as in the official ``MultiSpectralAttentionLayer``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

#: FcaNet's ranked (u, v) frequency lists on a 7×7 grid (official ``get_freq_indices``): u indexes the height axis,
#: v the width axis. "top" is the ImageNet ranking of single-frequency attention, best first; "bot" the worst first;
#: "low" a zig-zag scan from the DC component.
_FREQ_INDICES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "top": (
        (0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1),
        (0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3),
    ),
    "low": (
        (0, 0, 1, 1, 0, 2, 2, 1, 2, 0, 3, 4, 0, 1, 3, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4),
        (0, 1, 0, 1, 2, 0, 1, 2, 2, 3, 0, 0, 4, 3, 1, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3),
    ),
    "bot": (
        (6, 1, 3, 3, 2, 4, 1, 2, 4, 4, 5, 1, 4, 6, 2, 5, 6, 1, 6, 2, 2, 4, 3, 3, 5, 5, 6, 2, 5, 5, 3, 6),
        (6, 4, 4, 6, 6, 3, 1, 4, 4, 5, 6, 5, 2, 2, 5, 1, 4, 3, 5, 0, 3, 1, 1, 2, 4, 2, 1, 1, 5, 3, 3, 3),
    ),
}
_NUM_FREQ = (1, 2, 4, 8, 16, 32)
FREQ_METHODS = tuple(f"{family}{n}" for family in ("top", "bot", "low") for n in _NUM_FREQ)

#: The frequency grid the index lists refer to.
FREQ_GRID = 7


def get_freq_indices(method: str) -> tuple[list[int], list[int]]:
    """The first n (u, v) frequencies of a FcaNet selection ``method`` (``top|bot|low`` + ``1|2|4|8|16|32``).

    Returns the u list (height axis) and the v list (width axis), on FcaNet's 7×7 frequency grid.
    """
    if method not in FREQ_METHODS:
        raise ValueError(f"unknown FcaNet frequency selection {method!r}; valid: {', '.join(FREQ_METHODS)}")
    num = int(method[3:])
    u, v = _FREQ_INDICES[method[:3]]
    return list(u[:num]), list(v[:num])


def dct_basis(freq: int, size: int) -> torch.Tensor:
    """Orthonormal DCT-II basis vector: ``cos(π·freq·(pos + 0.5)/size)/√size``, ×√2 when ``freq ≠ 0`` (float64)."""
    pos = torch.arange(size, dtype=torch.float64)
    basis = torch.cos(math.pi * freq * (pos + 0.5) / size) / math.sqrt(size)
    return basis * math.sqrt(2.0) if freq != 0 else basis


def dct_filters(channels: int, dct_h: int, dct_w: int, freq_sel: str = "top16") -> torch.Tensor:
    """FcaNet's fixed DCT filter bank, shape C×dct_h×dct_w (float32).

    The selected 7×7-grid frequencies are scaled to the DCT size by the integer factors ``dct_h // 7`` and
    ``dct_w // 7`` (so 7 and 8 both use them unscaled, 14 doubles them). Channel group k, channels
    [k·C/n, (k+1)·C/n), gets the filter ``B(u_k, dct_h) ⊗ B(v_k, dct_w)``.

    Raises:
        ValueError: if ``channels`` is not a multiple of the number of frequencies, or a DCT side is below 7
            (the scale factor would be 0 and every frequency would collapse onto the DC component).
    """
    u_list, v_list = get_freq_indices(freq_sel)
    num_freq = len(u_list)
    if channels % num_freq != 0:
        raise ValueError(
            f"FcaNet with freq_sel={freq_sel!r} splits the channels into {num_freq} equal groups, "
            f"so channels must be a multiple of {num_freq}; got {channels}"
        )
    if dct_h < FREQ_GRID or dct_w < FREQ_GRID:
        raise ValueError(
            f"FcaNet's DCT size must be at least {FREQ_GRID}×{FREQ_GRID} (its frequencies live on a 7×7 grid); "
            f"got {dct_h}×{dct_w}"
        )
    scale_h, scale_w = dct_h // FREQ_GRID, dct_w // FREQ_GRID
    group = channels // num_freq
    filters = torch.empty(channels, dct_h, dct_w, dtype=torch.float64)
    for k, (u, v) in enumerate(zip(u_list, v_list, strict=True)):
        filters[k * group : (k + 1) * group] = torch.outer(dct_basis(u * scale_h, dct_h), dct_basis(v * scale_w, dct_w))
    return filters.float()


class MultiSpectralAttention(nn.Module):
    """Multi-spectral channel attention (FcaNet; InterNet+ paper §4.2, Table 1 row 18).

    For x of shape N×C×H×W:

    1. x_p = adaptive average pooling of x to the DCT size when (H, W) differs from it, else x;
    2. y_c = Σ_{i,j} x_p[c, i, j] · D[c, i, j] with the fixed DCT filter bank D (:func:`dct_filters`), shape N×C;
    3. a = Sigmoid(Linear(C -> C/r, no bias) -> ReLU -> Linear(C/r -> C, no bias)) applied to y;
    4. out = x · a, applied to the original (unpooled) x.

    Parameters: 2·C²/r (204,800 for C = 1280, r = 16). The filter bank is the persistent buffer ``dct_weight``.

    Args:
        channels: C, a multiple of the number of selected frequencies.
        dct_size: DCT grid (h, w) or one int for a square grid; at least 7.
        reduction: r of the excitation MLP.
        freq_sel: frequency selection, ``top|bot|low`` + ``1|2|4|8|16|32``.
    """

    dct_weight: torch.Tensor

    def __init__(
        self,
        channels: int,
        dct_size: int | tuple[int, int] = (8, 8),
        reduction: int = 16,
        freq_sel: str = "top16",
    ) -> None:
        super().__init__()
        dct_h, dct_w = (dct_size, dct_size) if isinstance(dct_size, int) else tuple(dct_size)
        if channels // reduction < 1:
            raise ValueError(f"MultiSpectralAttention: channels // reduction must be >= 1, got {channels}//{reduction}")
        self.channels = channels
        self.dct_size = (dct_h, dct_w)
        self.freq_sel = freq_sel
        self.register_buffer("dct_weight", dct_filters(channels, dct_h, dct_w, freq_sel))
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W -> N×C×H×W, the input rescaled per channel."""
        n, c, h, w = x.shape
        pooled = x if (h, w) == self.dct_size else F.adaptive_avg_pool2d(x, self.dct_size)
        y = (pooled * self.dct_weight).sum(dim=(2, 3))
        return x * self.fc(y).view(n, c, 1, 1)

    def extra_repr(self) -> str:  # noqa: D102
        return f"channels={self.channels}, dct_size={self.dct_size}, freq_sel={self.freq_sel!r}"
