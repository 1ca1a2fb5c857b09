"""The Rendered Hand Pose Dataset (RHD_published_v2) read from its official files, its torch ``Dataset`` and its
LightningDataModule (``dataset=rhd``; the synthetic set, ``dataset=synthetic``, reads its files with them too).

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
  (square, ×1.25; §6.1, §6.3); the absolute root depth is the ground-truth wrist depth (InterNet's 'gt' mode, §5.2).
  With ``rootnet_output`` (InterNet's default 'rootnet' mode, :mod:`internet_plus.data.rootnet`) the evaluation
  samples take box (as is) and depth from RootNet's ``rootnet_rhd_output.json`` instead. Its ``annot_id`` is taken
  to be RHD's sample id (the number of ``evaluation/color/%05d.png``): InterNet keys the entries by the annotation
  ids of its converted ``RHD_evaluation.json``, which holds one annotation per image, and the COCO-style RHD
  conversion with InterNet's field names that we could inspect (MMPose's, real samples) uses annotation id = image
  id = sample id. This is an assumption (``docs/datasets/rootnet.md``): the file must hold exactly the evaluation
  split's ids, and an entry whose box does not contain the centre of our scored hand's box (another sample, or
  InterNet scored the other hand) is a bad sample (``on_bad_sample``);
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
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from internet_plus.data import rhd_format
from internet_plus.data.base_dataset import HandPoseDataset
from internet_plus.data.datamodule import HandPoseDataModule
from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.images import decode_workers
from internet_plus.data.rootnet import RootNetSamples, box_centre_inside, read_rootnet_output
from internet_plus.data.safe_pickle import load_restricted_pickle
from internet_plus.data.sample_checks import annotation_problems, far_crop_keypoints
from internet_plus.data.transforms import (
    AugmentationConfig,
    bbox_from_joints,
    build_single_hand_sample,
)
from internet_plus.data.verify import VerifyItem, VerifyReport, verify_samples
from internet_plus.joints import JOINTS_PER_HAND, LEFT, NUM_JOINTS, RIGHT, hand_slice

log = logging.getLogger(__name__)

__all__ = [
    "RHD_DOWNLOAD_PAGE",
    "RHD_LAYOUT",
    "RHD_MAX_MASK_ID",
    "RHD_SPLITS",
    "RHDDataModule",
    "RHDDataset",
    "RHDRecord",
    "check_rhd_layout",
    "dominant_hands",
    "read_rhd_annotations",
    "read_rhd_split",
    "verify_rhd_split",
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
    n_workers = workers or decode_workers()
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

#: RHD's largest mask class id (0 background, 1 person, 2-17 left hand, 18-33 right hand; datasets §A.4).
RHD_MAX_MASK_ID = 33


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
        rootnet: RootNet's entries of the kept samples, in their order (``RootNetOutput.select(sample_ids)``): each
            sample's crop box (as is) and absolute root depth come from them (InterNet's 'rootnet' mode, §5.2).
            ``None``: the ground-truth box and depth.
        warp_on: ``"worker"`` or ``"device"`` (:mod:`internet_plus.data.device_warp`).

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
        rootnet: RootNetSamples | None = None,
        warp_on: str = "worker",
    ) -> None:
        super().__init__()
        self._init_bad_image_policy(on_bad_image, name="RHD", where=f"RHD {split}")
        self.root = Path(root).expanduser()
        self.split = split
        self._init_sampling(
            input_size=input_size, augment=augment, augmentation=augmentation, seed=seed, warp_on=warp_on
        )
        self.eval_visible_only = bool(eval_visible_only)
        all_records = list(records) if records is not None else read_rhd_split(self.root, split, cache_dir=cache_dir)
        self.records: list[RHDRecord] = self._select_records(all_records, indices, f"samples of RHD {split}")
        self._init_rootnet(rootnet)

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
            **self.single_hand_rootnet(index),
            warp_on=self.warp_on,
        )

    def __repr__(self) -> str:
        return (
            f"RHDDataset(root={str(self.root)!r}, split={self.split!r}, samples={len(self)}, "
            f"input_size={self.input_size}, augment={self.augment})"
        )


# --------------------------------------------------------------------------------------------------- data module


class RHDDataModule(HandPoseDataModule):
    """RHD_published_v2 (``training`` → train + validation hold-out, ``evaluation`` → test).

    Args:
        root: the folder that holds ``training/`` and ``evaluation/``.
        eval_visible_only: score (and supervise) only the keypoints RHD marks visible (see
            :mod:`internet_plus.data.rhd`).
        cache_dir: where the per-split dominant-hand scan of the masks may be cached (``None``: in memory only).
        verify: before reading a split, open every colour image and mask and range-check every annotation
            (:func:`~internet_plus.data.rhd.verify_rhd_split`); logs a summary, raises listing every problem.
        rootnet_output: RootNet's ``rootnet_rhd_output.json``: the evaluation samples' boxes and absolute root
            depths come from it (InterNet's default protocol; ``annot_id`` = RHD sample id, see the module
            docstring); read and checked at setup. ``None``: the ground truth. Never used for training or validation.
        Other arguments (``on_bad_image`` among them): :class:`~internet_plus.data.datamodule.HandPoseDataModule`.
    """

    SPLITS = {"train": "training", "test": "evaluation"}

    def __init__(
        self,
        root: str,
        eval_visible_only: bool = False,
        cache_dir: str | None = None,
        verify: bool = False,
        rootnet_output: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = str(Path(str(root)).expanduser())
        self.eval_visible_only = bool(eval_visible_only)
        self.cache_dir = cache_dir
        self.verify = bool(verify)
        self.rootnet_output = None if rootnet_output is None else str(Path(str(rootnet_output)).expanduser())
        self._records: dict[str, list[RHDRecord]] = {}
        self._rootnet: RootNetSamples | None = None

    def records(self, split: str) -> list[RHDRecord]:
        """The records of ``"train"`` (RHD ``training``) or ``"test"`` (``evaluation``), read (and verified) once."""
        if split not in self._records:
            if self.verify:
                verify_rhd_split(self.root, self.SPLITS[split])  # type: ignore[arg-type]
            self._records[split] = read_rhd_split(self.root, self.SPLITS[split], cache_dir=self.cache_dir)
        return self._records[split]

    def _split_size(self, split: str) -> int:
        return len(self.records(split))

    def _split_label(self, split: str) -> str:
        return f"RHD {self.SPLITS[split]} ({_split_paths(Path(self.root), self.SPLITS[split])[0]})"

    def rootnet(self) -> RootNetSamples | None:
        """RootNet's entries of every evaluation sample (in record order), read and checked once; ``None`` without
        ``rootnet_output``.

        Raises:
            RootNetError: a malformed file, or its ids are not exactly the evaluation split's sample ids.
        """
        if self.rootnet_output is None:
            return None
        if self._rootnet is None:
            records = self.records("test")
            self._rootnet = read_rootnet_output(self.rootnet_output, "scalar").select(
                [r.sample_id for r in records],
                f"the {len(records)} samples of {self._split_label('test')}",
                exact=True,
            )
        return self._rootnet

    def _bad_samples(self, split: str) -> dict[int, str]:
        """The samples whose dominant hand cannot be scored (:func:`~internet_plus.data.sample_checks.
        annotation_problems` on its 21 joints, annotated as :class:`RHDDataset` annotates them); with
        ``rootnet_output``, also the evaluation samples whose RootNet box does not contain the centre of the scored
        hand's keypoint box (:func:`~internet_plus.data.rootnet.box_centre_inside`)."""
        rootnet = self.rootnet() if split == "test" else None
        bad = {}
        for pos, record in enumerate(self.records(split)):
            block = hand_slice(record.hand)
            annotated = record.vis[block] if self.eval_visible_only else 1.0
            problems = annotation_problems(
                record.xyz[block], annotated, record.K, uv=record.uv[block], image_size=(rhd_format.IMAGE_SIZE,) * 2
            )
            if rootnet is not None and not box_centre_inside(rootnet.bbox[pos], bbox_from_joints(record.uv[block]))[0]:
                problems.append(
                    f"RootNet box {np.round(rootnet.bbox[pos], 1).tolist()} (annot_id {record.sample_id} in "
                    f"{rootnet.path}) does not contain the scored ({'right' if record.hand == RIGHT else 'left'}) "
                    "hand: the entry is not this sample's"
                )
            if problems:
                bad[pos] = f"{record.image_path} (sample {record.sample_id}): " + "; ".join(problems)
        return bad

    def _uncroppable_training_samples(self) -> dict[int, str]:
        """The training samples whose scored hand's 21 keypoints (its crop box) reach far outside the image."""
        records = self.records("train")
        if not records:
            return {}
        uv = np.stack([r.uv[hand_slice(r.hand)] for r in records])
        far = far_crop_keypoints(uv, (rhd_format.IMAGE_SIZE,) * 2)
        return {
            pos: f"{records[pos].image_path} (sample {records[pos].sample_id}): {problem}"
            for pos, problem in far.items()
        }

    def _make_dataset(self, split: str, positions: Sequence[int], augment: bool) -> RHDDataset:
        return RHDDataset(
            root=self.root,
            split=self.SPLITS[split],  # type: ignore[arg-type]
            input_size=self.input_size,
            augment=augment,
            augmentation=self.augmentation,
            seed=self.seed,
            indices=[int(p) for p in positions],
            eval_visible_only=self.eval_visible_only,
            records=self.records(split),
            on_bad_image=self.on_bad_image,
            rootnet=self._split_rootnet(split, positions),
            warp_on=self.warp_on,
        )
