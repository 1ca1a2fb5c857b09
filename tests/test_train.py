"""End to end: the training and evaluation tasks on a tiny synthetic data set, in-process and as commands."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, TINY, compose_config, tiny_train_overrides

from internet_plus.models.backbones.registry import backbone_config, backbone_names
from internet_plus.tasks import eval as eval_task
from internet_plus.tasks import train as train_task

METRIC_KEYS = {"test/epe_mm", "test/epe_median_mm", "test/pck_curve", "test/auc_20_50", "test/handedness_acc"}
METRIC_KEYS |= {"test/pck_curve_hand3d", "test/auc_20_50_hand3d", "test/epe_median_mm_hand3d"}


def _read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_fast_dev_run(synthetic_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = compose_config("train", tiny_train_overrides(synthetic_root, tmp_path, "debug=fdr"), run_dir)
    results = train_task.run(cfg)
    assert set(results) >= METRIC_KEYS
    metrics = _read_metrics(run_dir)
    assert len(metrics["test/pck_curve"]) == 31 and len(metrics["test/pck_curve_hand3d"]) == 20
    assert all(k.startswith("test/") for k in metrics)
    # nothing that a later `resume=last` could pick up
    assert not list(run_dir.rglob("*.ckpt")) and not (run_dir / "checkpoints").exists()


@pytest.mark.slow
def test_short_training_run_learns_and_eval_reproduces_it(synthetic_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = tiny_train_overrides(
        synthetic_root,
        tmp_path,
        "logger=csv",
        "trainer.max_epochs=6",
        "trainer.log_every_n_steps=1",
        "model.optimizer.lr=2e-3",
        "model.codec.peak=1.0",  # InterNet's loss up to an output rescaling (see experiments/quickstart)
        "model.loss.weights.heatmap=65025.0",
        "data.augmentation.enabled=false",
        "data.limit_train_samples=32",
    )
    cfg = compose_config("train", overrides, run_dir)
    results = train_task.run(cfg)

    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))
    epoch_losses = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert len(epoch_losses) == 6
    # On 32 fixed samples the loss falls over the run (measured: 47.3 -> 43.3, the heatmap term 0.73e-3 -> 0.66e-3).
    # Not every single epoch must be lower (float rounding moves a 6-epoch curve by a few tenths); the last must be
    # the lowest so far and at least 5 % below the first.
    assert epoch_losses[-1] < min(epoch_losses[:-1]), epoch_losses
    assert epoch_losses[-1] < 0.95 * epoch_losses[0], epoch_losses

    # The checkpoints hold plain hyperparameters: safe (weights_only) loading works. best.ckpt holds what evaluation
    # needs (weights and hyperparameters), last.ckpt what resuming needs too (optimiser, scheduler, loop state).
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["backbone"] == backbone_config("internet_plus")
    assert "state_dict" in ckpt and "optimizer_states" not in ckpt and "lr_schedulers" not in ckpt
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 5 and len(last["optimizer_states"]) == 1 and last["lr_schedulers"] and "loops" in last
    best_size = (run_dir / "checkpoints" / "best.ckpt").stat().st_size
    assert best_size < 0.5 * (run_dir / "checkpoints" / "last.ckpt").stat().st_size  # AdamW keeps 2 moments

    # eval.py with the checkpoint alone (no data set, no experiment named) reproduces the run's test metrics on the
    # run's own test set, and touches no data file.
    def snapshot(folder: Path) -> dict[str, int]:
        return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}

    before = snapshot(synthetic_root)
    eval_dir = tmp_path / "eval"
    ckpt_only = [f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", f"paths.log_dir={tmp_path / 'logs'}"]
    again = eval_task.run(compose_config("eval", [*ckpt_only, "trainer=cpu"], eval_dir))
    for key in METRIC_KEYS - {"test/pck_curve"}:
        assert again[key] == pytest.approx(results[key], rel=1e-5, abs=1e-6), key
    assert _read_metrics(eval_dir)["test/epe_mm"] == pytest.approx(results["test/epe_mm"], rel=1e-5)
    assert snapshot(synthetic_root) == before


def _run_cli(
    args: list[str], tmp_path: Path, timeout: int = 600, show_warnings: bool = False
) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    if not show_warnings:
        env["PYTHONWARNINGS"] = "ignore"
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_train_command_writes_its_run_directory(synthetic_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "cli_run"
    args = [
        str(ROOT / "train.py"),
        *tiny_train_overrides(synthetic_root, tmp_path, "debug=limit"),
        f"hydra.run.dir={run_dir}",
    ]
    proc = _run_cli(args, tmp_path, show_warnings=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert set(_read_metrics(run_dir)) >= METRIC_KEYS
    assert "epe_mm" in proc.stdout
    _assert_said_once(proc.stdout + proc.stderr)
    # Lightning's lines reach the run's log file too (one handler chain: Hydra's)
    assert "`Trainer.fit` stopped" in (run_dir / "train.log").read_text()


#: Lines that carry no information for a user and must not appear in a run's output.
NOISE = ("💡 Tip", "LeafSpec", "Total FLOPs: 0", "anonymous setting", "sync_dist=True", "Grad strides do not match")


def _assert_said_once(output: str) -> None:
    """Every message line appears once (timestamps stripped; table borders and blank lines aside) and no noise."""
    messages = [re.sub(r"^\[[^]]*\]", "", line).strip() for line in output.splitlines()]
    messages = [m for m in messages if len(m) > 3 and not set(m) <= set("-━─┃│┏┓┗┛┡┩└┘┳┻╇ ")]
    repeated = sorted({m for m in messages if messages.count(m) > 1})
    assert not repeated, f"lines said more than once: {repeated}"
    noise = [n for n in NOISE if n in output]
    assert not noise, f"noise in the output: {noise}"


@pytest.mark.slow
def test_ddp_cpu_run(synthetic_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp_run"
    args = [
        str(ROOT / "train.py"),
        *tiny_train_overrides(synthetic_root, tmp_path, "debug=limit"),
        "trainer=ddp_cpu",
        "trainer.limit_test_batches=1.0",  # test on every sample
        f"hydra.run.dir={run_dir}",
    ]
    proc = _run_cli(args, tmp_path, show_warnings=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_said_once(proc.stdout + proc.stderr)  # the second rank repeats none of rank 0's lines
    metrics = _read_metrics(run_dir)
    assert set(metrics) >= METRIC_KEYS
    assert not list((tmp_path / "logs").rglob("metrics.json")), "a DDP rank wrote a second run directory"
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()

    # Known gap (see experiments/quickstart/README.md): on this barely trained model the
    # 2-process test EPE differs from a single process on the same checkpoint by ~0.5 %; until that is explained the
    # test checks the DDP path runs end to end and writes one run directory, not metric equality.
    assert 0 < metrics["test/epe_mm"] < 1000 and 0 <= metrics["test/handedness_acc"] <= 1


@pytest.mark.slow
def test_multirun_with_multiple_devices_is_refused(synthetic_root: Path, tmp_path: Path) -> None:
    args = [
        str(ROOT / "train.py"),
        "-m",
        *tiny_train_overrides(synthetic_root, tmp_path, "debug=fdr"),
        "trainer=ddp_cpu",
        "seed=1,2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    proc = _run_cli(args, tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "one device per job" in proc.stderr + proc.stdout


@pytest.mark.slow
def test_a_failing_sweep_job_is_reported_and_does_not_hide_the_others(synthetic_root: Path, tmp_path: Path) -> None:
    """Job 0 (input 72: not a multiple of 32) fails when its config is resolved; job 1 still trains and writes
    metrics."""
    sweep = tmp_path / "sweep"
    args = [
        str(ROOT / "train.py"),
        "-m",
        *tiny_train_overrides(synthetic_root, tmp_path, "debug=fdr"),
        "data.input_size=72,64",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = _run_cli(args, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert len(summary["finished"]) == 1 and len(summary["failed"]) == 1 and not summary["incomplete"]
    failed, finished = summary["failed"][0], summary["finished"][0]
    assert "data.input_size=72" in failed["overrides"] and "data.input_size=64" in finished["overrides"]
    failed_dir, finished_dir = sweep / failed["job"], sweep / finished["job"]
    failure = json.loads((failed_dir / "failed.json").read_text())
    # the heatmap size is derived from the input size, so the bad size is named when the config is resolved
    assert failure["error"] == "InterpolationResolutionError" and "data.input_size=72" in failure["message"]
    assert "multiple of 32" in failure["message"]
    assert set(_read_metrics(finished_dir)) >= METRIC_KEYS
    assert "1 of 2 jobs finished" in proc.stdout and "FAILED" in proc.stdout


def test_internet_as_published_without_imagenet_weights_stops_before_any_data_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from internet_plus.models.backbones.resnet import PretrainedWeightsError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty torchvision cache
    data_root = tmp_path / "never_generated"
    overrides = [*TINY, "experiment=paper_rhd", "backbone=resnet50", "dataset=synthetic", f"data.root={data_root}"]
    cfg = compose_config("train", [*overrides, f"paths.log_dir={tmp_path / 'logs'}"], tmp_path / "run")
    with pytest.raises(PretrainedWeightsError, match=r"expected the file .*resnet50-0676ba61\.pth"):
        train_task.run(cfg)
    assert not data_root.exists()


def test_a_run_from_initial_weights_resumes_on_a_machine_without_the_weights_file(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """InterNet started from a weights file (as ``pretrained: true`` starts from ImageNet's) resumes after the file is
    gone: the checkpoint replaces every weight, so the file is not read; the saved configuration still names it."""
    from torchvision.models import resnet50

    initial = tmp_path / "initial_resnet50.pth"
    torch.save(resnet50(weights=None).state_dict(), initial)
    common = ["backbone=resnet50", f"model.backbone.weights_path={initial}", "data.limit_train_samples=8"]
    common += ["data.limit_eval_samples=8", "accel=off"]
    first = tmp_path / "first"
    train_task.run(
        compose_config("train", tiny_train_overrides(synthetic_root, tmp_path, *common, "trainer.max_epochs=1"), first)
    )
    initial.unlink()  # another machine: no initial weights there

    second = tmp_path / "second"
    resume = f"resume={first / 'checkpoints' / 'last.ckpt'}"
    results = train_task.run(
        compose_config(
            "train", tiny_train_overrides(synthetic_root, tmp_path, *common, resume, "trainer.max_epochs=2"), second
        )
    )
    assert math.isfinite(results["test/epe_mm"])
    last = torch.load(second / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and last["hyper_parameters"]["backbone"]["weights_path"] == str(initial)


def test_the_paper_protocol_scores_the_last_epoch_and_only_monitors_the_evaluation_split(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """experiment=paper_rhd: the whole training split, the evaluation split scored every epoch as monitor/* (never
    val/*), last.ckpt tested, and metrics.json says which checkpoint and how many epochs."""
    run_dir = tmp_path / "run"
    overrides = tiny_train_overrides(
        synthetic_root, tmp_path, "experiment=paper_rhd", "trainer.max_epochs=2", "data.limit_train_samples=8",
        "data.limit_eval_samples=8", "accel=off",
    )  # fmt: skip
    train_task.run(compose_config("train", overrides, run_dir))
    metrics = _read_metrics(run_dir)
    assert metrics["test/ckpt_epochs"] == 2 and metrics["test/ckpt_is_last"] == 1
    history = [json.loads(line) for line in (run_dir / "val_history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1]
    assert all("monitor/epe_mm" in h and not any(k.startswith("val/") for k in h) for h in history)
    # the last epoch's monitoring scored the same weights on the same split as the test
    assert history[-1]["monitor/epe_mm"] == pytest.approx(metrics["test/epe_mm"], rel=1e-5)
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert best["epoch"] == 1  # nothing to select by: best.ckpt follows the latest epoch


@pytest.mark.slow
@pytest.mark.parametrize("backbone", backbone_names())
def test_short_training_run_with_each_backbone(backbone: str, synthetic_root: Path, tmp_path: Path) -> None:
    """Two epochs of a few batches with every backbone variant: training, validation, checkpoint and test run."""
    run_dir = tmp_path / "run"
    overrides = tiny_train_overrides(synthetic_root, tmp_path, f"backbone={backbone}", "debug=limit")
    results = train_task.run(compose_config("train", overrides, run_dir))
    assert set(results) >= METRIC_KEYS
    assert all(v == v for k, v in results.items() if k != "test/pck_curve")  # no NaN
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["hyper_parameters"]["backbone"] == backbone_config(backbone)


@pytest.mark.slow
def test_quickstart_recipe_learns(tmp_path: Path) -> None:
    """The quickstart's recipe, cut to ~3 minutes: it must already beat the mean pose clearly.

    The full `make train` (8 epochs, ~7.5 min on 2 cores) reaches a test EPE of 0.42× the mean-pose EPE
    (experiments/quickstart/README.md); this cut runs 3 epochs of 2,400 samples (~225 steps, one cosine cycle of 3
    epochs). After that many steps the full runs' validation EPE was 0.76–0.77× the mean-pose EPE (236 and 267
    steps); a model that does not learn stays at ~1.0×.
    """
    run_dir = tmp_path / "quickstart"
    overrides = [
        "experiment=quickstart",
        "data.num_train=2400",
        "data.num_eval=100",
        "trainer.max_epochs=3",
        "model.scheduler.T_0=3",
        "logger=none",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    results = train_task.run(compose_config("train", overrides, run_dir))
    ratio = results["test/epe_mm"] / results["test/epe_mean_pose_mm"]
    assert results["test/epe_mean_pose_mm"] > 80  # glove hands at any in-plane angle: a large mean-pose error
    assert ratio < 0.9, f"test EPE {results['test/epe_mm']:.1f} mm is {ratio:.2f}× the mean-pose EPE"


@pytest.mark.slow
def test_optuna_search_runs_its_trials_and_returns_the_validation_metric(synthetic_root: Path, tmp_path: Path) -> None:
    """hparams_search=optuna with 2 tiny trials: each trial trains, the sweeper gets val/epe_mm_best, and the study's
    best parameters land in optimization_results.yaml."""
    sweep = tmp_path / "sweep"
    args = [
        str(ROOT / "train.py"),
        "hparams_search=optuna",
        *tiny_train_overrides(synthetic_root, tmp_path, "debug=limit"),
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = _run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["name"] == "optuna" and math.isfinite(result["best_value"])
    assert set(result["best_params"]) == {"model.optimizer.lr", "model.optimizer.weight_decay", "model.scheduler.T_0"}
    assert 1e-5 <= result["best_params"]["model.optimizer.lr"] <= 1e-3
    assert len([p for p in sweep.iterdir() if (p / ".hydra").is_dir()]) == 2
