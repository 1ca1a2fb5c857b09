"""What each inference rewrite of ``internet_plus.models.inference`` buys, one at a time (performance target 1).

    python -m internet_plus.tools.inference_rewrites [--batch-size 8] [--repeats 3] [--no-compile]

Runs, for each backbone, the whole model (feature extractor + PoseNet at 256×256) under ``torch.inference_mode()``
in eval mode: first as built, then with the rewrites added one after another (freed memory kept in the process,
then BN folded + PoseNet's branches merged + channels-last, then Last Conv's stride moved into IR13's projection,
then PoseNet's first deconvolution as a GEMM, then ``torch.compile`` with freezing), and prints images/s and the
fraction of the FLOP bound (the machine's float32 matmul rate divided by the model's FLOPs per image). Each row is
the median of ``--repeats`` timed passes after two untimed ones. Freed memory stays kept once it is (it is a
process-wide allocator setting), which is why it is the first step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from internet_plus.accel import gemm_first_deconvolutions, keep_freed_memory
from internet_plus.models.inference import optimize_for_inference
from internet_plus.tools.benchmark import build_model, count_flops
from internet_plus.tools.timing import matmul_gflops

STEPS = (
    "as built",
    "+ freed memory kept",
    "+ BN folded, branches merged, channels-last",
    "+ Last Conv's stride moved into IR13",
    "+ first deconv as GEMM",
)


def _time(net: torch.nn.Module, images: torch.Tensor, repeats: int) -> tuple[float, float]:
    with torch.inference_mode():
        start = time.perf_counter()
        net(images)
        first = time.perf_counter() - start
        net(images)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            net(images)
            times.append(time.perf_counter() - start)
    return images.shape[0] / statistics.median(times), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backbones", default="internet_plus,resnet50")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    args = parser.parse_args()
    cpu = torch.device("cpu")
    rate = matmul_gflops(cpu, 2048, 5)
    print(f"matmul {rate:.1f} GFLOP/s, {torch.get_num_threads()} threads, batch {args.batch_size}")
    models = {}
    for name in args.backbones.split(","):
        torch.manual_seed(0)
        models[name] = build_model(name, 256).eval()
    images = torch.rand(args.batch_size, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    steps = [
        (STEPS[0], lambda m: m),
        (STEPS[1], lambda m: m),
        (STEPS[2], lambda m: optimize_for_inference(m, hoist_strides=False)),
        (STEPS[3], lambda m: optimize_for_inference(m)),
        (STEPS[4], lambda m: optimize_for_inference(m, before_compile=gemm_first_deconvolutions)),
    ]
    if not args.no_compile:
        steps.append(
            (
                "+ torch.compile (freezing)",
                lambda m: optimize_for_inference(m, compile=True, before_compile=gemm_first_deconvolutions),
            )
        )
    print(f"{'step':48s} " + " ".join(f"{n:>26s}" for n in models))
    for label, make in steps:
        if label == STEPS[1]:
            keep_freed_memory()
        cells = []
        for model in models.values():
            bound = rate / (count_flops(model, 256, cpu)["model"] / 1e9)
            speed, first = _time(make(model), images, args.repeats)
            cells.append(f"{speed:6.2f} img/s {speed / bound:4.0%} ({first:4.1f} s)")
        print(f"{label:48s} " + " ".join(f"{c:>26s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
