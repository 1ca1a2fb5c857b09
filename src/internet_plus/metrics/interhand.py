"""InterHand2.6M's metrics in InterNet's definitions (``docs/reference/internet.md`` §5.3, datasets §C.6),
as torchmetrics ``Metric`` classes with numpy reference functions next to them.

* ``mpjpe_single_mm``, ``mpjpe_interacting_mm``, ``mpjpe_all_mm`` (:class:`InterHandMPJPE`): each hand is made
  root-relative (minus its own wrist, joints 0 and 21 in the project order; the wrists count with 0 error), the
  Euclidean error of every scored joint is accumulated **per joint**, separately for single-hand samples (ground-truth
  hand type right or left) and interacting ones, and each value is the **mean of the per-joint means** (not a pooled
  mean; §5.3, §7.9). "all" pools the two kinds per joint before the mean over joints. Joints never scored are
  skipped in the mean over joints.
* ``mrrpe_mm`` (:class:`InterHandMRRPE`): over interacting samples whose two wrists are both scored, the mean of
  ‖(L − R)_pred − (L − R)_gt‖₂ with R, L the right and left wrists in camera coordinates. InterNet places the
  predicted left wrist at the **right** hand's absolute depth plus the predicted relative root depth (§5.3);
  :func:`internet_mrrpe_roots` builds those wrists from the decoded outputs.
* ``handedness_acc`` (:class:`InterHandHandedness`): over samples with ``hand_type_valid`` = 1, the fraction whose
  two thresholded probabilities (> 0.5) match the ground-truth pattern right [1, 0], left [0, 1], interacting [1, 1].

The scoring mask is the annotation validity (the sample's ``joint_annotated``: data.json ``joint_valid`` × the
hand's wrist validity), not the augmentation-time crop mask (§5.3). Every state is a sum with
``dist_reduce_fx="sum"``, so values after a DDP sync equal those of one process that saw every batch.
:class:`InterHandMetrics` bundles the five names for a LightningModule.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from internet_plus.joints import JOINTS_PER_HAND, NUM_JOINTS, ROOTS
from internet_plus.metrics.pose import handedness_counts

__all__ = [
    "InterHandHandedness",
    "InterHandMPJPE",
    "InterHandMRRPE",
    "InterHandMetrics",
    "handedness_accuracy_np",
    "interhand_metrics_np",
    "internet_mrrpe_roots",
    "mpjpe_by_kind_np",
    "mrrpe_np",
    "sample_kinds",
]


# --------------------------------------------------------------------------------------------------- numpy references


def _root_relative_np(joints: np.ndarray) -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    hands = joints.reshape(joints.shape[0], 2, JOINTS_PER_HAND, 3)
    return (hands - hands[:, :, :1]).reshape(joints.shape)


def _per_joint_mean(errors: np.ndarray, mask: np.ndarray) -> float:
    counts = mask.sum(axis=0)
    if not counts.any():
        return float("nan")
    sums = np.where(mask, errors, 0.0).sum(axis=0)
    seen = counts > 0
    return float(np.mean(sums[seen] / counts[seen]))


def mpjpe_by_kind_np(
    pred_cam: np.ndarray, gt_cam: np.ndarray, joint_valid: np.ndarray, hand_type: np.ndarray
) -> dict[str, float]:
    """Reference ``mpjpe_{single,interacting,all}_mm`` (module docstring).

    Args:
        pred_cam, gt_cam: N×42×3 camera coordinates, mm.
        joint_valid: N×42, nonzero where scored (a hand whose wrist is not scored is dropped).
        hand_type: N×2 ground truth [right, left]; exactly one set = single, both = interacting.
    """
    pred = _root_relative_np(pred_cam)
    gt = _root_relative_np(gt_cam)
    valid = np.asarray(joint_valid) > 0
    hands = valid.reshape(valid.shape[0], 2, JOINTS_PER_HAND)
    valid = (hands & hands[:, :, :1]).reshape(valid.shape)
    errors = np.linalg.norm(pred - gt, axis=-1)
    single, interacting = sample_kinds_np(hand_type)
    return {
        "mpjpe_single_mm": _per_joint_mean(errors, valid & single[:, None]),
        "mpjpe_interacting_mm": _per_joint_mean(errors, valid & interacting[:, None]),
        "mpjpe_all_mm": _per_joint_mean(errors, valid & (single | interacting)[:, None]),
    }


def sample_kinds_np(hand_type: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(single, interacting) boolean N arrays from N×2 ground-truth hand types."""
    present = np.asarray(hand_type).reshape(-1, 2) > 0.5
    return present.sum(axis=1) == 1, present.all(axis=1)


def mrrpe_np(pred_cam: np.ndarray, gt_cam: np.ndarray, joint_valid: np.ndarray, hand_type: np.ndarray) -> float:
    """Reference ``mrrpe_mm``: mean ‖(L − R)_pred − (L − R)_gt‖ over interacting samples with both wrists scored."""
    right, left = ROOTS
    pred = np.asarray(pred_cam, dtype=np.float64)
    gt = np.asarray(gt_cam, dtype=np.float64)
    valid = np.asarray(joint_valid) > 0
    keep = sample_kinds_np(hand_type)[1] & valid[:, right] & valid[:, left]
    if not keep.any():
        return float("nan")
    diff = (pred[keep, left] - pred[keep, right]) - (gt[keep, left] - gt[keep, right])
    return float(np.linalg.norm(diff, axis=-1).mean())


def handedness_accuracy_np(prob: np.ndarray, hand_type: np.ndarray, hand_type_valid: np.ndarray) -> float:
    """Reference ``handedness_acc``: (prob > 0.5) == ground truth on both entries, over ``hand_type_valid`` samples."""
    correct = np.all((np.asarray(prob) > 0.5) == (np.asarray(hand_type) > 0.5), axis=-1)
    keep = np.asarray(hand_type_valid).reshape(-1) > 0
    return float(correct[keep].mean()) if keep.any() else float("nan")


def interhand_metrics_np(
    pred_cam: np.ndarray,
    gt_cam: np.ndarray,
    joint_valid: np.ndarray,
    hand_type: np.ndarray,
    hand_prob: np.ndarray,
    hand_type_valid: np.ndarray,
    pred_roots: np.ndarray | None = None,
) -> dict[str, float]:
    """All five values, as :class:`InterHandMetrics` computes them (``pred_roots`` N×2×3 [right, left] for MRRPE;
    default: the wrists of ``pred_cam``)."""
    out = mpjpe_by_kind_np(pred_cam, gt_cam, joint_valid, hand_type)
    roots_pred = np.asarray(pred_cam, dtype=np.float64).copy()
    if pred_roots is not None:
        roots_pred[:, list(ROOTS)] = np.asarray(pred_roots, dtype=np.float64)
    out["mrrpe_mm"] = mrrpe_np(roots_pred, gt_cam, joint_valid, hand_type)
    out["handedness_acc"] = handedness_accuracy_np(hand_prob, hand_type, hand_type_valid)
    return out


# --------------------------------------------------------------------------------------------------- helpers


def sample_kinds(hand_type: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(single, interacting) boolean B tensors from B×2 ground-truth hand types."""
    present = hand_type.reshape(-1, 2) > 0.5
    return present.sum(dim=1) == 1, present.all(dim=1)


def _check(pred_cam: torch.Tensor, gt_cam: torch.Tensor, joint_valid: torch.Tensor, hand_type: torch.Tensor) -> None:
    b = pred_cam.shape[0]
    if (
        tuple(pred_cam.shape) != (b, NUM_JOINTS, 3)
        or pred_cam.shape != gt_cam.shape
        or tuple(joint_valid.shape) != (b, NUM_JOINTS)
        or tuple(hand_type.shape) != (b, 2)
    ):
        raise ValueError(
            f"expected pred_cam, gt_cam B×42×3, joint_valid B×42, hand_type B×2; got {tuple(pred_cam.shape)}, "
            f"{tuple(gt_cam.shape)}, {tuple(joint_valid.shape)}, {tuple(hand_type.shape)}"
        )


def internet_mrrpe_roots(
    joints_img: torch.Tensor,
    rel_root_depth_mm: torch.Tensor,
    inv_trans: torch.Tensor,
    abs_root_depth: torch.Tensor,
    focal: torch.Tensor,
    princpt: torch.Tensor,
) -> torch.Tensor:
    """InterNet's predicted wrists for MRRPE (§5.3): B×2×3 camera coordinates [right, left] in mm.

    Right wrist depth = abs_root_depth[:, 0] + z_rel(0); left = abs_root_depth[:, 0] + z_rel(21) + rel_root_depth
    (the right hand's absolute depth for both); each wrist back-projected from its predicted pixel.

    Args:
        joints_img: B×42×3 decoded joints (input pixels; z mm relative to the own wrist), e.g. the codec's output.
        rel_root_depth_mm: B predicted z(left wrist) − z(right wrist).
        inv_trans: B×2×3 input pixels → original-image pixels.
        abs_root_depth: B×2 [right, left] absolute wrist depths (only the right one is used).
        focal, princpt: B×2.
    """
    dtype = torch.float64
    right, left = ROOTS
    xy = joints_img[:, [right, left], :2].to(dtype)
    inv = inv_trans.to(dtype)
    uv = torch.einsum("bik,bjk->bji", inv[:, :, :2], xy) + inv[:, None, :, 2]
    base = abs_root_depth.to(dtype).reshape(-1, 2)[:, 0]
    z_right = base + joints_img[:, right, 2].to(dtype)
    z_left = base + joints_img[:, left, 2].to(dtype) + rel_root_depth_mm.to(dtype).reshape(-1)
    depth = torch.stack([z_right, z_left], dim=1)
    xy_cam = (uv - princpt.to(dtype).reshape(-1, 1, 2)) / focal.to(dtype).reshape(-1, 1, 2) * depth[..., None]
    return torch.cat([xy_cam, depth[..., None]], dim=-1)


# --------------------------------------------------------------------------------------------------- increments


def _mpjpe_increments(
    pred_cam: torch.Tensor,
    gt_cam: torch.Tensor,
    joint_valid: torch.Tensor,
    hand_type: torch.Tensor,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-joint (error sum, count) of single and of interacting samples in one batch (float64, 42 each)."""
    _check(pred_cam, gt_cam, joint_valid, hand_type)
    b = pred_cam.shape[0]
    pred = pred_cam.detach().to(device=device, dtype=torch.float64).reshape(b, 2, JOINTS_PER_HAND, 3)
    gt = gt_cam.detach().to(device=device, dtype=torch.float64).reshape(b, 2, JOINTS_PER_HAND, 3)
    errors = torch.linalg.vector_norm((pred - pred[:, :, :1]) - (gt - gt[:, :, :1]), dim=-1).reshape(b, -1)
    hands = (joint_valid.detach().to(device) > 0).reshape(b, 2, JOINTS_PER_HAND)
    valid = (hands & hands[:, :, :1]).reshape(b, -1)
    single, interacting = sample_kinds(hand_type.detach().to(device))
    out = []
    for kind in (single, interacting):
        mask = valid & kind[:, None]
        out += [torch.where(mask, errors, torch.zeros_like(errors)).sum(dim=0), mask.sum(dim=0).to(torch.float64)]
    return out[0], out[1], out[2], out[3]


def _mrrpe_increments(
    pred_cam: torch.Tensor,
    gt_cam: torch.Tensor,
    joint_valid: torch.Tensor,
    hand_type: torch.Tensor,
    pred_roots: torch.Tensor | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(error sum, count) of MRRPE in one batch."""
    _check(pred_cam, gt_cam, joint_valid, hand_type)
    right, left = ROOTS
    roots = pred_cam.detach()[:, [right, left]] if pred_roots is None else pred_roots.detach()
    if tuple(roots.shape) != (pred_cam.shape[0], 2, 3):
        raise ValueError(f"pred_roots must be B×2×3 [right, left], got {tuple(roots.shape)}")
    roots = roots.to(device=device, dtype=torch.float64)
    gt = gt_cam.detach().to(device=device, dtype=torch.float64)
    valid = joint_valid.detach().to(device) > 0
    keep = sample_kinds(hand_type.detach().to(device))[1] & valid[:, right] & valid[:, left]
    diff = (roots[:, 1] - roots[:, 0]) - (gt[:, left] - gt[:, right])
    return torch.linalg.vector_norm(diff, dim=-1)[keep].sum(), keep.sum().to(torch.float64)


def _handedness_increments(
    hand_prob: torch.Tensor, hand_type: torch.Tensor, hand_type_valid: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct, total) of handedness accuracy in one batch."""
    if hand_prob.shape != hand_type.shape or hand_prob.dim() != 2 or hand_prob.shape[1] != 2:
        raise ValueError(
            f"expected hand_prob and hand_type B×2, got {tuple(hand_prob.shape)}, {tuple(hand_type.shape)}"
        )
    return handedness_counts(hand_prob, hand_type, hand_type_valid, device)


def _mean_of_joint_means(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    seen = counts > 0
    if not bool(seen.any()):
        return torch.tensor(float("nan"), device=sums.device)
    return (sums[seen] / counts[seen]).mean().float()


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    if den > 0:
        return (num / den).float()
    return torch.tensor(float("nan"), device=den.device)


# --------------------------------------------------------------------------------------------------- metrics


class InterHandMPJPE(Metric):
    """``mpjpe_single_mm``, ``mpjpe_interacting_mm``, ``mpjpe_all_mm`` (module docstring).

    States: per-joint error sums and counts for single and interacting samples (42 each, float64, summed across
    processes). ``compute()`` returns a dict of float32 scalars; a kind with no scored joint is NaN.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    sum_single: torch.Tensor
    count_single: torch.Tensor
    sum_interacting: torch.Tensor
    count_interacting: torch.Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("sum_single", "count_single", "sum_interacting", "count_interacting"):
            self.add_state(name, default=torch.zeros(NUM_JOINTS, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self, pred_cam: torch.Tensor, gt_cam: torch.Tensor, joint_valid: torch.Tensor, hand_type: torch.Tensor
    ) -> None:
        """Add a batch: B×42×3 predicted and ground-truth camera joints (mm), B×42 scoring mask, B×2 GT hand type."""
        s_s, c_s, s_i, c_i = _mpjpe_increments(pred_cam, gt_cam, joint_valid, hand_type, self.sum_single.device)
        self.sum_single += s_s
        self.count_single += c_s
        self.sum_interacting += s_i
        self.count_interacting += c_i

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            "mpjpe_single_mm": _mean_of_joint_means(self.sum_single, self.count_single),
            "mpjpe_interacting_mm": _mean_of_joint_means(self.sum_interacting, self.count_interacting),
            "mpjpe_all_mm": _mean_of_joint_means(
                self.sum_single + self.sum_interacting, self.count_single + self.count_interacting
            ),
        }


class InterHandMRRPE(Metric):
    """``mrrpe_mm``: mean relative-root position error over interacting samples with both wrists scored (mm).

    ``update(pred_cam, gt_cam, joint_valid, hand_type, pred_roots=None)`` reads the wrists (joints 0 and 21) of
    ``pred_cam``, or ``pred_roots`` (B×2×3 [right, left]) when given, e.g. InterNet's placement
    (:func:`internet_mrrpe_roots`).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    error_sum: torch.Tensor
    count: torch.Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("error_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        pred_cam: torch.Tensor,
        gt_cam: torch.Tensor,
        joint_valid: torch.Tensor,
        hand_type: torch.Tensor,
        pred_roots: torch.Tensor | None = None,
    ) -> None:
        """Add a batch (shapes as :class:`InterHandMPJPE`)."""
        total, count = _mrrpe_increments(pred_cam, gt_cam, joint_valid, hand_type, pred_roots, self.count.device)
        self.error_sum += total
        self.count += count

    def compute(self) -> torch.Tensor:
        return _ratio(self.error_sum, self.count)


class InterHandHandedness(Metric):
    """``handedness_acc`` over samples with ``hand_type_valid`` = 1 (module docstring)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    correct: torch.Tensor
    total: torch.Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, hand_prob: torch.Tensor, hand_type: torch.Tensor, hand_type_valid: torch.Tensor) -> None:
        """Add a batch: B×2 predicted probabilities [right, left], B×2 ground truth, B validity."""
        correct, total = _handedness_increments(hand_prob, hand_type, hand_type_valid, self.total.device)
        self.correct += correct
        self.total += total

    def compute(self) -> torch.Tensor:
        return _ratio(self.correct, self.total)


class InterHandMetrics(Metric):
    """The five InterHand2.6M metrics in one ``Metric`` (all states sums, ``dist_reduce_fx="sum"``).

    ``update(pred_cam, gt_cam, joint_valid, hand_type, hand_prob, hand_type_valid, pred_roots=None)``: the decoded
    ``joints_cam``, the batch's ``joints_cam``, ``joint_annotated`` and ``hand_type``, the predicted ``hand_prob``,
    the batch's ``hand_type_valid`` and optionally :func:`internet_mrrpe_roots` for MRRPE. ``compute()`` →
    ``{"mpjpe_single_mm", "mpjpe_interacting_mm", "mpjpe_all_mm", "mrrpe_mm", "handedness_acc"}`` (float32 scalars,
    NaN where nothing was scored).
    """

    is_differentiable = False
    full_state_update = False

    sum_single: torch.Tensor
    count_single: torch.Tensor
    sum_interacting: torch.Tensor
    count_interacting: torch.Tensor
    mrrpe_sum: torch.Tensor
    mrrpe_count: torch.Tensor
    hand_correct: torch.Tensor
    hand_total: torch.Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("sum_single", "count_single", "sum_interacting", "count_interacting"):
            self.add_state(name, default=torch.zeros(NUM_JOINTS, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("mrrpe_sum", "mrrpe_count", "hand_correct", "hand_total"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        pred_cam: torch.Tensor,
        gt_cam: torch.Tensor,
        joint_valid: torch.Tensor,
        hand_type: torch.Tensor,
        hand_prob: torch.Tensor,
        hand_type_valid: torch.Tensor,
        pred_roots: torch.Tensor | None = None,
    ) -> None:
        device = self.hand_total.device
        s_s, c_s, s_i, c_i = _mpjpe_increments(pred_cam, gt_cam, joint_valid, hand_type, device)
        self.sum_single += s_s
        self.count_single += c_s
        self.sum_interacting += s_i
        self.count_interacting += c_i
        total, count = _mrrpe_increments(pred_cam, gt_cam, joint_valid, hand_type, pred_roots, device)
        self.mrrpe_sum += total
        self.mrrpe_count += count
        correct, seen = _handedness_increments(hand_prob, hand_type, hand_type_valid, device)
        self.hand_correct += correct
        self.hand_total += seen

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            "mpjpe_single_mm": _mean_of_joint_means(self.sum_single, self.count_single),
            "mpjpe_interacting_mm": _mean_of_joint_means(self.sum_interacting, self.count_interacting),
            "mpjpe_all_mm": _mean_of_joint_means(
                self.sum_single + self.sum_interacting, self.count_single + self.count_interacting
            ),
            "mrrpe_mm": _ratio(self.mrrpe_sum, self.mrrpe_count),
            "handedness_acc": _ratio(self.hand_correct, self.hand_total),
        }
