"""The comparison's metric math as small pure numpy functions (``docs/compare.md`` states every definition).

One hand at a time: 21 joints in the project's per-hand order (:mod:`internet_plus.joints`), a boolean mask of the
annotated ones, 2-D points in pixels of the original image and 3-D points in millimetres.

* **Landmark mapping** (:data:`MEDIAPIPE_TO_PROJECT`, :func:`landmarks_to_hand`): MediaPipe's 21 hand landmarks by
  name → the project's joint names; the two orders happen to agree, the table says so by name.
* **2-D** (:func:`point_errors`, :func:`pck`): the Euclidean pixel error of each annotated joint and the share of
  joints within a pixel threshold.
* **3-D after scale alignment** (:func:`root_relative`, :func:`scale_factor`, :func:`scale_aligned_errors`): both poses
  are made root-relative (wrist at the origin), then the prediction is multiplied by the one scale
  ``s = Σ⟨p, g⟩ / Σ⟨p, p⟩`` that minimises ``Σ ||s·p − g||²`` over the annotated joints. MediaPipe's world landmarks
  have their own origin and metric scale, ours come from an assumed camera: both systems get the same treatment.
* **3-D after Procrustes alignment** (:func:`procrustes_errors`): the similarity transform (rotation, scale,
  translation; Umeyama 1991) that best maps the prediction onto the annotation, the literature's PA-MPJPE; it also
  forgives a rotated frame (MediaPipe's world frame is tied to the hand crop, not to the camera's perspective).
* **Matching** (:func:`match_cost`, :func:`match_hands`): MediaPipe's detections are assigned to the annotated hands of
  an image by the Hungarian method on the mean landmark distance relative to the hand's size, so that a detection of
  the wrong hand (or of nothing) never counts as found.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from internet_plus.detect.mediapipe_hands import LANDMARK_NAMES
from internet_plus.joints import HAND_JOINT_NAMES, JOINTS_PER_HAND

__all__ = [
    "MATCH_MAX_COST",
    "MEDIAPIPE_TO_PROJECT",
    "landmarks_to_hand",
    "match_cost",
    "match_hands",
    "pck",
    "point_errors",
    "procrustes_errors",
    "root_relative",
    "scale_aligned_errors",
    "scale_factor",
]

#: MediaPipe landmark name → the project's per-hand joint name (``joints.HAND_JOINT_NAMES``; "1" is a finger's base,
#: "4" its tip). MediaPipe's thumb CMC is the thumb's base joint, as the data sets' first thumb joint.
MEDIAPIPE_TO_PROJECT: tuple[tuple[str, str], ...] = (
    ("WRIST", "wrist"),
    ("THUMB_CMC", "thumb1"), ("THUMB_MCP", "thumb2"), ("THUMB_IP", "thumb3"), ("THUMB_TIP", "thumb4"),
    ("INDEX_FINGER_MCP", "index1"), ("INDEX_FINGER_PIP", "index2"), ("INDEX_FINGER_DIP", "index3"),
    ("INDEX_FINGER_TIP", "index4"),
    ("MIDDLE_FINGER_MCP", "middle1"), ("MIDDLE_FINGER_PIP", "middle2"), ("MIDDLE_FINGER_DIP", "middle3"),
    ("MIDDLE_FINGER_TIP", "middle4"),
    ("RING_FINGER_MCP", "ring1"), ("RING_FINGER_PIP", "ring2"), ("RING_FINGER_DIP", "ring3"),
    ("RING_FINGER_TIP", "ring4"),
    ("PINKY_MCP", "little1"), ("PINKY_PIP", "little2"), ("PINKY_DIP", "little3"), ("PINKY_TIP", "little4"),
)  # fmt: skip

#: ``hand[j] = landmarks[_LANDMARK_OF_JOINT[j]]``: for each project joint, the MediaPipe landmark named for it.
_LANDMARK_OF_JOINT: np.ndarray = np.array(
    [
        LANDMARK_NAMES.index(dict((ours, theirs) for theirs, ours in MEDIAPIPE_TO_PROJECT)[name])
        for name in HAND_JOINT_NAMES
    ]
)

#: A detection counts as finding an annotated hand when its landmarks lie on average within this fraction of the
#: hand's size (the diagonal of the annotated joints' box) from the annotated joints.
MATCH_MAX_COST = 0.5


def landmarks_to_hand(landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe's 21 landmarks (21×D, MediaPipe's order) in the project's per-hand joint order (a new array)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape[0] != JOINTS_PER_HAND:
        raise ValueError(f"expected {JOINTS_PER_HAND} landmarks, got shape {landmarks.shape}")
    return landmarks[_LANDMARK_OF_JOINT].copy()


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance of each point pair: …×D and …×D → … (pixels for 2-D, mm for 3-D)."""
    return np.linalg.norm(np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64), axis=-1)


def pck(errors: np.ndarray, mask: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Share of the masked errors at most each threshold (T values in [0, 1]; NaN when nothing is masked)."""
    errors = np.asarray(errors, dtype=np.float64)
    scored = errors[np.broadcast_to(np.asarray(mask, dtype=bool), errors.shape)]
    limits = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if scored.size == 0:
        return np.full(limits.shape, np.nan)
    return (scored[:, None] <= limits[None, :]).mean(axis=0)


def root_relative(joints: np.ndarray) -> np.ndarray:
    """One hand's joints (21×3, wrist first) minus its wrist: the wrist becomes the origin."""
    joints = np.asarray(joints, dtype=np.float64)
    return joints - joints[0]


def scale_factor(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """The least-squares scale ``s = Σ⟨p, g⟩ / Σ⟨p, p⟩`` over the masked joints, minimising ``Σ ||s·p − g||²``.

    1.0 when the masked prediction is all zero (every scale then gives the same error).
    """
    keep = np.asarray(mask, dtype=bool)
    p = np.asarray(pred, dtype=np.float64)[keep]
    g = np.asarray(gt, dtype=np.float64)[keep]
    norm = float(np.sum(p * p))
    return float(np.sum(p * g)) / norm if norm > 0 else 1.0


def scale_aligned_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-joint 3-D errors (21, mm) after making both hands root-relative and scaling the prediction by
    :func:`scale_factor`. The wrist must be annotated (it is the origin of both)."""
    p, g = root_relative(pred), root_relative(gt)
    return point_errors(scale_factor(p, g, mask) * p, g)


def procrustes_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-joint 3-D errors (21, mm) after the similarity transform (rotation, scale, translation) that best maps the
    masked predicted joints onto the annotated ones (Umeyama 1991; a reflection is never used)."""
    keep = np.asarray(mask, dtype=bool)
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    p_mean, g_mean = pred[keep].mean(axis=0), gt[keep].mean(axis=0)
    p, g = pred[keep] - p_mean, gt[keep] - g_mean
    u, sigma, vt = np.linalg.svd(p.T @ g)
    sign = np.ones(3)
    sign[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = (u * sign) @ vt  # applied on the right: row vectors p @ rotation
    norm = float(np.sum(p * p))
    scale = float(np.sum(sigma * sign)) / norm if norm > 0 else 1.0
    return point_errors(scale * (pred - p_mean) @ rotation + g_mean, gt)


def match_cost(landmarks: np.ndarray, gt_uv: np.ndarray, mask: np.ndarray) -> float:
    """Mean pixel distance of a detection's landmarks (21×2, project order) to an annotated hand's joints, over the
    annotated joints, divided by the diagonal of those joints' box (a size-free "how far off is this hand")."""
    keep = np.asarray(mask, dtype=bool)
    gt = np.asarray(gt_uv, dtype=np.float64)[keep]
    if gt.shape[0] == 0:
        return float("inf")
    diagonal = max(float(np.linalg.norm(gt.max(axis=0) - gt.min(axis=0))), 1.0)
    return float(point_errors(np.asarray(landmarks, dtype=np.float64)[keep], gt).mean()) / diagonal


def match_hands(cost: np.ndarray, max_cost: float = MATCH_MAX_COST) -> list[int | None]:
    """For each annotated hand (row of the H×D ``cost``), the detection (column) assigned to it, or ``None``.

    The Hungarian method (``scipy.optimize.linear_sum_assignment``) minimises the total cost; a pair whose cost
    exceeds ``max_cost`` is no match (that hand was missed, that detection found something else).
    """
    cost = np.asarray(cost, dtype=np.float64).reshape(len(cost), -1)
    out: list[int | None] = [None] * cost.shape[0]
    if cost.size == 0:
        return out
    finite = np.where(np.isfinite(cost), cost, 1e12)
    for row, col in zip(*linear_sum_assignment(finite), strict=True):
        if cost[row, col] <= max_cost:
            out[int(row)] = int(col)
    return out
