"""A short training run on a fake InterHand2.6M tree: fit, then test with InterNet's InterHand2.6M metrics.

The tree comes from the fake writer of the InterHand2.6M tests (``tests/test_interhand.py``, official v1.0 format,
single and interacting frames). The run goes through the training task: ``trainer.fit``, then ``trainer.test`` of
the best checkpoint (loaded with strict, ``weights_only`` loading), which writes ``metrics.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import TINY, compose_config
from fakes.interhand import write_interhand_tree

from internet_plus.lit_module import HandPoseModule
from internet_plus.metrics.interhand import InterHandMetrics
from internet_plus.tasks import train as train_task

INTERHAND_KEYS = {
    f"test/{name}" for name in ("mpjpe_single_mm", "mpjpe_interacting_mm", "mpjpe_all_mm", "mrrpe_mm", "handedness_acc")
}
RHD_KEYS = {"test/epe_mm", "test/epe_median_mm", "test/pck_curve", "test/auc_20_50", "test/epe_mean_pose_mm"}


@pytest.fixture(scope="module")
def interhand_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ih_train") / "InterHand2.6M"
    splits = write_interhand_tree(root, {"train": 24, "test": 16}, cameras_per_capture=2, interacting_fraction=0.5)
    assert "interacting" in splits["test"].hand_types and {"right", "left"} & set(splits["test"].hand_types)
    return root


@pytest.mark.slow
def test_short_training_run_reports_the_interhand_metrics(interhand_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = [
        *TINY,
        "dataset=interhand",
        f"data.root={interhand_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.val_fraction=0.2",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
    ]
    cfg = compose_config("train", overrides, run_dir)
    results = train_task.run(cfg)

    assert set(results) >= INTERHAND_KEYS | RHD_KEYS  # the existing names are kept
    for key in INTERHAND_KEYS:
        assert math.isfinite(results[key]), (key, results[key])
    assert 0.0 <= results["test/handedness_acc"] <= 1.0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) >= INTERHAND_KEYS
    assert metrics["test/mrrpe_mm"] == pytest.approx(results["test/mrrpe_mm"])


def test_interhand_metrics_are_created_only_for_the_interhand_protocol(tmp_path: Path) -> None:
    from types import SimpleNamespace

    import hydra

    from internet_plus.data.datamodule import HandPoseDataModule
    from internet_plus.data.interhand import InterHandDataModule
    from internet_plus.data.rhd import RHDDataModule
    from internet_plus.data.stb import STBDataModule

    assert HandPoseDataModule.protocol == RHDDataModule.protocol == STBDataModule.protocol == "rhd"
    assert InterHandDataModule.protocol == "interhand"

    cfg = compose_config("train", [*TINY], tmp_path)
    reference = set(hydra.utils.instantiate(cfg.model).state_dict())
    for protocol, created in (("rhd", False), ("interhand", True)):
        module: HandPoseModule = hydra.utils.instantiate(cfg.model)
        module._trainer = SimpleNamespace(datamodule=SimpleNamespace(protocol=protocol))
        module.setup("test")
        assert isinstance(module.test_interhand, InterHandMetrics) is created
        assert set(module.state_dict()) == reference  # checkpoints are the same for every data set
        module._trainer = None
