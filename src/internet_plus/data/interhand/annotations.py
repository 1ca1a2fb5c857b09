"""Streaming parse of InterHand2.6M's three annotation files (``docs/reference/datasets.md`` §C.2-§C.3).

The training split has 1.36 M annotations; the parsed JSON of that would take several GB. So each file is parsed
ONCE, with the stdlib ``json`` and an ``object_hook`` that turns every image, annotation and 3-D frame into a few
numbers the moment it is parsed (:class:`DataAccumulator`, :func:`parse_joint_3d`), so the nested lists never pile up;
the index (:mod:`internet_plus.data.interhand.index`) saves the flat arrays. Both joint_3d formats are read: the dict
with ``world_coord`` (since 2020-08-31) and bare 42×3 lists (before). Malformed entries raise
:class:`~internet_plus.data.interhand.layout.InterHandLayoutError` naming the file.
"""

from __future__ import annotations

import array
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from internet_plus.data.interhand.layout import InterHandLayoutError
from internet_plus.joints import NUM_JOINTS

__all__ = ["HAND_TYPE_CODES", "DataAccumulator", "parse_cameras", "parse_data", "parse_joint_3d"]

#: data.json ``hand_type`` → the index's int8 code.
HAND_TYPE_CODES: dict[str, int] = {"right": 0, "left": 1, "interacting": 2}


class _EntryError(ValueError):
    """A malformed JSON entry (re-raised as :class:`InterHandLayoutError` with the file name)."""


def _flat_valid(values: Sequence[Any]) -> list[int]:
    flat = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]
    try:
        return [1 if float(v) > 0 else 0 for v in flat]
    except (TypeError, ValueError):
        raise _EntryError("joint_valid must hold 42 numbers (or 42 one-element lists)") from None


class DataAccumulator:
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


def parse_cameras(path: Path) -> tuple[np.ndarray, list[tuple[str, str]]]:
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


def parse_joint_3d(path: Path) -> tuple[np.ndarray, np.ndarray]:
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


def parse_data(path: Path, camera_rows: Mapping[tuple[str, str], int]) -> DataAccumulator:
    """data.json → its images and annotations as flat arrays (``camera_rows``: (capture, camera) → camera table row).

    Raises:
        InterHandLayoutError: not a COCO-style dict with ``images`` and ``annotations``, or a malformed entry.
    """
    acc = DataAccumulator(camera_rows)
    raw = _load_json(path, object_hook=acc.hook)
    if not isinstance(raw, dict) or "images" not in raw or "annotations" not in raw:
        raise InterHandLayoutError(f"{path}: expected a COCO-style dict with 'images' and 'annotations'")
    del raw
    return acc
