"""The GPU check's goals (InterNet+/InterNet ratios against the targets) and its Markdown report."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from internet_plus.tools.benchmark import (
    LABELS,
    PAPER_TABLES_3_4,
    paper_ratios,
)
from internet_plus.tools.gpu_check.compiled_training import BEST_VS_BEST
from internet_plus.tools.gpu_check.settings import GOALS, PAPER_MODELS, PRECISIONS, Report


# ---------------------------------------------------------------------------------------------------- goals
def goals(report: Report) -> dict[str, Any]:
    """InterNet+/InterNet ratios beside the paper's, and the data-wait goal, from the sections that ran."""
    out: dict[str, Any] = {"paper": paper_ratios(), "targets": GOALS}
    inference = report.sections.get("inference", {}).get("results", {})
    if all(m in inference for m in PAPER_MODELS):
        plus, base = inference["internet_plus"], inference["resnet50"]
        ratios: dict[str, dict[str, float]] = {}
        for kind in ("eager", "compiled"):
            for pname, by_batch in plus[kind].items():
                for bs, value in by_batch.items():
                    ref = base[kind].get(pname, {}).get(bs)
                    if ref:
                        ratios.setdefault(f"{kind} {pname}", {})[bs] = value["images_per_s"] / ref["images_per_s"]
        out["inference_ratios"] = ratios
        best_b32 = max((r.get("32", 0.0) for r in ratios.values()), default=0.0)
        out["inference_ratio_b32_best"] = best_b32
        out["inference_goal_met"] = best_b32 >= GOALS["inference_ratio_b32"]
    speed = report.sections.get("training_speed", {}).get("results", {})
    if all(m in speed for m in PAPER_MODELS):
        tr = {}
        for precision, value in speed["internet_plus"]["precisions"].items():
            ref = speed["resnet50"]["precisions"].get(precision)
            if ref:
                tr[precision] = ref["time_per_iteration_s"] / value["time_per_iteration_s"]
        out["training_speed_ratios"] = tr  # InterNet's s/iteration over InterNet+'s: > 1 means InterNet+ is faster
    compiled = report.sections.get("compiled_training", {}).get("ratios", {})
    if compiled:
        out["compiled_training_ratios"] = compiled
    same_settings = [*out.get("training_speed_ratios", {}).values()]
    same_settings += [v for k, v in compiled.items() if k != BEST_VS_BEST]
    if same_settings:  # both models under the same settings; "best vs best" is reported beside, not judged
        out["training_ratio_best"] = max(same_settings)
        out["training_goal_met"] = max(same_settings) >= GOALS["training_ratio"]
    waits = report.sections.get("data_wait", {}).get("runs", [])
    measured = [r for r in waits if "data_wait_fraction" in r]  # not the runs that failed or were skipped
    auto = [r for r in measured if r["auto"] and r.get("path", "worker") == "worker"]  # the default loader path
    if auto:
        worst = max(r["data_wait_fraction"] for r in auto)
        out["data_wait_auto_worst"] = worst
        out["data_wait_goal_met"] = worst <= GOALS["data_wait_fraction"]
    return out


# ---------------------------------------------------------------------------------------------------- Markdown
def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(headers: list[str]) -> list[str]:
    return [_row(*headers), _row(*(["---"] * len(headers)))]


def _md_matrix(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["## Training steps (Trainer.fit, fused AdamW, batch per GPU, augmentation off)", ""]
    timed = any("fit_s" in r for r in runs)  # reports before these columns render as they were
    lines += _table(
        ["backbone", "precision", "channels-last", "steps", "loss first 5 → last 5", "finite", "falling"]
        + ["AMP skipped steps", "ms/step"]
        + (["first step s", "fit s"] if timed else [])
    )
    for r in runs:
        if r.get("skipped"):
            lines.append(_row(r["backbone"], r["precision"], r["channels_last"], "skipped", *[""] * (5 + 2 * timed)))
            continue
        loss = f"{_fmt(r['first_mean'], '.4g')} → {_fmt(r['last_mean'], '.4g')}"
        skips = r["amp_skipped_steps"] if r["precision"] == "16-mixed" else "–"
        ms = _fmt(r["ms_per_step_median"])
        timings = [_fmt(r.get("first_step_s"), ".2f"), _fmt(r.get("fit_s"), ".1f")] if timed else []
        lines.append(
            _row(
                r["backbone"],
                r["precision"],
                r["channels_last"],
                r["steps"],
                loss,
                r["finite"],
                r["falling"],
                skips,
                ms,
                *timings,
            )
        )
    return lines


def _md_loss_parity(results: dict[str, Any]) -> list[str]:
    lines = ["## Lean vs dense heatmap loss on 16-bit heatmaps", ""]
    lines += _table(["autocast", "lean", "dense", "value rel. err", "gradient rel. err"])
    for name, r in results.items():
        lines.append(
            _row(name, f"{r['lean']:.6g}", f"{r['dense']:.6g}", f"{r['value_rel_err']:.1e}", f"{r['grad_rel_err']:.1e}")
        )
    return lines


def _md_inference(inf: dict[str, Any]) -> list[str]:
    batches, precisions = inf["batches"], inf["precisions"]
    lines = ["## Table 4 — inference images/s (eval, inference_mode)", ""]
    lines += _table(["backbone", "mode", *(f"batch {b}" for b in batches)])
    for backbone, e in inf["results"].items():
        for kind in ("eager", "compiled"):
            for pname, by_batch in e[kind].items():
                cells = [_fmt(by_batch.get(str(b), {}).get("images_per_s")) for b in batches]
                lines.append(_row(LABELS.get(backbone, backbone), f"{kind} {pname}", *cells))
    for row, label in (("internet_plus", "InterNet+"), ("internet", "InterNet")):
        cells = [_fmt(PAPER_TABLES_3_4["table4"][row].get(b)) for b in batches]
        lines.append(_row(f"{label} (paper, 2080Ti)", "as published", *cells))
    lines += ["", "Inference copy (`optimize_for_inference`) at the largest batch, images/s:", ""]
    lines += _table(["backbone", "variant", *precisions])
    for backbone, e in inf["results"].items():
        for key, by_p in e["optimized"].items():
            cells = [_fmt(by_p[p]["images_per_s"]) for p in precisions]
            lines.append(_row(LABELS.get(backbone, backbone), key, *cells))
    return lines


def _md_training_speed(section: dict[str, Any]) -> list[str]:
    results = section["results"]
    precisions = sorted({p for e in results.values() for p in e["precisions"]}, key=PRECISIONS.index)
    lines = [f"## Table 3 — feature extractor and training step (batch {section['batch_size']})", ""]
    lines += _table(
        ["backbone", "FE params (M)", "FE MiB"]
        + [f"s/iter {p}" for p in precisions]
        + [f"peak MiB {p}" for p in precisions]
    )
    for backbone, e in results.items():
        cells = [_fmt(e["precisions"][p]["time_per_iteration_s"], ".4f") for p in precisions]
        cells += [_fmt(e["precisions"][p]["peak_memory_mib"], ".0f") for p in precisions]
        params, mib = f"{e['feature_extractor_params'] / 1e6:.2f}", f"{e['feature_extractor_mib']:.2f}"
        lines.append(_row(LABELS.get(backbone, backbone), params, mib, *cells))
    for row, label in (("internet_plus", "InterNet+"), ("internet", "InterNet")):
        t3 = PAPER_TABLES_3_4["table3"][row]
        time_cell = f"{t3['time_per_iteration_s']} (2080Ti, precision not stated)"
        lines.append(_row(f"{label} (paper)", f"{t3['params_m']:.2f}", f"{t3['size_mb']:.2f}", time_cell))
    return lines


def _md_compiled_training(section: dict[str, Any]) -> list[str]:
    results = section["results"]
    names = list(section["variants"])
    lines = [
        f"## Training step eager and compiled ({section['precision']}, batch {section['batch_size']}; "
        "`train.py compile.enabled=true`)",
        "",
        "s/iteration (median after warm-up); in brackets the first step (compilation, CUDA-graph recording).",
        "",
    ]

    def own_loop(r: dict[str, Any]) -> str:
        status = next((k for k in ("error", "skipped") if k in r), None)
        return status or f"{_fmt(r.get('time_per_iteration_s'), '.4f')} ({_fmt(r.get('first_step_s'), '.1f')} s)"

    def lightning(r: dict[str, Any]) -> str:
        fit = r.get("lightning_s_per_iteration")
        return f"{fit:.4f} ({r['lightning_over_own_loop']:.2f})" if fit is not None else "–"

    lines += _variant_table(results, names, own_loop)
    ratios = section.get("ratios", {})
    if ratios:
        lines += ["", "InterNet s/iter ÷ InterNet+ s/iter: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())]
    fits = [r for entry in results.values() for r in entry.values() if "lightning_s_per_iteration" in r]
    if fits:
        lines += [
            "",
            "The same network in `train.py`'s loop (`Trainer.fit`, no synchronisation between logging steps): "
            "s/iteration, and in brackets its ratio to the check's loop above (> 1: what the loop around the network "
            "costs).",
            "",
        ]
        lines += _variant_table(results, names, lightning)
    return lines


def _variant_table(
    results: dict[str, dict[str, Any]], names: list[str], cell: Callable[[dict[str, Any]], str]
) -> list[str]:
    """A backbone × variant table of ``compiled_training``'s results, each cell ``cell(result)``."""
    lines = _table(["backbone", *names])
    for backbone, entry in results.items():
        lines.append(_row(LABELS.get(backbone, backbone), *(cell(entry.get(name, {})) for name in names)))
    return lines


def _md_profile(section: dict[str, Any]) -> list[str]:
    results = section["results"]
    lines = [f"## Profile of the eager training step ({section['precision']}, batch {section['batch_size']})", ""]
    lines += _table(["backbone", "wall ms/step", "ATen ops/step", "GPU events/step", "GPU busy ms/step", "GPU busy"])
    for backbone, r in results.items():
        busy = r.get("device_busy_fraction")
        cells = [
            _fmt(r["wall_ms_per_step"]),
            _fmt(r["aten_ops_per_step"], ".0f"),
            _fmt(r.get("device_events_per_step"), ".0f"),
            _fmt(r.get("device_busy_ms_per_step")),
            f"{_fmt(100 * busy)} %" if busy is not None else "–",
        ]
        lines.append(_row(LABELS.get(backbone, backbone), *cells))
    for backbone, r in results.items():
        top = ", ".join(f"`{o['name']}` {o['ms_per_step']:.2f} ms" for o in r["top_operations"][:5])
        lines.append(f"- {LABELS.get(backbone, backbone)}, most {r['top_by'].replace('_', ' ')}: {top}")
    for key, render in (("internet_plus_parts", _md_parts), ("attention_variants", _md_attention_variants)):
        analysis = section.get(key)
        if analysis and "error" not in analysis:
            lines += ["", *render(analysis)]
        elif analysis:
            lines += ["", f"- {key.replace('_', ' ')}: error: {analysis['error']}"]
    return lines


def _md_attention_variants(variants: dict[str, Any]) -> list[str]:
    """InterNet+'s eval forward pass with its coordinate attention written other ways: images/s and speed-up."""
    results, training = variants["results"], variants.get("training")
    lines = [f"InterNet+ with its coordinate attention written other ways (eval in {variants['precision']}", ""]
    if training:
        lines[0] += f"; training step at batch {training['batch_size']} under {training['precision']}"
    lines[0] += "):"
    header = ["coordinate attention"]
    for bs in results:
        header += [f"eval batch {bs}: images/s", "vs as built"]
    header += ["training ms/iteration", "vs as built"] if training else []
    lines += _table(header)

    def speedup(r: dict[str, Any]) -> str:
        return f"{r['speedup']:.2f}×" if "speedup" in r else "–"

    for name in next(iter(results.values())):
        cells: list[str] = []
        for entry in results.values():
            cells += [_fmt(entry[name]["images_per_s"]), speedup(entry[name])]
        if training:
            r = training["results"][name]
            cells += [_fmt(1e3 * r["time_per_iteration_s"]), speedup(r)]
        lines.append(_row(name, *cells))
    return lines


def _md_parts(by_batch: dict[str, Any]) -> list[str]:
    """InterNet+'s forward pass part by part: one column pair (ms per pass, share) per batch size."""
    first = next(iter(by_batch.values()))
    timed = first["timed_by"]
    lines = [f"InterNet+'s forward pass part by part ({first['dtype']}, eval; {timed} time per pass):", ""]
    header = ["part"]
    for bs in by_batch:
        header += [f"batch {bs}: ms", "share"] + (["kernels"] if timed == "device" else [])
    lines += _table(header)
    labels = list(first["parts"])
    for label in labels:
        cells: list[str] = []
        for costs in by_batch.values():
            part = costs["parts"][label]
            cells += [_fmt(part[f"{timed}_ms_per_pass"], ".3f"), f"{_fmt(100 * part['share'])} %"]
            if timed == "device":
                cells.append(_fmt(part["kernels_per_pass"], ".0f"))
        lines.append(_row(label, *cells))
    largest = max(by_batch, key=int)
    for label, part in by_batch[largest]["parts"].items():
        if part.get("top_kernels"):
            top = ", ".join(f"`{k['name'][:90]}` {k['ms_per_pass']:.3f} ms" for k in part["top_kernels"])
            lines.append(f"- {label}, batch {largest}, longest kernels: {top}")
    return lines


def _md_data_wait(dw: dict[str, Any]) -> list[str]:
    rates = ", ".join(f"{k} {v:.0f} samples/s" for k, v in dw["per_core_samples_per_s"].items())
    lines = [
        f"## Data wait ({dw['precision']}, InterNet+, augmentation on; {dw['cores']} cores, "
        f"auto = {dw['auto_workers']} workers)",
        "",
        f"Per-core pipeline rate (one worker): {rates}.",
        "",
    ]
    paths = any("path" in r for r in dw["runs"])  # reports before the device paths have one path, no column
    if paths:
        lines += [
            "Paths: `worker` decodes, warps and colour-augments in the loader workers; `warp_on=device` warps on the "
            "device after the transfer, `decode_on=device` also decodes the JPEGs there (their time counts in the "
            "wait: it runs before the step); compare samples/s.",
            "",
        ]
    head = ["format", *(["path"] if paths else []), "workers", "steps", "step ms (median)", "wait ms (median / p90)"]
    lines += _table([*head, "data wait", *(["samples/s"] if paths else [])])
    for r in dw["runs"]:
        workers = f"{r['workers']}{' (auto)' if r['auto'] else ''}"
        status = next((k for k in ("error", "skipped") if k in r), None)
        if status:  # a run that failed or was skipped: its row says so, the reason is in the JSON
            path = [r.get("path", "worker")] if paths else []
            lines.append(_row(r["format"], *path, workers, status, *[""] * (4 if paths else 3)))
            continue
        wait = f"{_fmt(r['wait_ms_median'])} / {_fmt(r['wait_ms_p90'])}"
        share = f"{_fmt(100 * r['data_wait_fraction'])} %"
        if paths:
            path = r.get("path", "worker")
            cells = [r["format"], path, workers, r["steps"], _fmt(r["step_ms_median"]), wait, share]
            lines.append(_row(*cells, _fmt(r.get("samples_per_s"), ".0f")))
        else:
            lines.append(_row(r["format"], workers, r["steps"], _fmt(r["step_ms_median"]), wait, share))
    return lines


def _md_ddp(ddp: dict[str, Any]) -> list[str]:
    c = ddp["in_process"]
    lines = [
        "## DDP",
        "",
        f"- in process: {c['strategy']} ({c['backend']}), world size {c['world_size']}, {c['precision']}, "
        f"BatchNorm {c['batchnorm']}, batch {c['global_batch']} global / {c['per_process_batch']} per process, "
        f"test/epe_mm {_fmt(c['test'].get('test/epe_mm'))}",
    ]
    if ddp.get("train_py"):
        t = ddp["train_py"]
        epe = _fmt(t["metrics"].get("test/epe_mm"))
        lines.append(f"- `train.py` on {t['devices']} device(s): exit {t['exit']}, test/epe_mm {epe}")
    return lines


def _met(flag: Any) -> str:
    return "met" if flag else "not met"


def _md_goals(g: dict[str, Any], dry_run: bool = False) -> list[str]:
    pr = g["paper"]
    note = " (CPU dry run at tiny sizes: these ratios judge nothing)" if dry_run else ""
    lines = [f"## InterNet+/InterNet ratios and goals{note}", ""]
    for kind, by_batch in g.get("inference_ratios", {}).items():
        lines.append(f"- inference {kind}: " + ", ".join(f"batch {b} {v:.3f}" for b, v in by_batch.items()))
    lines.append(
        f"- paper inference: batch 1 {pr['throughput']['1']:.3f}, batch 32 {pr['throughput']['32']:.3f}; "
        f"goal ≥ {GOALS['inference_ratio_b32']} at batch 32: {_met(g.get('inference_goal_met'))}"
    )
    if "training_speed_ratios" in g:
        ours = ", ".join(f"{p} {v:.3f}" for p, v in g["training_speed_ratios"].items())
        line = (
            f"- training speed (InterNet s/iter ÷ InterNet+ s/iter): {ours}; paper {1 / pr['time_per_iteration']:.3f}"
        )
        if "training_ratio_best" not in g:  # a report from before the compiled_training section judged here
            line += f"; goal ≥ {GOALS['training_ratio']}: {_met(g.get('training_goal_met'))}"
        lines.append(line)
    if "compiled_training_ratios" in g:
        ours = ", ".join(f"{k} {v:.3f}" for k, v in g["compiled_training_ratios"].items())
        lines.append(f"- training step eager/compiled variants (InterNet s/iter ÷ InterNet+ s/iter): {ours}")
    if "training_ratio_best" in g:
        lines.append(
            f"- training speed, best ratio under the same settings: {g['training_ratio_best']:.3f}; "
            f"goal ≥ {GOALS['training_ratio']}: {_met(g.get('training_goal_met'))}"
        )
    if "data_wait_auto_worst" in g:
        lines.append(
            f"- data wait at auto workers (worst format): {100 * g['data_wait_auto_worst']:.1f} %; "
            f"goal ≤ {100 * GOALS['data_wait_fraction']:.0f} %: {_met(g.get('data_wait_goal_met'))}"
        )
    return lines


def markdown(report_json: dict[str, Any]) -> str:
    """The tables of ``gpu_check.md`` (everything is also in the JSON)."""
    m, s = report_json["machine"], report_json["sections"]
    lines = [
        f"# GPU check — {m['device_name']}",
        "",
        f"{m['date']}; torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}, Lightning {m['lightning']}; "
        f"{m['cpu_count']} CPU cores ({m['cpu']}); total {report_json['seconds']:.0f} s."
        + (" **CPU dry run: no GPU figures.**" if report_json["dry_run"] else ""),
        "",
        f"Checks: {report_json['passed']} passed, {report_json['failed']} failed.",
        "",
    ]
    for name, sec in s.items():
        if sec.get("status") != "ok":
            lines.append(f"- section `{name}`: **{sec.get('status')}** {sec.get('reason', sec.get('error', ''))}")
    renderers: list[tuple[Any, Callable[[Any], list[str]]]] = [
        (s.get("training_matrix", {}).get("runs"), _md_matrix),
        (s.get("loss_parity", {}).get("results"), _md_loss_parity),
        (s.get("inference") if s.get("inference", {}).get("results") else None, _md_inference),
        (s.get("training_speed") if s.get("training_speed", {}).get("results") else None, _md_training_speed),
        (s.get("compiled_training") if s.get("compiled_training", {}).get("results") else None, _md_compiled_training),
        (s.get("profile") if s.get("profile", {}).get("results") else None, _md_profile),
        (s.get("data_wait") if s.get("data_wait", {}).get("runs") else None, _md_data_wait),
        (s.get("ddp") if s.get("ddp", {}).get("in_process") else None, _md_ddp),
        (report_json.get("goals"), lambda g: _md_goals(g, report_json["dry_run"])),
    ]
    for data, render in renderers:
        if data:
            lines += ["", *render(data)]
    failed = [c for c in report_json["checks"] if not c["passed"]]
    if failed:
        lines += ["", "## Failed checks", ""] + [f"- {c['section']}: {c['name']} — {c['detail']}" for c in failed]
    return "\n".join(lines) + "\n"
