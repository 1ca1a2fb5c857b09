"""The GPU check's training sections: the AMP training matrix and the lean/dense loss parity (the DDP path is in
:mod:`~internet_plus.tools.gpu_check.ddp`)."""

from __future__ import annotations

import statistics
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
    loss_trend,
    make_module,
    make_trainer,
    max_consecutive,
    quiet_lightning,
    relative_error,
    shared_datamodule,
    skipped_steps,
)
from internet_plus.tools.gpu_check.settings import (
    LOSS_RTOL,
    MAX_SKIP_RUN,
    MAX_SKIPPED_STEPS,
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
    for backbone, precision, channels_last in combos:
        name = f"{backbone} {precision}{' channels-last' if channels_last else ''}"
        if budget.left() < 0:
            runs.append({"backbone": backbone, "precision": precision, "channels_last": channels_last, "skipped": True})
            report.check("training_matrix", name, False, "not run: time budget spent")
            continue
        torch.manual_seed(0)
        model = make_module(backbone, settings.input_size, channels_last)
        recorder = StepRecorder()
        datamodule = shared_datamodule(settings, data_dir, augment=False)
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
