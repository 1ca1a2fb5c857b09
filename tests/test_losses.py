"""InterNetLoss: InterNet's three losses and their reductions (internet §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from internet_plus.joints import NUM_JOINTS
from internet_plus.models.codec import HeatmapCodec
from internet_plus.models.losses import InterNetLoss, dense_heatmap_mse, lean_heatmap_mse, sum_of_squares

#: A tiny geometry: 16-px input, 4×4×4 volumes (4 px and 100 mm per voxel), 8 root bins (50 mm each), σ = 1.
TINY = {
    "input_size": 16,
    "heatmap_size": 4,
    "depth_bins": 4,
    "sigma": 1.0,
    "depth_range_mm": 400.0,
    "root_depth_bins": 8,
    "root_depth_range_mm": 400.0,
    "peak": 255.0,
}


def make_batch(batch: int = 3, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    joints_img = torch.cat(
        [
            torch.rand(batch, NUM_JOINTS, 2, generator=g) * 16.0,
            (torch.rand(batch, NUM_JOINTS, 1, generator=g) - 0.5) * 380,
        ],
        -1,
    ).double()
    joint_valid = (torch.rand(batch, NUM_JOINTS, generator=g) > 0.25).double()
    sample = {
        "joints_img": joints_img,
        "joint_valid": joint_valid,
        "rel_root_depth": torch.tensor([-120.0, 35.0, 250.0])[:batch].double(),  # the last is out of range
        "root_valid": torch.tensor([1.0, 0.0, 1.0])[:batch].double(),
        "hand_type": torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])[:batch].double(),
        "hand_type_valid": torch.tensor([1.0, 1.0, 0.0])[:batch].double(),
    }
    outputs = {
        "heatmaps": (torch.rand(batch, NUM_JOINTS, 4, 4, 4, generator=g) * 255.0).double().requires_grad_(True),
        "root_logits": torch.zeros(batch, 8, dtype=torch.float64),
        "root_bins": torch.tensor([2.5, 6.0, 7.9])[:batch].double().requires_grad_(True),
        "hand_logits": torch.tensor([[1.5, -0.5], [-2.0, 0.7], [0.3, 0.2]])[:batch].double().requires_grad_(True),
    }
    return outputs, sample


def numpy_heatmap_loss(heatmaps: np.ndarray, joints_img: np.ndarray, joint_valid: np.ndarray) -> float:
    """InterNet's JointHeatmapLoss written out from the spec with explicit voxel loops (§3.1, §4.2, §4.3)."""
    b, j, d, h, w = heatmaps.shape
    total = 0.0
    for bi in range(b):
        for ji in range(j):
            x = joints_img[bi, ji, 0] / 16.0 * 4.0
            y = joints_img[bi, ji, 1] / 16.0 * 4.0
            z = (joints_img[bi, ji, 2] / 200.0 + 1.0) / 2.0 * 4.0
            valid = joint_valid[bi, ji] * float(0 <= x < 4 and 0 <= y < 4 and 0 <= z < 4)
            for k in range(d):
                for i in range(h):
                    for l in range(w):
                        target = 255.0 * math.exp(-((l - x) ** 2 + (i - y) ** 2 + (k - z) ** 2) / 2.0)
                        total += (heatmaps[bi, ji, k, i, l] - target) ** 2 * valid
    return total / heatmaps.size


@pytest.mark.parametrize("dense", [False, True])
def test_heatmap_loss_matches_a_hand_computation(dense: bool) -> None:
    outputs, sample = make_batch()
    criterion = InterNetLoss(HeatmapCodec(**TINY), dense_heatmap=dense)
    value = criterion(outputs, sample)["loss_heatmap"]
    expected = numpy_heatmap_loss(
        outputs["heatmaps"].detach().numpy(), sample["joints_img"].numpy(), sample["joint_valid"].numpy()
    )
    assert value.item() == pytest.approx(expected, rel=1e-9)


def test_heatmap_loss_ignores_masked_joints_but_counts_them_in_the_mean() -> None:
    outputs, sample = make_batch()
    criterion = InterNetLoss(HeatmapCodec(**TINY))
    base = criterion(outputs, sample)["loss_heatmap"]
    (grad,) = torch.autograd.grad(base, outputs["heatmaps"])
    _, valid = criterion.codec.encode_joints(sample["joints_img"], sample["joint_valid"])
    assert (valid == 0).any() and (valid == 1).any()
    assert torch.all(grad[valid == 0] == 0)  # no gradient into masked joints
    assert torch.all(grad[valid == 1].abs().sum(dim=(1, 2, 3)) > 0)

    # changing masked joints' predictions (or their coordinates, even to NaN) leaves the loss unchanged
    heatmaps = outputs["heatmaps"].detach().clone()
    heatmaps[valid == 0] = 1e4
    joints = sample["joints_img"].clone()
    joints[valid == 0] = float("nan")
    changed = criterion({**outputs, "heatmaps": heatmaps}, {**sample, "joints_img": joints})["loss_heatmap"]
    assert changed.item() == pytest.approx(base.item(), rel=1e-12)

    # the mean is over every element: dropping half the joints does not renormalise
    only_first = sample["joint_valid"].clone()
    only_first[:, NUM_JOINTS // 2 :] = 0.0
    half = criterion(outputs, {**sample, "joint_valid": only_first})["loss_heatmap"]
    other = sample["joint_valid"].clone()
    other[:, : NUM_JOINTS // 2] = 0.0
    rest = criterion(outputs, {**sample, "joint_valid": other})["loss_heatmap"]
    assert (half + rest).item() == pytest.approx(base.item(), rel=1e-12)


def test_root_loss_in_bins_masked_and_range_checked() -> None:
    outputs, sample = make_batch()
    value = InterNetLoss(HeatmapCodec(**TINY))(outputs, sample)["loss_root"]
    # gt bins = (rel / 200 + 1) / 2 · 8: -120 mm -> 1.6; 35 mm -> 4.7 (root_valid 0); 250 mm -> 9 (out of range)
    expected = (abs(2.5 - 1.6) * 1.0 + abs(6.0 - 4.7) * 0.0 + abs(7.9 - 9.0) * 0.0) / 3.0
    assert value.item() == pytest.approx(expected, rel=1e-12)
    (grad,) = torch.autograd.grad(value, outputs["root_bins"])
    assert grad.tolist() == pytest.approx([1.0 / 3.0, 0.0, 0.0])


def test_handedness_loss_is_bce_with_logits_averaged_over_labels_and_masked() -> None:
    outputs, sample = make_batch()
    value = InterNetLoss(HeatmapCodec(**TINY))(outputs, sample)["loss_handedness"]
    logits = outputs["hand_logits"].detach().numpy()
    labels = sample["hand_type"].numpy()
    p = 1.0 / (1.0 + np.exp(-logits))
    bce = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    expected = (bce.mean(axis=1) * sample["hand_type_valid"].numpy()).mean()
    assert value.item() == pytest.approx(expected, rel=1e-12)
    # InterNet's formulation (BCE on sigmoid outputs) gives the same value for moderate logits
    internet = F.binary_cross_entropy(torch.sigmoid(outputs["hand_logits"]), sample["hand_type"], reduction="none")
    internet = (internet.mean(dim=1) * sample["hand_type_valid"]).mean()
    torch.testing.assert_close(value, internet, rtol=1e-10, atol=0)


def test_handedness_loss_is_finite_for_saturated_logits() -> None:
    outputs, sample = make_batch()
    outputs["hand_logits"] = torch.tensor([[200.0, -200.0], [-200.0, 200.0], [0.0, 0.0]], dtype=torch.float64)
    value = InterNetLoss(HeatmapCodec(**TINY))(outputs, sample)["loss_handedness"]
    # sample 0 right, sample 1 wrong on the right label only: (0 + 0)/2 and (200 + 0)/2 -> mean over 3 = 100/3
    assert value.item() == pytest.approx(100.0 / 3.0, rel=1e-9)


def test_total_is_the_weighted_sum_and_weights_default_to_one() -> None:
    outputs, sample = make_batch()
    codec = HeatmapCodec(**TINY)
    plain = InterNetLoss(codec)(outputs, sample)
    assert set(plain) == {"loss", "loss_heatmap", "loss_root", "loss_handedness"}
    assert all(v.dim() == 0 for v in plain.values())
    expected = plain["loss_heatmap"] + plain["loss_root"] + plain["loss_handedness"]
    torch.testing.assert_close(plain["loss"], expected)
    weighted = InterNetLoss(codec, weights={"heatmap": 0.5, "handedness": 3.0})(outputs, sample)
    expected = 0.5 * plain["loss_heatmap"] + plain["loss_root"] + 3.0 * plain["loss_handedness"]
    torch.testing.assert_close(weighted["loss"], expected)
    torch.testing.assert_close(weighted["loss_heatmap"], plain["loss_heatmap"])
    with pytest.raises(ValueError, match="unknown loss weight"):
        InterNetLoss(codec, weights={"bone": 1.0})


def test_dense_and_lean_losses_agree_and_backpropagate() -> None:
    outputs, sample = make_batch()
    codec = HeatmapCodec(**TINY)
    lean = InterNetLoss(codec)(outputs, sample)["loss"]
    (grad_lean,) = torch.autograd.grad(lean, outputs["heatmaps"])
    dense = InterNetLoss(codec, dense_heatmap=True)(outputs, sample)["loss"]
    (grad_dense,) = torch.autograd.grad(dense, outputs["heatmaps"])
    torch.testing.assert_close(lean, dense, rtol=1e-10, atol=0)
    torch.testing.assert_close(grad_lean, grad_dense, rtol=1e-8, atol=1e-12)


def test_float32_posenet_outputs_give_float32_losses() -> None:
    outputs, sample = make_batch()
    outputs = {k: v.detach().float() for k, v in outputs.items()}
    sample = {k: v.float() for k, v in sample.items()}
    losses = InterNetLoss(HeatmapCodec(**TINY))(outputs, sample)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


# ------------------------------------------------------------------------------------------------ heatmap MSE (§3.1)
def _mse_case(dtype: torch.dtype, shape: tuple[int, int, int], batch: int, joints: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    d, h, w = shape
    codec = HeatmapCodec(input_size=4 * h, heatmap_size=h, depth_bins=d, sigma=2.5)
    coords = torch.rand(batch, joints, 3, generator=g, dtype=dtype) * torch.tensor([w, h, d], dtype=dtype)
    coords[0, 0] = torch.tensor([w + 3.0, -2.0, d / 2], dtype=dtype)  # a centre off the grid still works
    valid = (torch.rand(batch, joints, generator=g) > 0.3).to(dtype)
    target = codec.render(coords)
    pred = (target + 20.0 * torch.randn(target.shape, generator=g, dtype=dtype)).requires_grad_(True)
    return codec, pred, coords, valid


@pytest.mark.parametrize("shape", [(16, 16, 16), (12, 10, 10), (64, 64, 64)])
def test_lean_mse_equals_dense_mse_value_and_gradient_float64(shape: tuple[int, int, int]) -> None:
    batch, joints = (1, 3) if shape[0] == 64 else (3, 5)
    codec, pred, coords, valid = _mse_case(torch.float64, shape, batch, joints, seed=5)
    lean = lean_heatmap_mse(codec, pred, coords, valid)
    (grad_lean,) = torch.autograd.grad(lean, pred)
    dense = dense_heatmap_mse(codec, pred, coords, valid)
    (grad_dense,) = torch.autograd.grad(dense, pred)
    assert lean.dtype == torch.float64
    torch.testing.assert_close(lean, dense, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad_lean, grad_dense, rtol=1e-5, atol=1e-12)
    # the definition: mean over all elements, masked ones included
    manual = ((pred - codec.render(coords)) ** 2 * valid[..., None, None, None]).sum() / pred.numel()
    torch.testing.assert_close(dense, manual, rtol=1e-12, atol=0)


@pytest.mark.parametrize("noise", [0.5, 1e-3])
def test_lean_mse_float32_near_the_optimum(noise: float) -> None:
    """Accurate in float32 when the prediction is nearly perfect: the residual is formed before squaring.

    Expanding Σ(p − t)² into Σp² − 2Σpt + Σt² would cancel terms of about 5.7·10⁶ per joint down to 10⁻⁶·N and lose
    every digit at the smaller noise; the residual formulation stays within float32 rounding.
    """
    codec, pred, coords, valid = _mse_case(torch.float32, (64, 64, 64), 1, 2, seed=6)
    with torch.no_grad():
        pred.copy_(codec.render(coords) + noise * torch.randn_like(pred))
    lean = lean_heatmap_mse(codec, pred, coords, valid)
    reference = dense_heatmap_mse(codec, pred.double(), coords.double(), valid.double())
    assert abs(lean.item() - reference.item()) <= 1e-5 * reference.item()


def test_lean_mse_refuses_a_second_backward_through_the_same_graph() -> None:
    """Its backward reuses the saved residual as the gradient, so retain_graph=True must fail loudly, not silently."""
    codec, pred, coords, valid = _mse_case(torch.float32, (8, 8, 8), 1, 2, seed=8)
    loss = lean_heatmap_mse(codec, pred, coords, valid)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="second backward"):
        loss.backward()


@pytest.mark.parametrize("precision", ["highest", "medium"])
def test_sum_of_squares_with_every_matmul_precision(precision: str) -> None:
    """The batched-dot fast path (full precision) and the reduction (lowered precision) both give Σ x² per joint."""
    volumes = torch.randn(2, 3, 16, 16, 16, generator=torch.Generator().manual_seed(9))
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision(precision)
        result = sum_of_squares(volumes)
    finally:
        torch.set_float32_matmul_precision(before)
    torch.testing.assert_close(result.double(), volumes.double().square().sum(dim=(2, 3, 4)), rtol=1e-6, atol=0)


def test_mse_half_precision_inputs_are_computed_in_float32() -> None:
    codec, pred, coords, valid = _mse_case(torch.float32, (16, 16, 16), 2, 3, seed=7)
    half = pred.detach().to(torch.bfloat16)
    lean = lean_heatmap_mse(codec, half, coords, valid)
    dense = dense_heatmap_mse(codec, half, coords, valid)
    assert lean.dtype == torch.float32 and dense.dtype == torch.float32
    torch.testing.assert_close(lean, dense, rtol=1e-4, atol=0)


def test_mse_rejects_mismatched_shapes() -> None:
    codec = HeatmapCodec(heatmap_size=8, depth_bins=8, input_size=32)
    with pytest.raises(ValueError):
        lean_heatmap_mse(codec, torch.zeros(1, 2, 8, 8, 4), torch.zeros(1, 2, 3), torch.ones(1, 2))
    with pytest.raises(ValueError):
        lean_heatmap_mse(codec, torch.zeros(1, 2, 8, 8, 8), torch.zeros(1, 3, 3), torch.ones(1, 2))
