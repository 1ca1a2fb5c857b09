"""The GPU check's Table 3 section: feature-extractor size and the training step's time and peak memory."""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from internet_plus.models.summary import count_parameters, mebibytes
from internet_plus.tools.benchmark import (
    build_model,
    synthetic_batch,
    training_step_fn,
)
from internet_plus.tools.gpu_check.helpers import step_peak_memory_mib
from internet_plus.tools.gpu_check.settings import AUTOCAST, Report, Settings
from internet_plus.tools.timing import timed_runs


def training_speed(settings: Settings, report: Report) -> dict[str, Any]:
    """Section 5: Table 3 — parameters, MiB, s/iteration per precision at the paper's batch, peak memory."""
    device = torch.device(settings.device)
    results: dict[str, Any] = {}
    for backbone in settings.backbones:
        torch.manual_seed(0)
        model = build_model(backbone, settings.input_size).to(device).train()
        fe_params = count_parameters(model.backbone)
        entry: dict[str, Any] = {
            "feature_extractor_params": fe_params,
            "feature_extractor_mib": mebibytes(fe_params),
            "model_params": count_parameters(model),
            "precisions": {},
        }
        batch = synthetic_batch(settings.batch_size, settings.input_size, device)
        for precision in settings.precisions:
            if precision == "16-mixed" and device.type != "cuda":
                continue
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
            losses: list[float] = []
            step = training_step_fn(model, batch, optimizer, amp_dtype=AUTOCAST[precision], losses=losses)
            times = timed_runs(step, device, settings.warmup, settings.repeats)
            peak = step_peak_memory_mib(step, device)
            entry["precisions"][precision] = {
                "time_per_iteration_s": statistics.median(times),
                "images_per_s": settings.batch_size / statistics.median(times),
                "peak_memory_mib": peak,
                "losses_finite": all(math.isfinite(v) for v in losses),
            }
            report.check(
                "training_speed", f"{backbone} {precision}: finite losses", all(math.isfinite(v) for v in losses)
            )
            del optimizer
        results[backbone] = entry
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"batch_size": settings.batch_size, "results": results}
