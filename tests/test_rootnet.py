"""RootNet's test-time boxes and absolute root depths (``data.rootnet_output``; InterNet's default 'rootnet' protocol,
``docs/reference/internet.md`` §5.2-§5.4), on fake RHD, STB and InterHand2.6M trees with RootNet files written here.

Checked: (a) the file's box reaches the crop as is (the sample's ``inv_trans`` is InterNet's 3-point affine of the
unprocessed box); (b) its depth reaches the decoding (a known prediction decoded with the ground-truth depth + Δ gives
each joint scaled by (Z + Δ)/Z, and the root-relative error Δ·‖Δuv/f‖); (c) ``Trainer.test`` with a network whose
output is known gives the EPE, MPJPE and MRRPE of a direct numpy implementation of InterNet's ``evaluate`` on the raw
files (the RIGHT RootNet depth placing both wrists for MRRPE); (d) malformed files and missing ids stop at setup,
naming the file and the entry; (e) training and validation samples never use the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import pytorch_lightning as L
import torch
from conftest import REAL_SAMPLES
from fakes.interhand import write_interhand_tree
from fakes.rhd import rhd_annotation, write_rhd_split
from fakes.stb import IMAGE_SIZE, K_BB, sequence_dir, write_frame, write_labels

from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.interhand import InterHandDataModule
from internet_plus.data.rhd import RHDDataModule, RHDDataset
from internet_plus.data.rootnet import RootNetError, box_centre_inside, read_rootnet_output
from internet_plus.data.stb import STBDataModule
from internet_plus.data.transforms import bbox_from_joints, process_bbox
from internet_plus.joints import LEFT, NUM_JOINTS, RIGHT, hand_slice
from internet_plus.lit_module import HandPoseModule
from internet_plus.metrics.pose import PoseErrorMetrics
from internet_plus.models.codec import HeatmapCodec

S = 64  # network input side of every test here; heatmaps 16³, as the tiny configs
HM = 16
DELTA = 25.0  # mm added to the ground-truth root depth in the RootNet files


# ------------------------------------------------------------------------------------------------ helpers


def write_rootnet(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(entries))
    return path


def official_inv_trans(bbox: np.ndarray, size: int = S) -> np.ndarray:
    """InterNet's ``generate_patch_image(..., inv=True)`` at test time (no shift, scale 1, no rotation, no flip): the
    affine taking the crop's centre, bottom-centre and right-centre to the box's (internet §6.1)."""
    x, y, w, h = (float(v) for v in bbox)
    cx, cy = x + 0.5 * w, y + 0.5 * h
    src = np.float32([[cx, cy], [cx, cy + 0.5 * h], [cx + 0.5 * w, cy]])
    dst = np.float32([[size / 2, size / 2], [size / 2, size], [size, size / 2]])
    return cv2.getAffineTransform(dst, src).astype(np.float64)


def pixel2cam(uvz: np.ndarray, focal: np.ndarray, princpt: np.ndarray) -> np.ndarray:
    """InterNet's ``pixel2cam``: X = (u − cx)/fx · Z, Y = (v − cy)/fy · Z."""
    out = np.array(uvz, dtype=np.float64, copy=True)
    out[:, 0] = (uvz[:, 0] - princpt[0]) / focal[0] * uvz[:, 2]
    out[:, 1] = (uvz[:, 1] - princpt[1]) / focal[1] * uvz[:, 2]
    return out


def official_decode(vox: np.ndarray, inv_trans: np.ndarray, depth: np.ndarray, focal, princpt) -> np.ndarray:
    """InterNet's ``evaluate`` steps 1-5 (internet §5.2) for one sample: voxel (x, y, z) → camera mm; ``depth`` 42
    absolute root depths (each joint its own hand's)."""
    img = np.array(vox, dtype=np.float64)
    img[:, 0] = img[:, 0] / HM * S
    img[:, 1] = img[:, 1] / HM * S
    img[:, :2] = img[:, :2] @ inv_trans[:, :2].T + inv_trans[:, 2]
    img[:, 2] = (img[:, 2] / HM * 2 - 1) * 200.0 + depth
    return pixel2cam(img, focal, princpt)


def root_aligned(cam: np.ndarray) -> np.ndarray:
    out = np.array(cam, dtype=np.float64, copy=True)
    for hand in (RIGHT, LEFT):
        block = hand_slice(hand)
        out[block] -= out[block][0]
    return out


def _batch(dataset, positions=None) -> dict[str, torch.Tensor]:
    positions = range(len(dataset)) if positions is None else positions
    items = [dataset[i] for i in positions]
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


def _perfect_voxels(batch: dict[str, torch.Tensor], offset: np.ndarray | None = None) -> np.ndarray:
    """The voxel a perfect network peaks at (the ground-truth target rounded), plus ``offset``, inside the volume."""
    codec = HeatmapCodec(input_size=S, heatmap_size=HM, depth_bins=HM)
    coords, _ = codec.encode_joints(batch["joints_img"].double(), batch["joint_annotated"])
    vox = np.round(coords.numpy())
    if offset is not None:
        vox = vox + offset
    return np.clip(vox, 0, HM - 1).astype(np.int64)


# ------------------------------------------------------------------------------------------------ fake trees

REAL_RHD = REAL_SAMPLES / "rhd"


def write_rhd_tree(root: Path) -> dict[int, dict[str, np.ndarray]]:
    """RHD_published_v2 from the real samples: ``evaluation`` = the 3 real samples under their own ids (one hand
    annotated; the other placed elsewhere and painted smaller in the mask), ``training`` = 6 copies under ids 0-5.
    Returns, per evaluation id, the scored hand (``hand``), its native block's camera joints in mm (``cam``), pixels
    (``uv``) and ``K``."""
    data = json.loads((REAL_RHD / "test_rhd.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    samples = {}
    for ann in data["annotations"]:
        im = images[ann["image_id"]]
        own = slice(0, 21) if ann["hand_type"] == "left" else slice(21, 42)
        other = slice(21, 42) if ann["hand_type"] == "left" else slice(0, 21)
        cam = np.asarray(ann["joint_cam"], dtype=np.float64).reshape(21, 3)
        xyz = np.zeros((42, 3))
        xyz[own] = cam / 1000.0
        xyz[other] = cam / 1000.0 + np.array([0.25, 0.1, 0.3])
        (fx, fy), (cx, cy) = im["cam_param"]["focal"], im["cam_param"]["princpt"]
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        anno = rhd_annotation(xyz, K)
        mask = np.zeros((320, 320), dtype=np.uint8)
        for u, v in anno["uv_vis"][own, :2]:
            cv2.circle(mask, (int(round(u)), int(round(v))), 6, 17 if ann["hand_type"] == "left" else 33, -1)
        samples[int(ann["image_id"])] = {
            "anno": anno,
            "mask": mask,
            "color": REAL_RHD / im["file_name"],
            "hand": LEFT if ann["hand_type"] == "left" else RIGHT,
            "cam": np.asarray(anno["xyz"], dtype=np.float64)[own] * 1000.0,
            "uv": np.asarray(anno["uv_vis"], dtype=np.float64)[own, :2],
            "K": K,
        }
    for split, ids in (("evaluation", sorted(samples)), ("training", range(6))):
        chosen = {i: samples[sorted(samples)[k % len(samples)]] for k, i in enumerate(ids)}
        write_rhd_split(
            root,
            split,
            {i: s["anno"] for i, s in chosen.items()},
            {i: s["color"] for i, s in chosen.items()},
            {i: s["mask"] for i, s in chosen.items()},
        )
    return samples


def rhd_rootnet_entries(samples: dict[int, dict], delta: float = DELTA) -> list[dict[str, Any]]:
    """A RootNet file as InterNet's: the processed ground-truth box (here also moved and grown, so that a second
    ``process_bbox`` or the ground-truth box would show) and the ground-truth wrist depth + ``delta``."""
    entries = []
    for sample_id, s in samples.items():
        box = process_bbox(bbox_from_joints(s["uv"])) + np.array([3.0, -2.0, 0.0, 0.0])
        box[2] *= 1.1
        entries.append({"annot_id": sample_id, "bbox": box.tolist(), "abs_depth": s["cam"][0, 2] + delta})
    return entries


@pytest.fixture(scope="module")
def rhd_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, dict]]:
    root = tmp_path_factory.mktemp("rhd") / "RHD_published_v2"
    return root, write_rhd_tree(root)


def _rhd_module(root: Path, **kwargs: Any) -> RHDDataModule:
    args = dict(root=str(root), batch_size=3, num_workers=0, input_size=S, val_fraction=0.34, pin_memory=False)
    return RHDDataModule(**{**args, **kwargs})


STB_SEQUENCES = {"B1Counting": 2, "B1Random": 3, "B2Counting": 2}


def stb_hand(seq: int, frame: int) -> np.ndarray:
    """A left hand in the left Bumblebee frame, STB's native order (palm, little … thumb, each MCP → tip), mm."""
    rng = np.random.default_rng(100 * seq + frame)
    palm = np.array([20.0 * seq - 20.0, 10.0 * frame, 550.0 + 30.0 * frame])
    fingers = []
    for f in range(5):
        base = palm + np.array([-40.0 + 20.0 * f, -40.0, 5.0 * f])
        fingers += [base + np.array([0.0, -22.0 * k, 3.0 * k]) + rng.normal(0, 2, 3) for k in range(4)]
    return np.vstack([palm, *fingers])


def write_stb_tree(root: Path) -> Path:
    """B1Counting, B1Random (test) and B2Counting (train) with ``BB_left`` frames and ``_BB`` labels only."""
    for s, (seq, n) in enumerate(STB_SEQUENCES.items()):
        folder = sequence_dir(root, seq)
        for i in range(n):
            write_frame(folder, "BB_left", i, np.full((IMAGE_SIZE[1], IMAGE_SIZE[0], 3), 40, dtype=np.uint8))
        write_labels(root, seq, "BB", np.stack([stb_hand(s, i).T for i in range(n)], axis=-1))
    return root


def stb_pixels(xyz: np.ndarray) -> np.ndarray:
    fx, fy, cx, cy = K_BB
    return np.stack([fx * xyz[:, 0] / xyz[:, 2] + cx, fy * xyz[:, 1] / xyz[:, 2] + cy], axis=-1)


@pytest.fixture(scope="module")
def stb_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stb_tree(tmp_path_factory.mktemp("stb") / "STB")


def _stb_module(root: Path, **kwargs: Any) -> STBDataModule:
    args = dict(
        root=str(root),
        camera="bb_left",
        wrist_rule="palm",
        train_sequences=["B2Counting"],
        batch_size=2,
        num_workers=0,
        input_size=S,
        val_fraction=0.0,
        pin_memory=False,
    )
    return STBDataModule(**{**args, **kwargs})


@pytest.fixture(scope="module")
def ih_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ih") / "InterHand2.6M"
    write_interhand_tree(root, {"train": 6, "test": 12}, cameras_per_capture=2, interacting_fraction=0.5)
    return root


def _ih_module(root: Path, cache: Path, **kwargs: Any) -> InterHandDataModule:
    args = dict(root=str(root), cache_dir=str(cache), batch_size=4, num_workers=0, input_size=S, val_fraction=0.0)
    return InterHandDataModule(**{**args, **kwargs, "pin_memory": False})


def ih_rootnet_entries(dm: InterHandDataModule, delta: tuple[float, float] = (DELTA, -40.0)) -> list[dict]:
    """RootNet entries of every test annotation: the processed annotation box moved by a few pixels and grown, and
    the ground-truth wrist depths + ``delta`` ([right, left]; an absent hand gets 1000 mm)."""
    dm.setup("test")
    entries = []
    for i in range(len(dm.test_set)):
        record = dm.test_set.record(i)
        box = process_bbox(record.bbox) + np.array([2.0, 3.0, 0.0, 0.0])
        box[3] *= 1.05
        depth = [
            float(record.joints_cam[hand_slice(hand)][0, 2]) + delta[hand] if record.hand_type_vector[hand] else 1000.0
            for hand in (RIGHT, LEFT)
        ]
        entries.append({"annot_id": record.annot_id, "bbox": box.tolist(), "abs_depth": depth, "root_valid": 1})
    return entries


# ------------------------------------------------------------------------------------------------ the reader


def test_reader_keeps_the_three_fields_sorted_by_id(tmp_path: Path) -> None:
    scalar = write_rootnet(
        tmp_path / "s.json",
        [
            {"annot_id": 7, "bbox": [1, 2, 3, 4], "abs_depth": 500.5, "root_valid": 0},
            {"annot_id": "3", "bbox": [-41.6, -57.3, 416.25, 416.25], "abs_depth": [650]},
        ],
    )
    out = read_rootnet_output(scalar, "scalar")
    np.testing.assert_array_equal(out.annot_id, [3, 7])
    np.testing.assert_array_equal(out.bbox, [[-41.6, -57.3, 416.25, 416.25], [1, 2, 3, 4]])
    np.testing.assert_array_equal(out.abs_depth, [[650, 650], [500.5, 500.5]])  # the scalar, for both hands
    picked = out.select([7, 3, 7], "three samples")
    np.testing.assert_array_equal(picked.annot_id, [7, 3, 7])
    np.testing.assert_array_equal(picked.abs_depth[:, 0], [500.5, 650, 500.5])
    np.testing.assert_array_equal(picked.subset([2, 1]).bbox, [[1, 2, 3, 4], [-41.6, -57.3, 416.25, 416.25]])
    pair = write_rootnet(tmp_path / "p.json", [{"annot_id": 1, "bbox": [0, 0, 9, 9], "abs_depth": [900, -1.0]}])
    out = read_rootnet_output(pair, "pair")
    np.testing.assert_array_equal(out.abs_depth, [[900, -1.0]])
    out.select([1], "a right hand", present=np.array([[True, False]]))  # the absent left hand's depth is unused
    with pytest.raises(
        RootNetError,
        match=r"p\.json: abs_depth must be positive .*annot_id 1 of an interacting sample has \[900.0, -1.0\]",
    ):
        out.select([1], "an interacting sample", present=np.array([[True, True]]))


BAD_FILES = [
    ({"annot_id": 1}, "scalar", "a RootNet output is a non-empty JSON list .* got an object"),
    ([], "scalar", "got an empty list"),
    ([[1, 2]], "scalar", "entry 0 is a list, not a"),
    ([{"annot_id": 1, "bbox": [0, 0, 1, 1]}], "scalar", r"entry 0 has no abs_depth \(its keys: \['annot_id', 'bbox'\]"),
    ([{"annot_id": True, "bbox": [0, 0, 1, 1], "abs_depth": 1}], "scalar", "entry 0: annot_id must be an integer"),
    ([{"annot_id": 2.5, "bbox": [0, 0, 1, 1], "abs_depth": 1}], "scalar", "entry 0: annot_id must be an integer"),
    ([{"annot_id": 4, "bbox": [0, 0, 1], "abs_depth": 1}], "scalar", r"entry 0 \(annot_id 4\): bbox must be 4 finite"),
    ([{"annot_id": 4, "bbox": [0, 0, 0, 5], "abs_depth": 1}], "scalar", r"annot_id 4\): bbox must be .* w, h > 0"),
    ([{"annot_id": 4, "bbox": [0, "a", 5, 5], "abs_depth": 1}], "scalar", r"annot_id 4\): bbox must be 4 finite"),
    ([{"annot_id": 4, "bbox": [0, 0, 5, 5], "abs_depth": [1, 2]}], "scalar", r"annot_id 4\): abs_depth must be one"),
    ([{"annot_id": 4, "bbox": [0, 0, 5, 5], "abs_depth": 600}], "pair", r"annot_id 4\): abs_depth must be \[right, l"),
    ([{"annot_id": 4, "bbox": [0, 0, 5, 5], "abs_depth": [600]}], "pair", r"annot_id 4\): abs_depth must be \[right"),
    ([{"annot_id": 4, "bbox": [0, 0, 5, 5], "abs_depth": 0}], "scalar", r"annot_id 4\): abs_depth must be positive"),
    ([{"annot_id": 4, "bbox": [0, 0, 5, 5], "abs_depth": [9, None]}], "pair", r"annot_id 4\): abs_depth must be"),
    (
        [{"annot_id": 4, "bbox": [0, 0, 5, 5], "abs_depth": 5}] * 2,
        "scalar",
        r"annot_id 4 appears .* \(entries \[0, 1\]",
    ),
]


@pytest.mark.parametrize(("content", "kind", "problem"), BAD_FILES)
def test_malformed_files_name_the_file_and_the_entry(tmp_path: Path, content: Any, kind: str, problem: str) -> None:
    path = write_rootnet(tmp_path / "rootnet_rhd_output.json", content)
    with pytest.raises(RootNetError, match=problem) as info:
        read_rootnet_output(path, kind)  # type: ignore[arg-type]
    assert str(path) in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RootNetError, match="does not exist"):
        read_rootnet_output(tmp_path / "none.json", "scalar")
    text = tmp_path / "broken.json"
    text.write_text('[{"annot_id": 1, "bbox": [0, 0, 1, 1], "abs_depth": NaN}]')  # NaN: Python's JSON extension
    with pytest.raises(RootNetError, match=r"broken\.json: entry 0 \(annot_id 1\): abs_depth nan is not finite"):
        read_rootnet_output(text, "scalar")
    text.write_text('[{"annot_id": 1, "bbox": [0, 0, 1, 1], ')
    with pytest.raises(RootNetError, match=r"broken\.json: cannot read this RootNet output as JSON"):
        read_rootnet_output(text, "scalar")
    with pytest.raises(RootNetError, match="is not a file"):
        read_rootnet_output(tmp_path, "scalar")


def test_box_centre_inside() -> None:
    rootnet = np.array([[0.0, 0.0, 10.0, 10.0]] * 3)
    gt = np.array([[2.0, 2.0, 6.0, 6.0], [9.0, 9.0, 2.0, 2.0], [20.0, 0.0, 2.0, 2.0]])
    np.testing.assert_array_equal(box_centre_inside(rootnet, gt), [True, True, False])


# ------------------------------------------------------------------------------------------------ RHD


def test_rhd_boxes_reach_the_crops_and_depths_the_decoding(rhd_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, samples = rhd_tree
    entries = rhd_rootnet_entries(samples)
    path = write_rootnet(tmp_path / "rootnet_rhd_output.json", entries)
    rootnet_dm, gt_dm = _rhd_module(root, rootnet_output=str(path)), _rhd_module(root)
    rootnet_dm.setup("test")
    gt_dm.setup("test")
    by_id = {e["annot_id"]: e for e in entries}
    assert rootnet_dm.test_set.sample_ids == sorted(samples)
    batch, gt_batch = _batch(rootnet_dm.test_set), _batch(gt_dm.test_set)
    for i, sample_id in enumerate(rootnet_dm.test_set.sample_ids):
        box = np.asarray(by_id[sample_id]["bbox"])
        # (a) the RootNet box, as is, made the crop; not the processed one, not the ground truth's
        np.testing.assert_allclose(batch["inv_trans"][i].double().numpy(), official_inv_trans(box), atol=1e-3)
        assert not np.allclose(batch["inv_trans"][i].numpy(), official_inv_trans(process_bbox(box)), atol=0.5)
        assert not np.allclose(batch["inv_trans"][i].numpy(), gt_batch["inv_trans"][i].numpy(), atol=0.5)
        np.testing.assert_allclose(batch["abs_root_depth"][i].numpy(), [by_id[sample_id]["abs_depth"]] * 2, rtol=1e-6)
    # the ground truth stays the ground truth
    for key in ("joints_cam", "joint_annotated", "hand_type", "focal", "princpt"):
        torch.testing.assert_close(batch[key], gt_batch[key])
    np.testing.assert_allclose(gt_batch["abs_root_depth"].numpy() + DELTA, batch["abs_root_depth"].numpy(), rtol=1e-6)

    # (b) the ground-truth joints of the RootNet crop decoded with the RootNet depth (GT + Δ): each joint at
    # (Z + Δ)/Z of its true position, and the root-relative error Δ·‖(Δu/fx, Δv/fy)‖ per joint
    codec = HeatmapCodec(input_size=S, heatmap_size=HM, depth_bins=HM)
    cam = codec.input_to_camera(
        batch["joints_img"].double(), batch["inv_trans"], batch["abs_root_depth"], batch["focal"], batch["princpt"]
    )
    gt = batch["joints_cam"].double()
    annotated = batch["joint_annotated"] > 0
    ratio = (gt[..., 2] + DELTA) / gt[..., 2]
    torch.testing.assert_close(cam[annotated], (gt * ratio[..., None])[annotated], atol=0.02, rtol=1e-5)
    metric = PoseErrorMetrics()
    metric.update(cam, gt, batch["joint_annotated"])
    expected = []
    for sample_id in rootnet_dm.test_set.sample_ids:
        s = samples[sample_id]
        duv = (s["uv"] - s["uv"][0]) / np.diag(s["K"])[:2]
        expected.append(DELTA * np.linalg.norm(duv, axis=1))
    assert float(metric.compute()["epe_mm"]) == pytest.approx(np.mean(expected), abs=0.01)


def test_rhd_train_and_validation_never_use_the_file(rhd_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, samples = rhd_tree
    path = write_rootnet(tmp_path / "rootnet_rhd_output.json", rhd_rootnet_entries(samples))
    dm = _rhd_module(root, rootnet_output=str(path), augmentation={"enabled": False})
    dm.setup("fit")  # the fit stage reads and checks the file (the test split) before the first step
    assert dm.train_set.rootnet is None and dm.val_set.rootnet is None and dm.test_positions().tolist() == [0, 1, 2]
    for dataset in (dm.train_set, dm.val_set):
        for i in range(len(dataset)):
            item = dataset[i]
            record = dataset.records[i]
            wrist = record.xyz[hand_slice(record.hand)][0, 2]
            np.testing.assert_allclose(item["abs_root_depth"].numpy(), [wrist, wrist], rtol=1e-6)
    dm.setup("test")
    assert dm.test_set.rootnet is not None and len(dm.test_set.rootnet) == 3
    plain = RHDDataset(root, "evaluation", input_size=S)  # a Dataset without RootNet: ground truth
    assert plain.rootnet is None and plain.rootnet_entry(0) is None


def test_rhd_missing_extra_and_foreign_entries_stop_setup(rhd_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, samples = rhd_tree
    entries = rhd_rootnet_entries(samples)
    missing = write_rootnet(tmp_path / "missing.json", [e for e in entries if e["annot_id"] != 1111])
    with pytest.raises(
        RootNetError,
        match=r"missing\.json: no entry for 1 of the 3 samples of RHD evaluation .*"
        r"annot_id 1111\)",
    ) as info:
        _rhd_module(root, rootnet_output=str(missing)).setup("fit")  # before any training step
    assert "docs/datasets/rootnet.md" in str(info.value)
    extra = write_rootnet(tmp_path / "extra.json", [*entries, {**entries[0], "annot_id": 5}])
    with pytest.raises(RootNetError, match=r"extra\.json: 4 entries for the 3 samples .* annot_id 5 name"):
        _rhd_module(root, rootnet_output=str(extra)).setup("test")
    # an entry whose box is elsewhere (another sample's, or around the other hand): a bad sample
    moved = [dict(e) for e in entries]
    moved[0]["bbox"] = (np.asarray(entries[0]["bbox"]) + [150.0, 150.0, 0.0, 0.0]).tolist()
    foreign = write_rootnet(tmp_path / "foreign.json", moved)
    with pytest.raises(
        DatasetLayoutError,
        match=r"00111\.png \(sample 111\): RootNet box .* \(annot_id 111 in .*"
        r"foreign\.json\) does not contain the scored \(left\) hand",
    ):
        _rhd_module(root, rootnet_output=str(foreign)).setup("test")
    lenient = _rhd_module(root, rootnet_output=str(foreign), on_bad_sample="skip")
    lenient.setup("test")
    assert lenient.test_set.sample_ids == [1111, 11111] and lenient.skipped_test_samples == 1
    np.testing.assert_allclose(lenient.test_set.rootnet.bbox, [entries[1]["bbox"], entries[2]["bbox"]])


# ------------------------------------------------------------------------------------------------ STB


def test_stb_boxes_and_depths_follow_the_frame_positions(stb_tree: Path, tmp_path: Path) -> None:
    entries = []
    frames = [(s, i) for s, n in enumerate(list(STB_SEQUENCES.values())[:2]) for i in range(n)]
    for position, (s, i) in enumerate(frames):
        hand = stb_hand(s, i)
        box = process_bbox(bbox_from_joints(stb_pixels(hand))) + np.array([1.0, 1.0, 4.0, 4.0])
        entries.append({"annot_id": position, "bbox": box.tolist(), "abs_depth": hand[0, 2] + DELTA})
    path = write_rootnet(tmp_path / "rootnet_stb_output.json", entries[::-1])
    dm = _stb_module(stb_tree, rootnet_output=str(path))
    dm.setup("fit")
    assert dm.train_set.rootnet is None
    dm.setup("test")
    assert dm.test_set.sample_ids == [("B1Counting", 0), ("B1Counting", 1), *[("B1Random", i) for i in range(3)]]
    batch = _batch(dm.test_set)
    for position, entry in enumerate(entries):
        np.testing.assert_allclose(batch["inv_trans"][position].double(), official_inv_trans(entry["bbox"]), atol=1e-3)
        np.testing.assert_allclose(batch["abs_root_depth"][position].numpy(), [entry["abs_depth"]] * 2, rtol=1e-6)
        # wrist_rule=palm: the root is STB's palm centre, whose depth the RootNet file holds (+ Δ here)
        np.testing.assert_allclose(batch["joints_cam"][position, hand_slice(LEFT)][0, 2], entry["abs_depth"] - DELTA)
    limited = _stb_module(stb_tree, rootnet_output=str(path), limit_eval_samples=2)
    limited.setup("test")  # a limit keeps the first frames, with their own entries
    np.testing.assert_allclose(limited.test_set.rootnet.bbox, [entries[0]["bbox"], entries[1]["bbox"]])
    short = write_rootnet(tmp_path / "short.json", entries[:4])
    with pytest.raises(RootNetError, match=r"short\.json: no entry for 1 of the 5 frames of STB test .*annot_id 4\)"):
        _stb_module(stb_tree, rootnet_output=str(short)).setup("test")


def test_stb_needs_internets_view_and_split(stb_tree: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / "rootnet_stb_output.json")
    with pytest.raises(ValueError, match="needs data.camera=bb_left, got 'sk'"):
        _stb_module(stb_tree, rootnet_output=path, camera="sk")
    with pytest.raises(ValueError, match=r"standard test sequences \['B1Counting', 'B1Random'\], got \['B1Random'\]"):
        _stb_module(stb_tree, rootnet_output=path, test_sequences=["B1Random"])
    with caplog.at_level(logging.WARNING, logger="internet_plus.data.stb"):
        _stb_module(stb_tree, rootnet_output=path, wrist_rule="ring_mcp")
    assert "data.wrist_rule=ring_mcp" in caplog.text and "palm" in caplog.text
    _stb_module(stb_tree, camera="sk", test_sequences=["B1Random"])  # without a RootNet file: anything goes


# ------------------------------------------------------------------------------------------------ InterHand2.6M


def test_interhand_boxes_depths_and_training_split(ih_tree: Path, tmp_path: Path) -> None:
    gt_dm = _ih_module(ih_tree, tmp_path / "cache")
    entries = ih_rootnet_entries(gt_dm)
    kinds = {gt_dm.test_set.record(i).interacting for i in range(len(gt_dm.test_set))}
    assert kinds == {True, False}  # single-hand and interacting samples
    path = write_rootnet(tmp_path / "rootnet_interhand2.6m_output_test.json", entries)
    dm = _ih_module(
        ih_tree, tmp_path / "cache", rootnet_output=str(path), val_fraction=0.3, augmentation={"enabled": False}
    )
    dm.setup("fit")
    assert dm.train_set.rootnet is None and dm.val_set.rootnet is None
    item = dm.train_set[0]
    record = dm.train_set.record(0)
    np.testing.assert_allclose(item["abs_root_depth"].numpy(), record.joints_cam[[0, 21], 2], rtol=1e-6)
    dm.setup("test")
    by_id = {e["annot_id"]: e for e in entries}
    batch, gt_batch = _batch(dm.test_set), _batch(gt_dm.test_set)
    for i, annot_id in enumerate(dm.test_set.annot_ids):
        np.testing.assert_allclose(
            batch["inv_trans"][i].double(), official_inv_trans(by_id[annot_id]["bbox"]), atol=2e-3
        )
        np.testing.assert_allclose(batch["abs_root_depth"][i].numpy(), by_id[annot_id]["abs_depth"], rtol=1e-6)
    for key in ("joints_cam", "joint_annotated", "hand_type", "hand_type_valid"):
        torch.testing.assert_close(batch[key], gt_batch[key])
    # (b) each hand decoded at its own RootNet depth: right joints ×(Z + 25)/Z, left ×(Z − 40)/Z
    codec = HeatmapCodec(input_size=S, heatmap_size=HM, depth_bins=HM)
    cam = codec.input_to_camera(
        batch["joints_img"].double(), batch["inv_trans"], batch["abs_root_depth"], batch["focal"], batch["princpt"]
    )
    gt = batch["joints_cam"].double()
    shift = torch.tensor([DELTA] * 21 + [-40.0] * 21, dtype=torch.float64)
    annotated = batch["joint_annotated"] > 0
    torch.testing.assert_close(
        cam[annotated], (gt * ((gt[..., 2] + shift) / gt[..., 2])[..., None])[annotated], atol=0.02, rtol=1e-5
    )


def test_interhand_missing_ids_and_foreign_boxes(ih_tree: Path, tmp_path: Path) -> None:
    entries = ih_rootnet_entries(_ih_module(ih_tree, tmp_path / "cache"))
    gone = entries[3]["annot_id"]
    path = write_rootnet(tmp_path / "rootnet_interhand2.6m_output_val.json", entries[:3] + entries[4:])
    with pytest.raises(
        RootNetError,
        match=rf"output_val\.json: no entry for 1 of the 12 annotations of InterHand2\.6M "
        rf"test .* \(annot_id {gone}\)",
    ):
        _ih_module(ih_tree, tmp_path / "cache", rootnet_output=str(path)).setup("fit")
    extra = write_rootnet(tmp_path / "more.json", [*entries, {**entries[0], "annot_id": 99}])
    _ih_module(ih_tree, tmp_path / "cache", rootnet_output=str(extra)).setup("test")  # other annotations: fine
    moved = [dict(e) for e in entries]
    moved[1]["bbox"] = [5000.0, 5000.0, 100.0, 100.0]
    foreign = write_rootnet(tmp_path / "foreign.json", moved)
    with pytest.raises(
        DatasetLayoutError,
        match=rf"\(annotation {entries[1]['annot_id']}\): RootNet box "
        r"\[5000.0, 5000.0, 100.0, 100.0\] .* does not contain the centre of the annotation box",
    ):
        _ih_module(ih_tree, tmp_path / "cache", rootnet_output=str(foreign)).setup("test")
    interacting = next(e for e in entries if e["abs_depth"][1] != 1000.0 and e["abs_depth"][0] != 1000.0)
    negative = [dict(e) for e in entries]
    negative[entries.index(interacting)]["abs_depth"] = [interacting["abs_depth"][0], -3.0]
    path = write_rootnet(tmp_path / "negative.json", negative)
    with pytest.raises(
        RootNetError,
        match=rf"abs_depth must be positive .*annot_id {interacting['annot_id']} of the 12 annotations .* has",
    ):
        _ih_module(ih_tree, tmp_path / "cache", rootnet_output=str(path)).setup("test")


# ------------------------------------------------------------------------------------------------ (c) Trainer.test


def _test_with_known_network(
    dm, predict: Callable[[dict[str, torch.Tensor]], tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> dict[str, Any]:
    """``Trainer.test`` of a tiny module whose network outputs, for each batch, one-hot heatmaps at ``predict``'s
    voxels, its root-depth bins and hand logits (so the test step, decoding and metrics run as in eval.py)."""
    module = HandPoseModule(
        backbone={"_target_": "internet_plus.models.backbones.resnet.ResNet50Backbone"},
        posenet={"deconv_channels": 8, "mlp_hidden": 8, "depth_bins": HM, "root_depth_bins": HM},
        codec={"input_size": S, "heatmap_size": HM, "depth_bins": HM, "root_depth_bins": HM},
    )
    state: dict[str, dict[str, torch.Tensor]] = {}
    original = module.test_step

    def test_step(batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        state["batch"] = batch
        return original(batch, batch_idx)

    def forward(images: torch.Tensor) -> dict[str, torch.Tensor]:
        vox, root_bins, hand_logits = predict(state["batch"])
        b = images.shape[0]
        heatmaps = torch.zeros(b, NUM_JOINTS, HM, HM, HM)
        bi, ji = np.meshgrid(np.arange(b), np.arange(NUM_JOINTS), indexing="ij")
        heatmaps[bi, ji, vox[..., 2], vox[..., 1], vox[..., 0]] = 1.0
        return {
            "heatmaps": heatmaps,
            "root_logits": torch.zeros(b, HM),
            "root_bins": torch.as_tensor(root_bins, dtype=torch.float32),
            "hand_logits": torch.as_tensor(hand_logits, dtype=torch.float32),
        }

    module.test_step = test_step  # type: ignore[method-assign]
    module.forward = forward  # type: ignore[method-assign]
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(module, datamodule=dm, verbose=False)
    return module.test_results


def _offsets(batch: dict[str, torch.Tensor]) -> np.ndarray:
    """A fixed, sample-dependent ±1 voxel error on each joint (so that errors are not all zero)."""
    rng = np.random.default_rng(int(batch["index"][0]))
    return rng.integers(-1, 2, size=(len(batch["index"]), NUM_JOINTS, 3))


def test_rhd_epe_in_rootnet_mode_is_internets(rhd_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, samples = rhd_tree
    entries = rhd_rootnet_entries(samples)
    path = write_rootnet(tmp_path / "rootnet_rhd_output.json", entries)
    predictions: dict[int, np.ndarray] = {}

    def predict(batch):
        vox = _perfect_voxels(batch, _offsets(batch))
        for k, index in enumerate(batch["index"].tolist()):
            predictions[index] = vox[k]
        return vox, np.full(len(vox), HM / 2), np.where(batch["hand_type"].numpy() > 0, 3.0, -3.0)

    dm = _rhd_module(root, rootnet_output=str(path))
    results = _test_with_known_network(dm, predict)
    # InterNet's RHD evaluate (internet §5.4) on the raw files: the RootNet box as is, the scalar abs_depth added to
    # all 42 depths, root alignment, the GT hand's 21 joints, the mean of the per-joint means
    by_id = {e["annot_id"]: e for e in entries}
    per_joint: list[list[float]] = [[] for _ in range(21)]
    for index, sample_id in enumerate(sorted(samples)):
        s, entry = samples[sample_id], by_id[sample_id]
        focal, princpt = np.diag(s["K"])[:2], s["K"][:2, 2]
        pred = official_decode(
            predictions[index], official_inv_trans(entry["bbox"]), entry["abs_depth"], focal, princpt
        )
        gt = np.zeros((42, 3))
        gt[hand_slice(s["hand"])] = np.asarray(dm.test_set.records[index].xyz)[hand_slice(s["hand"])]
        err = np.linalg.norm(root_aligned(pred) - root_aligned(gt), axis=1)[hand_slice(s["hand"])]
        for j in range(21):
            per_joint[j].append(err[j])
    official = float(np.mean([np.mean(e) for e in per_joint]))
    # every sample scores all 21 joints, so the pooled epe_mm equals InterNet's mean of per-joint means
    assert results["test/epe_mm"] == pytest.approx(official, rel=1e-5)
    assert results["test/handedness_acc"] == 1.0


def test_interhand_mpjpe_and_mrrpe_in_rootnet_mode_are_internets(ih_tree: Path, tmp_path: Path) -> None:
    entries = ih_rootnet_entries(_ih_module(ih_tree, tmp_path / "cache"))
    path = write_rootnet(tmp_path / "rootnet_interhand2.6m_output_test.json", entries)
    predictions: dict[int, tuple[np.ndarray, float]] = {}
    root_bin = {}

    def predict(batch):
        vox = _perfect_voxels(batch, _offsets(batch))
        bins = 7.0 + (batch["index"].numpy() % 3)  # left − right = (bins/16·2 − 1)·200: −25, 0, +25 mm
        for k, index in enumerate(batch["index"].tolist()):
            predictions[index] = vox[k]
            root_bin[index] = float(bins[k])
        return vox, bins, np.where(batch["hand_type"].numpy() > 0, 3.0, -3.0)

    dm = _ih_module(ih_tree, tmp_path / "cache", rootnet_output=str(path))
    results = _test_with_known_network(dm, predict)
    # InterNet's InterHand2.6M evaluate (internet §5.2, §5.3) on the raw RootNet file and the ground truth
    by_id = {e["annot_id"]: e for e in entries}
    single: list[list[float]] = [[] for _ in range(42)]
    inter: list[list[float]] = [[] for _ in range(42)]
    mrrpe: list[float] = []  # InterNet's: the RIGHT RootNet depth places both wrists
    mrrpe_left: list[float] = []  # what the left RootNet depth would give (not InterNet's)
    for index, annot_id in enumerate(dm.test_set.annot_ids):
        record, entry = dm.test_set.record(index), by_id[int(annot_id)]
        right_depth, left_depth = entry["abs_depth"]
        inv = official_inv_trans(entry["bbox"])
        depth = np.array([right_depth] * 21 + [left_depth] * 21)
        pred = official_decode(predictions[index], inv, depth, record.focal, record.princpt)
        gt, valid = record.joints_cam, record.joint_annotated > 0
        err = np.linalg.norm(root_aligned(pred) - root_aligned(gt), axis=1)
        lists = inter if record.interacting else single
        for j in np.flatnonzero(valid):
            lists[j].append(err[j])
        if record.interacting and valid[0] and valid[21]:
            rel_root = (root_bin[index] / HM * 2 - 1) * 200.0
            for depths, out in (((right_depth, right_depth), mrrpe), ((right_depth, left_depth), mrrpe_left)):
                roots_img = np.array(predictions[index][[0, 21]], dtype=np.float64)
                roots_img[:, :2] = roots_img[:, :2] / HM * S @ inv[:, :2].T + inv[:, 2]
                z_rel = (roots_img[:, 2] / HM * 2 - 1) * 200.0
                roots_img[:, 2] = [depths[0] + z_rel[0], depths[1] + z_rel[1] + rel_root]
                roots = pixel2cam(roots_img, record.focal, record.princpt)
                out.append(np.linalg.norm((roots[1] - roots[0]) - (gt[21] - gt[0])))
    mean_of_means = lambda lists: float(np.mean([np.mean(e) for e in lists if e]))  # noqa: E731
    both = [a + b for a, b in zip(single, inter, strict=True)]
    assert mrrpe, "the fake test split holds interacting samples"
    assert results["test/mpjpe_single_mm"] == pytest.approx(mean_of_means(single), rel=1e-5)
    assert results["test/mpjpe_interacting_mm"] == pytest.approx(mean_of_means(inter), rel=1e-5)
    assert results["test/mpjpe_all_mm"] == pytest.approx(mean_of_means(both), rel=1e-5)
    assert results["test/mrrpe_mm"] == pytest.approx(float(np.mean(mrrpe)), rel=1e-5)
    # the file's left depths are off by another amount than the right ones: using them would change MRRPE
    assert abs(float(np.mean(mrrpe_left)) - results["test/mrrpe_mm"]) > 10.0


def test_the_depth_effect_tool(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m internet_plus.tools.rootnet_effect`` (docs/datasets/rootnet.md): a RootNet file with the
    ground-truth depth scores as the ground-truth mode, and ±Δ cost the same without quantisation."""
    from internet_plus.tools.rootnet_effect import main

    main(["--num", "6", "--delta", "25"])
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in capsys.readouterr().out.splitlines()]
    rows = [[float(v) for v in row[1:]] for row in cells if row[0].startswith(("ground truth", "RootNet file"))]
    gt, zero, plus, minus = rows  # columns: EPE, median, AUC (quantised), EPE, median (exact)
    assert gt == zero and gt[3] == 0.0 and plus[3] == minus[3] > 0.0 and plus[0] > gt[0]
