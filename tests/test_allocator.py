"""``keep_freed_memory``: freed memory is reused without new page faults (and results do not change)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

#: Run a 1×1 convolution with a 32 MiB output 4 times (as inference does with PoseNet's volumes), then count the page
#: faults of the 5th pass.
PROBE = """
import resource, sys, torch
if sys.argv[1] == "keep":
    from internet_plus.utils.allocator import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()  # applied, and idempotent
torch.manual_seed(0)
conv, x = torch.nn.Conv2d(64, 256, 1), torch.randn(8, 64, 64, 64)
with torch.inference_mode():
    for _ in range(4):
        conv(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = conv(x)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, float(y.double().sum()))
"""


def _faults(mode: str) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    faults, total = out.split()
    return int(faults), float(total)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_kept_memory_is_reused_without_page_faults() -> None:
    default_faults, default_sum = _faults("default")
    kept_faults, kept_sum = _faults("keep")
    assert default_faults > 8_000  # 32 MiB of 4 KiB pages mapped anew
    assert kept_faults < 1_000
    assert kept_sum == default_sum  # the same result
