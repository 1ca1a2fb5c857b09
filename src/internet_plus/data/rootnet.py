"""RootNet's output files: the test-time boxes and absolute root depths of InterNet's default protocol.

InterNet tests with ``trans_test='rootnet'`` by default (``docs/reference/internet.md`` §5.2, §6.2-§6.4): for every
evaluation annotation, the crop box and the absolute root depth come from RootNet's output file instead of the ground
truth. The file (``rootnet_rhd_output.json``, ``rootnet_stb_output.json``,
``rootnet_interhand2.6m_output_{val,test}.json``) is a JSON list of ``{"annot_id", "bbox", "abs_depth"}`` objects
(other keys, e.g. ``root_valid``, are ignored, as InterNet ignores them):

- ``bbox`` = [x, y, w, h] in original-image pixels, used **as is**: the boxes are already square and ×1.25 (RootNet's
  boxes are the processed ground-truth boxes), so ``process_bbox`` is not applied again (internet §5.2, §7.10);
- ``abs_depth`` = the predicted absolute root depth in mm: one number for RHD and STB, added to all 42 decoded depths
  (§5.4); ``[right, left]`` for InterHand2.6M, each hand's depth added to its own 21 joints (§5.2 step 4), and the
  **right** one alone placing both wrists for MRRPE (§5.3). The sample's ``abs_root_depth`` [right, left] carries
  them to the decoding (RHD/STB: the scalar twice).

:func:`read_rootnet_output` reads and checks a file (:class:`RootNetError`, naming the file and the entry, for
anything malformed); :meth:`RootNetOutput.select` picks the entries of a data set's evaluation samples in their order
(a missing id is an error naming the file and the ids) as :class:`RootNetSamples`, which the ``Dataset`` uses in
place of the ground-truth box and depth. Which of our samples an ``annot_id`` names is each data set's business
(``docs/datasets/rootnet.md``): InterHand2.6M's data.json annotation id, RHD's sample id, STB's position in the
standard test split. The file is read only for the evaluation split, never for training or the validation hold-out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np

from internet_plus.data.errors import DatasetLayoutError

__all__ = [
    "ROOTNET_FILE_NAMES",
    "RootNetError",
    "RootNetOutput",
    "RootNetSamples",
    "box_centre_inside",
    "read_rootnet_output",
]

#: InterNet's names of the RootNet outputs per data set (``data/<set>/rootnet_output/``; internet §6.2-§6.4).
ROOTNET_FILE_NAMES = {
    "rhd": "rootnet_rhd_output.json",
    "stb": "rootnet_stb_output.json",
    "interhand": "rootnet_interhand2.6m_output_{val,test}.json",
}

DepthKind = Literal["scalar", "pair"]

#: How many offending ids a message lists before "and N more".
_SHOWN = 5


class RootNetError(DatasetLayoutError):
    """A RootNet output file that cannot be used: unreadable, malformed, or not matching the data set's samples."""


class _Entry:
    """One JSON object of the file as the parser meets it (only the three keys InterNet reads are kept)."""

    __slots__ = ("abs_depth", "annot_id", "bbox", "keys")
    _MISSING = object()

    def __init__(self, obj: dict[str, Any]) -> None:
        self.keys = sorted(obj)
        self.annot_id = obj.get("annot_id", self._MISSING)
        self.bbox = obj.get("bbox", self._MISSING)
        self.abs_depth = obj.get("abs_depth", self._MISSING)


def _numbers(value: Any) -> list[float] | None:
    """``value`` as a list of floats (a number gives one), or ``None`` if it is not numbers (booleans are not)."""
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
        return None
    return [float(v) for v in items]


def _annot_id(value: Any) -> int | None:
    """An ``annot_id``: an int, or a string of decimal digits (InterNet keys the entries by ``str(annot_id)``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words ("an object", "a list", "a string", ...)."""
    if isinstance(value, _Entry):
        return "an object"
    names = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), f"a {type(value).__name__}")


def _listed(ids: Sequence[int] | np.ndarray) -> str:
    """The first few ids, and how many more."""
    ids = np.asarray(ids).reshape(-1)
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return ", ".join(str(int(i)) for i in ids[:_SHOWN]) + more


@dataclass(frozen=True, eq=False)
class RootNetSamples:
    """RootNet's box and absolute root depths for each sample of a dataset, in the dataset's order.

    Attributes:
        bbox: N×4 [x, y, w, h] in original-image pixels, to be used as is (no ``process_bbox``).
        abs_depth: N×2 [right, left] absolute root depths in mm (RHD/STB: the file's scalar twice).
        annot_id: N, the file's ids of these samples (for messages).
        path: the file they come from.
    """

    bbox: np.ndarray
    abs_depth: np.ndarray
    annot_id: np.ndarray
    path: str

    def __post_init__(self) -> None:
        n = len(self.annot_id)
        if self.bbox.shape != (n, 4) or self.abs_depth.shape != (n, 2):
            raise ValueError(f"RootNet samples need N×4 boxes and N×2 depths for N={n} ids")
        for array in (self.bbox, self.abs_depth, self.annot_id):
            array.setflags(write=False)

    def __len__(self) -> int:
        return len(self.annot_id)

    def subset(self, positions: Sequence[int] | np.ndarray) -> RootNetSamples:
        """The samples at ``positions`` (e.g. those the data module keeps), in that order."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        return RootNetSamples(self.bbox[pos].copy(), self.abs_depth[pos].copy(), self.annot_id[pos].copy(), self.path)


@dataclass(frozen=True, eq=False)
class RootNetOutput:
    """A checked RootNet output file, sorted by ``annot_id`` (:func:`read_rootnet_output`).

    Attributes:
        path: the file.
        depth_kind: ``"scalar"`` (RHD, STB) or ``"pair"`` (InterHand2.6M).
        annot_id: N sorted, unique ids.
        bbox: N×4 [x, y, w, h], finite, w > 0, h > 0.
        abs_depth: N×2 [right, left] finite depths in mm (a scalar file: its value twice, checked positive).
    """

    path: Path
    depth_kind: DepthKind
    annot_id: np.ndarray
    bbox: np.ndarray
    abs_depth: np.ndarray

    def __len__(self) -> int:
        return len(self.annot_id)

    def select(
        self,
        ids: Sequence[int] | np.ndarray,
        what: str,
        *,
        exact: bool = False,
        present: np.ndarray | None = None,
    ) -> RootNetSamples:
        """The entries of ``ids`` (a data set's evaluation samples, in order).

        Args:
            ids: each sample's ``annot_id``.
            what: how messages name the samples (e.g. ``"the 2728 samples of RHD evaluation (/data/RHD)"``).
            exact: the file must hold no other id either (RHD, STB: the file covers exactly the evaluation split).
            present: N×2 bool [right, left] hands each sample shows; their depths must be positive (a pair file's
                depth of an absent hand is never used). ``None``: both.

        Raises:
            RootNetError: ids missing from the file, other ids in it (``exact``), or a non-positive depth of a hand
                the sample shows; naming the file and the ids.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        pos = np.searchsorted(self.annot_id, ids)
        pos = np.minimum(pos, max(len(self.annot_id) - 1, 0))
        found = (self.annot_id[pos] == ids) if len(self.annot_id) else np.zeros(len(ids), dtype=bool)
        if not found.all():
            missing = ids[~found]
            raise RootNetError(
                f"{self.path}: no entry for {len(missing)} of {what} (annot_id {_listed(missing)}). The file must hold "
                f"one entry per evaluation sample: is it the RootNet output of this data set and split "
                f"({_file_hint()})? How annot_id names a sample: docs/datasets/rootnet.md."
            )
        if exact and len(self.annot_id) != len(np.unique(ids)):
            extra = np.setdiff1d(self.annot_id, ids)
            raise RootNetError(
                f"{self.path}: {len(self.annot_id)} entries for {what}; annot_id {_listed(extra)} name(s) no sample. "
                "The file must cover exactly the evaluation split: is it the RootNet output of this data set and "
                "split? How annot_id names a sample: docs/datasets/rootnet.md."
            )
        depth = self.abs_depth[pos]
        used = np.ones(depth.shape, dtype=bool) if present is None else np.asarray(present, dtype=bool).reshape(-1, 2)
        bad = np.flatnonzero(((depth <= 0) & used).any(axis=1))
        if len(bad):
            shown = depth[bad[0]].tolist() if self.depth_kind == "pair" else float(depth[bad[0], 0])
            raise RootNetError(
                f"{self.path}: abs_depth must be positive (mm) for every hand a sample shows, but annot_id "
                f"{_listed(ids[bad])} of {what} has {shown}"
            )
        return RootNetSamples(self.bbox[pos].copy(), depth.copy(), ids.copy(), str(self.path))


def _file_hint() -> str:
    return ", ".join(f"{name}: {file}" for name, file in ROOTNET_FILE_NAMES.items())


def read_rootnet_output(path: str | PathLike[str], depth: DepthKind) -> RootNetOutput:
    """Read and check a RootNet output file (module docstring for the format).

    Args:
        path: the JSON file.
        depth: ``"scalar"``: ``abs_depth`` is one number (RHD, STB; a one-element list is accepted), which must be
            positive; ``"pair"``: ``[right, left]`` (InterHand2.6M), finite (positivity is checked per sample by
            :meth:`RootNetOutput.select`, for the hands a sample shows).

    Raises:
        RootNetError: the file is missing or not JSON, not a non-empty list of objects, an entry lacks ``annot_id``,
            ``bbox`` or ``abs_depth``, an ``annot_id`` is not an integer or repeats, a ``bbox`` is not 4 finite
            numbers with w, h > 0, or an ``abs_depth`` has the wrong shape or a non-finite value. The message names
            the file and the entry (position and ``annot_id``).
    """
    if depth not in ("scalar", "pair"):
        raise ValueError(f"depth must be 'scalar' or 'pair', got {depth!r}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise RootNetError(f"RootNet output file {path} (data.rootnet_output) does not exist or is not a file")
    try:
        with path.open(encoding="utf-8") as f:
            raw = json.load(f, object_hook=_Entry)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RootNetError(f"{path}: cannot read this RootNet output as JSON ({err})") from err
    if not isinstance(raw, list) or not raw:
        kind = "an empty list" if isinstance(raw, list) else _json_kind(raw)
        raise RootNetError(
            f"{path}: a RootNet output is a non-empty JSON list of {{annot_id, bbox, abs_depth}} objects, got {kind}"
        )
    n = len(raw)
    ids = np.empty(n, dtype=np.int64)
    boxes = np.empty((n, 4), dtype=np.float64)
    depths = np.empty((n, 2), dtype=np.float64)
    want = 1 if depth == "scalar" else 2
    shape = "one number" if depth == "scalar" else "[right, left], two numbers"
    for i, entry in enumerate(raw):
        if not isinstance(entry, _Entry):
            raise RootNetError(f"{path}: entry {i} is {_json_kind(entry)}, not a {{annot_id, bbox, abs_depth}} object")
        missing = [k for k in ("annot_id", "bbox", "abs_depth") if getattr(entry, k) is _Entry._MISSING]
        if missing:
            raise RootNetError(f"{path}: entry {i} has no {', '.join(missing)} (its keys: {entry.keys})")
        annot_id = _annot_id(entry.annot_id)
        if annot_id is None:
            raise RootNetError(f"{path}: entry {i}: annot_id must be an integer, got {entry.annot_id!r}")
        where = f"{path}: entry {i} (annot_id {annot_id})"
        box = _numbers(entry.bbox) if isinstance(entry.bbox, list) else None
        if box is None or len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
            raise RootNetError(f"{where}: bbox must be 4 finite numbers [x, y, w, h] with w, h > 0, got {entry.bbox!r}")
        values = _numbers(entry.abs_depth)
        if values is None or len(values) != want or (depth == "pair" and not isinstance(entry.abs_depth, list)):
            raise RootNetError(f"{where}: abs_depth must be {shape} in mm, got {entry.abs_depth!r}")
        if not all(math.isfinite(v) for v in values):
            raise RootNetError(f"{where}: abs_depth {entry.abs_depth!r} is not finite")
        if depth == "scalar" and values[0] <= 0:
            raise RootNetError(f"{where}: abs_depth must be positive (mm), got {entry.abs_depth!r}")
        ids[i] = annot_id
        boxes[i] = box
        depths[i] = values if depth == "pair" else (values[0], values[0])
    order = np.argsort(ids, kind="stable")
    ids, boxes, depths = ids[order], boxes[order], depths[order]
    repeated = np.flatnonzero(ids[1:] == ids[:-1])
    if len(repeated):
        first = int(ids[repeated[0]])
        entries = [int(order[k]) for k in np.flatnonzero(ids == first)]
        raise RootNetError(f"{path}: annot_id {first} appears in more than one entry (entries {entries})")
    for array in (ids, boxes, depths):
        array.setflags(write=False)
    return RootNetOutput(path=path, depth_kind=depth, annot_id=ids, bbox=boxes, abs_depth=depths)


def box_centre_inside(rootnet_bbox: np.ndarray, gt_bbox: np.ndarray) -> np.ndarray:
    """Whether the centre of each ground-truth box (N×4 [x, y, w, h]) lies inside its RootNet box (N×4).

    RootNet's boxes are InterNet's processed ground-truth boxes (internet §5.2), so the ground-truth box of the sample
    an entry really belongs to has its centre well inside; a centre outside means the entry belongs to another
    sample (a wrong id mapping, another split, view or hand).
    """
    r = np.asarray(rootnet_bbox, dtype=np.float64).reshape(-1, 4)
    g = np.asarray(gt_bbox, dtype=np.float64).reshape(-1, 4)
    cx, cy = g[:, 0] + 0.5 * g[:, 2], g[:, 1] + 0.5 * g[:, 3]
    return (cx >= r[:, 0]) & (cx <= r[:, 0] + r[:, 2]) & (cy >= r[:, 1]) & (cy <= r[:, 1] + r[:, 3])
