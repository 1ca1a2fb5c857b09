"""InterHand2.6M trees for the tests (``docs/reference/datasets.md`` §C.1-§C.3).

:func:`write_interhand_tree` writes the synthetic set (:func:`internet_plus.data.synthetic.interhand.
write_interhand_split`) for several splits with plain grey frames (:func:`write_grey_frames`, fast to write and to
decode); :func:`write_annotation_files` writes a test's own ``data``, ``camera`` and ``joint_3d`` content in the release
v1.0 layout (``annotations/<split>/InterHand2.6M_<split>_{data,camera,joint_3d}.json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from internet_plus.data.synthetic.interhand import InterHandSplit, write_interhand_split

__all__ = ["write_annotation_files", "write_grey_frames", "write_interhand_tree"]


def write_annotation_files(root: Path, split: str, *, data: Any, camera: Any, joint_3d: Any) -> dict[str, Path]:
    """The three annotation files of ``split`` in the v1.0 layout, as JSON; returns kind → path."""
    folder = root / "annotations" / split
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, content in (("data", data), ("camera", camera), ("joint_3d", joint_3d)):
        paths[kind] = folder / f"InterHand2.6M_{split}_{kind}.json"
        paths[kind].write_text(json.dumps(content))
    return paths


def write_grey_frames(root: Path, split: str, names: Iterable[str], size: tuple[int, int]) -> None:
    """One uniform grey JPEG of ``size`` (W, H) at ``images/<split>/<name>`` for each name."""
    image = np.full((size[1], size[0], 3), 90, dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    for name in names:
        path = root / "images" / split / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded.tobytes())


def write_interhand_tree(
    root: Path, splits: dict[str, int], images: bool = True, **kwargs: Any
) -> dict[str, InterHandSplit]:
    """``{split: number of annotations}`` of the synthetic set under ``root`` (seed and first id per split; other
    arguments go to ``write_interhand_split``), with ``images/<split>/`` and, with ``images``, grey frames."""
    written = {}
    for i, (split, num) in enumerate(splits.items()):
        split_files = write_interhand_split(root, split, num, seed=i, first_id=100_000 * i, **kwargs)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        if images:
            write_grey_frames(root, split, split_files.file_names, split_files.image_size)
        written[split] = split_files
    return written
