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


def _made_resnet50_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A complete torchvision ResNet-50 state dict with weights of our own (no download): fc included, as in
    torchvision's file."""
    from torchvision.models import resnet50

    torch.manual_seed(seed)
    return resnet50(weights=None).state_dict()


def _assert_backbone_holds(backbone: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Every backbone tensor equals the state dict's (torchvision names: conv1 -> stem.0, bn1 -> stem.1)."""
    renamed = {"stem.0.": "conv1.", "stem.1.": "bn1."}
    for name, value in backbone.state_dict().items():
        source = next((name.replace(a, b, 1) for a, b in renamed.items() if name.startswith(a)), name)
        assert torch.equal(value, state[source]), name
    assert len(backbone.state_dict()) == len([k for k in state if not k.startswith("fc.")])


def test_resnet50_weights_path_loads_every_key_and_refuses_other_files(tmp_path) -> None:
    state = _made_resnet50_state()
    path = tmp_path / "r50.pth"
    torch.save(state, path)
    _assert_backbone_holds(resnet50_backbone(weights_path=str(path)), state)

    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(
        PretrainedWeightsError, match=r"bad\.pth is not a torchvision ResNet-50 state dict: 318 missing keys"
    ):
        resnet50_backbone(weights_path=str(tmp_path / "bad.pth"))
    reshaped = dict(state, **{"layer1.0.conv1.weight": torch.zeros(1, 1, 1, 1)})
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(PretrainedWeightsError, match=r"1 of another shape \(e\.g\. \['layer1\.0\.conv1\.weight'\]"):
        resnet50_backbone(weights_path=str(tmp_path / "reshaped.pth"))
    (tmp_path / "text.pth").write_text("weights")
    with pytest.raises(PretrainedWeightsError, match=r"text\.pth: not a PyTorch state dict"):
        resnet50_backbone(weights_path=str(tmp_path / "text.pth"))
    with pytest.raises(PretrainedWeightsError, match="no such file"):
        resnet50_backbone(weights_path=str(tmp_path / "missing.pth"))


def test_resnet50_pretrained_without_cached_weights_names_the_file_and_its_hash(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    with pytest.raises(PretrainedWeightsError) as caught:
        resnet50_backbone(pretrained=True)
    message = str(caught.value)
    assert f"expected the file {expected}" in message
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in message
    assert "sha256sum resnet50-0676ba61.pth" in message and "must start with 0676ba61" in message


def test_resnet50_pretrained_reads_torchvisions_cache_after_checking_its_hash(monkeypatch, tmp_path) -> None:
    import hashlib
    import types

    from internet_plus.models.backbones import resnet

    state = _made_resnet50_state(seed=1)
    made = tmp_path / "made.pth"
    torch.save(state, made)
    prefix = hashlib.sha256(made.read_bytes()).hexdigest()[:8]
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    made.rename(cache / f"resnet50-{prefix}.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(resnet, "IMAGENET_WEIGHTS", types.SimpleNamespace(url=f"https://x/resnet50-{prefix}.pth"))
    _assert_backbone_holds(resnet50_backbone(pretrained=True, weights_path=None), state)

    (cache / f"resnet50-{prefix}.pth").rename(cache / "resnet50-00000000.pth")
    monkeypatch.setattr(resnet, "IMAGENET_WEIGHTS", types.SimpleNamespace(url="https://x/resnet50-00000000.pth"))
    with pytest.raises(
        PretrainedWeightsError, match=r"resnet50-00000000\.pth: SHA-256 .* does not start with 00000000"
    ):
        resnet50_backbone(pretrained=True)


def test_unknown_backbone_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg16'; valid names .*: internet_plus, .*, resnet50"):
        backbone_config("vgg16")
