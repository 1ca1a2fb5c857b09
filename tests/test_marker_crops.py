"""Marker crops: fake STB and InterHand2.6M trees whose images show a coloured disc at every projected joint.

The hands come from the synthetic hand generator (``internet_plus.data.synthetic.hand_model``, project joint order),
are posed in front of the camera and written in each data set's official format: STB ``labels/<seq>_SK.mat``
(``handPara`` 3×21×N in the depth-camera frame, palm first, fingers little → thumb) with
``images/<seq>/SK_color_<i>.png``; InterHand2.6M release v1.0 ``annotations/<split>/InterHand2.6M_<split>_{data,
camera,joint_3d}.json`` (world coordinates, a rotated camera) with ``images/<split>/Capture<c>/<seq>/cam<cam>/
image<frame>.jpg``. The joints are drawn into the images as filled discs, far to near, on black; a disc's colour
encodes the hand and the project joint it marks (:func:`joint_code`). The native joint orders, the palm centre and
the SK frame are worked out here and in ``fakes.stb`` from the documented conventions (``docs/reference/datasets.md``
§B.2, §B.4, §B.5, §C.3, §C.4), independently of the readers' index arrays, so a wrong permutation in a reader puts a
joint's ``joints_img`` on another joint's marker.

Each test loads the trees through the data modules and checks, for every joint with ``joint_valid > 0`` whose disc is
not covered by a nearer one around its centre, that the crop pixel at ``round(joints_img[j, :2])`` shows joint j's
code (colour augmentation divided out): joint order, crop geometry and the flip (a flipped sample shows the original
left hand's markers in the right-hand block, and ``hand_type`` swaps).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fakes.interhand import write_annotation_files
from fakes.stb import IMAGE_SIZE, K_SK, NATIVE_OF_PROJECT, color_to_sk, sequence_dir, write_frame, write_labels

from internet_plus.data.interhand import InterHandDataModule
from internet_plus.data.stb import STBDataModule, rodrigues
from internet_plus.data.synthetic.hand_model import mirror_to_left, sample_hand_pose
from internet_plus.data.synthetic.interhand import look_at
from internet_plus.joints import JOINTS_PER_HAND, LEFT, NUM_JOINTS, RIGHT

# ------------------------------------------------------------------------------------------------ markers


def joint_code(hand: int, joint: int) -> np.ndarray:
    """RGB code of the marker of project joint ``joint`` (0-20) of ``hand``: 45 levels apart in R and G, B per hand.

    Every channel stays in [30, 210], so the ±20 % colour augmentation never clips it and black stays apart.
    """
    return np.array([30.0 + 45.0 * (joint // 5), 30.0 + 45.0 * (joint % 5), 40.0 if hand == RIGHT else 200.0])


#: Codes of the 42 labels (label = 21·hand + project joint).
CODES = np.stack([joint_code(h, j) for h in (RIGHT, LEFT) for j in range(JOINTS_PER_HAND)])
assert len({tuple(c) for c in CODES}) == NUM_JOINTS


def draw_markers(
    size_wh: tuple[int, int], markers: dict[int, tuple[np.ndarray, float]], radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Discs on black, far to near: ``markers`` maps label → (uv, depth). Returns (RGB uint8 image, label map)."""
    width, height = size_wh
    image = np.zeros((height, width, 3), dtype=np.uint8)
    labels = np.full((height, width), -1, dtype=np.int32)
    for label, (uv, _) in sorted(markers.items(), key=lambda item: -item[1][1]):
        x0, x1 = max(0, int(uv[0] - radius) - 1), min(width, int(uv[0] + radius) + 2)
        y0, y1 = max(0, int(uv[1] - radius) - 1), min(height, int(uv[1] + radius) + 2)
        if x1 <= x0 or y1 <= y0:  # outside the image (the caller rejects such poses)
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disc = (xx - uv[0]) ** 2 + (yy - uv[1]) ** 2 <= radius**2
        image[y0:y1, x0:x1][disc] = CODES[label].astype(np.uint8)
        labels[y0:y1, x0:x1][disc] = label
    return image, labels


def marker_visible(labels: np.ndarray, label: int, uv: np.ndarray, core: float) -> bool:
    """Whether every pixel within ``core`` of ``uv`` shows the disc of ``label`` (not covered by a nearer one)."""
    height, width = labels.shape
    x0, x1 = int(np.floor(uv[0] - core)), int(np.ceil(uv[0] + core)) + 1
    y0, y1 = int(np.floor(uv[1] - core)), int(np.ceil(uv[1] + core)) + 1
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return False
    yy, xx = np.mgrid[y0:y1, x0:x1]
    near = (xx - uv[0]) ** 2 + (yy - uv[1]) ** 2 <= core**2
    return bool((labels[y0:y1, x0:x1][near] == label).all())


def check_markers(
    sample: dict[str, torch.Tensor],
    labels: np.ndarray,
    uv_by_label: dict[int, np.ndarray],
    color: tuple[float, float, float],
    flip: bool,
    tolerance: float,
    extra_margin: float = 0.0,
) -> tuple[int, int]:
    """Every valid joint whose marker is visible shows its code at ``round(joints_img)`` in the crop.

    ``labels`` and ``uv_by_label`` are the ground truth of the drawn image (from the generator, not the reader);
    project joint i of the sample is label i, or label (i + 21) mod 42 when the sample is flipped. A marker counts
    as visible when no nearer disc covers it within the distance the sampled crop pixel can lie from the joint in
    the source image (half a crop pixel's diagonal in source pixels, plus the bilinear neighbours, plus
    ``extra_margin``). Returns (joints checked, valid joints skipped as covered); raises listing every wrong pixel.
    """
    size = sample["image"].shape[-1]
    crop = sample["image"].numpy().transpose(1, 2, 0).astype(np.float64) * 255.0 / np.asarray(color)
    src_per_crop = float(np.linalg.norm(sample["inv_trans"].double().numpy()[:, :2], 2))
    core = 0.5 * np.sqrt(2.0) * src_per_crop + 1.5 + extra_margin
    valid = sample["joint_valid"].numpy()
    joints = sample["joints_img"].double().numpy()
    checked, covered, wrong = 0, 0, []
    for i in np.flatnonzero(valid > 0):
        label = int((i + JOINTS_PER_HAND) % NUM_JOINTS) if flip else int(i)
        if label not in uv_by_label:
            wrong.append(f"joint {i}: valid but no marker {label} was drawn (validity in the wrong joint order?)")
            continue
        if not marker_visible(labels, label, uv_by_label[label], core):
            covered += 1
            continue
        x, y = (int(np.floor(c + 0.5)) for c in joints[i, :2])
        if not (0 <= x < size and 0 <= y < size):
            covered += 1
            continue
        pixel = crop[y, x]
        distance = np.linalg.norm(CODES - pixel, axis=1)
        found = int(np.argmin(distance))
        if found != label or distance[label] > tolerance:
            wrong.append(
                f"joint {i}: expected marker {label} {CODES[label].tolist()} at crop ({x}, {y}), found "
                f"{np.round(pixel, 1).tolist()} (nearest marker {found}, distance {distance[found]:.1f})"
            )
        checked += 1
    assert not wrong, "markers not at their joints' loaded positions:\n" + "\n".join(wrong)
    return checked, covered


FRONTAL = np.diag([1.0, -1.0, -1.0])  # hand frame (x radial, y distal, z palmar) → camera: fingers up, palm to camera


def posed_hand(rng: np.random.Generator, hand: int, wrist_cam: np.ndarray, tilt: float = 0.3) -> np.ndarray:
    """A synthetic hand (21×3 mm, project order) in the camera frame: mostly frontal, wrist at ``wrist_cam``."""
    joints, _ = sample_hand_pose(rng)
    if hand == LEFT:
        joints = mirror_to_left(joints)
    rot = rodrigues(rng.normal(scale=tilt, size=3)) @ FRONTAL
    return joints @ rot.T + np.asarray(wrist_cam, dtype=np.float64)


def pinhole(xyz: np.ndarray, focal: tuple[float, float], princpt: tuple[float, float]) -> np.ndarray:
    xyz = np.asarray(xyz, dtype=np.float64)
    return xyz[:, :2] / xyz[:, 2:] * np.asarray(focal) + np.asarray(princpt)


def visible_count(labels: np.ndarray, uv_by_label: dict[int, np.ndarray], core: float) -> int:
    return sum(marker_visible(labels, label, uv, core) for label, uv in uv_by_label.items())


# ------------------------------------------------------------------------------------------------ STB

STB_SIZE = IMAGE_SIZE
STB_RADIUS = 5.0
SK_FOCAL, SK_PRINCPT = K_SK[:2], K_SK[2:]  # datasets §B.4: RealSense colour intrinsics
STB_RING_MCP = 5  # native; the default wrist rule (§B.5): wrist = ring_MCP + 2·(palm − ring_MCP)
STB_FRAMES = {"B1Counting": 3, "B2Counting": 3}  # B1 = the test split, B2 = a training sequence


def stb_native_sk(left_cam: np.ndarray) -> np.ndarray:
    """A left hand (colour frame, project order) as one STB ``_SK`` label: native order, palm, depth-camera frame."""
    native = np.zeros((JOINTS_PER_HAND, 3))
    native[NATIVE_OF_PROJECT] = left_cam
    ring = native[STB_RING_MCP]
    native[0] = ring + (left_cam[0] - ring) / 2.0  # the palm centre that the default rule turns into this wrist
    return color_to_sk(native)


@pytest.fixture(scope="module")
def stb_markers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, int], tuple]]:
    """An STB tree (B1Counting, B2Counting) with marker images; returns (root, (seq, frame) → (labels, uv))."""
    root = tmp_path_factory.mktemp("stb_markers") / "STB"
    truth: dict[tuple[str, int], tuple] = {}
    rng = np.random.default_rng(20240611)
    for seq, frames in STB_FRAMES.items():
        folder = sequence_dir(root, seq)
        para = np.zeros((3, JOINTS_PER_HAND, frames))
        for i in range(frames):
            while True:  # a plausible, mostly frontal pose whose markers are mostly uncovered, inside the image
                wrist = np.array([rng.uniform(-40, 40), rng.uniform(40, 80), rng.uniform(400, 600)])
                hand = posed_hand(rng, LEFT, wrist)
                uv = pinhole(hand, SK_FOCAL, SK_PRINCPT)
                inside = (uv > 15).all() and (uv[:, 0] < STB_SIZE[0] - 15).all() and (uv[:, 1] < STB_SIZE[1] - 15).all()
                markers = {JOINTS_PER_HAND + j: (uv[j], hand[j, 2]) for j in range(JOINTS_PER_HAND)}
                image, labels = draw_markers(STB_SIZE, markers, STB_RADIUS)
                uv_by_label = {label: m[0] for label, m in markers.items()}
                if inside and (hand[:, 2] > 200).all() and visible_count(labels, uv_by_label, 3.5) >= 15:
                    break
            para[:, :, i] = stb_native_sk(hand).T
            write_frame(folder, "SK_color", i, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            truth[(seq, i)] = (labels, uv_by_label)
        write_labels(root, seq, "SK", para)
    return root, truth


def _stb_module(root: Path, augmentation: dict | None = None) -> STBDataModule:
    return STBDataModule(
        root=str(root),
        train_sequences=["B2Counting"],
        test_sequences=["B1Counting"],
        batch_size=1,
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
        input_size=128,
        val_fraction=0.0,
        augmentation=augmentation,
        seed=3,
    )


def test_stb_crop_shows_each_joint_marker_at_its_loaded_position(stb_markers) -> None:
    root, truth = stb_markers
    dm = _stb_module(root)
    dm.setup("test")
    dataset = dm.test_set
    assert dataset.sample_ids == [("B1Counting", i) for i in range(3)]
    for i, key in enumerate(dataset.sample_ids):
        sample = dataset[i]
        labels, uv_by_label = truth[key]
        np.testing.assert_array_equal(sample["hand_type"].numpy(), [0.0, 1.0])
        np.testing.assert_array_equal(sample["joint_valid"].numpy(), [0.0] * 21 + [1.0] * 21)  # whole hand in crop
        checked, covered = check_markers(sample, labels, uv_by_label, (1.0, 1.0, 1.0), flip=False, tolerance=3.0)
        assert checked >= 15 and checked + covered == JOINTS_PER_HAND, (key, checked, covered)


@pytest.mark.parametrize("flip_prob", [0.0, 1.0], ids=["augmented", "augmented_and_flipped"])
def test_stb_augmented_crop_shows_each_joint_marker_at_its_loaded_position(stb_markers, flip_prob: float) -> None:
    """Shift, scale, rotation and colour (divided out) as drawn by the data module; with a flip the left hand's
    markers sit in the right-hand block and the hand type swaps."""
    root, truth = stb_markers
    dm = _stb_module(root, {"flip_prob": flip_prob, "rotation_prob": 1.0})
    dm.setup("fit")
    dataset = dm.train_set
    assert dataset.augment and len(dataset) == STB_FRAMES["B2Counting"]
    total_checked, total_valid = 0, 0
    for epoch in range(3):
        for i, key in enumerate(dataset.sample_ids):
            params = dataset.augmentation_params(i, epoch)
            assert params.flip == (flip_prob == 1.0) and params.rotation != 0.0
            sample = dataset[(epoch, i)]
            labels, uv_by_label = truth[key]
            shown = [1.0, 0.0] if params.flip else [0.0, 1.0]
            np.testing.assert_array_equal(sample["hand_type"].numpy(), shown)
            block = slice(0, JOINTS_PER_HAND) if params.flip else slice(JOINTS_PER_HAND, NUM_JOINTS)
            assert (sample["joint_annotated"].numpy()[block] == 1.0).all()
            assert sample["joint_annotated"].sum() == JOINTS_PER_HAND
            checked, _ = check_markers(sample, labels, uv_by_label, params.color, flip=params.flip, tolerance=4.0)
            total_checked += checked
            total_valid += int(sample["joint_valid"].sum())
    assert total_checked >= 0.6 * 9 * JOINTS_PER_HAND and total_checked >= 0.6 * total_valid


# ------------------------------------------------------------------------------------------------ InterHand2.6M

IH_SIZE = (512, 334)  # (width, height): the official landscape size
IH_RADIUS = 7.0
IH_FOCAL = (1250.0, 1243.0)
IH_PRINCPT = (261.0, 164.0)
IH_CAMPOS = np.array([420.0, -310.0, -880.0])
_ROLL = np.deg2rad(25.0)
#: World → camera rotation (rows: camera axes): looking at the hands, rolled 25° about the optical axis.
IH_CAMROT = np.array(
    [[np.cos(_ROLL), -np.sin(_ROLL), 0.0], [np.sin(_ROLL), np.cos(_ROLL), 0.0], [0.0, 0.0, 1.0]]
) @ look_at(IH_CAMPOS, np.array([0.0, 40.0, 0.0]))
IH_CAMERA = "400262"
#: datasets §C.4: InterHand2.6M native joint of project joint j within a hand (native per hand: each finger tip →
#: base, thumb … pinky, wrist last; the left hand is native 21-41).
IH_NATIVE_OF_PROJECT = np.array([20] + [4 * f + (3 - k) for f in range(5) for k in range(4)])
IH_UNANNOTATED = 8  # project joint (right index tip) marked not valid in the right-hand frame, and not drawn
#: (hand_type, camera-frame wrists {hand: xyz}) of the three frames; the interacting pair stands side by side.
IH_FRAMES = (
    ("right", {RIGHT: (0.0, 60.0, 1050.0)}),
    ("left", {LEFT: (10.0, 55.0, 1000.0)}),
    ("interacting", {RIGHT: (95.0, 60.0, 1080.0), LEFT: (-95.0, 55.0, 1040.0)}),
)


def _ih_frames(seed: int) -> list[tuple[str, dict[int, np.ndarray], np.ndarray, np.ndarray, dict[int, np.ndarray]]]:
    """Per frame: (hand type, {hand: camera-frame joints}, image, label map, {label: uv})."""
    rng = np.random.default_rng(seed)
    out = []
    for kind, wrists in IH_FRAMES:
        while True:
            hands = {h: posed_hand(rng, h, np.asarray(w), tilt=0.25) for h, w in wrists.items()}
            markers = {}
            inside = True
            for h, cam in hands.items():
                uv = pinhole(cam, IH_FOCAL, IH_PRINCPT)
                inside &= bool(
                    (uv > 15).all() and (uv[:, 0] < IH_SIZE[0] - 15).all() and (uv[:, 1] < IH_SIZE[1] - 15).all()
                )
                for j in range(JOINTS_PER_HAND):
                    if not (kind == "right" and j == IH_UNANNOTATED):
                        markers[h * JOINTS_PER_HAND + j] = (uv[j], cam[j, 2])
            image, labels = draw_markers(IH_SIZE, markers, IH_RADIUS)
            uv_by_label = {label: m[0] for label, m in markers.items()}
            if inside and visible_count(labels, uv_by_label, 5.0) >= 0.75 * len(markers):
                break
        out.append((kind, hands, image, labels, uv_by_label))
    return out


def write_marker_split(root: Path, split: str, frames: list) -> None:
    """One capture, one rotated camera, one image per frame, in the release v1.0 layout (datasets §C.1-§C.3)."""
    camera = {
        "0": {
            "campos": {IH_CAMERA: IH_CAMPOS.tolist()},
            "camrot": {IH_CAMERA: IH_CAMROT.tolist()},
            "focal": {IH_CAMERA: list(IH_FOCAL)},
            "princpt": {IH_CAMERA: list(IH_PRINCPT)},
        }
    }
    images, annotations, joint_3d = [], [], {"0": {}}
    for n, (kind, hands, image, _, uv_by_label) in enumerate(frames):
        frame_idx = 300 + 6 * n
        world = np.ones((NUM_JOINTS, 3))  # absent hands keep the placeholder [1, 1, 1]
        valid = np.zeros(NUM_JOINTS, dtype=int)
        for h, cam in hands.items():
            native = IH_NATIVE_OF_PROJECT + h * JOINTS_PER_HAND
            world[native] = cam @ IH_CAMROT + IH_CAMPOS  # X_cam = R·(X_world − campos)
            valid[native] = 1
        if kind == "right":
            valid[IH_NATIVE_OF_PROJECT[IH_UNANNOTATED]] = 0
        uv = np.stack(list(uv_by_label.values()))
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        centre, size = (lo + hi) / 2.0, (hi - lo) * 1.2
        file_name = f"Capture0/ROM04_RT_Occlusion/cam{IH_CAMERA}/image{frame_idx:04d}.jpg"
        path = root / "images" / split / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        params = [cv2.IMWRITE_JPEG_QUALITY, 100, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        assert cv2.imwrite(str(path), bgr, params)
        images.append(
            {
                "id": n,
                "file_name": file_name,
                "width": IH_SIZE[0],
                "height": IH_SIZE[1],
                "capture": 0,
                "subject": 0,
                "seq_name": "ROM04_RT_Occlusion",
                "camera": IH_CAMERA,
                "frame_idx": frame_idx,
            }
        )
        annotations.append(
            {
                "id": n,
                "image_id": n,
                "bbox": [*(centre - size / 2.0).tolist(), *size.tolist()],
                "joint_valid": [[int(v)] for v in valid],
                "hand_type": kind,
                "hand_type_valid": 1,
            }
        )
        joint_3d["0"][str(frame_idx)] = {
            "world_coord": world.tolist(),
            "joint_valid": [[int(v)] for v in valid],
            "hand_type": kind,
            "hand_type_valid": True,
        }
    data = {"images": images, "annotations": annotations}
    write_annotation_files(root, split, data=data, camera=camera, joint_3d=joint_3d)


@pytest.fixture(scope="module")
def interhand_markers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, list]]:
    """(root, cache folder, split → frames) of a v1.0 tree with ``train`` and ``test`` splits (other poses)."""
    base = tmp_path_factory.mktemp("interhand_markers")
    root = base / "InterHand2.6M"
    frames = {"test": _ih_frames(7), "train": _ih_frames(8)}
    for split, split_frames in frames.items():
        write_marker_split(root, split, split_frames)
    return root, base / "cache", frames


def _ih_module(root: Path, cache: Path, augmentation: dict | None = None) -> InterHandDataModule:
    return InterHandDataModule(
        root=str(root),
        cache_dir=str(cache),
        batch_size=1,
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
        input_size=256,
        val_fraction=0.0,
        augmentation=augmentation,
        seed=5,
    )


IH_HAND_TYPES = {"right": [1.0, 0.0], "left": [0.0, 1.0], "interacting": [1.0, 1.0]}


def _ih_expected_annotated(kind: str) -> np.ndarray:
    annotated = np.zeros(NUM_JOINTS)
    if kind in ("right", "interacting"):
        annotated[:JOINTS_PER_HAND] = 1.0
    if kind in ("left", "interacting"):
        annotated[JOINTS_PER_HAND:] = 1.0
    if kind == "right":
        annotated[IH_UNANNOTATED] = 0.0
    return annotated


def root_valid_and_both_hands(sample: dict[str, torch.Tensor]) -> bool:
    valid = sample["joint_valid"].numpy()
    return bool(valid[:JOINTS_PER_HAND].all() and valid[JOINTS_PER_HAND:].all() and sample["root_valid"] == 1.0)


def test_interhand_crop_shows_each_joint_marker_at_its_loaded_position(interhand_markers) -> None:
    """Single right (one joint not annotated), single left, and an interacting pair: both hands in the one crop."""
    root, cache, frames = interhand_markers
    dm = _ih_module(root, cache)
    dm.setup("test")
    dataset = dm.test_set
    assert len(dataset) == 3
    for i, (kind, _, _, labels, uv_by_label) in enumerate(frames["test"]):
        sample = dataset[i]
        np.testing.assert_array_equal(sample["hand_type"].numpy(), IH_HAND_TYPES[kind])
        annotated = _ih_expected_annotated(kind)
        np.testing.assert_array_equal(sample["joint_annotated"].numpy(), annotated)
        np.testing.assert_array_equal(sample["joint_valid"].numpy(), annotated)  # the box holds every joint
        checked, covered = check_markers(
            sample, labels, uv_by_label, (1.0, 1.0, 1.0), flip=False, tolerance=12.0, extra_margin=1.0
        )
        assert checked + covered == annotated.sum() and checked >= 0.75 * annotated.sum(), (kind, checked, covered)
        if kind == "interacting":  # both hands are checked inside the one crop
            assert root_valid_and_both_hands(sample)


@pytest.mark.parametrize("flip_prob", [0.0, 1.0], ids=["augmented", "augmented_and_flipped"])
def test_interhand_augmented_crop_shows_each_joint_marker_at_its_loaded_position(
    interhand_markers, flip_prob: float
) -> None:
    """Augmented as the data module draws it; a flip moves each hand's markers into the other hand's block."""
    root, cache, frames = interhand_markers
    dm = _ih_module(root, cache, {"flip_prob": flip_prob, "rotation_prob": 1.0})
    dm.setup("fit")
    dataset = dm.train_set
    assert dataset.augment and len(dataset) == 3
    total_checked, total_annotated = 0, 0
    for epoch in range(3):
        for i, (kind, _, _, labels, uv_by_label) in enumerate(frames["train"]):
            params = dataset.augmentation_params(i, epoch)
            assert params.flip == (flip_prob == 1.0) and params.rotation != 0.0
            sample = dataset[(epoch, i)]
            annotated = _ih_expected_annotated(kind)
            hand_type = np.asarray(IH_HAND_TYPES[kind])
            if params.flip:
                annotated = np.roll(annotated, JOINTS_PER_HAND)
                hand_type = hand_type[::-1]
            np.testing.assert_array_equal(sample["hand_type"].numpy(), hand_type)
            np.testing.assert_array_equal(sample["joint_annotated"].numpy(), annotated)
            checked, _ = check_markers(
                sample, labels, uv_by_label, params.color, flip=params.flip, tolerance=14.0, extra_margin=1.0
            )
            total_checked += checked
            total_annotated += int(annotated.sum())
    assert total_checked >= 0.6 * total_annotated
