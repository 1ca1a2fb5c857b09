"""The GPU check's command line: ``python -m internet_plus.tools.gpu_check`` (the package docstring)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from internet_plus.tools.gpu_check.compile_cache import CompileCache
from internet_plus.tools.gpu_check.compiled_training import compiled_training
from internet_plus.tools.gpu_check.data_wait import data_wait
from internet_plus.tools.gpu_check.ddp import DdpProcesses, ddp_child, ddp_section, in_background
from internet_plus.tools.gpu_check.helpers import device_slug, free_path, shared_datamodule
from internet_plus.tools.gpu_check.inference import inference_section
from internet_plus.tools.gpu_check.profile import profile_section
from internet_plus.tools.gpu_check.report_md import goals, markdown
from internet_plus.tools.gpu_check.settings import ROOT, SECTIONS, Budget, Report, Settings
from internet_plus.tools.gpu_check.training import loss_parity, training_matrix
from internet_plus.tools.gpu_check.training_speed import training_speed
from internet_plus.tools.timing import cpu_name


# ---------------------------------------------------------------------------------------------------- main
def machine_info(settings: Settings) -> dict[str, Any]:
    import pytorch_lightning

    cuda = settings.device == "cuda"
    return {
        "device_name": torch.cuda.get_device_name(0) if cuda else f"CPU dry run ({cpu_name()})",
        "device_count": torch.cuda.device_count() if cuda else 0,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "lightning": pytorch_lightning.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "date": datetime.date.today().isoformat(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for gpu_check.json/.md (default: experiments/performance/gpu_<device>)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="sections that would start after this many seconds are skipped (default 600)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny sizes on the CPU (what runs where there is no CUDA)"
    )
    parser.add_argument(
        "--workers", type=str, default="", help="data-wait worker counts, e.g. 8,15 (default: auto and cores - 1)"
    )
    parser.add_argument(
        "--sections",
        type=str,
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {', '.join(SECTIONS)}, run in the order given",
    )
    parser.add_argument(
        "--compile-cache",
        type=Path,
        default=None,
        help="a folder carrying torch.compile's caches between runs: its *.bin files are loaded at the start, this "
        "run's compilations are written to a new file in it (compile_cache.py)",
    )
    parser.add_argument("--section", choices=["ddp"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = [n.strip() for n in args.sections.split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"--sections: unknown {unknown}; choose from {', '.join(SECTIONS)}")
    cuda = torch.cuda.is_available() and not args.dry_run
    settings = Settings(device="cuda") if cuda else Settings.dry()
    if args.budget_s is not None:
        settings.budget_s = args.budget_s
    if args.workers:
        settings.workers = [int(w) for w in args.workers.split(",")]
    script_args = ["--dry-run"] if settings.dry_run else []

    if args.section == "ddp":  # the child process of section 3
        result = ddp_child(settings, args.data_dir)
        (args.data_dir / "ddp_child.json").write_text(json.dumps(result, indent=1))
        return 0

    if not cuda:
        print(
            "no CUDA device here: running the CPU dry run of the check's own logic (64 px, 2 backbones, a few steps; "
            "16-mixed and Inductor skipped, the compiled training traced by Dynamo alone). It produces no GPU "
            "figures.",
            flush=True,
        )
    if cuda:
        torch.backends.cudnn.benchmark = True
    machine = machine_info(settings)
    out = args.out or ROOT / "experiments" / "performance" / f"gpu_{device_slug(machine['device_name'])}"
    report = Report()
    budget = Budget(settings.budget_s)
    print(f"{machine['device_name']}: torch {machine['torch']}, budget {settings.budget_s:.0f} s", flush=True)
    compile_cache = CompileCache(args.compile_cache) if args.compile_cache else None
    if compile_cache is not None:
        compile_cache.load()
        loaded = ", ".join(compile_cache.files_loaded) or "nothing (no cache file yet)"
        print(f"compile cache {args.compile_cache}: loaded {loaded}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = free_path(out / "gpu_check.json"), free_path(out / "gpu_check.md")

    def save() -> dict[str, Any]:
        """Write the report so far (after every section: a run cut short still leaves its figures), and the compile
        cache when asked for."""
        if compile_cache is not None:
            compile_cache.save()
        result = {
            "dry_run": settings.dry_run,
            "settings": asdict(settings),
            "machine": machine,
            "seconds": budget.elapsed,
            "sections": report.sections,
            "checks": report.checks,
            "passed": len(report.checks) - len(report.failed),
            "failed": len(report.failed),
            "goals": goals(report),
            **({"compile_cache": compile_cache.summary()} if compile_cache is not None else {}),
        }
        json_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
        md_path.write_text(markdown(result))
        return result

    result = save()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        data_dir = Path(tmp)
        ddp = DdpProcesses(settings, data_dir, script_args)
        if in_background(wanted):  # the DDP processes only check correctness: beside the sections that time nothing
            shared_datamodule(settings, data_dir, augment=False).prepare_data()  # written once, before they read it
            ddp.start()
            beside = ", ".join(wanted[: wanted.index("ddp")])
            print(f"[ddp] child processes started in the background, beside {beside}", flush=True)
        sections: dict[str, tuple[Callable[[], dict[str, Any]], float]] = {
            "training_matrix": (lambda: training_matrix(settings, report, data_dir, budget), 0.0),
            "loss_parity": (lambda: loss_parity(settings, report), 0.0),
            # already running in the background: collected whatever the budget (their time is being spent anyway)
            "ddp": (lambda: ddp_section(settings, report, ddp), 0.0 if ddp.background else 30.0),
            "inference": (lambda: inference_section(settings, report, budget), 20.0),
            "training_speed": (lambda: training_speed(settings, report), 15.0),
            "compiled_training": (lambda: compiled_training(settings, report, budget), 30.0),
            "profile": (lambda: profile_section(settings, report), 5.0),
            "data_wait": (lambda: data_wait(settings, report, data_dir, budget), 10.0),
        }
        try:
            for name in wanted:  # in the order asked for: a short GPU session runs what it most needs first
                fn, min_left_s = sections[name]
                action = "collecting its background processes" if name == "ddp" and ddp.background else "started"
                report.run(name, budget, fn, min_left_s=min_left_s, action=action)
                result = save()
        finally:
            ddp.stop()  # a check cut short leaves no child process behind
    print(markdown(result))
    print(f"wrote {json_path} and {md_path}")
    return 1 if report.failed else 0
