"""Reliability: path escapes, corrupt images, atomic checkpoints, checkpoint errors, run directories, resume,
SIGTERM, non-finite loss, config errors."""

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
import pytorch_lightning as L
import torch
from conftest import ROOT, compose_config, tiny_train_overrides

from internet_plus.callbacks import AtomicCheckpointIO
from internet_plus.checkpoints import CheckpointError, load_model, read_checkpoint
from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.rhd import RHDDataset
from internet_plus.data.safe_paths import PathEscapeError, safe_join
from internet_plus.tasks.resume import ResumeMismatchError, _plain_model_config, check_resume_compatible, resolve_resume
from internet_plus.tasks.run_dir import NewRunDirOnly, RunDirInUseError, check_new_run_dir

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
    torch.save(_resumable(hparams), old)
    check_resume_compatible(old, cfg.model)

    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.resume = "last"
    assert resolve_resume(cfg) == str(old)

    hparams["backbone"]["name"] = "resnet50"
    hparams["posenet"]["mlp_hidden"] = 64
    torch.save(_resumable(hparams), old)
    with pytest.raises(ResumeMismatchError, match=r"model\.backbone\.name: 'resnet50'") as err:
        resolve_resume(cfg)
    assert "model.posenet.mlp_hidden: 64" in str(err.value)
    with open_dict(cfg):
        cfg.ckpt_path = str(old)
    with pytest.raises(ValueError, match="not both"):
        resolve_resume(cfg)


def _resumable(hparams: dict) -> dict:
    """The keys of a Lightning checkpoint that resuming reads (a real last.ckpt holds more)."""
    return {
        "state_dict": {},
        "hyper_parameters": hparams,
        "pytorch-lightning_version": L.__version__,
        "optimizer_states": [],
        "loops": {},
    }


@pytest.fixture(scope="module")
def tiny_hparams(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("hparams")
    return _plain_model_config(compose_config("train", tiny_train_overrides(synthetic_root, tmp), tmp / "run").model)


def _bad_checkpoints(folder: Path, hparams: dict) -> dict[str, tuple[Path, str]]:
    """Each kind of wrong file, and what the error must say about it."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.ckpt"
    torch.save(_resumable(hparams), good)
    cases = {}

    def case(name: str, expected: str, write) -> None:
        path = folder / f"{name}.ckpt"
        write(path)
        cases[name] = (path, expected)

    case("text", r"is a text file .*it begins 'step,loss'", lambda p: p.write_text("step,loss\n1,0.5\n"))
    case("empty", r"is an empty file \(0 bytes\)", lambda p: p.write_bytes(b""))
    blob = good.read_bytes()
    case("truncated", r"is a truncated or damaged zip archive", lambda p: p.write_bytes(blob[: len(blob) // 2]))
    case("binary", r"is not a PyTorch checkpoint \(a binary file", lambda p: p.write_bytes(bytes(range(200, 256)) * 4))
    case("folder", r"is a folder, not a checkpoint file", lambda p: p.mkdir())
    case(
        "state_dict",
        r"is a plain state_dict \(2 tensors, e.g. 'backbone.w'\)",
        lambda p: torch.save({"backbone.w": torch.ones(2), "posenet.b": torch.zeros(1)}, p),
    )
    # the legacy (pickle-format) torch.save: read without mmap, so the error is about its content
    case(
        "legacy_state_dict",
        r"is a plain state_dict",
        lambda p: torch.save({"w": torch.ones(2)}, p, _use_new_zipfile_serialization=False),
    )
    case(
        "no_lightning",
        r"no 'pytorch-lightning_version'",
        lambda p: torch.save({"state_dict": {}, "hyper_parameters": hparams}, p),
    )
    case(
        "no_hparams",
        r"without saved hyperparameters",
        lambda p: torch.save({"state_dict": {}, "pytorch-lightning_version": L.__version__}, p),
    )
    case(
        "other_model",
        r"hyperparameters of another model \(unknown: hidden_dim, num_layers; missing: backbone\)",
        lambda p: torch.save(
            {
                "state_dict": {},
                "pytorch-lightning_version": "2.0",
                "hyper_parameters": {"hidden_dim": 8, "num_layers": 2},
            },
            p,
        ),
    )
    return cases


def test_every_wrong_checkpoint_file_is_named_with_what_it_is(tmp_path: Path, tiny_hparams: dict) -> None:
    from internet_plus.export import load_module

    for name, (path, expected) in _bad_checkpoints(tmp_path, tiny_hparams).items():
        for load in (read_checkpoint, load_model, load_module):
            with pytest.raises(CheckpointError, match=expected) as err:
                load(path)
            assert str(path) in str(err.value), name
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "missing.ckpt")
    weights_only = tmp_path / "best.ckpt"
    torch.save(
        {k: v for k, v in _resumable(tiny_hparams).items() if k not in ("optimizer_states", "loops")}, weights_only
    )
    read_checkpoint(weights_only)  # fine for eval, predict and export
    with pytest.raises(CheckpointError, match=r"is a weights-only checkpoint .*Resume from the run's"):
        check_resume_compatible(weights_only, tiny_hparams)


def test_eval_predict_and_resume_name_a_wrong_checkpoint_before_any_work(
    synthetic_root: Path, tmp_path: Path, tiny_hparams: dict
) -> None:
    from omegaconf import open_dict

    from internet_plus.tasks import eval as eval_task
    from internet_plus.tasks import predict as predict_task

    cases = _bad_checkpoints(tmp_path / "bad", tiny_hparams)
    text, expected = cases["text"]
    cfg = compose_config("eval", [f"ckpt_path={text}", "trainer=cpu", "logger=none"], tmp_path / "eval")
    with pytest.raises(CheckpointError, match=expected):
        eval_task.run(cfg)
    out = tmp_path / "predicted"
    cfg = compose_config("predict", [f"ckpt_path={text}", f"input={tmp_path}", f"out={out}"], tmp_path / "predict")
    with pytest.raises(CheckpointError, match=expected):
        predict_task.run(cfg)
    assert not out.exists()

    # resume=last picks the newest last.ckpt: a corrupt one is named, with what it is
    logs = tmp_path / "logs"
    cfg = compose_config("train", tiny_train_overrides(synthetic_root, tmp_path), logs / "train" / "runs" / "new")
    last = logs / "train" / "runs" / "old" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(cases["truncated"][0].read_bytes())
    with open_dict(cfg):
        cfg.resume = "last"
    with pytest.raises(CheckpointError, match=r"resume=last \(the newest .*last\.ckpt is a truncated") as err:
        resolve_resume(cfg)
    assert str(last) in str(err.value)
    with open_dict(cfg):
        cfg.resume = str(cases["empty"][0])
    with pytest.raises(CheckpointError, match=r"resume: .*empty\.ckpt is an empty file"):
        resolve_resume(cfg)


def test_partial_saves_are_never_named_checkpoints_and_are_removed_when_the_run_resumes(
    synthetic_root: Path, tmp_path: Path
) -> None:
    from omegaconf import open_dict

    logs = tmp_path / "logs"
    cfg = compose_config("train", tiny_train_overrides(synthetic_root, tmp_path), logs / "train" / "runs" / "new")
    last = logs / "train" / "runs" / "old" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save(_resumable(_plain_model_config(cfg.model)), last)
    partial = last.with_name("last.ckpt.tmp")  # what kill -9 during a save leaves
    partial.write_bytes(b"PK\x03\x04 partial")
    os.utime(partial, (time.time() - 3600, time.time() - 3600))
    fresh = last.with_name("best.ckpt.tmp")  # being written right now by a live run: left alone
    fresh.write_bytes(b"PK\x03\x04")
    with open_dict(cfg):
        cfg.resume = "last"
    assert resolve_resume(cfg) == str(last)
    assert not partial.exists() and fresh.exists() and last.is_file()


def test_checkpoints_are_held_back_until_their_weights_gave_a_finite_loss(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "state_dict": {"w": torch.ones(2)}}, path)
    io.defer = True
    io.save_checkpoint({"global_step": 2, "state_dict": {"w": torch.full((2,), 1e10)}}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 1  # held back in memory, nothing named on disk
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    assert io.discard() == {path: 2}  # the next loss was not finite: never written
    io.commit()
    assert torch.load(path, weights_only=True)["global_step"] == 1
    io.save_checkpoint({"global_step": 3, "state_dict": {"w": torch.ones(2)}}, path)
    io.commit()  # the next loss was finite
    assert torch.load(path, weights_only=True)["global_step"] == 3
    assert io.last_good() == f"the last good checkpoint: {path} (global step 3)"
    with pytest.raises(FloatingPointError, match=r"not saving .*last\.ckpt at global step 4: weight 'w' holds 1 non"):
        io.save_checkpoint({"global_step": 4, "state_dict": {"w": torch.tensor([1.0, float("inf")])}}, path)
    assert not io.pending and torch.load(path, weights_only=True)["global_step"] == 3


def test_a_run_never_writes_into_another_runs_directory(synthetic_root: Path, tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from internet_plus.tasks import train as train_task

    old = tmp_path / "old_run"
    (old / ".hydra").mkdir(parents=True)
    (old / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (old / "train.log").write_text("")
    check_new_run_dir(old)  # only Hydra's files of this start: a fresh run (or a multirun job)
    (old / ".pl_hydra_rank_1").mkdir()  # Lightning's DDP rank 1 in rank 0's directory
    check_new_run_dir(old)
    (old / "checkpoints").mkdir()
    (old / "metrics.json").write_text("{}")
    with pytest.raises(RunDirInUseError, match=r"run directory .*old_run is not empty \(it holds checkpoints, metrics"):
        check_new_run_dir(old)
    cfg = compose_config("train", tiny_train_overrides(synthetic_root, tmp_path), old)
    with pytest.raises(RunDirInUseError, match="old_run"):
        train_task.run(cfg)
    assert not list(old.glob("checkpoints/*")) and (old / "metrics.json").read_text() == "{}"

    # before Hydra writes anything (its config, its log): the train config's Hydra callback
    callback = NewRunDirOnly()
    hydra_cfg = OmegaConf.create(
        {"hydra": {"run": {"dir": str(old)}, "sweep": {"dir": str(old)}, "job": {"name": "train"}}}
    )
    with pytest.raises(SystemExit, match=r"RunDirInUseError: hydra.run.dir .*old_run is not empty"):
        callback.on_run_start(config=hydra_cfg)
    with pytest.raises(SystemExit, match=r"hydra.sweep.dir .*old_run is not empty"):
        callback.on_multirun_start(config=hydra_cfg)
    new = OmegaConf.create({"hydra": {"run": {"dir": str(tmp_path / "new")}, "job": {"name": "train"}}})
    callback.on_run_start(config=new)  # a new folder: nothing to say
    for entry in ("train", "eval", "predict", "export"):  # every entry point (conf/hydra/default.yaml)
        overrides = {"train": [], "eval": ["ckpt_path=x"], "predict": ["ckpt_path=x", "input=y"]}.get(
            entry, ["ckpt_path=x"]
        )
        assert "new_run_dir" in compose_config(entry, overrides, tmp_path / entry).hydra.callbacks


def test_non_finite_loss_names_the_step_and_keeps_the_last_good_checkpoint(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from internet_plus.lit_module import HandPoseModule
    from internet_plus.tasks import train as train_task

    original, original_step = HandPoseModule.training_step, HandPoseModule.optimizer_step

    def poisoned(self, batch, batch_idx):
        if self.global_step >= 3:  # the exploded weights of step 2 give a non-finite loss
            batch = dict(batch, image=batch["image"] * float("nan"))
        return original(self, batch, batch_idx)

    def diverging(self, *args, **kwargs):
        original_step(self, *args, **kwargs)
        if self.global_step == 3:  # a diverging learning rate: huge but finite weights come out of step 2
            with torch.no_grad():
                for p in self.parameters():
                    p.mul_(1e10)

    monkeypatch.setattr(HandPoseModule, "training_step", poisoned)
    monkeypatch.setattr(HandPoseModule, "optimizer_step", diverging)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 s instead of 30 s on a loaded 2-core machine
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    run_dir = tmp_path / "run"
    extra = ("debug=limit", "callbacks.step_checkpoint.every_n_train_steps=1")
    cfg = compose_config("train", tiny_train_overrides(synthetic_root, tmp_path, *extra), run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(FloatingPointError, match="global step 3") as err:
        train_task.run(cfg)
    assert f"the last good checkpoint: {last} (global step 2)" in str(err.value)
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2  # not 3: the weights that came out of step 2 produced the NaN
    weights = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert all(torch.isfinite(v).all() for v in weights)
    assert max(float(v.abs().max()) for v in weights) < 1e6
    assert not list(last.parent.glob("*.tmp"))


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


def _training_args(
    synthetic_root: Path, tmp_path: Path, run_dir: Path, *extra: str, monitor: str = "null"
) -> list[str]:
    return [
        *tiny_train_overrides(synthetic_root, tmp_path),
        "data.limit_train_samples=16",  # 4 steps per epoch
        "data.augmentation.enabled=false",
        f"callbacks.model_checkpoint.monitor={monitor}",  # null: best.ckpt = the final weights
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


def _global_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(synthetic_root: Path, tmp_path: Path) -> None:
    """Killed after its best validation epoch and resumed into a new directory, a run tests the same checkpoint (the
    best epoch before the kill) and gets the same test metrics as an uninterrupted run."""
    epochs = ("trainer.max_epochs=6", "callbacks.step_checkpoint.every_n_train_steps=4")
    ref_dir, killed_dir, resumed_dir = tmp_path / "ref", tmp_path / "killed", tmp_path / "resumed"

    def args(run_dir: Path, *extra: str) -> list[str]:
        return _training_args(synthetic_root, tmp_path, run_dir, *epochs, *extra, monitor="val/epe_mm")

    ref = _cli(args(ref_dir), tmp_path, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]
    history = [json.loads(line) for line in (ref_dir / "val_history.jsonl").read_text().splitlines()]
    best = min(history, key=lambda r: r["val/epe_mm"])
    assert best["step"] < history[-1]["step"], history  # the best epoch is not the last one: the case of the bug
    assert _global_step(ref_dir / "checkpoints" / "best.ckpt") == best["step"]

    cmd = [sys.executable, str(ROOT / "train.py"), *args(killed_dir)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = killed_dir / "checkpoints" / "last.ckpt"
    _wait_for(last, proc)
    seen = None
    while _global_step(last) < best["step"]:  # kill after the best epoch's checkpoint is on disk
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        while last.stat().st_mtime_ns == seen:
            time.sleep(0.02)
        seen = last.stat().st_mtime_ns
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (killed_dir / "metrics.json").exists()
    killed_at = _global_step(last)
    assert best["step"] <= killed_at < history[-1]["step"]

    resumed = _cli(args(resumed_dir, f"resume={last}"), tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (killed_dir / "metrics.json").exists()  # the old run directory is left alone
    assert "resume: best val/epe_mm so far" in resumed.stdout + resumed.stderr
    tested = resumed_dir / "checkpoints" / "best.ckpt"
    assert f"testing the best checkpoint, {tested}" in (resumed_dir / "train.log").read_text()
    ref_best = torch.load(ref_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    got_best = torch.load(tested, map_location="cpu", weights_only=True)
    assert got_best["global_step"] == ref_best["global_step"] == best["step"]  # the same checkpoint is tested
    assert all(torch.equal(got_best["state_dict"][k], v) for k, v in ref_best["state_dict"].items())
    a = json.loads((ref_dir / "metrics.json").read_text())
    b = json.loads((resumed_dir / "metrics.json").read_text())
    diff = max(abs(a[k] - b[k]) for k in a if not isinstance(a[k], list) and a[k] is not None)  # PCK curves: lists
    print(f"resumed from step {killed_at} (best at {best['step']}): max |difference| of the test metrics = {diff:.3g}")
    # Same seed, same data order, CPU float32: measured 0 here; the bound leaves room for a different BLAS
    # summation order (1e-3 mm of EPE is far below anything that matters).
    assert diff <= 1e-3, (a, b)

    mismatched = _cli([*args(tmp_path / "mismatched", f"resume={last}"), "model.posenet.mlp_hidden=64"], tmp_path)
    assert mismatched.returncode != 0 and "model.posenet.mlp_hidden" in mismatched.stderr
    again = _cli(args(resumed_dir, f"resume={last}"), tmp_path, timeout=120)  # into the finished run's directory
    assert again.returncode != 0 and f"hydra.run.dir {resumed_dir} is not empty" in again.stderr
    assert json.loads((resumed_dir / "metrics.json").read_text()) == b


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
