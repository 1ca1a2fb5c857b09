"""Memory meters: live tensor storage counted per ATen operator, and the peak memory of a step on CPU or CUDA.

:class:`TensorMemoryMeter` is a ``TorchDispatchMode``: after every ATen operator (autograd's backward ops included,
they run through the same dispatcher) it drops the storages that have died since the last operator
(``StorageWeakRef.expired``), adds the storages of the operator's outputs that it has not seen (each untyped storage
once, by identity, with its ``nbytes``; views and in-place results add nothing) and keeps the maximum of the sum.
The count is exact and deterministic at operator granularity: a kernel's internal scratch buffers (not tensors) are
not seen, and the peak is sampled at operator boundaries, where the outputs are alive together with the inputs. It
does not depend on the allocator (a resident set size would: with freed memory kept in the process it never comes
back down).

:class:`PeakMemory` is what the benchmark (paper Tables 3 and 4) reports: ``torch.cuda.max_memory_allocated`` on a
GPU, the meter's peak over one extra pass on the CPU. The heatmap loss's lean-vs-dense comparison
(:mod:`internet_plus.tools.loss_memory`) uses the meter directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from internet_plus.tools.timing import sync

__all__ = ["PeakMemory", "TensorMemoryMeter", "state_tensors"]


class TensorMemoryMeter(TorchDispatchMode):
    """Live tensor storage bytes and their peak, counted per ATen operator (see the module docstring).

    Storages that exist before the meter is entered are not counted unless registered with :meth:`track`; ``peak``
    is therefore the peak above the starting point (plus what was tracked).

    Attributes:
        current: bytes of the counted storages alive after the last operator.
        peak: the maximum of ``current`` since the meter was created.
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0

    def _release_dead(self) -> None:
        dead = [key for key, (ref, _) in self._live.items() if ref.expired()]
        for key in dead:
            self.current -= self._live.pop(key)[1]

    def track(self, *tensors: torch.Tensor) -> None:
        """Count the storages of ``tensors`` (e.g. inputs made before the meter was entered) from now on."""
        self._release_dead()
        for tensor in tensors:
            storage = tensor.untyped_storage()
            nbytes = int(storage.nbytes())
            if nbytes == 0:
                continue
            ref = StorageWeakRef(storage)
            if ref.cdata not in self._live:
                self._live[ref.cdata] = (ref, nbytes)
                self.current += nbytes
        self.peak = max(self.peak, self.current)

    def __torch_dispatch__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        self.track(*(t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)))
        return out


class PeakMemory:
    """Peak memory of the code run by :meth:`measure`, in MiB; ``method`` says how it is measured.

    CUDA: ``torch.cuda.max_memory_allocated`` above the starting allocation. CPU: the peak of live tensor storage
    bytes above the starting point, counted per ATen operator by :class:`TensorMemoryMeter` over one extra, untimed
    pass. (The resident set size would depend on the allocator: with freed memory kept in the process, ``--optimize``,
    it never comes back down, and a later model's peak would read as zero.) Compiled CPU code allocates its buffers
    outside the dispatcher, so there the peak is not measured (``None``).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated above the starting allocation"
        else:
            self.method = "CPU: peak of live tensor storage above the start (TensorMemoryMeter, one untimed pass)"

    def measure(
        self, fn: Callable[[], Any], compiled: bool = False, existing: Iterable[torch.Tensor] = ()
    ) -> float | None:
        """Run ``fn`` once more and return its peak memory in MiB (``None``: compiled code on the CPU).

        ``existing``: tensors alive before ``fn`` (the model's parameters and buffers, the optimiser's state). On the
        CPU they are part of the starting point, so that an operator returning a view of one (a weight reshaped for
        a matrix product) does not count its storage as new.
        """
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            fn()
            sync(self.device)
            return (torch.cuda.max_memory_allocated(self.device) - base) / 2**20
        if compiled:
            return None
        meter = TensorMemoryMeter()
        meter.track(*existing)
        start = meter.current
        meter.peak = start
        with meter:
            fn()
        return (meter.peak - start) / 2**20


def state_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> list[torch.Tensor]:
    """The tensors a step starts with: parameters, buffers, gradients and the optimiser's state."""
    tensors = [*model.parameters(), *model.buffers()]
    tensors += [p.grad for p in model.parameters() if p.grad is not None]
    if optimizer is not None:
        tensors += [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors
