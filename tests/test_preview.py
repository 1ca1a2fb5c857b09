"""The skeleton drawing (:mod:`internet_plus.visualize`) and the augmentation preview command (tiny synthetic set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, compose_config

from internet_plus.joints import LEFT, NUM_JOINTS, RIGHT
from internet_plus.visualize import HAND_COLORS, draw_skeleton, make_grid, to_uint8_image

SIZE = 64
NUM, COLS, PAD = 6, 4, 2


def test_draw_skeleton_colours_the_joints_and_skips_invalid_ones() -> None:
    image = np.zeros((40, 50, 3), dtype=np.uint8)
    joints = np.zeros((NUM_JOINTS, 2))
    valid = np.zeros(NUM_JOINTS)
    joints[5], valid[5] = (10, 12), 1.0  # right index MCP
    joints[30], valid[30] = (40.4, 25.2), 1.0  # left middle joint
    joints[7], valid[7] = (3, 35), 0.0  # not drawn
    joints[8], valid[8] = (np.nan, 5), 1.0  # not drawn either
    out = draw_skeleton(image, joints, valid)
    assert tuple(out[12, 10]) == HAND_COLORS[RIGHT]
    assert tuple(out[25, 40]) == HAND_COLORS[LEFT]
    assert tuple(out[35, 3]) == (0, 0, 0)
    assert not image.any()  # the input is not modified
    # no bone between joints 5 and 6 (6 is invalid), so only the two dots are drawn
    assert (out.any(axis=2)).sum() < 40


def test_make_grid_and_tensor_conversion() -> None:
    import torch

    tiles = [to_uint8_image(torch.full((3, 8, 10), v)) for v in (0.0, 0.5, 1.0)]
    assert tiles[1].shape == (8, 10, 3) and tiles[1][0, 0, 0] == 128
    grid = make_grid(tiles, cols=2, pad=1, pad_value=7)
    assert grid.shape == (2 * 8 + 3, 2 * 10 + 3, 3)
    assert (grid[1:9, 12:22] == 128).all() and (grid[10:18, 12:22] == 7).all()  # empty cell stays padding
    assert make_grid(tiles, cols=8, pad=0).shape == (8, 30, 3)
    with pytest.raises(ValueError):
        make_grid([tiles[0], tiles[0][:4]], cols=2)


def _overrides(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    return [
        "dataset=synthetic",
        "data.num_train=20",
        "data.num_eval=10",
        f"data.input_size={SIZE}",
        "data.num_workers=0",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"out={out}",
        f"num={NUM}",
        f"cols={COLS}",
        *extra,
    ]


def _run(tmp_path: Path, out: Path, *extra: str) -> Path:
    from internet_plus.data import preview

    cfg = compose_config("preview", _overrides(tmp_path, out, *extra), tmp_path / "run")
    assert cfg.data.seed == cfg.seed  # the preview's seed is the augmentation's
    return preview.run(cfg)


def test_preview_writes_a_reproducible_grid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = compose_config("preview", _overrides(tmp_path, tmp_path / "a.png"), tmp_path / "run")
    assert cfg.seed == 0 and cfg.split == "train" and cfg.epoch == 0  # conf/preview.yaml defaults
    first = _run(tmp_path, tmp_path / "a.png")
    assert first == tmp_path / "a.png" and str(first) in capsys.readouterr().out
    image = cv2.imread(str(first))
    rows = -(-NUM // COLS)
    assert image.shape == (rows * SIZE + (rows + 1) * PAD, COLS * SIZE + (COLS + 1) * PAD, 3)
    second = _run(tmp_path, tmp_path / "b.png")
    assert first.read_bytes() == second.read_bytes()
    other = _run(tmp_path, tmp_path / "c.png", "seed=1")
    assert other.read_bytes() != first.read_bytes()
    evaluation = _run(tmp_path, tmp_path / "d.png", "split=test")
    assert cv2.imread(str(evaluation)).shape == image.shape
    # data.warp_on=device: the same grid up to the warp's float rounding (the crop is made after the sample)
    device = cv2.imread(str(_run(tmp_path, tmp_path / "e.png", "data.warp_on=device"))).astype(int)
    assert np.abs(device - image.astype(int)).max() <= 1


@pytest.mark.slow
def test_preview_command(tmp_path: Path) -> None:
    reference = _run(tmp_path, tmp_path / "in_process.png")
    out = tmp_path / "cli.png"
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1", PROJECT_ROOT=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "internet_plus.data.preview", *_overrides(tmp_path, out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(out) in proc.stdout
    assert out.read_bytes() == reference.read_bytes()
