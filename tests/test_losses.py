"""InterNetLoss: InterNet's three losses and their reductions (internet §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from internet_plus.joints import NUM_JOINTS
from internet_plus.models.codec import HeatmapCodec
from internet_plus.models.losses import InterNetLoss

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
