"""``python -m internet_plus.compare``: the metric math on known answers, the labelled photos as read from the real
sample files (in their MMPose layout and as an RHD_published_v2 tree), and the command on the real photos with
MediaPipe Hands and a tiny untrained checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import hydra
import numpy as np
import pytest
import pytorch_lightning as L
import torch
from conftest import REAL_SAMPLES, TINY, compose_config
from fakes.rhd import rhd_annotation, write_rhd_split
from fakes.stb import color_to_sk, sequence_dir, write_frame, write_labels

from internet_plus.compare import cli
from internet_plus.compare.labelled import (
    AnnotatedHand,
    count_hands,
    evenly_spaced,
    read_dataset,
    read_folder,
    read_rhd_coco,
)
from internet_plus.compare.metrics import (
    MEDIAPIPE_TO_PROJECT,
    landmarks_to_hand,
    match_cost,
    match_hands,
    pck,
    point_errors,
    procrustes_errors,
    scale_aligned_errors,
    scale_factor,
)
from internet_plus.compare.report import HandScore, summarize
from internet_plus.compare.systems import OursModel, crop_plans, match_detections
from internet_plus.data.errors import DatasetLayoutError
from internet_plus.detect.mediapipe_hands import LANDMARK_NAMES, LANDMARK_TO_JOINT, HandDetection
from internet_plus.joints import HAND_JOINT_NAMES, JOINT_NAMES, JOINTS_PER_HAND, LEFT, RIGHT, hand_slice

RNG = np.random.default_rng(0)
#: MediaPipe's 2-D EPE on each of the three real RHD photos, measured: 3.7, 5.9 and 4.6 px.
RHD_EPE_BOUND_PX = 8.0


def _hand(seed: int = 0) -> np.ndarray:
    """A 21×3 hand-sized point set (mm), wrist first, not planar."""
    return np.random.default_rng(seed).normal(0.0, 40.0, (JOINTS_PER_HAND, 3)) + np.array([0.0, 0.0, 500.0])


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


# --------------------------------------------------------------------------------------------------- metric math


def test_the_landmark_table_names_every_landmark_and_joint_once() -> None:
    theirs = [a for a, _ in MEDIAPIPE_TO_PROJECT]
    ours = [b for _, b in MEDIAPIPE_TO_PROJECT]
    assert sorted(theirs) == sorted(LANDMARK_NAMES) and sorted(ours) == sorted(HAND_JOINT_NAMES)
    fingers = {"THUMB": "thumb", "INDEX": "index", "MIDDLE": "middle", "RING": "ring", "PINKY": "little"}
    ends = {"CMC": "1", "MCP": "1", "PIP": "2", "DIP": "3", "IP": "3", "TIP": "4"}
    for mediapipe, joint in MEDIAPIPE_TO_PROJECT:
        assert f"r_{joint}" in JOINT_NAMES and f"l_{joint}" in JOINT_NAMES
        if mediapipe == "WRIST":
            assert joint == "wrist"
            continue
        finger, end = mediapipe.split("_")[0], mediapipe.split("_")[-1]
        if finger == "THUMB":  # CMC, MCP, IP, tip: the thumb's four joints base to tip
            assert joint == f"thumb{('CMC', 'MCP', 'IP', 'TIP').index(end) + 1}"
        else:
            assert joint == fingers[finger] + ends[end]
    landmarks = np.arange(JOINTS_PER_HAND * 2, dtype=float).reshape(JOINTS_PER_HAND, 2)
    hand = landmarks_to_hand(landmarks)
    for landmark, joint in enumerate(LANDMARK_TO_JOINT):  # the detector's own table says the same
        np.testing.assert_array_equal(hand[joint], landmarks[landmark])


def test_pck_and_point_errors_on_constructed_points() -> None:
    gt = RNG.integers(0, 300, (4, JOINTS_PER_HAND, 2)).astype(float)  # exact sums: errors of exactly 5 px
    pred = gt + np.array([3.0, 4.0])  # every joint 5 px off
    pred[0, 0] += np.array([6.0, 8.0])  # one joint 15 px off
    errors = point_errors(pred, gt)
    np.testing.assert_allclose(errors[0, 0], 15.0)
    np.testing.assert_allclose(errors.reshape(-1)[1:], 5.0)
    mask = np.ones(errors.shape, bool)
    np.testing.assert_allclose(pck(errors, mask, [4.9, 5.0, 10.0, 15.0]), [0.0, 83 / 84, 83 / 84, 1.0])
    mask[0, 0] = False  # the far joint is not annotated
    np.testing.assert_allclose(pck(errors, mask, [5.0]), [1.0])
    assert np.isnan(pck(errors, np.zeros_like(mask), [5.0])).all()


def test_scale_alignment_recovers_a_scaled_pose_exactly() -> None:
    gt = _hand(1)
    pred = 0.62 * (gt - gt[0]) + np.array([10.0, -20.0, 35.0])  # another origin and scale, same shape
    mask = np.ones(JOINTS_PER_HAND, bool)
    np.testing.assert_allclose(scale_aligned_errors(pred, gt, mask), 0.0, atol=1e-9)
    assert scale_factor(pred - pred[0], gt - gt[0], mask) == pytest.approx(1 / 0.62)
    # a known answer with a wrong joint: s = Σ<p, g> / Σ<p, p>, errors = |s·p − g|
    p, g = np.zeros((JOINTS_PER_HAND, 3)), np.zeros((JOINTS_PER_HAND, 3))
    p[1], g[1] = [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]
    p[2], g[2] = [0.0, 1.0, 0.0], [0.0, 4.0, 0.0]
    assert scale_factor(p, g, mask) == pytest.approx(3.0)
    np.testing.assert_allclose(scale_aligned_errors(p, g, mask)[1:3], [1.0, 1.0])
    masked = mask.copy()
    masked[2] = False  # only joint 1 counts: s = 2, joint 1 exact
    assert scale_factor(p, g, masked) == pytest.approx(2.0)
    assert scale_factor(np.zeros_like(g), g, mask) == 1.0  # nothing to scale: every s gives the same error


def test_procrustes_recovers_a_rotated_scaled_moved_pose_but_not_a_mirrored_one() -> None:
    gt = _hand(2)
    rotation = _rotation(np.array([0.3, -1.0, 0.5]), 0.7)
    pred = 1.7 * gt @ rotation.T + np.array([5.0, 6.0, -7.0])
    mask = np.ones(JOINTS_PER_HAND, bool)
    np.testing.assert_allclose(procrustes_errors(pred, gt, mask), 0.0, atol=1e-9)
    assert scale_aligned_errors(pred, gt, mask).mean() > 5.0  # the scale alone does not undo a rotation
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert procrustes_errors(mirrored, gt, mask).mean() > 1.0  # a reflection is never used
    mask[::2] = False  # unannotated joints may be anything
    garbage = pred.copy()
    garbage[~mask] = 1e4
    np.testing.assert_allclose(procrustes_errors(garbage, gt, mask)[mask], 0.0, atol=1e-8)


def test_matching_assigns_by_total_cost_and_refuses_far_detections() -> None:
    assert match_hands(np.array([[0.1, 0.05], [0.2, 0.9]])) == [1, 0]  # 0.25 in total beats 1.0
    assert match_hands(np.array([[0.7, 0.2]])) == [1]
    assert match_hands(np.array([[0.7], [0.6]])) == [None, None]  # both too far: missed
    assert match_hands(np.zeros((2, 0))) == [None, None]
    uv = RNG.uniform(0, 100, (JOINTS_PER_HAND, 2))
    uv[0], uv[1] = [0.0, 0.0], [30.0, 40.0]  # box diagonal 50 px at least
    diagonal = np.linalg.norm(uv.max(0) - uv.min(0))
    annotated = np.ones(JOINTS_PER_HAND, bool)
    assert match_cost(uv + np.array([6.0, 8.0]), uv, annotated) == pytest.approx(10.0 / diagonal)


def test_summaries_count_misses_in_detection_and_in_the_misses_wrong_pck(real_images: list) -> None:
    images = real_images[-3:]  # the three RHD photos, one hand each
    assert [len(im.hands) for im in images] == [1, 1, 1]
    annotated = np.ones(JOINTS_PER_HAND, bool)

    def found(error: float) -> HandScore:
        e = np.full(JOINTS_PER_HAND, error)
        return HandScore(True, e, e * 2, e, annotated, 1.0, True)

    missed = HandScore(False, *(np.full(JOINTS_PER_HAND, np.nan),) * 3, annotated, float("nan"), None)
    scores = [found(4.0), missed, found(30.0)]
    row = summarize("x", "box", images, scores, [True, False, True], [5.0, 20.0])
    assert (row.hands_annotated, row.detected, row.hands_scored) == (3, 2, 2)
    assert row.detection_rate == pytest.approx(2 / 3)
    assert row.epe_2d_px == pytest.approx(17.0) and row.epe_3d_scale_aligned_mm == pytest.approx(34.0)
    assert row.pck_px == {"5": pytest.approx(0.5), "20": pytest.approx(0.5)}
    assert row.pck_px_misses_wrong == {"5": pytest.approx(1 / 3), "20": pytest.approx(1 / 3)}
    assert row.handedness_agreement == 1.0
    with pytest.raises(ValueError, match="not found"):
        summarize("x", "box", images, scores, [True, True, True], [5.0])


def test_evenly_spaced() -> None:
    assert evenly_spaced(10, 3).tolist() == [0, 4, 9] or evenly_spaced(10, 3).tolist() == [0, 5, 9]
    assert evenly_spaced(5, 0).tolist() == evenly_spaced(5, 9).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="limit"):
        evenly_spaced(5, -1)


# --------------------------------------------------------------------------------------------------- labelled photos


@pytest.fixture(scope="module")
def index_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interhand_index")


@pytest.fixture(scope="module")
def real_images(index_cache: Path) -> list:
    return read_folder(REAL_SAMPLES, cache_dir=index_cache)


def _project(cam: np.ndarray, focal: np.ndarray, princpt: np.ndarray) -> np.ndarray:
    return cam[:, :2] / cam[:, 2:] * focal + princpt


def test_the_real_samples_are_read_in_the_project_order(real_images: list) -> None:
    assert [im.name for im in real_images] == [
        "image69148",
        "image44669",
        "image29590",
        "image2017",
        "00111",
        "01111",
        "11111",
    ]
    assert count_hands(real_images) == 9  # two interacting frames with both hands, five single hands
    for image in real_images:
        assert image.image_path.is_file()
        for hand in image.hands:
            assert hand.annotated[0]
            ok = hand.annotated
            # the 2-D and 3-D annotations agree (the same joint order for both), and the wrist is the root
            np.testing.assert_allclose(_project(hand.cam[ok], image.focal, image.princpt), hand.uv[ok], atol=1.5)
            assert np.linalg.norm(hand.cam[ok] - hand.cam[0], axis=1).max() < 250.0
    rhd = read_rhd_coco(REAL_SAMPLES / "rhd" / "test_rhd.json")
    first = json.loads((REAL_SAMPLES / "rhd" / "test_rhd.json").read_text())["annotations"][0]
    native = np.asarray(first["keypoints"], dtype=float)[:, :2]
    np.testing.assert_allclose(rhd[0].hands[0].uv[[0, 1, 4]], native[[0, 4, 1]])  # wrist; thumb base, tip
    assert rhd[0].hands[0].side == LEFT and rhd[2].hands[0].side == RIGHT


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no labelled photos found"):
        read_folder(tmp_path)
    broken = tmp_path / "test_rhd.json"
    broken.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1}]}))
    with pytest.raises(DatasetLayoutError, match="test_rhd.json"):
        read_folder(tmp_path)
    with pytest.raises(ValueError, match="expected one of rhd, stb, interhand"):
        read_dataset("coco", tmp_path)


def _rhd_tree(root: Path) -> Path:
    """The three real RHD photos as an RHD_published_v2 evaluation split: their hand annotated, the other one far
    off, the mask painting the annotated hand so that it is the dominant one."""
    data = json.loads((REAL_SAMPLES / "rhd" / "test_rhd.json").read_text())
    files = {im["id"]: im for im in data["images"]}
    annotations, colors, masks = {}, {}, {}
    for ann in data["annotations"]:
        image = files[ann["image_id"]]
        own = slice(0, 21) if ann["hand_type"] == "left" else slice(21, 42)
        other = slice(21, 42) if own.start == 0 else slice(0, 21)
        cam = np.asarray(ann["joint_cam"], dtype=float) / 1000.0
        xyz = np.zeros((42, 3))
        xyz[own], xyz[other] = cam, cam + np.array([0.25, 0.1, 0.3])
        (fx, fy), (cx, cy) = image["cam_param"]["focal"], image["cam_param"]["princpt"]
        entry = rhd_annotation(xyz, np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]))
        entry["uv_vis"][own, :2] = np.asarray(ann["keypoints"], dtype=float)[:, :2]
        sample_id = int(Path(image["file_name"]).stem)
        annotations[sample_id] = entry
        colors[sample_id] = REAL_SAMPLES / "rhd" / image["file_name"]
        mask = np.zeros((320, 320), np.uint8)
        for u, v in entry["uv_vis"][own, :2]:
            cv2.circle(mask, (int(u), int(v)), 6, 17 if own.start == 0 else 33, -1)
        masks[sample_id] = mask
    write_rhd_split(root, "evaluation", annotations, colors, masks)
    return root


def test_a_data_set_root_gives_the_same_photos_as_the_annotation_file(tmp_path: Path) -> None:
    root = _rhd_tree(tmp_path / "RHD_published_v2")
    from_root = read_dataset("rhd", root, limit=2)  # 2 of 3, spread evenly: the first and the last
    coco = read_rhd_coco(REAL_SAMPLES / "rhd" / "test_rhd.json")
    assert [im.name for im in from_root] == ["rhd_evaluation_00111", "rhd_evaluation_11111"]
    for a, b in zip(from_root, [coco[0], coco[2]], strict=True):
        assert a.hands[0].side == b.hands[0].side
        np.testing.assert_allclose(a.hands[0].uv, b.hands[0].uv, atol=1e-3)
        np.testing.assert_allclose(a.hands[0].cam, b.hands[0].cam, atol=1e-2)
        np.testing.assert_allclose(a.box, b.box, atol=1e-3)
        np.testing.assert_allclose(a.focal, b.focal)


def test_an_stb_root_gives_left_hands_with_their_tight_boxes(tmp_path: Path) -> None:
    root = tmp_path / "STB"
    hand = RNG.normal(0.0, 30.0, (21, 3)) + np.array([0.0, 0.0, 600.0])  # colour camera frame, mm
    for sequence in ("B1Counting", "B1Random"):  # the test split
        folder = sequence_dir(root, sequence)
        labels = np.stack([color_to_sk(hand + [10.0 * i, 0.0, 0.0]) for i in range(2)], axis=-1)
        write_labels(root, sequence, "SK", labels.transpose(1, 0, 2))
        for i in range(2):
            write_frame(folder, "SK_color", i, np.full((480, 640, 3), 40, np.uint8))
    images = read_dataset("stb", root, limit=3)
    assert [im.name for im in images] == ["stb_B1Counting_0000", "stb_B1Random_0000", "stb_B1Random_0001"]
    for image in images:
        (only,) = image.hands
        assert only.side == LEFT and only.annotated.all()
        np.testing.assert_allclose(_project(only.cam, image.focal, image.princpt), only.uv, atol=1e-6)
        low, high = only.uv.min(0), only.uv.max(0)
        np.testing.assert_allclose(image.box, [*low, *(high - low)])


# --------------------------------------------------------------------------------------------------- the systems


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained TINY model (64-px input) saved as a Lightning checkpoint."""
    tmp = tmp_path_factory.mktemp("compare_ckpt")
    cfg = compose_config("train", list(TINY), tmp / "run")
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model)
    path = tmp / "tiny.ckpt"
    hparams = dict(model.hparams)
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": hparams, "pytorch-lightning_version": L.__version__},
        path,
    )
    return path


def _detection(hand: AnnotatedHand, handedness: str) -> HandDetection:
    """A perfect "detection" of an annotated hand: the annotation in MediaPipe's landmark order."""
    order = np.argsort(landmarks_to_hand(np.arange(JOINTS_PER_HAND)))
    return HandDetection(hand.uv[order], (hand.cam - hand.cam.mean(0))[order], handedness, 0.9)


def test_ours_on_annotated_and_on_detected_boxes(real_images: list, tiny_ckpt: Path) -> None:
    images = real_images[:2] + real_images[-1:]  # two interacting frames, one RHD photo
    ours = OursModel(tiny_ckpt, device="cpu", batch_size=2)
    predictions, outputs = ours.run(images, crop_plans(images, "annotated"))
    assert [[p.found for p in per] for per in predictions] == [[True, True], [True, True], [True]]
    for image, per, out in zip(images, predictions, outputs, strict=True):
        assert out is not None and out.uv.shape == (42, 2) and np.isfinite(out.uv).all()
        for hand, pred in zip(image.hands, per, strict=True):
            np.testing.assert_array_equal(pred.uv, out.uv[hand_slice(hand.side)])
            np.testing.assert_allclose(pred.rel3d[0], 0.0)
        # the crop is process_bbox of the annotation box: square, 1.25 × the longer side, same centre
        x, y, w, h = image.box
        assert out.box_processed[2] == pytest.approx(1.25 * max(w, h))
        assert out.box_processed[0] + out.box_processed[2] / 2 == pytest.approx(x + w / 2)

    # detected boxes: frame 1 both hands found, frame 2 only its left hand, the RHD photo nothing
    detections = [
        [_detection(images[0].hands[0], "right"), _detection(images[0].hands[1], "left")],
        [_detection(images[1].hands[1], "right")],  # a wrong label still matches by position
        [],
    ]
    mediapipe = [match_detections(im, found) for im, found in zip(images, detections, strict=True)]
    assert [[p.found for p in per] for per in mediapipe] == [[True, True], [False, True], [False]]
    assert mediapipe[1][1].handedness_agrees is False and mediapipe[0][0].handedness_agrees is True
    np.testing.assert_allclose(mediapipe[0][1].uv, images[0].hands[1].uv)
    plans = crop_plans(images, "mediapipe", detections, mediapipe)
    assert plans[0].holds == (True, True) and plans[1].holds == (False, True) and plans[2].box is None
    predictions, outputs = ours.run(images, plans)
    assert [[p.found for p in per] for per in predictions] == [[True, True], [False, True], [False]]
    assert outputs[2] is None


def test_the_command_on_the_real_photos(tiny_ckpt: Path, index_cache: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["--input", str(REAL_SAMPLES), "--ckpt", str(tiny_ckpt), "--out", str(out), "--cache-dir", str(index_cache)]
    assert cli.main([*argv, "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "| MediaPipe Hands | its own palm detector | 7 | 9 |" in printed
    assert "| ours | annotated box (evaluation crop) | 7 | 9 | 9 | 100.0 % |" in printed
    result = json.loads((out / "compare.json").read_text())
    mediapipe, ours = result["systems"]
    assert mediapipe["detected"] >= 3 and ours["detection_rate"] == 1.0
    assert mediapipe["hands_scored"] == ours["hands_scored"] == mediapipe["detected"]
    rhd = [h for h in result["hands"] if h["photo"] in ("00111", "01111", "11111")]
    assert all(h["MediaPipe Hands"]["found"] for h in rhd)
    assert all(h["MediaPipe Hands"]["epe_2d_px"] < RHD_EPE_BOUND_PX for h in rhd)
    assert all(h["MediaPipe Hands"]["handedness_agrees"] for h in rhd)
    assert all(h["MediaPipe Hands"]["epe_3d_scale_aligned_mm"] < 50.0 for h in rhd)
    assert all(h["ours"]["found"] and h["ours"]["epe_2d_px"] > 0 for h in result["hands"])
    assert {p.name for p in (out / "montage").iterdir()} == {f"{h['photo']}.png" for h in result["hands"]}
    picture = cv2.imread(str(out / "montage" / "00111.png"))
    assert picture.shape[1] > 3 * 480  # three panels, the 320-px photo enlarged
    report = (out / "compare.md").read_text()
    assert printed.split("\n\n")[0].strip() in report and "montage/00111.png" in report
    assert cli.main(argv) == 2  # nothing is overwritten
    assert "not empty; refusing to overwrite it" in capsys.readouterr().err
    assert cli.main(["--input", str(REAL_SAMPLES), "--ckpt", str(tmp_path / "none.ckpt"), "--out", str(tmp_path / "o")])
    assert "none.ckpt: no such checkpoint file" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_the_command_without_a_checkpoint_on_a_data_set_root(tmp_path: Path, capsys) -> None:
    root = _rhd_tree(tmp_path / "RHD_published_v2")
    out = tmp_path / "out"
    assert cli.main(["--dataset", "rhd", "--root", str(root), "--out", str(out), "--max-montages", "1"]) == 0
    printed = capsys.readouterr().out
    assert "| ours | not run: no --ckpt given (MediaPipe only) |" in printed
    result = json.loads((out / "compare.json").read_text())
    assert result["checkpoint"] is None and len(result["systems"]) == 1
    assert result["systems"][0]["detected"] == 3
    assert all(h["MediaPipe Hands"]["epe_2d_px"] < RHD_EPE_BOUND_PX for h in result["hands"])
    assert [p.name for p in (out / "montage").iterdir()] == ["rhd_evaluation_00111.png"]
    with pytest.raises(SystemExit):
        cli.parse_args(["--dataset", "rhd"])  # no --root
