"""Drawing hand skeletons and boxes: 2-D on images (the augmentation preview, ``predict.py``'s overlays) and 3-D plots.

Joints follow the project's convention (:mod:`internet_plus.joints`): 42 joints, the right hand 0-20 and the left
hand 21-41, connected by :data:`~internet_plus.joints.BONES`. Images are H×W×3 RGB ``uint8`` arrays; the functions
return new arrays and never modify their inputs. :func:`save_3d_plot` writes a matplotlib figure to a file (with
matplotlib's file backend, ``Agg``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from internet_plus.joints import BONES, JOINTS_PER_HAND, LEFT, NUM_JOINTS, RIGHT, hand_slice

__all__ = [
    "BOX_COLOR",
    "HAND_COLORS",
    "draw_box",
    "draw_hands",
    "draw_skeleton",
    "make_grid",
    "save_3d_plot",
    "to_uint8_image",
]

#: RGB colour of each hand's bones and joints: right red, left blue.
HAND_COLORS: dict[int, tuple[int, int, int]] = {RIGHT: (255, 48, 48), LEFT: (48, 144, 255)}
#: RGB colour of the hand box drawn on ``predict.py``'s overlays.
BOX_COLOR: tuple[int, int, int] = (64, 220, 64)


def to_uint8_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A network input (3×H×W float in [0, 1], tensor or array) as an H×W×3 RGB ``uint8`` array."""
    array = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"expected a 3×H×W image, got shape {array.shape}")
    return np.ascontiguousarray((np.clip(array.transpose(1, 2, 0), 0.0, 1.0) * 255.0).round().astype(np.uint8))


def _point(xy: np.ndarray) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def draw_skeleton(
    image: np.ndarray,
    joints_xy: np.ndarray | torch.Tensor,
    valid: np.ndarray | torch.Tensor,
    *,
    colors: Mapping[int, tuple[int, int, int]] = HAND_COLORS,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of ``image`` with the 42-joint skeleton drawn: bones, then a filled dot on every joint.

    Args:
        image: H×W×3 RGB ``uint8``.
        joints_xy: 42×2 (or 42×3, the third column ignored) joint positions in the image's pixels.
        valid: 42 values; only joints with ``valid > 0`` (and finite coordinates) are drawn, and a bone only when both
            its joints are.
        colors: RGB colour per hand (``RIGHT``, ``LEFT``).
        radius, thickness: joint dot radius and bone width in pixels (default: scaled with the image size).
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got {image.dtype} of shape {image.shape}")
    xy = (joints_xy.detach().cpu().numpy() if isinstance(joints_xy, torch.Tensor) else np.asarray(joints_xy))[..., :2]
    flags = valid.detach().cpu().numpy() if isinstance(valid, torch.Tensor) else np.asarray(valid)
    if xy.shape != (NUM_JOINTS, 2) or flags.reshape(-1).shape != (NUM_JOINTS,):
        raise ValueError(f"expected {NUM_JOINTS}×2 joints and {NUM_JOINTS} flags, got {xy.shape} and {flags.shape}")
    xy = xy.astype(np.float64)
    side = max(image.shape[:2])
    # Coordinates far outside the image are not drawn (cv2 needs ints; the crop may push joints anywhere).
    limit = 4.0 * side
    show = (flags.reshape(-1) > 0) & np.isfinite(xy).all(axis=1) & (np.abs(xy) < limit).all(axis=1)
    radius = max(1, round(side / 96)) if radius is None else int(radius)
    thickness = max(1, round(side / 192)) if thickness is None else int(thickness)
    out = np.ascontiguousarray(image.copy())
    for parent, child in BONES:
        if show[parent] and show[child]:
            color = colors[child // JOINTS_PER_HAND]
            cv2.line(out, _point(xy[parent]), _point(xy[child]), color, thickness, cv2.LINE_AA)
    for joint in np.flatnonzero(show):
        cv2.circle(out, _point(xy[joint]), radius, colors[int(joint) // JOINTS_PER_HAND], -1, cv2.LINE_8)
    return out


def _hands_mask(hands: Sequence[int]) -> np.ndarray:
    """42 booleans: the joints of ``hands`` (``RIGHT``, ``LEFT``)."""
    shown = np.zeros(NUM_JOINTS, dtype=bool)
    for hand in hands:
        shown[hand_slice(hand)] = True
    return shown


def draw_hands(image: np.ndarray, joints_xy: np.ndarray, hands: Sequence[int]) -> np.ndarray:
    """A copy of ``image`` with the skeletons of ``hands`` (``RIGHT``, ``LEFT``) drawn from 42×2 ``joints_xy``."""
    return draw_skeleton(image, joints_xy, _hands_mask(hands).astype(np.float64))


def draw_box(
    image: np.ndarray, box: Sequence[float], *, color: tuple[int, int, int] = BOX_COLOR, thickness: int | None = None
) -> np.ndarray:
    """A copy of H×W×3 ``uint8`` ``image`` with the rectangle ``box`` ``[x, y, w, h]`` (pixels) drawn; a box reaching
    beyond the image is clipped by the drawing (line width scaled with the image size by default)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got {image.dtype} of shape {image.shape}")
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"box {list(box)} has a non-finite value")
    thickness = max(1, round(max(image.shape[:2]) / 320)) if thickness is None else int(thickness)
    out = np.ascontiguousarray(image.copy())
    cv2.rectangle(out, _point((x, y)), _point((x + w, y + h)), color, thickness, cv2.LINE_AA)
    return out


def save_3d_plot(joints_cam: np.ndarray, hands: Sequence[int], title: str, path: str | Path) -> None:
    """Save a 3-D plot of ``hands`` from 42×3 camera-frame joints, in mm relative to the first hand's wrist.

    Plotted as (x, z, −y): camera x to the right, depth into the page and image-up up; equal axis scales.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    origin = joints_cam[hands[0] * JOINTS_PER_HAND]
    pts = joints_cam - origin
    fig = plt.figure(figsize=(4.5, 4.5), dpi=100)
    try:
        ax = fig.add_subplot(projection="3d")
        shown = _hands_mask(hands)
        for parent, child in BONES:
            if shown[parent] and shown[child]:
                color = np.array(HAND_COLORS[child // JOINTS_PER_HAND]) / 255.0
                seg = pts[[parent, child]]
                ax.plot(seg[:, 0], seg[:, 2], -seg[:, 1], color=color, linewidth=2)
        sel = pts[shown]
        ax.scatter(sel[:, 0], sel[:, 2], -sel[:, 1], s=8, c="k")
        centre = (sel.max(0) + sel.min(0)) / 2.0
        half = max(float((sel.max(0) - sel.min(0)).max()) / 2.0, 1.0)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[2] - half, centre[2] + half)
        ax.set_zlim(-centre[1] - half, -centre[1] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("z (mm)")
        ax.set_zlabel("−y (mm)")
        ax.set_title(title, fontsize=9)
        fig.savefig(path)
    finally:
        plt.close(fig)


def make_grid(images: Sequence[np.ndarray], cols: int, *, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile equally sized H×W×3 ``uint8`` images row by row into one image.

    ``min(cols, len(images))`` columns, ``ceil(n / columns)`` rows, ``pad`` pixels of ``pad_value`` around and between
    the tiles: the result is ``rows·H + (rows + 1)·pad`` by ``columns·W + (columns + 1)·pad``. Empty cells of the last
    row stay ``pad_value``.
    """
    if not images:
        raise ValueError("make_grid needs at least one image")
    if int(cols) < 1 or int(pad) < 0:
        raise ValueError(f"make_grid: cols must be >= 1 and pad >= 0, got cols={cols}, pad={pad}")
    shape = images[0].shape
    if any(img.shape != shape or img.dtype != np.uint8 for img in images) or len(shape) != 3:
        raise ValueError(f"make_grid needs H×W×C uint8 images of one shape, got {[img.shape for img in images]}")
    h, w, c = shape
    cols = min(int(cols), len(images))
    rows = math.ceil(len(images) / cols)
    grid = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, c), pad_value, dtype=np.uint8)
    for k, img in enumerate(images):
        r, q = divmod(k, cols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[top : top + h, left : left + w] = img
    return grid
