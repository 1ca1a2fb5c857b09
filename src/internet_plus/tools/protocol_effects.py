"""Measured effects of this implementation's departures from the paper's protocol (docs/fidelity.md, "Measured
effects").

``python -m internet_plus.tools.protocol_effects`` is deterministic (seeded; no data set, no trained model) and runs
in seconds on a CPU. It prints one Markdown row per measurement:

* **fp16 heatmaps** (``trainer.precision=16-mixed``: the final 1×1 convolution's output is fp16). The evaluation
  heatmaps are the codec's own targets (:meth:`~internet_plus.models.codec.HeatmapCodec.render`: continuous centres
  uniform in the 64³ volume, σ = 2.5 voxels, peak 255; internet §4.3) plus i.i.d. Gaussian noise of the stated
  standard deviation, decoded in fp32 and after rounding to fp16 (``.half().float()``) with the project's
  :meth:`~internet_plus.models.codec.HeatmapCodec.decode` (hard argmax, internet §5.1). The decode does *not* upcast
  before the argmax, and every fp16 value is exact in fp32, so ``.half().float()`` gives exactly the argmax of an
  fp16 tensor: a flip comes only from the rounded values (spacing 0.125 between 128 and 256, so neighbours of the
  peak can tie; ties go to the first voxel in raster order). Camera geometry: a 200-px crop box at 600 mm depth,
  focal length 600 px (≈ 0.78 mm per input pixel; one x/y voxel ≈ 3.1 mm, one z bin 6.25 mm). Reported: the share
  of joints whose argmax moved, the mean and largest move in mm, and the root-relative EPE (the wrists at 0, as
  ``epe_mm``) of the fp16 decode minus that of the fp32 decode, both against the rendered centres.
* **pooled vs per-joint EPE**: our ``epe_mm`` (:func:`~internet_plus.metrics.functional.epe`, pooled over the scored
  joints) against InterNet's mean of per-joint means (:func:`~internet_plus.metrics.functional.mpjpe_per_joint_mean`)
  on :func:`internet_plus.tools.auc_conventions.fake_set`'s predictions (one hand scored per sample; per-axis error
  σ 4 mm at the wrist to 20 mm at the fingertips), all joints scored (STB-like) and visible only (RHD-like:
  fingertips visible with probability 0.6, bases 0.9).
* **STB wrist rule** (``data.wrist_rule``, datasets §B.5): right hands from the synthetic generator's hand model
  (:func:`~internet_plus.data.synthetic.hand_model.sample_hand_pose`), turned into STB's joint set with the palm
  centre placed halfway between the true wrist and the ring MCP (the premise of the ``ring_mcp`` rule, so that rule
  returns the true wrist exactly). Reported per rule: the mean distance between the rule's wrist and the true wrist,
  and the root-relative EPE of the same noisy predictions of STB's 21 points (per-axis σ 4 mm at the palm centre,
  8, 12, 16, 20 mm from a finger's MCP to its tip) when both prediction and ground truth get their root from that
  rule: the synthesised wrist carries (1 − f)·e_ref + f·e_palm of the points it is made from, and root alignment
  passes that to every joint.
* **validation carve-out**: the training samples a 5 % hold-out (``holdout_split``'s ``round(0.05·n)``) removes from
  RHD (41,258 training images) and STB (10 training sequences of 1500 frames, one view).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from internet_plus.data.datamodule import holdout_split
from internet_plus.data.stb import PROJECT_FROM_STB, WRIST_RULES, palm_to_wrist
from internet_plus.data.synthetic.hand_model import sample_hand_pose
from internet_plus.joints import JOINTS_PER_HAND, NUM_JOINTS
from internet_plus.metrics.functional import epe, mpjpe_per_joint_mean, root_aligned
from internet_plus.models.codec import HeatmapCodec
from internet_plus.tools.auc_conventions import fake_set

#: Noise standard deviations added to the rendered heatmaps (peak 255): none, 0.4 % and 2 % of the peak.
HEATMAP_NOISE = (0.0, 1.0, 5.0)
#: The crop geometry of the fp16 measurement: box side in original pixels, wrist depth (mm), focal length (px).
BOX_PX, DEPTH_MM, FOCAL_PX = 200.0, 600.0, 600.0
#: Training-split sizes for the carve-out: RHD's official training set, STB's 10 training sequences × 1500 frames.
TRAIN_SIZES = {"RHD": 41_258, "STB": 15_000}
VAL_FRACTION = 0.05

FP16_HEADER = (
    "| heatmap noise σ (peak 255) | joints | argmax moved | mean move mm (moved joints) | largest move mm "
    "| EPE fp32 mm | EPE fp16 − fp32 mm |"
)
EPE_HEADER = "| protocol | epe_mm (pooled, ours) | mean of per-joint means (InterNet) | difference mm |"
WRIST_HEADER = "| wrist rule | wrist − true wrist, mean mm | EPE of the same predictions mm | vs ring_mcp mm |"
CARVE_HEADER = "| data set | training samples | held out at 5 % | left to train |"


def _batch(samples: int) -> dict[str, torch.Tensor]:
    """Camera inputs of :meth:`HeatmapCodec.decode` for the crop geometry of the module docstring."""
    s = BOX_PX / 256.0
    inv_trans = torch.tensor([[s, 0.0, 320.0 - BOX_PX / 2], [0.0, s, 240.0 - BOX_PX / 2]]).expand(samples, 2, 3)
    return {
        "inv_trans": inv_trans,
        "abs_root_depth": torch.full((samples, 2), DEPTH_MM),
        "focal": torch.full((samples, 2), FOCAL_PX),
        "princpt": torch.tensor([320.0, 240.0]).expand(samples, 2),
    }


def fp16_effects(samples: int = 24, noises: Sequence[float] = HEATMAP_NOISE, seed: int = 0) -> list[dict[str, float]]:
    """The fp16 rows, one per noise level (module docstring): ``samples`` × 42 joints rendered once, one sample at a
    time, each noise level added to the same targets."""
    codec = HeatmapCodec()
    gen = torch.Generator().manual_seed(seed)
    batch = _batch(1)
    camera = (batch["inv_trans"], batch["abs_root_depth"], batch["focal"], batch["princpt"])
    extra = {"root_bins": torch.zeros(1), "hand_logits": torch.zeros(1, 2)}
    gts, decoded = [], {(noise, kind): [] for noise in noises for kind in ("fp32", "fp16")}
    for _ in range(samples):
        centres = 4.0 + torch.rand(1, NUM_JOINTS, 3, generator=gen) * 56.0
        targets = codec.render(centres)
        gts.append(codec.input_to_camera(codec.heatmap_to_input(centres), *camera))
        for noise in noises:
            heatmaps = targets + noise * torch.randn(targets.shape, generator=gen) if noise else targets
            decoded[noise, "fp32"].append(codec.decode({"heatmaps": heatmaps, **extra}, batch)["joints_cam"])
            decoded[noise, "fp16"].append(
                codec.decode({"heatmaps": heatmaps.half().float(), **extra}, batch)["joints_cam"]
            )
    gt = torch.cat(gts).double().numpy()
    mask = np.ones(gt.shape[:2], dtype=np.float32)
    out = []
    for noise in noises:
        p32, p16 = (torch.cat(decoded[noise, kind]).double().numpy() for kind in ("fp32", "fp16"))
        move = np.linalg.norm(p16 - p32, axis=-1)
        moved = move > 0
        epe32 = epe(*root_aligned(p32, gt, mask))
        out.append(
            {
                "noise": noise,
                "joints": float(move.size),
                "moved_pct": 100.0 * float(moved.mean()),
                "mean_move_mm": float(move[moved].mean()) if moved.any() else 0.0,
                "max_move_mm": float(move.max()),
                "epe32": epe32,
                "epe_delta": epe(*root_aligned(p16, gt, mask)) - epe32,
            }
        )
    return out


def pooled_vs_per_joint(samples: int = 4000, seed: int = 0) -> dict[str, dict[str, float]]:
    """``epe_mm`` and InterNet's mean of per-joint means on both fake protocols (module docstring)."""
    out = {}
    for name, visible_only in (("all joints (STB-like)", False), ("visible only (RHD-like)", True)):
        pred, gt, mask = fake_set(samples, seed, visible_only)
        aligned = root_aligned(pred, gt, mask)
        out[name] = {"pooled": epe(*aligned), "per_joint": mpjpe_per_joint_mean(*aligned)}
    return out


def _stb_hands(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(native STB joints with the palm centre halfway between wrist and ring MCP, true wrists): N×21×3, N×3."""
    rng = np.random.default_rng(seed)
    project = np.stack([sample_hand_pose(rng)[0] for _ in range(samples)])
    native = np.empty_like(project)
    native[:, PROJECT_FROM_STB] = project
    ring_mcp = project[:, 13]
    native[:, 0] = (project[:, 0] + ring_mcp) / 2.0
    return native, project[:, 0]


def wrist_rule_effect(samples: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per rule of :data:`~internet_plus.data.stb.WRIST_RULES`: distance to the true wrist and the EPE (docstring)."""
    native, true_wrist = _stb_hands(samples, seed)
    rng = np.random.default_rng(seed + 1)
    depth = np.zeros(JOINTS_PER_HAND)
    depth[1:] = np.tile(np.arange(1, 5), 5)
    pred = native + rng.normal(0.0, 1.0, native.shape) * (4.0 + 4.0 * depth)[None, :, None]
    mask = np.ones((samples, JOINTS_PER_HAND), dtype=np.float32)
    out = {}
    for rule in WRIST_RULES:
        g = palm_to_wrist(native, rule)[:, PROJECT_FROM_STB]
        p = palm_to_wrist(pred, rule)[:, PROJECT_FROM_STB]
        out[rule] = {
            "wrist_error": float(np.linalg.norm(g[:, 0] - true_wrist, axis=-1).mean()),
            "epe": epe(*root_aligned(p, g, mask)),
        }
    return out


def carve_out() -> dict[str, tuple[int, int]]:
    """(training samples, held out) per data set at :data:`VAL_FRACTION`, as ``holdout_split`` counts them."""
    return {name: (n, len(holdout_split(n, VAL_FRACTION)[1])) for name, n in TRAIN_SIZES.items()}


def rows(fp16_samples: int = 24, samples: int = 4000, seed: int = 0) -> list[str]:
    """The four tables, each a header, its rule and its rows, separated by empty lines."""
    lines = [FP16_HEADER, "|---|---|---|---|---|---|---|"]
    for m in fp16_effects(fp16_samples, HEATMAP_NOISE, seed):
        lines.append(
            f"| {m['noise']:g} | {m['joints']:.0f} | {m['moved_pct']:.1f} % | {m['mean_move_mm']:.2f} "
            f"| {m['max_move_mm']:.2f} | {m['epe32']:.2f} | {round(m['epe_delta'], 3) + 0.0:+.3f} |"
        )
    lines += ["", EPE_HEADER, "|---|---|---|---|"]
    for name, m in pooled_vs_per_joint(samples, seed).items():
        lines.append(f"| {name} | {m['pooled']:.2f} | {m['per_joint']:.2f} | {m['per_joint'] - m['pooled']:+.2f} |")
    lines += ["", WRIST_HEADER, "|---|---|---|---|"]
    effects = wrist_rule_effect(samples // 2, seed)
    base = effects["ring_mcp"]["epe"]
    for rule, m in effects.items():
        lines.append(f"| `{rule}` | {m['wrist_error']:.1f} | {m['epe']:.2f} | {m['epe'] - base:+.2f} |")
    lines += ["", CARVE_HEADER, "|---|---|---|---|"]
    for name, (n, held) in carve_out().items():
        lines.append(f"| {name} | {n:,} | {held:,} | {n - held:,} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Print the tables (sizes and seed from the command line)."""
    parser = argparse.ArgumentParser(prog="python -m internet_plus.tools.protocol_effects", description=__doc__)
    parser.add_argument("--fp16-samples", type=int, default=24, help="samples of 42 heatmaps per noise level (24)")
    parser.add_argument("--samples", type=int, default=4000, help="fake samples of the EPE rows (4000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    print("\n".join(rows(args.fp16_samples, args.samples, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
