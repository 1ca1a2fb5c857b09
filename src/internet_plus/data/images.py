"""Reading the image files of every data set: :func:`read_rgb` (InterNet's ``load_img``, ``docs/reference/internet.md``
§6.1), :func:`read_image` (the same checks, any OpenCV flags) and :func:`decode_workers`, the thread count for decoding
many images at once.

:func:`read_image` raises ``FileNotFoundError`` for a file it cannot read; the datasets turn that into their
``data.on_bad_image`` policy (:class:`~internet_plus.data.bad_images.BadImagePolicy`). It opens regular files only (a
named pipe would block ``open`` forever, a device would never end), and treats libjpeg's corrupt-data warning as an
error: a JPEG cut short with an end-of-image marker appended decodes with its missing part grey and only a line on
stderr, so a JPEG whose last pixel has that grey is decoded once more with stderr captured, and refused when libjpeg
reports corrupt data. A PNG cut short fails to decode in libpng already.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
import threading
from io import BytesIO
from os import PathLike

import cv2
import numpy as np

__all__ = ["decode_workers", "read_image", "read_jpeg_bytes", "read_regular_file", "read_rgb"]

#: Decode straight to RGB where OpenCV can (>= 4.11): the same pixels as IMREAD_COLOR + BGR→RGB, one pass fewer.
_IMREAD_RGB: int = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)

#: JPEG's start-of-image and end-of-image markers.
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
#: The value libjpeg gives the blocks it has no data for (all coefficients zero: mid-grey in every channel).
_JPEG_MISSING_GREY = 128
#: libjpeg's corrupt-data warnings (``JWRN_HIT_MARKER``, ``JWRN_JPEG_EOF``, ``JWRN_EXTRANEOUS_DATA``, …).
_JPEG_WARNING = re.compile(r"Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|Warning: unknown")
#: One capture of file descriptor 2 at a time in this process.
_STDERR_LOCK = threading.Lock()

_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(path: str | PathLike[str], mode: int) -> FileNotFoundError:
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    return FileNotFoundError(
        f"{path}: is {kind}, not a regular file; refusing to open it (reading it could block or never end)"
    )


def read_regular_file(path: str | PathLike[str]) -> bytes:
    """The bytes of ``path``, which must be a regular file (a symbolic link to one is fine).

    The kind is checked with ``os.stat`` before opening, and again on the open descriptor (opened non-blocking, so
    a named pipe put in its place meanwhile cannot block either).

    Raises:
        FileNotFoundError: the file is missing or unreadable, or is a named pipe, directory, device or socket.
    """
    try:
        if not stat.S_ISREG(mode := os.stat(path).st_mode):
            raise _not_regular(path, mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as err:
        if err.filename is None:  # ours, already names the file
            raise
        raise FileNotFoundError(f"{path}: cannot read this image (no such file)") from err
    except OSError as err:
        raise FileNotFoundError(f"{path}: cannot read this image ({err.strerror or err})") from err
    try:
        if not stat.S_ISREG(mode := os.fstat(fd).st_mode):
            raise _not_regular(path, mode)
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read()
    except OSError as err:
        raise FileNotFoundError(f"{path}: cannot read this image ({err.strerror or err})") from err
    finally:
        os.close(fd)


def _libjpeg_warnings(data: np.ndarray) -> list[str]:
    """Decode ``data`` again with file descriptor 2 captured: libjpeg's corrupt-data warnings (it prints them there).

    Whatever else was written to stderr meanwhile (another thread) is written back.
    """
    with _STDERR_LOCK, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(captured.fileno(), 2)
            cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_8)  # the entropy decoding is what warns; 1/8 scale
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        lines = captured.read().decode(errors="replace").splitlines()
    warnings = [line for line in lines if _JPEG_WARNING.search(line)]
    others = [line for line in lines if not _JPEG_WARNING.search(line)]
    if others:
        os.write(2, ("\n".join(others) + "\n").encode())
    return warnings


def read_image(path: str | PathLike[str], flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """An image file decoded by ``cv2.imdecode(…, flags)``, checked (module docstring).

    Raises:
        FileNotFoundError: the file is missing, not a regular file, cannot be decoded, or is a JPEG cut short (no
            end-of-image marker, or libjpeg reports corrupt data: OpenCV would otherwise decode it with the missing
            part grey and only a warning on stderr).
    """
    raw = read_regular_file(path)
    if raw[:2] == _JPEG_SOI and _JPEG_EOI not in raw[-64:]:
        raise FileNotFoundError(f"{path}: truncated JPEG (no end-of-image marker); the file is incomplete")
    data = np.frombuffer(raw, dtype=np.uint8)
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None or image.size == 0:
        raise FileNotFoundError(f"{path}: cannot be decoded (truncated, corrupt or not an image)")
    if raw[:2] == _JPEG_SOI and np.all(image[-1, -1] == _JPEG_MISSING_GREY):
        warnings = _libjpeg_warnings(data)
        if warnings:
            raise FileNotFoundError(
                f"{path}: corrupt JPEG ({warnings[0].strip()}): part of the image is missing (decoded grey)"
            )
    return image


def read_jpeg_bytes(path: str | PathLike[str]) -> tuple[bytes, int, int]:
    """A JPEG file's bytes, undecoded, and its ``(height, width)`` from its header (PIL's lazy ``Image.open`` reads
    the header only), with :func:`read_image`'s checks that need no decoding: a regular file, a JPEG, not cut short
    (an end-of-image marker). What a decoder alone finds (corrupt entropy-coded data) is its decoder's to report.

    Raises:
        FileNotFoundError: the file is missing or not a regular file, is not a JPEG, has no end-of-image marker, or
            its header gives no image size.
    """
    from PIL import Image, UnidentifiedImageError

    raw = read_regular_file(path)
    if raw[:2] != _JPEG_SOI:
        raise FileNotFoundError(f"{path}: not a JPEG file (no start-of-image marker)")
    if _JPEG_EOI not in raw[-64:]:
        raise FileNotFoundError(f"{path}: truncated JPEG (no end-of-image marker); the file is incomplete")
    try:
        with Image.open(BytesIO(raw), formats=["JPEG"]) as header:
            width, height = header.size
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise FileNotFoundError(f"{path}: cannot read the JPEG header ({err})") from err
    if width < 1 or height < 1:
        raise FileNotFoundError(f"{path}: the JPEG header gives an empty image ({width}×{height})")
    return raw, int(height), int(width)


def read_rgb(path: str | PathLike[str]) -> np.ndarray:
    """An image file as H×W×3 RGB uint8 (InterNet's ``load_img``: cv2, BGR → RGB; §6.1), checked by
    :func:`read_image`.

    Raises:
        FileNotFoundError: as :func:`read_image`.
    """
    image = read_image(path, _IMREAD_RGB)
    return image if _IMREAD_RGB != cv2.IMREAD_COLOR else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_workers() -> int:
    """Threads for decoding many images at once (cv2 releases the GIL while decoding): the usable cores, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))
