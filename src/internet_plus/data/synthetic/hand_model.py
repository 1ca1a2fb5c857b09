"""A 21-joint kinematic model of an adult right hand, with anatomical joint limits and common gestures.

Coordinates are millimetres in the *hand frame*: origin at the wrist, +y distal (towards the middle finger), +x
radial (towards the thumb of a right hand), +z palmar (out of the palm). Joints come in the project's order
(:mod:`internet_plus.joints`): wrist, then thumb, index, middle, ring, little, each base → tip. A left hand is the
mirror image (x → −x) of a right hand.

Proportions follow adult hand anthropometry (segment lengths of a ~19 cm hand, e.g. Buchholz et al. 1992, rounded):
metacarpal heads on an arc 77-93 mm from the wrist, phalanges 20-45 mm. Joint limits (degrees): MCP flexion −20…90,
abduction ±20, PIP 0…110, DIP 0…80 (loosely coupled to PIP); thumb CMC opposition 0…70, MCP 0…60, IP −10…80.
"""

from __future__ import annotations

import numpy as np

#: Base joint of each digit in the hand frame, mm (thumb CMC, then index..little MCP).
DIGIT_BASES = np.array(
    [
        [22.0, 28.0, 6.0],  # thumb CMC
        [24.0, 88.0, 0.0],  # index MCP
        [5.0, 93.0, 0.0],  # middle MCP
        [-13.0, 88.0, 0.0],  # ring MCP
        [-29.0, 78.0, 0.0],  # little MCP
    ]
)
#: Segment lengths base → tip, mm (thumb: metacarpal, proximal, distal phalanx; fingers: the three phalanges).
SEGMENT_LENGTHS = np.array(
    [
        [44.0, 32.0, 27.0],
        [42.0, 25.0, 22.0],
        [46.0, 29.0, 24.0],
        [43.0, 27.0, 23.0],
        [34.0, 20.0, 20.0],
    ]
)
#: Rest splay of each finger in the palm plane, degrees (positive: towards the thumb).
FINGER_SPLAY = np.array([0.0, 8.0, 0.0, -7.0, -15.0])

MCP_FLEX = (-20.0, 90.0)
MCP_ABDUCTION = (-20.0, 20.0)
PIP_FLEX = (0.0, 110.0)
DIP_FLEX = (0.0, 80.0)
THUMB_OPPOSITION = (0.0, 70.0)
THUMB_MCP = (0.0, 60.0)
THUMB_IP = (-10.0, 80.0)

#: Gestures as per-digit curl in [0, 1] (thumb, index, middle, ring, little) and thumb opposition in [0, 1].
GESTURES: dict[str, tuple[tuple[float, float, float, float, float], float]] = {
    "open": ((0.0, 0.0, 0.0, 0.0, 0.0), 0.1),
    "fist": ((0.8, 1.0, 1.0, 1.0, 1.0), 0.8),
    "point": ((0.8, 0.0, 1.0, 1.0, 1.0), 0.8),
    "peace": ((0.8, 0.0, 0.0, 1.0, 1.0), 0.8),
    "thumbs_up": ((0.0, 1.0, 1.0, 1.0, 1.0), 0.0),
    "pinch": ((0.5, 0.55, 0.1, 0.1, 0.1), 0.9),
    "ok": ((0.55, 0.6, 0.0, 0.0, 0.0), 1.0),
    "rock": ((0.8, 0.0, 1.0, 1.0, 0.0), 0.8),
    "three": ((0.8, 0.0, 0.0, 0.0, 1.0), 0.8),
    "claw": ((0.4, 0.3, 0.3, 0.3, 0.3), 0.5),
}


def _rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def finger_chain(base: np.ndarray, lengths: np.ndarray, forward: np.ndarray, palmar: np.ndarray, flex: np.ndarray):
    """Joints of one digit: ``base`` and the ends of its three segments, bent towards ``palmar`` by ``flex`` (deg)."""
    cumulative = np.deg2rad(np.cumsum(flex))
    dirs = np.cos(cumulative)[:, None] * forward + np.sin(cumulative)[:, None] * palmar
    return np.vstack([base, base + np.cumsum(lengths[:, None] * dirs, axis=0)])


def hand_joints(angles: dict[str, np.ndarray], scale: float = 1.0, bone_jitter: np.ndarray | None = None) -> np.ndarray:
    """Forward kinematics: joint angles (degrees) -> 21×3 joints of a right hand in the hand frame (mm).

    ``angles`` holds ``flex`` (5×3, per digit and joint), ``abduction`` (5,) and ``opposition`` (thumb, scalar).
    ``bone_jitter`` (5×3) multiplies each segment length.
    """
    lengths = SEGMENT_LENGTHS * (1.0 if bone_jitter is None else bone_jitter)
    joints = [np.zeros(3)]
    for d in range(5):
        base = DIGIT_BASES[d].copy()
        if d == 0:
            # The thumb's rest direction points radially-distally; opposition swings it across and in front of the
            # palm, and its flexion axis turns with it so that flexing curls the thumb towards the little finger.
            o = np.deg2rad(float(angles["opposition"]))
            rest, across = _unit(np.array([0.75, 0.62, 0.2])), _unit(np.array([-0.15, 0.55, 0.82]))
            forward = _unit(np.cos(o) * rest + np.sin(o) * across)
            towards_palm = np.array([-1.0, 0.1, 0.5])
            palmar = _unit(towards_palm - forward * (forward @ towards_palm))
            spread = _rot_z(float(angles["abduction"][0]))
            forward, palmar = spread @ forward, spread @ palmar
        else:
            forward = _rot_z(FINGER_SPLAY[d] + float(angles["abduction"][d])) @ np.array([0.0, 1.0, 0.0])
            palmar = np.array([0.0, 0.0, 1.0])
        joints.extend(finger_chain(base, lengths[d], forward, palmar, np.asarray(angles["flex"][d], dtype=float)))
    return np.asarray(joints) * scale


def gesture_angles(curl: np.ndarray, opposition: float, rng: np.random.Generator, noise_deg: float = 8.0):
    """Joint angles of a gesture (per-digit curl in [0, 1]) with noise, clipped to the anatomical limits."""
    curl = np.clip(np.asarray(curl, dtype=float), 0, 1)
    flex = np.zeros((5, 3))
    flex[1:, 0] = curl[1:] * 85
    flex[1:, 1] = curl[1:] * 100
    flex[1:, 2] = curl[1:] * 65
    flex[0] = [curl[0] * 20, curl[0] * 50, curl[0] * 70]
    flex += rng.normal(0, noise_deg, size=flex.shape)
    flex[1:, 0] = np.clip(flex[1:, 0], *MCP_FLEX)
    flex[1:, 1] = np.clip(flex[1:, 1], *PIP_FLEX)
    flex[1:, 2] = np.clip(flex[1:, 2], *DIP_FLEX)
    flex[0, 0] = np.clip(flex[0, 0], 0, 30)
    flex[0, 1] = np.clip(flex[0, 1], *THUMB_MCP)
    flex[0, 2] = np.clip(flex[0, 2], *THUMB_IP)
    abduction = np.clip(rng.normal(0, 6, size=5) * (1 - 0.7 * curl), *MCP_ABDUCTION)
    opp = np.clip(opposition * THUMB_OPPOSITION[1] + rng.normal(0, 8), *THUMB_OPPOSITION)
    return {"flex": flex, "abduction": abduction, "opposition": opp}


def random_angles(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random pose inside the limits: each digit's curl uniform, DIP loosely coupled to PIP."""
    return gesture_angles(rng.uniform(0, 1, size=5), float(rng.uniform(0, 1)), rng, noise_deg=12.0)


def sample_hand_pose(rng: np.random.Generator, gesture_fraction: float = 0.6) -> tuple[np.ndarray, str]:
    """A right hand in the hand frame (21×3 mm): a common gesture (with noise) or a random pose, adult proportions.

    Returns the joints and the name of the gesture (``"random"`` for a random pose).
    """
    if rng.random() < gesture_fraction:
        name = str(rng.choice(list(GESTURES)))
        curl, opposition = GESTURES[name]
        angles = gesture_angles(np.array(curl), opposition, rng)
    else:
        name, angles = "random", random_angles(rng)
    scale = float(rng.uniform(0.85, 1.15))
    jitter = rng.uniform(0.95, 1.05, size=(5, 3))
    return hand_joints(angles, scale=scale, bone_jitter=jitter), name


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3-D rotation matrix (from a random unit quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def tilted_rotation(rng: np.random.Generator, max_tilt_deg: float) -> np.ndarray:
    """A rotation that keeps the hand roughly facing the camera: the in-plane angle (about the camera's optical
    axis) is uniform, the out-of-plane tilts about the camera's x and y axes are uniform in ±``max_tilt_deg``, and
    half of the hands are turned 180° about their long axis (palm side towards the camera instead of the back)."""
    theta = rng.uniform(-np.pi, np.pi)
    a, b = np.deg2rad(rng.uniform(-max_tilt_deg, max_tilt_deg, 2))
    in_plane = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    tilt_x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    tilt_y = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    turn = np.diag([-1.0, 1.0, -1.0]) if rng.random() < 0.5 else np.eye(3)
    return in_plane @ tilt_x @ tilt_y @ turn


def mirror_to_left(joints_right: np.ndarray) -> np.ndarray:
    """The left hand whose hand-frame joints mirror a right hand's (x → −x)."""
    out = np.array(joints_right, dtype=float, copy=True)
    out[:, 0] *= -1
    return out
