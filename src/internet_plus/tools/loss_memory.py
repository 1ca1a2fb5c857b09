"""Peak tensor memory of the heatmap loss + backward, lean (:func:`~internet_plus.models.losses.lean_heatmap_mse`)
vs dense (InterNet, :func:`~internet_plus.models.losses.dense_heatmap_mse`).

The performance target: "the heatmap loss without the dense Gaussian target volume (InterNet renders
42×64³ floats per sample, 672 MiB per batch of 16, and keeps several same-sized intermediates): identical loss and
gradients to the dense formulation (relative difference at most 1e-5, tested), and peak memory per training sample at
most half of the dense formulation's, measured and reported."

**What is measured.** The peak of live tensor storage bytes while one loss is evaluated and differentiated w.r.t. the
predicted heatmaps (forward + ``torch.autograd.grad``), on CPU, in float32, at the paper's size (42 joints × 64³
voxels) by default. The prediction is counted (it is alive throughout), so is its gradient; the targets (B×J×3
coordinates, B×J validity) are built before the measurement and are negligible.

**How.** :class:`~internet_plus.tools.memory.TensorMemoryMeter` counts the live tensor storage after every ATen
operator (autograd's backward ops included) and keeps its peak; exact and deterministic at operator granularity (see
:mod:`internet_plus.tools.memory`).

Two figures are reported per sample (peak / batch size), both for lean and dense and as the ratio lean / dense:

* **total peak** - everything the loss + backward hold at their worst moment, prediction and gradient included;
  this is the loss's contribution to the peak of a training step, the figure the target refers to;
* **beyond prediction and gradient** - total peak minus the prediction and its gradient, which every formulation must
  hold (the network produces the one and back-propagates the other): the loss's own overhead.

``python -m internet_plus.tools.loss_memory [--batch-size 16] [--heatmap-size 64] [--depth-bins 64] [--json F]``
prints the table (and writes the numbers as JSON).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from internet_plus.models.codec import HeatmapCodec
from internet_plus.models.losses import dense_heatmap_mse, lean_heatmap_mse
from internet_plus.tools.memory import TensorMemoryMeter
from internet_plus.utils.reports import write_json_report

__all__ = ["compare_loss_memory", "format_table", "loss_peak_memory", "main"]

MIB = 1024.0**2


def _targets(
    codec: HeatmapCodec, batch_size: int, num_joints: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Realistic targets: joints inside the central 80 % of the crop, depths within ±150 mm of the wrist, ~90 % valid,
    encoded by :meth:`HeatmapCodec.encode_joints`."""
    s = float(codec.input_size)
    xy = (0.1 + 0.8 * torch.rand(batch_size, num_joints, 2, generator=generator)) * s
    z = (torch.rand(batch_size, num_joints, 1, generator=generator) * 2.0 - 1.0) * 150.0
    joint_valid = (torch.rand(batch_size, num_joints, generator=generator) < 0.9).float()
    return codec.encode_joints(torch.cat([xy, z], dim=-1), joint_valid)


def loss_peak_memory(
    codec: HeatmapCodec, batch_size: int, dense: bool, num_joints: int = 42, seed: int = 0
) -> dict[str, Any]:
    """Peak tensor memory of one heatmap loss + backward w.r.t. a float32 B×J×D×H×W prediction.

    Args:
        codec: gives the volume (D, H, W), the input size and the Gaussian.
        batch_size: B.
        dense: measure :func:`dense_heatmap_mse` (InterNet's dense target) instead of the lean
            :func:`lean_heatmap_mse`.
        num_joints: J (42 = two hands, as InterNet).
        seed: seed of the prediction and the targets.

    Returns:
        ``peak_bytes`` (total, prediction and gradient included), ``peak_bytes_per_sample``,
        ``prediction_and_grad_bytes`` (the unavoidable 2 · B·J·D·H·W · 4), ``beyond_bytes`` (peak minus that),
        ``beyond_bytes_per_sample``, the ``loss`` value and the sizes.
    """
    if batch_size < 1 or num_joints < 1:
        raise ValueError(f"batch_size and num_joints must be >= 1, got {batch_size}, {num_joints}")
    generator = torch.Generator().manual_seed(seed)
    coords, valid = _targets(codec, batch_size, num_joints, generator)
    shape = (batch_size, num_joints, *codec.volume_shape)
    pred = (torch.rand(shape, generator=generator) * codec.peak).requires_grad_(True)
    loss_fn = dense_heatmap_mse if dense else lean_heatmap_mse
    with torch.enable_grad(), TensorMemoryMeter() as meter:
        meter.track(pred)
        start = meter.current
        loss = loss_fn(codec, pred, coords, valid)
        (grad,) = torch.autograd.grad(loss, pred)
    if tuple(grad.shape) != shape:  # pragma: no cover - defensive
        raise RuntimeError("the gradient does not have the prediction's shape")
    volume = pred.numel() * pred.element_size()
    floor = 2 * volume
    return {
        "dense": bool(dense),
        "batch_size": int(batch_size),
        "num_joints": int(num_joints),
        "volume_shape": list(codec.volume_shape),
        "prediction_bytes": int(start),
        "prediction_and_grad_bytes": int(floor),
        "peak_bytes": int(meter.peak),
        "peak_bytes_per_sample": meter.peak / batch_size,
        "beyond_bytes": int(meter.peak - floor),
        "beyond_bytes_per_sample": (meter.peak - floor) / batch_size,
        "peak_in_volumes": meter.peak / volume,
        "loss": float(loss.item()),
    }


def compare_loss_memory(codec: HeatmapCodec, batch_size: int, num_joints: int = 42, seed: int = 0) -> dict[str, Any]:
    """:func:`loss_peak_memory` for lean and dense, with the ratios lean / dense of both per-sample figures."""
    lean = loss_peak_memory(codec, batch_size, dense=False, num_joints=num_joints, seed=seed)
    dense = loss_peak_memory(codec, batch_size, dense=True, num_joints=num_joints, seed=seed)
    return {
        "lean": lean,
        "dense": dense,
        "ratio_total_peak": lean["peak_bytes"] / dense["peak_bytes"],
        "ratio_beyond_prediction_and_grad": lean["beyond_bytes"] / dense["beyond_bytes"],
        "loss_relative_difference": abs(lean["loss"] - dense["loss"]) / abs(dense["loss"]),
        "target_ratio": 0.5,
    }


def format_table(result: dict[str, Any]) -> str:
    """The comparison of :func:`compare_loss_memory` as a small text table (MiB per sample)."""
    lean, dense = result["lean"], result["dense"]
    d, h, w = lean["volume_shape"]
    lines = [
        f"heatmap loss + backward, float32, B={lean['batch_size']}, J={lean['num_joints']}, volume {d}x{h}x{w} "
        f"(prediction {lean['prediction_bytes'] / lean['batch_size'] / MIB:.1f} MiB per sample)",
        f"{'MiB per sample':<34}{'lean':>10}{'dense':>10}{'lean/dense':>12}",
        f"{'total peak':<34}{lean['peak_bytes_per_sample'] / MIB:>10.1f}{dense['peak_bytes_per_sample'] / MIB:>10.1f}"
        f"{result['ratio_total_peak']:>12.3f}",
        f"{'beyond prediction and gradient':<34}{lean['beyond_bytes_per_sample'] / MIB:>10.1f}"
        f"{dense['beyond_bytes_per_sample'] / MIB:>10.1f}{result['ratio_beyond_prediction_and_grad']:>12.3f}",
        f"{'peak in prediction volumes':<34}{lean['peak_in_volumes']:>10.2f}{dense['peak_in_volumes']:>10.2f}",
        f"target: total peak per sample lean/dense <= {result['target_ratio']} -> "
        f"{'met' if result['ratio_total_peak'] <= result['target_ratio'] else 'NOT met'}; "
        f"loss relative difference {result['loss_relative_difference']:.2e}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: measure lean and dense at the given size, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-joints", type=int, default=42)
    parser.add_argument("--heatmap-size", type=int, default=64, help="H = W")
    parser.add_argument("--depth-bins", type=int, default=64, help="D")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    codec = HeatmapCodec(input_size=4 * args.heatmap_size, heatmap_size=args.heatmap_size, depth_bins=args.depth_bins)
    result = compare_loss_memory(codec, args.batch_size, num_joints=args.num_joints, seed=args.seed)
    print(format_table(result))
    write_json_report(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
