"""STB trees for the tests (``docs/reference/datasets.md`` §B.1-§B.4).

Per sequence: ``labels/<seq>_SK.mat`` and ``labels/<seq>_BB.mat`` (one variable ``handPara``, 3×21×N in mm, palm
first, then the fingers little → thumb, each MCP → tip) and the 640×480 frames ``SK_color_<i>.png``,
``SK_depth_<i>.png``, ``BB_left_<i>.png``, ``BB_right_<i>.png`` in ``images/<seq>/`` (the official layout) or
``<seq>/`` (``layout="flat"``). The camera constants are restated as printed in datasets §B.4, independently of
:mod:`internet_plus.data.stb`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.io

__all__ = [
    "BASELINE",
    "IMAGE_SIZE",
    "K_BB",
    "K_SK",
    "NATIVE_OF_PROJECT",
    "R_SK",
    "SEQUENCES",
    "T_SK",
    "color_to_sk",
    "sequence_dir",
    "write_frame",
    "write_labels",
]

#: The 12 sequences: 6 backgrounds × {Counting, Random} (datasets §B.1).
SEQUENCES = [f"B{b}{kind}" for b in range(1, 7) for kind in ("Counting", "Random")]
#: Every view's frame size (W, H).
IMAGE_SIZE = (640, 480)
#: RealSense colour intrinsics and the Bumblebee2 intrinsics (fx, fy, cx, cy); the stereo baseline in mm.
K_SK = (607.92271, 607.88192, 314.78337, 236.42484)
K_BB = (822.79041, 822.79041, 318.47345, 250.31296)
BASELINE = 120.054
#: X_SK = R·X_color + T: the ``_SK`` labels are in the depth camera's frame (R to 6 decimals as printed, T in mm).
R_SK = np.array([[0.999924, -0.003042, -0.011952], [0.002978, 0.999981, -0.005328], [0.011968, 0.005292, 0.999914]])
T_SK = np.array([-24.0381, -0.4563, -1.2326])
#: STB native joint of project joint j (datasets §B.2): 0 palm (→ wrist); project finger f (thumb, index, middle,
#: ring, little) is STB finger 4 − f (STB lists little, ring, middle, index, thumb); both orders go base → tip.
NATIVE_OF_PROJECT = np.array([0] + [1 + 4 * (4 - f) + k for f in range(5) for k in range(4)])


def color_to_sk(xyz_color: np.ndarray) -> np.ndarray:
    """Points (…×3 mm) from the colour camera's frame into the depth camera's, the frame of the ``_SK`` labels."""
    return np.asarray(xyz_color, dtype=np.float64) @ R_SK.T + T_SK


def sequence_dir(root: Path, sequence: str, layout: str = "official") -> Path:
    """The (created) image folder of ``sequence``: ``images/<seq>/``, or ``<seq>/`` with ``layout="flat"``."""
    folder = root / "images" / sequence if layout == "official" else root / sequence
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_labels(root: Path, sequence: str, view: str, hand_para: np.ndarray) -> Path:
    """``labels/<seq>_<view>.mat`` (``view``: ``SK`` or ``BB``) holding ``handPara`` (3×21×N mm, native order)."""
    path = root / "labels" / f"{sequence}_{view}.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"handPara": np.asarray(hand_para, dtype=np.float64)})
    return path


def write_frame(folder: Path, kind: str, frame: int, bgr: np.ndarray) -> Path:
    """Frame ``frame`` of one view: ``<folder>/<kind>_<frame>.png`` (``kind``: ``SK_color``, ``SK_depth``,
    ``BB_left``, ``BB_right``; no zero padding, datasets §B.1)."""
    path = folder / f"{kind}_{frame}.png"
    assert cv2.imwrite(str(path), bgr)
    return path
