"""What each training speed-up buys, one at a time (performance target 4).

    python experiments/performance/training_rewrites.py [--batch-size 8] [--repeats 5]

Times one training step (forward, InterNet's loss with the lean heatmap MSE, backward, optimiser step) at 256×256 for
each backbone, with freed memory kept in the process (``utils/allocator.py``, the training default), and the
speed-ups added one after another:

1. plain: for-each AdamW, PoseNet's first deconvolution in oneDNN, every depthwise weight gradient in NCHW;
2. + fused AdamW (``fused: true`` in ``conf/optimizer``);
3. + PoseNet's first deconvolution as GEMM + col2im (``models/layers/gemm_deconv.py``);
4. + the 5×5 depthwise weight gradients on channels-last copies (``models/layers/depthwise.py``): the model as built.

Each cell is measured in a fresh process (so that no allocator state carries over from the cell before), as the
median of ``--repeats`` timed steps after two untimed ones; the last column is InterNet+'s speed over InterNet's. The
lean loss's own change (the residual formulation) is measured in ``experiments/performance/README.md``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

import torch

from internet_plus.benchmark import build_model, synthetic_batch, timed_runs, training_step_fn
from internet_plus.lit_module import HandPoseModule
from internet_plus.models.inference import first_deconv_as_plain
from internet_plus.models.layers.depthwise import DepthwiseConv2d
from internet_plus.models.layers.gemm_deconv import GemmConvTranspose2d
from internet_plus.utils.allocator import keep_freed_memory

NEVER = 10**6  # a kernel side no layer has: turns the channels-last weight gradient off


def _set_depthwise_threshold(model: torch.nn.Module, min_kernel: int) -> None:
    for module in model.modules():
        if isinstance(module, DepthwiseConv2d):
            module.channels_last_weight_grad_min_kernel = min_kernel


def _set_gemm_first_deconv(model: HandPoseModule, gemm: bool) -> None:
    for branch in (model.posenet.right_hand, model.posenet.left_hand):
        assert branch is not None
        if gemm and not isinstance(branch[0], GemmConvTranspose2d):
            branch[0] = GemmConvTranspose2d.from_deconv(branch[0])
    if not gemm:
        first_deconv_as_plain(model.posenet)


def _step_time(model: HandPoseModule, fused: bool, batch: dict[str, torch.Tensor], repeats: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused, foreach=None if fused else True)
    step = training_step_fn(model, batch, optimizer)
    return statistics.median(timed_runs(step, torch.device("cpu"), warmup=2, repeats=repeats))


STEPS = (  # label, fused AdamW, GEMM first deconvolution, depthwise threshold
    ("plain", False, False, NEVER),
    ("+ fused AdamW", True, False, NEVER),
    ("+ first deconv as GEMM + col2im", True, True, NEVER),
    ("+ depthwise 5x5 weight grad channels-last", True, True, DepthwiseConv2d.channels_last_weight_grad_min_kernel),
)


def _measure_cell(step: int, backbone: str, batch_size: int, repeats: int) -> float:
    """One table cell, in this process (``main`` runs each cell in a fresh process: no heap state carries over)."""
    _, fused, gemm, threshold = STEPS[step]
    keep_freed_memory()
    torch.manual_seed(0)
    model = build_model(backbone, 256).train()
    _set_gemm_first_deconv(model, gemm)
    _set_depthwise_threshold(model, threshold)
    return _step_time(model, fused, synthetic_batch(batch_size, 256, torch.device("cpu")), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backbones", default="internet_plus,resnet50")
    parser.add_argument("--cell", nargs=2, metavar=("STEP", "BACKBONE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        print(_measure_cell(int(args.cell[0]), args.cell[1], args.batch_size, args.repeats))
        return
    names = args.backbones.split(",")
    print(f"training step, batch {args.batch_size}, 256x256, fp32, {torch.get_num_threads()} threads (s per step)")
    print(f"{'step':44s} " + " ".join(f"{n:>14s}" for n in names) + ("   ratio" if len(names) == 2 else ""))
    for index, (label, *_) in enumerate(STEPS):
        cells = []
        for name in names:
            command = [sys.executable, __file__, "--cell", str(index), name]
            command += ["--batch-size", str(args.batch_size), "--repeats", str(args.repeats)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            cells.append(float(output.strip().splitlines()[-1]))
        ratio = f"{cells[1] / cells[0]:8.3f}" if len(cells) == 2 else ""  # second backbone's time over the first's
        print(f"{label:44s} " + " ".join(f"{c:12.3f} s" for c in cells) + ratio, flush=True)


if __name__ == "__main__":
    main()
