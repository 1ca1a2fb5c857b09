"""Hand detection for ``predict.py boxes=auto``: the environment, MediaPipe on the real RHD photos, the box rule on
constructed detections, the One-Euro filter against its equations, and the box choice of ``predict_inputs``."""

from __future__ import annotations

import importlib.metadata
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import CONF_DIR
from omegaconf import OmegaConf

from internet_plus.data.transforms import process_bbox
from internet_plus.detect.boxes import BoxRule, are_interacting, box_gap, box_iou, choose_box, grow, union
from internet_plus.detect.mediapipe_hands import HandDetection
from internet_plus.detect.one_euro import OneEuroFilter, smoothing_factor
from internet_plus.detect.tracking import AutoBox, AutoBoxes, JointSmoother
from internet_plus.tasks.predict_inputs import Frame, PredictError, box_mode, frame_box, load_boxes, uses_detector

OPENCV_DISTRIBUTIONS = {
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
}


def _detect_defaults() -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "predict.yaml").detect)


def _rhd(real_samples: Path) -> list[tuple[np.ndarray, dict]]:
    """The three real RHD photos (RGB) with their annotation (``bbox``, ``hand_type``)."""
    data = json.loads((real_samples / "rhd" / "test_rhd.json").read_text())
    names = {image["id"]: image["file_name"] for image in data["images"]}
    out = []
    for ann in data["annotations"]:
        image = cv2.cvtColor(cv2.imread(str(real_samples / "rhd" / names[ann["image_id"]])), cv2.COLOR_BGR2RGB)
        out.append((image, ann))
    return out


# ------------------------------------------------------------------------------------------ environment


def test_mediapipe_and_exactly_one_cv2_are_installed() -> None:
    from internet_plus.detect.mediapipe_hands import MEDIAPIPE_VERSION, import_mediapipe

    hands = import_mediapipe()
    assert hasattr(hands, "Hands")
    assert importlib.metadata.version("mediapipe") == MEDIAPIPE_VERSION
    providers = set()
    for dist in importlib.metadata.distributions():
        top_level = (dist.read_text("top_level.txt") or "").split()
        files = {str(f).split("/")[0] for f in dist.files or ()}
        if "cv2" in top_level or "cv2" in files:
            providers.add(dist.metadata["Name"].lower())
    assert len(providers) == 1, f"more than one distribution provides cv2: {sorted(providers)}"
    assert providers <= OPENCV_DISTRIBUTIONS
    assert cv2.__file__ and callable(cv2.VideoWriter)


# ------------------------------------------------------------------------------------------ MediaPipe on RHD


def test_auto_boxes_match_the_annotated_rhd_hands(real_samples: Path) -> None:
    """The detected box overlaps the annotated box, handedness agrees, and the configured margin is the one of
    0, 0.05, ..., 0.3 with the largest mean IoU (the measurement docs/detection.md reports)."""
    defaults = _detect_defaults()
    rule = BoxRule(defaults["margin"], defaults["interaction_gap"])
    samples = _rhd(real_samples)
    extents = []
    with AutoBoxes(rule, video=False) as auto:
        assert auto.no_hand_message == "no hand detected (MediaPipe, min_detection_confidence=0.3)"
        for image, ann in samples:
            found = auto(image)
            assert found.box is not None and found.state == "detected" and len(found.in_box) == 1
            hand = found.detections[found.in_box[0]]
            assert hand.handedness == ann["hand_type"]
            assert box_iou(found.box, ann["bbox"]) >= 0.3
            assert found.box == pytest.approx(grow(hand.extent(), rule.margin))
            extents.append((hand.extent(), ann["bbox"]))
    margins = [round(0.05 * k, 2) for k in range(7)]
    raw = [np.mean([box_iou(grow(e, m), a) for e, a in extents]) for m in margins]
    processed = [np.mean([box_iou(process_bbox(grow(e, m)), process_bbox(a)) for e, a in extents]) for m in margins]
    for m, r, p in zip(margins, raw, processed, strict=True):
        print(f"margin {m:.2f}: mean IoU {r:.3f} (boxes), {p:.3f} (after process_bbox)")
    assert margins[int(np.argmax(raw))] == rule.margin
    assert min(box_iou(grow(e, rule.margin), a) for e, a in extents) > 0.75


def test_no_hand_in_a_blank_or_noise_image() -> None:
    blank = np.full((320, 320, 3), 128, np.uint8)
    noise = np.random.default_rng(0).integers(0, 255, (320, 320, 3), dtype=np.uint8)
    with AutoBoxes(BoxRule(), video=False) as auto:
        for image in (blank, noise):
            found = auto(image)
            assert found.box is None and found.detections == [] and found.record()["detected_hands"] == []


# ------------------------------------------------------------------------------------------ the box rule


def _hand(x: float, y: float, size: float, score: float, side: str = "right") -> HandDetection:
    """A constructed detection whose 21 landmarks span the square [x, x + size] × [y, y + size]."""
    t = np.linspace(0.0, 1.0, 21)
    landmarks = np.stack([x + size * t, y + size * t[::-1]], axis=1)
    return HandDetection(landmarks_px=landmarks, world_mm=np.zeros((21, 3)), handedness=side, score=score)


def test_box_geometry() -> None:
    assert box_gap([0, 0, 10, 10], [13, 14, 5, 5]) == pytest.approx(5.0)  # 3-4-5 between the corners
    assert box_gap([0, 0, 10, 10], [5, 5, 10, 10]) == 0.0 and box_gap([0, 0, 10, 10], [10, 0, 5, 5]) == 0.0
    assert box_gap([0, 0, 10, 10], [0, 30, 10, 10]) == pytest.approx(20.0)
    assert union([0, 0, 10, 10], [20, 5, 10, 10]) == [0.0, 0.0, 30.0, 15.0]
    assert grow([10, 20, 100, 50], 0.2) == pytest.approx([-10.0, 10.0, 140.0, 70.0])
    assert box_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [20, 20, 1, 1]) == 0.0
    with pytest.raises(ValueError, match=r"detect\.margin=-0\.1"):
        BoxRule(margin=-0.1)


def test_two_close_hands_share_one_box_and_distant_hands_do_not() -> None:
    rule = BoxRule(margin=0.1, interaction_gap=0.5)
    a, touching = _hand(100, 100, 50, 0.9), _hand(140, 110, 50, 0.8, "left")  # overlapping landmark boxes
    box, held = choose_box([a, touching], rule)
    assert held == (0, 1) and box == pytest.approx(grow(union(a.extent(), touching.extent()), 0.1))

    near = _hand(170, 100, 40, 0.8, "left")  # 20 px apart, the smaller hand is 40 px: 20 <= 0.5 × 40
    assert are_interacting(a.extent(), near.extent(), 0.5) and choose_box([a, near], rule)[1] == (0, 1)
    assert choose_box([a, near], BoxRule(0.1, interaction_gap=0.0))[1] == (0,)  # 0: only overlapping hands join

    far = _hand(171, 100, 40, 0.8, "left")  # 21 px > 20 px: not interacting, the most confident hand alone
    box, held = choose_box([a, far], rule)
    assert held == (0,) and box == pytest.approx(grow(a.extent(), 0.1))
    assert choose_box([far, a], rule)[1] == (0,)  # the first (most confident) one, whatever its place

    # in a video, the hand overlapping the previous frame's box wins over the more confident one
    assert choose_box([a, far], rule, previous=[165, 95, 40, 40])[1] == (1,)
    assert choose_box([a, far], rule, previous=[400, 400, 10, 10])[1] == (0,)  # overlapping neither: most confident
    assert choose_box([], rule) is None


# ------------------------------------------------------------------------------------------ One-Euro filter


def test_one_euro_follows_its_equations() -> None:
    assert smoothing_factor(1.0, 0.1) == pytest.approx(1.0 / (1.0 + 1.0 / (2.0 * math.pi * 1.0) / 0.1))

    constant = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    for k in range(20):
        np.testing.assert_array_equal(constant(np.full((42, 2), 7.5), k / 30.0), np.full((42, 2), 7.5))

    # a step 0 -> 10 at t = 0.1 s: the speed estimate is alpha_d · (10 - 0) / T, the cutoff min_cutoff + beta·|speed|
    period, min_cutoff, beta, d_cutoff = 0.1, 1.0, 0.05, 2.0
    for b in (0.0, beta):
        step = OneEuroFilter(min_cutoff, b, d_cutoff)
        step(np.zeros(3), 0.0)
        speed = smoothing_factor(d_cutoff, period) * 10.0 / period
        alpha = smoothing_factor(min_cutoff + b * speed, period)
        np.testing.assert_allclose(step(np.full(3, 10.0), period), alpha * 10.0 + (1.0 - alpha) * 0.0)

    # beta raises the cutoff with speed: on a ramp, the lag behind the input shrinks as beta grows
    lags = []
    for b in (0.0, 0.01, 0.1):
        ramp = OneEuroFilter(1.0, b, 1.0)
        out = [ramp(np.array([100.0 * t]), t)[0] for t in np.arange(30) / 30.0]
        lags.append(100.0 * 29 / 30.0 - out[-1])
    assert lags[0] > lags[1] > lags[2] > 0.0

    # a scalar transcription of the recursion gives the same values on a noisy signal
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.02, 0.05, 40))
    signal = rng.normal(size=(40, 4)).cumsum(axis=0)
    vector = OneEuroFilter(0.7, 0.3, 1.5)
    got = np.stack([vector(x, t) for x, t in zip(signal, times, strict=True)])
    for j in range(4):
        x_hat, dx_hat = signal[0, j], 0.0
        assert got[0, j] == x_hat
        for i in range(1, 40):
            te = times[i] - times[i - 1]
            dx_hat = smoothing_factor(1.5, te) * (signal[i, j] - x_hat) / te + (1 - smoothing_factor(1.5, te)) * dx_hat
            a = smoothing_factor(0.7 + 0.3 * abs(dx_hat), te)
            x_hat = a * signal[i, j] + (1 - a) * x_hat
            assert got[i, j] == pytest.approx(x_hat, rel=1e-12)


def test_one_euro_refuses_bad_settings_and_times() -> None:
    with pytest.raises(ValueError, match="min_cutoff=0"):
        OneEuroFilter(min_cutoff=0)
    with pytest.raises(ValueError, match="beta=-1"):
        OneEuroFilter(beta=-1)
    f = OneEuroFilter()
    f(np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="not after the previous"):
        f(np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(3), 2.0)
    f.reset()
    np.testing.assert_array_equal(f(np.ones(3), 0.5), np.ones(3))


def test_the_smoother_restarts_on_a_new_track_and_after_a_gap() -> None:
    smoother = JointSmoother(1.0, 0.0, 1.0)
    first = smoother({"j": np.zeros(2)}, 0, 0.0, restart=True)["j"]
    moved = smoother({"j": np.ones(2)}, 1, 0.1, restart=False)["j"]
    assert (first == 0).all() and (moved > 0).all() and (moved < 1).all()
    np.testing.assert_array_equal(smoother({"j": np.full(2, 5.0)}, 3, 0.3, restart=False)["j"], 5.0)  # frame 2 gap
    np.testing.assert_array_equal(smoother({"j": np.full(2, 9.0)}, 4, 0.4, restart=True)["j"], 9.0)  # new track


# ------------------------------------------------------------------------------------------ predict's box choice


def _frame(width: int = 64, height: int = 48) -> Frame:
    return Frame(name="a", source="a.png", keys=("a.png", "a"), image=np.zeros((height, width, 3), np.uint8))


class _FakeDetector:
    no_hand_message = "no hand detected (fake)"

    def __init__(self, box: list[float] | None) -> None:
        self.box, self.calls = box, 0

    def __call__(self, image: np.ndarray) -> AutoBox:
        self.calls += 1
        return AutoBox(self.box, [], (0,) if self.box else (), "detected")


def test_boxes_auto_is_the_default_and_null_means_auto(tmp_path: Path) -> None:
    assert OmegaConf.load(CONF_DIR / "predict.yaml").boxes == "auto"
    assert box_mode(None) == box_mode("auto") == "auto" and box_mode("whole_image") == "whole_image"
    assert box_mode("boxes.json") == box_mode("./auto") == "file"
    assert load_boxes(None) == load_boxes("auto") == load_boxes("whole_image") == {}
    cfg = OmegaConf.create({"boxes": None})
    assert uses_detector(cfg) and not uses_detector(OmegaConf.create({"boxes": "whole_image"}))
    assert uses_detector(OmegaConf.create({"boxes": "b.json", "boxes_missing": "auto"}))

    detect = _FakeDetector([10.0, 5.0, 20.0, 30.0])
    choice = frame_box(_frame(), {}, cfg, detect)
    assert (choice.box, choice.source, choice.record["detection"]) == ([10.0, 5.0, 20.0, 30.0], "auto", "detected")
    with pytest.raises(PredictError, match=r"no hand detected \(fake\)"):
        frame_box(_frame(), {}, cfg, _FakeDetector(None))
    with pytest.raises(PredictError, match="needs a hand detector"):
        frame_box(_frame(), {}, cfg)

    whole = frame_box(_frame(), {}, OmegaConf.create({"boxes": "whole_image"}), detect)
    assert (whole.box, whole.source, detect.calls) == ([0.0, 0.0, 64.0, 48.0], "whole_image", 1)
    file_cfg = OmegaConf.create({"boxes": "b.json", "boxes_missing": "auto"})
    listed = frame_box(_frame(), {"a.png": [1, 2, 3, 4]}, file_cfg, detect)
    assert (listed.box, listed.source, listed.record, detect.calls) == ([1, 2, 3, 4], "file", {"box_key": "a.png"}, 1)
    assert frame_box(_frame(), {"other.png": [1, 2, 3, 4]}, file_cfg, detect).source == "auto"
    with pytest.raises(PredictError, match="boxes_missing=auto"):
        frame_box(_frame(), {}, OmegaConf.create({"boxes": "b.json"}), detect)
