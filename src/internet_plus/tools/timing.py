"""Timing: warm-up and timed runs with CUDA synchronised, the machine's name and its float32 matmul rate.

What every measurement of the benchmark (paper Tables 3 and 4), the GPU check and the scripts of
``experiments/performance`` times through: ``warmup`` untimed runs, then ``repeats`` timed ones, each ended by a CUDA
synchronisation on a GPU so that a run's time includes its kernels. The matmul rate (GFLOP/s of one float32 matrix
product) is the machine's reference speed: a model's FLOP-bound throughput is that rate divided by its FLOPs per image.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["cpu_name", "matmul_gflops", "sync", "timed_runs"]


def sync(device: torch.device) -> None:
    """Wait for the device's queued kernels (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_runs(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; the seconds of each timed run."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` where that is unavailable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def matmul_gflops(device: torch.device, size: int, repeats: int, warmup: int = 1) -> float:
    """The machine's float32 matmul rate: GFLOP/s of a ``size``² @ ``size``² product (2·n³ FLOPs), median of runs."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=g).to(device)
    b = torch.rand(size, size, generator=g).to(device)
    times = timed_runs(lambda: torch.mm(a, b), device, max(warmup, 1), max(repeats, 1))
    return 2 * size**3 / statistics.median(times) / 1e9
