"""Reliability: path escapes, corrupt images, atomic checkpoints, resume, SIGTERM, non-finite loss, config errors."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose_config, tiny_train_overrides

from internet_plus.callbacks import AtomicCheckpointIO
from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.rhd import RHDDataset
from internet_plus.data.safe_paths import PathEscapeError, safe_join
from internet_plus.tasks.resume import ResumeMismatchError, _plain_model_config, check_resume_compatible, resolve_resume

# ------------------------------------------------------------------------------------------------ path escapes


def test_safe_join_refuses_absolute_and_parent_escapes(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "Capture0/cam1/image2.jpg") == tmp_path / "Capture0/cam1/image2.jpg"
    assert safe_join(tmp_path, "a/../b.jpg") == tmp_path / "b.jpg"
    for bad in ("/etc/passwd", "../x.jpg", "a/../../x.jpg", "..", "C:\\x.jpg", "..\\x.jpg", ""):
        with pytest.raises(PathEscapeError):
            safe_join(tmp_path, bad, source="data.json")


def test_interhand_annotation_escaping_the_root_is_refused(tmp_path: Path) -> None:
    from internet_plus.data.interhand import InterHandDataset, check_images, find_interhand_files, load_or_build_index
    from internet_plus.data.synthetic.interhand import write_interhand_split

    root = tmp_path / "ih"
    fake = write_interhand_split(root, "test", 4, seed=11)
    (root / "images" / "test").mkdir(parents=True)
    data = json.loads(fake.files["data"].read_text())
    data["images"][0]["file_name"] = "../../../outside.jpg"
    fake.files["data"].write_text(json.dumps(data))
    files = find_interhand_files(root, "test")
    index = load_or_build_index(files, tmp_path / "cache")
    with pytest.raises(PathEscapeError, match=r"outside\.jpg"):
        check_images(index, files, verify=True)
    dataset = InterHandDataset(index, files.images_dir, input_size=64)
    row = next(i for i in range(len(dataset)) if dataset.record(i).file_name.startswith(".."))
    with pytest.raises(PathEscapeError, match="escapes the data set folder"):
        dataset[row]


# ------------------------------------------------------------------------------------------------ corrupt images


@pytest.fixture
def rhd_with_truncated_png(synthetic_root: Path, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "rhd"
    shutil.copytree(synthetic_root, root)
    bad = root / "training" / "color" / "00005.png"
    blob = bad.read_bytes()
    bad.write_bytes(blob[: len(blob) // 3])
    return root, bad


def test_truncated_image_raises_with_its_name_or_is_skipped_and_counted(
    rhd_with_truncated_png: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    from internet_plus.data.rhd import RHDDataModule

    root, bad = rhd_with_truncated_png
    strict = RHDDataset(root, "training", input_size=64)
    with pytest.raises(DatasetLayoutError, match=bad.name):
        strict[5]
    with pytest.raises(ValueError, match="on_bad_image"):
        RHDDataset(root, "training", input_size=64, on_bad_image="ignore")

    lenient = RHDDataset(root, "training", input_size=64, indices=[4, 5, 6, 7], on_bad_image="skip")
    sample = lenient[1]
    assert int(sample["index"]) == 2 and lenient.bad_images == 1  # replaced by the next readable sample
    loader = torch.utils.data.DataLoader(lenient, batch_size=4, num_workers=1)
    batch = next(iter(loader))
    assert batch["image"].shape[0] == 4
    assert lenient.bad_images == 2  # the worker's skip is counted in this process

    dm = RHDDataModule(root=str(root), on_bad_image="skip", batch_size=4, num_workers=0, input_size=64)
    dm.setup("fit")
    assert dm.train_set.on_bad_image == "skip"
    for i in range(len(dm.train_set)):
        dm.train_set[i]
    with caplog.at_level(logging.WARNING):
        dm.teardown("fit")
    assert "1 unreadable training image(s) were skipped" in caplog.text


def test_on_bad_image_comes_from_the_config(synthetic_root: Path, tmp_path: Path) -> None:
    import hydra

    cfg = compose_config(
        "train", tiny_train_overrides(synthetic_root, tmp_path, "data.on_bad_image=skip"), tmp_path / "run"
    )
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    assert dm.on_bad_image == "skip"


# ------------------------------------------------------------------------------------------------ checkpoints


def test_crash_while_saving_leaves_the_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert torch.load(path, weights_only=True)["step"] == 1
    assert not list(path.parent.glob("*.tmp"))


def test_resume_refuses_another_model_config(synthetic_root: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    cfg = compose_config("train", tiny_train_overrides(synthetic_root, tmp_path), logs / "train" / "runs" / "new")
    old = logs / "train" / "runs" / "old" / "checkpoints" / "last.ckpt"
    old.parent.mkdir(parents=True)
    hparams = _plain_model_config(cfg.model)
    torch.save({"state_dict": {}, "hyper_parameters": hparams}, old)
    check_resume_compatible(old, cfg.model)

    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.resume = "last"
    assert resolve_resume(cfg) == str(old)

    hparams["backbone"]["name"] = "resnet50"
    hparams["posenet"]["mlp_hidden"] = 64
    torch.save({"state_dict": {}, "hyper_parameters": hparams}, old)
    with pytest.raises(ResumeMismatchError, match=r"model\.backbone\.name: 'resnet50'") as err:
        resolve_resume(cfg)
    assert "model.posenet.mlp_hidden: 64" in str(err.value)
    with open_dict(cfg):
        cfg.ckpt_path = str(old)
    with pytest.raises(ValueError, match="not both"):
        resolve_resume(cfg)


def test_non_finite_loss_names_the_step_and_keeps_the_last_good_checkpoint(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from internet_plus.lit_module import HandPoseModule
    from internet_plus.tasks import train as train_task

    original = HandPoseModule.training_step

    def poisoned(self, batch, batch_idx):
        if self.global_step >= 3:
            batch = dict(batch, image=batch["image"] * float("nan"))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(HandPoseModule, "training_step", poisoned)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 s instead of 30 s on a loaded 2-core machine
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    run_dir = tmp_path / "run"
    extra = ("debug=limit", "callbacks.step_checkpoint.every_n_train_steps=2")
    cfg = compose_config("train", tiny_train_overrides(synthetic_root, tmp_path, *extra), run_dir)
    with pytest.raises(FloatingPointError, match="global step 3"):
        train_task.run(cfg)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


# ------------------------------------------------------------------------------------------------ subprocesses


def _env() -> dict[str, str]:
    return dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _cli(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_config_mistakes_fail_before_any_work(tmp_path: Path) -> None:
    proc = _cli(["backbone=nope", f"paths.log_dir={tmp_path / 'logs'}"], tmp_path, timeout=60)
    assert proc.returncode != 0
    assert "internet_plus" in proc.stderr and "resnet50" in proc.stderr  # Hydra lists the valid options
    proc = _cli(["model.optimizr.lr=1", f"paths.log_dir={tmp_path / 'logs'}"], tmp_path, timeout=60)
    assert proc.returncode != 0
    assert "Could not override 'model.optimizr.lr'" in proc.stderr
    assert not (tmp_path / "logs").exists()  # nothing was started


def _training_args(synthetic_root: Path, tmp_path: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        *tiny_train_overrides(synthetic_root, tmp_path),
        "data.limit_train_samples=16",  # 4 steps per epoch
        "data.augmentation.enabled=false",
        "callbacks.model_checkpoint.monitor=null",  # best.ckpt = the final weights, so both runs test the same thing
        "callbacks.lr_monitor=null",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(synthetic_root: Path, tmp_path: Path) -> None:
    epochs = ("trainer.max_epochs=5", "callbacks.step_checkpoint.every_n_train_steps=4")
    ref_dir, killed_dir, resumed_dir = tmp_path / "ref", tmp_path / "killed", tmp_path / "resumed"
    ref = _cli(_training_args(synthetic_root, tmp_path, ref_dir, *epochs), tmp_path, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]

    cmd = [sys.executable, str(ROOT / "train.py"), *_training_args(synthetic_root, tmp_path, killed_dir, *epochs)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = killed_dir / "checkpoints" / "last.ckpt"
    _wait_for(last, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (killed_dir / "metrics.json").exists()
    killed_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 0 < killed_at < 20

    args = _training_args(synthetic_root, tmp_path, resumed_dir, *epochs, f"resume={last}")
    resumed = _cli(args, tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (killed_dir / "metrics.json").exists()  # the old run directory is left alone
    a = json.loads((ref_dir / "metrics.json").read_text())
    b = json.loads((resumed_dir / "metrics.json").read_text())
    diff = max(abs(a[k] - b[k]) for k in a if k != "test/pck_curve" and a[k] is not None)
    print(f"resumed from global step {killed_at}: max |difference| of the test metrics = {diff:.3g}")
    # Same seed, same data order, CPU float32: measured 0 here; the bound leaves room for a different BLAS
    # summation order (1e-3 mm of EPE is far below anything that matters).
    assert diff <= 1e-3, (a, b)

    mismatched = _cli([*args, "model.posenet.mlp_hidden=64"], tmp_path, timeout=120)
    assert mismatched.returncode != 0 and "model.posenet.mlp_hidden" in mismatched.stderr


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits(synthetic_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = _training_args(
        synthetic_root, tmp_path, run_dir, "trainer.max_epochs=50", "callbacks.step_checkpoint.every_n_train_steps=2"
    )
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    _wait_for(last, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "SIGTERM: saved" in out + err and "resume=" in out + err
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] < 50 * 4 and ckpt["state_dict"]
    assert not (run_dir / "metrics.json").exists()
