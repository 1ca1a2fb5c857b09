"""The training step as ``train.py`` runs it: Lightning's loop, timed over many steps, for the ``compiled_training``
section.

The check's own loop (:func:`internet_plus.tools.benchmark.training_step_fn`) times one step at a time and
synchronises after each, so its s/iteration is a step's latency. ``train.py`` runs Lightning's loop: the
LightningModule's ``training_step`` (InterNet's loss, the logging, the non-finite check of
:mod:`internet_plus.finite_loss`), the precision plugin's GradScaler, the optimiser that
:mod:`internet_plus.optim` picks, callbacks and the host-to-device copy of each batch, and no synchronisation between
Lightning's logging steps. Here the same model and batch go through ``Trainer.fit``: the batch is pinned once on the
host and handed over at every step (as a loader with ``pin_memory`` does, without the loader's own cost, which the
``data_wait`` section measures), and the time from the first step after the warm-up to the end of training, the device
synchronised at both ends, is divided by the number of steps. Its ratio to the check's loop says what the loop around
the network costs: near 1, nothing; above 1, host work or synchronisations between the GPU's kernels.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import pytorch_lightning as L
import torch

from internet_plus.tools.gpu_check.helpers import _sync, make_trainer, quiet_lightning
from internet_plus.tools.gpu_check.settings import Settings

#: Lightning logs (and reads the device) every this many steps, as ``train.py``'s trainer config does.
LOG_EVERY_N_STEPS = 20


class _RepeatedBatch(torch.utils.data.IterableDataset):
    """The same (already collated, pinned) batch ``count`` times."""

    def __init__(self, batch: dict[str, torch.Tensor], count: int) -> None:
        self.batch, self.count = batch, count

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for _ in range(self.count):
            yield self.batch


class _LoopTimer(L.Callback):
    """Wall time from the start of step ``start_at`` to the end of training, the device synchronised at both ends."""

    def __init__(self, start_at: int) -> None:
        self.start_at = start_at
        self.start = self.end = 0.0
        self.steps = 0

    def on_train_batch_start(  # noqa: D102
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.steps += 1
        if trainer.global_step == self.start_at:
            _sync()
            self.start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        _sync()
        self.end = time.perf_counter()


def lightning_s_per_iteration(
    model: L.LightningModule,
    batch: dict[str, torch.Tensor],
    settings: Settings,
    precision: str,
    callbacks: Sequence[L.Callback] = (),
) -> float:
    """s/iteration of ``Trainer.fit`` on ``model`` (a ``HandPoseModule``, trained in place from its current weights)
    over ``batch`` repeated: ``settings.warmup`` untimed steps, then ``settings.lightning_steps`` timed ones."""
    host = {k: v.detach().to("cpu", copy=True) for k, v in batch.items()}
    if torch.cuda.is_available():
        host = {k: v.pin_memory() for k, v in host.items()}
    steps = settings.warmup + settings.lightning_steps
    loader = torch.utils.data.DataLoader(_RepeatedBatch(host, steps), batch_size=None)
    timer = _LoopTimer(settings.warmup)
    with quiet_lightning(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`")  # no validation here, on purpose
        trainer = make_trainer(
            settings, precision, [timer, *callbacks], max_steps=steps, log_every_n_steps=LOG_EVERY_N_STEPS
        )
        trainer.fit(model, train_dataloaders=loader)
    if timer.steps != steps:
        raise RuntimeError(f"Trainer.fit ran {timer.steps} steps, expected {steps}")
    return (timer.end - timer.start) / settings.lightning_steps
