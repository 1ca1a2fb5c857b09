"""InterNet+'s feature extractor (paper §4.1-4.2, Table 1): shapes, parameter counts, ablation variants, summary."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from internet_plus.models.backbones.internet_plus import TABLE1, InterNetPlusBackbone
from internet_plus.models.layers import AconC, CoordinateAttention, MetaAconC, MultiSpectralAttention, SqueezeExcite
from internet_plus.models.summary import backbone_table, main, model_summary, module_table, summarize

TOTAL = 11_103_221

#: Table 1's "Dimensionality" column at 3×256×256 input (row 19 with the 2048 channels of §4.2).
SHAPES_256 = {
    "First Conv": (16, 128, 128),
    "Separable Conv 1": (16, 128, 128),
    "Separable Conv 2": (16, 128, 128),
    "Inverted Residual 1": (24, 64, 64),
    "Inverted Residual 2": (24, 64, 64),
    "Inverted Residual 3": (40, 32, 32),
    "Inverted Residual 4": (40, 32, 32),
    "Inverted Residual 5": (40, 32, 32),
    "Inverted Residual 6": (80, 16, 16),
    "Inverted Residual 7": (80, 16, 16),
    "Inverted Residual 8": (80, 16, 16),
    "Inverted Residual 9": (128, 16, 16),
    "Inverted Residual 10": (128, 16, 16),
    "Inverted Residual 11": (240, 16, 16),
    "Inverted Residual 12": (480, 16, 16),
    "Inverted Residual 13": (960, 16, 16),
    "Last Conv": (1280, 8, 8),
    "FcaNet Layer": (1280, 8, 8),
    "Final Conv": (2048, 8, 8),
}

#: The per-layer parameter table of docs/reference/modules.md §5.6 (and, for IR blocks, hidden width and CA params).
PARAMS = {
    "First Conv": 432 + 32,
    "Separable Conv 1": 144 + 32,
    "Separable Conv 2": 256 + 32 + 640,
    "Inverted Residual 1": 4_632,
    "Inverted Residual 2": 4_440,
    "Inverted Residual 3": 8_672,
    "Inverted Residual 4": 11_240,
    "Inverted Residual 5": 13_160,
    "Inverted Residual 6": 21_184,
    "Inverted Residual 7": 90_880,
    "Inverted Residual 8": 45_520,
    "Inverted Residual 9": 63_400,
    "Inverted Residual 10": 206_848,
    "Inverted Residual 11": 349_992,
    "Inverted Residual 12": 1_253_895,
    "Inverted Residual 13": 4_970_190,
    "Last Conv": 1_228_800 + 2_560,
    "FcaNet Layer": 204_800,
    "Final Conv": 2_621_440,
}
HIDDEN = [48, 72, 72, 120, 120, 120, 480, 240, 240, 768, 768, 1440, 2880]
CA_PARAMS = {1: 1_272, 3: 1_896, 6: 3_144, 9: 6_264, 11: 56_904, 12: 197_415, 13: 783_630}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def backbone() -> InterNetPlusBackbone:
    torch.manual_seed(0)
    return InterNetPlusBackbone().eval()


def _rows(model: InterNetPlusBackbone) -> dict[str, nn.Module]:
    return {name: module for _, name, module in model.named_rows()}


# ---------------------------------------------------------------------------------------------------- the table


def test_table1_columns() -> None:
    assert [row.id for row in TABLE1] == list(range(1, 20))
    assert [row.name for row in TABLE1] == list(SHAPES_256)
    ir = [row for row in TABLE1 if row.name.startswith("Inverted Residual")]
    assert [row.kernel for row in ir] == [5, 3, 5, 3, 5, 5, 5, 5, 5, 3, 3, 3, 3]
    assert [row.expansion for row in ir] == [3, 3, 3, 3, 3, 3, 6, 3, 3, 6, 6, 6, 6]  # MoGA-C's first 13 blocks
    assert [i for i, row in enumerate(ir, 1) if row.attention == "CA"] == [1, 3, 6, 9, 11, 12, 13]
    assert [row.activation for row in ir] == ["ReLU"] * 5 + ["Hswish"] * 8
    assert [row.name for row in TABLE1 if row.stride == 2] == [
        "First Conv",
        "Inverted Residual 1",
        "Inverted Residual 3",
        "Inverted Residual 6",
        "Last Conv",
    ]


def test_default_backbone_structure(backbone: InterNetPlusBackbone) -> None:
    rows = _rows(backbone)
    assert [row_id for row_id, _, _ in backbone.named_rows()] == list(range(1, 20))
    assert backbone.out_channels == 2048
    assert isinstance(rows["Separable Conv 2"][2], MetaAconC)
    assert isinstance(rows["FcaNet Layer"], MultiSpectralAttention)
    assert rows["FcaNet Layer"].dct_size == (8, 8) and rows["FcaNet Layer"].freq_sel == "top16"
    last, final = rows["Last Conv"], rows["Final Conv"]
    assert last[0].stride == (2, 2) and last[0].kernel_size == (1, 1) and isinstance(last[2], nn.Hardswish)
    assert final[0].bias is None and len(final) == 2 and isinstance(final[1], nn.LeakyReLU)
    assert final[1].negative_slope == 0.01
    blocks = [rows[f"Inverted Residual {i}"] for i in range(1, 14)]
    assert [b.hidden for b in blocks] == HIDDEN
    assert [i for i, b in enumerate(blocks, 1) if b.use_shortcut] == [2, 4, 5, 7, 8, 10]
    # CA exactly on the blocks without an identity shortcut (modules §5.1)
    assert [i for i, b in enumerate(blocks, 1) if isinstance(b.attention, CoordinateAttention)] == [
        i for i, b in enumerate(blocks, 1) if not b.use_shortcut
    ]


# --------------------------------------------------------------------------------------------- shapes and counts


def test_every_row_output_shape_at_256(backbone: InterNetPlusBackbone) -> None:
    rows = summarize(backbone, (3, 256, 256), [(name, mod) for _, name, mod in backbone.named_rows()])
    assert {row.name: row.output_shape for row in rows} == SHAPES_256
    assert [row.name for row in rows] == list(SHAPES_256)  # forward order


def test_parameter_count_total_and_per_layer(backbone: InterNetPlusBackbone) -> None:
    assert n_params(backbone) == TOTAL == sum(PARAMS.values())
    assert {name: n_params(module) for name, module in _rows(backbone).items()} == PARAMS
    rows = _rows(backbone)
    assert {i: n_params(rows[f"Inverted Residual {i}"].attention) for i in CA_PARAMS} == CA_PARAMS
    assert n_params(rows["Separable Conv 2"][2]) == 640


def test_no_fcanet_removes_exactly_its_weights() -> None:
    model = InterNetPlusBackbone(fca=False)
    assert n_params(model) == TOTAL - 204_800 == 10_898_421
    assert not any(isinstance(m, MultiSpectralAttention) for m in model.modules())
    assert [row_id for row_id, _, _ in model.named_rows()] == [i for i in range(1, 20) if i != 18]


def test_no_attention_removes_exactly_the_ca_weights(backbone: InterNetPlusBackbone) -> None:
    ca_total = sum(n_params(m) for m in backbone.modules() if isinstance(m, CoordinateAttention))
    assert ca_total == sum(CA_PARAMS.values()) == 1_050_525
    model = InterNetPlusBackbone(attention="none")
    assert n_params(model) == TOTAL - ca_total == 10_052_696
    assert not any(isinstance(m, (CoordinateAttention, SqueezeExcite)) for m in model.modules())


def test_se_variant() -> None:
    model = InterNetPlusBackbone(attention="se")
    se = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    widths = [HIDDEN[i - 1] for i in CA_PARAMS]
    assert [m.channels for m in se] == widths
    se_params = sum(2 * c * (c // 4) + c // 4 + c for c in widths)
    assert sum(n_params(m) for m in se) == se_params
    assert n_params(model) == 10_052_696 + se_params == 15_578_312
    assert not any(isinstance(m, CoordinateAttention) for m in model.modules())
    # SE uses its block's activation in the middle (MoGA)
    assert isinstance(se[0].act, nn.ReLU) and isinstance(se[-1].act, nn.Hardswish)


def test_last_stride_in_ir12() -> None:
    model = InterNetPlusBackbone(last_stride="ir12").eval()
    assert n_params(model) == TOTAL
    rows = _rows(model)
    assert rows["Inverted Residual 12"].depthwise[0].stride == (2, 2)
    assert rows["Last Conv"][0].stride == (1, 1)
    shapes = {r.name: r.output_shape for r in summarize(model, (3, 256, 256), list(rows.items()))}
    assert shapes["Inverted Residual 11"] == (240, 16, 16)
    assert shapes["Inverted Residual 12"] == (480, 8, 8)
    assert shapes["Final Conv"] == (2048, 8, 8)


def test_final_channels_1280() -> None:
    model = InterNetPlusBackbone(final_channels=1280).eval()
    assert model.out_channels == 1280
    assert n_params(model) == 10_120_181  # modules §5.3, MoGA-C row, F = 1280
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1280, 2, 2)


def test_plain_acon_c_option() -> None:
    model = InterNetPlusBackbone(meta_acon=False).train()
    act = _rows(model)["Separable Conv 2"][2]
    assert isinstance(act, AconC) and not isinstance(act, MetaAconC)
    assert n_params(model) == TOTAL - 640 + 48
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 2048, 2, 2)  # no batch-size limit


def test_dct_size_7_is_parameter_neutral() -> None:
    model = InterNetPlusBackbone(fca_dct_size=7).eval()
    assert n_params(model) == TOTAL
    assert _rows(model)["FcaNet Layer"].dct_weight.shape == (1280, 7, 7)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 256, 256)).shape == (1, 2048, 8, 8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attention": "cbam"}, "attention"),
        ({"last_stride": "final_conv"}, "last_stride"),
        ({"final_channels": 0}, "final_channels"),
        ({"fca_dct_size": 4}, "at least 7"),
    ],
)
def test_invalid_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        InterNetPlusBackbone(**kwargs)


# ------------------------------------------------------------------------------------------- forward and backward


@pytest.mark.parametrize("size", [128, 160, 192, 224, 320])
def test_input_sizes_that_are_multiples_of_32(backbone: InterNetPlusBackbone, size: int) -> None:
    with torch.no_grad():
        assert backbone(torch.rand(1, 3, size, size)).shape == (1, 2048, size // 32, size // 32)


def test_other_input_sizes_round_up(backbone: InterNetPlusBackbone) -> None:
    with torch.no_grad():
        assert backbone(torch.rand(1, 3, 200, 96)).shape == (1, 2048, math.ceil(200 / 32), 3)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = InterNetPlusBackbone().train()
    model(torch.rand(2, 3, 64, 64)).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    # Weights all receive a signal (biases right before a training-mode BN get ~0 by construction).
    dead = [name for name, p in model.named_parameters() if name.endswith("weight") and p.grad.abs().max() == 0]
    assert dead == []


def test_meta_acon_batch_of_one_in_training_raises() -> None:
    model = InterNetPlusBackbone().train()
    with pytest.raises(ValueError, match="MetaAconC"):
        model(torch.rand(1, 3, 64, 64))


def test_initialisation(backbone: InterNetPlusBackbone) -> None:
    final = _rows(backbone)["Final Conv"][0].weight
    assert abs(final.std().item() - math.sqrt(2 / 2048)) < 0.02 * math.sqrt(2 / 2048)
    for m in backbone.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            assert torch.all(m.bias == 0)


def test_build_backbone_from_its_config_node() -> None:
    """The node names the class (``_target_``), the other fields are its arguments; the legacy ``name`` form of
    checkpoints written before the registry builds the same network."""
    from internet_plus.models.backbones import build_backbone
    from internet_plus.models.backbones.registry import backbone_config

    node = {**backbone_config("internet_plus"), "attention": "none", "fca": False}
    model = build_backbone(node)
    assert isinstance(model, InterNetPlusBackbone)
    assert n_params(model) == TOTAL - 204_800 - 1_050_525
    legacy = build_backbone({"name": "internet_plus", "attention": "none", "fca": False, "final_channels": 2048})
    assert n_params(legacy) == n_params(model)


# ---------------------------------------------------------------------------------------------------------- summary


def test_backbone_table(backbone: InterNetPlusBackbone) -> None:
    text = backbone_table(backbone, input_size=256)
    lines = text.splitlines()
    assert any("Inverted Residual 13" in line and "960 × 16 × 16" in line and "4,970,190" in line for line in lines)
    assert any(line.split()[:3] == ["19", "Final", "Conv"] and "2048 × 8 × 8" in line for line in lines)
    assert "11,103,221" in lines[-1] and "42.36 MiB" in lines[-1]


def test_module_table_for_a_generic_module() -> None:
    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(3, 8, 3, stride=2, padding=1))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    text = module_table(model, (3, 16, 16))
    assert "8 × 8 × 8" in text and "8 × 1 × 1" in text
    assert f"{3 * 8 * 9 + 8:,}" in text.splitlines()[-1]


def test_module_table_for_posenet() -> None:
    from internet_plus.models.posenet import PoseNet

    posenet = PoseNet(in_channels=64, deconv_channels=8, depth_bins=4, root_depth_bins=8, mlp_hidden=16)
    text = module_table(posenet, (64, 2, 2))
    assert "right_hand" in text and "21 × 4 × 16 × 16" in text and "hand_fc" in text
    assert f"{n_params(posenet):,}" in text.splitlines()[-1]


def test_model_summary_of_backbone_and_posenet() -> None:
    from internet_plus.models.posenet import PoseNet

    model = nn.Module()
    model.backbone = InterNetPlusBackbone(final_channels=64)
    model.posenet = PoseNet(in_channels=64, deconv_channels=8, depth_bins=4, root_depth_bins=8, mlp_hidden=16)
    model.train()
    text = model_summary(model, 64)
    assert "Inverted Residual 13" in text and "960 × 4 × 4" in text
    assert "right_hand" in text and "PoseNet, input 64 × 2 × 2" in text
    total = n_params(model.backbone) + n_params(model.posenet)
    assert text.splitlines()[-1].startswith(f"Backbone + PoseNet: {total:,} parameters")
    assert model.training and model.backbone.training  # the summary restores the mode
    generic = model_summary(nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1)), 32)  # no backbone/posenet
    assert "4 × 16 × 16" in generic and "112" in generic


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backbone", "internet_plus_no_fca", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "10,898,421" in out and "FcaNet Layer" not in out
    assert "2048 × 2 × 2" in out


def test_cli_resnet50_lists_its_stages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backbone", "resnet50", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "layer4" in out and "2048 × 2 × 2" in out and "23,508,032" in out and "89.68 MiB" in out
