"""The inputs of ``predict.py``: images, folders, videos and cameras, their hand boxes, and the crop the network sees.

Inputs (``input=``): one image file, a folder (its ``.jpg``/``.jpeg``/``.png``/``.bmp`` files in sorted order; other
files are ignored), a video file (``.mp4``/``.avi``/``.mov``/``.mkv``/``.webm``/``.m4v``, read with
``cv2.VideoCapture``; frame k is named ``<video stem>_<k:06d>``; a video that ends before the frame count its
container declares is warned about and recorded in ``errors.json`` under the first missing frame) or a camera index
(``input=0``: ``cv2.VideoCapture(0)``, frames named ``camera0_<k:06d>``; :func:`camera_index`, :func:`open_camera`).

The hand box of each image (:func:`frame_box`) depends on ``boxes=`` (:func:`box_mode`):

* ``auto`` (the default; ``null`` means the same): a hand detector (``predict.py`` passes
  :class:`internet_plus.detect.tracking.AutoBoxes`, MediaPipe Hands; docs/detection.md). An image in which it finds
  no hand is an error record in ``errors.json`` and the other images go on. The record's ``box_source`` is ``auto``.
* ``whole_image``: the whole image (``box_source`` ``whole_image``).
* ``<file.json>``: an object ``{"<file name>": [x, y, w, h], ...}`` in original-image pixels (for a video frame the
  key is the frame name, else the video's file name for every frame; ``box_source`` ``file``, ``box_key`` the key
  used). An image the file has no entry for is an error record, unless ``boxes_missing=whole_image`` or
  ``boxes_missing=auto`` asks for the whole image or a detected box.

As in evaluation, the box goes through InterNet's ``process_bbox`` (square, ×1.25) and the identity crop (no shift,
rotation or flip) to the network's S×S input (:func:`crop_frame`; internet §6.1, and internet §9 for InterNet's own
demo).

Intrinsics: ``focal`` (one number or ``[fx, fy]``, pixels) defaults to the image width for both axes, ``princpt``
(``[cx, cy]``) to the image centre ``(W/2, H/2)``, and the absolute right-wrist depth to ``root_depth_mm`` (500 mm);
the left wrist is placed at that depth plus the predicted relative root depth. These only matter for the camera-frame
output: the z components of the root-relative joints do not depend on them at all, while their x, y components scale
roughly with ``root_depth_mm / focal`` (a hand crop of fixed pixel size is a bigger hand farther away), and the
absolute camera coordinates depend on them fully. The 2-D joints in the original image do not depend on them.

An input that cannot be used (an unreadable image or video frame, a file that is not a regular file, a box that is
not four finite numbers, has a non-positive width or height, lies outside the image or is more than
:data:`MAX_BOX_IMAGE_RATIO` times its size, an image without a detected hand) raises :class:`PredictError`, which the
task records in ``errors.json`` before going on with the next input.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np
from omegaconf import DictConfig

from internet_plus.data.images import read_image
from internet_plus.data.transforms import AugParams, crop_affine, process_bbox, warp_image

if TYPE_CHECKING:
    from internet_plus.detect.tracking import AutoBox

__all__ = [
    "BOXES_MISSING",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "BoxChoice",
    "Frame",
    "PredictError",
    "Prepared",
    "box_mode",
    "camera_frames",
    "camera_index",
    "count_frames",
    "crop_frame",
    "frame_box",
    "iter_frames",
    "load_boxes",
    "open_camera",
    "prepare",
    "uses_detector",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


#: A given box may be at most this many times the image's width / height (a hand box is within the image, give or
#: take a hand cut by the border).
MAX_BOX_IMAGE_RATIO = 2.0


class PredictError(ValueError):
    """An input that cannot be predicted (unreadable file, bad box); reported in ``errors.json``."""


@dataclass
class Frame:
    """One input image.

    Attributes:
        name: output name (file stem or ``<video stem>_<frame:06d>``).
        source: the file it came from.
        keys: keys to look its box up under in the boxes JSON, first match wins.
        image: H×W×3 RGB ``uint8``, or ``None`` when it could not be read.
        error: why it could not be read.
        frame: the frame index for a video or camera, else ``None``.
        time: seconds since the first frame (a video: ``frame / fps`` when the container declares its frame rate; a
            camera: the clock at capture), else ``None``.
        fps: the frame rate the video or camera declares, else ``None``.
    """

    name: str
    source: str
    keys: tuple[str, ...]
    image: np.ndarray | None = None
    error: str | None = None
    frame: int | None = None
    time: float | None = None
    fps: float | None = None


@dataclass
class Prepared:
    """A frame ready for the network: its crop and everything needed to map the predictions back."""

    frame: Frame
    crop: np.ndarray  # 3×S×S float32 in [0, 1]
    inv_trans: np.ndarray  # 2×3, crop pixels -> original pixels
    box: list[float]
    box_source: str
    box_processed: list[float]
    focal: list[float]
    princpt: list[float]
    box_record: dict[str, Any] = field(default_factory=dict)  # more record keys: box_key, detection, detected_hands


# --------------------------------------------------------------------------------------------------- frames


def _read_image(path: Path) -> np.ndarray:
    """An image file as RGB ``uint8`` (cv2, so 16-bit and grey images are converted), with the checks of every
    reader (:func:`~internet_plus.data.images.read_image`: regular files only, truncated or corrupt JPEGs refused);
    raises :class:`PredictError`."""
    try:
        image = read_image(path, cv2.IMREAD_COLOR)
    except FileNotFoundError as err:
        raise PredictError(f"cannot read {path} as an image: {str(err).removeprefix(f'{path}: ')}") from None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _unique(name: str, used: set[str]) -> str:
    out, k = name, 1
    while out in used:
        out, k = f"{name}_{k}", k + 1
    used.add(out)
    return out


def count_frames(path: Path) -> int | None:
    """How many inputs ``path`` holds (a video's declared frame count), or ``None`` when unknown."""
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():  # not a named pipe: that would block
        capture = cv2.VideoCapture(str(path))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        return count or None
    return 1


def iter_frames(path: str | Path) -> Iterator[Frame]:
    """The inputs of ``path`` (an image, a folder of images or a video), lazily, with unreadable ones flagged.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        PredictError: ``path`` is a file of an unknown type, a video that cannot be opened, or a folder with no image.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"input={path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise PredictError(f"input={path}: the folder has no {'/'.join(IMAGE_EXTENSIONS)} file")
        used: set[str] = set()
        for file in files:
            yield _image_frame(file, _unique(file.stem, used))
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        yield _image_frame(path, path.stem)
    elif path.suffix.lower() in VIDEO_EXTENSIONS:
        if not path.is_file():  # cv2.VideoCapture would wait forever on a named pipe
            raise PredictError(f"input={path}: not a regular file (a named pipe, device or socket); not opening it")
        yield from _video_frames(path)
    else:
        raise PredictError(
            f"input={path}: unknown file type {path.suffix!r} (images: {', '.join(IMAGE_EXTENSIONS)}; "
            f"videos: {', '.join(VIDEO_EXTENSIONS)})"
        )


def _image_frame(file: Path, name: str) -> Frame:
    frame = Frame(name=name, source=str(file), keys=(file.name, file.stem))
    try:
        frame.image = _read_image(file)
    except PredictError as err:
        frame.error = str(err)
    return frame


def _video_frames(path: Path) -> Iterator[Frame]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PredictError(f"input={path}: cv2.VideoCapture cannot open this video")
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = _declared_fps(capture)
    try:
        index = 0
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                break
            name = f"{path.stem}_{index:06d}"
            yield Frame(
                name=name,
                source=str(path),
                keys=(name, path.name, path.stem),
                image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
                frame=index,
                time=index / fps if fps else None,
                fps=fps,
            )
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise PredictError(f"input={path}: no frame could be decoded from this video")
    if declared > index:
        # One record in errors.json (the frames read were predicted), named after the first frame that is missing.
        message = (
            f"the video ends after {index} of the {declared} frames its container declares (truncated or corrupt "
            f"file): frames {index}-{declared - 1} could not be decoded"
        )
        log.warning("input=%s: %s", path, message)
        name = f"{path.stem}_{index:06d}"
        yield Frame(name=name, source=str(path), keys=(name, path.name, path.stem), error=message, frame=index)


def _declared_fps(capture: Any) -> float | None:
    """The frame rate a capture declares, or ``None`` when it declares none (0, NaN or absurd)."""
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 0.0 < fps <= 1000.0 else None


# --------------------------------------------------------------------------------------------------- cameras


def camera_index(value: Any) -> int | None:
    """The camera index ``input=`` names (a non-negative integer, or a string of digits that is not an existing
    file or folder), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    text = str(value).strip()
    if text.isdigit() and not Path(text).exists():
        return int(text)
    return None


def open_camera(index: int) -> Any:
    """``cv2.VideoCapture(index)``, opened; :class:`PredictError` naming the index when no camera answers."""
    capture = cv2.VideoCapture(int(index))
    if not capture.isOpened():
        capture.release()
        raise PredictError(
            f"input={index}: no camera at index {index} (cv2.VideoCapture({index}) cannot open one); give an image, "
            "a folder or a video file, or the index of a connected camera"
        )
    return capture


def camera_frames(capture: Any, index: int, max_frames: int | None = None) -> Iterator[Frame]:
    """The frames of an opened camera (:func:`open_camera`) until it stops delivering or ``max_frames`` were read;
    frame k is named ``camera<index>_<k:06d>`` and timed by the clock at capture. The capture is released at the
    end."""
    fps = _declared_fps(capture)
    source = f"camera {index}"
    start = None
    last = -math.inf
    count = 0
    try:
        while max_frames is None or count < max_frames:
            ok, image = capture.read()
            now = time.monotonic()
            if not ok or image is None:
                if count == 0:
                    raise PredictError(f"input={index}: the camera opened but delivered no frame")
                log.warning("input=%s: the camera stopped delivering frames after %d", index, count)
                break
            start = now if start is None else start
            last = max(now - start, last + 1e-6)  # strictly increasing, as the One-Euro filter needs
            name = f"camera{index}_{count:06d}"
            yield Frame(
                name=name,
                source=source,
                keys=(name,),
                image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
                frame=count,
                time=last,
                fps=fps,
            )
            count += 1
    finally:
        capture.release()


def _image(frame: Frame) -> np.ndarray:
    """The frame's image; :class:`PredictError` when it could not be read."""
    if frame.image is None:
        raise PredictError(frame.error or "the image could not be read")
    return frame.image


# --------------------------------------------------------------------------------------------------- boxes


BoxMode = Literal["auto", "whole_image", "file"]
BOXES_MISSING = ("error", "whole_image", "auto")


def box_mode(value: Any) -> BoxMode:
    """What ``boxes=`` asks for: ``auto`` (also for ``None``), ``whole_image``, or ``file`` (any other value, a path;
    a boxes file literally named ``auto`` is given as ``boxes=./auto``)."""
    if value is None or str(value) == "auto":
        return "auto"
    if str(value) == "whole_image":
        return "whole_image"
    return "file"


def uses_detector(cfg: DictConfig) -> bool:
    """Whether ``cfg`` needs the hand detector: ``boxes=auto``, or a boxes file with ``boxes_missing=auto``."""
    mode = box_mode(cfg.get("boxes"))
    return mode == "auto" or (mode == "file" and cfg.get("boxes_missing", "error") == "auto")


def load_boxes(path: str | Path | None) -> dict[str, Any]:
    """The boxes JSON ``{"<file name>": [x, y, w, h]}`` (``{}`` when ``boxes=`` names no file: ``None``, ``auto``,
    ``whole_image``; :func:`box_mode`); raises ValueError when malformed."""
    if box_mode(path) != "file":
        return {}
    file = Path(path).expanduser()
    try:
        boxes = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"boxes={path}: cannot read the boxes JSON: {err}") from err
    if not isinstance(boxes, dict):
        raise ValueError(f'boxes={path}: expected an object {{"<file name>": [x, y, w, h], ...}}')
    return boxes


def _validate_box(value: Any, width: int, height: int) -> list[float]:
    """A given box as four floats; :class:`PredictError` when it is unusable."""
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError):
        raise PredictError(f"box {value!r} is not a list of four numbers [x, y, w, h]") from None
    if len(box) != 4:
        raise PredictError(f"box {value!r} has {len(box)} values, expected four [x, y, w, h]")
    if not all(math.isfinite(v) for v in box):
        raise PredictError(f"box {box} has a non-finite value")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise PredictError(f"box {box} has a non-positive width or height")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise PredictError(f"box {box} lies outside the {width}×{height} image")
    if w > MAX_BOX_IMAGE_RATIO * width or h > MAX_BOX_IMAGE_RATIO * height:
        raise PredictError(
            f"box {box} is implausibly large for the {width}×{height} image (width or height more than "
            f"{MAX_BOX_IMAGE_RATIO:g}× the image's): boxes are [x, y, w, h] in the original image's pixels"
        )
    return box


@dataclass
class BoxChoice:
    """The hand box of one frame.

    Attributes:
        box: ``[x, y, w, h]`` in original pixels.
        source: the record's ``box_source``: ``file``, ``auto`` or ``whole_image``.
        record: more record keys: ``box_key`` (the boxes file's key used) or ``detection`` and ``detected_hands``
            (:meth:`internet_plus.detect.tracking.AutoBox.record`).
    """

    box: list[float]
    source: str
    record: dict[str, Any] = field(default_factory=dict)


#: ``boxes=auto``'s detector: one frame's RGB image -> what it found (``predict.py`` passes
#: :class:`internet_plus.detect.tracking.AutoBoxes`, whose ``no_hand_message`` is the error of a frame without a hand).
Detector = Callable[[np.ndarray], "AutoBox"]


def frame_box(frame: Frame, boxes: Mapping[str, Any], cfg: DictConfig, detect: Detector | None = None) -> BoxChoice:
    """The hand box of one frame (module docstring): the frame's entry in ``boxes`` when it has one (the first of
    ``frame.keys`` found, validated), else what ``boxes=`` (:func:`box_mode`) and ``boxes_missing`` ask for: the
    whole image, or the box ``detect`` finds.

    Raises:
        PredictError: the image is unreadable, the entry is not a usable box, a boxes file has no entry for it, or
            the detector finds no hand in it (or none was given for ``boxes=auto``).
    """
    height, width = _image(frame).shape[:2]
    key = next((k for k in frame.keys if k in boxes), None)
    if key is not None:
        return BoxChoice(_validate_box(boxes[key], width, height), "file", {"box_key": key})
    mode = box_mode(cfg.get("boxes"))
    missing = cfg.get("boxes_missing", "error")
    if mode == "file" and missing not in ("whole_image", "auto"):
        raise PredictError(
            f"no box for it in boxes={cfg.get('boxes')} (looked up under {', '.join(map(repr, frame.keys))}); add "
            "one, or set boxes_missing=whole_image (the whole image) or boxes_missing=auto (a detected box) for "
            "images without a box"
        )
    if mode == "whole_image" or (mode == "file" and missing == "whole_image"):
        return BoxChoice([0.0, 0.0, float(width), float(height)], "whole_image")
    if detect is None:
        raise PredictError("boxes=auto needs a hand detector (none was given); give boxes=whole_image or a boxes file")
    found = detect(_image(frame))
    if found.box is None:
        raise PredictError(getattr(detect, "no_hand_message", "no hand detected"))
    return BoxChoice(found.box, "auto", found.record())


# --------------------------------------------------------------------------------------------------- the crop


def _intrinsic(value: Any, default: tuple[float, float], name: str) -> list[float]:
    if value is None:
        return [float(default[0]), float(default[1])]
    values = [float(value)] * 2 if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name}={value!r}: expected one number or two [x, y]")
    return values


def crop_frame(
    frame: Frame,
    box: list[float],
    box_source: str,
    input_size: int,
    cfg: DictConfig,
    box_record: Mapping[str, Any] | None = None,
) -> Prepared:
    """Crop one readable frame around ``box`` as evaluation does (``process_bbox``, identity crop), with the
    intrinsics of ``cfg`` (``focal``, ``princpt``; module docstring); ``box_record`` goes into the record as it is."""
    image = _image(frame)
    height, width = image.shape[:2]
    processed = process_bbox(box)
    trans, inv_trans = crop_affine(processed, AugParams.identity(), input_size, width)
    crop = warp_image(image.astype(np.float32), trans, input_size) * np.float32(1.0 / 255.0)
    focal = _intrinsic(cfg.get("focal"), (width, width), "focal")
    if focal[0] <= 0 or focal[1] <= 0:
        raise ValueError(f"focal={cfg.get('focal')!r} must be positive")
    princpt = _intrinsic(cfg.get("princpt"), (width / 2.0, height / 2.0), "princpt")
    return Prepared(
        frame=frame,
        crop=np.ascontiguousarray(crop.transpose(2, 0, 1)),
        inv_trans=inv_trans,
        box=box,
        box_source=box_source,
        box_processed=[float(v) for v in processed],
        focal=focal,
        princpt=princpt,
        box_record=dict(box_record or {}),
    )


def prepare(
    frame: Frame, boxes: Mapping[str, Any], input_size: int, cfg: DictConfig, detect: Detector | None = None
) -> Prepared:
    """Crop one readable frame around its box (:func:`frame_box`, :func:`crop_frame`); raises :class:`PredictError`."""
    choice = frame_box(frame, boxes, cfg, detect)
    return crop_frame(frame, choice.box, choice.source, input_size, cfg, choice.record)
