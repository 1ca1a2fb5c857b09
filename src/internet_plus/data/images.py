"""Reading the image files of every data set: :func:`read_rgb` (InterNet's ``load_img``, ``docs/reference/internet.md``
§6.1) and :func:`decode_workers`, the thread count for decoding many images at once.

:func:`read_rgb` raises ``FileNotFoundError`` for a file it cannot read; the datasets turn that into their
``data.on_bad_image`` policy (:class:`~internet_plus.data.bad_images.BadImagePolicy`).
"""

from __future__ import annotations

import os
from os import PathLike

import cv2
import numpy as np

__all__ = ["decode_workers", "read_rgb"]

#: Decode straight to RGB where OpenCV can (>= 4.11): the same pixels as IMREAD_COLOR + BGR→RGB, one pass fewer.
_IMREAD_RGB: int = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)

#: JPEG's start-of-image and end-of-image markers.
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"


def read_rgb(path: str | PathLike[str]) -> np.ndarray:
    """An image file as H×W×3 RGB uint8 (InterNet's ``load_img``: cv2, BGR → RGB; §6.1).

    Raises:
        FileNotFoundError: the file is missing, cannot be decoded, or is a JPEG cut short (no end-of-image marker:
            OpenCV would otherwise decode it with the missing part grey and only a warning on stderr).
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise FileNotFoundError(f"{path}: cannot read this image ({err.strerror or err})") from err
    raw = data.tobytes()
    if raw[:2] == _JPEG_SOI and _JPEG_EOI not in raw[-64:]:
        raise FileNotFoundError(f"{path}: truncated JPEG (no end-of-image marker); the file is incomplete")
    image = cv2.imdecode(data, _IMREAD_RGB) if data.size else None
    if image is None:
        raise FileNotFoundError(f"{path}: cannot read this image (missing, unreadable or not an image)")
    return image if _IMREAD_RGB != cv2.IMREAD_COLOR else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_workers() -> int:
    """Threads for decoding many images at once (cv2 releases the GIL while decoding): the usable cores, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))
