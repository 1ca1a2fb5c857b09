"""InterNet's crop and augmentation geometry, shared by every data set (``docs/reference/internet.md`` §6.1).

The pipeline of one sample, as in InterNet's ``common/utils/preprocessing.py``:

1. a box around the hand, made square and enlarged ×1.25 (:func:`process_bbox`; no clipping to the image);
2. random parameters (:func:`sample_augmentation`, or :meth:`AugParams.identity` for evaluation): translation of
   the box centre by U(−0.15, 0.15)·(w, h), scale clip(N(0,1), −1, 1)·0.25 + 1 of the source size, rotation
   clip(N(0,1), −2, 2)·45° with probability 0.6, horizontal flip with probability 0.5, per-channel colour factors
   U(0.8, 1.2);
3. the 3-point affine from the (shifted, scaled, rotated, possibly mirrored) box to the S×S input
   (:func:`crop_affine`), one ``cv2.warpAffine`` with bilinear interpolation and a black border
   (:func:`warp_image`), then the colour factors with clipping (:func:`apply_color`);
4. the same affine on the 2-D joints (:func:`transform_points`); a flipped sample also swaps the two hands' joint
   blocks, validities and hand-type entries (:func:`flip_joints`);
5. :func:`build_sample` runs 3-4 for one sample and returns the sample dict of ``docs/architecture.md``.

InterNet mirrors the image array (``img[:, ::-1]``) before cropping. Here the mirror ``x → W − 1 − x`` is composed
into the affine instead, so the warp reads the original image once and gives the same crop. Consequently, for a
flipped sample ``trans`` maps *original*-image pixels to crop pixels while ``inv_trans`` maps crop pixels to pixels of
the *mirrored* image: a flipped sample is a sample of the mirrored image (``docs/architecture.md``), whose intrinsics
are mirrored too (:func:`mirror_princpt`) and whose camera-frame joints have x negated (:func:`mirror_camera`).

Nothing here modifies its inputs: boxes and joint arrays are copied (InterNet shifts the stored box in place, which
makes the translation drift across epochs with persistent workers; ``docs/reference/internet.md`` §7.11).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from internet_plus.data.device_warp import check_warp_on, device_fields
from internet_plus.joints import FLIP_PERMUTATION, NUM_JOINTS, hand_slice

# OpenCV's thread pool does not survive fork(): DataLoader workers forked after the parent used a multi-threaded
# cv2 call deadlock. One thread per process (the workers supply the parallelism) avoids it.
cv2.setNumThreads(1)

__all__ = [
    "AugParams",
    "AugmentationConfig",
    "apply_color",
    "bbox_from_joints",
    "build_sample",
    "build_single_hand_sample",
    "crop_affine",
    "flip_joints",
    "mirror_matrix",
    "mirror_camera",
    "mirror_princpt",
    "process_bbox",
    "sample_augmentation",
    "swap_hands",
    "transform_points",
    "warp_image",
]


# --------------------------------------------------------------------------------------------------- boxes


def process_bbox(bbox_xywh: np.ndarray | list[float], aspect: float = 1.0, scale: float = 1.25) -> np.ndarray:
    """InterNet's ``process_bbox`` (§6.1): grow the shorter side to the aspect ratio ``w/h``, then scale both sides.

    The centre is kept and the box is not clipped to the image. Returns a new float64 ``[x, y, w, h]``.

    Raises:
        ValueError: the box has no positive side (nothing to crop).
    """
    x, y, w, h = (float(v) for v in np.asarray(bbox_xywh, dtype=np.float64).reshape(4))
    if not (w > 0 or h > 0) or not np.isfinite([x, y, w, h]).all():
        raise ValueError(f"cannot crop around the box {[x, y, w, h]}: it needs a finite, positive width or height")
    cx, cy = x + 0.5 * w, y + 0.5 * h
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    w, h = w * scale, h * scale
    return np.array([cx - 0.5 * w, cy - 0.5 * h, w, h], dtype=np.float64)


def bbox_from_joints(uv: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """The tight ``[x, y, w, h]`` box around the valid 2-D joints ``uv`` (K×2), before :func:`process_bbox`.

    RHD's box is the one around the ground-truth keypoints of the scored hand (§6.3).

    Raises:
        ValueError: no joint is valid.
    """
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    mask = np.ones(len(uv), dtype=bool) if valid is None else np.asarray(valid).reshape(-1) > 0
    if mask.shape[0] != uv.shape[0]:
        raise ValueError(f"uv has {uv.shape[0]} joints but valid has {mask.shape[0]} entries")
    if not mask.any():
        raise ValueError("bbox_from_joints: no valid joint to put a box around")
    pts = uv[mask]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float64)


# --------------------------------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class AugmentationConfig:
    """InterNet's training augmentation (``get_aug_config``, §6.1). ``enabled=False`` gives identity parameters.

    Attributes:
        scale_factor: scale = clip(N(0,1), −1, 1)·scale_factor + 1 (multiplies the source crop size; >1 zooms out).
        rotation_factor: rotation = clip(N(0,1), −2, 2)·rotation_factor degrees ...
        rotation_prob: ... with this probability, else 0.
        translation: the box centre moves by U(−t, t)·(w, h) of the processed box.
        color: per-channel multiplicative factors U(1 − color, 1 + color).
        flip_prob: probability of a horizontal flip.
    """

    enabled: bool = True
    scale_factor: float = 0.25
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    translation: float = 0.15
    color: float = 0.2
    flip_prob: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rotation_prob", "flip_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation.{name}={value}: a probability must be in [0, 1]")
        for name in ("scale_factor", "rotation_factor", "translation", "color"):
            if getattr(self, name) < 0:
                raise ValueError(f"augmentation.{name}={getattr(self, name)} must be >= 0")
        if self.scale_factor >= 1.0:
            raise ValueError(f"augmentation.scale_factor={self.scale_factor} must be < 1 (the scale would reach 0)")
        if self.color >= 1.0:
            raise ValueError(f"augmentation.color={self.color} must be < 1 (colour factors must stay positive)")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> AugmentationConfig:
        """Build from a plain mapping (a Hydra node); unknown keys are an error that lists the known ones."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown augmentation option(s) {unknown}; known options: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class AugParams:
    """The augmentation drawn for one sample (§6.1).

    Attributes:
        scale: multiplies the source box size.
        rotation: degrees (see :func:`crop_affine` for the direction).
        shift: box-centre translation as fractions of the processed box (w, h).
        flip: horizontal mirror.
        color: per-channel (R, G, B) multiplicative factors.
    """

    scale: float = 1.0
    rotation: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False
    color: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0))

    @classmethod
    def identity(cls) -> AugParams:
        """The evaluation parameters: no translation, scale 1, rotation 0, no flip, colour 1 (§6.1)."""
        return cls()


def sample_augmentation(rng: np.random.Generator, cfg: AugmentationConfig) -> AugParams:
    """Draw one sample's parameters from ``rng`` (InterNet's ``get_aug_config``; identity when not enabled).

    The draws always happen in the same order and number (translation ×2, scale, rotation, rotation coin, flip coin,
    colour ×3), so a seeded ``rng`` reproduces the whole sample.
    """
    if not cfg.enabled:
        return AugParams.identity()
    tx, ty = rng.uniform(-cfg.translation, cfg.translation, size=2)
    scale = float(np.clip(rng.standard_normal(), -1.0, 1.0) * cfg.scale_factor + 1.0)
    rot = float(np.clip(rng.standard_normal(), -2.0, 2.0) * cfg.rotation_factor)
    rot = rot if rng.random() < cfg.rotation_prob else 0.0
    flip = bool(rng.random() < cfg.flip_prob)
    color = rng.uniform(1.0 - cfg.color, 1.0 + cfg.color, size=3)
    return AugParams(
        scale=scale,
        rotation=rot,
        shift=(float(tx), float(ty)),
        flip=flip,
        color=(float(color[0]), float(color[1]), float(color[2])),
    )


# --------------------------------------------------------------------------------------------------- geometry


def _rotate_2d(vec: np.ndarray, angle_deg: float) -> np.ndarray:
    rad = np.deg2rad(angle_deg)
    cs, sn = np.cos(rad), np.sin(rad)
    return np.array([vec[0] * cs - vec[1] * sn, vec[0] * sn + vec[1] * cs], dtype=np.float64)


def _patch_triangles(
    cx: float, cy: float, w: float, h: float, scale: float, rot: float, out_w: float, out_h: float
) -> tuple[np.ndarray, np.ndarray]:
    """InterNet's ``gen_trans_from_patch_cv`` triangles: centre, centre + down, centre + right (source and crop)."""
    src_w, src_h = w * scale, h * scale
    centre = np.array([cx, cy], dtype=np.float64)
    down = _rotate_2d(np.array([0.0, 0.5 * src_h]), rot)
    right = _rotate_2d(np.array([0.5 * src_w, 0.0]), rot)
    src = np.stack([centre, centre + down, centre + right]).astype(np.float32)
    dst_centre = np.array([0.5 * out_w, 0.5 * out_h])
    dst = np.stack([dst_centre, dst_centre + [0.0, 0.5 * out_h], dst_centre + [0.5 * out_w, 0.0]]).astype(np.float32)
    return src, dst


def mirror_matrix(image_width: int) -> np.ndarray:
    """The 2×3 affine of the horizontal mirror ``x → W − 1 − x`` (InterNet's flip convention, §7.7)."""
    return np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0]], dtype=np.float64)


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2×3 affine ``a ∘ b`` (apply ``b`` first)."""
    a3 = np.vstack([a, [0.0, 0.0, 1.0]])
    b3 = np.vstack([b, [0.0, 0.0, 1.0]])
    return (a3 @ b3)[:2]


def crop_affine(
    bbox_xywh: np.ndarray | list[float], params: AugParams, input_size: int, image_width: int
) -> tuple[np.ndarray, np.ndarray]:
    """The crop transform of InterNet's ``generate_patch_image`` (§6.1), as 2×3 float64 affines.

    The source centre is the box centre shifted by ``params.shift``·(w, h); if ``params.flip`` it is then mirrored
    (``c_x ← W − 1 − c_x``). The source triangle is the centre, centre + rot(r)·[0, h·s/2], centre + rot(r)·[w·s/2, 0];
    the destination triangle is (S/2, S/2), (S/2, S), (S, S/2). With image y pointing down, a positive rotation
    turns the source frame clockwise on screen, so the content of the crop turns anticlockwise (a point below the box
    centre lands to the right of the crop centre for +90°).

    Returns:
        ``(trans, inv_trans)``: ``trans`` maps *original*-image pixels to crop pixels (the mirror composed in when
        flipped, so ``warp_image(original, trans)`` is InterNet's crop of the mirrored image); ``inv_trans`` maps crop
        pixels to pixels of the image the sample is of: the original one, or the mirrored one when flipped. Without a
        flip the two are inverse to each other.
    """
    bx, by, bw, bh = (float(v) for v in np.asarray(bbox_xywh, dtype=np.float64).reshape(4))  # a copy, never mutated
    cx = bx + 0.5 * bw + params.shift[0] * bw
    cy = by + 0.5 * bh + params.shift[1] * bh
    if params.flip:
        cx = image_width - 1.0 - cx
    src, dst = _patch_triangles(cx, cy, bw, bh, params.scale, params.rotation, input_size, input_size)
    trans_mirrored = cv2.getAffineTransform(src, dst).astype(np.float64)
    inv_trans = cv2.getAffineTransform(dst, src).astype(np.float64)
    trans = _compose(trans_mirrored, mirror_matrix(image_width)) if params.flip else trans_mirrored
    return trans, inv_trans


def warp_image(image: np.ndarray, trans: np.ndarray, input_size: int) -> np.ndarray:
    """``cv2.warpAffine`` to ``input_size``² with bilinear interpolation and a constant-0 border (§6.1)."""
    return cv2.warpAffine(
        image,
        np.asarray(trans, dtype=np.float64),
        (int(input_size), int(input_size)),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def transform_points(points: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine to N×2 points; returns a new float64 N×2 array."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(trans, dtype=np.float64)
    return pts @ t[:, :2].T + t[:, 2]


def apply_color(image: np.ndarray, factors: tuple[float, float, float] | np.ndarray, max_value: float) -> np.ndarray:
    """Multiply each channel of an H×W×3 image by its factor and clip to ``[0, max_value]`` (§6.1).

    InterNet does this on the warped float image in [0, 255]. Albumentations' ``MultiplicativeNoise`` (per channel,
    not elementwise) applies the same multiplication, but it draws the factors from its own generator; the factors
    here come from the sample's seeded ``rng`` (:func:`sample_augmentation`), so the multiplication is done directly.
    """
    image = np.asarray(image).astype(np.float32, copy=False)
    height, width, channels = image.shape
    factors = np.broadcast_to(np.asarray(factors, dtype=np.float32).reshape(-1), (channels,))
    # The same float32 products as ``image * factors[None, None, :]``, with the factors tiled along a row so that
    # numpy's inner loop runs over W·C elements instead of C; a new array, the input is untouched.
    out = np.multiply(image.reshape(height, width * channels), np.tile(factors, width)).reshape(image.shape)
    # = np.clip(out, 0, max_value) element for element (NaN included), in place and faster
    np.minimum(out, np.float32(max_value), out=out)
    return np.maximum(out, np.float32(0.0), out=out)


# --------------------------------------------------------------------------------------------------- flip


def swap_hands(array: np.ndarray) -> np.ndarray:
    """A copy of a 42-joint array (joints on axis 0) with the right and left blocks swapped."""
    array = np.asarray(array)
    if array.shape[0] != NUM_JOINTS:
        raise ValueError(f"swap_hands expects {NUM_JOINTS} joints on axis 0, got shape {array.shape}")
    return array[FLIP_PERMUTATION].copy()


def flip_joints(
    joints: np.ndarray, valid: np.ndarray, hand_type: np.ndarray, image_width: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """InterNet's flip of the labels (§6.1, §7.7): swap the hand blocks of ``joints`` (42×C) and ``valid`` (42,),
    swap ``hand_type`` [right, left] → [left, right]; with ``image_width`` also mirror x as an image coordinate,
    ``x ← W − 1 − x`` (leave it out when x was already mirrored, e.g. by :func:`crop_affine`'s ``trans``).

    Returns new arrays; applying it twice gives the input back.
    """
    out = np.array(joints, copy=True)
    if out.dtype.kind != "f":
        out = out.astype(np.float64)
    if image_width is not None:
        out[:, 0] = image_width - 1.0 - out[:, 0]
    hand_type = np.asarray(hand_type)
    if hand_type.shape != (2,):
        raise ValueError(f"hand_type must have shape (2,), got {hand_type.shape}")
    return swap_hands(out), swap_hands(valid), hand_type[::-1].copy()


def mirror_camera(joints_cam: np.ndarray) -> np.ndarray:
    """Camera-frame joints of the mirrored image: ``x ← −x`` (a copy). Block swapping is separate."""
    out = np.array(joints_cam, copy=True)
    out[..., 0] = -out[..., 0]
    return out


def mirror_princpt(princpt: np.ndarray, image_width: int) -> np.ndarray:
    """Principal point of the mirrored image: ``c_x ← W − 1 − c_x`` (a copy)."""
    out = np.array(princpt, dtype=np.float64, copy=True)
    out[0] = image_width - 1.0 - out[0]
    return out


# --------------------------------------------------------------------------------------------------- a whole sample


def build_sample(
    image: np.ndarray,
    joints_uv: np.ndarray,
    joints_cam: np.ndarray,
    joint_annotated: np.ndarray,
    hand_type: np.ndarray,
    hand_type_valid: float,
    interacting: bool,
    focal: np.ndarray,
    princpt: np.ndarray,
    abs_root_depth: np.ndarray,
    bbox_xywh: np.ndarray,
    params: AugParams,
    input_size: int,
    index: int,
    warp_on: str = "worker",
) -> dict[str, torch.Tensor]:
    """InterNet's ``augmentation`` + target assembly (§6.1, §6.2) as the sample dict of ``docs/architecture.md``.

    Args:
        image: H×W×3 RGB, values in [0, 255] (uint8 or float); with ``warp_on="device"`` also an undecoded
            :class:`~internet_plus.data.device_decode.EncodedJpeg` (``data.decode_on=device``), whose bytes the
            sample then carries.
        joints_uv: 42×2 original-image pixels, project joint order.
        joints_cam: 42×3 camera frame, mm (zeros for an absent hand).
        joint_annotated: 42, 1 where the joint is annotated (the evaluation mask).
        hand_type: [right present, left present].
        hand_type_valid: whether ``hand_type`` is supervised.
        interacting: a two-hand sample whose relative root depth is supervised (InterHand2.6M 'interacting');
            ``False`` gives ``rel_root_depth = root_valid = 0`` (RHD, STB).
        focal, princpt: intrinsics of the original image.
        abs_root_depth: [right, left] absolute wrist depth in mm used for back-projection.
        bbox_xywh: the processed box (:func:`process_bbox`).
        params: this sample's augmentation (:meth:`AugParams.identity` for evaluation).
        input_size: S, the side of the square network input.
        index: the sample's position in its data set.
        warp_on: ``"worker"``: the sample holds the warped, colour-augmented ``image``; ``"device"``: instead the
            original ``uint8`` image, ``trans`` and the colour factors, warped later on the batch's device
            (:mod:`internet_plus.data.device_warp`); every other key is the same.

    For a flipped sample every output describes the mirrored image (blocks, validity, hand type and absolute depths
    swapped; ``joints_cam.x`` negated; ``princpt.x`` mirrored). ``joint_valid`` is ``joint_annotated`` times
    the in-crop test ``0 <= x, y < S`` after augmentation; ``root_valid`` needs ``interacting`` and both wrists valid
    after augmentation (the codec adds the depth-range tests, §4.2).
    """
    width = image.shape[1]
    trans, inv_trans = crop_affine(bbox_xywh, params, input_size, width)
    if check_warp_on(warp_on) == "device":
        pixels = device_fields(image, trans, params.color)
    else:
        crop = warp_image(np.asarray(image, dtype=np.float32), trans, input_size)
        crop = apply_color(crop, params.color, 255.0) if params.color != (1.0, 1.0, 1.0) else crop
        crop *= np.float32(1.0 / 255.0)  # in place: ``crop`` is this function's own array (warp or colour output)
        pixels = {"image": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32))}

    cam = np.array(joints_cam, dtype=np.float64, copy=True).reshape(NUM_JOINTS, 3)
    annotated = np.array(joint_annotated, dtype=np.float64, copy=True).reshape(NUM_JOINTS)
    hand = np.array(hand_type, dtype=np.float64, copy=True).reshape(2)
    root_depth = np.array(abs_root_depth, dtype=np.float64, copy=True).reshape(2)
    pp = np.array(princpt, dtype=np.float64, copy=True).reshape(2)

    joints_img = np.zeros((NUM_JOINTS, 3), dtype=np.float64)
    joints_img[:, :2] = transform_points(np.asarray(joints_uv).reshape(NUM_JOINTS, 2), trans)
    for start in (0, NUM_JOINTS // 2):  # z relative to the wrist of its own hand
        block = slice(start, start + NUM_JOINTS // 2)
        joints_img[block, 2] = cam[block, 2] - cam[start, 2]

    if params.flip:
        cam = mirror_camera(cam)
        pp = mirror_princpt(pp, width)
        # x was mirrored by ``trans``; only the blocks swap here
        joints_img, annotated, hand = flip_joints(joints_img, annotated, hand)
        cam, root_depth = swap_hands(cam), root_depth[::-1].copy()

    x, y = joints_img[:, 0], joints_img[:, 1]
    in_crop = (x >= 0) & (x < input_size) & (y >= 0) & (y < input_size)
    joint_valid = annotated * in_crop
    right_root, left_root = 0, NUM_JOINTS // 2
    if interacting:
        root_valid = float(joint_valid[right_root] * joint_valid[left_root])
        rel_root_depth = float(cam[left_root, 2] - cam[right_root, 2])
    else:
        root_valid, rel_root_depth = 0.0, 0.0

    def f32(value: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(value, dtype=np.float32))

    return {
        **pixels,
        "joints_img": f32(joints_img),
        "joints_cam": f32(cam),
        "joint_valid": f32(joint_valid),
        "joint_annotated": f32(annotated),
        "hand_type": f32(hand),
        "hand_type_valid": f32(hand_type_valid),
        "rel_root_depth": f32(rel_root_depth),
        "root_valid": f32(root_valid),
        "inv_trans": f32(inv_trans),
        "focal": f32(np.asarray(focal, dtype=np.float64).reshape(2)),
        "princpt": f32(pp),
        "abs_root_depth": f32(root_depth),
        "index": torch.tensor(int(index), dtype=torch.int64),
    }


def build_single_hand_sample(
    image: np.ndarray,
    hand: int,
    xyz: np.ndarray,
    uv: np.ndarray,
    annotated: np.ndarray | float,
    K: np.ndarray,
    params: AugParams,
    input_size: int,
    index: int,
    bbox_xywh: np.ndarray | None = None,
    abs_root_depth: float | None = None,
    warp_on: str = "worker",
) -> dict[str, torch.Tensor]:
    """:func:`build_sample` for a one-hand data set (RHD's scored hand, STB): the protocol of §6.3 and §6.4.

    The hand's 21 joints fill its block (the other block is zero and not annotated), ``hand_type`` is that hand with
    ``hand_type_valid`` = 1, the box is the tight box around its 2-D joints made square ×1.25, both absolute root
    depths are its ground-truth wrist depth (InterNet's 'gt' mode, §5.2), and nothing is interacting. ``bbox_xywh``
    and ``abs_root_depth`` replace the box (used as is) and the depth (both entries): InterNet's 'rootnet' mode.

    Args:
        image: H×W×3 RGB.
        hand: ``joints.RIGHT`` or ``joints.LEFT``.
        xyz: 21×3 camera-frame joints of the hand in mm, project order (wrist first).
        uv: 21×2 image pixels of the same joints.
        annotated: the hand's 21 evaluation flags (or one value for all).
        K: 3×3 intrinsics.
        params, input_size, index: as :func:`build_sample`.
        bbox_xywh: the crop box, instead of the processed ground-truth one (no ``process_bbox``).
        abs_root_depth: the absolute root depth in mm, instead of the ground-truth wrist depth.
        warp_on: as :func:`build_sample`.
    """
    block = hand_slice(hand)
    joints_cam = np.zeros((NUM_JOINTS, 3), dtype=np.float64)
    joints_cam[block] = xyz
    joints_uv = np.zeros((NUM_JOINTS, 2), dtype=np.float64)
    joints_uv[block] = uv
    joint_annotated = np.zeros(NUM_JOINTS, dtype=np.float64)
    joint_annotated[block] = annotated
    hand_type = np.zeros(2, dtype=np.float64)
    hand_type[hand] = 1.0
    root_depth = float(xyz[0, 2]) if abs_root_depth is None else float(abs_root_depth)
    return build_sample(
        image=image,
        joints_uv=joints_uv,
        joints_cam=joints_cam,
        joint_annotated=joint_annotated,
        hand_type=hand_type,
        hand_type_valid=1.0,
        interacting=False,
        focal=np.array([K[0, 0], K[1, 1]]),
        princpt=np.array([K[0, 2], K[1, 2]]),
        abs_root_depth=np.array([root_depth, root_depth]),
        bbox_xywh=process_bbox(bbox_from_joints(uv)) if bbox_xywh is None else np.asarray(bbox_xywh, dtype=np.float64),
        params=params,
        input_size=input_size,
        index=index,
        warp_on=warp_on,
    )
