"""InterHand2.6M's metrics in InterNet's definitions (``docs/reference/internet.md`` §5.3, datasets §C.6), as one
torchmetrics ``Metric``, :class:`InterHandMetrics`, tested against the numpy references
(:func:`internet_plus.metrics.functional.interhand_metrics`).

* ``mpjpe_single_mm``, ``mpjpe_interacting_mm``, ``mpjpe_all_mm``: each hand is made root-relative (minus its own
  wrist, joints 0 and 21 in the project order; the wrists count with 0 error), the Euclidean error of every scored
  joint is accumulated **per joint**, separately for single-hand samples (ground-truth hand type right or left) and
  interacting ones, and each value is the **mean of the per-joint means** (not a pooled mean; §5.3, §7.9). "all"
  pools the two kinds per joint before the mean over joints. Joints never scored are skipped in the mean over joints.
* ``mrrpe_mm``: over interacting samples whose two wrists are both scored, the mean of ‖(L − R)_pred − (L − R)_gt‖₂
  with R, L the right and left wrists in camera coordinates. InterNet places the predicted left wrist at the
  **right** hand's absolute depth plus the predicted relative root depth (§5.3); :func:`internet_mrrpe_roots` builds
  those wrists from the decoded outputs.
* ``handedness_acc``: over samples with ``hand_type_valid`` = 1, the fraction whose two thresholded probabilities
  (> 0.5) match the ground-truth pattern right [1, 0], left [0, 1], interacting [1, 1].

The scoring mask is the annotation validity (the sample's ``joint_annotated``: data.json ``joint_valid`` × the
hand's wrist validity), not the augmentation-time crop mask (§5.3). Every state is a sum with
``dist_reduce_fx="sum"``, so values after a DDP sync equal those of one process that saw every batch.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from internet_plus.joints import NUM_JOINTS, ROOTS
from internet_plus.metrics.pose import handedness_counts, root_relative, root_relative_mask

__all__ = ["InterHandMetrics", "internet_mrrpe_roots"]


# --------------------------------------------------------------------------------------------------- helpers


def _sample_kinds(hand_type: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
    pred = root_relative(pred_cam.detach().to(device=device, dtype=torch.float64))
    gt = root_relative(gt_cam.detach().to(device=device, dtype=torch.float64))
    errors = torch.linalg.vector_norm(pred - gt, dim=-1)
    valid = root_relative_mask(joint_valid.detach().to(device))
    single, interacting = _sample_kinds(hand_type.detach().to(device))
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
    keep = _sample_kinds(hand_type.detach().to(device))[1] & valid[:, right] & valid[:, left]
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


class InterHandMetrics(Metric):
    """The five InterHand2.6M metrics (module docstring) in one ``Metric`` (all states sums, ``dist_reduce_fx="sum"``).

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

    def scored(self) -> dict[str, bool]:
        """Whether each metric of :meth:`compute` scored anything, over all processes: a test set without
        interacting hands has no ``mpjpe_interacting_mm`` or ``mrrpe_mm`` (undefined, not a NaN result)."""
        with self.sync_context():
            single, interacting = bool(self.count_single.sum() > 0), bool(self.count_interacting.sum() > 0)
            return {
                "mpjpe_single_mm": single,
                "mpjpe_interacting_mm": interacting,
                "mpjpe_all_mm": single or interacting,
                "mrrpe_mm": bool(self.mrrpe_count > 0),
                "handedness_acc": bool(self.hand_total > 0),
            }

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
