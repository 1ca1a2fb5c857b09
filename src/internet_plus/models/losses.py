"""InterNet's three training losses (``docs/reference/internet.md`` §3), reduced exactly as InterNet does.

* ``loss_heatmap`` — (pred − target)² · joint_valid, averaged over **all** B·42·D·H·W elements, masked ones included
  (§3.1, internet §7.2); the target is the peak-255 Gaussian of §4.3 around the encoded joint (§4.2);
* ``loss_root`` — |root_bins − gt_bins| · root_valid in **bin units** (1 bin = 6.25 mm by default), averaged over the
  batch, masked samples included (§3.2, internet §7.4);
* ``loss_handedness`` — binary cross-entropy of the two hand-presence labels, averaged over the 2 labels, times
  hand_type_valid, averaged over the batch (§3.3). It is computed from the **logits** with
  ``binary_cross_entropy_with_logits``, the numerically safe equivalent of InterNet's BCE on sigmoid outputs (§7.15).

``loss`` is their weighted sum; InterNet's weights are all 1.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from internet_plus.models.codec import HeatmapCodec

#: InterNet's loss weights: a plain, unweighted sum (internet §3).
DEFAULT_WEIGHTS: dict[str, float] = {"heatmap": 1.0, "root": 1.0, "handedness": 1.0}


class InterNetLoss(nn.Module):
    """InterNet's heatmap, relative-root-depth and hand-type losses (internet §3).

    Args:
        codec: the :class:`HeatmapCodec` that encodes the targets (§4.2) and evaluates the heatmap MSE.
        weights: per-term weights, keys ``heatmap``, ``root``, ``handedness`` (missing keys default to 1).
        dense_heatmap: render the dense B×J×D×H×W target as InterNet does (:meth:`HeatmapCodec.heatmap_mse_dense`)
            instead of the lean residual evaluation (:meth:`HeatmapCodec.heatmap_mse`, the default); same value, the
            dense path only costs memory.

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
        mse = self.codec.heatmap_mse_dense if self.dense_heatmap else self.codec.heatmap_mse
        return mse(heatmaps, coords, valid)

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


__all__ = ["DEFAULT_WEIGHTS", "InterNetLoss"]
