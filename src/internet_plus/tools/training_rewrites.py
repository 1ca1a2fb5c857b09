"""What each CPU training speed-up of ``accel.py`` buys, one at a time.

    python -m internet_plus.tools.training_rewrites [--batch-size 8] [--repeats 5]

Times one training step (forward, InterNet's loss with the lean heatmap MSE, backward, AdamW step) at 256×256 for
each backbone, the speed-ups added one after another:

1. plain: the model as built, glibc's allocator as it comes (``accel=off``);
2. + freed memory kept in the process (``accel=auto`` for training);
3. + PoseNet's first deconvolution as GEMM + col2im (``accel=auto`` applies it to inference only: in training it
   was measured under 5 % of the step; this row keeps checking that).

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

from internet_plus.accel import gemm_first_deconvolutions, keep_freed_memory
from internet_plus.tools.benchmark import build_model, synthetic_batch, training_step_fn
from internet_plus.tools.timing import timed_runs

STEPS = (  # label, freed memory kept, GEMM first deconvolution
    ("plain (accel=off)", False, False),
    ("+ freed memory kept (accel=auto)", True, False),
    ("+ first deconv as GEMM + col2im", True, True),
)


def _measure_cell(step: int, backbone: str, batch_size: int, repeats: int) -> float:
    """One table cell, in this process (``main`` runs each cell in a fresh process: no heap state carries over)."""
    _, keep_memory, gemm = STEPS[step]
    if keep_memory:
        keep_freed_memory()
    torch.manual_seed(0)
    model = build_model(backbone, 256).train()
    if gemm:
        gemm_first_deconvolutions(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step_fn = training_step_fn(model, synthetic_batch(batch_size, 256, torch.device("cpu")), optimizer)
    return statistics.median(timed_runs(step_fn, torch.device("cpu"), warmup=2, repeats=repeats))


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
