"""InterNet+'s feature extractor (paper §4.1-4.2, Figure 4, Table 1).

A MoGA-C-like mobile network: stem, separable convolution with Meta-ACON-C (§4.1.3), 13 inverted residual blocks
(§4.1.1) with coordinate attention in the blocks that change shape (§4.1.2), a 1×1 "Last Conv", the FcaNet
multi-spectral attention layer (§4.2) and a 1×1 "Final Conv". Input B×3×H×W, output B×2048×(H/32)×(W/32)
(2048×8×8 for 256×256, §4.2), 11,103,221 parameters with the defaults (Table 3: 11.12 M).

``TABLE1`` below is Table 1 row by row; the columns the paper leaves out (stride, expansion t) are filled in as
reasoned in ``docs/internet_plus_backbone.md``: MoGA-C's expansion ratios, stride 2 where Table 1's spatial size
halves, 2048 Final Conv channels (the §4.2 text and the parameter count; Table 1 prints 1280).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import nn

from internet_plus.models.layers import AconC, InvertedResidual, MetaAconC, MultiSpectralAttention
from internet_plus.models.layers.inverted_residual import ATTENTIONS


@dataclass(frozen=True)
class Table1Row:
    """One row of Table 1 plus the two columns the paper omits (``stride``, ``expansion``).

    ``kernel`` is None for the FcaNet layer; ``attention`` is ``"-"``, ``"CA"``, ``"SE"`` or ``"FcaNet"``;
    ``expansion`` is the inverted residual's t (None for the other rows).
    """

    id: int
    name: str
    kernel: int | None
    attention: str
    activation: str
    out_channels: int
    stride: int
    expansion: float | None = None

    @property
    def key(self) -> str:
        """The row's module name inside the backbone, e.g. ``inverted_residual_1``."""
        return self.name.lower().replace(" ", "_")


#: Table 1 of the paper (rows 1-19; the input, 3×256×256, is row "-"). Columns: id, name, kernel, attention,
#: activation, output channels, then stride and expansion t (not printed in the paper).
TABLE1: tuple[Table1Row, ...] = (
    Table1Row(1, "First Conv", 3, "-", "Hswish", 16, 2),
    Table1Row(2, "Separable Conv 1", 3, "-", "ReLU", 16, 1),
    Table1Row(3, "Separable Conv 2", 1, "-", "MetaAconC", 16, 1),
    Table1Row(4, "Inverted Residual 1", 5, "CA", "ReLU", 24, 2, 3),
    Table1Row(5, "Inverted Residual 2", 3, "-", "ReLU", 24, 1, 3),
    Table1Row(6, "Inverted Residual 3", 5, "CA", "ReLU", 40, 2, 3),
    Table1Row(7, "Inverted Residual 4", 3, "-", "ReLU", 40, 1, 3),
    Table1Row(8, "Inverted Residual 5", 5, "-", "ReLU", 40, 1, 3),
    Table1Row(9, "Inverted Residual 6", 5, "CA", "Hswish", 80, 2, 3),
    Table1Row(10, "Inverted Residual 7", 5, "-", "Hswish", 80, 1, 6),
    Table1Row(11, "Inverted Residual 8", 5, "-", "Hswish", 80, 1, 3),
    Table1Row(12, "Inverted Residual 9", 5, "CA", "Hswish", 128, 1, 3),
    Table1Row(13, "Inverted Residual 10", 3, "-", "Hswish", 128, 1, 6),
    Table1Row(14, "Inverted Residual 11", 3, "CA", "Hswish", 240, 1, 6),
    Table1Row(15, "Inverted Residual 12", 3, "CA", "Hswish", 480, 1, 6),
    Table1Row(16, "Inverted Residual 13", 3, "CA", "Hswish", 960, 1, 6),
    Table1Row(17, "Last Conv", 1, "-", "Hswish", 1280, 2),  # 16×16 -> 8×8 as printed in Table 1
    Table1Row(18, "FcaNet Layer", None, "FcaNet", "-", 1280, 1),
    Table1Row(19, "Final Conv", 1, "-", "LeakyReLU", 2048, 1),  # Table 1 prints 1280; §4.2 and Table 3 say 2048
)

LAST_STRIDES = ("last_conv", "ir12")
_ACTIVATION_KEYS = {"ReLU": "relu", "Hswish": "hswish"}
_FCA_REDUCTION = 16
_FCA_FREQ_SEL = "top16"
_LEAKY_SLOPE = 0.01


def resolve_table(
    attention: str = "ca",
    fca: bool = True,
    final_channels: int = 2048,
    last_stride: str = "last_conv",
    meta_acon: bool = True,
) -> tuple[Table1Row, ...]:
    """Table 1 with the backbone options applied: the rows that are actually built, in order."""
    if attention not in ATTENTIONS:
        raise ValueError(f"model.backbone.attention={attention!r} is not one of {', '.join(ATTENTIONS)}")
    if last_stride not in LAST_STRIDES:
        raise ValueError(f"model.backbone.last_stride={last_stride!r} is not one of {', '.join(LAST_STRIDES)}")
    if final_channels < 1:
        raise ValueError(f"model.backbone.final_channels must be >= 1, got {final_channels}")
    rows = []
    for row in TABLE1:
        if row.attention == "CA":
            row = replace(row, attention={"ca": "CA", "se": "SE", "none": "-"}[attention])
        if row.name == "Separable Conv 2" and not meta_acon:
            row = replace(row, activation="AconC")
        if last_stride == "ir12" and row.name == "Inverted Residual 12":
            row = replace(row, stride=2)
        if last_stride == "ir12" and row.name == "Last Conv":
            row = replace(row, stride=1)
        if row.name == "Final Conv":
            row = replace(row, out_channels=final_channels)
        if row.name == "FcaNet Layer" and not fca:
            continue
        rows.append(row)
    return tuple(rows)


def _build_layer(row: Table1Row, in_ch: int, fca_dct_size: int) -> nn.Module:
    """The module of one Table 1 row, given its input width."""
    out, k, s = row.out_channels, row.kernel, row.stride
    if row.expansion is not None:
        assert k is not None
        return InvertedResidual(
            in_ch,
            out,
            kernel=k,
            stride=s,
            expansion=row.expansion,
            act=_ACTIVATION_KEYS[row.activation],
            attention={"CA": "ca", "SE": "se", "-": "none"}[row.attention],
        )
    if row.name == "First Conv":
        assert k is not None
        return nn.Sequential(
            nn.Conv2d(in_ch, out, k, stride=s, padding=k // 2, bias=False), nn.BatchNorm2d(out), nn.Hardswish()
        )
    if row.name == "Separable Conv 1":  # depthwise
        assert k is not None and in_ch == out
        return nn.Sequential(
            nn.Conv2d(in_ch, out, k, stride=s, padding=k // 2, groups=in_ch, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(),
        )
    if row.name == "Separable Conv 2":  # pointwise, then (Meta-)ACON-C (§4.1.3)
        act: nn.Module = MetaAconC(out, r=16) if row.activation == "MetaAconC" else AconC(out)
        return nn.Sequential(nn.Conv2d(in_ch, out, 1, stride=s, bias=False), nn.BatchNorm2d(out), act)
    if row.name == "Last Conv":
        return nn.Sequential(nn.Conv2d(in_ch, out, 1, stride=s, bias=False), nn.BatchNorm2d(out), nn.Hardswish())
    if row.name == "FcaNet Layer":
        return MultiSpectralAttention(out, dct_size=fca_dct_size, reduction=_FCA_REDUCTION, freq_sel=_FCA_FREQ_SEL)
    if row.name == "Final Conv":  # MoGA's conv_head: bias-free, no BN
        return nn.Sequential(nn.Conv2d(in_ch, out, 1, stride=s, bias=False), nn.LeakyReLU(_LEAKY_SLOPE))
    raise ValueError(f"no builder for Table 1 row {row.id} ({row.name})")


class InterNetPlusBackbone(nn.Module):
    """InterNet+'s feature extractor (paper §4.1-4.2, Table 1); B×3×H×W -> B×final_channels×(H/32)×(W/32).

    Every argument is a plain value so that it can be a Hydra config field (``conf/backbone/internet_plus*.yaml``).

    Args:
        attention: what Table 1's "CA" rows (IR1/3/6/9/11/12/13) get: ``"ca"`` coordinate attention (§4.1.2),
            ``"se"`` MoGA's squeeze-and-excitation, ``"none"`` nothing (the two Table 6 ablations).
        fca: False removes the FcaNet layer, row 18 (the Table 7 ablation).
        final_channels: output channels of "Final Conv" (2048; Table 1 prints 1280).
        last_stride: where 16×16 becomes 8×8: ``"last_conv"`` (the 1×1 Last Conv, literally Table 1) or ``"ir12"``
            (IR12's depthwise conv, MoGA-C's position). Both have the same parameters and output shape.
        fca_dct_size: side of FcaNet's DCT grid (8: the 8×8 feature map of a 256 input, no pooling; 7: FcaNet's 7×7
            grid, with 8 -> 7 adaptive pooling). Other feature sizes are pooled to it.
        meta_acon: True: Meta-ACON-C after Separable Conv 2 (Table 1); False: ACON-C with a learned β per channel
            (the §4.1.3 text, which names ACON-C; no batch-size limit in training).

    For input sides that are not multiples of 32 the output side is ceil(H/32) (every stride-2 layer rounds up).
    """

    def __init__(
        self,
        attention: str = "ca",
        fca: bool = True,
        final_channels: int = 2048,
        last_stride: str = "last_conv",
        fca_dct_size: int = 8,
        meta_acon: bool = True,
    ) -> None:
        super().__init__()
        self.rows = resolve_table(attention, fca, final_channels, last_stride, meta_acon)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        in_ch = 3
        for row in self.rows:
            layers[row.key] = _build_layer(row, in_ch, fca_dct_size)
            in_ch = row.out_channels
        self.layers = nn.Sequential(layers)
        self.out_channels: int = in_ch
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """MoGA's initialisation: convs N(0, √(2/(k·k·out))) with zero bias, BN weight 1 and bias 0.

        ACON's p1/p2 keep their N(0, 1) initialisation and FcaNet's linear layers PyTorch's default (as in FcaNet).
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def table_rows(self) -> tuple[Table1Row, ...]:
        """The Table 1 rows this backbone was built from (options applied), in forward order."""
        return self.rows

    def named_rows(self) -> Iterator[tuple[int, str, nn.Module]]:
        """(Table 1 row id, row name, module) for every built row, in forward order."""
        for row, module in zip(self.rows, self.layers, strict=True):
            yield row.id, row.name, module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×H×W image -> B×out_channels×(H/32)×(W/32) features."""
        return self.layers(x)
