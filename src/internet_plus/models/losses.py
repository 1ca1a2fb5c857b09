"""InterNet's three training losses (``docs/reference/internet.md`` §3), reduced exactly as InterNet does.

* ``loss_heatmap`` — (pred − target)² · joint_valid, averaged over **all** B·42·D·H·W elements, masked ones included
  (§3.1, internet §7.2); the target is the peak-255 Gaussian of §4.3 around the encoded joint (§4.2);
* ``loss_root`` — |root_bins − gt_bins| · root_valid in **bin units** (1 bin = 6.25 mm by default), averaged over the
  batch, masked samples included (§3.2, internet §7.4);
* ``loss_handedness`` — binary cross-entropy of the two hand-presence labels, averaged over the 2 labels, times
  hand_type_valid, averaged over the batch (§3.3). It is computed from the **logits** with
  ``binary_cross_entropy_with_logits``, the numerically safe equivalent of InterNet's BCE on sigmoid outputs (§7.15).

``loss`` is their weighted sum; InterNet's weights are all 1.

The heatmap loss has two implementations with the same value: :func:`dense_heatmap_mse` renders InterNet's
B×J×D×H×W target (the reference), :func:`lean_heatmap_mse` (the default) never builds it. The target is separable,
peak · g_z ⊗ g_y ⊗ g_x (:meth:`HeatmapCodec.gaussian_factors`), so the residual pred − target is written in one pass
into its own buffer, Σ residual² per joint is a batched dot product, and the backward is written out
(:class:`_ResidualHeatmapMSE`): the gradient 2 · residual · valid / N is the saved residual scaled in place. The loss
and its backward hold the prediction and one more volume, never the target or the dense formulation's same-sized
intermediates. Both run in float32 (float64 stays float64) with autocast off: under 16-bit mixed precision
Σ target² ≈ 5.7·10⁶ per joint would overflow fp16, and because the residual is formed before squaring nothing
cancels near the optimum.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from internet_plus.models.codec import HeatmapCodec, compute_dtype

#: InterNet's loss weights: a plain, unweighted sum (internet §3).
DEFAULT_WEIGHTS: dict[str, float] = {"heatmap": 1.0, "root": 1.0, "handedness": 1.0}


# ------------------------------------------------------------------------------------------ heatmap loss (§3.1)
def _check_volume(codec: HeatmapCodec, pred: torch.Tensor, coords_hm: torch.Tensor, valid: torch.Tensor) -> None:
    if pred.dim() != 5 or tuple(pred.shape[2:]) != codec.volume_shape:
        raise ValueError(
            f"heatmaps must be B×J×{'×'.join(map(str, codec.volume_shape))} for this codec, got {tuple(pred.shape)}"
        )
    if tuple(coords_hm.shape) != (*pred.shape[:2], 3) or tuple(valid.shape) != tuple(pred.shape[:2]):
        raise ValueError(
            f"coords_hm {tuple(coords_hm.shape)} / valid {tuple(valid.shape)} do not match heatmaps "
            f"{tuple(pred.shape)} (expected B×J×3 and B×J)"
        )


def heatmap_residual(codec: HeatmapCodec, pred: torch.Tensor, coords_hm: torch.Tensor) -> torch.Tensor:
    """pred − target (B×J×D×H×W, compute dtype) in one pass, without building the target volume."""
    dtype = compute_dtype(pred.dtype)
    g_z, g_y, g_x = codec.gaussian_factors(coords_hm.to(device=pred.device, dtype=dtype), codec.volume_shape)
    g_yx = g_y[..., :, None] * g_x[..., None, :]  # B×J×H×W: the only other tensor besides the factors
    residual = torch.addcmul(pred.to(dtype), g_z[..., :, None, None], g_yx[..., None, :, :], value=-codec.peak)
    return residual.contiguous()


def sum_of_squares(volumes: torch.Tensor) -> torch.Tensor:
    """Σ x² over the last three axes of a contiguous B×J×D×H×W tensor -> B×J.

    On the CPU at full float32 matmul precision this is a batched dot product (``bmm`` of each joint's row with
    itself): one read of the volume and no squared temporary. Elsewhere (GPUs, where TF32 may be allowed for
    matmuls, or a lowered ``torch.set_float32_matmul_precision``) it is the plain reduction.
    """
    b, j = volumes.shape[:2]
    if volumes.device.type == "cpu" and torch.get_float32_matmul_precision() == "highest":
        rows = volumes.reshape(b * j, 1, -1)
        return torch.bmm(rows, rows.transpose(1, 2)).reshape(b, j)
    return volumes.square().sum(dim=(2, 3, 4))


class _ResidualHeatmapMSE(torch.autograd.Function):
    """:func:`lean_heatmap_mse` with a hand-written, memory-lean backward w.r.t. ``pred`` only.

    Forward: residual = pred − peak · g_z ⊗ g_y ⊗ g_x (:func:`heatmap_residual`), loss = Σ valid[b, j] · Σ residual²
    / N. Backward: d loss / d pred = 2 · residual · valid[b, j] / N · grad_out, the saved residual scaled in place (so
    a second backward through the same graph is refused with a clear error). The only volume-sized tensor besides
    the prediction is the residual, which becomes the gradient.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        pred: torch.Tensor,
        coords_hm: torch.Tensor,
        valid: torch.Tensor,
        codec: HeatmapCodec,
    ) -> torch.Tensor:
        residual = heatmap_residual(codec, pred, coords_hm)
        mask = valid.to(device=pred.device, dtype=residual.dtype)
        ctx.save_for_backward(residual, mask)
        ctx.pred_dtype = pred.dtype
        ctx.residual_consumed = False
        return (sum_of_squares(residual) * mask).sum() / pred.numel()

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        if ctx.residual_consumed:
            raise RuntimeError(
                "lean_heatmap_mse: a second backward through the same loss is not supported (its backward turns the "
                "saved residual into the gradient in place); use dense_heatmap_mse for retain_graph=True"
            )
        residual, mask = ctx.saved_tensors
        scale = mask * (2.0 / residual.numel()) * grad_out.to(residual.dtype)
        ctx.residual_consumed = True
        grad = residual.mul_(scale[..., None, None, None])  # the residual is not needed again: no new volume
        return grad.to(ctx.pred_dtype), None, None, None


def lean_heatmap_mse(
    codec: HeatmapCodec, pred: torch.Tensor, coords_hm: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """InterNet's masked heatmap MSE (§3.1) without the dense target; the value of :func:`dense_heatmap_mse`.

    Mean over all B·J·D·H·W elements of (pred − target)² · valid[b, j], masked elements included in the
    denominator (module docstring for how). When ``coords_hm`` or ``valid`` require grad (never in training), the
    same expression runs through autograd.

    Args:
        codec: the codec whose Gaussian (peak, σ, volume shape) is the target.
        pred: B×J×D×H×W predicted heatmaps.
        coords_hm: B×J×3 target centres in heatmap coordinates (:meth:`HeatmapCodec.encode_joints`).
        valid: B×J joint validity (:meth:`HeatmapCodec.encode_joints`).
    """
    _check_volume(codec, pred, coords_hm, valid)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        if coords_hm.requires_grad or valid.requires_grad:
            per_joint = heatmap_residual(codec, pred, coords_hm).square().sum(dim=(2, 3, 4))
            return (per_joint * valid.to(device=pred.device, dtype=per_joint.dtype)).sum() / pred.numel()
        return _ResidualHeatmapMSE.apply(pred, coords_hm, valid, codec)


def dense_heatmap_mse(
    codec: HeatmapCodec, pred: torch.Tensor, coords_hm: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """The reference: InterNet's loss with the dense target of :meth:`HeatmapCodec.render` (internet §3.1, §4.3).

    Mean over all B·J·D·H·W elements of (pred − target)² · valid[b, j]. Builds the full target volume (about
    672 MiB for B=16 at 64³); same arguments, precision policy and value as :func:`lean_heatmap_mse`.
    """
    _check_volume(codec, pred, coords_hm, valid)
    dtype = compute_dtype(pred.dtype)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        pred = pred.to(dtype)
        target = codec.render(coords_hm.to(device=pred.device, dtype=dtype), codec.volume_shape)
        mask = valid.to(device=pred.device, dtype=dtype)[..., None, None, None]
        return ((pred - target).square() * mask).mean()


class InterNetLoss(nn.Module):
    """InterNet's heatmap, relative-root-depth and hand-type losses (internet §3).

    Args:
        codec: the :class:`HeatmapCodec` that encodes the targets (§4.2).
        weights: per-term weights, keys ``heatmap``, ``root``, ``handedness`` (missing keys default to 1).
        dense_heatmap: render the dense B×J×D×H×W target as InterNet does (:func:`dense_heatmap_mse`) instead of
            the lean residual evaluation (:func:`lean_heatmap_mse`, the default); same value, the dense path only
            costs memory.

    ``forward(outputs, batch)`` reads PoseNet's ``heatmaps`` (B×J×D×H×W), ``root_bins`` (B) and ``hand_logits`` (B×2),
    and the sample keys ``joints_img``, ``joint_valid``, ``rel_root_depth``, ``root_valid``, ``hand_type`` and
    ``hand_type_valid``. It returns a dict of scalar tensors ``loss``, ``loss_heatmap``, ``loss_root``,
    ``loss_handedness`` (float32, or float64 for float64 inputs).
    """

    def __init__(
        self, codec: HeatmapCodec, weights: Mapping[str, float] | None = None, dense_heatmap: bool = False
    ) -> None:
        super().__init__()
        unknown = set(weights or {}) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; expected keys {sorted(DEFAULT_WEIGHTS)}")
        self.codec = codec
        self.weights: dict[str, float] = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in (weights or {}).items()}}
        self.dense_heatmap = bool(dense_heatmap)

    def extra_repr(self) -> str:  # noqa: D102
        return f"weights={self.weights}, dense_heatmap={self.dense_heatmap}"

    def heatmap_loss(self, heatmaps: torch.Tensor, joints_img: torch.Tensor, joint_valid: torch.Tensor) -> torch.Tensor:
        """§3.1: masked MSE against the Gaussian target, mean over all B·J·D·H·W elements (masked included)."""
        coords, valid = self.codec.encode_joints(joints_img, joint_valid)
        mse = dense_heatmap_mse if self.dense_heatmap else lean_heatmap_mse
        return mse(self.codec, heatmaps, coords, valid)

    def root_loss(
        self, root_bins: torch.Tensor, rel_root_depth: torch.Tensor, root_valid: torch.Tensor
    ) -> torch.Tensor:
        """§3.2: |pred − gt| in root-depth bins, times root validity (incl. the range check), mean over the batch."""
        gt_bins, valid = self.codec.encode_root_depth(rel_root_depth, root_valid)
        pred = root_bins.reshape(-1)
        pred = pred.to(torch.promote_types(pred.dtype, torch.float32))
        return ((pred - gt_bins.to(pred.dtype)).abs() * valid.to(pred.dtype)).mean()

    @staticmethod
    def handedness_loss(
        hand_logits: torch.Tensor, hand_type: torch.Tensor, hand_type_valid: torch.Tensor
    ) -> torch.Tensor:
        """§3.3: BCE (with logits) averaged over the 2 labels, times hand_type_valid, mean over the batch."""
        logits = hand_logits.to(torch.promote_types(hand_logits.dtype, torch.float32))
        bce = F.binary_cross_entropy_with_logits(logits, hand_type.to(logits.dtype), reduction="none").mean(dim=-1)
        return (bce * hand_type_valid.to(logits.dtype).reshape(-1)).mean()

    def forward(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The three losses and their weighted sum (see the class docstring for the keys)."""
        loss_heatmap = self.heatmap_loss(outputs["heatmaps"], batch["joints_img"], batch["joint_valid"])
        loss_root = self.root_loss(outputs["root_bins"], batch["rel_root_depth"], batch["root_valid"])
        loss_hand = self.handedness_loss(outputs["hand_logits"], batch["hand_type"], batch["hand_type_valid"])
        dtype = torch.promote_types(torch.promote_types(loss_heatmap.dtype, loss_root.dtype), loss_hand.dtype)
        loss_heatmap, loss_root, loss_hand = loss_heatmap.to(dtype), loss_root.to(dtype), loss_hand.to(dtype)
        total = (
            self.weights["heatmap"] * loss_heatmap
            + self.weights["root"] * loss_root
            + self.weights["handedness"] * loss_hand
        )
        return {"loss": total, "loss_heatmap": loss_heatmap, "loss_root": loss_root, "loss_handedness": loss_hand}


__all__ = [
    "DEFAULT_WEIGHTS",
    "InterNetLoss",
    "dense_heatmap_mse",
    "heatmap_residual",
    "lean_heatmap_mse",
    "sum_of_squares",
]
