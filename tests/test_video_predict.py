"""``predict.py`` on a video and a camera: hands tracked from frame to frame and detected again after a frame
without one, joints smoothed by the One-Euro filter, an overlay video with every frame, and cameras (a fake
``cv2.VideoCapture``: no camera is needed)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_predict_export import _predict_cfg

from internet_plus.tasks import predict as predict_task
from internet_plus.tasks import predict_inputs
from internet_plus.tasks.predict_inputs import PredictError

BLANK = 128


def _read_video(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def _write_video(path: Path, images: list[np.ndarray], fps: float = 10.0) -> list[np.ndarray]:
    """Write BGR ``images`` with mp4v; returns the frames as decoded back."""
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for image in images:
        writer.write(image)
    writer.release()
    return _read_video(path)


def test_a_video_is_tracked_detected_again_after_a_loss_and_written_frame_for_frame(
    tiny_ckpt: Path,
    real_samples: Path,
    tmp_path: Path,
) -> None:
    rhd = {n: cv2.imread(str(real_samples / "rhd" / f"{n}.png")) for n in ("00111", "01111", "11111")}
    blank = np.full_like(rhd["00111"], BLANK)
    order = ["00111", "00111", "01111", None, "11111", "11111", "00111"]
    decoded = _write_video(tmp_path / "clip.mp4", [blank if n is None else rhd[n] for n in order])
    assert len(decoded) == len(order)
    out = tmp_path / "out"
    summary = predict_task.run(_predict_cfg(tiny_ckpt, tmp_path, f"input={tmp_path / 'clip.mp4'}", f"out={out}"))

    names = [f"clip_{k:06d}" for k in range(len(order))]
    assert summary["predicted"] == [n for n, o in zip(names, order, strict=True) if o is not None]
    errors = json.loads((out / "errors.json").read_text())
    assert [(e["name"], e["frame"], e["error"]) for e in errors] == [
        ("clip_000003", 3, "no hand detected (MediaPipe, min_detection_confidence=0.3)")
    ]
    records = {k: json.loads((out / f"{names[k]}.json").read_text()) for k in range(len(order)) if order[k]}
    states = {k: r["detection"] for k, r in records.items()}
    assert states == {0: "detected", 1: "tracked", 2: "tracked", 4: "detected", 5: "tracked", 6: "tracked"}
    for k, record in records.items():
        assert record["frame"] == k and record["box_source"] == "auto" and record["smoothed"] is True
        held = [hand for hand in record["detected_hands"] if hand["in_box"]]
        assert held and held[0]["handedness"] == ("right" if order[k] == "11111" else "left")
        assert not (out / f"{names[k]}_overlay.png").exists()  # per-frame images only with video.frame_images

    # One-Euro: a new track starts unsmoothed; a tracked frame moves from the previous output towards its own
    # prediction, part of the way (x̂ = x̂_prev + alpha·(x − x̂_prev), 0 < alpha < 1)
    for k in (0, 4):
        assert records[k]["joints_2d_px"] == records[k]["joints_2d_px_raw"]
    previous = np.asarray(records[1]["joints_2d_px"])
    raw, smoothed = np.asarray(records[2]["joints_2d_px_raw"]), np.asarray(records[2]["joints_2d_px"])
    moved, wanted = smoothed - previous, raw - previous
    big = np.abs(wanted) > 0.5
    assert big.any()
    ratio = moved[big] / wanted[big]
    assert (ratio > 0).all() and (ratio < 1).all()

    # every frame in, every frame out: the blank one unchanged, the others with the overlay drawn
    written = _read_video(out / "clip_overlay.mp4")
    assert len(written) == len(order) == summary["video_frames"]
    assert summary["overlay_video"] == str(out / "clip_overlay.mp4")
    blank_out = written[3].astype(float)
    assert blank_out.reshape(-1, 3).std(axis=0).max() < 1.0  # uniform: nothing drawn
    assert np.abs(blank_out - decoded[3]).mean() < 8.0
    for k in (0, 2, 4):
        assert np.abs(written[k].astype(int) - decoded[k].astype(int)).max() > 100


def test_video_max_frames_and_smoothing_off(tiny_ckpt: Path, real_samples: Path, tmp_path: Path) -> None:
    photo = cv2.imread(str(real_samples / "rhd" / "00111.png"))
    _write_video(tmp_path / "clip.mp4", [photo] * 5)
    out = tmp_path / "out"
    extra = ("video.max_frames=2", "video.smoothing=false", "video.save_video=false", "boxes=whole_image")
    summary = predict_task.run(
        _predict_cfg(tiny_ckpt, tmp_path, f"input={tmp_path / 'clip.mp4'}", f"out={out}", *extra)
    )
    assert summary["predicted"] == ["clip_000000", "clip_000001"] and "overlay_video" not in summary
    record = json.loads((out / "clip_000001.json").read_text())
    assert record["smoothed"] is False and "joints_2d_px_raw" not in record
    assert not list(out.glob("*.mp4"))


class _FakeCamera:
    """``cv2.VideoCapture(index)`` of a camera at index 0 that shows one photo (at most 10 frames); no camera at
    other indices."""

    image: np.ndarray
    released = 0

    def __init__(self, index: int) -> None:
        self.index, self.left = index, 10

    def isOpened(self) -> bool:  # noqa: N802 - cv2's name
        return self.index == 0

    def get(self, prop: int) -> float:
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.left -= 1
        return (True, self.image.copy()) if self.left >= 0 else (False, None)

    def release(self) -> None:
        type(self).released += 1


def test_a_camera_index_as_input(
    tiny_ckpt: Path,
    real_samples: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _FakeCamera.image = cv2.imread(str(real_samples / "rhd" / "11111.png"))
    monkeypatch.setattr(predict_inputs.cv2, "VideoCapture", _FakeCamera)
    monkeypatch.chdir(tmp_path)  # no file named "0" or "3" here
    assert predict_inputs.camera_index(0) == 0 and predict_inputs.camera_index("2") == 2
    assert predict_inputs.camera_index("clip.mp4") is None and predict_inputs.camera_index(-1) is None

    with pytest.raises(PredictError, match=r"input=3: no camera at index 3"):
        predict_task.run(_predict_cfg(tiny_ckpt, tmp_path, "input=3", f"out={tmp_path / 'none'}"))
    assert not (tmp_path / "none").exists()

    out = tmp_path / "out"
    summary = predict_task.run(_predict_cfg(tiny_ckpt, tmp_path, "input=0", f"out={out}", "video.max_frames=3"))
    assert summary["input"] == "camera 0" and summary["predicted"] == [f"camera0_{k:06d}" for k in range(3)]
    records = [json.loads((out / f"camera0_{k:06d}.json").read_text()) for k in range(3)]
    assert [r["detection"] for r in records] == ["detected", "tracked", "tracked"]
    assert all(r["detected_hands"][0]["handedness"] == "right" and r["source"] == "camera 0" for r in records)
    assert _FakeCamera.released >= 1
    monkeypatch.undo()  # the real cv2.VideoCapture reads the overlay video back
    assert len(_read_video(out / "camera0_overlay.mp4")) == 3
