"""InterHand2.6M's camera model (``docs/reference/datasets.md`` §C.3): world → camera → pixel, in mm and px.

X_cam = R·(X_world − campos) with the camera's ``camrot`` R and ``campos`` (:func:`world_to_camera`);
u = fx·x/z + cx, v = fy·y/z + cy (:func:`camera_to_pixel`), as InterNet's ``world2cam`` and ``cam2pixel``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["camera_to_pixel", "world_to_camera"]


def world_to_camera(world: np.ndarray, camrot: np.ndarray, campos: np.ndarray) -> np.ndarray:
    """X_cam = R·(X_world − campos) for N×3 points in mm (datasets §C.3; InterNet's ``world2cam``)."""
    world = np.asarray(world, dtype=np.float64).reshape(-1, 3)
    rot = np.asarray(camrot, dtype=np.float64).reshape(3, 3)
    return (world - np.asarray(campos, dtype=np.float64).reshape(1, 3)) @ rot.T


def camera_to_pixel(cam: np.ndarray, focal: np.ndarray, princpt: np.ndarray) -> np.ndarray:
    """u = fx·x/z + cx, v = fy·y/z + cy (InterNet's ``cam2pixel``); N×3 mm → N×2 px (z must not be 0)."""
    cam = np.asarray(cam, dtype=np.float64).reshape(-1, 3)
    return cam[:, :2] / cam[:, 2:3] * np.asarray(focal, dtype=np.float64) + np.asarray(princpt, dtype=np.float64)
