"""torchmetrics implementations of the contract's pose and handedness metrics, correct under DDP.

Every state is either a sum (``dist_reduce_fx="sum"``: error sum, joint count, PCK hit counts, correct/total
samples) or, for the median only, a ``"cat"`` list of the scored joints' errors, so the values after a distributed
sync are exactly those of a single process that saw every batch (any batch split, uneven shards and empty ranks
included). The numpy definitions they are tested against live in :mod:`internet_plus.metrics.functional`.

When nothing has been scored (no valid joint / sample), ``compute`` returns NaN instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from internet_plus.metrics.functional import per_hand


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


class PoseErrorMetrics(Metric):
    """Root-relative 3-D errors: ``epe_mm``, ``epe_median_mm``, ``pck_curve`` and ``auc_20_50`` (contract).

    ``update(pred_cam, gt_cam, mask)`` root-aligns both poses per hand (each hand minus its own wrist, joints 0 and
    21; internet §5.2 step 6, so wrists count with 0 error) and scores the joints where ``mask`` is nonzero
    *and* that hand's wrist is too. ``compute()`` returns

    * ``epe_mm``: the mean error pooled over all scored joints (mm);
    * ``epe_median_mm``: their median (mean of the two middle values for an even count, as ``numpy.median``);
    * ``pck_curve``: for each threshold t, the fraction of scored joints with error ≤ t (T values);
    * ``auc_20_50``: the trapezoidal area under that curve divided by (t_max − t_min), in [0, 1].

    All four are NaN (``pck_curve`` all-NaN) when no joint has been scored. Sums are kept in float64 and the
    returned values are float32 tensors.

    Args:
        thresholds: PCK thresholds in mm, strictly increasing (the contract's 20, 21, …, 50 by default).
        kwargs: passed to :class:`torchmetrics.Metric` (e.g. ``dist_sync_on_step``, ``process_group``).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    error_sum: torch.Tensor
    count: torch.Tensor
    pck_hits: torch.Tensor
    errors: list[torch.Tensor] | torch.Tensor

    def __init__(self, thresholds: Iterable[float] | torch.Tensor = range(20, 51), **kwargs) -> None:
        super().__init__(**kwargs)
        self.thresholds: tuple[float, ...] = _as_thresholds(thresholds)
        num = len(self.thresholds)
        self.add_state("error_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("pck_hits", default=torch.zeros(num, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("errors", default=[], dist_reduce_fx="cat")

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
        scored = torch.linalg.vector_norm(pred - gt, dim=-1)[valid]  # M, only the scored joints
        thresholds = torch.tensor(self.thresholds, device=scored.device, dtype=scored.dtype)
        self.error_sum += scored.sum()
        self.count += scored.numel()
        self.pck_hits += (scored[:, None] <= thresholds[None, :]).sum(dim=0).to(self.pck_hits.dtype)
        self.errors.append(scored.to(self.dtype))

    def _median(self) -> torch.Tensor:
        errors = self.errors
        if isinstance(errors, list):
            if not errors:
                return torch.tensor(float("nan"), device=self.error_sum.device)
            errors = dim_zero_cat(errors)
        errors = errors.reshape(-1).to(torch.float64)
        n = errors.numel()
        if n == 0:
            return torch.tensor(float("nan"), device=self.error_sum.device)
        ordered = errors.sort().values
        return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2.0

    def compute(self) -> dict[str, torch.Tensor]:
        """The metric values (see the class docstring); NaN when no joint has been scored."""
        device = self.error_sum.device
        thresholds = torch.tensor(self.thresholds, device=device, dtype=torch.float64)
        if self.count > 0:
            epe = self.error_sum / self.count
            curve = self.pck_hits / self.count
            auc = torch.trapezoid(curve, thresholds) / (thresholds[-1] - thresholds[0])
            median = self._median()
        else:
            nan = torch.tensor(float("nan"), device=device, dtype=torch.float64)
            epe, median, auc, curve = nan, nan, nan, torch.full_like(thresholds, float("nan"))
        return {
            "epe_mm": epe.float(),
            "epe_median_mm": median.float(),
            "pck_curve": curve.float(),
            "auc_20_50": auc.float(),
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
