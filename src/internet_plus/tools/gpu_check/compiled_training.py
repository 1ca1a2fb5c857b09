"""The GPU check's ``compiled_training`` section: the training step of InterNet+ and InterNet eager, channels-last,
and compiled as ``train.py compile.enabled=true`` compiles it (:mod:`internet_plus.compile`, Inductor, with and
without CUDA graphs), at the paper's batch under the check's mixed precision. (Compiled with channels-last is left
out: each compiled variant costs a compilation of the training graph, tens of seconds on a GPU.)

Each variant starts from the same initial weights and trains on the same batch, so its first loss must equal the
eager one within the precision's tolerance (a compiled graph that computed something else would show here), and
every loss must be finite. Recorded per variant: s/iteration (median after warm-up), the first step's time (the
compilation and, with CUDA graphs, the recording), the peak memory of a step, and the s/iteration of the same
network in ``train.py``'s loop (``Trainer.fit``, :mod:`~internet_plus.tools.gpu_check.lightning_loop`) with its ratio
to the check's own loop. The InterNet+/InterNet ratio is given for each variant (both models under the same settings)
and for each model at its fastest variant.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import torch
from torch._dynamo.utils import counters

from internet_plus.compile import CompileNetwork, compile_network, uses_cuda_graphs
from internet_plus.tools.benchmark import build_model, synthetic_batch, training_step_fn
from internet_plus.tools.gpu_check.helpers import _sync, step_peak_memory_mib
from internet_plus.tools.gpu_check.lightning_loop import lightning_s_per_iteration
from internet_plus.tools.gpu_check.settings import AUTOCAST, PAPER_MODELS, Budget, Report, Settings
from internet_plus.tools.timing import timed_runs

#: First loss of a variant against eager's, relative: float32 sums in another order; 16-bit autocast rounds the
#: activations, and a fused kernel may keep an intermediate in float32 where eager rounded it.
FIRST_LOSS_RTOL = {"32-true": 1e-4, "16-mixed": 1e-2, "bf16-mixed": 2e-2}


def variants(settings: Settings) -> dict[str, dict[str, Any]]:
    """The variants measured: how the model is laid out and which ``torch.compile`` options (``None``: eager)."""
    out: dict[str, dict[str, Any]] = {
        "eager": {"channels_last": False, "compile": None},
        "eager channels-last": {"channels_last": True, "compile": None},
        "compiled": {"channels_last": False, "compile": {"backend": settings.compile_backend, "dynamic": False}},
    }
    if settings.device == "cuda":
        out["compiled reduce-overhead"] = {
            "channels_last": False,
            "compile": {"backend": settings.compile_backend, "dynamic": False, "mode": "reduce-overhead"},
        }
    return out


def _variant(backbone: str, spec: dict[str, Any], settings: Settings, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    device = torch.device(settings.device)
    model = build_model(backbone, settings.input_size, channels_last=spec["channels_last"]).to(device).train()
    model.load_state_dict(state)
    if spec["compile"] is not None:
        compile_network(model, spec["compile"])
    batch = synthetic_batch(settings.batch_size, settings.input_size, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    losses: list[float] = []
    inner = training_step_fn(model, batch, optimizer, amp_dtype=AUTOCAST[settings.compiled_precision], losses=losses)
    graphs = spec["compile"] is not None and uses_cuda_graphs(spec["compile"])

    def step() -> None:
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        inner()

    skips_before = counters["inductor"]["cudagraph_skips"]
    start = time.perf_counter()
    step()
    _sync()
    first_step_s = time.perf_counter() - start
    times = timed_runs(step, device, settings.warmup, settings.repeats)
    peak = step_peak_memory_mib(step, device)
    median = statistics.median(times)
    finite = all(math.isfinite(v) for v in losses)
    # The same network and batch through train.py's loop (the graphs compiled above are reused; with CUDA graphs,
    # CompileNetwork only marks each step's start, as in train.py).
    marks = [CompileNetwork({"enabled": True, **spec["compile"]})] if graphs else []
    fit_s = lightning_s_per_iteration(model, batch, settings, settings.compiled_precision, marks)
    return {
        "time_per_iteration_s": median,
        "images_per_s": settings.batch_size / median,
        "first_step_s": first_step_s,
        "peak_memory_mib": peak,
        "first_loss": losses[0],
        "losses_finite": finite,
        "lightning_s_per_iteration": fit_s,
        "lightning_over_own_loop": fit_s / median,
        # graphs Inductor compiled but did not record as CUDA graphs (it says why in a warning); 0 with reduce-overhead
        "cudagraph_skips": counters["inductor"]["cudagraph_skips"] - skips_before,
    }


#: The ratio key of each model at its fastest variant (reported, not judged against the goal).
BEST_VS_BEST = "best vs best"
#: A compiled variant does not start with less time than this left in the check's budget (it is recorded as skipped).
COMPILE_MIN_LEFT_S = 60.0


def compiled_training(settings: Settings, report: Report, budget: Budget | None = None) -> dict[str, Any]:
    """Section ``compiled_training``: s/iteration of each variant for InterNet+ and InterNet, checked against eager.
    A compiled variant that would start with under ``COMPILE_MIN_LEFT_S`` of ``budget`` left is skipped (recorded)."""
    plan = variants(settings)
    precision = settings.compiled_precision
    rtol = FIRST_LOSS_RTOL[precision]
    results: dict[str, dict[str, Any]] = {}
    for backbone in PAPER_MODELS:
        torch.manual_seed(0)
        state = build_model(backbone, settings.input_size).state_dict()
        entry: dict[str, Any] = {}
        for name, spec in plan.items():
            if spec["compile"] is not None and budget is not None and budget.left() < COMPILE_MIN_LEFT_S:
                entry[name] = {"skipped": f"time budget ({budget.seconds:.0f} s) nearly spent"}
                continue
            try:
                r = _variant(backbone, spec, settings, state)
            except Exception as exc:  # a variant that fails to compile is a failed check, the others still run
                entry[name] = {"error": f"{type(exc).__name__}: {exc}"}
                report.check("compiled_training", f"{backbone} {name}: ran", False, entry[name]["error"])
            else:
                entry[name] = r
                report.check("compiled_training", f"{backbone} {name}: finite losses", r["losses_finite"])
                if spec["compile"] is not None and uses_cuda_graphs(spec["compile"]):
                    report.check(
                        "compiled_training",
                        f"{backbone} {name}: CUDA graphs recorded",
                        r["cudagraph_skips"] == 0,
                        f"{r['cudagraph_skips']} graph(s) not recorded (see Inductor's warning)",
                    )
                if name != "eager" and "first_loss" in entry["eager"]:
                    ref = entry["eager"]["first_loss"]
                    err = abs(r["first_loss"] - ref) / abs(ref)
                    r["first_loss_rel_err"] = err
                    report.check(
                        "compiled_training",
                        f"{backbone} {name}: first loss == eager's",
                        err <= rtol,
                        f"{r['first_loss']:.6g} vs {ref:.6g}, relative {err:.1e} (tolerance {rtol:g})",
                    )
            torch._dynamo.reset()  # each variant compiles afresh; CUDA graphs' memory pools are released
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        results[backbone] = entry
    return {
        "precision": precision,
        "batch_size": settings.batch_size,
        "variants": {name: spec for name, spec in plan.items()},
        "results": results,
        "ratios": training_ratios(results),
    }


def training_ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """InterNet's s/iteration over InterNet+'s (> 1: InterNet+ is faster) for each variant that both ran, and
    ``best vs best``: each model at its fastest variant."""
    plus, base = results.get("internet_plus", {}), results.get("resnet50", {})
    ok = lambda r: "time_per_iteration_s" in r  # noqa: E731
    ratios = {
        name: base[name]["time_per_iteration_s"] / plus[name]["time_per_iteration_s"]
        for name in plus
        if name in base and ok(plus[name]) and ok(base[name])
    }
    if any(ok(r) for r in plus.values()) and any(ok(r) for r in base.values()):
        fastest = lambda e: min(r["time_per_iteration_s"] for r in e.values() if ok(r))  # noqa: E731
        ratios[BEST_VS_BEST] = fastest(base) / fastest(plus)
    return ratios
