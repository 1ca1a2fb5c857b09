"""HeatmapCodec: InterNet's target generation and decoding (internet §4, §5)."""

from __future__ import annotations

import math

import pytest
import torch

from internet_plus.joints import JOINTS_PER_HAND, NUM_JOINTS
from internet_plus.models.codec import HeatmapCodec


def _rotation_scale(theta: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """B×2×2 matrices scale · R(theta)."""
    c, s = torch.cos(theta), torch.sin(theta)
    return scale[:, None, None] * torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def make_scene(batch: int = 4, seed: int = 0, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Two hands in front of a pinhole camera, cropped with a rotated and scaled affine (both hands fully inside).

    Returns the sample-dict keys the codec needs, computed independently of the codec (projection, crop affine and
    its inverse, root-relative depth per hand).
    """
    g = torch.Generator().manual_seed(seed)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=dtype)

    roots = torch.stack([uniform(-60, 60, batch, 2), uniform(-40, 40, batch, 2), uniform(450, 750, batch, 2)], -1)
    offsets = torch.cat([uniform(-70, 70, batch, 2, JOINTS_PER_HAND, 2), uniform(-150, 150, batch, 2, 21, 1)], -1)
    offsets[:, :, 0] = 0.0  # the wrist is the root
    joints_cam = (roots[:, :, None, :] + offsets).reshape(batch, NUM_JOINTS, 3)
    focal = torch.stack([uniform(550, 650, batch), uniform(560, 660, batch)], -1)
    princpt = torch.stack([uniform(300, 340, batch), uniform(220, 260, batch)], -1)
    uv = joints_cam[..., :2] / joints_cam[..., 2:] * focal[:, None] + princpt[:, None]

    # crop: input = A (uv − centre) + S/2 with A = scale · R(theta); scale chosen so that every joint fits
    centre = uv.mean(dim=1)
    radius = (uv - centre[:, None]).norm(dim=-1).amax(dim=1)
    scale = 0.9 * 128.0 / radius
    linear = _rotation_scale(uniform(-1.2, 1.2, batch), scale)
    trans = torch.cat([linear, (128.0 - torch.einsum("bij,bj->bi", linear, centre))[..., None]], -1)
    inv_linear = torch.linalg.inv(linear)
    inv_trans = torch.cat(
        [inv_linear, (centre - torch.einsum("bij,j->bi", inv_linear, torch.full((2,), 128.0, dtype=dtype)))[..., None]],
        -1,
    )
    xy = torch.einsum("bij,bkj->bki", trans[:, :, :2], uv) + trans[:, None, :, 2]
    root_depth = joints_cam[:, [0, JOINTS_PER_HAND], 2]  # B×2 [right, left]
    z_rel = joints_cam[..., 2] - root_depth.repeat_interleave(JOINTS_PER_HAND, dim=1)
    return {
        "joints_img": torch.cat([xy, z_rel[..., None]], -1),
        "joints_cam": joints_cam,
        "joint_valid": torch.ones(batch, NUM_JOINTS, dtype=dtype),
        "inv_trans": inv_trans,
        "abs_root_depth": root_depth,
        "focal": focal,
        "princpt": princpt,
    }


# ------------------------------------------------------------------------------------------------ encoding (§4.2)
def test_constructor_keeps_plain_types_and_rejects_nonsense() -> None:
    codec = HeatmapCodec()
    assert (codec.input_size, codec.heatmap_size, codec.depth_bins, codec.root_depth_bins) == (256, 64, 64, 64)
    assert (codec.sigma, codec.depth_range_mm, codec.root_depth_range_mm, codec.peak) == (2.5, 400.0, 400.0, 255.0)
    assert codec.volume_shape == (64, 64, 64)
    with pytest.raises(ValueError):
        HeatmapCodec(heatmap_size=0)
    with pytest.raises(ValueError):
        HeatmapCodec(sigma=-1.0)


def test_xy_scaling_has_no_half_pixel_offset() -> None:
    codec = HeatmapCodec()
    joints = torch.tensor([[[0.0, 0.0, 0.0], [4.0, 8.0, 0.0], [255.0, 128.0, 0.0], [2.0, 6.0, 0.0]]])
    coords, valid = codec.encode_joints(joints, torch.ones(1, 4))
    assert torch.equal(coords[0, :, :2], torch.tensor([[0.0, 0.0], [1.0, 2.0], [63.75, 32.0], [0.5, 1.5]]))
    assert torch.equal(valid, torch.ones(1, 4))


def test_z_mapping_and_depth_range_boundaries() -> None:
    codec = HeatmapCodec()
    z = torch.tensor([0.0, -200.0, 200.0, 199.99, -200.01, 100.0, 6.25])
    joints = torch.stack([torch.full_like(z, 100.0), torch.full_like(z, 100.0), z], -1)[None]
    coords, valid = codec.encode_joints(joints, torch.ones(1, z.numel()))
    assert coords[0, 0, 2].item() == 32.0  # z_rel = 0 -> bin 32
    assert coords[0, 1, 2].item() == 0.0  # -200 mm -> 0, inside
    assert coords[0, 2, 2].item() == 64.0  # +200 mm -> 64, outside: [-200, 200)
    assert coords[0, 5, 2].item() == 48.0
    assert coords[0, 6, 2].item() == pytest.approx(33.0)
    assert valid[0].tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]


def test_validity_masking() -> None:
    codec = HeatmapCodec()
    joints = torch.tensor(
        [
            [
                [10.0, 10.0, 0.0],  # valid
                [10.0, 10.0, 0.0],  # joint_valid = 0
                [-0.01, 10.0, 0.0],  # left of the crop
                [256.0, 10.0, 0.0],  # right of the crop
                [255.99, 255.99, 0.0],  # inside
                [10.0, 256.0, 0.0],  # below the crop
                [float("nan"), 10.0, 0.0],  # non-finite
                [10.0, float("inf"), 0.0],  # non-finite
            ]
        ]
    )
    joint_valid = torch.tensor([[1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    coords, valid = codec.encode_joints(joints, joint_valid)
    assert valid[0].tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert torch.isfinite(coords).all()
    assert torch.equal(coords[0, 6], torch.zeros(3)) and torch.equal(coords[0, 7], torch.zeros(3))


def test_root_depth_encode_decode_inverse_and_range() -> None:
    codec = HeatmapCodec()
    rel = torch.tensor([0.0, -200.0, 200.0, 123.4, -87.5, 199.9, -250.0, float("nan")], dtype=torch.float64)
    bins, valid = codec.encode_root_depth(rel, torch.tensor([1, 1, 1, 1, 0, 1, 1, 1], dtype=torch.float64))
    assert bins[0].item() == 32.0 and bins[1].item() == 0.0 and bins[2].item() == 64.0
    assert valid.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    finite = torch.isfinite(rel)
    torch.testing.assert_close(codec.decode_root_depth(bins)[finite], rel[finite], rtol=0, atol=1e-9)
    assert bins[~finite].item() == 0.0
    # the bin is 400 / 64 = 6.25 mm wide
    assert codec.decode_root_depth(torch.tensor([33.0])).item() == pytest.approx(6.25)
    # (B, 1) inputs are accepted and flattened
    bins2, valid2 = codec.encode_root_depth(rel[:3, None], torch.ones(3, 1, dtype=torch.float64))
    assert bins2.shape == (3,) and valid2.shape == (3,)


# ------------------------------------------------------------------------------------------------ rendering (§4.3)
def test_render_peak_at_integer_centre_and_formula() -> None:
    codec = HeatmapCodec()
    coords = torch.tensor([[[10.0, 20.0, 30.0], [3.3, 40.7, 12.5]]])
    volume = codec.render(coords)
    assert volume.shape == (1, 2, 64, 64, 64)
    assert volume[0, 0, 30, 20, 10].item() == 255.0  # index = coordinate, axes (D, H, W) = (z, y, x)
    assert volume[0, 0].max().item() == 255.0
    assert volume[0, 0, 30, 20, 11].item() == pytest.approx(255.0 * math.exp(-1.0 / (2 * 2.5**2)))
    x, y, z = 3.3, 40.7, 12.5
    k, i, l = 13, 38, 5
    expected = 255.0 * math.exp(-((l - x) ** 2 + (i - y) ** 2 + (k - z) ** 2) / (2 * 2.5**2))
    assert volume[0, 1, k, i, l].item() == pytest.approx(expected, rel=1e-6)


def test_render_equals_product_of_factors() -> None:
    codec = HeatmapCodec(heatmap_size=16, depth_bins=12, sigma=1.7, peak=3.0)
    coords = torch.rand(2, 3, 3, dtype=torch.float64) * torch.tensor([16.0, 16.0, 12.0], dtype=torch.float64)
    g_z, g_y, g_x = codec.gaussian_factors(coords)
    product = 3.0 * g_z[..., :, None, None] * g_y[..., None, :, None] * g_x[..., None, None, :]
    torch.testing.assert_close(codec.render(coords), product, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------ decoding (§5)
def test_decode_picks_the_exact_argmax_on_hand_built_volumes() -> None:
    g = torch.Generator().manual_seed(3)
    b, j, d, h, w = 3, 5, 8, 6, 7  # non-square on purpose: exercises z = idx // (H·W), y = (idx // W) % H
    volume = torch.rand(b, j, d, h, w, generator=g)
    zs = torch.randint(0, d, (b, j), generator=g)
    ys = torch.randint(0, h, (b, j), generator=g)
    xs = torch.randint(0, w, (b, j), generator=g)
    bi, ji = torch.meshgrid(torch.arange(b), torch.arange(j), indexing="ij")
    volume[bi, ji, zs, ys, xs] = 2.0
    decoded = HeatmapCodec().decode_heatmaps(volume)
    assert decoded.dtype == torch.float32 and decoded.shape == (b, j, 3)
    assert torch.equal(decoded, torch.stack([xs, ys, zs], -1).float())


def test_decode_corner_voxels_and_first_maximum_on_ties() -> None:
    volume = torch.zeros(1, 3, 4, 5, 6)
    volume[0, 0, 3, 4, 5] = 1.0  # last voxel
    volume[0, 1, 0, 0, 0] = 1.0  # first voxel
    volume[0, 2, 2, 1, 3] = 1.0  # a tie: the first in (z, y, x) raster order wins
    volume[0, 2, 2, 3, 0] = 1.0
    decoded = HeatmapCodec().decode_heatmaps(volume)
    assert decoded[0].tolist() == [[5.0, 4.0, 3.0], [0.0, 0.0, 0.0], [3.0, 1.0, 2.0]]


def test_heatmap_to_input_inverts_the_encoding() -> None:
    codec = HeatmapCodec()
    joints = torch.tensor([[[17.0, 203.5, -123.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    coords, _ = codec.encode_joints(joints, torch.ones(1, 2))
    torch.testing.assert_close(codec.heatmap_to_input(coords), joints, rtol=0, atol=1e-9)
    # one voxel = 4 input px in x/y and 6.25 mm in z
    one = codec.heatmap_to_input(torch.tensor([[[1.0, 1.0, 33.0]]]))
    assert one[0, 0].tolist() == [4.0, 4.0, 6.25]


def test_input_to_camera_is_exact_on_ground_truth_and_matches_project() -> None:
    scene = make_scene(batch=6, seed=1)
    codec = HeatmapCodec()
    cam = codec.input_to_camera(
        scene["joints_img"], scene["inv_trans"], scene["abs_root_depth"], scene["focal"], scene["princpt"]
    )
    torch.testing.assert_close(cam, scene["joints_cam"], rtol=0, atol=1e-8)
    uv = codec.project(cam, scene["focal"], scene["princpt"])
    xy = scene["joints_img"][..., :2]
    expected_uv = torch.einsum("bij,bkj->bki", scene["inv_trans"][:, :, :2], xy) + scene["inv_trans"][:, None, :, 2]
    torch.testing.assert_close(uv, expected_uv, rtol=0, atol=1e-8)


def test_input_to_camera_uses_each_hands_own_root_depth() -> None:
    joints = torch.zeros(1, NUM_JOINTS, 3)
    joints[..., 0] = 10.0  # x = 10 px in the input, z_rel = 0
    inv_trans = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    cam = HeatmapCodec.input_to_camera(
        joints, inv_trans, torch.tensor([[500.0, 800.0]]), torch.tensor([[100.0, 100.0]]), torch.zeros(1, 2)
    )
    assert torch.allclose(cam[0, :JOINTS_PER_HAND, 2], torch.tensor(500.0))
    assert torch.allclose(cam[0, JOINTS_PER_HAND:, 2], torch.tensor(800.0))
    assert torch.allclose(cam[0, :JOINTS_PER_HAND, 0], torch.tensor(50.0))  # (10 − 0) / 100 · 500
    assert torch.allclose(cam[0, JOINTS_PER_HAND:, 0], torch.tensor(80.0))


def test_round_trip_encode_render_decode_to_camera() -> None:
    codec = HeatmapCodec()
    scene = make_scene(batch=2, seed=2)
    coords, valid = codec.encode_joints(scene["joints_img"], scene["joint_valid"])
    assert valid.bool().all()
    volume = codec.render(coords.float())
    decoded = codec.decode_heatmaps(volume).double()
    # the nearest voxel centre is the argmax of the (isotropic) Gaussian
    assert (decoded - coords).abs().max() <= 0.5 + 1e-6
    assert torch.equal(decoded, coords.round())
    joints_img = codec.heatmap_to_input(decoded)
    err = (joints_img - scene["joints_img"]).abs()
    assert err[..., :2].max() <= 2.0 + 1e-6  # half a voxel = 2 input px
    assert err[..., 2].max() <= 3.125 + 1e-6  # half a depth bin = 3.125 mm
    cam = codec.input_to_camera(
        joints_img, scene["inv_trans"], scene["abs_root_depth"], scene["focal"], scene["princpt"]
    )
    cam_err = (cam - scene["joints_cam"]).norm(dim=-1)
    assert cam_err.max() < 6.0, cam_err.max()
    assert cam_err.mean() < 3.0


def test_decode_outputs_dict() -> None:
    codec = HeatmapCodec(input_size=64, heatmap_size=16, depth_bins=16, root_depth_bins=16, sigma=1.0)
    scene = make_scene(batch=3, seed=4, dtype=torch.float32)
    scene["joints_img"][..., :2] /= 4.0  # a 64-px input
    scene["inv_trans"][:, :, :2] *= 4.0
    coords, _ = codec.encode_joints(scene["joints_img"], scene["joint_valid"])
    rel_mm = torch.tensor([-50.0, 0.0, 75.0])
    bins, _ = codec.encode_root_depth(rel_mm, torch.ones(3))
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0], [-4.0, 4.0]])
    outputs = {
        "heatmaps": codec.render(coords),
        "root_logits": torch.zeros(3, 16),
        "root_bins": bins,
        "hand_logits": logits,
    }
    out = codec.decode(outputs, scene)
    assert set(out) == {"joints_img", "joints_cam", "rel_root_depth_mm", "hand_prob"}
    assert out["joints_img"].shape == (3, NUM_JOINTS, 3) and out["joints_cam"].shape == (3, NUM_JOINTS, 3)
    assert out["rel_root_depth_mm"].shape == (3,) and out["hand_prob"].shape == (3, 2)
    torch.testing.assert_close(out["rel_root_depth_mm"], rel_mm, rtol=0, atol=1e-4)
    torch.testing.assert_close(out["hand_prob"], torch.sigmoid(logits))
    assert (out["joints_img"][..., :2] - scene["joints_img"][..., :2]).abs().max() <= 2.0 + 1e-5
    assert (out["joints_img"][..., 2] - scene["joints_img"][..., 2]).abs().max() <= 12.5 + 1e-4  # 25 mm bins
    assert (out["joints_cam"] - scene["joints_cam"]).norm(dim=-1).max() < 20.0
