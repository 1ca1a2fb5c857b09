"""RHD_published_v2 trees for the tests (``docs/reference/datasets.md`` §A.1, §A.2, §A.4).

A split is ``<root>/<split>/color/%05d.png``, ``<root>/<split>/mask/%05d.png`` and ``anno_<split>.pickle``: a dict
from sample id to ``{"xyz": 42×3 metres, "uv_vis": 42×3 (u, v, visible), "K": 3×3}`` in RHD's native joint order
(left hand 0-20, right 21-41), pickled with protocol 2 as the official file.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

__all__ = ["rhd_annotation", "write_rhd_split"]


def rhd_annotation(xyz_m: np.ndarray, K: np.ndarray, vis: np.ndarray | float = 1.0) -> dict[str, np.ndarray]:
    """One sample's annotation: ``xyz`` (42×3 m), ``uv_vis`` = the projection of ``xyz`` with ``K`` and ``vis``, and
    ``K``, all float32 (the official dtype)."""
    xyz = np.asarray(xyz_m, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    proj = xyz @ K.T
    uv_vis = np.zeros((len(xyz), 3))
    uv_vis[:, :2] = proj[:, :2] / proj[:, 2:]
    uv_vis[:, 2] = vis
    return {"xyz": xyz.astype(np.float32), "uv_vis": uv_vis.astype(np.float32), "K": K.astype(np.float32)}


def write_rhd_split(
    root: Path,
    split: str,
    annotations: Mapping[int, Mapping[str, np.ndarray]],
    colors: Mapping[int, np.ndarray | Path],
    masks: Mapping[int, np.ndarray],
) -> Path:
    """Write one split under ``root``: each sample's colour image (an array, BGR, or a file to copy), its class-id
    mask and the annotation pickle. Returns ``root/<split>``."""
    base = root / split
    (base / "color").mkdir(parents=True, exist_ok=True)
    (base / "mask").mkdir(parents=True, exist_ok=True)
    for sample_id in annotations:
        name = f"{sample_id:05d}.png"
        color = colors[sample_id]
        if isinstance(color, Path):
            shutil.copy(color, base / "color" / name)
        else:
            assert cv2.imwrite(str(base / "color" / name), color)
        assert cv2.imwrite(str(base / "mask" / name), masks[sample_id])
    with (base / f"anno_{split}.pickle").open("wb") as f:
        pickle.dump(dict(annotations), f, protocol=2)
    return base
