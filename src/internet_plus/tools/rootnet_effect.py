"""How much a RootNet depth error alone moves the root-relative EPE (InterNet's 'rootnet' protocol, internet §5.2).

``python -m internet_plus.tools.rootnet_effect --num 200 --delta 25`` writes ``--num`` evaluation samples of the
synthetic set (RHD's format, :func:`internet_plus.data.synthetic.generate_rhd_dataset`) into a temporary folder and,
for each depth error d in (0, +Δ, −Δ), a RootNet file (:mod:`internet_plus.data.rootnet`) as InterNet's: the
processed ground-truth box of each sample's scored hand and its ground-truth wrist depth + d. It reads the samples
through :class:`~internet_plus.data.rhd.RHDDataModule` with ``rootnet_output`` (so the boxes and depths take the
data set's own path) and scores a **perfect prediction** with :class:`~internet_plus.metrics.pose.PoseErrorMetrics`:

- ``quantised``: the ground-truth heatmap targets decoded as InterNet decodes (the voxel the target peaks at, i.e.
  the target coordinates rounded: 4 input pixels and 6.25 mm per voxel at 256 px / 64³), then the codec's
  back-projection with the sample's absolute root depth (:meth:`HeatmapCodec.input_to_camera`);
- ``exact``: the ground-truth input-space joints back-projected without quantisation (the depth error alone).

It also scores the ground-truth mode (no RootNet file), which must equal d = 0. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from internet_plus.data.rhd import RHDDataModule
from internet_plus.data.synthetic import generate_rhd_dataset
from internet_plus.data.transforms import bbox_from_joints, process_bbox
from internet_plus.joints import hand_slice
from internet_plus.metrics.pose import PoseErrorMetrics
from internet_plus.models.codec import HeatmapCodec

__all__ = ["main", "measure", "write_rootnet_file"]


def write_rootnet_file(datamodule: RHDDataModule, path: Path, delta_mm: float) -> Path:
    """A RootNet file for the data module's evaluation split: processed ground-truth boxes, ground-truth wrist depth +
    ``delta_mm``, ``annot_id`` = the sample id."""
    entries = []
    for record in datamodule.records("test"):
        block = hand_slice(record.hand)
        entries.append(
            {
                "annot_id": record.sample_id,
                "bbox": process_bbox(bbox_from_joints(record.uv[block])).tolist(),
                "abs_depth": float(record.xyz[block][0, 2]) + delta_mm,
            }
        )
    path.write_text(json.dumps(entries))
    return path


def measure(root: Path, rootnet_output: Path | None, codec: HeatmapCodec) -> dict[str, dict[str, float]]:
    """EPE, median and AUC 20-50 of the perfect prediction (``quantised`` and ``exact``) on ``root``'s evaluation
    split, with the boxes and depths of ``rootnet_output`` (``None``: ground truth)."""
    datamodule = RHDDataModule(
        root=str(root),
        rootnet_output=None if rootnet_output is None else str(rootnet_output),
        input_size=codec.input_size,
        batch_size=16,
        num_workers=0,
        pin_memory=False,
        val_fraction=0.0,
    )
    datamodule.setup("test")
    metrics = {"quantised": PoseErrorMetrics(), "exact": PoseErrorMetrics()}
    for batch in datamodule.test_dataloader():
        joints = batch["joints_img"].double()
        coords, _ = codec.encode_joints(joints, batch["joint_annotated"])
        limit = torch.tensor([codec.heatmap_size - 1, codec.heatmap_size - 1, codec.depth_bins - 1])
        voxels = torch.minimum(torch.round(coords).clamp(min=0), limit)
        for name, joints_img in (("quantised", codec.heatmap_to_input(voxels)), ("exact", joints)):
            cam = codec.input_to_camera(
                joints_img, batch["inv_trans"], batch["abs_root_depth"], batch["focal"], batch["princpt"]
            )
            metrics[name].update(cam, batch["joints_cam"], batch["joint_annotated"])
    out = {}
    for name, metric in metrics.items():
        values = metric.compute()
        out[name] = {k: float(values[k]) for k in ("epe_mm", "epe_median_mm", "auc_20_50")}
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--num`` evaluation samples, depth error ``--delta`` mm, ``--seed`` of the synthetic set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=200, help="synthetic evaluation samples")
    parser.add_argument("--delta", type=float, default=25.0, help="RootNet depth error in mm")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set")
    args = parser.parse_args(argv)
    codec = HeatmapCodec()  # InterNet's: 256 px input, 64³ heatmaps, 400 mm depth range
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_rhd_dataset(Path(tmp) / "rhd", num_train=1, num_eval=args.num, seed=args.seed)
        probe = RHDDataModule(root=str(root), num_workers=0)
        rows = [("ground truth (no file)", measure(root, None, codec))]
        for delta in (0.0, args.delta, -args.delta):
            path = write_rootnet_file(probe, Path(tmp) / f"rootnet_{delta:+g}.json", delta)
            rows.append((f"RootNet file, depth error {delta:+g} mm", measure(root, path, codec)))
        depths = np.array([r.xyz[hand_slice(r.hand)][0, 2] for r in probe.records("test")])
    print(
        f"{args.num} synthetic evaluation samples (seed {args.seed}), wrist depth {depths.min():.0f}-"
        f"{depths.max():.0f} mm (median {np.median(depths):.0f}); perfect prediction\n"
    )
    print("| boxes and depths | EPE quantised (mm) | median | AUC 20-50 | EPE exact (mm) | median |")
    print("|---|---|---|---|---|---|")
    for label, result in rows:
        q, e = result["quantised"], result["exact"]
        print(
            f"| {label} | {q['epe_mm']:.2f} | {q['epe_median_mm']:.2f} | {q['auc_20_50']:.3f} | {e['epe_mm']:.2f} | "
            f"{e['epe_median_mm']:.2f} |"
        )


if __name__ == "__main__":
    main()
