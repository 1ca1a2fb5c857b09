"""InterHand2.6M's joints in the project's terms: the native joint order and which joints are annotated.

InterHand2.6M's native joint order (per hand: thumb tip → base, index … pinky tip → base, wrist last; right hand
0-20, left 21-41; ``docs/reference/datasets.md`` §C.4) becomes the project order in exactly one place,
:func:`native_to_project`, with the index array :data:`PROJECT_FROM_INTERHAND`.

**Validity** (``docs/reference/internet.md`` §6.2, datasets §C.6): ``joint_annotated`` = data.json ``joint_valid``,
each hand multiplied by its own wrist's validity (an invalid root drops the whole hand; :func:`annotation_validity`).
"""

from __future__ import annotations

import numpy as np

from internet_plus.joints import JOINTS_PER_HAND, ROOTS

__all__ = ["PROJECT_FROM_INTERHAND", "annotation_validity", "native_to_project"]


def _project_from_interhand() -> np.ndarray:
    """Project joint i = native joint ``PROJECT_FROM_INTERHAND[i]`` (datasets §C.4 → the project's order)."""
    per_hand = [20]  # wrist
    for finger in range(5):  # thumb, index, middle, ring, little
        per_hand += [4 * finger + (3 - k) for k in range(4)]  # base (native 4f+3) → tip (native 4f)
    per_hand_arr = np.asarray(per_hand, dtype=np.int64)
    return np.concatenate([per_hand_arr, per_hand_arr + JOINTS_PER_HAND])  # right block first in both orders


#: Index array native → project order (right hand first in both; per hand wrist-first, fingers base → tip).
PROJECT_FROM_INTERHAND: np.ndarray = _project_from_interhand()


def native_to_project(array_: np.ndarray, axis: int = 0) -> np.ndarray:
    """Reorder the 42-joint ``axis`` from InterHand2.6M's native order to the project's (the one place it happens)."""
    return np.take(np.asarray(array_), PROJECT_FROM_INTERHAND, axis=axis)


def annotation_validity(raw_valid: np.ndarray) -> np.ndarray:
    """``joint_annotated`` from data.json ``joint_valid`` (project order, …×42): each hand × its wrist (§6.2, §7.8)."""
    valid = (np.asarray(raw_valid) > 0).astype(np.float64)
    out = valid.copy()
    for root in ROOTS:
        block = slice(root, root + JOINTS_PER_HAND)
        out[..., block] *= valid[..., root : root + 1]
    return out
