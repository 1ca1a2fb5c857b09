"""Numpy reference implementations of the project's metrics (``docs/reference/conventions.md``, "Metric names").

Shapes: N samples, K joints (K = 42 in the project's order, right hand 0–20, left hand 21–41), 3 coordinates in mm.
A ``mask`` is N×K, nonzero where a joint is scored. These functions are the readable definitions, one per metric,
that the torchmetrics implementations (:mod:`internet_plus.metrics.pose`, :mod:`internet_plus.metrics.interhand`)
are tested against.

The error functions (:func:`joint_errors`, :func:`epe`, :func:`epe_median`, :func:`mpjpe_per_joint_mean`) compare
the coordinates they are given; root alignment is a separate step (:func:`root_relative`, :func:`root_aligned`), and
:func:`pose_metrics` chains everything exactly as :class:`~internet_plus.metrics.pose.PoseErrorMetrics` does.
The hand-pose literature's variants (``pck_curve_hand3d``, ``auc_20_50_hand3d``, ``epe_median_mm_hand3d``) follow
hand3d's ``EvalUtil`` (lmb-freiburg/hand3d, ``utils/general.py``, and ``eval_full.py``; datasets §A.6): errors are
grouped by hand keypoint (:func:`errors_by_keypoint`), each keypoint gets its own PCK curve and median, and those are
averaged over the keypoints (:func:`pck_curve_hand3d`, :func:`auc_hand3d`, :func:`epe_median_hand3d`).
InterHand2.6M's five values in InterNet's definitions (internet §5.3, datasets §C.6) are :func:`mpjpe_by_kind`,
:func:`mrrpe` over :func:`mrrpe_samples` and :func:`handedness_accuracy`, chained by :func:`interhand_metrics` as
:class:`~internet_plus.metrics.interhand.InterHandMetrics` does. Whenever nothing is scored (no valid joint / sample)
a metric is NaN rather than an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

from internet_plus.joints import JOINTS_PER_HAND, ROOTS

if TYPE_CHECKING:
    import torch

#: A numpy array or a torch tensor (:func:`per_hand` serves both).
ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")

#: The contract's PCK thresholds: 20, 21, …, 50 mm.
PCK_THRESHOLDS: np.ndarray = np.arange(20, 51, dtype=np.float64)

#: hand3d's PCK thresholds, ``EvalUtil.get_measures(0, 50 mm, 20)``: linspace(0, 50, 20) mm, 2.63 mm apart.
HAND3D_THRESHOLDS: np.ndarray = np.linspace(0.0, 50.0, 20)

#: hand3d's "20-50 mm" AUC (``eval_full.py``) integrates ``HAND3D_THRESHOLDS[8:]``, i.e. 21.05 … 50 mm (12 values).
HAND3D_AUC_FROM = 8


def per_hand(array: ArrayT) -> ArrayT:
    """N×K×... -> N×(K/21)×21×... (one block per hand), for numpy arrays and torch tensors alike."""
    n, k = array.shape[:2]
    if k % JOINTS_PER_HAND:
        raise ValueError(f"the joint axis must be a multiple of {JOINTS_PER_HAND}, got {k}")
    return array.reshape(n, k // JOINTS_PER_HAND, JOINTS_PER_HAND, *array.shape[2:])


def root_relative(joints: np.ndarray) -> np.ndarray:
    """Subtract each hand's own wrist (joints 0 and 21) from that hand's joints: N×K×3 -> N×K×3.

    The wrists become exactly 0 (internet §5.2 step 6).
    """
    joints = np.asarray(joints, dtype=np.float64)
    hands = per_hand(joints)
    return (hands - hands[:, :, :1]).reshape(joints.shape)


def root_relative_mask(mask: np.ndarray) -> np.ndarray:
    """N×K boolean mask of joints whose root-relative error is defined: the joint *and* its hand's wrist are valid.

    A root-relative coordinate needs the wrist; InterNet invalidates a hand whose wrist is not annotated at load time
    (internet §7.8), which this reproduces for masks that do not do so already.
    """
    mask = np.asarray(mask) > 0
    hands = per_hand(mask)
    return (hands & hands[:, :, :1]).reshape(mask.shape)


def root_aligned(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(root_relative(pred), root_relative(gt), root_relative_mask(mask)): both poses aligned per hand."""
    return root_relative(pred), root_relative(gt), root_relative_mask(mask)


def joint_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean error of every joint, N×K (mm), and the boolean N×K mask of the scored ones.

    Args:
        pred, gt: N×K×3.
        mask: N×K (or broadcastable to it), nonzero where the joint is scored.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    errors = np.linalg.norm(pred - gt, axis=-1)
    return errors, np.broadcast_to(np.asarray(mask) > 0, errors.shape)


def epe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Mean end-point error pooled over all scored joints (``epe_mm`` once the inputs are root-aligned), mm."""
    errors, valid = joint_errors(pred, gt, mask)
    return float(errors[valid].mean()) if valid.any() else float("nan")


def epe_median(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Median end-point error over all scored joints (``epe_median_mm``), mm (mean of the two middles if even)."""
    errors, valid = joint_errors(pred, gt, mask)
    return float(np.median(errors[valid])) if valid.any() else float("nan")


def pck_curve(errors: np.ndarray, mask: np.ndarray, thresholds: np.ndarray = PCK_THRESHOLDS) -> np.ndarray:
    """3-D PCK: the fraction of scored joints with error ≤ t, for each threshold t (``pck_curve``).

    Args:
        errors: N×K errors in mm (:func:`joint_errors`).
        mask: N×K, nonzero where scored.
        thresholds: T thresholds in mm (20, 21, …, 50 by default).

    Returns:
        T fractions in [0, 1] (NaN when nothing is scored).
    """
    errors = np.asarray(errors, dtype=np.float64)
    valid = np.broadcast_to(np.asarray(mask) > 0, errors.shape)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    scored = errors[valid]
    if scored.size == 0:
        return np.full(thresholds.shape, np.nan)
    return (scored[:, None] <= thresholds[None, :]).mean(axis=0)


def auc(pck: np.ndarray, thresholds: np.ndarray = PCK_THRESHOLDS) -> float:
    """Area under the PCK curve by the trapezoid rule, divided by (t_max − t_min) (``auc_20_50``), in [0, 1]."""
    pck = np.asarray(pck, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.size < 2 or pck.shape != thresholds.shape:
        raise ValueError("auc needs at least two thresholds and one PCK value per threshold")
    area = np.sum((pck[1:] + pck[:-1]) / 2.0 * np.diff(thresholds))
    return float(area / (thresholds[-1] - thresholds[0]))


def errors_by_keypoint(errors: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """The scored errors of each hand keypoint: 21 arrays, keypoint k = joint index mod 21 (hand3d's ``EvalUtil.feed``).

    In the project's 42-joint layout the right and left hand's joints k and k + 21 are the same keypoint (both
    wrists are keypoint 0), since RHD and STB score one hand per sample and hand3d keeps one list per keypoint.

    Args:
        errors: N×K errors in mm (:func:`joint_errors`), K a multiple of 21.
        mask: N×K, nonzero where scored.
    """
    errors = np.asarray(errors, dtype=np.float64)
    valid = per_hand(np.broadcast_to(np.asarray(mask) > 0, errors.shape))
    errors = per_hand(errors)
    return [errors[..., k][valid[..., k]] for k in range(JOINTS_PER_HAND)]


def pck_curve_hand3d(per_keypoint: list[np.ndarray], thresholds: np.ndarray = HAND3D_THRESHOLDS) -> np.ndarray:
    """hand3d's PCK curve (``pck_curve_hand3d``): each keypoint's fraction of errors ≤ t, averaged over keypoints.

    A keypoint with no scored error is left out of the average, as hand3d's ``get_measures`` skips it; unlike the
    pooled :func:`pck_curve`, every scored keypoint weighs the same however many joints it has.

    Args:
        per_keypoint: the errors of each keypoint (:func:`errors_by_keypoint`).
        thresholds: T thresholds in mm (linspace(0, 50, 20) by default).

    Returns:
        T fractions in [0, 1] (NaN when no keypoint is scored).
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    curves = [(e[:, None] <= thresholds[None, :]).mean(axis=0) for e in per_keypoint if e.size]
    return np.mean(curves, axis=0) if curves else np.full(thresholds.shape, np.nan)


def auc_hand3d(curve: np.ndarray) -> float:
    """hand3d's "AUC 20-50 mm" (``auc_20_50_hand3d``) of a 20-point :func:`pck_curve_hand3d`.

    ``eval_full.py`` keeps the curve's last 12 points (``HAND3D_THRESHOLDS[8:]``, 21.05 … 50 mm) and ``calc_auc``
    divides their trapezoidal area by the trapezoidal area of ones, i.e. by the span 50 − 21.05 = 28.95 mm.
    """
    curve = np.asarray(curve, dtype=np.float64)
    if curve.shape != HAND3D_THRESHOLDS.shape:
        raise ValueError(f"auc_hand3d needs the {HAND3D_THRESHOLDS.size}-point hand3d curve, got {curve.shape}")
    return auc(curve[HAND3D_AUC_FROM:], HAND3D_THRESHOLDS[HAND3D_AUC_FROM:])


def epe_median_hand3d(per_keypoint: list[np.ndarray]) -> float:
    """hand3d's "average median EPE" (``epe_median_mm_hand3d``): the mean over keypoints of each one's median, mm.

    Keypoints with no scored error are skipped (hand3d's ``get_measures``); NaN when none is scored.
    """
    medians = [np.median(e) for e in per_keypoint if e.size]
    return float(np.mean(medians)) if medians else float("nan")


def handedness_accuracy(prob: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """Fraction of valid samples whose thresholded probabilities match the labels on both hands (``handedness_acc``).

    A sample is correct when (prob > 0.5) == (gt > 0.5) for both [right, left] labels (internet §5.3).

    Args:
        prob: N×2 predicted presence probabilities [right, left].
        gt: N×2 labels [right present, left present].
        valid: N, nonzero where the hand type is scored.
    """
    correct = np.all((np.asarray(prob) > 0.5) == (np.asarray(gt) > 0.5), axis=-1)
    keep = np.asarray(valid).reshape(-1) > 0
    return float(correct[keep].mean()) if keep.any() else float("nan")


def mpjpe_per_joint_mean(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """InterNet's MPJPE: the mean over joints of each joint's mean error over its scored samples, mm.

    internet §5.3/§5.4: a mean of per-joint means, not a pooled mean (:func:`epe`). Joints never scored
    are skipped (InterNet's ``np.mean`` of an empty list would make the whole result NaN); NaN if none is scored.
    """
    errors, valid = joint_errors(pred, gt, mask)
    counts = valid.sum(axis=0)
    if not counts.any():
        return float("nan")
    sums = np.where(valid, errors, 0.0).sum(axis=0)
    seen = counts > 0
    return float(np.mean(sums[seen] / counts[seen]))


def mrrpe(pred_cam: np.ndarray, gt_cam: np.ndarray, valid: np.ndarray) -> float:
    """Mean relative-root position error: mean over valid samples of ‖(L − R)_pred − (L − R)_gt‖₂, mm (``mrrpe_mm``).

    R and L are the right and left wrists (joints 0 and 21) in camera coordinates (internet §5.3; InterNet's
    choice of absolute depth for the predicted wrists belongs to the decoding, not to this metric).

    Args:
        pred_cam, gt_cam: N×42×3 camera coordinates in mm.
        valid: N, nonzero for interacting samples with both wrists valid.
    """
    pred_cam = np.asarray(pred_cam, dtype=np.float64)
    gt_cam = np.asarray(gt_cam, dtype=np.float64)
    right, left = ROOTS
    rel_pred = pred_cam[:, left] - pred_cam[:, right]
    rel_gt = gt_cam[:, left] - gt_cam[:, right]
    keep = np.asarray(valid).reshape(-1) > 0
    if not keep.any():
        return float("nan")
    return float(np.linalg.norm(rel_pred[keep] - rel_gt[keep], axis=-1).mean())


def pose_metrics(
    pred_cam: np.ndarray, gt_cam: np.ndarray, mask: np.ndarray, thresholds: np.ndarray = PCK_THRESHOLDS
) -> dict[str, float | np.ndarray]:
    """Everything :class:`~internet_plus.metrics.pose.PoseErrorMetrics` reports, from camera coordinates.

    Both poses are root-aligned per hand, joints of a hand whose wrist is not scored are dropped
    (:func:`root_relative_mask`), then ``epe_mm``, ``epe_median_mm``, ``pck_curve`` and ``auc_20_50`` (the area
    normalised over ``thresholds``) are computed over the remaining joints, pooled, and ``pck_curve_hand3d``,
    ``auc_20_50_hand3d`` and ``epe_median_mm_hand3d`` over the same errors grouped by keypoint (hand3d's
    definitions, whatever ``thresholds`` is).
    """
    pred, gt, valid = root_aligned(pred_cam, gt_cam, mask)
    errors, valid = joint_errors(pred, gt, valid)
    curve = pck_curve(errors, valid, thresholds)
    per_keypoint = errors_by_keypoint(errors, valid)
    curve_hand3d = pck_curve_hand3d(per_keypoint)
    return {
        "epe_mm": epe(pred, gt, valid),
        "epe_median_mm": epe_median(pred, gt, valid),
        "pck_curve": curve,
        "auc_20_50": auc(curve, thresholds) if valid.any() else float("nan"),
        "pck_curve_hand3d": curve_hand3d,
        "auc_20_50_hand3d": auc_hand3d(curve_hand3d),
        "epe_median_mm_hand3d": epe_median_hand3d(per_keypoint),
    }


def sample_kinds(hand_type: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(single, interacting): boolean N arrays from N×2 ground-truth hand types [right, left] (one / both > 0.5)."""
    present = np.asarray(hand_type).reshape(-1, 2) > 0.5
    return present.sum(axis=1) == 1, present.all(axis=1)


def mpjpe_by_kind(
    pred_cam: np.ndarray, gt_cam: np.ndarray, joint_valid: np.ndarray, hand_type: np.ndarray
) -> dict[str, float]:
    """InterHand2.6M's ``mpjpe_{single,interacting,all}_mm``: :func:`mpjpe_per_joint_mean` of the root-aligned poses
    over the single-hand samples, the interacting ones, and both pooled per joint (internet §5.3).

    Args:
        pred_cam, gt_cam: N×42×3 camera coordinates, mm.
        joint_valid: N×42, nonzero where scored (a hand whose wrist is not scored is dropped).
        hand_type: N×2 ground truth [right, left]; exactly one set = single, both = interacting.
    """
    pred, gt, valid = root_aligned(pred_cam, gt_cam, joint_valid)
    single, interacting = sample_kinds(hand_type)
    return {
        "mpjpe_single_mm": mpjpe_per_joint_mean(pred, gt, valid & single[:, None]),
        "mpjpe_interacting_mm": mpjpe_per_joint_mean(pred, gt, valid & interacting[:, None]),
        "mpjpe_all_mm": mpjpe_per_joint_mean(pred, gt, valid & (single | interacting)[:, None]),
    }


def mrrpe_samples(joint_valid: np.ndarray, hand_type: np.ndarray) -> np.ndarray:
    """N booleans: the samples InterHand2.6M's ``mrrpe_mm`` scores, interacting ones with both wrists scored."""
    valid = np.asarray(joint_valid) > 0
    right, left = ROOTS
    return sample_kinds(hand_type)[1] & valid[:, right] & valid[:, left]


def interhand_metrics(
    pred_cam: np.ndarray,
    gt_cam: np.ndarray,
    joint_valid: np.ndarray,
    hand_type: np.ndarray,
    hand_prob: np.ndarray,
    hand_type_valid: np.ndarray,
    pred_roots: np.ndarray | None = None,
) -> dict[str, float]:
    """The five InterHand2.6M values as :class:`~internet_plus.metrics.interhand.InterHandMetrics` computes them.

    :func:`mpjpe_by_kind`; ``mrrpe_mm`` (:func:`mrrpe` over :func:`mrrpe_samples`) with the predicted wrists taken
    from ``pred_roots`` (N×2×3 [right, left]) when given, else from ``pred_cam``; ``handedness_acc``
    (:func:`handedness_accuracy` over the ``hand_type_valid`` samples).
    """
    out = mpjpe_by_kind(pred_cam, gt_cam, joint_valid, hand_type)
    roots_pred = np.asarray(pred_cam, dtype=np.float64).copy()
    if pred_roots is not None:
        roots_pred[:, list(ROOTS)] = np.asarray(pred_roots, dtype=np.float64)
    out["mrrpe_mm"] = mrrpe(roots_pred, gt_cam, mrrpe_samples(joint_valid, hand_type))
    out["handedness_acc"] = handedness_accuracy(hand_prob, hand_type, hand_type_valid)
    return out


__all__ = [
    "HAND3D_AUC_FROM",
    "HAND3D_THRESHOLDS",
    "PCK_THRESHOLDS",
    "auc",
    "auc_hand3d",
    "epe",
    "epe_median",
    "epe_median_hand3d",
    "errors_by_keypoint",
    "handedness_accuracy",
    "interhand_metrics",
    "joint_errors",
    "mpjpe_by_kind",
    "mpjpe_per_joint_mean",
    "mrrpe",
    "mrrpe_samples",
    "pck_curve",
    "pck_curve_hand3d",
    "per_hand",
    "pose_metrics",
    "root_aligned",
    "root_relative",
    "root_relative_mask",
    "sample_kinds",
]
