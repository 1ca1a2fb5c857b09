"""The project's single joint convention (``docs/reference/conventions.md``, "Joint convention").

42 joints: the right hand 0-20, then the left hand 21-41. Inside each hand:
0 wrist; 1-4 thumb (CMC/base to tip); 5-8 index (MCP to tip); 9-12 middle; 13-16 ring; 17-20 little.
Roots: 0 (right wrist) and 21 (left wrist). Coordinates: camera frame, millimetres, x right, y down, z forward.

Every data set maps its native order into this one in exactly one place (its own module); everything else in the
package (codec, losses, metrics, drawing, flipping) only ever sees this order.
"""

from __future__ import annotations

import numpy as np

JOINTS_PER_HAND = 21
NUM_JOINTS = 2 * JOINTS_PER_HAND
RIGHT, LEFT = 0, 1
HAND_NAMES = ("right", "left")
ROOT_INDEX = 0  # within a hand
ROOTS = (0, JOINTS_PER_HAND)  # right wrist, left wrist

FINGER_NAMES = ("thumb", "index", "middle", "ring", "little")

#: Names of the 21 joints of one hand, in the project's order.
HAND_JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(f"{finger}{k}" for finger in FINGER_NAMES for k in range(1, 5))

#: Names of all 42 joints (``r_`` right hand, ``l_`` left hand).
JOINT_NAMES: tuple[str, ...] = tuple(f"r_{n}" for n in HAND_JOINT_NAMES) + tuple(f"l_{n}" for n in HAND_JOINT_NAMES)

#: Parent of each joint inside one hand (-1 for the wrist): each finger's base hangs from the wrist,
#: each further joint from the previous one.
HAND_PARENTS: tuple[int, ...] = (-1,) + tuple(0 if k == 0 else 1 + 4 * f + k - 1 for f in range(5) for k in range(4))

#: Bones of one hand as (parent, child) pairs, 20 of them.
HAND_BONES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(HAND_PARENTS) if p >= 0)

#: Bones of both hands (indices into the 42 joints).
BONES: tuple[tuple[int, int], ...] = HAND_BONES + tuple(
    (p + JOINTS_PER_HAND, c + JOINTS_PER_HAND) for p, c in HAND_BONES
)

#: Joint permutation of a horizontal flip: the right and left blocks swap places.
FLIP_PERMUTATION: np.ndarray = np.concatenate([np.arange(JOINTS_PER_HAND, NUM_JOINTS), np.arange(0, JOINTS_PER_HAND)])


def hand_slice(hand: int) -> slice:
    """Slice of the 42-joint array that holds ``hand`` (``RIGHT`` or ``LEFT``)."""
    start = hand * JOINTS_PER_HAND
    return slice(start, start + JOINTS_PER_HAND)


def finger_of(joint: int) -> int:
    """Finger index 0-4 of a joint inside one hand, or -1 for the wrist."""
    j = joint % JOINTS_PER_HAND
    return -1 if j == 0 else (j - 1) // 4
