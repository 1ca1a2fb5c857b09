"""The labelled photos a comparison runs on: :class:`LabelledImage` (one photo, its annotated hands, its evaluation
box and intrinsics), read from a folder of annotation files (:func:`read_folder`) or a data set root through the
project's own readers (:func:`read_dataset`).

Every reader gives the annotation in the original image (pixels) and the camera frame (mm), in the project's joint
order, with the box the data set's evaluation crops around (before ``process_bbox``), so that our model sees exactly
the crop it would see in evaluation (internet §6.1-§6.4):

* **RHD** (datasets §A): the scored (dominant) hand only, as InterNet's protocol (internet §6.3); every joint counts
  as annotated (RHD renders occluded joints exactly); the box is the tight box around that hand's keypoints.
  :func:`read_rhd_root` reads ``RHD_published_v2`` with :func:`~internet_plus.data.rhd.read_rhd_split`;
  :func:`read_rhd_coco` reads MMPose's COCO-style conversion (``images[].cam_param`` with ``focal``/``princpt``,
  ``annotations[]`` with ``keypoints`` 21×3 and ``joint_cam`` 21×3 in RHD's per-hand order, tip to base, and
  ``hand_type``), the format of ``tests/fixtures/real_samples/rhd/test_rhd.json``.
* **STB** (datasets §B): one left hand per frame, every joint annotated (the wrist placed from the palm centre by the
  reader's rule), the tight box; :func:`read_stb_root`.
* **InterHand2.6M** (datasets §C): the hands ``hand_type`` names whose wrist is annotated, their annotated joints
  (data.json ``joint_valid``), the annotation box; one box around both hands of an interacting frame, as InterNet
  (internet §6.2). :func:`read_interhand_files` reads any three ``<prefix>_{data,camera,joint_3d}.json`` files
  (the official release or MMPose's test copies, whose ``file_name`` is the bare image name) through the project's
  cached index; :func:`read_interhand_root` finds a release's files first.

``limit`` keeps that many images spread evenly over the set (every k-th), so that a small run still covers all
sequences of a split sorted by sequence.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from internet_plus.data import rhd_format
from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.interhand import (
    INTERHAND_SPLITS,
    InterHandFiles,
    InterHandRecord,
    find_interhand_files,
    load_or_build_index,
    select_rows,
)
from internet_plus.data.rhd import read_rhd_split
from internet_plus.data.safe_paths import safe_join
from internet_plus.data.stb import read_stb_split
from internet_plus.data.transforms import bbox_from_joints
from internet_plus.joints import HAND_NAMES, JOINTS_PER_HAND, LEFT, RIGHT, ROOTS, hand_slice

__all__ = [
    "DATASETS",
    "AnnotatedHand",
    "LabelledImage",
    "count_hands",
    "evenly_spaced",
    "read_dataset",
    "read_folder",
    "read_interhand_files",
    "read_interhand_root",
    "read_rhd_coco",
    "read_rhd_root",
    "read_stb_root",
]

#: ``--dataset`` names and their default ``--split`` (each data set's evaluation split).
DATASETS: dict[str, str] = {"rhd": "evaluation", "stb": "test", "interhand": "test"}

#: RHD's per-hand native order (wrist, then each finger tip → base) → the project's, for one hand's 21 joints.
_PROJECT_FROM_RHD_HAND = rhd_format.PROJECT_FROM_RHD[hand_slice(LEFT)]


@dataclass(frozen=True, eq=False)
class AnnotatedHand:
    """One annotated hand of a photo.

    Attributes:
        side: ``joints.RIGHT`` or ``joints.LEFT``.
        uv: 21×2 joints in the original image's pixels (project order).
        cam: 21×3 joints in the camera frame, mm.
        annotated: 21 booleans, the joints that are scored (the wrist always is).
    """

    side: int
    uv: np.ndarray
    cam: np.ndarray
    annotated: np.ndarray

    @property
    def name(self) -> str:
        return HAND_NAMES[self.side]


@dataclass(frozen=True, eq=False)
class LabelledImage:
    """One photo with its annotated hands.

    Attributes:
        name: a unique name for the outputs (``<name>.png`` in the montage folder).
        image_path: the photo.
        hands: the annotated hands (one or two, at most one per side).
        box: ``[x, y, w, h]`` the data set's evaluation crop is built from (before ``process_bbox``), pixels.
        focal, princpt: the camera's intrinsics in pixels (``[fx, fy]``, ``[cx, cy]``).
        source: the annotation file or data set it came from.
    """

    name: str
    image_path: Path
    hands: tuple[AnnotatedHand, ...]
    box: np.ndarray
    focal: np.ndarray
    princpt: np.ndarray
    source: str = field(default="")

    def root_depths(self) -> np.ndarray:
        """The annotated wrist depths ``[right, left]`` in mm (a missing hand takes the other's)."""
        depth = {hand.side: float(hand.cam[0, 2]) for hand in self.hands}
        return np.array([depth.get(RIGHT, depth.get(LEFT)), depth.get(LEFT, depth.get(RIGHT))], dtype=np.float64)


def evenly_spaced(count: int, limit: int) -> np.ndarray:
    """Positions of ``min(limit, count)`` items spread evenly over ``count`` (all of them when ``limit`` is 0)."""
    if limit < 0:
        raise ValueError(f"limit={limit} must be >= 0 (0: all)")
    if limit == 0 or limit >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))


def _intrinsics(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.array([K[0, 0], K[1, 1]], dtype=np.float64), np.array([K[0, 2], K[1, 2]], dtype=np.float64)


def _one_hand_image(
    name: str, path: str | Path, side: int, uv: np.ndarray, cam: np.ndarray, K: np.ndarray, source: str
) -> LabelledImage:
    """A photo with one fully annotated hand, cropped around the tight box of its keypoints (RHD, STB)."""
    hand = AnnotatedHand(side, np.asarray(uv, np.float64), np.asarray(cam, np.float64), np.ones(JOINTS_PER_HAND, bool))
    focal, princpt = _intrinsics(K)
    return LabelledImage(name, Path(path), (hand,), bbox_from_joints(hand.uv), focal, princpt, source)


# --------------------------------------------------------------------------------------------------- RHD


def _coco_array(path: Path, where: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetLayoutError(f"{path}: {where} is not a list of numbers") from None
    if array.size != int(np.prod(shape)) or not np.isfinite(array).all():
        raise DatasetLayoutError(f"{path}: {where} must hold {int(np.prod(shape))} finite numbers {shape}")
    return array.reshape(shape)


def read_rhd_coco(path: str | PathLike[str]) -> list[LabelledImage]:
    """MMPose's COCO-style RHD file (module docstring); images are looked up next to it.

    Raises:
        DatasetLayoutError: the file is not JSON of that format (names the file and the entry).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetLayoutError(f"{path}: cannot read it as JSON ({err})") from err
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise DatasetLayoutError(f"{path}: expected a COCO-style object with 'images' and 'annotations' lists")
    images = {}
    for entry in data["images"]:
        try:
            images[entry["id"]] = entry
        except (KeyError, TypeError):
            raise DatasetLayoutError(f"{path}: an images[] entry has no 'id': {str(entry)[:80]}") from None
    out = []
    for ann in data["annotations"]:
        where = f"annotation {ann.get('id')!r}" if isinstance(ann, dict) else "an annotations[] entry"
        try:
            image = images[ann["image_id"]]
            file_name, cam_param, hand_type = image["file_name"], image["cam_param"], ann["hand_type"]
            focal = _coco_array(path, f"{where}: cam_param.focal", cam_param["focal"], (2,))
            princpt = _coco_array(path, f"{where}: cam_param.princpt", cam_param["princpt"], (2,))
            keypoints = _coco_array(path, f"{where}: keypoints", ann["keypoints"], (JOINTS_PER_HAND, 3))
            joint_cam = _coco_array(path, f"{where}: joint_cam", ann["joint_cam"], (JOINTS_PER_HAND, 3))
        except (KeyError, TypeError) as err:
            raise DatasetLayoutError(f"{path}: {where} (or its image) lacks {err}") from None
        if hand_type not in ("right", "left"):
            raise DatasetLayoutError(f"{path}: {where}: hand_type {hand_type!r} is not 'right' or 'left'")
        K = np.array([[focal[0], 0.0, princpt[0]], [0.0, focal[1], princpt[1]], [0.0, 0.0, 1.0]])
        out.append(
            _one_hand_image(
                Path(str(file_name)).stem,
                safe_join(path.parent, str(file_name), source=str(path)),
                RIGHT if hand_type == "right" else LEFT,
                keypoints[_PROJECT_FROM_RHD_HAND, :2],
                joint_cam[_PROJECT_FROM_RHD_HAND],
                K,
                str(path),
            )
        )
    return out


def read_rhd_root(root: str | PathLike[str], split: str, limit: int = 0) -> list[LabelledImage]:
    """RHD_published_v2's ``split`` (``training`` or ``evaluation``) through the project's reader."""
    records = read_rhd_split(root, split)  # type: ignore[arg-type]
    out = []
    for pos in evenly_spaced(len(records), limit):
        record = records[int(pos)]
        block = hand_slice(record.hand)
        out.append(
            _one_hand_image(
                f"rhd_{split}_{record.sample_id:05d}",
                record.image_path,
                record.hand,
                record.uv[block],
                record.xyz[block],
                record.K,
                f"RHD {split} ({root})",
            )
        )
    return out


# --------------------------------------------------------------------------------------------------- STB


def read_stb_root(root: str | PathLike[str], split: str, limit: int = 0) -> list[LabelledImage]:
    """STB's ``split`` (``train`` or ``test``; the colour camera ``sk``) through the project's reader."""
    records = read_stb_split(root, split)  # type: ignore[arg-type]
    return [
        _one_hand_image(
            f"stb_{record.sequence}_{record.frame:04d}",
            record.image_path,
            LEFT,
            record.uv,
            record.xyz,
            record.K,
            f"STB {split} ({root})",
        )
        for record in (records[int(pos)] for pos in evenly_spaced(len(records), limit))
    ]


# --------------------------------------------------------------------------------------------------- InterHand2.6M


def _interhand_scored(record: InterHandRecord, side: int) -> bool:
    """``hand_type`` names the hand and its wrist is annotated (a root-relative pose needs it; internet §7.8)."""
    return bool(record.hand_type_vector[side] > 0 and record.joint_annotated[ROOTS[side]] > 0)


def _interhand_hand(record: InterHandRecord, side: int) -> AnnotatedHand:
    block = hand_slice(side)
    return AnnotatedHand(side, record.joints_uv[block], record.joints_cam[block], record.joint_annotated[block] > 0)


def read_interhand_files(
    files: InterHandFiles, limit: int = 0, *, cache_dir: str | PathLike[str] | None = None
) -> list[LabelledImage]:
    """The annotations of three InterHand2.6M files (module docstring), indexed once into ``cache_dir``
    (:func:`~internet_plus.data.interhand.load_or_build_index`; default ``~/.cache/internet_plus/interhand``)."""
    index = load_or_build_index(files, cache_dir)
    rows = select_rows(index, "all")
    rows = np.sort(rows)  # data.json's order: neighbouring images stay together
    out = []
    used: set[str] = set()
    for pos in evenly_spaced(len(rows), limit):
        record = index.record(int(rows[pos]))
        hands = tuple(_interhand_hand(record, side) for side in (RIGHT, LEFT) if _interhand_scored(record, side))
        if not hands:
            continue
        name = str(Path(record.file_name).with_suffix("")).replace("/", "_").replace("\\", "_")
        while name in used:
            name += "_"
        used.add(name)
        out.append(
            LabelledImage(
                name,
                safe_join(files.images_dir, record.file_name, source=str(files.data)),
                hands,
                np.asarray(record.bbox, dtype=np.float64),
                np.asarray(record.focal, dtype=np.float64),
                np.asarray(record.princpt, dtype=np.float64),
                str(files.data),
            )
        )
    return out


def read_interhand_root(
    root: str | PathLike[str], split: str, limit: int = 0, *, cache_dir: str | PathLike[str] | None = None
) -> list[LabelledImage]:
    """An InterHand2.6M release's ``split`` (``train``, ``val`` or ``test``; 5 fps, all annotations)."""
    return read_interhand_files(find_interhand_files(root, split), limit, cache_dir=cache_dir)


def _interhand_triples(folder: Path) -> list[InterHandFiles]:
    """Every ``<prefix>_data.json`` in ``folder`` with its ``_camera.json`` and ``_joint_3d.json`` beside it."""
    out = []
    for data in sorted(folder.glob("*_data.json")):
        prefix = data.name.removesuffix("_data.json")
        camera, joint_3d = folder / f"{prefix}_camera.json", folder / f"{prefix}_joint_3d.json"
        if camera.is_file() and joint_3d.is_file():
            split = next((s for s in INTERHAND_SPLITS if s in prefix.lower().replace(".", "_").split("_")), "test")
            out.append(InterHandFiles(split, "v1.0", folder, data, camera, joint_3d))
    return out


# --------------------------------------------------------------------------------------------------- entry points


def read_folder(
    folder: str | PathLike[str], limit: int = 0, *, cache_dir: str | PathLike[str] | None = None
) -> list[LabelledImage]:
    """The labelled photos of a folder laid out as ``tests/fixtures/real_samples``: in the folder itself or in its
    direct subfolders, every RHD COCO file (``*rhd*.json``) and every InterHand2.6M triple
    (``<prefix>_{data,camera,joint_3d}.json``), images beside their annotation files; ``limit`` per file.

    Raises:
        FileNotFoundError: no such folder, or no annotation file in it (the message says what is looked for).
        DatasetLayoutError: an annotation file is malformed (names it).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"--input {folder}: no such folder")
    out: list[LabelledImage] = []
    for place in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        for coco in sorted(place.glob("*rhd*.json")):
            images = read_rhd_coco(coco)
            out += [images[int(k)] for k in evenly_spaced(len(images), limit)]
        for files in _interhand_triples(place):
            out += read_interhand_files(files, limit, cache_dir=cache_dir)
    if not out:
        raise FileNotFoundError(
            f"--input {folder}: no labelled photos found: expected, in the folder or its direct subfolders, an RHD "
            "COCO file (*rhd*.json) or InterHand2.6M's <prefix>_data.json, <prefix>_camera.json and "
            "<prefix>_joint_3d.json, with the images beside them (the layout of tests/fixtures/real_samples)"
        )
    names = [image.name for image in out]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise DatasetLayoutError(f"--input {folder}: two photos are both named {duplicate!r}")
    return out


def read_dataset(
    name: str,
    root: str | PathLike[str],
    split: str | None = None,
    limit: int = 0,
    *,
    cache_dir: str | PathLike[str] | None = None,
) -> list[LabelledImage]:
    """``limit`` photos of a data set root read by the project's readers (``name`` in :data:`DATASETS`; ``split``
    defaults to its evaluation split).

    Raises:
        ValueError: an unknown data set name.
        DatasetLayoutError: the root is not laid out as the data set's release (the message shows the layout).
    """
    if name not in DATASETS:
        raise ValueError(f"--dataset {name!r}: expected one of {', '.join(DATASETS)}")
    split = split or DATASETS[name]
    if name == "rhd":
        return read_rhd_root(root, split, limit)
    if name == "stb":
        return read_stb_root(root, split, limit)
    return read_interhand_root(root, split, limit, cache_dir=cache_dir)


def count_hands(images: Sequence[LabelledImage]) -> int:
    """How many annotated hands ``images`` hold."""
    return sum(len(image.hands) for image in images)
