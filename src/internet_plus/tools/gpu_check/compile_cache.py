"""The check's compilations carried from one run to the next: ``--compile-cache DIR``.

Most of the check's time on a fresh machine is ``torch.compile``'s: Inductor generating and compiling Triton kernels
for each graph (about 24 s per inference shape on an H200, more for a training graph), and the compile-heavy sections
(``inference``, ``compiled_training``) alone exceed the 6-minute goal that way. On the same machine a second run is
much faster, because Inductor keeps its compiled graphs in a local cache directory; a fresh machine (a cluster node, a
lent GPU) starts cold every time. PyTorch can serialise what its caches served or gained in this process
(``torch.compiler.save_cache_artifacts``: compiled graphs, AOTAutograd entries, autotuning results) and load it into
another process's caches (``torch.compiler.load_cache_artifacts``); a later compilation of the same graph, with the
same PyTorch, Triton and GPU, is then a cache hit.

With ``--compile-cache DIR`` the check loads every ``*.bin`` file in ``DIR`` at its start and, after every section,
writes what this run compiled or used to one file of its own in ``DIR`` (``compile_cache.bin``, or
``compile_cache-2.bin`` … when that exists), atomically, and only once it holds something the loaded files did not:
files of earlier runs are never rewritten, so a run of a few sections does not lose the others' entries. The report
records the files loaded and written and Inductor's cache hits and misses, so a run says whether the cache served. A
file from another PyTorch or GPU is harmless: its entries do not match.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch._dynamo.utils import counters

from internet_plus.tools.gpu_check.helpers import free_path

__all__ = ["CompileCache"]


def _keys(info: Any) -> set[tuple[str, str]]:
    """(kind, key) of every entry of a ``CacheInfo`` (kinds: ``inductor``, ``aot_autograd``, ``autotune`` …)."""
    return {(kind, key) for kind, keys in getattr(info, "artifacts", {}).items() for key in keys}


def _counts(keys: set[tuple[str, str]]) -> dict[str, int]:
    return dict(Counter(kind for kind, _ in keys))


class CompileCache:
    """Loads a folder's cache files into this process and saves this run's into a new one (the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loaded: set[tuple[str, str]] = set()
        self.files_loaded: list[str] = []
        self.file: Path | None = None  # this run's own file, chosen at its first write
        self.saved: set[tuple[str, str]] = set()

    def load(self) -> None:
        """Load every ``*.bin`` file of the folder (none yet: the run starts cold)."""
        for path in sorted(self.folder.glob("*.bin")) if self.folder.is_dir() else []:
            self.loaded |= _keys(torch.compiler.load_cache_artifacts(path.read_bytes()))
            self.files_loaded.append(path.name)

    def save(self) -> None:
        """Write what this process compiled or used to this run's file, if it holds an entry the loaded files lack."""
        saved = torch.compiler.save_cache_artifacts()
        if saved is None or not saved[0]:
            return
        data, info = saved
        keys = _keys(info)
        if not keys - self.loaded or keys == self.saved:
            return  # nothing new since the start, or since this run's last write
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.file is None:
            self.file = free_path(self.folder / "compile_cache.bin")
        tmp = self.file.with_name(self.file.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.file)
        self.saved = keys

    def summary(self) -> dict[str, Any]:
        """For the report: the files loaded and written, the entries of each, Inductor's cache hits and misses."""
        inductor = counters["inductor"]
        return {
            "folder": str(self.folder),
            "files_loaded": self.files_loaded,
            "loaded": _counts(self.loaded),
            "file_written": self.file.name if self.file is not None else None,
            "saved": _counts(self.saved),
            "new": _counts(self.saved - self.loaded),
            **{key: int(inductor[key]) for key in ("fxgraph_cache_hit", "fxgraph_cache_miss")},
        }
