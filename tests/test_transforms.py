"""InterNet's crop / augmentation geometry (docs/reference/internet.md §6.1)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from internet_plus.data.transforms import (
    AugmentationConfig,
    AugParams,
    apply_color,
    bbox_from_joints,
    crop_affine,
    flip_joints,
    mirror_camera,
    mirror_matrix,
    mirror_princpt,
    process_bbox,
    sample_augmentation,
    swap_hands,
    transform_points,
    warp_image,
)
from internet_plus.joints import JOINTS_PER_HAND, LEFT, NUM_JOINTS, RIGHT, hand_slice

S = 256


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


# ------------------------------------------------------------------------------------------------ boxes


def test_process_bbox_squares_and_scales_around_the_centre() -> None:
    out = process_bbox([10.0, 20.0, 40.0, 100.0])
    np.testing.assert_allclose(out, [30 - 62.5, 70 - 62.5, 125.0, 125.0])
    wide = process_bbox([0.0, 0.0, 200.0, 50.0])
    np.testing.assert_allclose(wide, [100 - 125, 25 - 125, 250.0, 250.0])
    # no clipping to the image: negative corners stay
    assert process_bbox([-5.0, -5.0, 10.0, 10.0])[0] < -5
    # other aspect ratios: w/h = aspect after processing
    box = process_bbox([0.0, 0.0, 30.0, 30.0], aspect=2.0, scale=1.0)
    np.testing.assert_allclose(box[2] / box[3], 2.0)


def test_process_bbox_does_not_mutate_and_rejects_empty_boxes() -> None:
    box = np.array([1.0, 2.0, 3.0, 4.0])
    process_bbox(box)
    np.testing.assert_array_equal(box, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="positive"):
        process_bbox([5.0, 5.0, 0.0, 0.0])


def test_bbox_from_joints_uses_valid_joints_only() -> None:
    uv = np.array([[10.0, 20.0], [30.0, 60.0], [1000.0, -500.0]])
    np.testing.assert_allclose(bbox_from_joints(uv, np.array([1, 1, 0])), [10, 20, 20, 40])
    np.testing.assert_allclose(bbox_from_joints(uv[:2]), [10, 20, 20, 40])
    with pytest.raises(ValueError, match="no valid joint"):
        bbox_from_joints(uv, np.zeros(3))


# ------------------------------------------------------------------------------------------------ affine


def _random_params(seed: int, flip: bool | None = None) -> AugParams:
    params = sample_augmentation(np.random.default_rng(seed), AugmentationConfig())
    return params if flip is None else dataclasses.replace(params, flip=flip)


def test_identity_affine_maps_the_bbox_centre_to_the_crop_centre() -> None:
    bbox = process_bbox([100.0, 50.0, 80.0, 60.0])
    trans, inv = crop_affine(bbox, AugParams.identity(), S, 320)
    centre = [bbox[0] + bbox[2] / 2, bbox[1] + bbox[3] / 2]
    np.testing.assert_allclose(transform_points([centre], trans), [[S / 2, S / 2]], atol=1e-6)
    # the box corners map to the crop corners (scale 1, no rotation)
    corners = [[bbox[0], bbox[1]], [bbox[0] + bbox[2], bbox[1] + bbox[3]]]
    np.testing.assert_allclose(transform_points(corners, trans), [[0, 0], [S, S]], atol=1e-4)
    np.testing.assert_allclose(transform_points([[S / 2, S / 2]], inv), [centre], atol=1e-6)


def test_translation_and_scale_move_the_source_centre() -> None:
    bbox = np.array([0.0, 0.0, 100.0, 100.0])
    params = AugParams(scale=1.2, shift=(0.1, -0.15))
    trans, _ = crop_affine(bbox, params, S, 320)
    shifted_centre = [50 + 10, 50 - 15]
    np.testing.assert_allclose(transform_points([shifted_centre], trans), [[S / 2, S / 2]], atol=1e-6)
    # scale 1.2 zooms out: 60 source px (half the scaled box) span half the crop
    np.testing.assert_allclose(transform_points([[60 + 60, 35]], trans), [[S, S / 2]], atol=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_inverse_composed_with_forward_is_identity(seed: int) -> None:
    params = _random_params(seed, flip=False)
    trans, inv = crop_affine(process_bbox([40.0, 70.0, 90.0, 50.0]), params, S, 320)
    np.testing.assert_allclose(_compose(inv, trans), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    np.testing.assert_allclose(_compose(trans, inv), [[1, 0, 0], [0, 1, 0]], atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_flipped_inverse_points_into_the_mirrored_image(seed: int) -> None:
    width = 300
    params = _random_params(seed, flip=True)
    trans, inv = crop_affine(process_bbox([40.0, 70.0, 90.0, 50.0]), params, S, width)
    # inv_trans ∘ trans = the mirror x -> W - 1 - x: inv_trans lands in the mirrored image
    np.testing.assert_allclose(_compose(inv, trans), mirror_matrix(width), atol=1e-9)
    # twice mirrored is the identity
    np.testing.assert_allclose(_compose(mirror_matrix(width), mirror_matrix(width)), [[1, 0, 0], [0, 1, 0]])


def test_flip_composed_warp_equals_warping_the_mirrored_image() -> None:
    """InterNet mirrors the array then crops; one warp of the original with the composed affine is the same crop."""
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, size=(240, 300, 3)).astype(np.float32)
    bbox = process_bbox([100.0, 60.0, 70.0, 90.0])
    params = AugParams(scale=1.1, rotation=30.0, shift=(0.1, -0.05), flip=True)
    trans, inv = crop_affine(bbox, params, S, image.shape[1])
    crop = warp_image(image, trans, S)
    mirrored = np.ascontiguousarray(image[:, ::-1])
    reference = cv2.warpAffine(mirrored, cv2.invertAffineTransform(inv), (S, S), flags=cv2.INTER_LINEAR)
    assert np.abs(crop - reference).max() < 0.01  # cv2's fixed-point interpolation weights only


def test_rotation_moves_a_point_as_expected() -> None:
    bbox = np.array([0.0, 0.0, 100.0, 100.0])
    below_centre = [[50.0, 75.0]]
    t0, _ = crop_affine(bbox, AugParams.identity(), S, 320)
    np.testing.assert_allclose(transform_points(below_centre, t0), [[128, 192]], atol=1e-4)
    # +90 deg: a point below the box centre lands to the right of the crop centre
    t90, _ = crop_affine(bbox, AugParams(rotation=90.0), S, 320)
    np.testing.assert_allclose(transform_points(below_centre, t90), [[192, 128]], atol=1e-4)
    # general angle: the crop offset is the source offset rotated by -r (image axes), scaled by S / box
    angle = 30.0
    t, _ = crop_affine(bbox, AugParams(rotation=angle), S, 320)
    rad = np.deg2rad(-angle)
    offset = np.array([0.0, 25.0]) * S / 100
    expected = [
        128 + offset[0] * np.cos(rad) - offset[1] * np.sin(rad),
        128 + offset[0] * np.sin(rad) + offset[1] * np.cos(rad),
    ]
    np.testing.assert_allclose(transform_points(below_centre, t)[0], expected, atol=1e-4)


def test_warp_image_border_is_black_and_content_follows_points() -> None:
    image = np.zeros((100, 100, 3), dtype=np.float32)
    image[40:44, 60:64] = 255.0  # a bright square centred at (61.5, 41.5)
    trans, _ = crop_affine(process_bbox([50.0, 30.0, 24.0, 24.0]), AugParams(rotation=33.0), S, 100)
    crop = warp_image(image, trans, S)
    x, y = transform_points([[61.5, 41.5]], trans)[0]
    assert crop[int(round(y)), int(round(x))].min() > 200
    far, _ = crop_affine([-500.0, -500.0, 10.0, 10.0], AugParams.identity(), S, 100)
    assert warp_image(image + 50.0, far, S).max() == 0.0


def test_colour_factors_multiply_and_clip() -> None:
    image = np.full((4, 4, 3), 200.0, dtype=np.float32)
    out = apply_color(image, (0.8, 1.0, 1.2), 255.0)
    np.testing.assert_allclose(out[0, 0], [160.0, 200.0, 240.0], rtol=1e-6)
    out = apply_color(image, (1.2, 1.2, 1.4), 255.0)
    assert out.max() == 255.0
    np.testing.assert_array_equal(image, 200.0)  # input untouched


# ------------------------------------------------------------------------------------------------ sampling


def test_augmentation_is_reproducible_under_a_seed() -> None:
    cfg = AugmentationConfig()
    a = [sample_augmentation(np.random.default_rng([7, 1, i]), cfg) for i in range(20)]
    b = [sample_augmentation(np.random.default_rng([7, 1, i]), cfg) for i in range(20)]
    assert a == b
    c = [sample_augmentation(np.random.default_rng([7, 2, i]), cfg) for i in range(20)]
    assert a != c


def test_augmentation_ranges_and_frequencies() -> None:
    cfg = AugmentationConfig()
    rng = np.random.default_rng(0)
    draws = [sample_augmentation(rng, cfg) for _ in range(4000)]
    scales = np.array([d.scale for d in draws])
    rots = np.array([d.rotation for d in draws])
    shifts = np.array([d.shift for d in draws])
    colors = np.array([d.color for d in draws])
    flips = np.array([d.flip for d in draws])
    assert scales.min() >= 0.75 and scales.max() <= 1.25
    assert np.abs(rots).max() <= 90.0
    assert abs((rots != 0).mean() - 0.6) < 0.03
    assert np.abs(shifts).max() <= 0.15
    assert colors.min() >= 0.8 and colors.max() <= 1.2
    assert np.ptp(colors[:, 0] - colors[:, 1]) > 0  # per channel, not one factor
    assert abs(flips.mean() - 0.5) < 0.03
    # clip(N(0,1), -1, 1): about 32% of the draws sit on the bounds
    assert abs(np.isclose(np.abs(scales - 1), 0.25).mean() - 0.317) < 0.03


def test_disabled_augmentation_and_config_validation() -> None:
    params = sample_augmentation(np.random.default_rng(0), AugmentationConfig(enabled=False))
    assert params == AugParams.identity()
    assert AugmentationConfig.from_dict({"flip_prob": 0.0}).flip_prob == 0.0
    with pytest.raises(ValueError, match="unknown augmentation option"):
        AugmentationConfig.from_dict({"flip": 0.5})
    with pytest.raises(ValueError, match="probability"):
        AugmentationConfig(rotation_prob=1.5)
    never_flip = AugmentationConfig(flip_prob=0.0, rotation_prob=0.0)
    rng = np.random.default_rng(1)
    assert not any(sample_augmentation(rng, never_flip).flip for _ in range(100))
    assert all(sample_augmentation(rng, never_flip).rotation == 0.0 for _ in range(100))


# ------------------------------------------------------------------------------------------------ flip


def _labelled_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    joints = np.arange(NUM_JOINTS * 3, dtype=np.float64).reshape(NUM_JOINTS, 3)
    valid = np.zeros(NUM_JOINTS, dtype=np.float32)
    valid[hand_slice(RIGHT)] = 1.0
    hand_type = np.array([1.0, 0.0], dtype=np.float32)
    return joints, valid, hand_type


def test_flip_swaps_blocks_validity_and_hand_type() -> None:
    joints, valid, hand_type = _labelled_sample()
    fj, fv, fh = flip_joints(joints, valid, hand_type)
    np.testing.assert_array_equal(fj[hand_slice(LEFT)], joints[hand_slice(RIGHT)])
    np.testing.assert_array_equal(fj[hand_slice(RIGHT)], joints[hand_slice(LEFT)])
    np.testing.assert_array_equal(fv[hand_slice(LEFT)], 1.0)
    np.testing.assert_array_equal(fv[hand_slice(RIGHT)], 0.0)
    np.testing.assert_array_equal(fh, [0.0, 1.0])
    # with an image width, x is mirrored as a pixel coordinate
    fj, _, _ = flip_joints(joints, valid, hand_type, image_width=320)
    np.testing.assert_allclose(fj[JOINTS_PER_HAND:, 0], 319 - joints[:JOINTS_PER_HAND, 0])
    np.testing.assert_array_equal(fj[:, 1:], swap_hands(joints)[:, 1:])


def test_flip_twice_is_identity_and_inputs_are_untouched() -> None:
    joints, valid, hand_type = _labelled_sample()
    copies = joints.copy(), valid.copy(), hand_type.copy()
    once = flip_joints(joints, valid, hand_type, image_width=320)
    twice = flip_joints(*once, image_width=320)
    for original, back, saved in zip((joints, valid, hand_type), twice, copies, strict=True):
        np.testing.assert_array_equal(back, original)
        np.testing.assert_array_equal(original, saved)
    np.testing.assert_array_equal(mirror_camera(mirror_camera(joints)), joints)
    np.testing.assert_allclose(mirror_princpt(mirror_princpt(np.array([150.0, 160.0]), 320), 320), [150.0, 160.0])


def test_flipped_sample_is_self_consistent_with_mirrored_intrinsics() -> None:
    """Projecting the mirrored camera joints with the mirrored principal point gives the mirrored pixels."""
    rng = np.random.default_rng(3)
    xyz = np.column_stack([rng.uniform(-100, 100, 5), rng.uniform(-100, 100, 5), rng.uniform(300, 800, 5)])
    focal, princpt, width = np.array([300.0, 300.0]), np.array([150.0, 161.0]), 320
    uv = xyz[:, :2] / xyz[:, 2:] * focal + princpt
    m_xyz, m_pp = mirror_camera(xyz), mirror_princpt(princpt, width)
    m_uv = m_xyz[:, :2] / m_xyz[:, 2:] * focal + m_pp
    np.testing.assert_allclose(m_uv, transform_points(uv, mirror_matrix(width)), atol=1e-9)
