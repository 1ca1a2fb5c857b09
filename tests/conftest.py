"""Shared fixtures: W&B off, Hydra cleared, tiny configs composed from conf/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Real RHD and InterHand2.6M files (tests/fixtures/real_samples/README.md says where they come from).
REAL_SAMPLES = ROOT / "tests" / "fixtures" / "real_samples"
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
# `make test` runs one pytest-xdist worker per core: each worker (and what its tests start) gets its share of the
# cores for PyTorch's intra-op threads, so that the workers do not oversubscribe the machine.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import torch  # noqa: E402

import internet_plus  # noqa: E402, F401  (registers the config resolvers, as train.py's import does)
from internet_plus.joints import NUM_JOINTS  # noqa: E402


@pytest.fixture(autouse=True)
def _isolate_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()


@pytest.fixture
def real_samples() -> Path:
    return REAL_SAMPLES


CONF_DIR = ROOT / "conf"

#: Overrides that make any composed training config tiny and fast on the CPU.
TINY = [
    "trainer=cpu",
    "logger=none",
    "data.input_size=64",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "data.pin_memory=false",
    "model.posenet.deconv_channels=16",
    "model.posenet.mlp_hidden=32",
    "model.codec.depth_bins=16",
    "model.codec.root_depth_bins=16",
    "model.codec.sigma=1.0",
    "trainer.enable_progress_bar=false",
    "trainer.num_sanity_val_steps=0",
]


def compose_config(config_name: str, overrides: list[str], output_dir: Path):
    """Compose ``conf/<config_name>.yaml`` as Hydra would, with its run directory at ``output_dir``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    output_dir.mkdir(parents=True, exist_ok=True)
    return cfg


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic data set in RHD format, generated once per test session."""
    from internet_plus.data.synthetic import generate_rhd_dataset

    root = tmp_path_factory.mktemp("synthetic") / "rhd"
    generate_rhd_dataset(root, num_train=64, num_eval=16, seed=0)
    return root


def tiny_train_overrides(synthetic_root: Path, tmp_path: Path, *extra: str) -> list[str]:
    """TINY plus the session's synthetic data set and tmp paths (nothing is written into the checkout)."""
    return [
        *TINY,
        "dataset=synthetic",
        f"data.root={synthetic_root}",
        "data.num_train=64",
        "data.num_eval=16",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        *extra,
    ]


#: The tests that take minutes on 2 cores (``--durations``), started before everything else.
LONGEST_TESTS = (
    "test_quickstart_recipe_learns",
    "test_without_cuda_the_command_runs_its_cpu_dry_run_and_exits_0",
    "test_kill_9_then_resume_matches_an_uninterrupted_run",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest tests run first, longest first, then the other ``slow`` ones (the order is otherwise kept), so
    that under pytest-xdist (``make test``) no minutes-long test starts near the end while the other workers have
    nothing left. ``gpu`` tests (selected only with ``-m gpu``) need CUDA: say so instead of failing deep inside
    torch."""
    import torch

    def rank(item: pytest.Item) -> tuple[int, bool]:
        longest = LONGEST_TESTS.index(item.name) if item.name in LONGEST_TESTS else len(LONGEST_TESTS)
        return longest, item.get_closest_marker("slow") is None

    items.sort(key=rank)  # stable: the same order on every worker
    if torch.cuda.is_available():
        return
    reason = pytest.mark.skip(reason="needs a CUDA device (run `make test-gpu` on a GPU machine)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(reason)


#: A data set sample's keys, shapes (at a 256-px input, without the batch axis) and dtypes (docs/architecture.md).
SAMPLE_KEYS = {
    "image": ((3, 256, 256), torch.float32),
    "joints_img": ((NUM_JOINTS, 3), torch.float32),
    "joints_cam": ((NUM_JOINTS, 3), torch.float32),
    "joint_valid": ((NUM_JOINTS,), torch.float32),
    "joint_annotated": ((NUM_JOINTS,), torch.float32),
    "hand_type": ((2,), torch.float32),
    "hand_type_valid": ((), torch.float32),
    "rel_root_depth": ((), torch.float32),
    "root_valid": ((), torch.float32),
    "inv_trans": ((2, 3), torch.float32),
    "focal": ((2,), torch.float32),
    "princpt": ((2,), torch.float32),
    "abs_root_depth": ((2,), torch.float32),
    "index": ((), torch.int64),
}


def check_sample_keys(sample: dict, size: int = 256, batch: tuple[int, ...] = ()) -> None:
    """Every data set's samples (or batches) have exactly these keys, shapes and dtypes."""
    assert set(sample) == set(SAMPLE_KEYS)
    for key, (shape, dtype) in SAMPLE_KEYS.items():
        shape = (3, size, size) if key == "image" else shape
        assert tuple(sample[key].shape) == batch + shape, key
        assert sample[key].dtype == dtype, key


@pytest.fixture(scope="session")
def tiny_ckpt(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the TINY model after one training step (batch 2), saved by the Trainer (predict, export and
    video tests share it)."""
    import hydra
    import pytorch_lightning as L
    from hydra.core.global_hydra import GlobalHydra

    tmp = tmp_path_factory.mktemp("predict_ckpt")
    L.seed_everything(0, workers=True)
    cfg = compose_config("train", tiny_train_overrides(synthetic_root, tmp, "data.batch_size=2"), tmp / "run")
    model = hydra.utils.instantiate(cfg.model)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=datamodule)
    path = tmp / "tiny.ckpt"
    trainer.save_checkpoint(path)
    GlobalHydra.instance().clear()
    return path
