"""Metrics: numpy references (metrics.functional) and the DDP-correct torchmetrics (metrics.pose).

InterHand2.6M's metric (metrics.interhand) is compared with its references in ``test_interhand.py``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import ROOT

from internet_plus.joints import JOINTS_PER_HAND, NUM_JOINTS
from internet_plus.metrics import HandednessAccuracy, PoseErrorMetrics, functional
from internet_plus.metrics.functional import HAND3D_THRESHOLDS, PCK_THRESHOLDS
from internet_plus.metrics.pose import _keypoint_medians, root_relative, root_relative_mask
from internet_plus.tools import auc_conventions

#: torchmetrics warns when ``compute`` runs before any ``update``; these tests do that on purpose.
COMPUTE_BEFORE_UPDATE = pytest.mark.filterwarnings("ignore:The ``compute`` method of metric:UserWarning")

KEYS = (
    "epe_mm",
    "epe_median_mm",
    "pck_curve",
    "auc_20_50",
    "pck_curve_hand3d",
    "auc_20_50_hand3d",
    "epe_median_mm_hand3d",
)


def random_poses(n: int = 32, seed: int = 0, noise: float = 25.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.uniform(-100, 100, (n, NUM_JOINTS, 3)) + np.array([0.0, 0.0, 600.0])
    pred = gt + rng.normal(0.0, noise, gt.shape)
    mask = (rng.random((n, NUM_JOINTS)) > 0.2).astype(np.float32)
    return pred, gt, mask


def compute(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, chunks: int = 1) -> dict[str, np.ndarray]:
    metric = PoseErrorMetrics()
    for p, g, m in zip(
        np.array_split(pred, chunks), np.array_split(gt, chunks), np.array_split(mask, chunks), strict=True
    ):
        metric.update(torch.from_numpy(p).float(), torch.from_numpy(g).float(), torch.from_numpy(m))
    return {k: v.numpy() for k, v in metric.compute().items()}


def assert_same(values: dict, reference: dict, rtol: float = 1e-5) -> None:
    for key in KEYS:
        np.testing.assert_allclose(values[key], reference[key], rtol=rtol, atol=1e-6, err_msg=key)


# ------------------------------------------------------------------------------------------------ numpy references
def test_root_relative_subtracts_each_hands_own_wrist() -> None:
    joints = np.zeros((1, NUM_JOINTS, 3))
    joints[0, :JOINTS_PER_HAND] = [1.0, 2.0, 3.0]
    joints[0, JOINTS_PER_HAND:] = [10.0, 20.0, 30.0]
    joints[0, 5] += [4.0, 0.0, 0.0]
    joints[0, 30] += [0.0, 0.0, -7.0]
    rel = functional.root_relative(joints)
    expected = np.zeros_like(joints)
    expected[0, 5] = [4.0, 0.0, 0.0]
    expected[0, 30] = [0.0, 0.0, -7.0]
    np.testing.assert_array_equal(rel, expected)


def test_tensor_root_alignment_matches_numpy() -> None:
    pred, _, mask = random_poses(n=6, seed=9)
    mask[2, 0] = 0.0  # a right hand without its wrist
    np.testing.assert_array_equal(root_relative(torch.from_numpy(pred)).numpy(), functional.root_relative(pred))
    expected = functional.root_relative_mask(mask)
    np.testing.assert_array_equal(root_relative_mask(torch.from_numpy(mask)).numpy(), expected)
    with pytest.raises(ValueError, match="multiple of 21"):
        functional.per_hand(np.zeros((1, 20, 3)))
    with pytest.raises(ValueError, match="multiple of 21"):
        root_relative(torch.zeros(1, 20, 3))


def test_a_3_4_5_offset_gives_5_mm_everywhere() -> None:
    rng = np.random.default_rng(1)
    gt = rng.integers(-100, 100, (5, NUM_JOINTS, 3)).astype(np.float64)
    pred = gt + np.array([3.0, 4.0, 0.0])
    mask = np.ones((5, NUM_JOINTS))
    errors, valid = functional.joint_errors(pred, gt, mask)
    np.testing.assert_array_equal(errors, 5.0)
    assert valid.all()
    assert functional.epe(pred, gt, mask) == 5.0
    assert functional.epe_median(pred, gt, mask) == 5.0
    assert functional.mpjpe_per_joint_mean(pred, gt, mask) == 5.0
    np.testing.assert_array_equal(functional.pck_curve(errors, mask, np.array([4.0, 5.0, 6.0])), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(functional.pck_curve(errors, mask), np.ones(31))
    assert functional.auc(functional.pck_curve(errors, mask)) == 1.0
    # root alignment removes a global translation entirely
    aligned = functional.pose_metrics(pred, gt, mask)
    assert aligned["epe_mm"] == 0.0 and aligned["auc_20_50"] == 1.0


def hand_built_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two samples; per hand: wrist 0 mm, joints 1-10 off by 20 mm (12-16-0), joints 11-20 off by 30 mm (18-24-0)."""
    rng = np.random.default_rng(2)
    gt = rng.integers(-100, 100, (2, NUM_JOINTS, 3)).astype(np.float64) + np.array([0.0, 0.0, 600.0])
    offset = np.zeros((2, NUM_JOINTS, 3))
    for start in (0, JOINTS_PER_HAND):
        offset[:, start + 1 : start + 11] = [12.0, 16.0, 0.0]
        offset[:, start + 11 : start + 21] = [0.0, 18.0, 24.0]
    pred = gt + offset + np.array([5.0, -3.0, 40.0])  # plus a global translation, removed by root alignment
    return pred, gt, np.ones((2, NUM_JOINTS), dtype=np.float32)


def test_hand_checked_pose_metrics() -> None:
    pred, gt, mask = hand_built_case()
    # 84 joints: 4 wrists at 0, 40 at 20 mm, 40 at 30 mm
    expected_epe = (40 * 20.0 + 40 * 30.0) / 84
    expected_curve = np.where(PCK_THRESHOLDS < 30, 44 / 84, 1.0)
    expected_auc = (9 * 44 / 84 + (44 / 84 + 1.0) / 2 + 20 * 1.0) / 30
    ref = functional.pose_metrics(pred, gt, mask)
    assert ref["epe_mm"] == pytest.approx(expected_epe)
    assert ref["epe_median_mm"] == 20.0
    np.testing.assert_allclose(ref["pck_curve"], expected_curve)
    assert ref["auc_20_50"] == pytest.approx(expected_auc)
    ours = compute(pred, gt, mask)
    assert_same(ours, ref)
    assert ours["pck_curve"].shape == (31,)


def test_median_of_an_even_count_averages_the_two_middles() -> None:
    gt = np.zeros((1, NUM_JOINTS, 3))
    pred = np.zeros((1, NUM_JOINTS, 3))
    pred[0, 1, 0], pred[0, 2, 0] = 10.0, 20.0
    mask = np.zeros((1, NUM_JOINTS))
    mask[0, [0, 1, 2]] = 1.0  # errors 0, 10, 20 -> median 10
    assert compute(pred, gt, mask)["epe_median_mm"] == pytest.approx(10.0)
    mask[0, 3] = 1.0  # errors 0, 0, 10, 20 -> median 5
    assert compute(pred, gt, mask)["epe_median_mm"] == pytest.approx(5.0)
    assert functional.pose_metrics(pred, gt, mask)["epe_median_mm"] == pytest.approx(5.0)


def test_mpjpe_is_a_mean_of_per_joint_means_not_a_pooled_mean() -> None:
    gt = np.zeros((2, NUM_JOINTS, 3))
    pred = np.zeros((2, NUM_JOINTS, 3))
    pred[0, 1, 0] = 10.0  # joint 1: errors 10 (sample 0) and 0 (sample 1)
    pred[0, 2, 0] = 40.0  # joint 2: error 40, scored in sample 0 only
    mask = np.zeros((2, NUM_JOINTS))
    mask[:, 1] = 1.0
    mask[0, 2] = 1.0
    assert functional.mpjpe_per_joint_mean(pred, gt, mask) == pytest.approx((5.0 + 40.0) / 2)
    assert functional.epe(pred, gt, mask) == pytest.approx(50.0 / 3)
    assert np.isnan(functional.mpjpe_per_joint_mean(pred, gt, np.zeros_like(mask)))


def test_mrrpe() -> None:
    gt = np.zeros((3, NUM_JOINTS, 3))
    gt[:, JOINTS_PER_HAND] = [100.0, 0.0, 50.0]  # left wrist relative to the right one
    pred = gt.copy()
    pred[:, JOINTS_PER_HAND] += [3.0, 4.0, 0.0]  # 5 mm relative-root error
    pred[1] += 1000.0  # a global shift does not matter
    pred[2, JOINTS_PER_HAND] += [0.0, 0.0, 100.0]  # excluded by `valid`
    assert functional.mrrpe(pred, gt, np.array([1, 1, 0])) == pytest.approx(5.0)
    assert np.isnan(functional.mrrpe(pred, gt, np.zeros(3)))


@COMPUTE_BEFORE_UPDATE
def test_handedness_accuracy_cases() -> None:
    prob = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.7], [0.4, 0.3], [0.7, 0.9]])
    gt = np.array([[1, 0], [0, 1], [1, 0], [0, 0], [1, 1]])
    valid = np.array([1, 1, 1, 0, 1])
    # correct: right, left, wrong (left predicted too), masked, interacting
    assert functional.handedness_accuracy(prob, gt, valid) == pytest.approx(3 / 4)
    metric = HandednessAccuracy()
    metric.update(torch.tensor(prob[:2]), torch.tensor(gt[:2]), torch.tensor(valid[:2]))
    metric.update(torch.tensor(prob[2:]), torch.tensor(gt[2:]), torch.tensor(valid[2:]))
    assert metric.compute().item() == pytest.approx(3 / 4)
    assert np.isnan(functional.handedness_accuracy(prob, gt, np.zeros(5)))
    empty = HandednessAccuracy()
    assert torch.isnan(empty.compute())


def test_handedness_accuracy_random_against_numpy() -> None:
    rng = np.random.default_rng(3)
    prob, gt, valid = rng.random((50, 2)), (rng.random((50, 2)) > 0.5).astype(np.float32), rng.random(50) > 0.3
    metric = HandednessAccuracy()
    for idx in np.array_split(np.arange(50), 4):
        metric.update(torch.tensor(prob[idx]), torch.tensor(gt[idx]), torch.tensor(valid[idx]))
    assert metric.compute().item() == pytest.approx(functional.handedness_accuracy(prob, gt, valid), rel=1e-6)


# ------------------------------------------------------------------------------------------------ torchmetrics
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pose_metrics_match_numpy_on_random_masked_data(seed: int) -> None:
    pred, gt, mask = random_poses(seed=seed)
    mask[0, :JOINTS_PER_HAND] = 0.0  # a hand with nothing scored
    mask[1, JOINTS_PER_HAND] = 0.0  # a hand whose wrist is not scored: its joints are dropped
    ref = functional.pose_metrics(pred, gt, mask)
    ours = compute(pred, gt, mask)
    assert_same(ours, ref)
    assert 0.0 <= ours["auc_20_50"] <= 1.0
    assert np.all(np.diff(ours["pck_curve"]) >= 0)  # PCK is monotone in the threshold
    # the wrist-less hand really is dropped
    keep = mask.copy()
    keep[1, JOINTS_PER_HAND:] = 0.0
    assert_same(compute(pred, gt, keep), ref)


def test_update_in_several_batches_equals_one_batch() -> None:
    pred, gt, mask = random_poses(n=40, seed=4)
    one = compute(pred, gt, mask)
    for chunks in (2, 3, 7):
        assert_same(compute(pred, gt, mask, chunks=chunks), one, rtol=1e-6)


def test_root_alignment_makes_a_per_hand_translation_error_zero() -> None:
    _, gt, mask = random_poses(seed=5)
    pred = gt.copy()
    pred[:, :JOINTS_PER_HAND] += [30.0, -10.0, 80.0]
    pred[:, JOINTS_PER_HAND:] += [-5.0, 50.0, 120.0]
    ours = compute(pred, gt, mask)
    assert ours["epe_mm"] == pytest.approx(0.0, abs=1e-4) and ours["epe_median_mm"] == pytest.approx(0.0, abs=1e-4)
    np.testing.assert_array_equal(ours["pck_curve"], 1.0)
    assert ours["auc_20_50"] == pytest.approx(1.0)
    np.testing.assert_array_equal(ours["pck_curve_hand3d"][1:], 1.0)  # [0] is t = 0 mm: float rounding decides
    assert ours["auc_20_50_hand3d"] == pytest.approx(1.0)
    assert ours["epe_median_mm_hand3d"] == pytest.approx(0.0, abs=1e-4)


@COMPUTE_BEFORE_UPDATE
def test_no_valid_joint_gives_nan_not_an_error() -> None:
    pred, gt, mask = random_poses(n=4, seed=6)
    for values in (
        compute(pred, gt, np.zeros_like(mask)),
        {k: v.numpy() for k, v in PoseErrorMetrics().compute().items()},
    ):
        assert np.isnan(values["epe_mm"]) and np.isnan(values["epe_median_mm"]) and np.isnan(values["auc_20_50"])
        assert values["pck_curve"].shape == (31,) and np.isnan(values["pck_curve"]).all()
        assert np.isnan(values["auc_20_50_hand3d"]) and np.isnan(values["epe_median_mm_hand3d"])
        assert values["pck_curve_hand3d"].shape == (20,) and np.isnan(values["pck_curve_hand3d"]).all()
    ref = functional.pose_metrics(pred, gt, np.zeros_like(mask))
    assert np.isnan(ref["epe_mm"]) and np.isnan(ref["auc_20_50"]) and np.isnan(ref["pck_curve"]).all()
    assert np.isnan(ref["auc_20_50_hand3d"]) and np.isnan(ref["epe_median_mm_hand3d"])
    assert np.isnan(ref["pck_curve_hand3d"]).all()


@COMPUTE_BEFORE_UPDATE
def test_reset_and_custom_thresholds() -> None:
    pred, gt, mask = random_poses(n=8, seed=7)
    metric = PoseErrorMetrics(thresholds=[10.0, 25.0, 40.0])
    metric.update(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(mask))
    values = metric.compute()
    ref = functional.pose_metrics(pred, gt, mask, thresholds=np.array([10.0, 25.0, 40.0]))
    assert values["pck_curve"].shape == (3,)
    assert_same({k: v.numpy() for k, v in values.items()}, ref)
    metric.reset()
    assert torch.isnan(metric.compute()["epe_mm"])
    with pytest.raises(ValueError):
        PoseErrorMetrics(thresholds=[20.0])
    with pytest.raises(ValueError):
        PoseErrorMetrics(thresholds=[30.0, 20.0])


def test_auc_reference() -> None:
    assert functional.auc(np.ones(31)) == 1.0
    assert functional.auc(np.zeros(31)) == 0.0
    assert functional.auc(np.linspace(0.0, 1.0, 31)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        functional.auc(np.ones(1), np.array([20.0]))


# ------------------------------------------------------------------------------------------------ hand3d's variants
def hand3d_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two samples, errors chosen per joint (root-relative; each hand also gets its own translation):

    sample 0, right hand: wrist, keypoint 1 at 10 mm, keypoint 2 at 41.5 mm; left hand: wrist, keypoint 1 at 29.5 mm;
    sample 1, right hand: wrist, keypoint 1 at 60 mm; left hand: keypoint 2 at 5 mm, but its wrist is not scored,
    so it is dropped. Keypoint 0 has 3 errors (0, 0, 0), keypoint 1 three (10, 29.5, 60), keypoint 2 one (41.5);
    keypoints 3-20 none. No error lies on a threshold of either grid (float32 rounding would decide it).
    """
    rng = np.random.default_rng(11)
    gt = rng.uniform(-80, 80, (2, NUM_JOINTS, 3)) + np.array([0.0, 0.0, 500.0])
    offset = np.zeros((2, NUM_JOINTS, 3))
    offset[0, 1] = [6.0, 8.0, 0.0]  # 10 mm
    offset[0, 2] = [0.0, 0.0, 41.5]
    offset[0, 22] = [0.0, 29.5, 0.0]
    offset[1, 1] = [36.0, 48.0, 0.0]  # 60 mm
    offset[1, 23] = [3.0, 4.0, 0.0]  # 5 mm, dropped with its hand
    offset[:, :JOINTS_PER_HAND] += [7.0, -2.0, 30.0]
    offset[:, JOINTS_PER_HAND:] += [-4.0, 9.0, -15.0]
    mask = np.zeros((2, NUM_JOINTS), dtype=np.float32)
    mask[0, [0, 1, 2, 21, 22]] = 1.0
    mask[1, [0, 1, 23]] = 1.0
    return gt + offset, gt, mask


def test_hand3d_known_answer() -> None:
    pred, gt, mask = hand3d_case()
    per_keypoint = functional.errors_by_keypoint(*functional.joint_errors(*functional.root_aligned(pred, gt, mask)))
    assert len(per_keypoint) == JOINTS_PER_HAND
    np.testing.assert_allclose(np.sort(per_keypoint[0]), [0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(np.sort(per_keypoint[1]), [10.0, 29.5, 60.0])
    np.testing.assert_allclose(per_keypoint[2], [41.5])
    assert all(e.size == 0 for e in per_keypoint[3:])
    # thresholds t_i = 50 i / 19: keypoint 1 reaches 1/3 at t_4 = 10.5 and 2/3 at t_12 = 31.6 (60 mm never),
    # keypoint 2 reaches 1 at t_16 = 42.1; keypoint 0 is always 1; keypoints 3-20 are left out of the mean.
    expected_curve = np.repeat([1 / 3, 4 / 9, 5 / 9, 8 / 9], [4, 8, 4, 4])
    # trapezoids over t_8 … t_19 (11 steps of 50/19 mm), divided by the 11 steps
    expected_auc = (3 * 4 / 9 + (4 / 9 + 5 / 9) / 2 + 3 * 5 / 9 + (5 / 9 + 8 / 9) / 2 + 3 * 8 / 9) / 11
    assert expected_auc == pytest.approx(62 / 99)
    expected_median = (0.0 + 29.5 + 41.5) / 3  # the medians of keypoints 0, 1, 2
    ref = functional.pose_metrics(pred, gt, mask)
    np.testing.assert_allclose(ref["pck_curve_hand3d"], expected_curve)
    assert ref["auc_20_50_hand3d"] == pytest.approx(expected_auc)
    assert ref["epe_median_mm_hand3d"] == pytest.approx(expected_median)
    ours = compute(pred, gt, mask)
    assert_same(ours, ref)
    assert ours["pck_curve_hand3d"].shape == (20,)
    # The pooled values of the same 7 errors (0, 0, 0, 10, 29.5, 41.5, 60): median 10 mm, and PCK 4/7 at 20…29 mm,
    # 5/7 at 30…41 mm, 6/7 at 42…50 mm, so the AUC over 20, 21, …, 50 mm is 149/210 = 0.710, not 62/99 = 0.626.
    assert ref["epe_median_mm"] == pytest.approx(10.0)
    assert ref["auc_20_50"] == pytest.approx((9 * 4 + 4.5 + 11 * 5 + 5.5 + 8 * 6) / 7 / 30)
    assert ref["auc_20_50"] == pytest.approx(149 / 210)


def test_hand3d_differs_from_pooled_only_by_keypoint_weights_and_grid() -> None:
    """With every keypoint scored equally often the per-keypoint mean of PCK is the pooled PCK, so the two AUCs differ
    only by the threshold grid; with unequal counts (a keypoint's good errors masked out) the curves differ too."""
    pred, gt, mask = random_poses(n=24, seed=12)
    tail = HAND3D_THRESHOLDS[8:]
    full = np.ones_like(mask)
    errors, valid = functional.joint_errors(*functional.root_aligned(pred, gt, full))
    pooled = functional.pck_curve(errors, valid, HAND3D_THRESHOLDS)
    ref = functional.pose_metrics(pred, gt, full)
    np.testing.assert_allclose(ref["pck_curve_hand3d"], pooled)
    assert ref["auc_20_50_hand3d"] == pytest.approx(functional.auc(pooled[8:], tail))
    assert ref["auc_20_50_hand3d"] != pytest.approx(ref["auc_20_50"], abs=1e-4)  # 21.05-50 mm on 12 points
    # keypoint 5: keep only its errors above the median, everything else scored
    unequal = full.copy()
    for joint in (5, JOINTS_PER_HAND + 5):
        unequal[:, joint] = errors[:, joint] > np.median(errors[:, [5, JOINTS_PER_HAND + 5]])
    errors, valid = functional.joint_errors(*functional.root_aligned(pred, gt, unequal))
    pooled = functional.pck_curve(errors, valid, HAND3D_THRESHOLDS)
    ref = functional.pose_metrics(pred, gt, unequal)
    assert np.abs(ref["pck_curve_hand3d"] - pooled).max() > 1e-3
    assert ref["pck_curve_hand3d"][8:].mean() < pooled[8:].mean()  # the bad keypoint weighs 1/21, not less
    assert_same(compute(pred, gt, unequal, chunks=5), ref)


def _hand3d_loop(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """hand3d's evaluation written as its loop: feed each hand's root-relative keypoints one sample at a time into
    21 lists, then per keypoint PCK and median, averaged over the keypoints with data; AUC on thresholds[8:] by
    ``np.trapezoid`` normalised by the trapezoid of ones (``calc_auc``)."""
    data: list[list[float]] = [[] for _ in range(JOINTS_PER_HAND)]
    for n in range(pred.shape[0]):
        for start in (0, JOINTS_PER_HAND):
            hand = slice(start, start + JOINTS_PER_HAND)
            if not mask[n, start]:
                continue
            rel_gt = gt[n, hand] - gt[n, start]
            rel_pred = pred[n, hand] - pred[n, start]
            dist = np.sqrt(np.sum(np.square(rel_gt - rel_pred), axis=1))
            for k in range(JOINTS_PER_HAND):
                if mask[n, start + k]:
                    data[k].append(dist[k])
    thresholds = np.linspace(0.0, 50.0, 20)
    curves = [[np.mean(np.array(d) <= t) for t in thresholds] for d in data if d]
    medians = [np.median(d) for d in data if d]
    curve = np.mean(np.array(curves), axis=0)
    auc = np.trapezoid(curve[8:], thresholds[8:]) / np.trapezoid(np.ones(12), thresholds[8:])
    return curve, float(auc), float(np.mean(medians))


@pytest.mark.parametrize("seed", [13, 14])
def test_hand3d_matches_its_loop_on_random_data(seed: int) -> None:
    pred, gt, mask = random_poses(n=30, seed=seed)
    mask[:, 7] = 0.0  # right keypoint 7 never scored: keypoint 7 comes from left hands only
    mask[:, [9, JOINTS_PER_HAND + 9]] = 0.0  # keypoint 9 never scored at all: left out of the means
    curve, auc, median = _hand3d_loop(pred, gt, mask)
    ref = functional.pose_metrics(pred, gt, mask)
    np.testing.assert_allclose(ref["pck_curve_hand3d"], curve)
    assert ref["auc_20_50_hand3d"] == pytest.approx(auc)
    assert ref["epe_median_mm_hand3d"] == pytest.approx(median)
    for chunks in (1, 4, 7):  # uneven batches
        assert_same(compute(pred, gt, mask, chunks=chunks), ref)


def test_keypoint_medians_with_ties_even_counts_and_unscored_keypoints() -> None:
    rng = np.random.default_rng(15)
    for trial in range(50):
        count = int(rng.integers(0, 40))
        errors = rng.integers(0, 6, count).astype(np.float64)  # many ties
        keypoints = rng.choice([0, 3, 20], count) if trial % 2 else rng.integers(0, JOINTS_PER_HAND, count)
        expected = [np.median(errors[keypoints == k]) if (keypoints == k).any() else np.nan for k in range(21)]
        got = _keypoint_medians(torch.from_numpy(errors), torch.from_numpy(keypoints))
        np.testing.assert_array_equal(got.numpy(), expected)


def test_auc_hand3d_needs_the_20_point_curve() -> None:
    assert functional.auc_hand3d(np.ones(20)) == 1.0
    assert functional.auc_hand3d(HAND3D_THRESHOLDS / 50.0) == pytest.approx((21.0526 + 50) / 2 / 50, rel=1e-5)
    with pytest.raises(ValueError, match="20-point"):
        functional.auc_hand3d(np.ones(31))


def test_auc_conventions_tool_prints_the_documented_table() -> None:
    """``python -m internet_plus.tools.auc_conventions``: with every joint scored the hand3d AUC is the pooled curve's
    AUC on hand3d's grid; its rows are the ones docs/fidelity.md quotes."""
    pred, gt, mask = auc_conventions.fake_set(samples=500)
    m = auc_conventions.measure(pred, gt, mask)
    assert m["auc_20_50_hand3d"] == pytest.approx(m["auc_pooled_on_hand3d_grid"], abs=1e-4)
    assert m["auc_20_50_hand3d"] > m["auc_20_50"]  # 21.05-50 mm leaves out the lowest PCK values
    _, _, visible = auc_conventions.fake_set(samples=500, visible_only=True)
    assert visible[:, 0].sum() + visible[:, JOINTS_PER_HAND].sum() == 500  # one scored hand, its wrist always
    assert visible[:, [4, 8]].mean() < visible[:, [1, 5]].mean()  # tips hidden more often than bases
    doc = (ROOT / "docs" / "fidelity.md").read_text()
    for line in auc_conventions.rows():
        assert line in doc, line


# ------------------------------------------------------------------------------------------------ DDP (gloo, CPU)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str, shards: list) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        pose, hand = PoseErrorMetrics(), HandednessAccuracy()
        for pred, gt, mask, prob, labels, valid in shards[rank]:
            pose.update(pred, gt, mask)
            hand.update(prob, labels, valid)
        values = pose.compute()
        values["handedness_acc"] = hand.compute()
        torch.save(values, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("layout", ["uneven", "idle_rank"])
def test_ddp_sync_equals_a_single_process(tmp_path: Path, layout: str) -> None:
    pred, gt, mask = random_poses(n=20, seed=8)
    rng = np.random.default_rng(8)
    prob, labels, valid = rng.random((20, 2)), (rng.random((20, 2)) > 0.5) * 1.0, (rng.random(20) > 0.2) * 1.0

    def batch(idx: slice) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(np.ascontiguousarray(a[idx])) for a in (pred, gt, mask, prob, labels, valid))

    # a batch with nothing valid (no scored joint, no scored hand type)
    p0, g0, m0, q0, l0, v0 = batch(slice(0, 2))
    empty = (p0, g0, torch.zeros_like(m0), q0, l0, torch.zeros_like(v0))
    if layout == "uneven":  # rank 0: three batches (one empty), rank 1: one batch
        shards = [[batch(slice(2, 9)), empty, batch(slice(9, 12))], [batch(slice(12, 20))]]
    else:  # rank 1 never calls update: its "cat" state is an empty list
        shards = [[batch(slice(2, 12)), empty, batch(slice(12, 20))], []]
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), shards), nprocs=2, join=True)

    used = mask.copy()
    used[:2] = 0.0
    ref = functional.pose_metrics(pred, gt, used)
    ref["handedness_acc"] = functional.handedness_accuracy(prob[2:], labels[2:], valid[2:])
    for rank in range(2):
        values = {k: v.numpy() for k, v in torch.load(tmp_path / f"rank{rank}.pt").items()}
        assert_same(values, ref)
        assert values["handedness_acc"] == pytest.approx(ref["handedness_acc"], rel=1e-6)
