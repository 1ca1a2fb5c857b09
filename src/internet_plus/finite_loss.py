"""The non-finite training loss check, without a host synchronisation at every step.

A training step must stop with ``FloatingPointError`` when its loss is NaN or infinite, naming the step and the loss
terms. Reading the loss on the host at every step (``if not torch.isfinite(loss)``) makes the CPU wait for the GPU in
the middle of the step, after the forward pass and before the backward: the GPU then idles while the host launches the
backward's first kernels, and a step made of many small kernels (InterNet+'s) loses the overlap of launching and
computing that keeps the GPU busy. :class:`NonFiniteLossWatch` keeps the first non-finite step on the device instead
(a few element-wise operations per step, no read), and :meth:`NonFiniteLossWatch.raise_if_seen` reads it when the
host reads the device anyway:

* at Lightning's logging steps (every ``trainer.log_every_n_steps``, when the logged values are read),
* before any checkpoint is saved (so that no checkpoint of a run that met a non-finite loss is written), and
* when training ends.

A non-finite loss is therefore reported at most ``log_every_n_steps`` steps late, always with the step where it first
happened; the steps in between ran on non-finite weights (under 32-bit training) or were skipped by the GradScaler
(16-bit mixed precision) and are lost anyway. No checkpoint written after that step reaches the disk:
``HandPoseModule.on_save_checkpoint`` checks first, and :class:`~internet_plus.callbacks.FiniteCheckpoints` holds each
save back until a later loss came out finite.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["NonFiniteLossWatch"]


class NonFiniteLossWatch:
    """Remembers, on the loss's device, the first global step whose total loss was not finite, and every loss term's
    value at that step. :meth:`update` only queues device operations; :meth:`raise_if_seen` reads (and synchronises).

    The total loss is the term named ``total_key``.
    """

    def __init__(self, total_key: str = "loss") -> None:
        self.total_key = total_key
        self._names: tuple[str, ...] = ()
        self._first: list[torch.Tensor] | None = None  # global step, epoch, batch of that step (step -1: none yet)
        self._values: torch.Tensor | None = None  # the terms at that step

    def update(self, losses: Mapping[str, torch.Tensor], step: int, epoch: int, batch_idx: int) -> None:
        """Record one training step's loss terms (no host read)."""
        names = tuple(losses)
        if self.total_key not in names:
            raise KeyError(f"the losses have no {self.total_key!r} term: {list(names)}")
        terms = torch.stack([value.detach().float().reshape(()) for value in losses.values()])
        if self._first is None or names != self._names:
            self._names = names
            self._first = [torch.full((), -1, dtype=torch.long, device=terms.device) for _ in range(3)]
            self._values = torch.zeros_like(terms)
        first_seen = ~torch.isfinite(terms[names.index(self.total_key)]) & (self._first[0] < 0)
        # Python numbers as torch.where's operands: kernel arguments, no host-to-device copy.
        position = (step, epoch, batch_idx)
        self._first = [torch.where(first_seen, n, old) for n, old in zip(position, self._first, strict=True)]
        self._values = torch.where(first_seen, terms, self._values)

    def raise_if_seen(self, now: int | None = None) -> None:
        """Raise ``FloatingPointError`` if a recorded step's total loss was not finite, naming the first such step,
        its epoch and batch, and the value of each term (one host read); ``now``, the current global step, is named
        too when it is later."""
        if self._first is None:
            return
        step, epoch, batch = torch.stack(self._first).tolist()  # the host read: waits for the queued steps
        if step < 0:
            return
        values = self._values.tolist()
        terms = ", ".join(f"{name}={value:.4g}" for name, value in zip(self._names, values, strict=True))
        found = f"; found at global step {now}" if now is not None and now > step else ""
        raise FloatingPointError(
            f"non-finite training loss at global step {step} (epoch {epoch}, batch {batch}): {terms}{found}"
        )
