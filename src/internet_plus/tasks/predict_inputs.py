"""The inputs of ``predict.py``: images, folders and video frames, their hand boxes, and the crop the network sees.

Inputs (``input=``): one image file, a folder (its ``.jpg``/``.jpeg``/``.png``/``.bmp`` files in sorted order; other
files are ignored) or a video file (``.mp4``/``.avi``/``.mov``/``.mkv``/``.webm``/``.m4v``, read with
``cv2.VideoCapture``; frame k is named ``<video stem>_<k:06d>``; a video that ends before the frame count its
container declares is warned about and recorded in ``errors.json`` under the first missing frame).

The hand box of each image (:func:`frame_box`) comes from ``boxes=<file.json>``, an object
``{"<file name>": [x, y, w, h], ...}`` in original-image pixels (for a video frame the key is the frame name, else the
video's file name for every frame), or is the whole image when no boxes file is given. An image that a given boxes
file has no entry for is an error record in ``errors.json`` (the other images go on), unless
``boxes_missing=whole_image`` asks for the whole image. As in evaluation, the box goes through InterNet's
``process_bbox`` (square, ×1.25) and the identity crop (no shift, rotation or flip) to the network's S×S input
(:func:`crop_frame`; internet §6.1, and internet §9 for InterNet's own demo).

Intrinsics: ``focal`` (one number or ``[fx, fy]``, pixels) defaults to the image width for both axes, ``princpt``
(``[cx, cy]``) to the image centre ``(W/2, H/2)``, and the absolute right-wrist depth to ``root_depth_mm`` (500 mm);
the left wrist is placed at that depth plus the predicted relative root depth. These only matter for the camera-frame
output: the z components of the root-relative joints do not depend on them at all, while their x, y components scale
roughly with ``root_depth_mm / focal`` (a hand crop of fixed pixel size is a bigger hand farther away), and the
absolute camera coordinates depend on them fully. The 2-D joints in the original image do not depend on them.

An input that cannot be used (an unreadable image or video frame, a file that is not a regular file, a box that is
not four finite numbers, has a non-positive width or height, lies outside the image or is more than
:data:`MAX_BOX_IMAGE_RATIO` times its size) raises :class:`PredictError`, which the task records in
``errors.json`` before going on with the next input.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig

from internet_plus.data.images import read_image
from internet_plus.data.transforms import AugParams, crop_affine, process_bbox, warp_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Frame",
    "PredictError",
    "Prepared",
    "count_frames",
    "crop_frame",
    "frame_box",
    "iter_frames",
    "load_boxes",
    "prepare",
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
        frame: the frame index for a video, else ``None``.
    """

    name: str
    source: str
    keys: tuple[str, ...]
    image: np.ndarray | None = None
    error: str | None = None
    frame: int | None = None


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


def _image(frame: Frame) -> np.ndarray:
    """The frame's image; :class:`PredictError` when it could not be read."""
    if frame.image is None:
        raise PredictError(frame.error or "the image could not be read")
    return frame.image


# --------------------------------------------------------------------------------------------------- boxes


def load_boxes(path: str | Path | None) -> dict[str, Any]:
    """The boxes JSON ``{"<file name>": [x, y, w, h]}`` (``{}`` for ``None``); raises ValueError when malformed."""
    if path is None:
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


def frame_box(frame: Frame, boxes: Mapping[str, Any], cfg: DictConfig) -> tuple[list[float], str]:
    """The hand box ``[x, y, w, h]`` of one frame (original pixels) and where it came from (the record's
    ``box_source``): the frame's entry in the boxes file (the first of ``frame.keys`` found, validated), else the whole
    image when no boxes file is given or ``boxes_missing=whole_image``.

    Raises:
        PredictError: the image is unreadable, the entry is not a usable box, or a boxes file has no entry for it.
    """
    height, width = _image(frame).shape[:2]
    key = next((k for k in frame.keys if k in boxes), None)
    if key is None and cfg.get("boxes") and cfg.get("boxes_missing", "error") != "whole_image":
        raise PredictError(
            f"no box for it in boxes={cfg.get('boxes')} (looked up under {', '.join(map(repr, frame.keys))}); add "
            "one, or set boxes_missing=whole_image to use the whole image for images without a box"
        )
    if key is None:
        return [0.0, 0.0, float(width), float(height)], "whole_image"
    return _validate_box(boxes[key], width, height), f"boxes[{key!r}]"


# --------------------------------------------------------------------------------------------------- the crop


def _intrinsic(value: Any, default: tuple[float, float], name: str) -> list[float]:
    if value is None:
        return [float(default[0]), float(default[1])]
    values = [float(value)] * 2 if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name}={value!r}: expected one number or two [x, y]")
    return values


def crop_frame(frame: Frame, box: list[float], box_source: str, input_size: int, cfg: DictConfig) -> Prepared:
    """Crop one readable frame around ``box`` as evaluation does (``process_bbox``, identity crop), with the
    intrinsics of ``cfg`` (``focal``, ``princpt``; module docstring)."""
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
    )


def prepare(frame: Frame, boxes: Mapping[str, Any], input_size: int, cfg: DictConfig) -> Prepared:
    """Crop one readable frame around its box (:func:`frame_box`, :func:`crop_frame`); raises :class:`PredictError`."""
    box, box_source = frame_box(frame, boxes, cfg)
    return crop_frame(frame, box, box_source, input_size, cfg)
