"""Run-level helpers: metrics.json, the metrics table, W&B without an account, the multirun + DDP guard."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import compose_config
from omegaconf import OmegaConf, open_dict

from internet_plus.tasks.common import (
    NonFiniteMetricError,
    format_metrics_table,
    prepare_wandb_environment,
    write_metrics_json,
)
from internet_plus.tasks.train import MultirunWithDDPError, check_launch_mode, device_count


def test_metrics_json_is_flat_and_refuses_null_or_non_finite_metrics(tmp_path: Path) -> None:
    path = write_metrics_json({"test/epe_mm": 12.5, "test/pck_curve": [0.1, 0.2]}, tmp_path)
    data = json.loads(path.read_text())
    assert data == {"test/epe_mm": 12.5, "test/pck_curve": [0.1, 0.2]}
    assert not list(tmp_path.glob("*.tmp"))
    for bad in ({"test/x": float("nan")}, {"test/x": None}, {"test/x": float("inf")}, {"test/x": [0.1, float("nan")]}):
        out = tmp_path / f"bad{len(list(tmp_path.iterdir()))}"
        out.mkdir()
        with pytest.raises(NonFiniteMetricError, match="test/x") as err:
            write_metrics_json({"test/epe_mm": 12.5, **bad}, out)
        assert "test/epe_mm" not in str(err.value).split("are null")[0]
        assert not (out / "metrics.json").exists()


def test_metrics_table_lists_every_metric() -> None:
    table = format_metrics_table({"test/epe_mm": 12.3456, "test/pck_curve": [0.25, 0.75]})
    assert "test/epe_mm" in table and "12.3456" in table and "31" not in table and "0.250" in table


def test_wandb_without_credentials_goes_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    assert prepare_wandb_environment() == "offline"
    assert os.environ["WANDB_MODE"] == "offline"


def test_wandb_mode_chosen_by_user_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert prepare_wandb_environment() == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert prepare_wandb_environment() == "online"


@pytest.mark.parametrize(
    ("devices", "count"), [(1, 1), (2, 2), ("2", 2), ([0, 1], 2), (-1, 2), ("auto", 2), ("0,1", 2)]
)
def test_device_count(devices, count: int) -> None:
    assert device_count(devices) == count


def _as_multirun(cfg):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    OmegaConf.set_readonly(cfg.hydra, False)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_multirun_with_ddp_is_refused(tmp_path: Path) -> None:
    cfg = compose_config("train", ["trainer=ddp_cpu"], tmp_path)
    check_launch_mode(cfg)  # a single run is fine
    with pytest.raises(MultirunWithDDPError, match="one device per job"):
        check_launch_mode(_as_multirun(cfg))
    check_launch_mode(_as_multirun(compose_config("train", ["trainer=cpu"], tmp_path)))  # one device per job: fine


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["test_ckpt=middle"], r"test_ckpt='middle': expected one of best, last"),
        (["data.val_fraction=0"], r"data\.val_fraction=0 leaves no validation split for .*monitor=val/epe_mm"),
        (
            ["data.val_fraction=0", "callbacks.model_checkpoint.monitor=null"],
            r"test_ckpt=best with data\.val_fraction=0: there is no validation split",
        ),
        (["callbacks.model_checkpoint.monitor=monitor/epe_mm"], r"monitor/\* metrics score the evaluation split"),
    ],
)
def test_checkpoint_selection_that_cannot_work_is_refused_before_training(
    overrides: list[str], message: str, tmp_path: Path
) -> None:
    from internet_plus.tasks.common import ConfigValueError, check_config

    with pytest.raises(ConfigValueError, match=message):
        check_config(compose_config("train", overrides, tmp_path))
    check_config(compose_config("train", ["experiment=paper_rhd"], tmp_path))  # the paper's protocol is consistent
    check_config(compose_config("train", ["data.val_fraction=0", "train=false"], tmp_path))  # nothing to select
