"""The GPU check's training sections: the AMP training matrix, the lean/dense loss parity, the DDP path."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from internet_plus.tools.benchmark import (
    autocast,
    build_model,
    synthetic_batch,
)
from internet_plus.tools.gpu_check.helpers import (
    StepRecorder,
    SyncBatchNormProbe,
    loss_trend,
    make_module,
    make_trainer,
    max_consecutive,
    quiet_lightning,
    relative_error,
    skipped_steps,
    synthetic_datamodule,
)
from internet_plus.tools.gpu_check.settings import (
    LOSS_RTOL,
    MAX_SKIP_RUN,
    MAX_SKIPPED_STEPS,
    ROOT,
    Budget,
    Report,
    Settings,
)


# ---------------------------------------------------------------------------------------------------- sections
def training_matrix(settings: Settings, report: Report, data_dir: Path, budget: Budget) -> dict[str, Any]:
    """Section 1 (module docstring)."""
    runs: list[dict[str, Any]] = []
    combos = [(b, p, False) for b in settings.backbones for p in settings.precisions]
    amp = "16-mixed" if "16-mixed" in settings.precisions else settings.precisions[-1]
    combos += [(b, amp, True) for b in settings.channels_last_models]
    root = data_dir / "matrix"
    workers = min(4, os.cpu_count() or 1)
    for backbone, precision, channels_last in combos:
        name = f"{backbone} {precision}{' channels-last' if channels_last else ''}"
        if budget.left() < 0:
            runs.append({"backbone": backbone, "precision": precision, "channels_last": channels_last, "skipped": True})
            report.check("training_matrix", name, False, "not run: time budget spent")
            continue
        torch.manual_seed(0)
        model = make_module(backbone, settings.input_size, channels_last)
        recorder = StepRecorder()
        datamodule = synthetic_datamodule(root, settings, settings.train_samples, augment=False, workers=workers)
        with quiet_lightning():
            trainer = make_trainer(settings, precision, [recorder], benchmark=False)  # a correctness run
            start = time.perf_counter()
            trainer.fit(model, datamodule=datamodule)
            fit_s = time.perf_counter() - start
        trend = loss_trend(recorder.losses)
        skips = skipped_steps(recorder.scales)
        longest_run = max_consecutive(skips)
        run = {
            "backbone": backbone,
            "precision": precision,
            "channels_last": channels_last,
            "steps": len(recorder.losses),
            "losses": recorder.losses,
            **trend,
            "ms_per_step_median": 1e3 * statistics.median(recorder.step_s[len(recorder.step_s) // 3 :]),
            "first_step_s": recorder.step_s[0],
            "fit_s": fit_s,  # Trainer.fit from the call to its return: setup, loader workers, steps, teardown
            "amp_skipped_steps": skips,
            "amp_final_scale": recorder.scales[-1][1] if recorder.scales else None,
            "optimizer": type(trainer.optimizers[0]).__name__,
            "fused": bool(trainer.optimizers[0].defaults.get("fused")),
        }
        runs.append(run)
        ok = trend["finite"] and trend["falling"] and len(skips) <= MAX_SKIPPED_STEPS and longest_run < MAX_SKIP_RUN
        report.check(
            "training_matrix",
            name,
            ok,
            f"loss {trend['first_mean']:.4g} -> {trend['last_mean']:.4g}, finite {trend['finite']}, "
            f"AMP skipped steps {skips}",
        )
        print(f"  {name}: loss {trend['first_mean']:.4g} -> {trend['last_mean']:.4g}, skips {skips}", flush=True)
        del model, trainer
    return {"runs": runs}


def loss_parity(settings: Settings, report: Report) -> dict[str, Any]:
    """Section 2: lean vs dense heatmap loss (value and gradient) on 16-bit autocast heatmaps."""
    from internet_plus.models.losses import InterNetLoss

    device = torch.device(settings.device)
    torch.manual_seed(0)
    model = build_model("internet_plus", settings.input_size).to(device).train()
    batch = synthetic_batch(settings.batch_size, settings.input_size, device)
    lean = InterNetLoss(model.codec, dense_heatmap=False)
    dense = InterNetLoss(model.codec, dense_heatmap=True)
    results = {}
    dtypes = (
        {"float16": torch.float16, "bfloat16": torch.bfloat16}
        if device.type == "cuda"
        else {"bfloat16": torch.bfloat16}
    )
    for name, dtype in dtypes.items():
        with autocast(device, dtype):
            heatmaps = model(batch["image"])["heatmaps"].detach()
        values, grads = [], []
        for criterion in (lean, dense):
            h = heatmaps.clone().requires_grad_(True)
            with autocast(device, dtype):
                value = criterion.heatmap_loss(h, batch["joints_img"], batch["joint_valid"])
            value.backward()
            values.append(value.detach().double())
            grads.append(h.grad.detach())
        value_err = float((values[0] - values[1]).abs() / values[1].abs().clamp_min(1e-30))
        grad_err = relative_error(grads[0], grads[1])
        results[name] = {
            "heatmap_dtype": str(heatmaps.dtype),
            "lean": float(values[0]),
            "dense": float(values[1]),
            "value_rel_err": value_err,
            "grad_rel_err": grad_err,
            "grad_dtype": str(grads[0].dtype),
        }
        report.check(
            "loss_parity",
            f"lean == dense under {name} autocast",
            value_err <= LOSS_RTOL and grad_err <= LOSS_RTOL,
            f"value {value_err:.2e}, gradient {grad_err:.2e} (tolerance {LOSS_RTOL:g})",
        )
    return {"tolerance": LOSS_RTOL, "results": results}


def ddp_child(settings: Settings, data_dir: Path) -> dict[str, Any]:
    """Runs in a child process: ``strategy=ddp`` on one device with synchronized BN, fit + test (section 3)."""
    probe = SyncBatchNormProbe()
    recorder = StepRecorder()
    torch.manual_seed(0)
    model = make_module("internet_plus", settings.input_size)
    datamodule = synthetic_datamodule(
        data_dir / "matrix", settings, settings.train_samples, augment=True, workers=min(4, os.cpu_count() or 1)
    )
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


def ddp_section(settings: Settings, report: Report, data_dir: Path, script_args: list[str]) -> dict[str, Any]:
    """Section 3: the DDP child, then ``train.py trainer=ddp`` as a researcher runs it."""
    out = data_dir / "ddp_child.json"
    cmd = [sys.executable, "-m", "internet_plus.tools.gpu_check", "--section", "ddp", "--data-dir", str(data_dir)]
    cmd += script_args
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stdout + proc.stderr)[-3000:]
        report.check("ddp", "strategy=ddp on one device", False, f"exit {proc.returncode}: {tail}")
        return {"child_exit": proc.returncode, "child_tail": tail}
    child = json.loads(out.read_text())
    bn = child["batchnorm"]
    if settings.device == "cuda":
        report.check(
            "ddp",
            "sync_batchnorm converted every BatchNorm",
            bn.get("sync_batchnorm", 0) > 0 and bn.get("plain_batchnorm", 1) == 0,
            str(bn),
        )
    test = child["test"]
    report.check(
        "ddp",
        "DDP fit + test: finite losses and metrics",
        all(math.isfinite(v) for v in child["losses"]) and bool(test) and all(math.isfinite(v) for v in test.values()),
        f"{len(child['losses'])} steps, test/epe_mm {test.get('test/epe_mm')}",
    )
    report.check(
        "ddp",
        "per-process batch = global batch / world size",
        child["per_process_batch"] * child["world_size"] == child["global_batch"],
        f"{child['global_batch']} global, {child['per_process_batch']} per process, {child['world_size']} process(es)",
    )
    result: dict[str, Any] = {"in_process": child}

    # train.py itself, as a researcher runs it
    gpus = torch.cuda.device_count() if settings.device == "cuda" else 0
    trainer_cfg = "ddp" if settings.device == "cuda" else "ddp_cpu"
    devices = 2 if gpus >= 2 else 1
    run_dir = data_dir / "train_py_ddp"
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
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(
        [sys.executable, "train.py", *overrides], capture_output=True, text=True, timeout=400, cwd=ROOT
    )
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    ok = proc.returncode == 0 and bool(scalars) and all(math.isfinite(v) for v in scalars.values())
    report.check(
        "ddp",
        f"python train.py trainer={trainer_cfg} trainer.devices={devices}",
        ok,
        f"exit {proc.returncode}, test/epe_mm {scalars.get('test/epe_mm')}"
        + ("" if ok else f": {(proc.stdout + proc.stderr)[-2000:]}"),
    )
    result["train_py"] = {
        "command": "python train.py " + " ".join(overrides),
        "exit": proc.returncode,
        "devices": devices,
        "metrics": scalars,
    }
    return result
