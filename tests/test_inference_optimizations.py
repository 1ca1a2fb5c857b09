"""Each inference rewrite of ``models/inference.py`` keeps the model's outputs (every speed-up keeps a test that
guards its exactness)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from internet_plus.lit_module import HandPoseModule
from internet_plus.models.backbones.registry import backbone_config
from internet_plus.models.inference import (
    MergedHeatmapBranches,
    calibrate_batchnorm,
    fold_batchnorm,
    hoist_strides_into_projections,
    merge_heatmap_branches,
    optimize_for_inference,
)

INPUT = 64


def _model(backbone: dict, deconv: int = 32, bins: int = 8) -> HandPoseModule:
    """A small model with non-trivial BN statistics and affine parameters (so that folding is really exercised)."""
    torch.manual_seed(0)
    model = HandPoseModule(
        backbone=backbone,
        posenet={"deconv_channels": deconv, "depth_bins": bins, "root_depth_bins": bins},
        codec={"input_size": INPUT, "heatmap_size": INPUT // 4, "depth_bins": bins, "root_depth_bins": bins},
    )
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    # The head's N(0, 0.001) initialisation makes outputs tiny; give the last layers a trained-like scale.
    for branch in (model.posenet.right_hand, model.posenet.left_hand):
        nn.init.normal_(branch[-1].weight, std=0.05)
    return model.eval()


#: The two models the paper compares, as the backbone registry (conf/backbone/) composes them.
BACKBONES = {name: backbone_config(name) for name in ("internet_plus", "resnet50")}


def _outputs(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return {k: v.float().contiguous() for k, v in model(images).items()}


def _assert_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], rtol: float = 1e-4) -> None:
    assert got.keys() == want.keys()
    for key in want:
        scale = want[key].abs().max().clamp_min(1e-6)
        err = (got[key] - want[key]).abs().max() / scale
        assert err <= rtol, f"{key}: max difference {err:.2e} of its scale (limit {rtol:.0e})"


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(3, 3, INPUT, INPUT, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_fold_batchnorm_folds_every_bn_and_keeps_outputs(backbone: str, images: torch.Tensor) -> None:
    model = _model(BACKBONES[backbone])
    want = _outputs(model, images)
    bn_before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded = fold_batchnorm(model)
    assert folded == bn_before > 10
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    _assert_close(_outputs(model, images), want)


def test_fold_batchnorm_refuses_training_mode() -> None:
    model = _model(BACKBONES["internet_plus"]).train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(model)


def test_merged_heatmap_branches_equal_the_concatenated_branches(images: torch.Tensor) -> None:
    model = _model(BACKBONES["internet_plus"])
    features = torch.randn(2, 2048, 2, 2, generator=torch.Generator().manual_seed(3))
    posenet = model.posenet
    with torch.inference_mode():
        want = torch.cat([posenet.right_hand(features), posenet.left_hand(features)], dim=1)
        merged = MergedHeatmapBranches(posenet.right_hand, posenet.left_hand).eval()
        got = merged(features)
    assert got.shape == want.shape == (2, 42, 8, 16, 16)
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()
    # The merged network really is one network: first deconvolution 2048 -> 2·32, then grouped layers.
    first, second = merged.layers[0], merged.layers[3]
    assert (first.in_channels, first.out_channels, first.groups) == (2048, 64, 1)
    assert (second.in_channels, second.out_channels, second.groups) == (64, 64, 2)
    # Swapping the hands' parameters must show up: the right hand's channels come first.
    swapped = MergedHeatmapBranches(posenet.left_hand, posenet.right_hand).eval()
    with torch.inference_mode():
        assert not torch.allclose(swapped(features), want, atol=1e-6)


@pytest.mark.parametrize("fold_first", [False, True])
def test_hoisting_last_convs_stride_into_ir13s_projection_keeps_outputs(fold_first: bool, images: torch.Tensor) -> None:
    """Table 1's Last Conv (1×1, stride 2) after IR13 (no shortcut): the projection computes only what it reads."""
    from torch.utils.flop_counter import FlopCounterMode

    model = _model(BACKBONES["internet_plus"])
    want = _outputs(model, images)

    def flops(m: nn.Module) -> int:
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            m.backbone(images)
        return counter.get_total_flops()

    before = flops(model)
    if fold_first:
        fold_batchnorm(model)
    assert hoist_strides_into_projections(model) == 1
    layers = model.backbone.layers
    assert layers.inverted_residual_13.project[0].stride == (2, 2) and layers.last_conv[0].stride == (1, 1)
    _assert_close(_outputs(model, images), want)
    # 2880 -> 960 channels, 3 of every 4 positions of the 2×2 map (input 64) no longer computed
    side = INPUT // 32 * 2
    assert before - flops(model) == 2 * 2880 * 960 * (side * side - (side // 2) ** 2) * images.shape[0]


def test_hoisting_strides_applies_only_where_it_is_exact() -> None:
    ir12 = _model({**BACKBONES["internet_plus"], "last_stride": "ir12"})
    assert hoist_strides_into_projections(ir12) == 0  # the stride is in IR12's depthwise conv: nothing to move
    assert hoist_strides_into_projections(_model(BACKBONES["resnet50"])) == 0
    with pytest.raises(ValueError, match="eval mode"):
        hoist_strides_into_projections(_model(BACKBONES["internet_plus"]).train())


def test_merge_heatmap_branches_in_posenet(images: torch.Tensor) -> None:
    model = _model(BACKBONES["internet_plus"])
    want = _outputs(model, images)
    merge_heatmap_branches(model.posenet)
    assert model.posenet.right_hand is None and model.posenet.left_hand is None
    _assert_close(_outputs(model, images), want)


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_optimize_for_inference_keeps_outputs_and_the_original(backbone: str, images: torch.Tensor) -> None:
    model = _model(BACKBONES[backbone])
    want = _outputs(model, images)
    fast = optimize_for_inference(model)
    _assert_close(_outputs(fast, images), want)
    # The decoded joints agree wherever the argmax is not a near-tie.
    codec = model.codec
    got_joints = codec.decode_heatmaps(_outputs(fast, images)["heatmaps"])
    want_joints = codec.decode_heatmaps(want["heatmaps"])
    agree = (got_joints == want_joints).all(-1).float().mean()
    assert agree >= 0.97
    # The original is untouched and still trainable.
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.posenet.right_hand is not None
    assert all(p.requires_grad for p in model.parameters())
    assert not any(p.requires_grad for p in fast.parameters())
    assert next(m for m in fast.modules() if isinstance(m, nn.Conv2d)).weight.is_contiguous(
        memory_format=torch.channels_last
    )
    assert type(fast.posenet.merged_heatmaps.layers[0]) is nn.ConvTranspose2d  # plain: accel.py is separate


@pytest.mark.slow
def test_optimize_for_inference_with_torch_compile(images: torch.Tensor) -> None:
    model = _model(BACKBONES["internet_plus"], deconv=16, bins=4)
    want = _outputs(model, images)
    fast = optimize_for_inference(model, compile=True)
    _assert_close(_outputs(fast, images), want, rtol=1e-3)


def test_optimize_for_inference_keeps_the_models_dtype_and_device(images: torch.Tensor) -> None:
    """The merged PoseNet layers are created where the model lives: a float64 (or CUDA) model gives a float64 (or
    CUDA) copy, not one whose merged branches fell back to float32 on the CPU."""
    model = _model(BACKBONES["internet_plus"]).double()
    fast = optimize_for_inference(model)
    dtypes = {p.dtype for p in fast.parameters()} | {b.dtype for b in fast.buffers() if b.is_floating_point()}
    assert dtypes == {torch.float64}
    with torch.inference_mode():
        got, want = fast(images.double()), model(images.double())
    assert got["heatmaps"].dtype == torch.float64
    for key in want:
        assert got[key].dtype == want[key].dtype
        torch.testing.assert_close(got[key], want[key], rtol=1e-9, atol=1e-9 * float(want[key].abs().max()))


def test_calibrate_batchnorm_sets_the_running_statistics_of_the_images() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.3), nn.ReLU(), nn.BatchNorm2d(4))
    images = torch.rand(6, 3, 8, 8) * 5 + 2
    calibrate_batchnorm(net, images, passes=2)
    with torch.no_grad():
        conv = net[0](images)
    # the cumulative average of identical passes is that pass's statistics (variance unbiased, as BN keeps it)
    torch.testing.assert_close(net[1].running_mean, conv.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(net[1].running_var, conv.var(dim=(0, 2, 3), unbiased=True))
    assert net[1].momentum == 0.3 and net[3].momentum == 0.1  # restored
    assert not net.training
    assert int(net[1].num_batches_tracked) == 2


def test_calibrated_internet_plus_has_features_of_order_one() -> None:
    """Why the GPU check calibrates: untrained eval-mode InterNet+ features shrink to ~1e-16 (zero in float16)."""
    torch.manual_seed(0)
    model = HandPoseModule(backbone=BACKBONES["internet_plus"], codec={"input_size": 128, "heatmap_size": 32})
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = float(model.eval().backbone(images).abs().max())
        calibrate_batchnorm(model, images)
        after = float(model.backbone(images).abs().max())
    assert before < 1e-6 < 1e-1 < after
