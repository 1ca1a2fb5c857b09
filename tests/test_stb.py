"""The STB reader, its Dataset, its data module and its Hydra config, on small fake trees in STB's official format.

The fake trees follow ``docs/reference/datasets.md`` §B exactly (``images/<seq>/{SK_color,SK_depth,BB_left,BB_right}_<i>
.png`` at 640×480, ``labels/<seq>_{SK,BB}.mat`` with ``handPara`` float64 3×21×N in mm, palm first, fingers
little → thumb, base → tip; SK labels in the depth-camera frame, X_SK = R·X_color + T), with N = 3 frames per
sequence. The expected values are computed here from the documented orders and the constants as printed in
datasets §B.4 (the rotation matrix is the spec's, not the module's Rodrigues), independently of
``internet_plus.data.stb``. Each image has coloured dots drawn at the projected wrist (red), thumb tip (green) and
little-finger tip (blue), so the tests can check that a sample's crop shows them where its ``joints_img`` says.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from conftest import TINY, compose_config
from fakes.rhd import rhd_annotation, write_rhd_split
from fakes.stb import (
    BASELINE,
    IMAGE_SIZE,
    K_BB,
    K_SK,
    R_SK,
    SEQUENCES,
    T_SK,
    color_to_sk,
    sequence_dir,
    write_frame,
    write_labels,
)

from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.stb import (
    STB_DOWNLOAD_PAGE,
    STBDataModule,
    STBDataset,
    STBLayoutError,
    palm_to_wrist,
    read_stb_split,
    sk_depth_to_color,
)
from internet_plus.data.transforms import transform_points
from internet_plus.joints import JOINTS_PER_HAND, LEFT, NUM_JOINTS, RIGHT, hand_slice

N_FRAMES = 3
S = 256
W, H = IMAGE_SIZE
TRAIN_SEQUENCES = {s for s in SEQUENCES if not s.startswith("B1")}
TEST_SEQUENCES = {"B1Counting", "B1Random"}

# ------------------------------------------------------------------------------------------------ a known hand

FINGERS_PROJECT = ("thumb", "index", "middle", "ring", "little")  # the project's finger order
FINGERS_STB = ("little", "ring", "middle", "index", "thumb")  # STB's finger order
SEGMENTS = ("mcp", "pip", "dip", "tip")  # base -> tip in both orders
PROJECT_NAMES = ["wrist"] + [f"{f}_{s}" for f in FINGERS_PROJECT for s in SEGMENTS]
STB_NAMES = ["palm"] + [f"{f}_{s}" for f in FINGERS_STB for s in SEGMENTS]


def known_hand(offset: np.ndarray) -> dict[str, np.ndarray]:
    """A flat left hand (colour-camera frame, mm), wrist at (0, 50, 500) + offset; every joint is distinct.

    The palm centre is the midpoint of the wrist and the ring MCP, so the default rule (wrist = ring MCP +
    2·(palm − ring MCP)) gives back exactly ``hand["wrist"]``.
    """
    hand: dict[str, np.ndarray] = {"wrist": np.array([0.0, 50.0, 500.0])}
    xs = {"index": 20.0, "middle": 0.0, "ring": -20.0, "little": -40.0}
    for f_i, (finger, x) in enumerate(xs.items()):
        for k, seg in enumerate(SEGMENTS):
            length = 22.0 if finger == "little" else 25.0
            hand[f"{finger}_{seg}"] = np.array([x - 2.0 * k, -20.0 - length * k, 505.0 + 3.0 * f_i + 4.0 * k])
    thumb = [(30.0, 30.0), (42.0, 10.0), (50.0, -5.0), (56.0, -20.0)]
    for k, (seg, (x, y)) in enumerate(zip(SEGMENTS, thumb, strict=True)):
        hand[f"thumb_{seg}"] = np.array([x, y, 495.0 - 5.0 * k])
    hand["palm"] = 0.5 * (hand["wrist"] + hand["ring_mcp"])
    return {name: p + offset for name, p in hand.items()}


def frame_offset(sequence: str, frame: int) -> np.ndarray:
    return np.array([5.0 * SEQUENCES.index(sequence) + 10.0 * frame, -5.0 * frame, 20.0 * frame])


def stb_native(hand: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([hand[n] for n in STB_NAMES])


def project_order(hand: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([hand[n] for n in PROJECT_NAMES])


def pinhole(xyz: np.ndarray, k: tuple[float, float, float, float]) -> np.ndarray:
    fx, fy, cx, cy = k
    xyz = np.asarray(xyz, dtype=np.float64)
    return np.stack([fx * xyz[..., 0] / xyz[..., 2] + cx, fy * xyz[..., 1] / xyz[..., 2] + cy], axis=-1)


# Dots drawn into every image (BGR for cv2) and the RGB channel that must light up in the crop.
DOTS = {"wrist": ((0, 0, 255), 0), "thumb_tip": ((0, 255, 0), 1), "little_tip": ((255, 0, 0), 2)}


def _image_with_dots(hand_cam: dict[str, np.ndarray], k: tuple[float, float, float, float]) -> np.ndarray:
    image = np.full((H, W, 3), 30, dtype=np.uint8)
    for name, (bgr, _) in DOTS.items():
        u, v = pinhole(hand_cam[name], k)
        cv2.circle(image, (int(round(u)), int(round(v))), 4, bgr, thickness=-1)
    return image


def write_stb_tree(
    root: Path, layout: str = "official", n: int = N_FRAMES, views: tuple[str, ...] = ("sk", "bb")
) -> Path:
    """The 12 sequences in STB's format; ``layout="flat"`` leaves out the ``images/`` level."""
    for seq in SEQUENCES:
        folder = sequence_dir(root, seq, layout)
        sk = np.zeros((3, 21, n))
        bb = np.zeros((3, 21, n))
        for i in range(n):
            hand = known_hand(frame_offset(seq, i))
            native = stb_native(hand)
            sk[:, :, i] = color_to_sk(native).T  # X_SK = R X_color + T (datasets §E)
            bb[:, :, i] = native.T  # the BB labels: the same hand in the left Bumblebee frame
            if "sk" in views:
                write_frame(folder, "SK_color", i, _image_with_dots(hand, K_SK))
                write_frame(folder, "SK_depth", i, np.zeros((H, W, 3), dtype=np.uint8))
            if "bb" in views:
                write_frame(folder, "BB_left", i, _image_with_dots(hand, K_BB))
                right = {name: p - [BASELINE, 0.0, 0.0] for name, p in hand.items()}
                write_frame(folder, "BB_right", i, _image_with_dots(right, K_BB))
        if "sk" in views:
            write_labels(root, seq, "SK", sk)
        if "bb" in views:
            write_labels(root, seq, "BB", bb)
    return root


@pytest.fixture(scope="module")
def stb_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stb_tree(tmp_path_factory.mktemp("stb") / "STB")


@pytest.fixture(scope="module")
def stb_flat_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stb_tree(tmp_path_factory.mktemp("stb_flat") / "STB", layout="flat", views=("sk",))


def _check_self_consistent(sample: dict[str, torch.Tensor], atol: float = 0.05) -> None:
    """inv_trans(joints_img) is the projection of joints_cam with the sample's intrinsics."""
    ann = sample["joint_annotated"].numpy() > 0
    cam = sample["joints_cam"].double().numpy()[ann]
    uv = cam[:, :2] / cam[:, 2:] * sample["focal"].double().numpy() + sample["princpt"].double().numpy()
    back = transform_points(sample["joints_img"].double().numpy()[ann, :2], sample["inv_trans"].double().numpy())
    np.testing.assert_allclose(back, uv, atol=atol)


def _check_dots(sample: dict[str, torch.Tensor], hand: int = LEFT) -> None:
    """The crop shows each drawn dot at the joint's ``joints_img`` position, in the dot's colour (RGB order)."""
    image = sample["image"].numpy().transpose(1, 2, 0)
    size = image.shape[0]
    for name, (_, channel) in DOTS.items():
        joint = hand * JOINTS_PER_HAND + PROJECT_NAMES.index(name)
        x, y = (int(round(float(c))) for c in sample["joints_img"][joint, :2])
        assert 0 <= x < size and 0 <= y < size, name
        pixel = image[y, x]
        assert pixel[channel] > 0.8, f"{name}: no dot at the joint's crop position ({x}, {y}): {pixel}"
        assert all(pixel[c] < 0.3 for c in range(3) if c != channel), f"{name}: wrong colour {pixel}"


# ------------------------------------------------------------------------------------------------ geometry


def test_colour_frame_conversion_matches_a_hand_computed_value() -> None:
    x_sk = np.array([100.0, -50.0, 600.0])
    # R^T (X - T) with the matrix printed in datasets §B.4, worked out by hand: X - T = (124.0381, -49.5437,
    # 601.2326); x = 124.0381·0.999924 − 49.5437·0.002978 + 601.2326·0.011968 = 131.0767, and so on.
    expected = np.array([131.0767, -46.7384, 599.9624])
    np.testing.assert_allclose(sk_depth_to_color(x_sk), expected, atol=2e-3)
    np.testing.assert_allclose(sk_depth_to_color(x_sk), R_SK.T @ (x_sk - T_SK), atol=1e-3)
    # batched, and the inverse of the fake data's X_SK = R X_color + T
    pts = np.random.default_rng(0).uniform([-200, -200, 300], [200, 200, 900], size=(5, 21, 3))
    np.testing.assert_allclose(sk_depth_to_color(pts @ R_SK.T + T_SK), pts, atol=2e-3)


def test_wrist_rules() -> None:
    hand = known_hand(np.zeros(3))
    native = stb_native(hand)
    np.testing.assert_allclose(palm_to_wrist(native)[0], hand["wrist"], atol=1e-9)
    middle = palm_to_wrist(native, "middle_mcp")[0]
    np.testing.assert_allclose(middle, hand["middle_mcp"] + 2.2 * (hand["palm"] - hand["middle_mcp"]))
    mcps = np.mean([hand[f"{f}_mcp"] for f in ("little", "ring", "middle", "index")], axis=0)
    np.testing.assert_allclose(palm_to_wrist(native, "mcp_mean")[0], mcps + 2.25 * (hand["palm"] - mcps))
    np.testing.assert_allclose(
        palm_to_wrist(native, "ring_mcp", 3.0)[0], hand["ring_mcp"] + 3.0 * (hand["palm"] - hand["ring_mcp"])
    )
    np.testing.assert_array_equal(palm_to_wrist(native, "palm"), native)
    np.testing.assert_array_equal(palm_to_wrist(native)[1:], native[1:])  # only joint 0 changes
    with pytest.raises(ValueError, match="wrist_rule"):
        palm_to_wrist(native, "elbow")


# ------------------------------------------------------------------------------------------------ reader


def test_joint_order_and_colour_frame(stb_tree: Path) -> None:
    records = read_stb_split(stb_tree, "test")
    assert [(r.sequence, r.frame) for r in records] == [(s, i) for s in ("B1Counting", "B1Random") for i in range(3)]
    for record in records:
        hand = known_hand(frame_offset(record.sequence, record.frame))
        expected = project_order(hand)  # the colour frame, project order, wrist synthesised by the default rule
        np.testing.assert_allclose(record.xyz, expected, atol=2e-3)
        # spelled out: the wrist and the fingertips land where the project's order puts them
        np.testing.assert_allclose(record.xyz[0], hand["wrist"], atol=2e-3)
        for j, name in ((4, "thumb_tip"), (8, "index_tip"), (12, "middle_tip"), (16, "ring_tip"), (20, "little_tip")):
            np.testing.assert_allclose(record.xyz[j], hand[name], atol=2e-3)
        np.testing.assert_allclose(record.xyz[1], hand["thumb_mcp"], atol=2e-3)
        np.testing.assert_allclose(record.xyz[17], hand["little_mcp"], atol=2e-3)
        np.testing.assert_allclose(record.uv, pinhole(expected, K_SK), atol=1e-3)
        np.testing.assert_allclose(record.K, [[K_SK[0], 0, K_SK[2]], [0, K_SK[1], K_SK[3]], [0, 0, 1]])
        assert record.image_path == str(stb_tree / "images" / record.sequence / f"SK_color_{record.frame}.png")
    with pytest.raises(ValueError, match="read-only"):
        records[0].xyz[0, 0] = 1.0


def test_both_layouts_are_found(stb_tree: Path, stb_flat_tree: Path) -> None:
    official = read_stb_split(stb_tree, "train")
    flat = read_stb_split(stb_flat_tree, "train")
    assert len(official) == len(flat) == 10 * N_FRAMES
    for a, b in zip(official, flat, strict=True):
        assert (a.sequence, a.frame) == (b.sequence, b.frame)
        np.testing.assert_allclose(a.xyz, b.xyz)
        assert Path(a.image_path).parent == stb_tree / "images" / a.sequence
        assert Path(b.image_path).parent == stb_flat_tree / b.sequence
    _check_dots(STBDataset(stb_flat_tree, "test", input_size=S)[0])


def test_split_membership(stb_tree: Path) -> None:
    train = read_stb_split(stb_tree, "train")
    test = read_stb_split(stb_tree, "test")
    assert {r.sequence for r in train} == TRAIN_SEQUENCES and len(train) == 10 * N_FRAMES
    assert {r.sequence for r in test} == TEST_SEQUENCES and len(test) == 2 * N_FRAMES
    assert all(sorted(r.frame for r in train if r.sequence == s) == [0, 1, 2] for s in TRAIN_SEQUENCES)
    assert len({r.key for r in train + test}) == len(train) + len(test)  # unique augmentation keys
    only = read_stb_split(stb_tree, None, sequences=["B3Random"])
    assert [(r.sequence, r.frame) for r in only] == [("B3Random", i) for i in range(3)]


def test_bumblebee_views(stb_tree: Path) -> None:
    left = read_stb_split(stb_tree, "test", camera="bb_left")
    right = read_stb_split(stb_tree, "test", camera="bb_right")
    for a, b in zip(left, right, strict=True):
        expected = project_order(known_hand(frame_offset(a.sequence, a.frame)))
        np.testing.assert_allclose(a.xyz, expected, atol=1e-9)
        np.testing.assert_allclose(b.xyz, expected - [BASELINE, 0.0, 0.0], atol=1e-9)
        np.testing.assert_allclose(a.K[0, 0], K_BB[0])
        assert a.image_path.endswith(f"BB_left_{a.frame}.png") and b.image_path.endswith(f"BB_right_{b.frame}.png")
    for camera in ("bb_left", "bb_right"):
        dataset = STBDataset(stb_tree, "test", camera=camera, input_size=S)
        for i in range(len(dataset)):
            _check_dots(dataset[i])


# ------------------------------------------------------------------------------------------------ samples


def _rhd_sample(tmp_path: Path) -> dict[str, torch.Tensor]:
    """One sample of a one-frame RHD evaluation set in its official format (for the key/shape/dtype comparison)."""
    from internet_plus.data.rhd import RHDDataset

    xyz = np.tile([0.0, 0.0, 0.5], (42, 1)) + np.random.default_rng(0).uniform(-0.05, 0.05, (42, 3))
    K = np.array([[300.0, 0, 160], [0, 300, 160], [0, 0, 1]])
    color, mask = np.full((320, 320, 3), 90, np.uint8), np.full((320, 320), 17, np.uint8)
    write_rhd_split(tmp_path / "rhd", "evaluation", {0: rhd_annotation(xyz, K)}, {0: color}, {0: mask})
    return RHDDataset(tmp_path / "rhd", "evaluation", input_size=S)[0]


def test_sample_matches_rhd_samples_and_the_protocol(stb_tree: Path, tmp_path: Path) -> None:
    rhd = _rhd_sample(tmp_path)
    dataset = STBDataset(stb_tree, "test", input_size=S)
    assert len(dataset) == 2 * N_FRAMES
    for i, (sequence, frame) in enumerate(dataset.sample_ids):
        item = dataset[i]
        assert set(item) == set(rhd)
        for key in rhd:
            assert item[key].shape == rhd[key].shape and item[key].dtype == rhd[key].dtype, key
        expected = project_order(known_hand(frame_offset(sequence, frame)))
        left, right = hand_slice(LEFT), hand_slice(RIGHT)
        np.testing.assert_allclose(item["joints_cam"][left].numpy(), expected, atol=2e-3)
        assert item["joints_cam"][right].abs().sum() == 0
        np.testing.assert_array_equal(item["joint_annotated"].numpy(), [0.0] * 21 + [1.0] * 21)
        np.testing.assert_array_equal(item["joint_valid"].numpy(), [0.0] * 21 + [1.0] * 21)  # all inside the crop
        np.testing.assert_array_equal(item["hand_type"].numpy(), [0.0, 1.0])
        assert item["hand_type_valid"] == 1 and item["root_valid"] == 0 and item["rel_root_depth"] == 0
        np.testing.assert_allclose(item["abs_root_depth"].numpy(), [expected[0, 2]] * 2, atol=2e-3)
        np.testing.assert_allclose(item["focal"].numpy(), K_SK[:2], rtol=1e-6)
        np.testing.assert_allclose(item["princpt"].numpy(), K_SK[2:], rtol=1e-6)
        np.testing.assert_allclose(item["joints_img"][left, 2].numpy(), expected[:, 2] - expected[0, 2], atol=2e-3)
        # the crop is the tight box around the projected joints, square, x1.25, centred
        uv = pinhole(expected, K_SK)
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        side = 1.25 * max(hi - lo)
        xy = item["joints_img"][left, :2].double().numpy()
        np.testing.assert_allclose(xy, (uv - (lo + hi) / 2) * S / side + S / 2, atol=2e-3)
        assert xy.min() >= S * 0.1 - 1e-3 and xy.max() <= S * 0.9 + 1e-3
        _check_self_consistent(item)
        _check_dots(item)


def test_augmented_and_flipped_samples_stay_consistent(stb_tree: Path) -> None:
    dataset = STBDataset(stb_tree, "test", input_size=64, augment=True, seed=4)
    flipped = 0
    for epoch in range(4):
        for i in range(len(dataset)):
            item = dataset[(epoch, i)]
            hand = LEFT
            if dataset.augmentation_params(i, epoch).flip:
                flipped += 1
                hand = RIGHT  # the mirrored image shows a right hand
            np.testing.assert_array_equal(item["hand_type"].numpy(), np.eye(2)[hand])
            assert item["joint_annotated"][hand_slice(hand)].sum() == JOINTS_PER_HAND
            assert item["joint_annotated"][hand_slice(1 - hand)].sum() == 0
            _check_self_consistent(item, atol=0.05)
            x, y = item["joints_img"][:, 0], item["joints_img"][:, 1]
            inside = (x >= 0) & (x < 64) & (y >= 0) & (y < 64)
            torch.testing.assert_close(item["joint_valid"], item["joint_annotated"] * inside)
    assert flipped > 0
    again = STBDataset(stb_tree, "test", input_size=64, augment=True, seed=4)
    torch.testing.assert_close(again[(2, 3)]["image"], dataset[(2, 3)]["image"], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ errors


def test_missing_root_and_wrong_layout(tmp_path: Path) -> None:
    with pytest.raises(STBLayoutError, match="does not exist") as info:
        read_stb_split(tmp_path / "nowhere", "train")
    message = str(info.value)
    assert STB_DOWNLOAD_PAGE in message and str(tmp_path / "nowhere") in message
    assert "labels/B2Counting_SK.mat" in message and "images/B2Counting/SK_color_0.png" in message
    assert isinstance(info.value, DatasetLayoutError)

    # a folder without labels/ (e.g. data.root pointing at images/): the expected files are listed
    wrong = tmp_path / "wrong"
    (wrong / "B1Counting").mkdir(parents=True)
    with pytest.raises(STBLayoutError, match=r"label folder .*wrong/labels is missing") as info:
        read_stb_split(wrong, "test", camera="bb_right")
    message = str(info.value)
    assert "labels/B1Counting_BB.mat" in message and "images/B1Random/BB_right_0.png" in message
    assert STB_DOWNLOAD_PAGE in message

    # labels/ present but a sequence has no image folder in either layout: both candidates are named
    root = write_stb_tree(tmp_path / "STB", n=1, views=("sk",))
    for png in (root / "images" / "B1Random").iterdir():
        png.unlink()
    (root / "images" / "B1Random").rmdir()
    with pytest.raises(STBLayoutError, match="image folder of sequence B1Random is missing") as info:
        read_stb_split(root, "test")
    assert str(root / "images" / "B1Random") in str(info.value) and f"nor {root / 'B1Random'} " in str(info.value)


def test_missing_label_file_fails_at_setup(tmp_path: Path) -> None:
    root = write_stb_tree(tmp_path / "STB", n=1, views=("sk",))
    (root / "labels" / "B4Random_SK.mat").unlink()
    dm = STBDataModule(root=str(root), batch_size=2, num_workers=0, input_size=64)  # construction reads nothing
    with pytest.raises(STBLayoutError, match=r"labels/B4Random_SK\.mat is missing") as info:
        dm.setup("fit")
    assert STB_DOWNLOAD_PAGE in str(info.value)
    dm.setup("test")  # B1 is complete
    assert len(dm.test_set) == 2
    with pytest.raises(STBLayoutError, match=r"labels/B1Counting_BB\.mat is missing"):
        read_stb_split(root, "test", camera="bb_left")


def test_label_whose_image_is_missing_names_the_file(tmp_path: Path) -> None:
    root = write_stb_tree(tmp_path / "STB", views=("sk",))
    (root / "images" / "B2Counting" / "SK_color_1.png").unlink()
    with pytest.raises(STBLayoutError, match=r"1 image\(s\) of the 3 frames .*images/B2Counting/SK_color_1\.png"):
        STBDataset(root, "train")
    (root / "images" / "B2Counting" / "SK_color_1.png").write_bytes(b"")  # back (contents are not read at setup)
    read_stb_split(root, "train")
    # more images than labelled frames: the label file is inconsistent with its folder
    cv2.imwrite(str(root / "images" / "B1Random" / "SK_color_3.png"), np.zeros((H, W, 3), np.uint8))
    with pytest.raises(STBLayoutError, match=r"labels only 3 frames .*B1Random/SK_color_3\.png has no label"):
        read_stb_split(root, "test")


def test_malformed_label_files(tmp_path: Path) -> None:
    root = write_stb_tree(tmp_path / "STB", n=1, views=("sk",))
    path = root / "labels" / "B1Counting_SK.mat"
    scipy.io.savemat(str(path), {"handPara": np.zeros((3, 20, 1))})
    with pytest.raises(STBLayoutError, match=r"B1Counting_SK\.mat: 'handPara' must have shape \(3, 21, frames\)"):
        read_stb_split(root, "test")
    scipy.io.savemat(str(path), {"joints": np.zeros((3, 21, 1))})
    with pytest.raises(STBLayoutError, match=r"B1Counting_SK\.mat has no variable 'handPara' \(found: \['joints'\]\)"):
        read_stb_split(root, "test")
    path.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(STBLayoutError, match=r"B1Counting_SK\.mat cannot be read"):
        read_stb_split(root, "test")
    bad = np.zeros((3, 21, 1))
    bad[2] = -500.0  # behind the camera: labels of another camera or another unit
    scipy.io.savemat(str(path), {"handPara": bad})
    with pytest.raises(STBLayoutError, match=r"B1Counting_SK\.mat: frame 0 has joints at depth <= 0"):
        read_stb_split(root, "test")


def test_argument_errors(stb_tree: Path) -> None:
    with pytest.raises(ValueError, match="camera must be one of"):
        read_stb_split(stb_tree, "test", camera="kinect")
    with pytest.raises(ValueError, match="split must be one of"):
        read_stb_split(stb_tree, "val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sequences must be"):
        read_stb_split(stb_tree, None, sequences=["B7Counting"])
    with pytest.raises(ValueError, match="wrist_rule"):
        STBDataModule(root=str(stb_tree), wrist_rule="elbow")
    with pytest.raises(ValueError, match="wrist_factor"):
        STBDataModule(root=str(stb_tree), wrist_rule="palm", wrist_factor=2.0)


# ------------------------------------------------------------------------------------------------ data module


def test_datamodule_split_and_batches(stb_tree: Path) -> None:
    dm = STBDataModule(root=str(stb_tree), batch_size=4, num_workers=0, input_size=64, val_fraction=0.2, seed=0)
    dm.setup("fit")
    dm.setup("test")
    train, val = set(dm.train_set.sample_ids), set(dm.val_set.sample_ids)
    assert len(val) == 6 and len(train) == 24 and not train & val
    assert {s for s, _ in train | val} == TRAIN_SEQUENCES
    assert {s for s, _ in dm.test_set.sample_ids} == TEST_SEQUENCES and len(dm.test_set) == 6
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["joints_img"].shape == (4, NUM_JOINTS, 3)
    test_batches = list(dm.test_dataloader())
    assert [len(b["index"]) for b in test_batches] == [4, 2]
    assert all(b["hand_type"][:, LEFT].all() for b in test_batches)


def test_hydra_config_composes_and_loads(stb_tree: Path, tmp_path: Path) -> None:
    import hydra

    overrides = [
        *TINY,
        "dataset=stb",
        f"data.root={stb_tree}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    cfg = compose_config("train", overrides, tmp_path / "run")
    assert cfg.data._target_ == "internet_plus.data.stb.STBDataModule"
    assert cfg.data.camera == "sk" and cfg.data.wrist_rule == "ring_mcp"
    dm = hydra.utils.instantiate(cfg.data)
    assert isinstance(dm, STBDataModule)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64)
    assert len(dm.train_set) + len(dm.val_set) == 10 * N_FRAMES

    cfg = compose_config("train", [*overrides, "data.camera=bb_right", "data.test_sequences=[B1Random]"], tmp_path)
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("test")
    assert dm.camera == "bb_right" and {s for s, _ in dm.test_set.sample_ids} == {"B1Random"}
    assert dm.test_set.records[0].image_path.endswith("BB_right_0.png")


# ------------------------------------------------------------------------------------------------ verify, training


def test_verify_passes_on_a_clean_tree_and_lists_every_problem(
    stb_tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kwargs = dict(batch_size=2, num_workers=0, input_size=64, val_fraction=0.0, verify=True)
    with caplog.at_level("INFO", logger="internet_plus.data.verify"):
        STBDataModule(root=str(stb_tree), **kwargs).setup("test")
    assert "STB test" in caplog.text and f"verified {2 * N_FRAMES} samples" in caplog.text
    assert "no problems" in caplog.text

    root = write_stb_tree(tmp_path / "STB", views=("sk",))
    truncated = root / "images" / "B1Counting" / "SK_color_1.png"
    truncated.write_bytes(truncated.read_bytes()[:100])
    empty = root / "images" / "B1Random" / "SK_color_2.png"
    empty.write_bytes(b"")
    with pytest.raises(DatasetLayoutError) as info:
        STBDataModule(root=str(root), **kwargs).setup("test")
    message = str(info.value)
    assert "2 problem(s) in 2 sample(s)" in message
    assert str(truncated) in message and str(empty) in message
    STBDataModule(root=str(root), **{**kwargs, "verify": False}).setup("test")  # off: read as before


@pytest.mark.slow
def test_short_training_run(stb_tree: Path, tmp_path: Path) -> None:
    from internet_plus.tasks import train as train_task

    run_dir = tmp_path / "run"
    overrides = [
        *TINY,
        "dataset=stb",
        f"data.root={stb_tree}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "data.val_fraction=0.2",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
    ]
    results = train_task.run(compose_config("train", overrides, run_dir))
    assert {"test/epe_mm", "test/auc_20_50", "test/handedness_acc", "test/pck_curve"} <= set(results)
    assert np.isfinite(results["test/epe_mm"]) and 0.0 <= results["test/handedness_acc"] <= 1.0
    assert not any("mpjpe" in key or "mrrpe" in key for key in results)  # RHD protocol only
    assert (run_dir / "metrics.json").is_file()


# ------------------------------------------------------------------------------------------------ corrupt images


def test_truncated_image_raises_with_its_name_or_is_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_stb_tree(tmp_path / "STB", views=("sk",))
    bad = root / "images" / "B1Counting" / "SK_color_1.png"
    bad.write_bytes(bad.read_bytes()[:100])
    strict = STBDataset(root, "test", input_size=64)
    i = next(k for k, r in enumerate(strict.records) if r.image_path == str(bad))
    assert i + 1 < len(strict)
    with pytest.raises(DatasetLayoutError, match=bad.name):
        strict[i]
    with pytest.raises(ValueError, match="on_bad_image"):
        STBDataset(root, "test", input_size=64, on_bad_image="ignore")

    lenient = STBDataset(root, "test", input_size=64, on_bad_image="skip")
    with caplog.at_level("WARNING", logger="internet_plus.data.stb"):
        sample = lenient[i]
    assert int(sample["index"]) == i + 1  # replaced by the next readable sample
    assert lenient.skipped_images == lenient.bad_images == 1
    assert f"STB: skipping unreadable image {bad}" in caplog.text

    dm = STBDataModule(root=str(root), on_bad_image="skip", batch_size=2, num_workers=0, input_size=64)
    dm.setup("test")
    assert dm.test_set.on_bad_image == "skip"
    for k in range(len(dm.test_set)):
        dm.test_set[k]
    with caplog.at_level("WARNING"):
        dm.teardown("test")
    assert "1 unreadable test image(s) were skipped" in caplog.text


def test_bad_test_frame_stops_setup_or_is_skipped(tmp_path: Path) -> None:
    root = write_stb_tree(tmp_path / "STB", views=("sk",))
    label = root / "labels" / "B1Counting_SK.mat"
    hand_para = scipy.io.loadmat(str(label))["handPara"]
    hand_para[:, :, 1] *= 1e6  # metres read as micrometres: a test EPE of millions of mm
    write_labels(root, "B1Counting", "SK", hand_para)
    kwargs = dict(root=str(root), batch_size=2, num_workers=0, input_size=64, val_fraction=0.0)
    with pytest.raises(DatasetLayoutError, match=r"SK_color_1\.png \(frame 1 of labels/B1Counting_SK\.mat\)") as info:
        STBDataModule(**kwargs).setup("fit")  # the fit stage checks the test split before the first step
    assert "outside 0 < z < 5 m" in str(info.value)
    lenient = STBDataModule(**kwargs, on_bad_sample="skip")
    lenient.setup("test")
    assert lenient.skipped_test_samples == 1 and ("B1Counting", 1) not in lenient.test_set.sample_ids
    assert len(lenient.test_set) == 2 * N_FRAMES - 1


def test_a_training_frame_whose_crop_cannot_show_the_hand_stops_setup_or_is_skipped(tmp_path: Path) -> None:
    """One joint 30 m to the side in a training label: its projection is far outside the image and the crop box,
    thousands of images wide, would be black. Setup stops naming the frame; ``on_bad_sample=skip`` trains without it."""
    root = write_stb_tree(tmp_path / "STB", views=("sk",))
    hand_para = scipy.io.loadmat(str(root / "labels" / "B2Counting_SK.mat"))["handPara"]
    hand_para[0, 5, 1] += 30000.0  # mm: 30 m to the side at about 0.4 m
    write_labels(root, "B2Counting", "SK", hand_para)
    kwargs = dict(root=str(root), batch_size=2, num_workers=0, input_size=64, val_fraction=0.0)
    with pytest.raises(
        DatasetLayoutError,
        match=r"SK_color_1\.png \(frame 1 of labels/B2Counting_SK\.mat\): \d+ keypoint\(s\) of the crop",
    ):
        STBDataModule(**kwargs).setup("fit")
    lenient = STBDataModule(**kwargs, on_bad_sample="skip")
    lenient.setup("fit")
    assert len(lenient.train_set) == 10 * N_FRAMES - 1  # B2-B6, two sequences each, less the bad frame
