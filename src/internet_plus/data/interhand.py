"""InterHand2.6M (Moon et al., ECCV 2020) read from its official files: a compact cached index, the torch ``Dataset``
and the LightningDataModule (``dataset=interhand``).

Format: ``docs/reference/datasets.md`` §C. Protocol: InterNet's InterHand2.6M loader (``docs/reference/internet.md``
§6.2, targets §4, evaluation §5.3, internet §7) in its 'gt' mode (ground-truth box and absolute root depth, §5.2):

- **layouts** (§C.1): release v1.0, ``annotations/<split>/InterHand2.6M_<split>_{data,camera,joint_3d}.json``, and the
  older v0.0, ``annotations/{all,human_annot,machine_annot}/InterHand2.6M_<split>_{...}.json``; images at
  ``images/<split>/<file_name>`` in both. ``layout: auto`` picks v1.0 when ``annotations/<split>/`` exists;
- **fps** (§C.1): the 5 and 30 fps releases have the same tree and file names; the official image archives unpack to
  ``InterHand2.6M_<fps>fps_batch1/``. ``data.root`` is either that release folder's parent (then ``fps`` picks
  ``<root>/InterHand2.6M_<fps>fps_batch1/``, whose ``annotations/`` may also sit next to it in ``<root>``) or a folder
  that holds ``images/`` and ``annotations/`` directly (the InterNet README's layout; ``fps`` is then only a label);
- **subsets** (§C.5): ``all`` (H+M), ``human`` (H), ``machine`` (M). v0.0 has one folder per subset. v1.0 ships only
  the merged files, so H is the set of annotation ids listed in ``human_annot_ids`` (InterWild's
  ``aid_human_annot_<split>.txt``, one id per line) and M is every other annotation;
- **geometry** (§C.3): X_cam = R·(X_world − campos) with the camera's ``camrot`` R and ``campos``; u = fx·x/z + cx,
  v = fy·y/z + cy. Units mm and px;
- **validity** (§6.2, §C.6): ``joint_annotated`` = data.json ``joint_valid``, each hand multiplied by its own wrist's
  validity (an invalid root drops the whole hand). Joints that are not annotated get zero coordinates (their stored
  values are placeholders such as [1, 1, 1], §C.3, and would project anywhere); ``joint_valid`` = annotated × inside
  the crop after augmentation (§6.1);
- **hand type**: data.json ``hand_type`` → right [1, 0], left [0, 1], interacting [1, 1]; ``hand_type_valid`` from
  data.json (§6.2);
- **crop**: ``process_bbox`` of the annotation box (square, ×1.25, not clipped; §6.1). An interacting sample has one
  box around both hands, so one crop shows both (§6.2);
- **relative root depth**: z(left wrist) − z(right wrist) in mm, recomputed after a flip; ``root_valid`` needs an
  interacting sample with both wrists valid after augmentation (the codec adds the ±200 mm range test; §4.2, §7.8);
- **sample kinds**: ``single`` (right/left), ``interacting`` or ``all`` (single first, then interacting: InterNet's
  datalist order, §5.3).

InterHand2.6M's native joint order (per hand: thumb tip → base, index … pinky tip → base, wrist last; right hand
0-20, left 21-41; §C.4) becomes the project order in exactly one place, :func:`native_to_project`, with the index
array :data:`PROJECT_FROM_INTERHAND`.

**The index.** The training split has 1.36 M annotations; the parsed JSON of that would take several GB per DataLoader
worker. So each split is parsed ONCE (stdlib ``json`` with an ``object_hook`` that turns every image, annotation and
3-D frame into a few numbers the moment it is parsed, so the nested lists never pile up) into numpy arrays saved as
``.npy`` files in a cache folder (:func:`load_or_build_index`), and every process opens them with
``np.load(mmap_mode="r")``: the pages are shared through the OS page cache, and a Dataset pickles to its cache path
and its row numbers only. The cache folder is keyed by a hash of the annotation files' (path, size, mtime), the id
list's, and the options; a valid one is reused without touching the JSON, anything else is rebuilt. It is never
inside the data root (default: ``$XDG_CACHE_HOME/internet_plus/interhand``, i.e. ``~/.cache/...``).

Layout problems (missing root, folder, annotation file, images named by data.json, malformed entries) raise
:class:`InterHandLayoutError` (a :class:`~internet_plus.data.rhd.DatasetLayoutError`) at ``setup``, naming the file,
the expected layout and the download page.
"""

from __future__ import annotations

import array
import hashlib
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from internet_plus.data.base_dataset import HandPoseDataset
from internet_plus.data.datamodule import HandPoseDataModule
from internet_plus.data.rhd import DatasetLayoutError
from internet_plus.data.safe_paths import safe_join
from internet_plus.data.transforms import (
    AugmentationConfig,
    build_sample,
    process_bbox,
)
from internet_plus.joints import JOINTS_PER_HAND, NUM_JOINTS, ROOTS

log = logging.getLogger(__name__)

__all__ = [
    "HAND_TYPE_CODES",
    "INDEX_VERSION",
    "INTERHAND_DOWNLOAD_PAGE",
    "INTERHAND_LAYOUT",
    "INTERHAND_SPLITS",
    "PROJECT_FROM_INTERHAND",
    "InterHandDataModule",
    "InterHandDataset",
    "InterHandFiles",
    "InterHandIndex",
    "InterHandLayoutError",
    "InterHandRecord",
    "annotation_validity",
    "build_index",
    "camera_to_pixel",
    "check_images",
    "default_cache_dir",
    "find_interhand_files",
    "load_or_build_index",
    "native_to_project",
    "read_id_list",
    "select_rows",
    "world_to_camera",
]

#: The official homepage with the download links (datasets §0, tag IHHP).
INTERHAND_DOWNLOAD_PAGE = "https://mks0601.github.io/InterHand2.6M/"
INTERHAND_SPLITS: tuple[str, ...] = ("train", "val", "test")
Split = Literal["train", "val", "test"]
Subset = Literal["all", "human", "machine"]
SampleKind = Literal["all", "single", "interacting"]
Layout = Literal["auto", "v1.0", "v0.0"]

#: v0.0 annotation folder of each subset (datasets §C.1).
V0_FOLDERS: dict[str, str] = {"all": "all", "human": "human_annot", "machine": "machine_annot"}
ANNOTATION_KINDS: tuple[str, ...] = ("data", "camera", "joint_3d")

#: data.json ``hand_type`` → the index's int8 code.
HAND_TYPE_CODES: dict[str, int] = {"right": 0, "left": 1, "interacting": 2}
#: code → [right present, left present] (internet §6.2).
HAND_TYPE_VECTORS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float64)

#: Bump when the index files change meaning: old cache folders are then ignored.
INDEX_VERSION = 1

INTERHAND_LAYOUT = """\
<root>/                  (data.root; or <root>/InterHand2.6M_<fps>fps_batch1/ as the image archives unpack,
                          with annotations/ inside that folder or next to it in <root>)
  images/
    train/Capture0 ... Capture26/<seq_name>/cam<camera>/image<frame>.jpg
    val/Capture0/...
    test/Capture0 ... Capture7/...
  annotations/           release v1.0:
    train/InterHand2.6M_train_data.json  InterHand2.6M_train_camera.json  InterHand2.6M_train_joint_3d.json
    val/InterHand2.6M_val_{data,camera,joint_3d}.json
    test/InterHand2.6M_test_{data,camera,joint_3d}.json
  annotations/           or the older v0.0 (one folder per annotation subset; val exists only in machine_annot):
    all/ human_annot/ machine_annot/   each with InterHand2.6M_<split>_{data,camera,joint_3d}.json"""


class InterHandLayoutError(DatasetLayoutError):
    """The InterHand2.6M folder or an annotation file is not as expected (the message names the file)."""


def _layout_error(problem: str) -> InterHandLayoutError:
    return InterHandLayoutError(
        f"{problem}\nExpected the InterHand2.6M layout (datasets §C.1):\n{INTERHAND_LAYOUT}\n"
        f"Download InterHand2.6M from {INTERHAND_DOWNLOAD_PAGE} and set data.root to the folder that holds images/ "
        "and annotations/ (or the one holding InterHand2.6M_<fps>fps_batch1/)."
    )


# --------------------------------------------------------------------------------------------------- joint order


def _project_from_interhand() -> np.ndarray:
    """Project joint i = native joint ``PROJECT_FROM_INTERHAND[i]`` (datasets §C.4 → the project's order)."""
    per_hand = [20]  # wrist
    for finger in range(5):  # thumb, index, middle, ring, little
        per_hand += [4 * finger + (3 - k) for k in range(4)]  # base (native 4f+3) → tip (native 4f)
    per_hand_arr = np.asarray(per_hand, dtype=np.int64)
    return np.concatenate([per_hand_arr, per_hand_arr + JOINTS_PER_HAND])  # right block first in both orders


#: Index array native → project order (right hand first in both; per hand wrist-first, fingers base → tip).
PROJECT_FROM_INTERHAND: np.ndarray = _project_from_interhand()


def native_to_project(array_: np.ndarray, axis: int = 0) -> np.ndarray:
    """Reorder the 42-joint ``axis`` from InterHand2.6M's native order to the project's (the one place it happens)."""
    return np.take(np.asarray(array_), PROJECT_FROM_INTERHAND, axis=axis)


# --------------------------------------------------------------------------------------------------- geometry


def world_to_camera(world: np.ndarray, camrot: np.ndarray, campos: np.ndarray) -> np.ndarray:
    """X_cam = R·(X_world − campos) for N×3 points in mm (datasets §C.3; InterNet's ``world2cam``)."""
    world = np.asarray(world, dtype=np.float64).reshape(-1, 3)
    rot = np.asarray(camrot, dtype=np.float64).reshape(3, 3)
    return (world - np.asarray(campos, dtype=np.float64).reshape(1, 3)) @ rot.T


def camera_to_pixel(cam: np.ndarray, focal: np.ndarray, princpt: np.ndarray) -> np.ndarray:
    """u = fx·x/z + cx, v = fy·y/z + cy (InterNet's ``cam2pixel``); N×3 mm → N×2 px (z must not be 0)."""
    cam = np.asarray(cam, dtype=np.float64).reshape(-1, 3)
    return cam[:, :2] / cam[:, 2:3] * np.asarray(focal, dtype=np.float64) + np.asarray(princpt, dtype=np.float64)


def annotation_validity(raw_valid: np.ndarray) -> np.ndarray:
    """``joint_annotated`` from data.json ``joint_valid`` (project order, …×42): each hand × its wrist (§6.2, §7.8)."""
    valid = (np.asarray(raw_valid) > 0).astype(np.float64)
    out = valid.copy()
    for root in ROOTS:
        block = slice(root, root + JOINTS_PER_HAND)
        out[..., block] *= valid[..., root : root + 1]
    return out


# --------------------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class InterHandFiles:
    """Where one split of one release lives.

    Attributes:
        split: ``train``, ``val`` or ``test``.
        layout: ``v1.0`` or ``v0.0``.
        images_dir: ``images/<split>`` (data.json's ``file_name`` is relative to it).
        data, camera, joint_3d: the three annotation files.
    """

    split: str
    layout: str
    images_dir: Path
    data: Path
    camera: Path
    joint_3d: Path

    @property
    def annotations(self) -> tuple[Path, Path, Path]:
        return self.data, self.camera, self.joint_3d


def _release_dirs(root: Path, fps: int) -> tuple[Path, Path]:
    """(base folder holding ``images/``, folder holding ``annotations/``) for ``fps`` (module docstring)."""
    release = root / f"InterHand2.6M_{fps}fps_batch1"
    if release.is_dir():
        base = release
    else:
        other = 30 if fps == 5 else 5
        if (root / f"InterHand2.6M_{other}fps_batch1").is_dir() and not (root / "images").is_dir():
            raise _layout_error(
                f"data.fps={fps} but {root} holds only the {other} fps release folder InterHand2.6M_{other}fps_batch1/ "
                f"(expected {release}); set data.fps={other} or point data.root at the {fps} fps release."
            )
        base = root
    annotations_parent = base if (base / "annotations").is_dir() else root
    return base, annotations_parent


def find_interhand_files(
    root: str | PathLike[str], split: str, *, fps: int = 5, subset: str = "all", layout: str = "auto"
) -> InterHandFiles:
    """Check the folders and annotation files of one split (no JSON is read).

    Raises:
        InterHandLayoutError: naming the missing path and the expected layout.
        ValueError: an unknown split, fps, subset or layout.
    """
    if split not in INTERHAND_SPLITS:
        raise ValueError(f"InterHand2.6M split must be one of {INTERHAND_SPLITS}, got {split!r}")
    if int(fps) not in (5, 30):
        raise ValueError(f"data.fps must be 5 or 30, got {fps!r}")
    if subset not in V0_FOLDERS:
        raise ValueError(f"data.subset must be one of {sorted(V0_FOLDERS)}, got {subset!r}")
    if layout not in ("auto", "v1.0", "v0.0"):
        raise ValueError(f"data.layout must be 'auto', 'v1.0' or 'v0.0', got {layout!r}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise _layout_error(f"InterHand2.6M root folder {root} does not exist.")
    base, annotations_parent = _release_dirs(root, int(fps))
    annotations = annotations_parent / "annotations"
    if not annotations.is_dir():
        raise _layout_error(f"InterHand2.6M annotation folder {annotations} is missing.")
    if layout == "auto":
        if (annotations / split).is_dir():
            layout = "v1.0"
        elif any((annotations / folder).is_dir() for folder in V0_FOLDERS.values()):
            layout = "v0.0"
        else:
            raise _layout_error(
                f"{annotations} has neither {split}/ (release v1.0) nor all/, human_annot/, machine_annot/ (v0.0)."
            )
    folder = annotations / split if layout == "v1.0" else annotations / V0_FOLDERS[subset]
    files = {kind: folder / f"InterHand2.6M_{split}_{kind}.json" for kind in ANNOTATION_KINDS}
    missing = [path for path in files.values() if not path.is_file()]
    if missing:
        hint = ""
        if layout == "v0.0" and split == "val" and subset != "machine":
            hint = (
                "\nv0.0 has val annotations only in machine_annot/ (val is machine-annotated): use data.subset=machine."
            )
        listed = "\n".join(f"  {p}" for p in files.values())
        raise _layout_error(
            f"InterHand2.6M annotation file {missing[0]} is missing ({layout} layout, split {split}). "
            f"The split needs:\n{listed}{hint}"
        )
    images_dir = base / "images" / split
    if not images_dir.is_dir():
        raise _layout_error(
            f"InterHand2.6M image folder {images_dir} is missing (data.json file names are relative to it)."
        )
    return InterHandFiles(split, layout, images_dir, files["data"], files["camera"], files["joint_3d"])


def read_id_list(path: str | PathLike[str]) -> np.ndarray:
    """Annotation ids, one integer per line (InterWild's ``aid_human_annot_<split>.txt``); blank and ``#`` lines are
    skipped. Returns a sorted unique int64 array.

    Raises:
        InterHandLayoutError: the file is missing or a line is not an integer (names the file and the line).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InterHandLayoutError(f"annotation id list {path} (data.human_annot_ids) does not exist")
    ids: list[int] = []
    with path.open() as f:
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                ids.append(int(text))
            except ValueError:
                raise InterHandLayoutError(f"{path}, line {number}: expected one annotation id, got {text!r}") from None
    return np.unique(np.asarray(ids, dtype=np.int64))


# --------------------------------------------------------------------------------------------------- parsing


class _EntryError(ValueError):
    """A malformed JSON entry (re-raised as :class:`InterHandLayoutError` with the file name)."""


def _flat_valid(values: Sequence[Any]) -> list[int]:
    flat = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]
    try:
        return [1 if float(v) > 0 else 0 for v in flat]
    except (TypeError, ValueError):
        raise _EntryError("joint_valid must hold 42 numbers (or 42 one-element lists)") from None


class _DataAccumulator:
    """Collects data.json images and annotations into flat arrays while ``json.load`` parses (via ``object_hook``)."""

    def __init__(self, camera_rows: Mapping[tuple[str, str], int]) -> None:
        self.camera_rows = camera_rows
        self.img_id = array.array("q")
        self.img_capture = array.array("q")
        self.img_frame = array.array("q")
        self.img_camera_row = array.array("i")
        self.img_size = array.array("i")
        self.path_blob = bytearray()
        self.path_offsets = array.array("q", [0])
        self.missing_camera: tuple[str, str] | None = None
        self.ann_id = array.array("q")
        self.ann_image_id = array.array("q")
        self.bbox = array.array("f")
        self.joint_valid = array.array("B")
        self.hand_type = array.array("b")
        self.hand_type_valid = array.array("B")

    def hook(self, entry: dict[str, Any]) -> Any:
        if "image_id" in entry:
            self._annotation(entry)
            return None
        if "file_name" in entry:
            self._image(entry)
            return None
        return entry

    def _image(self, entry: dict[str, Any]) -> None:
        try:
            capture, camera = str(entry["capture"]), str(entry["camera"])
            row = self.camera_rows.get((capture, camera), -1)
            if row < 0 and self.missing_camera is None:
                self.missing_camera = (capture, camera)
            self.img_id.append(int(entry["id"]))
            self.img_capture.append(int(capture))
            self.img_frame.append(int(entry["frame_idx"]))
            self.img_camera_row.append(row)
            self.img_size.extend((int(entry.get("width", 0)), int(entry.get("height", 0))))
            self.path_blob += str(entry["file_name"]).encode("utf-8")
            self.path_offsets.append(len(self.path_blob))
        except KeyError as err:
            raise _EntryError(f"image {entry.get('id')!r} has no {err.args[0]!r} (keys: {sorted(entry)})") from None
        except (TypeError, ValueError) as err:
            raise _EntryError(f"image {entry.get('id')!r}: {err}") from None

    def _annotation(self, entry: dict[str, Any]) -> None:
        try:
            ann_id = entry["id"]
            valid = entry["joint_valid"]
            bbox = entry["bbox"]
            code = HAND_TYPE_CODES.get(entry["hand_type"])
            if code is None:
                raise _EntryError(
                    f"annotation {ann_id!r}: hand_type {entry['hand_type']!r} is not one of {sorted(HAND_TYPE_CODES)}"
                )
            if len(valid) != NUM_JOINTS:
                raise _EntryError(f"annotation {ann_id!r}: joint_valid has {len(valid)} entries, expected {NUM_JOINTS}")
            if len(bbox) != 4:
                raise _EntryError(f"annotation {ann_id!r}: bbox must be [x, y, w, h], got {bbox!r}")
            before = len(self.joint_valid)
            try:
                if isinstance(valid[0], list):
                    self.joint_valid.extend(itertools.chain.from_iterable(valid))
                else:
                    self.joint_valid.extend(valid)
                ok = len(self.joint_valid) - before == NUM_JOINTS and max(self.joint_valid[before:]) <= 1
            except (TypeError, OverflowError):
                ok = False
            if not ok:  # floats, booleans as other types, nested lists of another length: the slow, checked path
                del self.joint_valid[before:]
                self.joint_valid.extend(_flat_valid(valid))
            self.bbox.extend(float(v) for v in bbox)
            self.ann_id.append(int(ann_id))
            self.ann_image_id.append(int(entry["image_id"]))
            self.hand_type.append(code)
            self.hand_type_valid.append(1 if entry["hand_type_valid"] else 0)
        except KeyError as err:
            raise _EntryError(
                f"annotation {entry.get('id')!r} has no {err.args[0]!r} (keys: {sorted(entry)})"
            ) from None
        except (TypeError, ValueError) as err:
            if isinstance(err, _EntryError):
                raise
            raise _EntryError(f"annotation {entry.get('id')!r}: {err}") from None


class _FrameAccumulator:
    """Collects joint_3d.json world coordinates (42×3 per frame) into one flat float32 array while parsing."""

    def __init__(self) -> None:
        self.world = array.array("f")
        self.count = 0

    def add(self, coords: Any) -> int:
        if not isinstance(coords, list) or len(coords) != NUM_JOINTS:
            raise _EntryError(f"world_coord must be a 42×3 list, got {type(coords).__name__} of length {len(coords)}")
        before = len(self.world)
        try:
            self.world.extend(itertools.chain.from_iterable(coords))
        except TypeError:
            del self.world[before:]
            raise _EntryError("world_coord must be a 42×3 list of numbers") from None
        if len(self.world) - before != 3 * NUM_JOINTS:
            del self.world[before:]
            raise _EntryError("world_coord must be a 42×3 list of numbers")
        self.count += 1
        return self.count - 1

    def hook(self, entry: dict[str, Any]) -> Any:
        coords = entry.get("world_coord")
        if coords is not None:  # the dict format (since 2020-08-31, §C.3); others pass through
            return self.add(coords)
        return entry


class _TextOnce:
    """A file-like object whose ``read()`` hands over its text and forgets it (so only the parser holds it)."""

    def __init__(self, text: str) -> None:
        self._text: str | None = text

    def read(self) -> str:
        text, self._text = self._text, None
        return text or ""


def _load_json(path: Path, object_hook: Any = None) -> Any:
    """Parse a JSON file with the file named in every error.

    The bytes are decoded first and dropped, so the parse holds one copy of the text (``json.load`` on the file
    would keep the bytes alive next to the decoded text for the whole parse). Annotation files are parsed only here,
    through ``json.load``.
    """
    try:
        with path.open("rb") as f:
            source = _TextOnce(f.read().decode("utf-8"))
        return json.load(source, object_hook=object_hook)
    except _EntryError as err:
        raise InterHandLayoutError(f"{path}: {err}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise InterHandLayoutError(f"{path}: not a valid JSON file ({err})") from None


def _parse_cameras(path: Path) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """camera.json → (C×16 float64 table: camrot (9), campos (3), focal (2), princpt (2); [(capture, camera)])."""
    raw = _load_json(path)
    if not isinstance(raw, dict):
        raise InterHandLayoutError(f"{path}: expected a dict from capture id to camera parameters")
    rows: list[np.ndarray] = []
    keys: list[tuple[str, str]] = []
    fields = (("camrot", 9), ("campos", 3), ("focal", 2), ("princpt", 2))
    for capture, params in raw.items():
        if not isinstance(params, dict) or any(not isinstance(params.get(f), dict) for f, _ in fields):
            raise InterHandLayoutError(f"{path}: capture {capture!r} needs dicts campos, camrot, focal and princpt")
        for camera in params["campos"]:
            parts = []
            for name, size in fields:
                if camera not in params[name]:
                    raise InterHandLayoutError(f"{path}: capture {capture!r} camera {camera!r} has no {name!r}")
                value = np.asarray(params[name][camera], dtype=np.float64).reshape(-1)
                if value.size != size or not np.isfinite(value).all():
                    raise InterHandLayoutError(
                        f"{path}: capture {capture!r} camera {camera!r}: {name} must hold {size} finite numbers"
                    )
                parts.append(value)
            rows.append(np.concatenate(parts))
            keys.append((str(capture), str(camera)))
    table = np.stack(rows) if rows else np.zeros((0, 16), dtype=np.float64)
    return table, keys


def _parse_joint_3d(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """joint_3d.json → (sorted int64 keys capture·2³² + frame, F×42×3 float32 world joints in native order)."""
    frames = _FrameAccumulator()
    raw = _load_json(path, object_hook=frames.hook)
    if not isinstance(raw, dict):
        raise InterHandLayoutError(f"{path}: expected a dict from capture id to frames")
    keys = array.array("q")
    rows = array.array("q")
    for capture, per_frame in raw.items():
        if not isinstance(per_frame, dict):
            raise InterHandLayoutError(f"{path}: capture {capture!r} must map frame ids to joints")
        for frame, value in per_frame.items():
            try:
                row = value if isinstance(value, int) else frames.add(value)  # bare 42×3 lists: before 2020-08-31
                keys.append(int(capture) * 2**32 + int(frame))
            except _EntryError as err:
                raise InterHandLayoutError(f"{path}: capture {capture!r} frame {frame!r}: {err}") from None
            except ValueError:
                raise InterHandLayoutError(
                    f"{path}: capture {capture!r} frame {frame!r}: keys must be integers"
                ) from None
            rows.append(row)
        per_frame.clear()
    del raw
    world = np.frombuffer(frames.world, dtype=np.float32).reshape(-1, NUM_JOINTS, 3)
    key_arr = np.frombuffer(keys, dtype=np.int64)
    order = np.argsort(key_arr, kind="stable")
    return key_arr[order], world[np.frombuffer(rows, dtype=np.int64)[order]]


# --------------------------------------------------------------------------------------------------- index


#: The per-annotation arrays of an index (name → dtype), each N rows.
ROW_ARRAYS: dict[str, str] = {
    "annot_id": "int64",
    "image_id": "int64",
    "capture": "int32",
    "frame_idx": "int64",
    "camera_row": "int32",
    "frame_row": "int32",
    "joint_valid": "uint8",  # N×42, project order, data.json's raw flags
    "bbox": "float32",  # N×4 annotation box [x, y, w, h] (before process_bbox)
    "hand_type": "int8",  # 0 right, 1 left, 2 interacting
    "hand_type_valid": "uint8",
    "image_size": "int32",  # N×2 (width, height)
    "path_offsets": "int64",  # N+1 offsets into path_blob
}
TABLE_ARRAYS = ("path_blob", "cameras", "world")


def _file_stamp(path: Path) -> list[Any]:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _index_key(files: InterHandFiles, subset: str, fps: int, id_list: Path | None) -> dict[str, Any]:
    return {
        "version": INDEX_VERSION,
        "split": files.split,
        "layout": files.layout,
        "subset": subset,
        "fps": int(fps),
        "files": [_file_stamp(p) for p in files.annotations],
        "id_list": _file_stamp(id_list) if id_list is not None else None,
    }


def build_index(
    files: InterHandFiles, out_dir: str | PathLike[str], *, subset: str = "all", id_list: np.ndarray | None = None
) -> dict[str, Any]:
    """Parse one split's three JSON files and write its index arrays into ``out_dir`` (``<name>.npy`` + nothing else).

    ``id_list`` (v1.0 only) keeps the listed annotation ids (``subset="human"``) or all others (``"machine"``).
    Returns the summary stored in ``meta.json`` (counts, camera names); the parsed JSON is freed before returning.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    cameras, camera_keys = _parse_cameras(files.camera)
    frame_keys, world_native = _parse_joint_3d(files.joint_3d)

    acc = _DataAccumulator({key: row for row, key in enumerate(camera_keys)})
    raw = _load_json(files.data, object_hook=acc.hook)
    if not isinstance(raw, dict) or "images" not in raw or "annotations" not in raw:
        raise InterHandLayoutError(f"{files.data}: expected a COCO-style dict with 'images' and 'annotations'")
    del raw
    if acc.missing_camera is not None:
        capture, camera = acc.missing_camera
        raise InterHandLayoutError(
            f"{files.data}: an image of capture {capture} uses camera {camera}, which {files.camera} does not list"
        )

    img_id = np.frombuffer(acc.img_id, dtype=np.int64)
    ann_image_id = np.frombuffer(acc.ann_image_id, dtype=np.int64)
    order = np.argsort(img_id, kind="stable")
    pos = np.searchsorted(img_id, ann_image_id, sorter=order)
    pos = np.minimum(pos, max(len(img_id) - 1, 0))
    img_row = order[pos] if len(img_id) else np.zeros(0, dtype=np.int64)
    if len(ann_image_id) and (not len(img_id) or (img_id[img_row] != ann_image_id).any()):
        bad = ann_image_id[img_id[img_row] != ann_image_id][0] if len(img_id) else ann_image_id[0]
        raise InterHandLayoutError(f"{files.data}: an annotation refers to image_id {bad}, which is not in 'images'")

    keep = np.ones(len(ann_image_id), dtype=bool)
    ann_id = np.frombuffer(acc.ann_id, dtype=np.int64)
    if id_list is not None:
        listed = np.isin(ann_id, id_list)
        keep = listed if subset == "human" else ~listed

    capture = np.frombuffer(acc.img_capture, dtype=np.int64)[img_row]
    frame = np.frombuffer(acc.img_frame, dtype=np.int64)[img_row]
    keys = capture * 2**32 + frame
    fpos = np.minimum(np.searchsorted(frame_keys, keys), max(len(frame_keys) - 1, 0))
    found = (frame_keys[fpos] == keys) if len(frame_keys) else np.zeros(len(keys), dtype=bool)
    if not found[keep].all():
        first = np.flatnonzero(keep & ~found)[0]
        raise InterHandLayoutError(
            f"{files.joint_3d} has no joints for capture {capture[first]} frame {frame[first]} "
            f"(annotation {ann_id[first]} in {files.data})"
        )

    rows = np.flatnonzero(keep)
    img_rows = img_row[rows]
    offsets_all = np.frombuffer(acc.path_offsets, dtype=np.int64)
    blob_all = np.frombuffer(acc.path_blob, dtype=np.uint8)
    starts, ends = offsets_all[img_rows], offsets_all[img_rows + 1]
    lengths = ends - starts
    path_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=path_offsets[1:])
    if len(rows) and np.array_equal(img_rows, np.arange(len(offsets_all) - 1)):
        path_blob = blob_all  # one annotation per image in file order (the official files): no gather needed
    else:
        gather = np.repeat(starts - path_offsets[:-1], lengths) + np.arange(path_offsets[-1])
        path_blob = blob_all[gather]

    used_frames, frame_row = np.unique(fpos[rows], return_inverse=True)
    arrays: dict[str, np.ndarray] = {
        "annot_id": ann_id[rows],
        "image_id": ann_image_id[rows],
        "capture": capture[rows].astype(np.int32),
        "frame_idx": frame[rows],
        "camera_row": np.frombuffer(acc.img_camera_row, dtype=np.int32)[img_rows],
        "frame_row": frame_row.astype(np.int32).reshape(-1),
        "joint_valid": native_to_project(
            np.frombuffer(acc.joint_valid, dtype=np.uint8).reshape(-1, NUM_JOINTS)[rows], axis=1
        ),
        "bbox": np.frombuffer(acc.bbox, dtype=np.float32).reshape(-1, 4)[rows],
        "hand_type": np.frombuffer(acc.hand_type, dtype=np.int8)[rows],
        "hand_type_valid": np.frombuffer(acc.hand_type_valid, dtype=np.uint8)[rows],
        "image_size": np.frombuffer(acc.img_size, dtype=np.int32).reshape(-1, 2)[img_rows],
        "path_offsets": path_offsets,
        "path_blob": path_blob,
        "cameras": cameras,
        "world": native_to_project(world_native[used_frames], axis=1).astype(np.float32),
    }
    for name, value in arrays.items():
        np.save(out_dir / f"{name}.npy", np.ascontiguousarray(value), allow_pickle=False)
    counts = np.bincount(arrays["hand_type"].astype(np.int64), minlength=3)
    summary = {
        "annotations": int(len(rows)),
        "annotations_in_file": int(len(ann_id)),
        "single": int(counts[0] + counts[1]),
        "interacting": int(counts[2]),
        "frames": int(len(used_frames)),
        "cameras": [list(k) for k in camera_keys],
        "seconds": round(time.perf_counter() - started, 3),
    }
    del acc, arrays
    return summary


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/internet_plus/interhand`` (``~/.cache/internet_plus/interhand``): survives runs, so the
    index is parsed once per machine and annotation version."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "internet_plus" / "interhand"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


class InterHandIndex:
    """One split's cached index: numpy arrays opened with ``np.load(mmap_mode="r")`` on first use.

    Pickles as its folder only (workers reopen the memory maps), so no annotation data travels to the workers.
    Rows follow data.json's annotation order (after the subset filter). Joint arrays are in the project's order.
    """

    def __init__(self, directory: str | PathLike[str]) -> None:
        self.directory = Path(directory)
        self.meta: dict[str, Any] = json.loads((self.directory / "meta.json").read_text())
        self._arrays: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "meta": self.meta}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.directory = Path(state["directory"])
        self.meta = state["meta"]
        self._arrays = {}

    def array(self, name: str) -> np.ndarray:
        """The memory-mapped array ``name`` (:data:`ROW_ARRAYS` or ``path_blob``, ``cameras``, ``world``)."""
        if name not in self._arrays:
            self._arrays[name] = np.load(self.directory / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        return self._arrays[name]

    def __len__(self) -> int:
        return int(self.meta["summary"]["annotations"])

    def file_name(self, row: int) -> str:
        """data.json's ``file_name`` of ``row`` (relative to ``images/<split>``)."""
        offsets = self.array("path_offsets")
        return bytes(self.array("path_blob")[int(offsets[row]) : int(offsets[row + 1])]).decode("utf-8")

    def camera_name(self, row: int) -> tuple[str, str]:
        """(capture, camera) strings of ``row``."""
        capture, camera = self.meta["summary"]["cameras"][int(self.array("camera_row")[row])]
        return str(capture), str(camera)

    def record(self, row: int) -> InterHandRecord:
        """Everything one annotation says, in camera coordinates and the project's joint order."""
        row = int(row)
        cam_params = np.asarray(self.array("cameras")[int(self.array("camera_row")[row])], dtype=np.float64)
        camrot, campos = cam_params[:9].reshape(3, 3), cam_params[9:12]
        focal, princpt = cam_params[12:14], cam_params[14:16]
        world = np.asarray(self.array("world")[int(self.array("frame_row")[row])], dtype=np.float64)
        cam = world_to_camera(world, camrot, campos)
        raw_valid = np.asarray(self.array("joint_valid")[row], dtype=np.float64)
        annotated = annotation_validity(raw_valid)
        uv = np.zeros((NUM_JOINTS, 2), dtype=np.float64)
        usable = (annotated > 0) & (cam[:, 2] > 1e-6)
        uv[usable] = camera_to_pixel(cam[usable], focal, princpt)
        annotated = annotated * usable
        cam = cam * annotated[:, None]  # placeholders of unannotated joints ([1, 1, 1] in world) become 0
        return InterHandRecord(
            annot_id=int(self.array("annot_id")[row]),
            file_name=self.file_name(row),
            capture=int(self.array("capture")[row]),
            camera=self.camera_name(row)[1],
            frame_idx=int(self.array("frame_idx")[row]),
            joints_cam=cam,
            joints_uv=uv,
            joint_annotated=annotated,
            hand_type=int(self.array("hand_type")[row]),
            hand_type_valid=float(self.array("hand_type_valid")[row]),
            bbox=np.asarray(self.array("bbox")[row], dtype=np.float64),
            focal=focal,
            princpt=princpt,
            image_size=(int(self.array("image_size")[row, 0]), int(self.array("image_size")[row, 1])),
        )


@dataclass(frozen=True, eq=False)
class InterHandRecord:
    """One annotation (project joint order; ``joints_cam`` and ``joints_uv`` are 0 where not annotated).

    Attributes:
        annot_id: data.json annotation id.
        file_name: image path relative to ``images/<split>``.
        capture, camera, frame_idx: where the image comes from.
        joints_cam: 42×3 camera frame, mm.
        joints_uv: 42×2 image pixels.
        joint_annotated: 42, data.json ``joint_valid`` × the hand's wrist validity.
        hand_type: 0 right, 1 left, 2 interacting (:data:`HAND_TYPE_CODES`).
        hand_type_valid: data.json ``hand_type_valid``.
        bbox: the annotation box [x, y, w, h] in pixels (before ``process_bbox``).
        focal, princpt: intrinsics in pixels.
        image_size: (width, height) from data.json.
    """

    annot_id: int
    file_name: str
    capture: int
    camera: str
    frame_idx: int
    joints_cam: np.ndarray
    joints_uv: np.ndarray
    joint_annotated: np.ndarray
    hand_type: int
    hand_type_valid: float
    bbox: np.ndarray
    focal: np.ndarray
    princpt: np.ndarray
    image_size: tuple[int, int]

    @property
    def interacting(self) -> bool:
        return self.hand_type == HAND_TYPE_CODES["interacting"]

    @property
    def hand_type_vector(self) -> np.ndarray:
        """[right present, left present]."""
        return HAND_TYPE_VECTORS[self.hand_type].copy()


def _valid_index_dir(directory: Path, key: Mapping[str, Any]) -> bool:
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    if meta.get("key") != json.loads(json.dumps(key)):
        return False
    return all((directory / f"{name}.npy").is_file() for name in (*ROW_ARRAYS, *TABLE_ARRAYS))


def load_or_build_index(
    files: InterHandFiles,
    cache_dir: str | PathLike[str] | None = None,
    *,
    subset: str = "all",
    fps: int = 5,
    human_annot_ids: str | PathLike[str] | None = None,
    data_root: str | PathLike[str] | None = None,
) -> InterHandIndex:
    """The index of ``files``' split: reused from ``cache_dir`` when its key matches, else built there once.

    The key hashes the three annotation files' (path, size, mtime), the id list's and the options; a folder is written
    under a temporary name and renamed when complete, so concurrent processes never read a partial index.

    Args:
        files: from :func:`find_interhand_files`.
        cache_dir: the cache folder (``None``: :func:`default_cache_dir`); may not lie inside ``data_root``.
        subset: ``all``, ``human`` or ``machine``; on the v1.0 layout H/M need ``human_annot_ids``.
        fps: recorded in the key and the folder name.
        human_annot_ids: the H annotation-id list; a ``{split}`` in the path is replaced by the split.
        data_root: the data set folder (only to refuse a cache inside it).
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if data_root is not None and _inside(cache, Path(data_root).expanduser()):
        raise ValueError(f"data.cache_dir={cache} lies inside the data root {data_root}; choose a folder outside it")
    id_path: Path | None = None
    if files.layout == "v1.0" and subset != "all":
        if human_annot_ids is None:
            raise ValueError(
                f"data.subset={subset} on the v1.0 layout needs data.human_annot_ids: release v1.0 ships only the "
                "merged H+M files (datasets §C.5); give the H annotation-id list (InterWild's "
                "data/InterHand26M/aid_human_annot_{split}.txt, one id per line; '{split}' is replaced)"
            )
        id_path = Path(str(human_annot_ids).replace("{split}", files.split)).expanduser()
        if not id_path.is_file():
            raise InterHandLayoutError(f"annotation id list {id_path} (data.human_annot_ids) does not exist")
    key = _index_key(files, subset, fps, id_path)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    directory = cache / f"interhand_{fps}fps_{files.split}_{subset}_{digest}"
    if _valid_index_dir(directory, key):
        log.info("InterHand2.6M %s: reusing the index %s", files.split, directory)
        return InterHandIndex(directory)

    log.info("InterHand2.6M %s: building the index from %s into %s", files.split, files.data.parent, directory)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=cache))
    except OSError as err:
        raise OSError(f"cannot write the InterHand2.6M index into data.cache_dir={cache} ({err})") from err
    try:
        ids = read_id_list(id_path) if id_path is not None else None
        summary = build_index(files, tmp, subset=subset, id_list=ids)
        meta = {"key": key, "summary": summary, "created": time.time()}
        (tmp / "meta.json").write_text(json.dumps(meta))
        if directory.exists():  # a stale index (other key) or one another process just finished
            if _valid_index_dir(directory, key):
                shutil.rmtree(tmp, ignore_errors=True)
                return InterHandIndex(directory)
            shutil.rmtree(directory, ignore_errors=True)
        try:
            os.replace(tmp, directory)
        except OSError:
            if not _valid_index_dir(directory, key):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "InterHand2.6M %s: %d annotations indexed in %.1f s", files.split, summary["annotations"], summary["seconds"]
    )
    return InterHandIndex(directory)


def check_images(index: InterHandIndex, files: InterHandFiles, *, verify: bool = False, sample: int = 64) -> None:
    """The images named by data.json exist: ``sample`` of them spread over the split, or all with ``verify``.

    Raises:
        InterHandLayoutError: naming the missing image file(s) and data.json.
    """
    n = len(index)
    if n == 0:
        return
    images = files.images_dir
    if verify:
        names = [index.file_name(r) for r in range(n)]
        for name in names:
            safe_join(images, name, source=str(files.data))
        by_folder: dict[str, set[str]] = {}
        for name in names:
            folder, _, base = name.rpartition("/")
            by_folder.setdefault(folder, set()).add(base)
        missing = []
        for folder, bases in by_folder.items():
            try:
                with os.scandir(images / folder) as entries:
                    present = {e.name for e in entries}
            except OSError:
                present = set()
            missing += [f"{folder}/{b}" if folder else b for b in sorted(bases - present)]
    else:
        rows = np.unique(np.linspace(0, n - 1, num=min(n, max(1, int(sample)))).round().astype(np.int64))
        missing = [
            name
            for name in (index.file_name(r) for r in rows)
            if not safe_join(images, name, source=str(files.data)).is_file()
        ]
    if missing:
        shown = ", ".join(str(images / m) for m in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        scope = "all images checked (data.verify=true)" if verify else f"checked a sample of {min(n, sample)} images"
        raise _layout_error(f"{len(missing)} image(s) named in {files.data} are missing ({scope}): {shown}{more}.")


def select_rows(index: InterHandIndex, sample_kind: str = "all") -> np.ndarray:
    """Index rows of one sample kind with a usable box: ``single``, ``interacting`` or ``all`` (single first, then
    interacting, as InterNet's datalist, §5.3). Annotations whose box has no positive side are left out (they cannot
    be cropped; logged)."""
    if sample_kind not in ("all", "single", "interacting"):
        raise ValueError(f"data.sample_kind must be 'all', 'single' or 'interacting', got {sample_kind!r}")
    hand_type = np.asarray(index.array("hand_type"))
    bbox = np.asarray(index.array("bbox"), dtype=np.float64)
    usable = np.isfinite(bbox).all(axis=1) & ((bbox[:, 2] > 0) | (bbox[:, 3] > 0))
    if not usable.all():
        log.warning("InterHand2.6M: %d annotation(s) without a usable box are left out", int((~usable).sum()))
    single = np.flatnonzero(usable & (hand_type < 2))
    interacting = np.flatnonzero(usable & (hand_type == 2))
    if sample_kind == "single":
        return single
    if sample_kind == "interacting":
        return interacting
    return np.concatenate([single, interacting])


# --------------------------------------------------------------------------------------------------- Dataset


class InterHandDataset(HandPoseDataset):
    """InterHand2.6M samples as the sample dict of ``docs/architecture.md`` (module docstring for the rules).

    Args:
        index: the split's :class:`InterHandIndex`.
        images_dir: ``images/<split>``.
        rows: index rows to use, in this order (default: :func:`select_rows` with ``sample_kind="all"``).
        input_size: side S of the square network input.
        augment: draw InterNet's augmentation (§6.1) per sample; otherwise the identity crop.
        augmentation: an :class:`AugmentationConfig` or a mapping of its fields (default: InterNet's values).
        seed: with the epoch and the annotation id, seeds each sample's augmentation.
        on_bad_image: ``"raise"`` (an unreadable image stops with its file name) or ``"skip"`` (the sample is replaced
            by the next readable one, the file name is logged and :attr:`bad_images` counts it, across loader workers;
            :class:`~internet_plus.data.bad_images.BadImagePolicy`).

    ``dataset[i]`` gives sample ``i`` at the epoch of :meth:`set_epoch`; ``dataset[(epoch, i)]`` at that epoch. The
    object holds the index folder and the row numbers only, so it pickles small (for spawned workers).
    """

    def __init__(
        self,
        index: InterHandIndex,
        images_dir: str | PathLike[str],
        rows: Sequence[int] | np.ndarray | None = None,
        input_size: int = 256,
        augment: bool = False,
        augmentation: AugmentationConfig | Mapping[str, Any] | None = None,
        seed: int = 0,
        on_bad_image: str = "raise",
    ) -> None:
        super().__init__()
        self._init_bad_image_policy(on_bad_image, name="InterHand2.6M", where=f"InterHand2.6M {Path(images_dir).name}")
        self.index = index
        self.images_dir = Path(images_dir)
        rows_arr = select_rows(index) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows_arr) and (rows_arr.min() < 0 or rows_arr.max() >= len(index)):
            raise IndexError(f"rows outside the {len(index)} annotations of the index {index.directory}")
        self.rows = rows_arr
        self._init_sampling(input_size=input_size, augment=augment, augmentation=augmentation, seed=seed)

    def __len__(self) -> int:
        return len(self.rows)

    def _image_path(self, index: int) -> Path:
        return safe_join(self.images_dir, self.record(index).file_name, source="data.json")

    @property
    def annot_ids(self) -> np.ndarray:
        """data.json annotation ids of this dataset's samples, in order."""
        return np.asarray(self.index.array("annot_id"))[self.rows]

    def record(self, index: int) -> InterHandRecord:
        """The annotation of sample ``index``."""
        return self.index.record(int(self.rows[index]))

    def _augmentation_key(self, index: int) -> int:
        return int(self.index.array("annot_id")[int(self.rows[index])])

    def _sample(self, index: int, image: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        record = self.record(index)
        right, left = ROOTS
        return build_sample(
            image=image,
            joints_uv=record.joints_uv,
            joints_cam=record.joints_cam,
            joint_annotated=record.joint_annotated,
            hand_type=record.hand_type_vector,
            hand_type_valid=record.hand_type_valid,
            interacting=record.interacting,
            focal=record.focal,
            princpt=record.princpt,
            abs_root_depth=np.array([record.joints_cam[right, 2], record.joints_cam[left, 2]]),
            bbox_xywh=process_bbox(record.bbox),
            params=self.augmentation_params(index, epoch),
            input_size=self.input_size,
            index=index,
        )

    def __repr__(self) -> str:
        return (
            f"InterHandDataset(index={str(self.index.directory)!r}, samples={len(self)}, "
            f"input_size={self.input_size}, augment={self.augment})"
        )


# --------------------------------------------------------------------------------------------------- data module


class InterHandDataModule(HandPoseDataModule):
    """InterHand2.6M (``train`` → training + validation hold-out, ``test_split`` → test).

    Args:
        root: the data folder (see the module docstring and ``docs/datasets/interhand.md``).
        fps: 5 or 30: which release folder (``InterHand2.6M_<fps>fps_batch1``) to read.
        subset: ``all`` (H+M), ``human`` (H) or ``machine`` (M).
        sample_kind: ``all``, ``single`` or ``interacting`` samples (train and test alike).
        cache_dir: where the index lives (``None``: ``$XDG_CACHE_HOME/internet_plus/interhand``); never in ``root``.
        layout: ``auto``, ``v1.0`` or ``v0.0``.
        human_annot_ids: the H annotation-id list for v1.0 H/M subsets (``{split}`` is replaced by the split).
        test_split: the evaluation split, ``test`` or ``val``.
        verify: check that every image named in data.json exists (else a sample of ``verify_sample``).
        verify_sample: how many images per split the quick check looks at.
        Other arguments (``on_bad_image`` among them): :class:`~internet_plus.data.datamodule.HandPoseDataModule`.
    """

    #: Scored with InterNet's InterHand2.6M metrics too (``mpjpe_*_mm``, ``mrrpe_mm``; the LightningModule reads it).
    protocol = "interhand"

    def __init__(
        self,
        root: str,
        fps: int = 5,
        subset: Subset = "all",
        sample_kind: SampleKind = "all",
        cache_dir: str | None = None,
        layout: Layout = "auto",
        human_annot_ids: str | None = None,
        test_split: str = "test",
        verify: bool = False,
        verify_sample: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = str(Path(str(root)).expanduser())
        if int(fps) not in (5, 30):
            raise ValueError(f"data.fps must be 5 or 30, got {fps!r}")
        if subset not in V0_FOLDERS:
            raise ValueError(f"data.subset must be one of {sorted(V0_FOLDERS)}, got {subset!r}")
        if sample_kind not in ("all", "single", "interacting"):
            raise ValueError(f"data.sample_kind must be 'all', 'single' or 'interacting', got {sample_kind!r}")
        if layout not in ("auto", "v1.0", "v0.0"):
            raise ValueError(f"data.layout must be 'auto', 'v1.0' or 'v0.0', got {layout!r}")
        if test_split not in ("test", "val"):
            raise ValueError(f"data.test_split must be 'test' or 'val', got {test_split!r}")
        self.fps = int(fps)
        self.subset = subset
        self.sample_kind = sample_kind
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.layout = layout
        self.human_annot_ids = None if human_annot_ids is None else str(human_annot_ids)
        self.test_split = test_split
        self.verify = bool(verify)
        self.verify_sample = int(verify_sample)
        self.splits = {"train": "train", "test": test_split}
        self._splits: dict[str, tuple[InterHandIndex, InterHandFiles, np.ndarray]] = {}

    def split_data(self, split: str) -> tuple[InterHandIndex, InterHandFiles, np.ndarray]:
        """(index, files, selected rows) of ``"train"`` or ``"test"``: checked, indexed (or reused) once."""
        if split not in self._splits:
            files = find_interhand_files(
                self.root, self.splits[split], fps=self.fps, subset=self.subset, layout=self.layout
            )
            index = load_or_build_index(
                files,
                self.cache_dir,
                subset=self.subset,
                fps=self.fps,
                human_annot_ids=self.human_annot_ids,
                data_root=self.root,
            )
            check_images(index, files, verify=self.verify, sample=self.verify_sample)
            self._splits[split] = (index, files, select_rows(index, self.sample_kind))
        return self._splits[split]

    def setup(self, stage: str | None = None) -> None:
        """Under DDP the first process of each node builds the index, the others wait and then reuse it."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and int(trainer.world_size) > 1:
            needed = []
            if stage in (None, "fit", "validate"):
                needed.append("train")
            if stage in (None, "test", "predict"):
                needed.append("test")
            if int(trainer.local_rank) == 0:
                for split in needed:
                    self.split_data(split)
            trainer.strategy.barrier("interhand_index")
        super().setup(stage)

    def _split_size(self, split: str) -> int:
        return len(self.split_data(split)[2])

    def _make_dataset(self, split: str, positions: Sequence[int], augment: bool) -> InterHandDataset:
        index, files, rows = self.split_data(split)
        return InterHandDataset(
            index,
            files.images_dir,
            rows=rows[np.asarray(positions, dtype=np.int64)],
            input_size=self.input_size,
            augment=augment,
            augmentation=self.augmentation,
            seed=self.seed,
            on_bad_image=self.on_bad_image,
        )
