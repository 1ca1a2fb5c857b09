"""InterNet+/InterNet speed ratios measured in pairs, robust to the machine's drift (performance targets 1b and 4b).

    python -m internet_plus.tools.paired_ratios [--batch-sizes 1,8,32] [--pairs 15] [--train-pairs 9]
                                                    [--eager] [--json FILE]

``python -m internet_plus.tools.benchmark`` measures one model after the other. On a shared virtual machine the speed
drifts by several per cent over minutes (the matmul rate here moves between 370 and 417 GFLOP/s), and that drift
lands in the ratio. This command builds both models first and then alternates them: each timed pass of InterNet+ is
followed by one of InterNet (ResNet-50 + PoseNet), so that both see the same machine state, and the ratio is taken
per pair. Every timed pass comes right after an untimed pass of the same model, so that each is timed warm. It
reports the median pair ratio with its range and each model's median speed.

* Inference: the rewritten copy of ``models/inference.py`` (BN folded, PoseNet's branches merged, channels-last,
  and ``accel=auto``'s first deconvolution as GEMM), compiled by ``torch.compile`` with freezing unless
  ``--eager``; eval mode, ``torch.inference_mode()``; per batch size, two untimed passes of each model
  (compilation) before the pairs.
* Training: one step as ``train.py`` runs it (forward, InterNet's loss, backward, AdamW step), fp32, batch 8,
  two untimed steps of each model before the pairs.

Freed memory is kept in the process (``utils/allocator.py``), as in training and ``--optimize``. On a machine with a
GPU everything runs there (CUDA-synchronised timing); the machine's name is in the report.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from internet_plus.accel import accelerate_inference, keep_freed_memory
from internet_plus.models.inference import optimize_for_inference
from internet_plus.tools.benchmark import build_model, synthetic_batch, training_step_fn
from internet_plus.tools.timing import cpu_name, matmul_gflops
from internet_plus.utils.reports import write_json_report

NAMES = ("internet_plus", "resnet50")


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def paired(fast: Callable[[], Any], slow: Callable[[], Any], pairs: int, warmup: int) -> dict[str, Any]:
    """Alternate ``fast`` and ``slow``; per pair the ratio slow time / fast time (InterNet+'s speed over InterNet's).

    Each timed pass follows an untimed one of the same model: strictly alternating passes would time each model with
    the other one's weights in the caches, which no steady-state use sees (measured: InterNet+ at batch 8 then loses
    4 %, InterNet nothing).
    """
    for _ in range(warmup):
        fast()
        slow()
    fast_times, slow_times = [], []
    for _ in range(pairs):
        fast()  # re-warm the caches with this model's weights and buffers after the other model's pass
        fast_times.append(_seconds(fast))
        slow()
        slow_times.append(_seconds(slow))
    ratios = sorted(s / f for f, s in zip(fast_times, slow_times, strict=True))
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_min": ratios[0],
        "ratio_max": ratios[-1],
        "internet_plus_median_s": statistics.median(fast_times),
        "internet_median_s": statistics.median(slow_times),
        "ratios": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--pairs", type=int, default=15, help="timed pairs per inference batch size")
    parser.add_argument("--train-pairs", type=int, default=9, help="timed training-step pairs (0: skip training)")
    parser.add_argument("--eager", action="store_true", help="inference without torch.compile")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    keep_freed_memory()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report: dict[str, Any] = {
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "matmul_gflops_before": matmul_gflops(device, 2048, 5),
        },
        "config": {"compiled": not args.eager, "pairs": args.pairs, "train_pairs": args.train_pairs},
        "inference": {},
    }
    models = {}
    for name in NAMES:
        torch.manual_seed(0)
        models[name] = build_model(name, 256).to(device)
    accel = partial(accelerate_inference, mode="auto")  # as predict.py: first deconvolution as a GEMM on the CPU
    fast_copies = {
        name: optimize_for_inference(m, compile=not args.eager, before_compile=accel) for name, m in models.items()
    }
    print(f"{'':24s} {'ratio (median, min-max)':>28s} {'InterNet+ img/s':>16s} {'InterNet img/s':>15s}")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        images = torch.rand(batch_size, 3, 256, 256, generator=torch.Generator().manual_seed(0)).to(device)

        def infer(net: torch.nn.Module, images: torch.Tensor = images) -> Callable[[], None]:
            def run() -> None:
                with torch.inference_mode():
                    net(images)

            return run

        result = paired(infer(fast_copies[NAMES[0]]), infer(fast_copies[NAMES[1]]), args.pairs, warmup=2)
        report["inference"][str(batch_size)] = result
        print(
            f"inference, batch {batch_size:<8d} {result['ratio_median']:10.3f} ({result['ratio_min']:.3f}-"
            f"{result['ratio_max']:.3f}) {batch_size / result['internet_plus_median_s']:16.2f} "
            f"{batch_size / result['internet_median_s']:15.2f}",
            flush=True,
        )
    del fast_copies
    if args.train_pairs > 0:
        batch = synthetic_batch(8, 256, device)
        steps = [
            training_step_fn(m.train(), batch, torch.optim.AdamW(m.parameters(), lr=1e-4))
            for m in (models[name] for name in NAMES)
        ]
        result = paired(steps[0], steps[1], args.train_pairs, warmup=2)
        report["train_fp32_batch8"] = result
        print(
            f"{'training, batch 8':24s} {result['ratio_median']:10.3f} ({result['ratio_min']:.3f}-"
            f"{result['ratio_max']:.3f}) {8 / result['internet_plus_median_s']:16.2f} "
            f"{8 / result['internet_median_s']:15.2f}"
        )
    report["machine"]["matmul_gflops_after"] = matmul_gflops(device, 2048, 5)
    if write_json_report(args.json, report) is not None:
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
