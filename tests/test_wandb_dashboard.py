"""The W&B dashboard (an offline run, read back) and the SLURM launcher config with the multirun + DDP guard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import compose_config, tiny_train_overrides
from omegaconf import OmegaConf, open_dict

from internet_plus.tasks.train import SLURM_LAUNCHER, MultirunWithDDPError, check_launch_mode
from internet_plus.wandb_dashboard import SUMMARIES, resolve_wandb_node


def _as_multirun(cfg, sweep_dir: Path | None = None):
    """The composed config as one job of a Hydra multirun (what ``-m`` sets), registered with HydraConfig."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    OmegaConf.set_readonly(cfg.hydra, False)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        if sweep_dir is not None:
            cfg.hydra.sweep.dir = str(sweep_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


class _Recorder:
    """Wraps ``wandb.Run.log`` / ``define_metric`` (calls still go through) and keeps what the run was given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from wandb.sdk.wandb_run import Run

        self.logged: list[dict[str, Any]] = []
        self.defined: dict[str, dict[str, Any]] = {}
        self.run_info: dict[str, Any] = {}
        original_log, original_define = Run.log, Run.define_metric
        recorder = self

        def log(run: Run, data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            recorder.logged.append(dict(data))
            recorder.run_info = {
                "name": run.name,
                "group": run.group,
                "tags": tuple(run.tags),
                "job_type": run.job_type,
                "dir": run.dir,
                "config": dict(run.config),
            }
            return original_log(run, data, *args, **kwargs)

        def define_metric(run: Run, name: str, *args: Any, **kwargs: Any) -> Any:
            recorder.defined[name] = dict(kwargs)
            return original_define(run, name, *args, **kwargs)

        monkeypatch.setattr(Run, "log", log)
        monkeypatch.setattr(Run, "define_metric", define_metric)

    def keys(self) -> set[str]:
        return {key for entry in self.logged for key in entry}


@pytest.mark.slow
@pytest.mark.parametrize("prefix", ["val", "monitor"])
def test_offline_wandb_run_logs_the_dashboard(
    prefix: str, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``val``: the hold-out's curve and images; ``monitor``: the paper recipes' protocol (no hold-out, the
    evaluation split monitored), the same under ``monitor/``."""
    import wandb

    from internet_plus.tasks import train as train_task

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    recorder = _Recorder(monkeypatch)

    run_dir = tmp_path / "run"
    overrides = tiny_train_overrides(
        synthetic_root,
        tmp_path,
        "logger=wandb",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "test=false",
    )
    if prefix == "monitor":
        overrides += ["data.val_fraction=0", "data.monitor_eval_split=true", "callbacks.model_checkpoint.monitor=null"]
    cfg = compose_config("train", overrides, run_dir)
    train_task.run(cfg)

    assert wandb.run is None, "finish_wandb must close the run at the end of the job"
    info = recorder.run_info
    assert info["name"] == "internet_plus_synthetic_s42"
    assert info["group"] == "train"  # a single run: the task name (a multirun: see the test below)
    assert info["tags"] == ("internet_plus", "synthetic")
    assert info["job_type"] == "train"
    assert info["config"]["model"]["backbone"]["attention"] == "ca"  # the resolved config
    assert info["config"]["params/total"] > 0
    assert Path(info["dir"]).is_relative_to(run_dir / "wandb")

    for name, summary in SUMMARIES.items():
        assert recorder.defined[name]["summary"] == summary
        assert recorder.defined[name]["step_metric"] == "trainer/global_step"
    assert recorder.defined["val/epe_mm"]["summary"] == "min"

    keys = recorder.keys()
    assert {f"{prefix}/epe_mm", f"{prefix}/auc_20_50", "train/loss_step", "trainer/global_step"} <= keys
    assert not {k for k in keys if k.startswith(("val/", "monitor/")) and not k.startswith(f"{prefix}/")}
    payload = next(entry for entry in recorder.logged if f"{prefix}/pck_curve" in entry)
    chart = payload[f"{prefix}/pck_curve"]
    assert isinstance(chart, wandb.plot.CustomChart)
    assert chart.table.columns == ["threshold_mm", "pck"]
    assert [row[0] for row in chart.table.data] == [float(t) for t in range(20, 51)]
    images = payload[f"{prefix}/predictions"]
    assert 0 < len(images) <= 4 and all(isinstance(image, wandb.Image) for image in images)
    assert "ground truth" in images[0]._caption

    # What reached the offline run directory (what `wandb sync` uploads): the run's record file, the images and the
    # chart's table (media files are written by the SDK when logged, the record file by its service process).
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert list(offline[0].glob("run-*.wandb"))
    assert list((offline[0] / "files" / "media" / "images" / prefix).glob("predictions_*.png"))
    table_file = next((offline[0] / "files" / "media" / "table" / prefix).glob("pck_curve_table_*.table.json"))
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["threshold_mm", "pck"] and len(table["data"]) == 31


def test_wandb_group_and_artifacts_follow_the_sweep_and_mode(tmp_path: Path) -> None:
    cfg = compose_config("train", ["logger=wandb"], tmp_path / "run")
    node = cfg.logger.wandb
    assert node.group is None and node.log_model == "auto"

    single = resolve_wandb_node(node, "train", "offline")
    assert single.group == "train" and single.log_model is False
    assert resolve_wandb_node(node, "train", "online").log_model == "all"  # checkpoints as artifacts online only
    assert resolve_wandb_node(node, "train", "disabled").log_model is False

    _as_multirun(cfg, tmp_path / "multiruns" / "2026-01-02_03-04-05_000006")
    assert resolve_wandb_node(node, "ablation", "offline").group == "ablation-2026-01-02_03-04-05_000006"

    with open_dict(node):
        node.group, node.log_model = "mine", False
    explicit = resolve_wandb_node(node, "ablation", "online")
    assert explicit.group == "mine" and explicit.log_model is False


def test_slurm_launcher_composes_and_runs_ddp_jobs(tmp_path: Path) -> None:
    from hydra.types import RunMode
    from hydra.utils import get_class

    cfg = compose_config("train", ["hydra/launcher=slurm", "trainer=ddp", "experiment=ablation"], tmp_path)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == SLURM_LAUNCHER
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"
    assert launcher.nodes == 1
    assert launcher.tasks_per_node == 2 and launcher.gpus_per_node == 2  # one SLURM task per GPU
    assert launcher.partition is None and launcher.timeout_min > 0 and launcher.cpus_per_task > 0
    assert cfg.hydra.mode == RunMode.MULTIRUN  # experiment=ablation is a sweep by itself
    assert cfg.trainer.sync_batchnorm is True and cfg.trainer.precision == "16-mixed"

    check_launch_mode(_as_multirun(cfg))  # a SLURM sweep with DDP inside each job: accepted

    OmegaConf.set_readonly(cfg.hydra, False)
    with open_dict(cfg):
        cfg.hydra.launcher.tasks_per_node = 1  # Lightning would re-launch submitit's command line
    with pytest.raises(MultirunWithDDPError, match="one task per device"):
        check_launch_mode(_as_multirun(cfg))


def test_local_multirun_with_ddp_is_refused(tmp_path: Path) -> None:
    cfg = compose_config("train", ["trainer=ddp", "experiment=ablation"], tmp_path)
    assert "BasicLauncher" in cfg.hydra.launcher._target_
    with pytest.raises(MultirunWithDDPError, match=r"hydra/launcher=slurm") as err:
        check_launch_mode(_as_multirun(cfg))
    assert "one device per job" in str(err.value)

    local_submitit = compose_config("train", ["hydra/launcher=submitit_local", "trainer=ddp"], tmp_path)
    with pytest.raises(MultirunWithDDPError):  # submitit's local launcher gives Lightning no SLURM ranks
        check_launch_mode(_as_multirun(local_submitit))
    check_launch_mode(_as_multirun(compose_config("train", ["trainer=gpu", "experiment=ablation"], tmp_path)))
