"""One picture per photo for a comparison: the annotation, MediaPipe's skeletons and ours side by side, drawn with
:mod:`internet_plus.visualize` (right hand red, left hand blue), each panel titled with what it shows. A photo
smaller than :data:`MIN_SIDE` pixels is enlarged first (the coordinates with it), so that small hands stay visible."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from internet_plus.compare.labelled import LabelledImage
from internet_plus.compare.metrics import landmarks_to_hand
from internet_plus.compare.systems import OursOutput
from internet_plus.detect.mediapipe_hands import HandDetection
from internet_plus.joints import HAND_NAMES, LEFT, NUM_JOINTS, RIGHT, hand_slice
from internet_plus.visualize import draw_box, draw_hands, draw_skeleton, make_grid

__all__ = ["MIN_SIDE", "montage"]

#: Panels are enlarged until their longer side has at least this many pixels.
MIN_SIDE = 480


def _titled(image: np.ndarray, title: str) -> np.ndarray:
    """``image`` under a white band holding ``title`` (black text, sized to the image's width)."""
    width = image.shape[1]
    scale = max(0.35, width / 900.0)
    (_, text_h), baseline = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)  # one height for all titles
    band = np.full((text_h + baseline + 8, width, 3), 255, dtype=np.uint8)
    cv2.putText(band, title, (4, text_h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, image], axis=0)


def _placed(side: int, hand_joints: np.ndarray) -> np.ndarray:
    """A 42×2 array with ``hand_joints`` (21×2) in the block of ``side`` (the other block zero)."""
    joints = np.zeros((NUM_JOINTS, 2), dtype=np.float64)
    joints[hand_slice(side)] = hand_joints
    return joints


def _annotation_panel(rgb: np.ndarray, image: LabelledImage, zoom: float) -> np.ndarray:
    joints = np.zeros((NUM_JOINTS, 2), dtype=np.float64)
    valid = np.zeros(NUM_JOINTS, dtype=np.float64)
    for hand in image.hands:
        joints[hand_slice(hand.side)] = hand.uv * zoom
        valid[hand_slice(hand.side)] = hand.annotated
    names = "+".join(hand.name for hand in image.hands)
    return _titled(draw_skeleton(rgb, joints, valid), f"annotation ({names})")


def _mediapipe_panel(rgb: np.ndarray, detections: Sequence[HandDetection], title: str, zoom: float) -> np.ndarray:
    out = rgb
    for detection in detections:  # one at a time: two detections may carry the same label
        side = RIGHT if detection.handedness == HAND_NAMES[RIGHT] else LEFT
        out = draw_hands(out, _placed(side, landmarks_to_hand(detection.landmarks_px) * zoom), [side])
    return _titled(out, title)


def _ours_panel(
    rgb: np.ndarray, image: LabelledImage, output: OursOutput | None, title: str, zoom: float
) -> np.ndarray:
    if output is None:
        return _titled(rgb, title + " (no box)")
    boxed = draw_box(rgb, np.asarray(output.box_processed) * zoom)
    return _titled(draw_hands(boxed, output.uv * zoom, [hand.side for hand in image.hands]), title)


def montage(
    rgb: np.ndarray,
    image: LabelledImage,
    detections: Sequence[HandDetection],
    mediapipe_title: str,
    ours: OursOutput | None = None,
    ours_title: str = "",
) -> np.ndarray:
    """The annotation | MediaPipe | ours panels of one photo, side by side (an RGB ``uint8`` image; no ours panel
    when ``ours_title`` is empty, an undrawn one when ``ours`` is ``None``: no crop).

    MediaPipe's detections are drawn in the colour of the hand MediaPipe says they are; ours are the blocks of the
    annotated hands, with the (processed) crop box the network saw.
    """
    zoom = max(1.0, MIN_SIDE / max(rgb.shape[:2]))
    if zoom > 1.0:
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * zoom), round(rgb.shape[0] * zoom)), interpolation=cv2.INTER_CUBIC)
    panels = [_annotation_panel(rgb, image, zoom), _mediapipe_panel(rgb, detections, mediapipe_title, zoom)]
    if ours_title:
        panels.append(_ours_panel(rgb, image, ours, ours_title, zoom))
    return make_grid(panels, cols=len(panels))
