"""The GPU check's ``ddp`` section: the DDP code path in two child processes, and their judging.

The section runs two processes one after the other: the check itself with ``--section ddp`` (:func:`ddp_child`:
``strategy=ddp`` on one device, synchronized BatchNorm, the per-process batch, fit + test), then ``python train.py
trainer=ddp`` as a researcher runs it (2 devices where the machine has them). Most of their time is starting Python,
importing, and setting up the process group, not GPU work, and they only check correctness. So when the sections
before ``ddp`` are all correctness sections too (:data:`OVERLAPPABLE`: the default order's ``training_matrix`` and
``loss_parity``), :class:`DdpProcesses` starts them in a background thread when the check starts and the section
collects their outcome at its turn; the timed sections (inference, training speed, compiled training, profile, data
wait) never run beside them. The synthetic data set they share with the training matrix is generated first, in the
check's own process, so that no two processes write it at once.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from internet_plus.tools.gpu_check.helpers import (
    StepRecorder,
    SyncBatchNormProbe,
    make_module,
    make_trainer,
    shared_datamodule,
)
from internet_plus.tools.gpu_check.settings import ROOT, Report, Settings

#: Sections that time nothing: the DDP child processes may run beside them without disturbing a measurement.
OVERLAPPABLE = ("training_matrix", "loss_parity")
#: Each child process is killed after this many seconds (the DDP child, then train.py).
TIMEOUT_S = {"child": 300, "train_py": 400}


def ddp_child(settings: Settings, data_dir: Path) -> dict[str, Any]:
    """Runs in a child process: ``strategy=ddp`` on one device with synchronized BN, fit + test."""
    probe = SyncBatchNormProbe()
    recorder = StepRecorder()
    torch.manual_seed(0)
    model = make_module("internet_plus", settings.input_size)
    datamodule = shared_datamodule(settings, data_dir, augment=True)
    precision = "16-mixed" if settings.device == "cuda" else "32-true"
    trainer = make_trainer(
        settings,
        precision,
        [probe, recorder],
        strategy="ddp",
        sync_batchnorm=settings.device == "cuda",  # PyTorch's SyncBatchNorm runs on CUDA only
        use_distributed_sampler=False,
        max_steps=settings.ddp_steps,
        benchmark=False,  # a correctness run: no time spent autotuning convolutions
    )
    trainer.fit(model, datamodule=datamodule)
    trainer.test(model, datamodule=datamodule, verbose=False)
    import torch.distributed as dist

    return {
        "strategy": type(trainer.strategy).__name__,
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "world_size": trainer.world_size,
        "precision": precision,
        "batchnorm": probe.counts,
        "global_batch": datamodule.batch_size,
        "per_process_batch": datamodule.per_device_batch_size,
        "test_samples_this_process": len(datamodule.test_set),
        "losses": recorder.losses,
        "test": {k: v for k, v in model.test_results.items() if not isinstance(v, list)},
    }


def train_py_overrides(settings: Settings, data_dir: Path) -> tuple[list[str], str, int]:
    """``train.py``'s overrides for the section: (overrides, trainer config, devices)."""
    gpus = torch.cuda.device_count() if settings.device == "cuda" else 0
    trainer_cfg = "ddp" if settings.device == "cuda" else "ddp_cpu"
    devices = 2 if gpus >= 2 else 1
    overrides = [
        f"trainer={trainer_cfg}",
        f"trainer.devices={devices}",
        "trainer.max_epochs=1",
        f"+trainer.limit_train_batches={settings.ddp_steps}",
        "+trainer.limit_val_batches=2",
        "+trainer.limit_test_batches=2",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "dataset=synthetic",
        f"data.root={data_dir / 'matrix'}",
        f"data.num_train={settings.train_samples}",
        f"data.num_eval={max(8, settings.batch_size)}",
        f"data.batch_size={settings.batch_size * devices}",
        f"data.input_size={settings.input_size}",
        "data.val_fraction=0.25",
        "callbacks.step_checkpoint=null",
        "trainer.benchmark=false",  # a correctness run, as the in-process one
        f"hydra.run.dir={data_dir / 'train_py_ddp'}",
    ]
    return overrides, trainer_cfg, devices


def in_background(wanted: list[str]) -> bool:
    """Whether the DDP processes start with the check: ``ddp`` is asked for after one or more sections and every
    section before it is in :data:`OVERLAPPABLE`."""
    if "ddp" not in wanted:
        return False
    before = wanted[: wanted.index("ddp")]
    return bool(before) and all(name in OVERLAPPABLE for name in before)


class DdpProcesses:
    """The section's two child processes, one after the other, in the foreground (:meth:`run`) or in a background
    thread (:meth:`start`, then :meth:`wait`). :meth:`stop` kills the one running (the check's ``finally``)."""

    def __init__(self, settings: Settings, data_dir: Path, script_args: list[str]) -> None:
        self.data_dir = data_dir
        overrides, self.trainer_cfg, self.devices = train_py_overrides(settings, data_dir)
        self.commands = {
            "child": [sys.executable, "-m", "internet_plus.tools.gpu_check", "--section", "ddp"]
            + ["--data-dir", str(data_dir), *script_args],
            "train_py": [sys.executable, "train.py", *overrides],
        }
        self.outcome: dict[str, dict[str, Any]] = {}
        self._thread: threading.Thread | None = None
        self._running: subprocess.Popen[str] | None = None
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def background(self) -> bool:
        """Whether :meth:`start` ran them in a background thread."""
        return self._thread is not None

    def _run_one(self, name: str) -> None:
        start = time.perf_counter()
        with self._lock:
            if self._stopped:
                self.outcome[name] = {"exit": None, "tail": "not started: the check stopped", "seconds": 0.0}
                return
            proc = subprocess.Popen(
                self.commands[name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
            )
            self._running = proc
        try:
            output, _ = proc.communicate(timeout=TIMEOUT_S[name])
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            timed_out = True
        with self._lock:
            self._running = None
        tail = (f"killed after {TIMEOUT_S[name]} s\n" if timed_out else "") + (output or "")[-3000:]
        self.outcome[name] = {"exit": proc.returncode, "tail": tail, "seconds": time.perf_counter() - start}

    def run(self) -> dict[str, dict[str, Any]]:
        """Run both processes now, one after the other; returns :attr:`outcome`."""
        for name in self.commands:
            self._run_one(name)
        return self.outcome

    def start(self) -> None:
        """Run both in a background thread (daemon: it never keeps a failing check alive)."""
        self._thread = threading.Thread(target=self.run, name="gpu-check-ddp", daemon=True)
        self._thread.start()

    def wait(self) -> dict[str, dict[str, Any]]:
        """The outcome: waits for the background thread, or runs both now when none was started."""
        if self._thread is None:
            return self.run()
        self._thread.join()
        return self.outcome

    def stop(self) -> None:
        """Kill the running process and start no other (nothing to do when both have ended)."""
        with self._lock:
            self._stopped = True
            if self._running is not None and self._running.poll() is None:
                self._running.kill()
        if self._thread is not None:
            self._thread.join(timeout=30)


def ddp_section(settings: Settings, report: Report, processes: DdpProcesses) -> dict[str, Any]:
    """Section 3: judge the DDP child, then ``train.py trainer=ddp`` (module docstring)."""
    outcome = processes.wait()
    child, train = outcome["child"], outcome["train_py"]
    result: dict[str, Any] = {
        "background": processes.background,
        "child_seconds": child["seconds"],
        "train_py_seconds": train["seconds"],
    }
    child_json = processes.data_dir / "ddp_child.json"
    if child["exit"] != 0 or not child_json.exists():
        report.check("ddp", "strategy=ddp on one device", False, f"exit {child['exit']}: {child['tail']}")
        result.update(child_exit=child["exit"], child_tail=child["tail"])
    else:
        c = json.loads(child_json.read_text())
        result["in_process"] = c
        if settings.device == "cuda":
            bn = c["batchnorm"]
            report.check(
                "ddp",
                "sync_batchnorm converted every BatchNorm",
                bn.get("sync_batchnorm", 0) > 0 and bn.get("plain_batchnorm", 1) == 0,
                str(bn),
            )
        test = c["test"]
        report.check(
            "ddp",
            "DDP fit + test: finite losses and metrics",
            all(math.isfinite(v) for v in c["losses"]) and bool(test) and all(math.isfinite(v) for v in test.values()),
            f"{len(c['losses'])} steps, test/epe_mm {test.get('test/epe_mm')}",
        )
        report.check(
            "ddp",
            "per-process batch = global batch / world size",
            c["per_process_batch"] * c["world_size"] == c["global_batch"],
            f"{c['global_batch']} global, {c['per_process_batch']} per process, {c['world_size']} process(es)",
        )

    metrics_path = processes.data_dir / "train_py_ddp" / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    ok = train["exit"] == 0 and bool(scalars) and all(math.isfinite(v) for v in scalars.values())
    report.check(
        "ddp",
        f"python train.py trainer={processes.trainer_cfg} trainer.devices={processes.devices}",
        ok,
        f"exit {train['exit']}, test/epe_mm {scalars.get('test/epe_mm')}" + ("" if ok else f": {train['tail']}"),
    )
    result["train_py"] = {
        "command": " ".join(["python", *processes.commands["train_py"][1:]]),
        "exit": train["exit"],
        "devices": processes.devices,
        "metrics": scalars,
    }
    return result
