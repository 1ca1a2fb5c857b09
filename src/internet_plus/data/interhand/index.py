"""The cached index of one InterHand2.6M split: :func:`load_or_build_index`, :class:`InterHandIndex`,
:class:`InterHandRecord` and :func:`select_rows`.

Each split's three JSON files are parsed ONCE (:mod:`internet_plus.data.interhand.annotations`) into numpy arrays saved
as ``.npy`` files in a cache folder (:func:`build_index`), and every process opens them with
``np.load(mmap_mode="r")``: the pages are shared through the OS page cache, and a Dataset pickles to its cache path
and its row numbers only. The cache folder is keyed by a hash of the annotation files' (path, size, mtime), the id
list's, and the options; a valid one is reused without touching the JSON, anything else is rebuilt. It is never
inside the data root (default: ``$XDG_CACHE_HOME/internet_plus/interhand``, i.e. ``~/.cache/...``).

A row becomes an :class:`InterHandRecord` in camera coordinates and the project's joint order
(``docs/reference/datasets.md`` §C.3, §C.4; validity as InterNet's, ``docs/reference/internet.md`` §6.2). Joints that
are not annotated get zero coordinates (their stored values are placeholders such as [1, 1, 1], datasets §C.3, and
would project anywhere). **Sample kinds** (:func:`select_rows`): ``single`` (right/left), ``interacting`` or ``all``
(single first, then interacting: InterNet's datalist order, internet §5.3).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np

from internet_plus.data.interhand.annotations import HAND_TYPE_CODES, parse_cameras, parse_data, parse_joint_3d
from internet_plus.data.interhand.geometry import camera_to_pixel, world_to_camera
from internet_plus.data.interhand.joints import annotation_validity, native_to_project
from internet_plus.data.interhand.layout import InterHandFiles, InterHandLayoutError, layout_error, read_id_list
from internet_plus.data.safe_paths import safe_join
from internet_plus.joints import NUM_JOINTS

log = logging.getLogger(__name__)

__all__ = [
    "HAND_TYPE_VECTORS",
    "INDEX_VERSION",
    "ROW_ARRAYS",
    "TABLE_ARRAYS",
    "InterHandIndex",
    "InterHandRecord",
    "build_index",
    "check_images",
    "default_cache_dir",
    "load_or_build_index",
    "select_rows",
]

SampleKind = Literal["all", "single", "interacting"]

#: code → [right present, left present] (internet §6.2).
HAND_TYPE_VECTORS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float64)

#: Bump when the index files change meaning: old cache folders are then ignored.
INDEX_VERSION = 1


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

    cameras, camera_keys = parse_cameras(files.camera)
    frame_keys, world_native = parse_joint_3d(files.joint_3d)

    acc = parse_data(files.data, {key: row for row, key in enumerate(camera_keys)})
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
        raise layout_error(f"{len(missing)} image(s) named in {files.data} are missing ({scope}): {shown}{more}.")


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
