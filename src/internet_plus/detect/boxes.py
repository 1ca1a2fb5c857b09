"""One hand box per image from MediaPipe's detections (``predict.py boxes=auto``).

InterNet crops one box per image and predicts both hands in it (internet §6.1, §9): a box holding two interacting
hands, or one hand. :func:`choose_box` picks that box from the detected hands:

* **Two hands close enough to interact share one box.** Two hands are close (:func:`are_interacting`) when the gap
  between their landmark boxes (:func:`box_gap`: the Euclidean distance between the two rectangles, 0 when they
  touch or overlap) is at most ``interaction_gap`` times the size of the smaller hand (:func:`hand_size`: the longer
  side of its landmark box). ``interaction_gap=0`` joins only hands whose landmark boxes overlap or touch. The rule
  is geometric only: MediaPipe's handedness labels are not consulted (they can be wrong on hands that touch).
* **Otherwise one hand:** the most confident one, or, when a previous box is given (the previous frame of a video),
  the hand that overlaps it most (so that the crop does not jump between two distant hands from frame to frame);
  the most confident one when none overlaps it.

The box is the landmarks' extent (the union of both hands' extents for a pair) grown by ``margin`` times its width
on the left and right and times its height at the top and bottom (:func:`grow`). The landmark extent is tighter than
an annotated hand box (MediaPipe's fingertip landmarks sit inside the finger ends, and RHD's annotated box is the
keypoints' tight box ×1.2), and InterNet's ``process_bbox`` then squares it and enlarges it ×1.25, so the margin is
modest: 0.2 gives the largest mean IoU with the annotated boxes of the real RHD sample photos (0.84 before, 0.90
after ``process_bbox``; docs/detection.md has the measurement).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from internet_plus.detect.mediapipe_hands import HandDetection

__all__ = ["BoxRule", "are_interacting", "box_gap", "box_iou", "choose_box", "grow", "hand_size", "union"]

Box = Sequence[float]


@dataclass(frozen=True)
class BoxRule:
    """How detections become a box.

    Attributes:
        margin: fraction of the landmark box's width (height) added on the left and right (top and bottom); >= 0.
        interaction_gap: two hands share a box when the gap between their landmark boxes is at most this many times
            the smaller hand's size; >= 0.
    """

    margin: float = 0.2
    interaction_gap: float = 0.5

    def __post_init__(self) -> None:
        for name in ("margin", "interaction_gap"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"detect.{name}={value} must be a finite number >= 0")


def box_gap(a: Box, b: Box) -> float:
    """The Euclidean distance between two ``[x, y, w, h]`` rectangles (0 when they touch or overlap)."""
    dx = max(0.0, b[0] - (a[0] + a[2]), a[0] - (b[0] + b[2]))
    dy = max(0.0, b[1] - (a[1] + a[3]), a[1] - (b[1] + b[3]))
    return math.hypot(dx, dy)


def hand_size(box: Box) -> float:
    """A hand's size: the longer side of its landmark box."""
    return float(max(box[2], box[3]))


def are_interacting(a: Box, b: Box, interaction_gap: float) -> bool:
    """Whether two hands' landmark boxes are close enough to crop together (the module docstring's rule)."""
    return box_gap(a, b) <= interaction_gap * min(hand_size(a), hand_size(b))


def union(a: Box, b: Box) -> list[float]:
    """The smallest ``[x, y, w, h]`` box holding both boxes."""
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def grow(box: Box, margin: float) -> list[float]:
    """``box`` grown by ``margin`` × its width on the left and right and × its height at the top and bottom."""
    x, y, w, h = (float(v) for v in box)
    return [x - margin * w, y - margin * h, w * (1.0 + 2.0 * margin), h * (1.0 + 2.0 * margin)]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``[x, y, w, h]`` boxes (0 when either is empty)."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, iw) * max(0.0, ih)
    total = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / total) if total > 0 else 0.0


def choose_box(
    detections: Sequence[HandDetection], rule: BoxRule, previous: Box | None = None
) -> tuple[list[float], tuple[int, ...]] | None:
    """The crop box for ``detections`` (most confident first, as :class:`HandDetector` returns them) and the indices
    of the detections it holds; ``None`` when there is no detection.

    Two hands share the box when :func:`are_interacting`; otherwise the box holds one hand: the one overlapping
    ``previous`` most when given (the previous frame's box), else the most confident.
    """
    if not detections:
        return None
    extents = [d.extent() for d in detections]
    if len(extents) >= 2 and are_interacting(extents[0], extents[1], rule.interaction_gap):
        return grow(union(extents[0], extents[1]), rule.margin), (0, 1)
    best = 0
    if previous is not None:
        overlaps = [box_iou(e, previous) for e in extents]
        if max(overlaps) > 0.0:
            best = max(range(len(extents)), key=lambda k: overlaps[k])
    return grow(extents[best], rule.margin), (best,)
