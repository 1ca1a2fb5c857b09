"""The synthetic generator: RHD's exact format, determinism, geometric self-consistency, anatomy, safety."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from internet_plus.data.rhd_format import (
    PROJECT_FROM_RHD,
    decode_rhd_depth,
    encode_rhd_depth,
    hand_of_mask_id,
)
from internet_plus.data.synthetic import SyntheticDatasetError, generate_rhd_dataset, render_sample
from internet_plus.data.synthetic.hand_model import (
    SEGMENT_LENGTHS,
    hand_joints,
    mirror_to_left,
    sample_hand_pose,
)
from internet_plus.joints import HAND_BONES, JOINTS_PER_HAND


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_rhd_dataset(tmp_path_factory.mktemp("syn") / "set", num_train=24, num_eval=6, seed=3)


def _anno(root: Path, split: str) -> dict:
    with open(root / split / f"anno_{split}.pickle", "rb") as fh:
        return pickle.load(fh)


def test_layout_and_pickle_schema(small_set: Path) -> None:
    for split, n in (("training", 24), ("evaluation", 6)):
        anno = _anno(small_set, split)
        assert sorted(anno) == list(range(n)) and all(isinstance(k, int) for k in anno)
        for sub in ("color", "mask", "depth"):
            assert sorted(p.name for p in (small_set / split / sub).iterdir()) == [f"{i:05d}.png" for i in range(n)]
        sample = anno[0]
        assert set(sample) == {"xyz", "uv_vis", "K"}
        assert sample["xyz"].shape == (42, 3) and sample["xyz"].dtype == np.float32
        assert sample["uv_vis"].shape == (42, 3) and sample["K"].shape == (3, 3)
        assert sample["K"][0, 2] == 160 and sample["K"][1, 2] == 160 and 250 <= sample["K"][0, 0] <= 320
    color = cv2.imread(str(small_set / "training" / "color" / "00000.png"), cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(str(small_set / "training" / "mask" / "00000.png"), cv2.IMREAD_UNCHANGED)
    assert color.shape == (320, 320, 3) and mask.shape == (320, 320) and mask.max() <= 33


def test_uv_is_the_projection_of_xyz(small_set: Path) -> None:
    for sample in _anno(small_set, "training").values():
        xyz, K = sample["xyz"].astype(np.float64), sample["K"].astype(np.float64)
        assert (xyz[:, 2] > 0).all()
        uvw = xyz @ K.T
        assert np.abs(uvw[:, :2] / uvw[:, 2:] - sample["uv_vis"][:, :2]).max() < 1e-3


def test_visible_joints_lie_on_their_own_hand_at_their_depth(small_set: Path) -> None:
    checked = 0
    for i, sample in _anno(small_set, "training").items():
        mask = cv2.imread(str(small_set / "training" / "mask" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        depth_png = cv2.cvtColor(cv2.imread(str(small_set / "training" / "depth" / f"{i:05d}.png")), cv2.COLOR_BGR2RGB)
        depth = decode_rhd_depth(depth_png)
        vis = sample["uv_vis"][:, 2] == 1
        px = np.round(sample["uv_vis"][vis, :2]).astype(int)
        owner = hand_of_mask_id(mask[px[:, 1], px[:, 0]])
        native_hand = np.where(np.arange(42)[vis] < 21, 1, 0)  # RHD: left block first; project: 0 right, 1 left
        assert (owner == native_hand).all()
        # The surface drawn at a visible joint is within 30 mm of the joint's depth (surface vs joint centre).
        assert np.abs(depth[px[:, 1], px[:, 0]] - sample["xyz"][vis, 2]).max() < 0.030 + 1e-4
        checked += int(vis.sum())
    assert checked > 100


def test_generation_is_deterministic_and_order_free(tmp_path: Path, small_set: Path) -> None:
    other = generate_rhd_dataset(tmp_path / "again", num_train=5, num_eval=2, seed=3)
    a, b = _anno(small_set, "training"), _anno(other, "training")
    for i in range(5):
        for key in ("xyz", "uv_vis", "K"):
            assert np.array_equal(a[i][key], b[i][key])
        img_a = (small_set / "training" / "color" / f"{i:05d}.png").read_bytes()
        assert img_a == (other / "training" / "color" / f"{i:05d}.png").read_bytes()
    different = render_sample(4, "training", 0, 0.3)[3]["xyz"]
    assert not np.array_equal(different, a[0]["xyz"])


def test_reuse_refusal_and_completion_of_an_interrupted_set(tmp_path: Path) -> None:
    root = generate_rhd_dataset(tmp_path / "s", num_train=2, num_eval=1, seed=0)
    stamp = (root / "synthetic_meta.json").stat().st_mtime_ns
    generate_rhd_dataset(root, num_train=2, num_eval=1, seed=0)  # complete and identical: reused
    assert (root / "synthetic_meta.json").stat().st_mtime_ns == stamp
    # a complete set with other settings is never rewritten in place: the error names both
    with pytest.raises(SyntheticDatasetError, match=r"(?s)not rewritten in place.*num_train: 2 there, 3 requested"):
        generate_rhd_dataset(root, num_train=3, num_eval=1, seed=0)
    assert json.loads((root / "synthetic_meta.json").read_text())["num_train"] == 2
    assert (root / "synthetic_meta.json").stat().st_mtime_ns == stamp
    (root / "synthetic_meta.json").unlink()  # looks interrupted: the generator's own unfinished output
    (root / ".synthetic_in_progress").touch()
    generate_rhd_dataset(root, num_train=3, num_eval=1, seed=0)
    assert json.loads((root / "synthetic_meta.json").read_text())["num_train"] == 3
    generate_rhd_dataset(root, num_train=4, num_eval=1, seed=0, overwrite=True)  # replaced on purpose only
    assert json.loads((root / "synthetic_meta.json").read_text())["num_train"] == 4
    user = tmp_path / "user_data"
    user.mkdir()
    (user / "precious.txt").write_text("mine")
    with pytest.raises(SyntheticDatasetError, match="refusing"):
        generate_rhd_dataset(user, num_train=1, num_eval=1)
    assert (user / "precious.txt").read_text() == "mine"


def test_two_hand_fraction_is_respected() -> None:
    n = 60
    two = 0
    for i in range(n):
        vis = render_sample(0, "training", i, two_hand_fraction=0.5)[3]["uv_vis"][:, 2]
        two += int(vis[:21].any() and vis[21:].any())
    assert 0.25 * n < two < 0.7 * n
    assert all(
        not (v[:21].any() and v[21:].any())
        for v in (render_sample(0, "training", i, two_hand_fraction=0.0)[3]["uv_vis"][:, 2] for i in range(10))
    )


def test_hand_anatomy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        joints, _ = sample_hand_pose(rng)
        bones = np.array([np.linalg.norm(joints[c] - joints[p]) for p, c in HAND_BONES])
        finger_bones = bones.reshape(5, 4)[:, 1:]
        ratio = finger_bones / SEGMENT_LENGTHS
        assert (ratio > 0.85 * 0.95 - 1e-6).all() and (ratio < 1.15 * 1.05 + 1e-6).all()
        # Fingers (not the thumb) bend towards the palm: no joint is hyper-extended beyond the MCP limit.
        for d in range(1, 5):
            seg = np.diff(joints[[1 + 4 * d + k for k in range(4)]], axis=0)
            cos = (seg[:-1] * seg[1:]).sum(1) / np.linalg.norm(seg[:-1], axis=1) / np.linalg.norm(seg[1:], axis=1)
            assert (np.degrees(np.arccos(np.clip(cos, -1, 1))) <= 110 + 45).all()


def test_left_hand_mirrors_a_right_hand() -> None:
    right = hand_joints({"flex": np.full((5, 3), 20.0), "abduction": np.zeros(5), "opposition": 30.0})
    left = mirror_to_left(right)
    d_right = np.linalg.norm(right[:, None] - right[None], axis=-1)
    d_left = np.linalg.norm(left[:, None] - left[None], axis=-1)
    assert np.allclose(d_right, d_left)

    # Mirroring flips handedness: the triple product of (index base, little base, middle tip) changes sign.
    def chirality(j):
        return np.linalg.det(np.stack([j[5] - j[0], j[17] - j[0], j[12] - j[0]]))

    assert np.sign(chirality(right)) == -np.sign(chirality(left))


def test_depth_png_round_trip() -> None:
    depth = np.array([[0.0, 0.25], [1.234, 4.9]])
    assert np.abs(decode_rhd_depth(encode_rhd_depth(depth)) - depth).max() < 5.0 / 65535


def test_joint_order_mapping_is_a_permutation_that_reverses_fingers() -> None:
    assert sorted(PROJECT_FROM_RHD) == list(range(42))
    assert PROJECT_FROM_RHD[0] == 21 and PROJECT_FROM_RHD[JOINTS_PER_HAND] == 0  # wrists
    assert list(PROJECT_FROM_RHD[1:5]) == [25, 24, 23, 22]  # right thumb base → tip = RHD 25 … 22
