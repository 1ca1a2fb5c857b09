"""Which data ``eval.py`` tests on: the run's own (saved in the checkpoint) unless the command line names other data."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from conftest import compose_config

from internet_plus.tasks.eval import evaluation_data

SAVED = {
    "_target_": "internet_plus.data.synthetic.datamodule.SyntheticDataModule",
    "root": "/runs/data/synthetic",
    "seed": 3,
}
CKPT = Path("best.ckpt")


def _cfg(tmp_path: Path, *overrides: str):
    return compose_config("eval", ["ckpt_path=best.ckpt", *overrides], tmp_path)


def test_the_checkpoints_data_is_used_when_the_command_line_names_none(tmp_path: Path) -> None:
    data, origin = evaluation_data(_cfg(tmp_path, "trainer=cpu", "logger=none"), SAVED, CKPT)
    assert data.root == "/runs/data/synthetic" and data.seed == 3 and "checkpoint" in origin


@pytest.mark.parametrize(
    ("saved_target", "built"),
    [
        ("internet_plus.data.datamodule.RHDDataModule", "internet_plus.data.rhd.RHDDataModule"),
        ("internet_plus.data.datamodule.SyntheticDataModule", SAVED["_target_"]),
    ],
)
def test_a_checkpoint_naming_a_moved_datamodule_still_evaluates(saved_target: str, built: str, tmp_path: Path) -> None:
    """Checkpoints saved before the data package was split name the DataModules' old homes."""
    data, _ = evaluation_data(_cfg(tmp_path), {**SAVED, "_target_": saved_target}, CKPT)
    assert data._target_ == built
    module, _, name = built.rpartition(".")
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize("override", ["dataset=rhd", "data.root=/elsewhere", "data.input_size=128"])
def test_data_named_on_the_command_line_wins(override: str, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, override)
    data, origin = evaluation_data(cfg, SAVED, CKPT)
    assert data is cfg.data and origin == "the command line"


def test_the_switch_forces_either_source(tmp_path: Path) -> None:
    data, _ = evaluation_data(_cfg(tmp_path, "dataset=rhd", "data_from_checkpoint=true"), SAVED, CKPT)
    assert data.root == "/runs/data/synthetic"
    cfg = _cfg(tmp_path, "data_from_checkpoint=false")
    assert evaluation_data(cfg, SAVED, CKPT)[0] is cfg.data
    with pytest.raises(ValueError, match="data_from_checkpoint='maybe'"):
        evaluation_data(_cfg(tmp_path, "data_from_checkpoint=maybe"), SAVED, CKPT)


def test_an_older_checkpoint_without_data_falls_back_or_fails_as_asked(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    data, origin = evaluation_data(cfg, None, CKPT)
    assert data is cfg.data and "has none" in origin
    with pytest.raises(ValueError, match=r"holds no data config.*dataset=<d> data.root=<folder>"):
        evaluation_data(_cfg(tmp_path, "data_from_checkpoint=true"), None, CKPT)
