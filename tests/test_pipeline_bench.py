"""The input-pipeline bench, the exactness of the per-sample speed-ups, and the DataLoader worker rule (performance
target: >= 300 samples/s per worker core, DataLoader defaults that scale with the machine's cores). Speed itself is
measured by ``python -m internet_plus.tools.pipeline_bench``, never asserted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from internet_plus.data import datamodule
from internet_plus.data.datamodule import HandPoseDataModule, resolve_num_workers
from internet_plus.data.images import read_rgb
from internet_plus.data.transforms import (
    AugmentationConfig,
    apply_color,
    build_sample,
    crop_affine,
    process_bbox,
    sample_augmentation,
    warp_image,
)
from internet_plus.tools.pipeline_bench import format_table, main, one_core, run_bench

# ------------------------------------------------------------------------------------------------ the bench


def test_bench_runs_on_tiny_trees_and_reports_rates(tmp_path: Path) -> None:
    result = run_bench(samples=6, tree_size=4, input_size=64, warmup=2, folder=tmp_path)
    for key in ("rhd_png", "interhand_jpeg"):
        r = result[key]
        assert r["samples"] == 6 and 1 <= r["dataset_size"] <= 4
        assert r["samples_per_s"] > 0 and r["seconds"] > 0 and r["mean_file_kb"] > 0
        assert set(r["stage_ms_per_sample"]) == {"read+decode", "warp", "other"}
        assert r["stage_ms_per_sample"]["read+decode"] > 0 and r["stage_ms_per_sample"]["warp"] > 0
        assert r["target_samples_per_s"] == 300.0 and isinstance(r["meets_target"], bool)
    assert result["rhd_png"]["image"] == "320x320 PNG" and result["interhand_jpeg"]["image"] == "512x334 JPEG"
    assert any(p.suffix == ".png" for p in (tmp_path / "rhd").rglob("*"))
    assert any(p.suffix == ".jpg" for p in (tmp_path / "interhand").rglob("*"))
    table = format_table(result)
    assert "rhd_png" in table and "interhand_jpeg" in table and "300" in table


def test_bench_leaves_the_process_as_it_was() -> None:
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    with one_core() as core:
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        if affinity is not None:
            assert os.sched_getaffinity(0) == {core}
    assert torch.get_num_threads() == threads and cv2.getNumThreads() == cv_threads
    if affinity is not None:
        assert os.sched_getaffinity(0) == affinity


def test_cli_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["--samples", "3", "--tree-size", "4", "--input-size", "32", "--warmup", "1", "--json", str(out)]
    assert main(args) == 0
    assert "samples/s" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["input_size"] == 32
    assert data["rhd_png"]["samples_per_s"] > 0 and data["interhand_jpeg"]["samples_per_s"] > 0


# ------------------------------------------------------------------------------------------------ exact speed-ups


def _reference_apply_color(image: np.ndarray, factors: tuple[float, ...], max_value: float) -> np.ndarray:
    """The formulation before the speed-up: broadcast product, then ``np.clip``."""
    out = image.astype(np.float32, copy=False) * np.asarray(factors, dtype=np.float32).reshape(1, 1, -1)
    return np.clip(out, 0.0, max_value, out=out)


def test_apply_color_equals_the_broadcast_formulation_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    image = (rng.random((37, 53, 3), dtype=np.float32) * 300.0 - 20.0).astype(np.float32)
    image[0, 0, 0], image[1, 2, 1] = np.nan, np.inf
    for factors in [(0.8, 1.0, 1.2), (1.19, 0.81, 1.0), (1.0, 1.0, 1.0)]:
        for source in (image, image[:, ::-1], np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)):
            before = source.copy()
            got = apply_color(source, factors, 255.0)
            np.testing.assert_array_equal(got, _reference_apply_color(source, factors, 255.0))
            np.testing.assert_array_equal(source, before)  # the input is not modified
            assert got.dtype == np.float32


def test_build_sample_image_equals_the_reference_pipeline() -> None:
    """The sample image after the speed-ups equals warp → clip(· × colour) → × 1/255 as written before."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    uv = rng.uniform(30, 110, size=(42, 2))
    cam = np.concatenate([uv, rng.uniform(400, 600, size=(42, 1))], axis=1)
    bbox = process_bbox([30.0, 20.0, 90.0, 80.0])
    cfg = AugmentationConfig()
    for k in range(6):
        params = sample_augmentation(np.random.default_rng(k), cfg)
        sample = build_sample(
            image, uv, cam, np.ones(42), np.array([1.0, 1.0]), 1.0, True, np.array([500.0, 500.0]),
            np.array([80.0, 60.0]), np.array([500.0, 510.0]), bbox, params, 64, k,
        )  # fmt: skip
        trans, _ = crop_affine(bbox, params, 64, image.shape[1])
        crop = warp_image(np.asarray(image, dtype=np.float32), trans, 64)
        if params.color != (1.0, 1.0, 1.0):
            crop = _reference_apply_color(crop, params.color, 255.0)
        expected = crop * np.float32(1.0 / 255.0)
        torch.testing.assert_close(
            sample["image"], torch.from_numpy(expected.transpose(2, 0, 1).copy()), rtol=0, atol=0
        )


@pytest.mark.parametrize(
    ("suffix", "kind"), [(".png", "colour"), (".png", "grey"), (".png", "rgba"), (".jpg", "colour"), (".jpg", "grey")]
)
def test_read_rgb_equals_imdecode_bgr_then_cvtcolor(tmp_path: Path, suffix: str, kind: str) -> None:
    rng = np.random.default_rng(5)
    channels = {"colour": 3, "grey": 1, "rgba": 4}[kind]
    pixels = rng.integers(0, 256, size=(40, 56, channels), dtype=np.uint8)
    ok, encoded = cv2.imencode(suffix, pixels if channels > 1 else pixels[..., 0])
    assert ok
    path = tmp_path / f"image{suffix}"
    path.write_bytes(encoded.tobytes())
    expected = cv2.cvtColor(cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    got = read_rgb(path)
    assert got.shape == (40, 56, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------------------------------------ worker rule


@pytest.mark.parametrize(
    ("cores", "processes", "expected"),
    [
        (1, None, 1),
        (2, None, 2),
        (3, None, 2),
        (4, None, 3),
        (8, None, 7),
        (9, None, 8),
        (64, None, 8),
        (16, 4, 3),
        (16, 2, 7),
        (8, 8, 1),
        (4, 8, 1),
        (6, 2, 2),
    ],
)
def test_auto_workers_follow_affinity_and_local_processes(
    monkeypatch: pytest.MonkeyPatch, cores: int, processes: int | None, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(100, 100 + cores)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 128)  # the affinity wins over the machine's count
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_num_workers("auto", local_processes=processes) == expected
    if processes is not None:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(processes))
        assert resolve_num_workers("auto") == expected
        assert resolve_num_workers(" AUTO ") == expected


def test_worker_rule_edge_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "not-a-number")
    assert resolve_num_workers("auto") == 7
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "0")
    assert resolve_num_workers("auto") == 7
    assert resolve_num_workers(0) == 0 and resolve_num_workers(12) == 12
    for bad in ("many", -1, 1.5, True):
        with pytest.raises(ValueError, match="num_workers"):
            resolve_num_workers(bad)  # type: ignore[arg-type]


class _TinyModule(HandPoseDataModule):
    def _split_size(self, split: str) -> int:
        return 8

    def _make_dataset(self, split: str, positions, augment: bool):  # noqa: ANN001, ANN202
        return [torch.zeros(1) for _ in positions]


def test_datamodule_shares_the_cores_among_ddp_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    dm = _TinyModule(batch_size=4, val_fraction=0.0)
    assert dm.num_workers == 8
    dm.trainer = SimpleNamespace(world_size=4, global_rank=1, num_devices=4)  # type: ignore[assignment]
    dm.setup("fit")
    assert dm.num_workers == 3  # 16 cores / 4 processes = 4, one left to the main process
    fixed = _TinyModule(batch_size=4, val_fraction=0.0, num_workers=5)
    fixed.trainer = SimpleNamespace(world_size=4, global_rank=0, num_devices=4)  # type: ignore[assignment]
    fixed.setup("fit")
    assert fixed.num_workers == 5


def test_loader_kwargs_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    kwargs = _TinyModule(num_workers=2)._loader_kwargs()
    assert kwargs["prefetch_factor"] == datamodule.PREFETCH_FACTOR == 2
    assert kwargs["persistent_workers"] is True and kwargs["pin_memory"] is False
    kwargs = _TinyModule(num_workers=0)._loader_kwargs()
    assert kwargs["prefetch_factor"] is None and kwargs["persistent_workers"] is False
    assert kwargs["worker_init_fn"] is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _TinyModule(num_workers=0)._loader_kwargs()["pin_memory"] is True
    assert _TinyModule(num_workers=0, pin_memory=False)._loader_kwargs()["pin_memory"] is False
