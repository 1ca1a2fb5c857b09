"""PoseNet (InterNet's head) and the ResNet-50 backbone: parameter counts, shapes, reshape order, soft-argmax."""

from __future__ import annotations

import pytest
import torch

from internet_plus.models.backbones import build_backbone
from internet_plus.models.backbones.registry import backbone_config
from internet_plus.models.backbones.resnet import PretrainedWeightsError
from internet_plus.models.posenet import PoseNet, soft_argmax_1d


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def resnet50_backbone(**fields: object) -> torch.nn.Module:
    """The registry's ``resnet50`` backbone (``conf/backbone/resnet50.yaml``) with some fields overridden."""
    return build_backbone({**backbone_config("resnet50"), **fields})


def test_posenet_parameter_count_matches_internet() -> None:
    # internet §2.3: 2 × 10,832,704 (branches) + 1,081,920 (root_fc) + 1,050,114 (hand_fc).
    assert n_params(PoseNet(in_channels=2048)) == 23_797_442
    assert n_params(PoseNet(in_channels=2048).right_hand) == 10_832_704


def test_posenet_input_width_follows_backbone() -> None:
    head = PoseNet(in_channels=1280)
    # Only deconv1 of each branch and the first Linear of each MLP depend on the input width.
    delta = 2 * (2048 - 1280) * 256 * 16 + 2 * (2048 - 1280) * 512
    assert n_params(PoseNet(in_channels=2048)) - n_params(head) == delta
    out = head(torch.randn(1, 1280, 8, 8))
    assert out["heatmaps"].shape == (1, 42, 64, 64, 64)


def test_posenet_output_shapes_and_small_geometry() -> None:
    head = PoseNet(in_channels=64, deconv_channels=16, depth_bins=32, root_depth_bins=32).eval()
    out = head(torch.randn(3, 64, 4, 4))
    assert out["heatmaps"].shape == (3, 42, 32, 32, 32)
    assert out["root_logits"].shape == (3, 32)
    assert out["root_bins"].shape == (3,)
    assert out["hand_logits"].shape == (3, 2)
    assert torch.all((out["root_bins"] >= 0) & (out["root_bins"] <= 31))


def test_heatmap_channels_are_joint_major_depth_minor() -> None:
    head = PoseNet(in_channels=8, deconv_channels=4, num_deconv=1, depth_bins=5).eval()
    final = head.right_hand[-1]
    with torch.no_grad():
        final.weight.zero_()
        final.bias.zero_()
        final.bias[3 * 5 + 2] = 1.0  # channel = joint 3, depth bin 2
    hm = head(torch.randn(1, 8, 2, 2))["heatmaps"]
    assert hm[0, 3, 2].min() == 1.0
    assert hm[0, :21].sum() == hm[0, 3, 2].sum()
    assert hm[0, 21:].abs().sum() > 0  # the left branch is separate (its own weights)


def test_soft_argmax_1d_is_the_expected_bin() -> None:
    logits = torch.full((2, 8), -1e4)
    logits[0, 5] = 0
    logits[1, 2] = logits[1, 4] = 0
    assert torch.allclose(soft_argmax_1d(logits), torch.tensor([5.0, 3.0]))


def test_internet_init() -> None:
    head = PoseNet(in_channels=2048)
    w = head.right_hand[0].weight
    assert abs(w.std().item() - 0.001) < 1e-4
    assert abs(head.hand_fc[0].weight.std().item() - 0.01) < 1e-3
    assert head.hand_fc[0].bias.abs().sum() == 0


def test_resnet50_backbone() -> None:
    backbone = resnet50_backbone()
    assert n_params(backbone) == 23_508_032  # paper Table 3: 23.51 M, 89.68 MiB
    assert abs(n_params(backbone) * 4 / 2**20 - 89.68) < 0.01
    assert backbone.out_channels == 2048
    with torch.no_grad():
        assert backbone.eval()(torch.randn(1, 3, 128, 128)).shape == (1, 2048, 4, 4)


def test_resnet50_local_weights(tmp_path) -> None:
    from torchvision.models import resnet50

    reference = resnet50(weights=None)
    path = tmp_path / "r50.pth"
    torch.save(reference.state_dict(), path)
    backbone = resnet50_backbone(weights_path=str(path))
    assert torch.equal(backbone.layer4[0].conv1.weight, reference.layer4[0].conv1.weight)
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(PretrainedWeightsError, match="not a torchvision ResNet-50"):
        resnet50_backbone(weights_path=str(tmp_path / "bad.pth"))
    with pytest.raises(PretrainedWeightsError, match="no such file"):
        resnet50_backbone(weights_path=str(tmp_path / "missing.pth"))


def test_resnet50_pretrained_without_network_gives_clear_error(monkeypatch, tmp_path) -> None:
    from torchvision.models import ResNet50_Weights

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(ResNet50_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline, raising=False)
    with pytest.raises(PretrainedWeightsError, match="weights_path"):
        resnet50_backbone(pretrained=True)


def test_unknown_backbone_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg16'; valid names .*: internet_plus, .*, resnet50"):
        backbone_config("vgg16")
