"""The on-disk format of RHD_published_v2 (``docs/reference/datasets.md`` §A), in one place.

Both the RHD reader and the synthetic generator (which writes this exact format) use these constants, so the
native ↔ project joint mapping exists exactly once.

Native RHD order (42 keypoints): left hand 0-20, then right hand 21-41. Inside a hand: 0 wrist, then thumb 1-4,
index 5-8, middle 9-12, ring 13-16, pinky 17-20, each finger listed **tip → base** (1 = thumb tip, 4 = thumb MCP).
The project's order (:mod:`internet_plus.joints`): right hand first, each finger **base → tip**.

Annotation pickle ``<root>/<set>/anno_<set>.pickle``: ``{int id: {"xyz": (42, 3) metres, camera frame,
"uv_vis": (42, 3) [u, v, visible 0/1], "K": (3, 3)}}``; images ``<set>/{color,mask,depth}/%05d.png`` at 320×320.
"""

from __future__ import annotations

import numpy as np

from internet_plus.joints import JOINTS_PER_HAND

SETS = ("training", "evaluation")
IMAGE_SIZE = 320

# ---------------------------------------------------------------------------------------------- joint order
#: Native index (within one hand) of each project joint (within one hand): wrist, then each finger base → tip.
_HAND_PROJECT_TO_NATIVE = np.array([0] + [1 + 4 * f + (3 - k) for f in range(5) for k in range(4)])

#: ``project_joints = native_joints[PROJECT_FROM_RHD]`` (42 entries): the project's right hand comes from RHD's
#: block 21-41, the project's left hand from RHD's block 0-20.
PROJECT_FROM_RHD: np.ndarray = np.concatenate([_HAND_PROJECT_TO_NATIVE + JOINTS_PER_HAND, _HAND_PROJECT_TO_NATIVE])

#: ``native_joints = project_joints[RHD_FROM_PROJECT]`` (the inverse permutation).
RHD_FROM_PROJECT: np.ndarray = np.argsort(PROJECT_FROM_RHD)

# Aliases with the names used in the data-set docs.
RHD_TO_PROJECT = PROJECT_FROM_RHD
PROJECT_TO_RHD = RHD_FROM_PROJECT

# ---------------------------------------------------------------------------------------------- mask classes
MASK_BACKGROUND = 0
MASK_PERSON = 1
#: Class ids of the left hand (thumb 2-4, index 5-7, middle 8-10, ring 11-13, pinky 14-16, palm 17) and the right
#: hand (18-33, same layout). Each finger's three segments are numbered tip → palm.
LEFT_HAND_IDS = (2, 17)
RIGHT_HAND_IDS = (18, 33)
LEFT_PALM, RIGHT_PALM = 17, 33


def hand_of_mask_id(ids: np.ndarray) -> np.ndarray:
    """Per-pixel hand of a mask: 0 = right (project ``RIGHT``), 1 = left, -1 = not a hand."""
    ids = np.asarray(ids)
    out = np.full(ids.shape, -1, dtype=np.int8)
    out[(ids >= LEFT_HAND_IDS[0]) & (ids <= LEFT_HAND_IDS[1])] = 1
    out[(ids >= RIGHT_HAND_IDS[0]) & (ids <= RIGHT_HAND_IDS[1])] = 0
    return out


def segment_mask_id(hand: int, finger: int | None, segment_from_tip: int = 0) -> int:
    """Mask class id of a finger segment (``finger`` 0 thumb … 4 pinky; segment 0 = tip) or the palm (``None``).

    ``hand`` is the project's hand index (0 right, 1 left).
    """
    base = RIGHT_HAND_IDS[0] if hand == 0 else LEFT_HAND_IDS[0]
    if finger is None:
        return base + 15
    if not (0 <= finger < 5 and 0 <= segment_from_tip < 3):
        raise ValueError(f"finger {finger} / segment {segment_from_tip} out of range")
    return base + 3 * finger + segment_from_tip


# ---------------------------------------------------------------------------------------------- depth PNG
DEPTH_MAX_M = 5.0


def encode_rhd_depth(depth_m: np.ndarray) -> np.ndarray:
    """Depth in metres (H×W) -> RHD's RGB encoding (H×W×3 uint8): R high byte, G low byte, B = 0."""
    d16 = np.round(np.clip(np.asarray(depth_m, dtype=np.float64), 0.0, DEPTH_MAX_M) / DEPTH_MAX_M * 65535)
    d16 = d16.astype(np.uint16)
    out = np.zeros((*d16.shape, 3), dtype=np.uint8)
    out[..., 0] = d16 >> 8
    out[..., 1] = d16 & 255
    return out


def decode_rhd_depth(rgb: np.ndarray) -> np.ndarray:
    """RHD's depth PNG read as **RGB** (H×W×3) -> depth in metres: (R·256 + G) / 65535 · 5."""
    rgb = np.asarray(rgb)
    return (rgb[..., 0].astype(np.float64) * 256 + rgb[..., 1]) / 65535 * DEPTH_MAX_M


#: Mask class ids of each hand as index arrays (e.g. for ``np.bincount(mask.ravel(), minlength=34)[MASK_LEFT_IDS]``).
MASK_LEFT_IDS: np.ndarray = np.arange(LEFT_HAND_IDS[0], LEFT_HAND_IDS[1] + 1)
MASK_RIGHT_IDS: np.ndarray = np.arange(RIGHT_HAND_IDS[0], RIGHT_HAND_IDS[1] + 1)
NUM_MASK_CLASSES = 34
