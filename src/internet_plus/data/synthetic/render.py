"""Draws a synthetic sample: colour, RHD mask class ids and depth, with consistent occlusion (painter's algorithm).

Each hand is a palm polygon and 15 tapered finger segments (capsules), plus a forearm drawn as "person" (mask id 1).
Primitives of all hands are sorted by depth and drawn far to near into the colour image, the mask and the depth
buffer alike, so the three always agree about who occludes whom. Shading is brighter for nearer surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from internet_plus.data.rhd_format import MASK_PERSON, segment_mask_id

BACKGROUND_DEPTH_M = 4.0
SKIN_TONES = np.array(
    [[224, 172, 150], [241, 194, 170], [198, 134, 110], [141, 85, 60], [255, 219, 190], [180, 120, 90], [110, 70, 50]],
    dtype=np.float32,
)  # RGB
#: Radii (mm) at the base and tip of each segment, thumb then fingers (scaled with the hand).
SEGMENT_RADII = np.array([[11.0, 9.0, 8.0, 7.0], [9.0, 8.0, 7.0, 6.0]])


@dataclass
class Primitive:
    """One convex piece of a hand, in pixels, with its mean depth (mm), mask id and colour."""

    depth: float
    mask_id: int
    color: np.ndarray
    polygon: np.ndarray | None = None  # N×2 pixels (palm)
    capsule: tuple[np.ndarray, np.ndarray, float, float] | None = None  # p0, p1 (px), r0, r1 (px)


def project(points_mm: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of N×3 camera points (mm) with the 3×3 intrinsics: N×2 pixels."""
    uvw = points_mm @ K.T
    return uvw[:, :2] / uvw[:, 2:3]


#: Colour-glove colours (RGB; Wang and Popović, "Real-time hand-tracking with a color glove", SIGGRAPH 2009): thumb,
#: index, middle, ring, little finger, then the palm.
GLOVE_COLORS = np.array(
    [[230, 40, 40], [40, 200, 40], [40, 80, 230], [230, 200, 30], [200, 40, 220], [235, 235, 235]], dtype=np.float32
)


def background(rng: np.random.Generator, size: int, plain: bool = False) -> np.ndarray:
    """A varied RGB background: smooth coloured noise or a gradient, with random clutter shapes; ``plain``: one
    random colour with mild noise."""
    if plain:
        img = np.full((size, size, 3), rng.uniform(60, 200, 3), dtype=np.float32)
        noise = rng.normal(0, 4, (size // 4, size // 4, 1)).astype(np.float32)
        return np.clip(img + cv2.resize(noise, (size, size))[..., None], 0, 255)
    kind = rng.integers(3)
    if kind == 0:
        cells = int(rng.integers(2, 9))
        img = cv2.resize(rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32), (size, size), cv2.INTER_CUBIC)
    elif kind == 1:
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = np.linspace(0, 1, size, dtype=np.float32)
        ramp = t[None, :] if rng.random() < 0.5 else t[:, None]
        img = (a + (b - a) * np.broadcast_to(ramp, (size, size))[..., None]).astype(np.float32)
    else:
        img = np.full((size, size, 3), rng.uniform(30, 220, 3), dtype=np.float32)
    for _ in range(int(rng.integers(0, 9))):  # clutter
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(5, size // 4))
        shape = rng.integers(3)
        if shape == 0:
            cv2.rectangle(img, (x, y), (x + r, y + int(rng.integers(5, size // 4))), color, -1)
        elif shape == 1:
            cv2.circle(img, (x, y), r, color, -1)
        else:
            x2, y2 = (int(v) for v in rng.integers(0, size, 2))
            cv2.line(img, (x, y), (x2, y2), color, int(rng.integers(1, 8)))
    noise = rng.normal(0, rng.uniform(2, 12), (size // 4, size // 4, 1)).astype(np.float32)
    return np.clip(img + cv2.resize(noise, (size, size))[..., None], 0, 255)


#: Tints of the palmar side (lighter, pinker) and the dorsal side (darker) of the hand; fingernails' colour (RGB).
PALMAR_TINT = np.array([1.12, 1.0, 0.97], dtype=np.float32)
DORSAL_TINT = np.array([0.8, 0.78, 0.78], dtype=np.float32)
NAIL_COLOR = np.array([238, 205, 200], dtype=np.float32)


def hand_primitives(
    joints_cam: np.ndarray,
    hand: int,
    K: np.ndarray,
    skin: np.ndarray,
    scale: float,
    forearm_dir: np.ndarray,
    palm_normal: np.ndarray,
    glove: bool = False,
) -> list[Primitive]:
    """Primitives of one hand (21×3 camera mm, project order); ``hand`` 0 right / 1 left for the mask ids.

    ``palm_normal`` (camera frame, out of the palm) decides which side the camera sees: the palmar side is drawn
    lighter, the dorsal side darker and with fingernails, so that the image shows the hand's side (without this cue
    a mirrored right hand seen from the back is the same picture as a left hand seen from the front).
    ``glove``: each finger and the palm get their own :data:`GLOVE_COLORS` (still tinted by the visible side) and
    there are no fingernails.
    """
    uv = project(joints_cam, K)
    f = float(K[0, 0])
    palm_visible = float(palm_normal @ -joints_cam[0]) > 0
    tint = PALMAR_TINT if palm_visible else DORSAL_TINT
    skin = skin * tint
    finger_colors = GLOVE_COLORS[:5] * tint if glove else [skin] * 5
    prims: list[Primitive] = []
    # Palm: wrist, the two sides of the wrist, the digit bases.
    bases = joints_cam[[1, 5, 9, 13, 17]]
    wrist = joints_cam[0]
    side = (bases[1] - bases[4]) * 0.35
    palm3d = np.vstack([wrist + side, bases[0], bases[1], bases[2], bases[3], bases[4], wrist - side * 1.1])
    palm_uv = project(palm3d, K)
    prims.append(
        Primitive(
            float(palm3d[:, 2].mean()) + 5,
            segment_mask_id(hand, None),
            GLOVE_COLORS[5] * tint if glove else skin,
            polygon=cv2.convexHull(palm_uv.astype(np.float32)).reshape(-1, 2),
        )
    )
    # Forearm ("person"): from the wrist away from the fingers.
    elbow = wrist + forearm_dir * 150 * scale
    r_arm = 24 * scale * f
    prims.append(
        Primitive(
            float(max(wrist[2], elbow[2])) + 30,  # behind its own hand: an arm never hides the hand it holds
            MASK_PERSON,
            skin * 0.9,
            capsule=(uv[0], project(elbow[None], K)[0], r_arm / wrist[2], r_arm / max(elbow[2], 100.0)),
        )
    )
    for d in range(5):
        radii = SEGMENT_RADII[0 if d == 0 else 1] * scale
        chain = [1 + 4 * d + k for k in range(4)]
        for s in range(3):
            a, b = chain[s], chain[s + 1]
            za, zb = joints_cam[a, 2], joints_cam[b, 2]
            prims.append(
                Primitive(
                    float((za + zb) / 2),
                    segment_mask_id(hand, d, segment_from_tip=2 - s),
                    finger_colors[d],
                    capsule=(uv[a], uv[b], radii[s] * f / za, radii[s + 1] * f / zb),
                )
            )
        if not palm_visible and not glove:  # a fingernail on the distal segment, just in front of it
            tip, dip = joints_cam[chain[3]], joints_cam[chain[2]]
            nail_base = dip + 0.45 * (tip - dip)
            r = 0.55 * radii[3] * f / tip[2]
            prims.append(
                Primitive(
                    float((tip[2] + nail_base[2]) / 2) - 0.5,
                    segment_mask_id(hand, d, segment_from_tip=0),
                    NAIL_COLOR,
                    capsule=(project(nail_base[None], K)[0], uv[chain[3]], r, r),
                )
            )
    return prims


def _draw_capsule(canvas: np.ndarray, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, value) -> None:
    d = p1 - p0
    n = np.linalg.norm(d)
    if n > 1e-6:
        perp = np.array([-d[1], d[0]]) / n
        quad = np.array([p0 + perp * r0, p1 + perp * r1, p1 - perp * r1, p0 - perp * r0])
        cv2.fillConvexPoly(canvas, np.round(quad * 16).astype(np.int32), value, cv2.LINE_8, shift=4)
    for p, r in ((p0, r0), (p1, r1)):
        cv2.circle(canvas, (int(round(p[0] * 16)), int(round(p[1] * 16))), int(round(r * 16)), value, -1, shift=4)


def draw(
    image: np.ndarray, prims: list[Primitive], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw primitives far to near; returns colour (uint8 RGB), mask (uint8 ids), depth (float metres)."""
    size = image.shape[0]
    mask = np.zeros((size, size), np.uint8)
    depth = np.full((size, size), BACKGROUND_DEPTH_M, np.float32)
    if not prims:
        return np.clip(image, 0, 255).astype(np.uint8), mask, depth
    zs = np.array([p.depth for p in prims])
    z_near, z_far = float(zs.min()), float(zs.max())
    light = rng.uniform(0.85, 1.15)
    for p in sorted(prims, key=lambda q: -q.depth):
        shade = light * (1.15 - 0.35 * (p.depth - z_near) / max(z_far - z_near, 1.0))
        color = tuple(float(c) for c in np.clip(p.color * shade, 0, 255))
        layer = np.zeros((size, size), np.uint8)
        if p.polygon is not None:
            cv2.fillConvexPoly(layer, np.round(p.polygon * 16).astype(np.int32), 1, cv2.LINE_8, shift=4)
        else:
            _draw_capsule(layer, *p.capsule, value=1)
        hit = layer.astype(bool)
        image[hit] = color
        mask[hit] = p.mask_id
        depth[hit] = p.depth / 1000.0
    image = cv2.GaussianBlur(image, (3, 3), 0.6)
    image = image + rng.normal(0, 3, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), mask, depth
