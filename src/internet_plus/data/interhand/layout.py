"""Where InterHand2.6M's files are (``docs/reference/datasets.md`` §C.1): :func:`find_interhand_files` checks one
split's folders and annotation files (no JSON is read) and returns an :class:`InterHandFiles`.

- **layouts** (§C.1): release v1.0, ``annotations/<split>/InterHand2.6M_<split>_{data,camera,joint_3d}.json``, and the
  older v0.0, ``annotations/{all,human_annot,machine_annot}/InterHand2.6M_<split>_{...}.json``; images at
  ``images/<split>/<file_name>`` in both. ``layout: auto`` picks v1.0 when ``annotations/<split>/`` exists;
- **fps** (§C.1): the 5 and 30 fps releases have the same tree and file names; the official image archives unpack to
  ``InterHand2.6M_<fps>fps_batch1/``. ``data.root`` is either that release folder's parent (then ``fps`` picks
  ``<root>/InterHand2.6M_<fps>fps_batch1/``, whose ``annotations/`` may also sit next to it in ``<root>``) or a folder
  that holds ``images/`` and ``annotations/`` directly (the InterNet README's layout; ``fps`` is then only a label);
- **subsets** (§C.5): ``all`` (H+M), ``human`` (H), ``machine`` (M). v0.0 has one folder per subset. v1.0 ships only
  the merged files, so H is the set of annotation ids listed in ``human_annot_ids`` (InterWild's
  ``aid_human_annot_<split>.txt``, one id per line, :func:`read_id_list`) and M is every other annotation.

Layout problems raise :class:`InterHandLayoutError` (a :class:`~internet_plus.data.errors.DatasetLayoutError`) naming
the file, the expected layout (:data:`INTERHAND_LAYOUT`) and the download page.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Literal

import numpy as np

from internet_plus.data.errors import DatasetLayoutError

__all__ = [
    "ANNOTATION_KINDS",
    "INTERHAND_DOWNLOAD_PAGE",
    "INTERHAND_LAYOUT",
    "INTERHAND_SPLITS",
    "V0_FOLDERS",
    "InterHandFiles",
    "InterHandLayoutError",
    "find_interhand_files",
    "layout_error",
    "read_id_list",
]

#: The official homepage with the download links (datasets §0, tag IHHP).
INTERHAND_DOWNLOAD_PAGE = "https://mks0601.github.io/InterHand2.6M/"
INTERHAND_SPLITS: tuple[str, ...] = ("train", "val", "test")
Split = Literal["train", "val", "test"]
Subset = Literal["all", "human", "machine"]
Layout = Literal["auto", "v1.0", "v0.0"]

#: v0.0 annotation folder of each subset (datasets §C.1).
V0_FOLDERS: dict[str, str] = {"all": "all", "human": "human_annot", "machine": "machine_annot"}
ANNOTATION_KINDS: tuple[str, ...] = ("data", "camera", "joint_3d")

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


def layout_error(problem: str) -> InterHandLayoutError:
    """An :class:`InterHandLayoutError` saying ``problem``, the expected layout and where to download the set."""
    return InterHandLayoutError(
        f"{problem}\nExpected the InterHand2.6M layout (datasets §C.1):\n{INTERHAND_LAYOUT}\n"
        f"Download InterHand2.6M from {INTERHAND_DOWNLOAD_PAGE} and set data.root to the folder that holds images/ "
        "and annotations/ (or the one holding InterHand2.6M_<fps>fps_batch1/)."
    )


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
            raise layout_error(
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
        raise layout_error(f"InterHand2.6M root folder {root} does not exist.")
    base, annotations_parent = _release_dirs(root, int(fps))
    annotations = annotations_parent / "annotations"
    if not annotations.is_dir():
        raise layout_error(f"InterHand2.6M annotation folder {annotations} is missing.")
    if layout == "auto":
        if (annotations / split).is_dir():
            layout = "v1.0"
        elif any((annotations / folder).is_dir() for folder in V0_FOLDERS.values()):
            layout = "v0.0"
        else:
            raise layout_error(
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
        raise layout_error(
            f"InterHand2.6M annotation file {missing[0]} is missing ({layout} layout, split {split}). "
            f"The split needs:\n{listed}{hint}"
        )
    images_dir = base / "images" / split
    if not images_dir.is_dir():
        raise layout_error(
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
