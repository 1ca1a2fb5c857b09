"""The Rendered Hand Pose Dataset (RHD_published_v2) read from its official files, and its torch ``Dataset``.

Format: ``docs/reference/datasets.md`` §A. Protocol: InterNet's RHD loader (``docs/reference/internet.md`` §6.3)
with hand3d's choice of the scored hand (datasets §A.6):

- **one hand per sample, the dominant one**: the hand with more pixels in the segmentation mask (left class ids
  2-17 against right 18-33), ties to the right hand. The other hand's block is zero with validity 0;
- ``joint_annotated`` (the evaluation mask) is 1 for all 21 joints of the dominant hand: RHD renders every keypoint,
  so occluded joints have exact ground truth too, and InterNet scores them (its ``joint_valid`` is the annotation's,
  §5.4). With ``eval_visible_only=True`` only the keypoints RHD marks visible are annotated (hand3d's protocol,
  datasets §A.6), which also removes the invisible ones from the training mask;
- ``joint_valid`` = ``joint_annotated`` × inside the crop after augmentation (§6.1);
- the crop box is the tight box around the dominant hand's 21 ground-truth keypoints, then ``process_bbox``
  (square, ×1.25; §6.1, §6.3); the absolute root depth is the ground-truth wrist depth (InterNet's 'gt' mode, §5.2);
- ``hand_type`` is the dominant hand, ``hand_type_valid`` = 1, ``rel_root_depth`` = ``root_valid`` = 0 (RHD never
  supervises the relative root depth, §6.3).

RHD's native joint order (left hand 0-20, right 21-41; fingers tip → base) becomes the project order in exactly one
place, :func:`read_rhd_annotations`, with the index arrays of :mod:`internet_plus.data.rhd_format`. Metres become
millimetres there too. Nothing is ever written into the data folder: the per-split dominant-hand scan (one read of
every mask PNG) is cached in memory and, when a ``cache_dir`` is given, in a small JSON file there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from internet_plus.data import rhd_format
from internet_plus.data.bad_images import BAD_IMAGE_MAX_TRIES, BAD_IMAGE_POLICIES
from internet_plus.data.base_dataset import HandPoseDataset
from internet_plus.data.safe_pickle import load_restricted_pickle
from internet_plus.data.transforms import (
    AugmentationConfig,
    build_single_hand_sample,
)
from internet_plus.joints import JOINTS_PER_HAND, LEFT, NUM_JOINTS, RIGHT, hand_slice

log = logging.getLogger(__name__)

__all__ = [
    "RHD_DOWNLOAD_PAGE",
    "RHD_LAYOUT",
    "RHD_SPLITS",
    "BAD_IMAGE_MAX_TRIES",
    "BAD_IMAGE_POLICIES",
    "DatasetLayoutError",
    "RHDDataset",
    "RHDRecord",
    "VerifyItem",
    "VerifyReport",
    "check_rhd_layout",
    "dominant_hands",
    "read_rhd_annotations",
    "read_rhd_split",
    "sample_rng",
    "verify_rhd_split",
    "verify_samples",
]

RHD_DOWNLOAD_PAGE = "https://lmb.informatik.uni-freiburg.de/resources/datasets/RenderedHandposeDataset.en.html"
RHD_SPLITS: tuple[str, ...] = ("training", "evaluation")
Split = Literal["training", "evaluation"]

#: The folder tree the reader expects (datasets §A.1); ``depth/`` is not read.
RHD_LAYOUT = """\
<root>/                        (RHD_published_v2, as unzipped)
  training/
    anno_training.pickle
    color/00000.png ... 41257.png
    mask/00000.png  ... 41257.png
  evaluation/
    anno_evaluation.pickle
    color/00000.png ... 02727.png
    mask/00000.png  ... 02727.png"""


class DatasetLayoutError(RuntimeError):
    """A data set folder does not have the expected files (the message names the file and the expected layout)."""


def _layout_error(problem: str) -> DatasetLayoutError:
    return DatasetLayoutError(
        f"{problem}\nExpected the RHD_published_v2 layout:\n{RHD_LAYOUT}\n"
        f"Download RHD from {RHD_DOWNLOAD_PAGE}, unzip it and set data.root to the folder that holds training/ and "
        "evaluation/."
    )


@dataclass(frozen=True, eq=False)
class RHDRecord:
    """One RHD sample's annotation in the project's joint order (arrays are read-only).

    Attributes:
        sample_id: RHD's id (the image file is ``%05d.png``).
        image_path: the colour image.
        xyz: 42×3 camera-frame joints in mm (right hand 0-20, left 21-41).
        uv: 42×2 image pixels.
        vis: 42, 1.0 where RHD marks the keypoint visible.
        K: 3×3 intrinsics.
        hand: the dominant hand, ``joints.RIGHT`` or ``joints.LEFT``.
    """

    sample_id: int
    image_path: str
    xyz: np.ndarray
    uv: np.ndarray
    vis: np.ndarray
    K: np.ndarray
    hand: int

    def __post_init__(self) -> None:
        for name in ("xyz", "uv", "vis", "K"):
            getattr(self, name).setflags(write=False)


# --------------------------------------------------------------------------------------------------- layout


def _split_paths(root: Path, split: str) -> tuple[Path, Path, Path]:
    if split not in RHD_SPLITS:
        raise ValueError(f"RHD split must be one of {RHD_SPLITS}, got {split!r}")
    base = root / split
    return base / f"anno_{split}.pickle", base / "color", base / "mask"


def check_rhd_layout(root: str | PathLike[str], split: Split) -> tuple[Path, Path, Path]:
    """Check the folders and the annotation file of one split; returns ``(pickle, color dir, mask dir)``.

    Raises:
        DatasetLayoutError: naming the missing path and the expected layout.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise _layout_error(f"RHD root folder {root} does not exist.")
    anno, color, mask = _split_paths(root, split)
    if not anno.is_file():
        raise _layout_error(f"RHD annotation file {anno} is missing.")
    for folder in (color, mask):
        if not folder.is_dir():
            raise _layout_error(f"RHD image folder {folder} is missing.")
    return anno, color, mask


def _check_files_exist(folder: Path, ids: Sequence[int], what: str) -> None:
    """All ``folder/%05d.png`` for ``ids`` exist (one ``os.scandir`` of the folder)."""
    with os.scandir(folder) as entries:
        present = {entry.name for entry in entries}
    missing = [f"{i:05d}.png" for i in ids if f"{i:05d}.png" not in present]
    if missing:
        shown = ", ".join(str(folder / name) for name in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise _layout_error(f"{len(missing)} {what} image(s) named in the annotation file are missing: {shown}{more}.")


# --------------------------------------------------------------------------------------------------- annotations


def _native_to_project(array: np.ndarray) -> np.ndarray:
    """Reorder the joint axis (axis 0) from RHD's native order to the project's (the one place this happens)."""
    return np.ascontiguousarray(array[rhd_format.PROJECT_FROM_RHD])


def read_rhd_annotations(path: str | PathLike[str]) -> dict[int, dict[str, np.ndarray]]:
    """Read and validate ``anno_<split>.pickle`` with the restricted unpickler.

    Returns ``{sample_id: {"xyz": 42×3 mm, "uv": 42×2 px, "vis": 42, "K": 3×3}}`` in the project's joint order.

    Raises:
        DatasetLayoutError: the content is not RHD's (names the file, the sample and what is wrong).
    """
    path = Path(path)
    raw = load_restricted_pickle(path)
    if not isinstance(raw, Mapping) or not raw:
        raise DatasetLayoutError(
            f"{path}: expected a non-empty dict from sample id to annotation, got {type(raw).__name__}"
        )
    shapes = {"xyz": (NUM_JOINTS, 3), "uv_vis": (NUM_JOINTS, 3), "K": (3, 3)}
    out: dict[int, dict[str, np.ndarray]] = {}
    for key, entry in raw.items():
        if not isinstance(key, int | np.integer) or int(key) < 0:
            raise DatasetLayoutError(f"{path}: sample ids must be non-negative ints, found {key!r}")
        if not isinstance(entry, Mapping):
            raise DatasetLayoutError(f"{path}: sample {key}: expected a dict, got {type(entry).__name__}")
        arrays = {}
        for name, shape in shapes.items():
            if name not in entry:
                raise DatasetLayoutError(f"{path}: sample {key} has no '{name}' (keys: {sorted(entry)})")
            value = np.asarray(entry[name], dtype=np.float64)
            if value.shape != shape or not np.isfinite(value).all():
                raise DatasetLayoutError(
                    f"{path}: sample {key}: '{name}' must be a finite {shape} array, got shape {value.shape}"
                )
            arrays[name] = value
        out[int(key)] = {
            "xyz": _native_to_project(arrays["xyz"] * 1000.0),  # metres -> mm
            "uv": _native_to_project(arrays["uv_vis"][:, :2]),
            "vis": _native_to_project((arrays["uv_vis"][:, 2] == 1).astype(np.float32)),
            "K": arrays["K"],
        }
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------------------------------- dominant hand

_DOMINANT_CACHE: dict[tuple[str, ...], dict[int, int]] = {}


def _mask_hand(path: Path) -> int:
    """``RIGHT`` or ``LEFT``: the hand with more pixels in one mask PNG (ties → right; datasets §A.4, §A.6)."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetLayoutError(f"{path}: cannot read this mask PNG (corrupt or not an image)")
    if mask.ndim == 3:
        mask = mask[..., 0]
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=256)
    left = int(counts[rhd_format.MASK_LEFT_IDS].sum())
    right = int(counts[rhd_format.MASK_RIGHT_IDS].sum())
    return LEFT if left > right else RIGHT


def _default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def dominant_hands(
    mask_dir: str | PathLike[str],
    ids: Iterable[int],
    *,
    anno_path: str | PathLike[str] | None = None,
    cache_dir: str | PathLike[str] | None = None,
    workers: int | None = None,
) -> dict[int, int]:
    """The dominant hand (``RIGHT``/``LEFT``) of each sample id, from ``mask_dir/%05d.png``.

    Reading every mask is the slow part of opening RHD (41k PNGs), so the result is cached in memory per process
    and, with ``cache_dir``, in ``<cache_dir>/rhd_dominant_<hash>.json`` (never in the data folder). The cache key
    holds the mask folder and the annotation file's size and modification time.
    """
    mask_dir = Path(mask_dir).expanduser().resolve()
    ids = sorted(int(i) for i in ids)
    stamp = ""
    if anno_path is not None:
        st = Path(anno_path).stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    key = (str(mask_dir), stamp, str(len(ids)), hashlib.sha1(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest())
    if key in _DOMINANT_CACHE:
        return dict(_DOMINANT_CACHE[key])

    cache_file = None
    if cache_dir is not None:
        digest = hashlib.sha1("|".join(key).encode()).hexdigest()[:16]
        cache_file = Path(cache_dir).expanduser() / f"rhd_dominant_{digest}.json"
        hands = _read_cache(cache_file, key, ids)
        if hands is not None:
            _DOMINANT_CACHE[key] = hands
            return dict(hands)

    log.info("RHD: reading %d masks in %s to find each sample's dominant hand", len(ids), mask_dir)
    paths = [mask_dir / f"{i:05d}.png" for i in ids]
    n_workers = workers or _default_workers()
    if n_workers > 1 and len(paths) > 64:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:  # cv2 releases the GIL while decoding
            choices = list(pool.map(_mask_hand, paths, chunksize=64))
    else:
        choices = [_mask_hand(p) for p in paths]
    hands = dict(zip(ids, choices, strict=True))
    _DOMINANT_CACHE[key] = hands
    if cache_file is not None:
        _write_cache(cache_file, key, hands)
    return dict(hands)


def _read_cache(path: Path, key: tuple[str, ...], ids: list[int]) -> dict[int, int] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != list(key):
        return None
    hands = {int(k): int(v) for k, v in data.get("hands", {}).items()}
    if sorted(hands) != ids or not set(hands.values()) <= {RIGHT, LEFT}:
        return None
    return hands


def _write_cache(path: Path, key: tuple[str, ...], hands: dict[int, int]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": list(key), "hands": {str(k): v for k, v in hands.items()}}))
        os.replace(tmp, path)
    except OSError as err:  # a read-only cache folder only costs the next run a rescan
        log.warning("RHD: could not write the dominant-hand cache %s (%s)", path, err)


# --------------------------------------------------------------------------------------------------- split


def read_rhd_split(
    root: str | PathLike[str],
    split: Split,
    *,
    cache_dir: str | PathLike[str] | None = None,
    workers: int | None = None,
) -> list[RHDRecord]:
    """All samples of one RHD split, in sample-id order, with their dominant hand.

    Checks the layout, that every colour and mask image named in the annotation file exists, and the annotation
    content; raises :class:`DatasetLayoutError` naming the offending file otherwise.
    """
    anno_path, color_dir, mask_dir = check_rhd_layout(root, split)
    annotations = read_rhd_annotations(anno_path)
    ids = list(annotations)
    _check_files_exist(color_dir, ids, "colour")
    _check_files_exist(mask_dir, ids, "mask")
    hands = dominant_hands(mask_dir, ids, anno_path=anno_path, cache_dir=cache_dir, workers=workers)
    return [
        RHDRecord(
            sample_id=i,
            image_path=str(color_dir / f"{i:05d}.png"),
            xyz=ann["xyz"],
            uv=ann["uv"],
            vis=ann["vis"],
            K=ann["K"],
            hand=hands[i],
        )
        for i, ann in annotations.items()
    ]


# --------------------------------------------------------------------------------------------------- verify

#: Plausible ranges of the full verification pass (``data.verify=true``): joint depth in metres, and how far outside
#: the image (in image sizes) a keypoint may project.
VERIFY_DEPTH_RANGE_M = (0.0, 5.0)
VERIFY_UV_MARGIN = 1.0
#: How many problems the summary and the error list (the count is always complete).
VERIFY_SHOWN = 20
#: RHD's largest mask class id (0 background, 1 person, 2-17 left hand, 18-33 right hand; datasets §A.4).
RHD_MAX_MASK_ID = 33


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


def _open_image(path: str, flags: int) -> tuple[np.ndarray | None, str]:
    if not os.path.isfile(path):
        return None, "is missing"
    image = cv2.imread(path, flags)
    if image is None or image.size == 0:
        return None, "cannot be decoded (truncated, corrupt or not an image)"
    return image, ""


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
        with np.errstate(invalid="ignore"):
            bad = (
                ~np.isfinite(uv).all(axis=1)
                | (uv[:, 0] < -m * w)
                | (uv[:, 0] > (1 + m) * w)
                | (uv[:, 1] < -m * h)
                | (uv[:, 1] > (1 + m) * h)
            )
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
    n_workers = workers or _default_workers()
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


def _rhd_verify_item(anno_path: Path, color_dir: Path, mask_dir: Path, key: Any, entry: Any) -> VerifyItem:
    """A :class:`VerifyItem` of one raw annotation entry, tolerant of any content (problems are collected)."""
    if not isinstance(key, int | np.integer) or int(key) < 0:
        return VerifyItem(name=str(anno_path), problems=(f"sample id {key!r} is not a non-negative int",))
    file = f"{int(key):05d}.png"
    name = f"{color_dir / file} (sample {int(key)} in {anno_path.name})"
    problems: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    fields: tuple[tuple[str, tuple[int, int]], ...] = (
        ("xyz", (NUM_JOINTS, 3)),
        ("uv_vis", (NUM_JOINTS, 3)),
        ("K", (3, 3)),
    )
    if not isinstance(entry, Mapping):
        problems.append(f"the annotation is a {type(entry).__name__}, not a dict")
        fields = ()
    for key_name, shape in fields:
        if key_name not in entry:
            problems.append(f"no '{key_name}' in the annotation")
            continue
        try:
            value = np.asarray(entry[key_name], dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(f"'{key_name}' is not numeric")
            continue
        if value.shape != shape:
            problems.append(f"'{key_name}' has shape {value.shape}, expected {shape}")
            continue
        if not np.isfinite(value).all():
            problems.append(f"'{key_name}' has {int((~np.isfinite(value)).sum())} non-finite value(s)")
            continue
        arrays[key_name] = value
    xyz_mm = uv = None
    if "uv_vis" in arrays:
        vis = arrays["uv_vis"][:, 2]
        if not np.isin(vis, (0.0, 1.0)).all():
            problems.append("the visibility column of 'uv_vis' holds values other than 0 and 1")
        # Range checks apply to the hands with a visible keypoint: RHD also annotates a hand that is out of view.
        blocks = [np.arange(h * JOINTS_PER_HAND, (h + 1) * JOINTS_PER_HAND) for h in range(2)]
        shown = [b for b in blocks if (vis[b] == 1).any()]
        keep = np.concatenate(shown) if shown else np.zeros(0, dtype=np.int64)
        uv = arrays["uv_vis"][keep, :2]
        if "xyz" in arrays:
            xyz_mm = arrays["xyz"][keep] * 1000.0
    return VerifyItem(
        name=name,
        image=str(color_dir / file),
        mask=str(mask_dir / file),
        xyz_mm=xyz_mm,
        uv=uv,
        K=arrays.get("K"),
        max_mask_id=RHD_MAX_MASK_ID,
        problems=tuple(problems),
    )


def verify_rhd_split(root: str | PathLike[str], split: Split, *, workers: int | None = None) -> VerifyReport:
    """``data.verify=true``: open every colour image and mask of one split and range-check every annotation.

    Checks, per sample: the colour image and the mask exist and decode, the mask has the image's size and RHD's class
    ids; ``xyz``, ``uv_vis`` and ``K`` have RHD's shapes and are finite, the visibility flags are 0/1, ``K`` has
    positive focal lengths; for each hand with a visible keypoint, every joint lies at 0 < z < 5 m and projects within
    one image size of the image. The whole split is checked before anything is raised.

    Raises:
        DatasetLayoutError: a missing folder or annotation file (at once), or the list of every problem found.
    """
    anno_path, color_dir, mask_dir = check_rhd_layout(root, split)
    raw = load_restricted_pickle(anno_path)
    if not isinstance(raw, Mapping) or not raw:
        raise DatasetLayoutError(
            f"{anno_path}: expected a non-empty dict from sample id to annotation, got {type(raw).__name__}"
        )
    items = [_rhd_verify_item(anno_path, color_dir, mask_dir, key, entry) for key, entry in raw.items()]
    return verify_samples(items, f"RHD {split} ({Path(root).expanduser()})", workers=workers)


# --------------------------------------------------------------------------------------------------- Dataset


def sample_rng(seed: int, epoch: int, key: int) -> np.random.Generator:
    """The augmentation generator of one sample in one epoch: a function of (seed, epoch, key) only.

    So a sample's augmentation does not depend on the worker that loads it or on the order of loading.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, int(epoch), int(key)]))


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


class RHDDataset(HandPoseDataset):
    """RHD samples as the sample dict of ``docs/architecture.md`` (InterNet's RHD protocol, §6.3; module docstring).

    Args:
        root: the RHD_published_v2 folder.
        split: ``"training"`` or ``"evaluation"``.
        input_size: side S of the square network input.
        augment: draw InterNet's augmentation (§6.1) per sample; otherwise the identity crop.
        augmentation: an :class:`AugmentationConfig` or a mapping of its fields (default: InterNet's values).
        seed: with the epoch (:meth:`set_epoch`) and the sample id, seeds each sample's augmentation.
        indices: positions of the split's samples to keep (default: all), in this order.
        eval_visible_only: ``joint_annotated`` only for the keypoints RHD marks visible.
        records: the split's records if already read (:func:`read_rhd_split`), so that several subsets share them.
        cache_dir: where the dominant-hand scan may be cached (see :func:`dominant_hands`).
        on_bad_image: ``"raise"`` (an unreadable image stops with its file name) or ``"skip"`` (the sample is replaced
            by the next readable one, the file name is logged and :attr:`bad_images` counts it, across loader workers).

    ``dataset[i]`` gives sample ``i`` at the epoch of :meth:`set_epoch`; ``dataset[(epoch, i)]`` at that epoch (what
    the data module's training sampler passes, so that persistent workers follow the epoch).
    """

    def __init__(
        self,
        root: str | PathLike[str],
        split: Split,
        input_size: int = 256,
        augment: bool = False,
        augmentation: AugmentationConfig | Mapping[str, Any] | None = None,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        eval_visible_only: bool = False,
        records: Sequence[RHDRecord] | None = None,
        cache_dir: str | PathLike[str] | None = None,
        on_bad_image: str = "raise",
    ) -> None:
        super().__init__()
        self._init_bad_image_policy(on_bad_image, name="RHD", where=f"RHD {split}")
        self.root = Path(root).expanduser()
        self.split = split
        self._init_sampling(input_size=input_size, augment=augment, augmentation=augmentation, seed=seed)
        self.eval_visible_only = bool(eval_visible_only)
        all_records = list(records) if records is not None else read_rhd_split(self.root, split, cache_dir=cache_dir)
        self.records: list[RHDRecord] = self._select_records(all_records, indices, f"samples of RHD {split}")

    @property
    def sample_ids(self) -> list[int]:
        """RHD's ids of this dataset's samples, in order."""
        return [r.sample_id for r in self.records]

    def _augmentation_key(self, index: int) -> int:
        return self.records[index].sample_id

    def _sample(self, index: int, image: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        params = self.augmentation_params(index, epoch)

        block = hand_slice(record.hand)
        return build_single_hand_sample(
            image,
            record.hand,
            record.xyz[block],
            record.uv[block],
            record.vis[block] if self.eval_visible_only else 1.0,
            record.K,
            params,
            self.input_size,
            index,
        )

    def __repr__(self) -> str:
        return (
            f"RHDDataset(root={str(self.root)!r}, split={self.split!r}, samples={len(self)}, "
            f"input_size={self.input_size}, augment={self.augment})"
        )
