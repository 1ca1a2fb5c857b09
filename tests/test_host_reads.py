"""The training loop reads nothing from the device between logging steps, and the optimiser is fused on CUDA.

A host read of a device tensor (``.item()``, ``bool(t)``, ``float(t)``, ``.tolist()`` …) makes the CPU wait for the
GPU. On a CPU these reads are free, but they are the same calls, so they can be counted here: ``train.py``'s loop,
with its default callbacks and the progress bar on, may read only at Lightning's logging steps (and the first step of
an epoch). The reads of the progress bar's own value, a host copy taken at those steps, are not device reads.
"""

from __future__ import annotations

import collections
import traceback
from pathlib import Path

import pytest
import pytorch_lightning as L
import torch
from conftest import compose_config, tiny_train_overrides

from internet_plus.finite_loss import NonFiniteLossWatch
from internet_plus.optim import with_fused_default

READS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "nonzero", "__getitem__")
#: Lightning converts every progress-bar value to a number after each step; the bar's value is a host copy.
PROGRESS_BAR_CONVERSION = "convert_tensors_to_scalars"
#: The data loader's own reads (its seeds) are of CPU tensors on any machine.
DATA_LOADER = "torch/utils/data/"


def _boolean_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _count_reads(monkeypatch: pytest.MonkeyPatch, on_read) -> None:
    """Call ``on_read(name)`` at every host read of a tensor (the methods of ``READS``; indexing only with a mask)."""

    def counting(name: str):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            if name != "__getitem__" or _boolean_index(args[0]):  # a boolean mask's indexing waits for its count
                on_read(name)
            return original(self, *args, **kwargs)

        return read

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))


class _StepWindow(L.Callback):
    """Which training step is running: from one step's start to the next, or to the validation at the epoch's end
    (the logging after a step included)."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.steps: list[int] = []
        self.progress_bar_keys: set[str] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: D102
        self.step = trainer.global_step
        self.steps.append(self.step)

    def on_validation_start(self, trainer, pl_module) -> None:  # noqa: D102
        self.progress_bar_keys = set(trainer.progress_bar_metrics)  # the training steps' values
        self.step = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: D102
        self.step = None


def test_the_training_loop_reads_the_device_only_at_logging_steps(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from internet_plus.tasks import train as train_task

    window = _StepWindow()
    reads: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)

    def on_read(name: str) -> None:
        if window.step is None:
            return
        stack = traceback.extract_stack()[:-2]
        if not any(f.name == PROGRESS_BAR_CONVERSION or DATA_LOADER in f.filename for f in stack):
            where = next((f for f in reversed(stack) if "internet_plus" in f.filename), stack[-1])
            reads[window.step][f"{name} in {Path(where.filename).name}:{where.lineno}"] += 1

    _count_reads(monkeypatch, on_read)
    original_callbacks = train_task.instantiate_callbacks
    monkeypatch.setattr(train_task, "instantiate_callbacks", lambda node: [*original_callbacks(node), window])
    overrides = tiny_train_overrides(
        synthetic_root,
        tmp_path,
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=4",
        "trainer.enable_progress_bar=true",
        "data.num_workers=1",  # the data pipeline's own reads happen in the worker process
        "+model.optimizer.fused=true",  # what the optimiser is on CUDA (optim.py); foreach reads its step count
        "test=false",
    )
    train_task.run(compose_config("train", overrides, tmp_path / "run"))

    assert window.steps == list(range(15))  # 60 training samples (4 held out for validation), batch 4
    logging_steps = {0} | {k for k in window.steps if (k + 1) % 4 == 0}
    read_steps = {step for step, counter in reads.items() if counter}
    assert read_steps - logging_steps == set(), {s: dict(reads[s]) for s in sorted(read_steps - logging_steps)}
    assert 3 in read_steps and 7 in read_steps  # the logging steps do read: the non-finite check and the bar's copy
    assert window.progress_bar_keys == {"loss"}  # the only value Lightning reads after every step: a host copy


def test_the_non_finite_loss_watch_reads_nothing_until_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = NonFiniteLossWatch()
    read_count = collections.Counter()
    _count_reads(monkeypatch, lambda name: read_count.update([name]))
    for step in range(10):
        value = float("nan") if step == 5 else float("inf") if step == 7 else 1.0 + step
        watch.update(
            {"loss": torch.tensor(value), "heatmap": torch.tensor(0.5 * step)}, step, epoch=2, batch_idx=step + 1
        )
    assert not read_count
    monkeypatch.undo()
    with pytest.raises(FloatingPointError) as err:
        watch.raise_if_seen(now=9)
    assert str(err.value) == (
        "non-finite training loss at global step 5 (epoch 2, batch 6): loss=nan, heatmap=2.5; found at global step 9"
    )
    clean = NonFiniteLossWatch()
    clean.raise_if_seen()  # nothing recorded yet
    clean.update({"loss": torch.tensor(1.0)}, 0, 0, 0)
    clean.raise_if_seen(0)
    with pytest.raises(KeyError, match="no 'loss' term"):
        clean.update({"total": torch.tensor(1.0)}, 1, 0, 1)


@pytest.mark.parametrize(
    ("node", "devices", "clipping", "fused"),
    [
        ({"_target_": "torch.optim.AdamW", "lr": 1e-4}, {"cuda"}, False, True),
        ({"_target_": "torch.optim.Adam", "lr": 1e-4}, {"cuda"}, False, True),
        ({"_target_": "torch.optim.AdamW", "lr": 1e-4}, {"cpu"}, False, None),  # PyTorch's choice off CUDA
        ({"_target_": "torch.optim.AdamW", "lr": 1e-4}, {"cuda", "cpu"}, False, None),
        ({"_target_": "torch.optim.AdamW", "lr": 1e-4}, {"cuda"}, True, None),  # clipping needs unscaled gradients
        ({"_target_": "torch.optim.AdamW", "fused": False}, {"cuda"}, False, False),  # the config's choice stands
        ({"_target_": "torch.optim.AdamW", "foreach": True}, {"cuda"}, False, None),
        ({"_target_": "torch.optim.RMSprop", "lr": 1e-4}, {"cuda"}, False, None),  # no fused implementation
    ],
)
def test_the_optimiser_is_fused_on_cuda_unless_the_config_says_otherwise(node, devices, clipping, fused) -> None:
    out = with_fused_default(node, devices, gradient_clipping=clipping)
    assert out.get("fused") == fused
    assert {k: v for k, v in out.items() if k != "fused"} == {k: v for k, v in node.items() if k != "fused"}
    assert "fused" not in node or node["fused"] is False  # the config node itself is not changed
