"""``data.verify=true``: open every image and mask of a split and range-check every annotation before training.

A data set reader turns each sample into a :class:`VerifyItem` (the files to open, the annotation to range-check and
the problems it already found reading it); :func:`verify_samples` checks them all, in threads, before raising
anything, so one :class:`~internet_plus.data.errors.DatasetLayoutError` lists every problem (RHD:
:func:`~internet_plus.data.rhd.verify_rhd_split`, STB: :func:`~internet_plus.data.stb.verify_stb_records`). The
checks are the generic ones of every format: the files exist and decode, a mask has its image's size and a valid
class id, joints are finite at a plausible depth (``docs/reference/datasets.md`` §A.4, §B.3, §C.3), keypoints
project near the image and the intrinsics are plausible.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.images import decode_workers, read_image

log = logging.getLogger(__name__)

__all__ = [
    "VERIFY_DEPTH_RANGE_M",
    "VERIFY_SHOWN",
    "VERIFY_UV_MARGIN",
    "keypoints_far_outside",
    "VerifyItem",
    "VerifyReport",
    "verify_samples",
]

#: Plausible ranges of the full verification pass (``data.verify=true``): joint depth in metres, and how far outside
#: the image (in image sizes) a keypoint may project.
VERIFY_DEPTH_RANGE_M = (0.0, 5.0)
VERIFY_UV_MARGIN = 1.0
#: How many problems the summary and the error list (the count is always complete).
VERIFY_SHOWN = 20


@dataclass(frozen=True, eq=False)
class VerifyItem:
    """One sample for :func:`verify_samples`: the files to open and the annotation to range-check.

    Attributes:
        name: how problems of the annotation name the sample (e.g. its image path and annotation file).
        image: an image that must open (``None``: none to open).
        mask: a mask that must open and have the image's size.
        xyz_mm: J×3 camera-frame joints that must be finite and at 0 < z < 5 m.
        uv: J×2 pixels that must be finite and within :data:`VERIFY_UV_MARGIN` image sizes of the image.
        K: 3×3 intrinsics that must be finite with positive focal lengths and last row (0, 0, 1).
        max_mask_id: the largest class id the mask may hold.
        problems: problems already found in the annotation (reading it).
    """

    name: str
    image: str | None = None
    mask: str | None = None
    xyz_mm: np.ndarray | None = None
    uv: np.ndarray | None = None
    K: np.ndarray | None = None
    max_mask_id: int | None = None
    problems: tuple[str, ...] = ()


@dataclass
class VerifyReport:
    """The outcome of a verification pass: counts and every problem found (one string each, naming the file)."""

    dataset: str
    samples: int = 0
    images: int = 0
    masks: int = 0
    bad_samples: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, shown: int = VERIFY_SHOWN) -> str:
        """One line of counts, then the first ``shown`` problems."""
        head = (
            f"{self.dataset}: verified {self.samples} samples ({self.images} images, {self.masks} masks opened, "
            f"annotations range-checked) in {self.seconds:.1f} s: "
        )
        if self.ok:
            return head + "no problems"
        lines = [head + f"{len(self.problems)} problem(s) in {self.bad_samples} sample(s):"]
        lines += [f"  - {p}" for p in self.problems[:shown]]
        if len(self.problems) > shown:
            lines.append(f"  ... and {len(self.problems) - shown} more")
        return "\n".join(lines)


def keypoints_far_outside(uv: np.ndarray, image_size: tuple[int, int], margin: float) -> np.ndarray:
    """For keypoints ``uv`` (…×2 pixels), whether each is not finite or lies more than ``margin`` image sizes
    outside the ``(W, H)`` image (a boolean array of ``uv``'s shape without its last axis)."""
    width, height = image_size
    with np.errstate(invalid="ignore"):
        return (
            ~np.isfinite(uv).all(axis=-1)
            | (uv[..., 0] < -margin * width)
            | (uv[..., 0] > (1 + margin) * width)
            | (uv[..., 1] < -margin * height)
            | (uv[..., 1] > (1 + margin) * height)
        )


def _open_image(path: str, flags: int) -> tuple[np.ndarray | None, str]:
    """The decoded file, or ``None`` and what is wrong with it: the checks of every reader
    (:func:`~internet_plus.data.images.read_image`: regular files only, truncated or corrupt JPEGs refused)."""
    if not os.path.lexists(path):
        return None, "is missing"
    try:
        return read_image(path, flags), ""
    except FileNotFoundError as err:
        return None, str(err).removeprefix(f"{path}: ")


def _check_item(item: VerifyItem) -> list[str]:
    """Every problem of one sample (never raises for bad content)."""
    problems = [f"{item.name}: {p}" for p in item.problems]
    size: tuple[int, int] | None = None
    if item.image is not None:
        image, error = _open_image(item.image, cv2.IMREAD_COLOR)
        if image is None:
            problems.append(f"{item.image}: image {error}")
        else:
            size = (image.shape[1], image.shape[0])
    if item.mask is not None:
        mask, error = _open_image(item.mask, cv2.IMREAD_UNCHANGED)
        if mask is None:
            problems.append(f"{item.mask}: mask {error}")
        else:
            if size is not None and mask.shape[:2] != (size[1], size[0]):
                problems.append(f"{item.mask}: mask is {mask.shape[1]}x{mask.shape[0]}, its image {size[0]}x{size[1]}")
            if item.max_mask_id is not None and int(mask.max()) > item.max_mask_id:
                problems.append(f"{item.mask}: mask holds class id {int(mask.max())} > {item.max_mask_id}")
    if item.xyz_mm is not None:
        xyz = np.asarray(item.xyz_mm, dtype=np.float64).reshape(-1, 3)
        lo, hi = (v * 1000.0 for v in VERIFY_DEPTH_RANGE_M)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(xyz).all(axis=1) | (xyz[:, 2] <= lo) | (xyz[:, 2] >= hi)
        if bad.any():
            problems.append(
                f"{item.name}: {int(bad.sum())} joint(s) not finite or outside {VERIFY_DEPTH_RANGE_M[0]:g} < z < "
                f"{VERIFY_DEPTH_RANGE_M[1]:g} m (first: joint {int(np.argmax(bad))}, xyz "
                f"{np.round(xyz[int(np.argmax(bad))], 1).tolist()} mm)"
            )
    if item.uv is not None and size is not None:
        uv = np.asarray(item.uv, dtype=np.float64).reshape(-1, 2)
        w, h = size
        m = VERIFY_UV_MARGIN
        bad = keypoints_far_outside(uv, size, m)
        if bad.any():
            j = int(np.argmax(bad))
            problems.append(
                f"{item.name}: {int(bad.sum())} keypoint(s) not finite or more than {m:g} image size(s) outside the "
                f"{w}x{h} image (first: joint {j} at uv {np.round(uv[j], 1).tolist()})"
            )
    if item.K is not None:
        K = np.asarray(item.K, dtype=np.float64)
        plausible = (
            K.shape == (3, 3)
            and np.isfinite(K).all()
            and K[0, 0] > 0
            and K[1, 1] > 0
            and np.allclose(K[2], (0.0, 0.0, 1.0))
        )
        if not plausible:
            problems.append(f"{item.name}: implausible intrinsics K = {np.round(K, 3).tolist()} (need fx, fy > 0)")
    return problems


def verify_samples(items: Sequence[VerifyItem], dataset: str, *, workers: int | None = None) -> VerifyReport:
    """Check every item (open its files, range-check its annotation), then log the summary.

    The whole pass runs before anything is raised, so one error lists every problem.

    Raises:
        DatasetLayoutError: with the summary (counts and the first :data:`VERIFY_SHOWN` problems) when any is found.
    """
    start = time.perf_counter()
    n_workers = workers or decode_workers()
    if n_workers > 1 and len(items) > 16:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:  # cv2 releases the GIL while decoding
            found = list(pool.map(_check_item, items))
    else:
        found = [_check_item(item) for item in items]
    report = VerifyReport(
        dataset=dataset,
        samples=len(items),
        images=sum(item.image is not None for item in items),
        masks=sum(item.mask is not None for item in items),
        bad_samples=sum(bool(p) for p in found),
        seconds=time.perf_counter() - start,
        problems=[p for sample in found for p in sample],
    )
    if not report.ok:
        log.error("%s", report.summary())
        raise DatasetLayoutError(
            report.summary() + "\nFix or remove these files (or run without data.verify=true to skip this check)."
        )
    log.info("%s", report.summary())
    return report
