"""``python predict.py ckpt_path=<file> input=<image, folder or video> [boxes=auto|whole_image|<file.json>]
[out=<dir>]``: 3-D hand pose for images without labels.

Inputs (an image, a folder of images, a video or a camera index), their hand boxes and the assumed intrinsics
(``focal``, ``princpt``, ``root_depth_mm``) are described in :mod:`internet_plus.tasks.predict_inputs`, which reads
and crops them. The boxes: ``boxes=auto`` (the default; ``null`` is the same) finds them with MediaPipe Hands
(:mod:`internet_plus.detect`: one box per image, both hands in it when they are close enough to interact, tracked
through a video), ``boxes=whole_image`` uses the whole image and ``boxes=<file.json>`` reads them; docs/detection.md.
This module runs the network and writes the outputs, drawn by :mod:`internet_plus.visualize`.

Outputs (into ``out=`` when given, which must not exist or be empty, else into the Hydra run directory
``logs/predict/runs/<time>``), per input named ``<name>`` (the file stem, or the frame name):

* ``<name>.json``: the record (:func:`make_record`), keys ``joints_2d_px`` (42×2 pixels of the original image;
  joints in ``joint_names`` order: right hand 0-20, left 21-41), ``joints_3d_rel_mm`` (42×3, each hand relative to
  its own wrist), ``joints_3d_cam_mm`` (42×3 camera frame under the assumed intrinsics and depth), ``joints_crop``
  (42×3, the network's own output: crop pixels and mm relative to the wrist), ``hand_prob`` ``[right, left]``,
  ``hands_present`` / ``drawn_hands``, ``rel_root_depth_mm`` (predicted z(left wrist) − z(right wrist)),
  ``abs_root_depth_mm`` (the wrist depths used, [right, left]), ``box`` (the ``[x, y, w, h]`` used),
  ``box_source`` (``file``, ``auto`` or ``whole_image``), ``box_processed`` (after ``process_bbox``), ``focal``,
  ``princpt``, ``image_size`` ``[W, H]``, ``name``, ``source``, ``frame`` (the video frame index, else null) and
  ``smoothed``; with a boxes file also ``box_key`` (the entry used); with ``boxes=auto`` also ``detection``
  (``"detected"``, or ``"tracked"`` from the previous video frame) and ``detected_hands`` (MediaPipe's handedness,
  score, landmark box and 21 landmarks of each hand it found, and whether the box holds it); for smoothed video
  frames also ``joints_2d_px_raw`` (before the One-Euro filter);
* ``<name>_overlay.png``: the 2-D skeleton(s) and the box over the original image;
* ``<name>_3d.png``: a matplotlib 3-D plot of the skeleton(s) in the camera frame, relative to the wrist of the first
  drawn hand (axes x, z and −y, so that image-up is up).

For a video or a camera the two images are written per frame only with ``video.frame_images=true``; instead
``<video stem>_overlay.mp4`` (``camera<index>_overlay.mp4``) holds every frame read, in order, with the overlay on
the frames that were predicted and unchanged otherwise. The joints of consecutive video frames are smoothed with the
One-Euro filter (``video.smoothing``, :mod:`internet_plus.detect.one_euro`); images never are.

Only the hands whose handedness probability exceeds ``hand_threshold`` (0.5) are drawn; when neither does, both are
(the record's ``drawn_hands`` says which). Inputs that cannot be used (an unreadable image or video frame, a box that
is not four finite numbers, has a non-positive width or height, or lies outside the image, an image or frame in which
no hand is detected) are logged and listed in ``errors.json`` (``[{"name", "source", "frame", "error"}]``) and the
rest is still processed; ``summary.json`` counts both. The task fails (non-zero exit status) only when no input
succeeded. Wrong settings fail before any work: ``boxes=auto`` without mediapipe installed (the message names the
install command and the other ``boxes=`` choices), a camera index with no camera, a malformed boxes file.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig

from internet_plus.accel import accelerate_inference
from internet_plus.checkpoints import load_model, read_checkpoint
from internet_plus.detect.boxes import BoxRule
from internet_plus.detect.tracking import AutoBoxes, JointSmoother
from internet_plus.joints import HAND_NAMES, JOINT_NAMES
from internet_plus.lit_module import HandPoseModule
from internet_plus.metrics.pose import root_relative
from internet_plus.models.inference import optimize_for_inference
from internet_plus.tasks.predict_inputs import (
    BOXES_MISSING,
    VIDEO_EXTENSIONS,
    Frame,
    PredictError,
    Prepared,
    camera_frames,
    camera_index,
    count_frames,
    iter_frames,
    load_boxes,
    open_camera,
    prepare,
    uses_detector,
)
from internet_plus.utils.devices import select_device
from internet_plus.visualize import draw_box, draw_hands, save_3d_plot

__all__ = ["make_record", "run"]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------- network


@torch.no_grad()
def _predict(model: HandPoseModule, items: Sequence[Prepared], root_depth_mm: float) -> list[dict[str, np.ndarray]]:
    """Run the network on a batch of prepared frames and decode it in the original images and the camera frame."""
    device = model.device
    images = torch.from_numpy(np.stack([it.crop for it in items])).to(device)
    outputs = model(images)
    rel_root = model.codec.decode_root_depth(outputs["root_bins"].float().reshape(-1))
    right = torch.full_like(rel_root, float(root_depth_mm))
    batch = {
        "inv_trans": torch.from_numpy(np.stack([it.inv_trans for it in items])).to(device),
        "abs_root_depth": torch.stack([right, right + rel_root], dim=1),
        "focal": torch.tensor([it.focal for it in items], device=device),
        "princpt": torch.tensor([it.princpt for it in items], device=device),
    }
    pred = model.codec.decode(outputs, batch)
    inv = batch["inv_trans"].to(pred["joints_img"].dtype)
    xy = pred["joints_img"][..., :2]
    uv = torch.einsum("bik,bjk->bji", inv[:, :, :2], xy) + inv[:, None, :, 2]
    rel = root_relative(pred["joints_cam"])
    out = []
    for b in range(len(items)):
        out.append(
            {
                "joints_2d": uv[b].double().cpu().numpy(),
                "joints_img": pred["joints_img"][b].double().cpu().numpy(),
                "joints_cam": pred["joints_cam"][b].double().cpu().numpy(),
                "joints_rel": rel[b].double().cpu().numpy(),
                "hand_prob": pred["hand_prob"][b].double().cpu().numpy(),
                "rel_root_depth_mm": float(pred["rel_root_depth_mm"][b]),
                "abs_root_depth": batch["abs_root_depth"][b].double().cpu().numpy(),
            }
        )
    return out


def _drawn_hands(hand_prob: np.ndarray, threshold: float) -> list[int]:
    hands = [h for h in (0, 1) if hand_prob[h] > threshold]
    return hands or [0, 1]


def _round(array: np.ndarray, digits: int = 3) -> list[Any]:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()


def make_record(item: Prepared, pred: dict[str, np.ndarray], cfg: DictConfig) -> dict[str, Any]:
    """The JSON record of one prediction (see the module docstring); ``pred`` holds ``joints_2d_raw`` when its joints
    were smoothed (:class:`internet_plus.detect.tracking.JointSmoother`)."""
    frame = item.frame
    assert frame.image is not None
    height, width = frame.image.shape[:2]
    threshold = float(cfg.get("hand_threshold", 0.5))
    hand_prob = pred["hand_prob"]
    drawn = _drawn_hands(hand_prob, threshold)
    smoothed = "joints_2d_raw" in pred
    return {
        "name": frame.name,
        "source": frame.source,
        "frame": frame.frame,
        "image_size": [int(width), int(height)],
        "box": _round(item.box),
        "box_source": item.box_source,
        **item.box_record,
        "box_processed": _round(item.box_processed),
        "focal": _round(item.focal),
        "princpt": _round(item.princpt),
        "abs_root_depth_mm": _round(pred["abs_root_depth"]),
        "hand_prob": _round(hand_prob, 4),
        "hands_present": [HAND_NAMES[h] for h in (0, 1) if hand_prob[h] > threshold],
        "drawn_hands": [HAND_NAMES[h] for h in drawn],
        "rel_root_depth_mm": round(pred["rel_root_depth_mm"], 3),
        "joint_names": list(JOINT_NAMES),
        "joints_2d_px": _round(pred["joints_2d"]),
        "joints_3d_rel_mm": _round(pred["joints_rel"]),
        "joints_3d_cam_mm": _round(pred["joints_cam"]),
        "joints_crop": _round(pred["joints_img"]),
        "smoothed": smoothed,
        **({"joints_2d_px_raw": _round(pred["joints_2d_raw"])} if smoothed else {}),
    }


# --------------------------------------------------------------------------------------------------- the task


def _output_dir(cfg: DictConfig) -> Path:
    out = cfg.get("out")
    if out is None:
        path = Path(str(cfg.paths.output_dir))
    else:
        path = Path(str(out)).expanduser()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise FileExistsError(
                f"out={path} exists and is not empty; refusing to overwrite it (give a new or empty folder)"
            )
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON: one line per key of a top-level object (or item of a list), values compact."""
    if isinstance(value, dict) and value:
        text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()) + "\n}"
    elif isinstance(value, list) and value:
        text = "[\n" + ",\n".join(f" {json.dumps(v)}" for v in value) + "\n]"
    else:
        text = json.dumps(value)
    path.write_text(text + "\n")


#: ``detect`` keys that configure MediaPipe (:class:`internet_plus.detect.mediapipe_hands.HandDetector`); the others
#: (``margin``, ``interaction_gap``) make the box (:class:`internet_plus.detect.boxes.BoxRule`).
DETECTOR_KEYS = ("min_detection_confidence", "min_tracking_confidence", "max_num_hands", "model_complexity", "mirrored")

#: Prediction arrays smoothed over video frames (the crop-space ``joints_img`` is the network's raw output).
SMOOTHED = ("joints_2d", "joints_rel", "joints_cam")


def _auto_boxes(cfg: DictConfig, *, video: bool) -> AutoBoxes:
    """``boxes=auto``'s detector; raises :class:`internet_plus.detect.mediapipe_hands.MediaPipeMissingError` (what to
    install, or which ``boxes=`` to give instead) when mediapipe is missing."""
    detect = cfg.get("detect") or {}
    rule = BoxRule(margin=float(detect.get("margin", 0.2)), interaction_gap=float(detect.get("interaction_gap", 0.5)))
    options = {key: detect[key] for key in DETECTOR_KEYS if detect.get(key) is not None}
    return AutoBoxes(rule, video=video, detector=options)


def _smoother(video: DictConfig) -> JointSmoother:
    return JointSmoother(
        float(video.get("min_cutoff", 1.0)), float(video.get("beta", 0.01)), float(video.get("d_cutoff", 1.0))
    )


def _positive(value: Any, name: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"{name}={value} must be positive")
    return number


class _VideoOut:
    """The overlay video (``cv2.VideoWriter``, mp4v), opened at the first frame with that frame's size."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps, self.frames = path, fps, 0
        self._writer: Any = None
        self._size: tuple[int, int] | None = None

    def write(self, image_rgb: np.ndarray) -> None:
        height, width = image_rgb.shape[:2]
        if self._writer is None:
            self._size = (width, height)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise RuntimeError(f"cv2.VideoWriter cannot write {self.path} (mp4v); set video.save_video=false")
        if (width, height) != self._size:
            image_rgb = cv2.resize(image_rgb, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def run(cfg: DictConfig) -> dict[str, Any]:
    """Predict every input of ``cfg.input`` with ``cfg.ckpt_path``; returns the summary (also ``summary.json``).

    Raises:
        FileNotFoundError: no such checkpoint or input.
        CheckpointError: ``ckpt_path`` is not a checkpoint of this project (the message says what it is).
        MediaPipeMissingError: ``boxes=auto`` (or ``boxes_missing=auto``) and mediapipe is not installed.
        PredictError: ``input`` is a camera index with no camera, or an input of an unknown type.
        FileExistsError: ``out`` exists and is not empty.
        RuntimeError: no input succeeded (the errors are in ``errors.json``).
    """
    with contextlib.ExitStack() as stack:
        return _run(cfg, stack)


def _run(cfg: DictConfig, stack: contextlib.ExitStack) -> dict[str, Any]:
    from tqdm.auto import tqdm

    ckpt = Path(str(cfg.ckpt_path)).expanduser()
    read_checkpoint(ckpt)  # first: names the file and says what it is when it is not a checkpoint of this project
    camera = camera_index(cfg.input)
    source = Path(str(cfg.input)).expanduser()
    if camera is None and not source.exists():
        raise FileNotFoundError(f"input={cfg.input}: no such file or folder")
    is_stream = camera is not None or (source.is_file() and source.suffix.lower() in VIDEO_EXTENSIONS)
    batch_size = int(cfg.get("batch_size", 8))
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    boxes = load_boxes(cfg.get("boxes"))
    if cfg.get("boxes_missing", "error") not in BOXES_MISSING:
        raise ValueError(f"boxes_missing={cfg.get('boxes_missing')!r}: use one of {', '.join(BOXES_MISSING)}")
    video = cfg.get("video") or DictConfig({})
    default_fps = _positive(video.get("fps", 30.0), "video.fps")
    max_frames = video.get("max_frames")
    if max_frames is not None and int(max_frames) < 1:
        raise ValueError(f"video.max_frames={max_frames} must be >= 1 (or null: every frame)")
    smoother = _smoother(video) if is_stream and video.get("smoothing", True) else None
    detect = None
    if uses_detector(cfg):
        detect = stack.enter_context(_auto_boxes(cfg, video=is_stream and bool(video.get("tracking", True))))
    frames: Iterator[Frame]
    if camera is not None:
        capture = open_camera(camera)
        stack.callback(capture.release)  # also when the run fails before the first frame
        frames = camera_frames(capture, camera, None if max_frames is None else int(max_frames))
        total = None if max_frames is None else int(max_frames)
        stem = f"camera{camera}"
    else:
        frames = iter_frames(source)
        total = count_frames(source)
        if is_stream and max_frames is not None:
            frames = itertools.islice(frames, int(max_frames))
            total = int(max_frames) if total is None else min(total, int(max_frames))
        stem = source.stem
    device = select_device(cfg.get("device", "auto"))
    model = load_model(ckpt)
    out_dir = _output_dir(cfg)

    model.eval().to(device)
    if cfg.get("optimize", True):  # the exact inference rewrites of models/inference.py
        model = optimize_for_inference(model)  # type: ignore[assignment]
    accelerate_inference(model, cfg.get("accel", "auto"))  # CPU only (accel.py)
    input_size = int(model.codec.input_size)
    root_depth = float(cfg.get("root_depth_mm", 500.0))
    threshold = float(cfg.get("hand_threshold", 0.5))
    frame_images = not is_stream or bool(video.get("frame_images", False))
    video_out = None
    if is_stream and video.get("save_video", True):
        video_out = _VideoOut(out_dir / f"{stem}_overlay.mp4", default_fps)
        stack.callback(video_out.close)
    log.info("predicting %s with %s on %s; outputs in %s", source if camera is None else f"camera {camera}", ckpt,
             device, out_dir)  # fmt: skip

    errors: list[dict[str, Any]] = []
    written: list[str] = []
    pending: list[tuple[Frame, Prepared | None]] = []  # input order; None: not predicted (in errors.json)

    def fail(frame: Frame, message: str) -> None:
        log.error("%s (%s): %s", frame.name, frame.source, message)
        errors.append({"name": frame.name, "source": frame.source, "frame": frame.frame, "error": message})

    def smooth(item: Prepared, pred: dict[str, Any]) -> dict[str, Any]:
        frame = item.frame
        if smoother is None or frame.frame is None:
            return pred
        t = frame.time if frame.time is not None else frame.frame / (frame.fps or default_fps)
        restart = item.box_record.get("detection") == "detected"
        smoothed = smoother({k: pred[k] for k in SMOOTHED}, frame.frame, t, restart=restart)
        return {**pred, **smoothed, "joints_2d_raw": pred["joints_2d"]}

    def flush() -> None:
        items = [item for _, item in pending if item is not None]
        preds = iter(_predict(model, items, root_depth) if items else ())
        for frame, item in pending:
            overlay = frame.image
            if item is not None:
                pred = smooth(item, next(preds))
                _write_json(out_dir / f"{frame.name}.json", make_record(item, pred, cfg))
                drawn = _drawn_hands(pred["hand_prob"], threshold)
                assert frame.image is not None
                overlay = draw_hands(draw_box(frame.image, item.box), pred["joints_2d"], drawn)
                if frame_images and cfg.get("save_overlay", True):
                    cv2.imwrite(str(out_dir / f"{frame.name}_overlay.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
                if frame_images and cfg.get("save_plot_3d", True):
                    hands = "+".join(HAND_NAMES[h] for h in drawn)
                    title = f"{frame.name} ({hands})"
                    save_3d_plot(pred["joints_cam"], drawn, title, out_dir / f"{frame.name}_3d.png")
                written.append(frame.name)
            if video_out is not None and overlay is not None:
                if video_out.frames == 0 and frame.fps:
                    video_out.fps = frame.fps
                video_out.write(overlay)
        pending.clear()

    interrupted = False
    unit = "frame" if is_stream else "img"
    with tqdm(total=total, desc="predict", unit=unit, disable=not cfg.get("progress", True)) as bar:
        try:
            for frame in frames:
                try:
                    pending.append((frame, prepare(frame, boxes, input_size, cfg, detect)))
                except PredictError as err:
                    fail(frame, str(err))
                    pending.append((frame, None))
                if len(pending) >= batch_size:
                    flush()
                bar.update(1)
        except KeyboardInterrupt:
            if camera is None:
                raise
            interrupted = True
            log.warning("camera %d: stopped (Ctrl-C); writing what was predicted", camera)
        flush()
    if video_out is not None:
        video_out.close()

    summary = {
        "input": str(source) if camera is None else f"camera {camera}",
        "checkpoint": str(ckpt),
        "output_dir": str(out_dir),
        "num_ok": len(written),
        "num_errors": len(errors),
        "predicted": written,
    }
    if video_out is not None and video_out.frames:
        summary["overlay_video"] = str(video_out.path)
        summary["video_frames"] = video_out.frames
    if interrupted:
        summary["interrupted"] = True
    _write_json(out_dir / "errors.json", errors)
    _write_json(out_dir / "summary.json", summary)
    log.info("%d input(s) predicted, %d error(s); outputs in %s", len(written), len(errors), out_dir)
    if not written:
        raise RuntimeError(f"no input could be predicted ({len(errors)} error(s), see {out_dir / 'errors.json'})")
    return summary
