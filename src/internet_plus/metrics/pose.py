"""torchmetrics implementations of the contract's pose and handedness metrics, correct under DDP.

Every state is either a sum (``dist_reduce_fx="sum"``: error sum, joint count, PCK hit counts, per-keypoint hit
counts and joint counts, correct/total samples) or, for the medians only, a ``"cat"`` list: the scored joints' errors
and, aligned with them, their keypoints. So the values after a distributed sync are exactly those of a single
process that saw every batch (any batch split, uneven shards and empty ranks included). The numpy definitions they
are tested against live in :mod:`internet_plus.metrics.functional`.

When nothing has been scored (no valid joint / sample), ``compute`` returns NaN instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from internet_plus.joints import JOINTS_PER_HAND
from internet_plus.metrics.functional import HAND3D_AUC_FROM, HAND3D_THRESHOLDS, per_hand


def root_relative(joints: torch.Tensor) -> torch.Tensor:
    """Subtract each hand's own wrist (joints 0 and 21) from that hand's joints: B×K×3 -> B×K×3 (internet §5.2 step
    6); the tensor version of :func:`internet_plus.metrics.functional.root_relative`, in the input's dtype."""
    hands = per_hand(joints)
    return (hands - hands[:, :, :1]).reshape(joints.shape)


def root_relative_mask(mask: torch.Tensor) -> torch.Tensor:
    """B×K bool: the joint is scored and so is its hand's wrist (a root-relative error needs the wrist)."""
    valid = mask > 0
    hands = per_hand(valid)
    return (hands & hands[:, :, :1]).reshape(valid.shape)


def _as_thresholds(thresholds: Iterable[float] | torch.Tensor) -> tuple[float, ...]:
    values = tuple(float(t) for t in (thresholds.tolist() if isinstance(thresholds, torch.Tensor) else thresholds))
    if len(values) < 2 or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"PCK thresholds must be at least two strictly increasing values, got {values}")
    return values


def _median(values: torch.Tensor) -> torch.Tensor:
    """``numpy.median`` of a non-empty 1-D tensor (the mean of the two middle values for an even count)."""
    ordered = values.sort().values
    n = ordered.numel()
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2.0


def _keypoint_medians(errors: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """``numpy.median`` of each keypoint's errors at once: 21 values, NaN for a keypoint without errors.

    One sort by error, then a stable sort by keypoint, leaves each keypoint's errors contiguous and ascending; the
    middle values are read at offsets from the per-keypoint counts (no loop over keypoints).
    """
    medians = torch.full((JOINTS_PER_HAND,), float("nan"), dtype=errors.dtype, device=errors.device)
    if errors.numel() == 0:
        return medians
    by_error = errors.sort()
    grouped_keypoints, order = keypoints[by_error.indices].sort(stable=True)
    grouped = by_error.values[order]
    counts = torch.bincount(grouped_keypoints, minlength=JOINTS_PER_HAND)
    seen = counts > 0
    starts, counts = (torch.cumsum(counts, dim=0) - counts)[seen], counts[seen]
    medians[seen] = (grouped[starts + (counts - 1) // 2] + grouped[starts + counts // 2]) / 2.0
    return medians


class PoseErrorMetrics(Metric):
    """Root-relative 3-D errors: ``epe_mm``, ``epe_median_mm``, ``pck_curve``, ``auc_20_50`` and their hand3d
    counterparts ``pck_curve_hand3d``, ``auc_20_50_hand3d``, ``epe_median_mm_hand3d`` (contract).

    ``update(pred_cam, gt_cam, mask)`` root-aligns both poses per hand (each hand minus its own wrist, joints 0 and
    21; internet §5.2 step 6, so wrists count with 0 error) and scores the joints where ``mask`` is nonzero
    *and* that hand's wrist is too. ``compute()`` returns

    * ``epe_mm``: the mean error pooled over all scored joints (mm);
    * ``epe_median_mm``: their median (mean of the two middle values for an even count, as ``numpy.median``);
    * ``pck_curve``: for each threshold t, the fraction of scored joints with error ≤ t (T values);
    * ``auc_20_50``: the trapezoidal area under that curve divided by (t_max − t_min), in [0, 1];
    * ``pck_curve_hand3d``: hand3d's curve (lmb-freiburg/hand3d ``EvalUtil.get_measures(0, 50 mm, 20)``; datasets
      §A.6): for each keypoint k = joint mod 21 (right and left joint k alike) the fraction of its scored joints
      with error ≤ t, averaged over the keypoints that have any, at the 20 thresholds linspace(0, 50, 20) mm;
    * ``auc_20_50_hand3d``: hand3d's ``calc_auc`` of that curve's last 12 points (21.05 … 50 mm, ``eval_full.py``):
      trapezoidal area divided by their span;
    * ``epe_median_mm_hand3d``: the mean over those keypoints of each keypoint's median error (mm).

    Each keypoint weighs the same in the hand3d values, each joint in the pooled ones: they differ when keypoints
    have different numbers of scored joints (RHD's visible-only protocol) and by the threshold grids.
    All seven are NaN (the curves all-NaN) when no joint has been scored. Sums are kept in float64 and the
    returned values are float32 tensors.

    Args:
        thresholds: PCK thresholds in mm of ``pck_curve``, strictly increasing (the contract's 20, 21, …, 50 by
            default); the hand3d thresholds are fixed.
        kwargs: passed to :class:`torchmetrics.Metric` (e.g. ``dist_sync_on_step``, ``process_group``).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    error_sum: torch.Tensor
    count: torch.Tensor
    pck_hits: torch.Tensor
    keypoint_hits: torch.Tensor
    keypoint_count: torch.Tensor
    errors: list[torch.Tensor] | torch.Tensor
    keypoints: list[torch.Tensor] | torch.Tensor

    def __init__(self, thresholds: Iterable[float] | torch.Tensor = range(20, 51), **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds: tuple[float, ...] = _as_thresholds(thresholds)
        num = len(self.thresholds)
        self.add_state("error_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("pck_hits", default=torch.zeros(num, dtype=torch.float64), dist_reduce_fx="sum")
        per_keypoint = torch.zeros(JOINTS_PER_HAND, dtype=torch.float64)
        hits = torch.zeros(JOINTS_PER_HAND, HAND3D_THRESHOLDS.size, dtype=torch.float64)
        self.add_state("keypoint_hits", default=hits, dist_reduce_fx="sum")
        self.add_state("keypoint_count", default=per_keypoint, dist_reduce_fx="sum")
        # Two aligned lists (the i-th error belongs to the i-th keypoint), each 1-D so that an idle rank's empty
        # state gathers with the others: torchmetrics concatenates both in the same order on every rank.
        self.add_state("errors", default=[], dist_reduce_fx="cat")
        self.add_state("keypoints", default=[], dist_reduce_fx="cat")

    def update(self, pred_cam: torch.Tensor, gt_cam: torch.Tensor, mask: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred_cam: B×K×3 predicted joints, camera frame, mm (K a multiple of 21; 42 in the project).
            gt_cam: B×K×3 ground truth, same frame.
            mask: B×K, nonzero where the joint is scored (the data set's ``joint_annotated``).
        """
        if pred_cam.shape != gt_cam.shape or pred_cam.shape[-1] != 3 or tuple(mask.shape) != tuple(pred_cam.shape[:2]):
            raise ValueError(
                f"expected pred_cam and gt_cam B×K×3 and mask B×K, got {tuple(pred_cam.shape)}, "
                f"{tuple(gt_cam.shape)}, {tuple(mask.shape)}"
            )
        pred = root_relative(pred_cam.detach().to(torch.float64))
        gt = root_relative(gt_cam.detach().to(device=pred.device, dtype=torch.float64))
        valid = root_relative_mask(mask.detach().to(pred.device))
        errors = torch.linalg.vector_norm(pred - gt, dim=-1)  # B×K
        scored = errors[valid]  # M, only the scored joints
        thresholds = torch.tensor(self.thresholds, device=scored.device, dtype=scored.dtype)
        self.error_sum += scored.sum()
        self.count += scored.numel()
        self.pck_hits += (scored[:, None] <= thresholds[None, :]).sum(dim=0).to(self.pck_hits.dtype)
        # hand3d: the same errors by keypoint (B×hands×21), hits at linspace(0, 50, 20) counted per keypoint.
        by_hand, valid_by_hand = per_hand(errors), per_hand(valid)
        hand3d_thresholds = torch.tensor(HAND3D_THRESHOLDS, device=errors.device, dtype=errors.dtype)
        hits = (by_hand[..., None] <= hand3d_thresholds) & valid_by_hand[..., None]
        self.keypoint_hits += hits.sum(dim=(0, 1)).to(self.keypoint_hits.dtype)
        self.keypoint_count += valid_by_hand.sum(dim=(0, 1)).to(self.keypoint_count.dtype)
        keypoint = torch.arange(JOINTS_PER_HAND, device=errors.device).expand_as(valid_by_hand)[valid_by_hand]
        self.errors.append(scored.to(self.dtype))
        self.keypoints.append(keypoint.to(self.dtype))

    def _scored_errors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(errors, keypoints): the concatenated cat states, float64 and int64 1-D tensors (possibly empty)."""
        device = self.error_sum.device
        if isinstance(self.errors, list) and not self.errors:
            return torch.zeros(0, dtype=torch.float64, device=device), torch.zeros(0, dtype=torch.long, device=device)
        errors = dim_zero_cat(self.errors).reshape(-1).to(torch.float64)
        keypoints = dim_zero_cat(self.keypoints).reshape(-1).round().long()
        return errors, keypoints

    def _hand3d(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pck_curve_hand3d, auc_20_50_hand3d, epe_median_mm_hand3d) in float64; NaN without any scored keypoint."""
        thresholds = torch.tensor(HAND3D_THRESHOLDS, device=self.keypoint_hits.device)
        seen = self.keypoint_count > 0
        if not seen.any():
            nan = torch.full((), float("nan"), dtype=torch.float64, device=thresholds.device)
            return torch.full_like(thresholds, float("nan")), nan, nan
        curve = (self.keypoint_hits[seen] / self.keypoint_count[seen, None]).mean(dim=0)
        tail, tail_curve = thresholds[HAND3D_AUC_FROM:], curve[HAND3D_AUC_FROM:]
        auc = torch.trapezoid(tail_curve, tail) / (tail[-1] - tail[0])
        medians = _keypoint_medians(*self._scored_errors())
        return curve, auc, medians[seen].mean()

    def compute(self) -> dict[str, torch.Tensor]:
        """The metric values (see the class docstring); NaN when no joint has been scored."""
        device = self.error_sum.device
        thresholds = torch.tensor(self.thresholds, device=device, dtype=torch.float64)
        if self.count > 0:
            epe = self.error_sum / self.count
            curve = self.pck_hits / self.count
            auc = torch.trapezoid(curve, thresholds) / (thresholds[-1] - thresholds[0])
            median = _median(self._scored_errors()[0])
        else:
            nan = torch.tensor(float("nan"), device=device, dtype=torch.float64)
            epe, median, auc, curve = nan, nan, nan, torch.full_like(thresholds, float("nan"))
        curve_hand3d, auc_hand3d, median_hand3d = self._hand3d()
        return {
            "epe_mm": epe.float(),
            "epe_median_mm": median.float(),
            "pck_curve": curve.float(),
            "auc_20_50": auc.float(),
            "pck_curve_hand3d": curve_hand3d.float(),
            "auc_20_50_hand3d": auc_hand3d.float(),
            "epe_median_mm_hand3d": median_hand3d.float(),
        }


def handedness_counts(
    prob: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct, total) of one batch for ``handedness_acc``, float64 scalars on ``device`` (no shape checks).

    A sample is correct when (prob > 0.5) == (gt > 0.5) for all its labels (internet §5.3); it counts only
    where ``valid`` is nonzero. Shared by :class:`HandednessAccuracy` and
    :class:`~internet_plus.metrics.interhand.InterHandMetrics`.
    """
    correct = ((prob.detach().to(device) > 0.5) == (gt.detach().to(device) > 0.5)).all(dim=-1)
    keep = valid.detach().to(device).reshape(-1) > 0
    return (correct & keep).sum().to(torch.float64), keep.sum().to(torch.float64)


class HandednessAccuracy(Metric):
    """``handedness_acc``: fraction of valid samples whose two thresholded probabilities match the labels.

    ``update(prob, gt, valid)``: a sample is correct when (prob > 0.5) == (gt > 0.5) for both [right, left] labels
    (internet §5.3), counted only where ``valid`` (the sample's ``hand_type_valid``) is nonzero.
    ``compute()`` returns a float32 scalar, NaN when no valid sample has been seen.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    correct: torch.Tensor
    total: torch.Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, prob: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> None:
        """Add a batch: ``prob`` B×2 probabilities, ``gt`` B×2 labels, ``valid`` B."""
        if prob.shape != gt.shape or prob.dim() != 2:
            raise ValueError(f"expected prob and gt of shape B×2, got {tuple(prob.shape)} and {tuple(gt.shape)}")
        correct, total = handedness_counts(prob, gt, valid, prob.device)
        self.correct += correct.to(self.correct.dtype)
        self.total += total.to(self.total.dtype)

    def compute(self) -> torch.Tensor:
        """Accuracy in [0, 1] (float32), NaN without valid samples."""
        if self.total > 0:
            return (self.correct / self.total).float()
        return torch.tensor(float("nan"), device=self.total.device)


__all__ = ["HandednessAccuracy", "PoseErrorMetrics", "root_relative", "root_relative_mask"]
