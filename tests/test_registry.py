"""The backbone registry is the ``backbone`` config group: names, composed nodes, recognising a saved node, building
only the group's classes, checkpoints from before the registry, and a new backbone added by a yaml file alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import hydra
import pytest
import pytorch_lightning as L
import torch
from conftest import CONF_DIR, TINY, compose_config
from fakes.batch import training_batch
from fakes.toy_backbone import ToyBackbone
from omegaconf import OmegaConf

from internet_plus.lit_module import HandPoseModule
from internet_plus.models.backbones import build_backbone
from internet_plus.models.backbones.internet_plus import InterNetPlusBackbone
from internet_plus.models.backbones.registry import (
    LEGACY_NAMES,
    backbone_config,
    backbone_names,
    backbone_node,
    conf_dir,
    nearest_variant,
    variant_of,
)
from internet_plus.models.backbones.resnet import ResNet50Backbone
from internet_plus.tasks.resume import _plain_model_config, check_resume_compatible

PAPER_VARIANTS = {"internet_plus", "internet_plus_se", "internet_plus_no_ca", "internet_plus_no_fca", "resnet50"}
INTERNET_PLUS = "internet_plus.models.backbones.internet_plus.InterNetPlusBackbone"

TOY_YAML = """\
# @package model.backbone
# A test-only feature extractor (tests/fakes/toy_backbone.py): one stride-32 convolution.
_target_: fakes.toy_backbone.ToyBackbone
channels: 8
"""


def test_the_names_are_the_group_files_internet_plus_first_resnet50_last() -> None:
    names = backbone_names()
    assert conf_dir() == CONF_DIR
    assert set(names) == {p.stem for p in (CONF_DIR / "backbone").glob("*.yaml")} >= PAPER_VARIANTS
    assert names[0] == "internet_plus" and names[-1] == "resnet50" and names[1:-1] == sorted(names[1:-1])


def test_a_composed_node_inherits_through_defaults() -> None:
    base, se = backbone_config("internet_plus"), backbone_config("internet_plus_se")
    assert base["_target_"] == se["_target_"] == INTERNET_PLUS and "name" not in base
    assert se == {**base, "attention": "se"}  # the variant file states only the difference
    assert backbone_config("internet_plus_no_fca") == {**base, "fca": False}
    assert backbone_config("resnet50") == {
        "_target_": "internet_plus.models.backbones.resnet.ResNet50Backbone",
        "pretrained": False,
        "weights_path": None,
    }
    se["attention"] = "changed"  # a copy: the registry's own node is untouched
    assert backbone_config("internet_plus_se")["attention"] == "se"
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg'; valid names .*: internet_plus, .*, resnet50"):
        backbone_config("vgg")


def test_the_train_config_holds_the_registry_node(tmp_path: Path) -> None:
    for name in ("internet_plus_no_ca", "resnet50"):
        assert compose_config("train", [f"backbone={name}"], tmp_path).model.backbone == backbone_config(name)


@pytest.mark.parametrize("name", sorted(PAPER_VARIANTS))
def test_every_member_is_recognised_in_both_node_forms(name: str) -> None:
    node = backbone_config(name)
    assert variant_of(node) == name and nearest_variant(node) == (name, {})
    target = node.pop("_target_")
    legacy = {"name": next(k for k, v in LEGACY_NAMES.items() if v == target), **node}  # as checkpoints saved it
    assert variant_of(legacy) == name


def test_nearest_variant_lists_the_differences() -> None:
    assert nearest_variant({"_target_": INTERNET_PLUS, "attention": "se", "meta_acon": False}) == (
        "internet_plus_se",
        {"meta_acon": False},
    )
    # two ablations at once: no member is nearer than another, so the base member with both differences
    assert nearest_variant({"_target_": INTERNET_PLUS, "attention": "none", "fca": False}) == (
        "internet_plus",
        {"attention": "none", "fca": False},
    )
    assert variant_of({"_target_": INTERNET_PLUS, "final_channels": 1280}) is None
    assert nearest_variant({"_target_": "torch.nn.Identity"}) is None
    assert nearest_variant({"name": "vgg16"}) is None and nearest_variant({"attention": "se"}) is None
    assert nearest_variant(None) is None


def test_legacy_names_map_to_their_classes() -> None:
    assert backbone_node({"name": "resnet50", "pretrained": False}) == {
        "_target_": "internet_plus.models.backbones.resnet.ResNet50Backbone",
        "pretrained": False,
    }
    assert isinstance(build_backbone({"name": "resnet50"}), ResNet50Backbone)
    with pytest.raises(ValueError, match="legacy names are internet_plus, resnet50"):
        backbone_node({"name": "vgg16"})
    with pytest.raises(ValueError, match="_target_"):
        backbone_node({"attention": "se"})


def test_only_the_classes_of_the_group_are_built() -> None:
    """A node can come from a checkpoint: its ``_target_`` must not call just anything (they load weights-only)."""
    with pytest.raises(ValueError, match="not a class of the backbone group"):
        build_backbone({"_target_": "os.system", "command": "echo unsafe"})
    with pytest.raises(ValueError, match="_args_"):
        build_backbone({"_target_": INTERNET_PLUS, "_args_": ["se"]})


def _legacy_hparams(model_cfg) -> dict:
    """The hyperparameters as checkpoints saved them before the registry: ``backbone: {name: ..., fields}``."""
    hparams = _plain_model_config(model_cfg)
    fields = {k: v for k, v in hparams["backbone"].items() if k != "_target_"}
    hparams["backbone"] = {"name": "internet_plus", **fields}
    return hparams


def test_a_checkpoint_from_before_the_registry_loads_and_resumes(tmp_path: Path) -> None:
    cfg = compose_config("train", [*TINY, "model.backbone.final_channels=64"], tmp_path)
    hparams = _legacy_hparams(cfg.model)
    assert "_target_" not in hparams["backbone"] and hparams["backbone"]["name"] == "internet_plus"
    torch.manual_seed(0)
    old = HandPoseModule(**hparams)  # what the old checkpoint's hyperparameters build now
    assert isinstance(old.backbone, InterNetPlusBackbone) and old.backbone.out_channels == 64
    path = tmp_path / "old.ckpt"
    saved = {"state_dict": old.state_dict(), "hyper_parameters": hparams, "pytorch-lightning_version": L.__version__}
    torch.save({**saved, "optimizer_states": [], "loops": {}}, path)  # a last.ckpt: resumable
    loaded = HandPoseModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), old.state_dict().values(), strict=True))
    check_resume_compatible(path, cfg.model)  # the current config (with _target_) is the same model


def _toy_conf(tmp_path: Path) -> Path:
    """A copy of ``conf/`` with one more backbone file, ``toy.yaml``; the project root that holds it."""
    root = tmp_path / "project"
    shutil.copytree(CONF_DIR, root / "conf")
    (root / "conf" / "backbone" / "toy.yaml").write_text(TOY_YAML)
    return root


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_a_toy_backbone_from_a_yaml_file_alone_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    root = _toy_conf(tmp_path)
    monkeypatch.setenv("PROJECT_ROOT", str(root))
    assert conf_dir() == root / "conf"
    names = backbone_names()
    assert "toy" in names and names[0] == "internet_plus" and names[-1] == "resnet50"
    assert backbone_config("toy") == {"_target_": "fakes.toy_backbone.ToyBackbone", "channels": 8}

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["backbone=toy", *TINY])
    assert variant_of(cfg.model.backbone) == "toy"
    model = hydra.utils.instantiate(cfg.model)
    assert isinstance(model, HandPoseModule) and isinstance(model.backbone, ToyBackbone)
    assert model.posenet.in_channels == 8  # PoseNet follows the toy's out_channels

    model.train()
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    before = model.backbone.patches.weight.detach().clone()
    loss = model.training_step(training_batch(2, cfg.data.input_size), 0)
    loss.backward()
    assert torch.isfinite(loss)
    grad = model.backbone.patches.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(model.backbone.patches.weight, before)


def test_a_checkpoint_of_a_pretrained_resnet50_loads_without_the_imagenet_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from internet_plus.checkpoints import load_model

    cfg = compose_config("train", [*TINY, "backbone=resnet50"], tmp_path)
    hparams = OmegaConf.to_container(cfg.model, resolve=True)
    hparams.pop("_target_"), hparams.pop("_recursive_"), hparams.pop("_convert_")
    torch.manual_seed(0)
    trained = HandPoseModule(**hparams)
    hparams["backbone"] = {**hparams["backbone"], "pretrained": True, "weights_path": str(tmp_path / "gone.pth")}
    path = tmp_path / "r50.ckpt"
    torch.save({"state_dict": trained.state_dict(), "hyper_parameters": hparams,
                "pytorch-lightning_version": L.__version__}, path)  # fmt: skip
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))  # no ImageNet weights on this machine
    loaded = load_model(path)
    assert loaded.hparams["backbone"]["pretrained"] is False
    for (name, a), b in zip(loaded.state_dict().items(), trained.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
