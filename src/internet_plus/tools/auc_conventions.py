"""The contract's pooled AUC and median beside hand3d's per-keypoint ones, measured on the same predictions.

``python -m internet_plus.tools.auc_conventions`` builds a deterministic fake evaluation set (seeded; no data, no
model), scores it with :class:`~internet_plus.metrics.PoseErrorMetrics` exactly as a test run does, and prints one
Markdown row per protocol:

* ``all joints`` (STB-like): every joint of the one scored hand counts, so every keypoint has the same number of
  errors and the two conventions differ only by their threshold grids;
* ``visible only`` (RHD-like, hand3d's protocol): fingertips are scored less often than the joints near the palm, so
  hand3d's equal weight per keypoint also moves the numbers.

The columns split the AUC difference into its two causes: the pooled curve integrated on hand3d's grid
(linspace(0, 50, 20)[8:], 21.05 … 50 mm) isolates the grid; the rest is the per-keypoint averaging. The error model:
each sample scores one hand (right or left at random); every joint, the wrist included, is offset by an isotropic
Gaussian whose per-axis σ is 4 mm at the wrist and 8, 12, 16, 20 mm from a finger's base to its tip (the errors are
root-aligned, so the wrist's own offset moves every other joint); under ``visible only`` a finger joint is visible
with probability 0.9, 0.8, 0.7, 0.6 from its base to its tip, the wrist always.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from internet_plus.joints import JOINTS_PER_HAND, NUM_JOINTS
from internet_plus.metrics import PoseErrorMetrics
from internet_plus.metrics.functional import (
    HAND3D_AUC_FROM,
    HAND3D_THRESHOLDS,
    auc,
    joint_errors,
    pck_curve,
    root_aligned,
)

#: Position of each joint of a hand along its finger: 0 for the wrist, 1 (base) … 4 (tip).
_DEPTH = np.array([0] + [d for _ in range(5) for d in range(1, 5)])

HEADER = (
    "| protocol | AUC 20-50 (pooled, contract) | pooled AUC on hand3d's grid | AUC 20-50 (hand3d) "
    "| median EPE mm (pooled, contract) | median EPE mm (hand3d) |"
)


def fake_set(samples: int = 4000, seed: int = 0, visible_only: bool = False) -> tuple[np.ndarray, ...]:
    """(pred_cam, gt_cam, mask): N×42×3, N×42×3, N×42, as the module docstring describes."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(-80.0, 80.0, (samples, NUM_JOINTS, 3)) + np.array([0.0, 0.0, 600.0])
    sigma = np.tile(4.0 + 4.0 * _DEPTH, 2)
    pred = gt + rng.normal(0.0, 1.0, gt.shape) * sigma[None, :, None]
    right = rng.random(samples) < 0.5
    mask = np.zeros((samples, NUM_JOINTS), dtype=np.float32)
    mask[right, :JOINTS_PER_HAND] = 1.0
    mask[~right, JOINTS_PER_HAND:] = 1.0
    if visible_only:
        visible = np.tile(np.where(_DEPTH == 0, 1.0, 1.0 - 0.1 * _DEPTH), 2)
        mask *= rng.random(mask.shape) < visible[None, :]
    return pred, gt, mask


def measure(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The five numbers of one row: :class:`PoseErrorMetrics`' values plus the pooled curve's AUC on hand3d's grid."""
    metric = PoseErrorMetrics()
    metric.update(torch.from_numpy(pred).float(), torch.from_numpy(gt).float(), torch.from_numpy(mask))
    values = {k: v for k, v in metric.compute().items() if v.dim() == 0}
    errors, valid = joint_errors(*root_aligned(pred, gt, mask))
    tail = HAND3D_THRESHOLDS[HAND3D_AUC_FROM:]
    return {
        "auc_20_50": float(values["auc_20_50"]),
        "auc_pooled_on_hand3d_grid": auc(pck_curve(errors, valid, tail), tail),
        "auc_20_50_hand3d": float(values["auc_20_50_hand3d"]),
        "epe_median_mm": float(values["epe_median_mm"]),
        "epe_median_mm_hand3d": float(values["epe_median_mm_hand3d"]),
    }


def rows(samples: int = 4000, seed: int = 0) -> list[str]:
    """The table: :data:`HEADER`, its rule, then one row per protocol."""
    lines = [HEADER, "|---|---|---|---|---|---|"]
    for name, visible_only in (("all joints (STB-like)", False), ("visible only (RHD-like)", True)):
        m = measure(*fake_set(samples, seed, visible_only))
        lines.append(
            f"| {name} | {m['auc_20_50']:.3f} | {m['auc_pooled_on_hand3d_grid']:.3f} | {m['auc_20_50_hand3d']:.3f} "
            f"| {m['epe_median_mm']:.2f} | {m['epe_median_mm_hand3d']:.2f} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table for ``--samples`` samples drawn with ``--seed``."""
    parser = argparse.ArgumentParser(prog="python -m internet_plus.tools.auc_conventions", description=__doc__)
    parser.add_argument("--samples", type=int, default=4000, help="fake samples per protocol (default 4000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    print("\n".join(rows(args.samples, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
