"""The GPU check (``src/internet_plus/tools/gpu_check/``, ``make gpu-check``): its logic on the CPU.

The check's figures come from a GPU machine; here its decisions (what counts as a falling loss, an AMP overflow
loop, a report that must not be overwritten), its ratios and its tables are tested against known answers, the
recorded H200 reports re-render exactly, and the CPU dry run (what the command does where there is no CUDA) runs
end to end.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT

from internet_plus.compile import uses_cuda_graphs
from internet_plus.data.datamodule import resolve_num_workers
from internet_plus.tools import gpu_check as gc
from internet_plus.tools.gpu_check import report_md
from internet_plus.tools.gpu_check.compiled_training import training_ratios

H200 = ROOT / "experiments" / "performance" / "gpu_nvidia_h200"


def test_loss_trend_compares_the_first_and_last_five_and_rejects_non_finite() -> None:
    falling = [10, 9, 9, 8, 8, 7, 6, 6, 5, 5, 4, 4]
    trend = gc.loss_trend(falling)
    assert trend["first_mean"] == pytest.approx(8.8) and trend["last_mean"] == pytest.approx(4.8)
    assert trend["finite"] and trend["falling"]
    assert not gc.loss_trend(list(reversed(falling)))["falling"]
    with_nan = gc.loss_trend([3.0, 2.0, math.nan, 1.0])
    assert not with_nan["finite"] and not with_nan["falling"]
    assert gc.loss_trend([2.0, 1.0])["falling"]  # two steps: windows of one


def test_amp_skipped_steps_are_the_ones_after_which_the_scale_went_down() -> None:
    scales = [(65536.0, 32768.0), (32768.0, 32768.0), (32768.0, 16384.0), (16384.0, 8192.0), (8192.0, 8192.0)]
    assert gc.skipped_steps(scales) == [0, 2, 3]
    assert gc.max_consecutive([0, 2, 3]) == 2
    assert gc.max_consecutive([19, 27]) == 1
    assert gc.max_consecutive([4, 5, 6, 9, 10]) == 3
    assert gc.max_consecutive([]) == 0


def test_the_recorded_h200_matrix_passes_the_overflow_rule() -> None:
    """Run 1 on the H200 was judged by an earlier rule (no skip in the last ten steps); by the rule in force, at
    most MAX_SKIPPED_STEPS skips and fewer than MAX_SKIP_RUN in a row, every 16-mixed run passes."""
    runs = json.loads((H200 / "run1_gpu_check.json").read_text())["sections"]["training_matrix"]["runs"]
    mixed = [r for r in runs if r["precision"] == "16-mixed"]
    assert len(mixed) == 5
    for r in mixed:
        assert len(r["amp_skipped_steps"]) <= gc.MAX_SKIPPED_STEPS
        assert gc.max_consecutive(r["amp_skipped_steps"]) < gc.MAX_SKIP_RUN
        assert r["finite"] and r["falling"]


def test_relative_error_and_output_errors() -> None:
    a = torch.tensor([3.0, 4.0])
    assert gc.relative_error(a, a) == 0.0
    assert gc.relative_error(torch.tensor([3.0, 5.0]), a) == pytest.approx(1 / 5)
    assert gc.relative_error(torch.zeros(2), torch.zeros(2)) == 0.0
    outputs = {"heatmaps": a, "root_bins": a, "hand_logits": a}
    assert gc.output_errors(outputs, outputs) == {"heatmaps": 0.0, "root_bins": 0.0, "hand_logits": 0.0}


def test_reports_are_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "gpu_check.json"
    assert gc.free_path(target) == target
    target.write_text("{}")
    (tmp_path / "gpu_check-2.json").write_text("{}")
    assert gc.free_path(target) == tmp_path / "gpu_check-3.json"
    assert gc.device_slug("NVIDIA H200") == "nvidia_h200"
    assert gc.device_slug("NVIDIA GeForce RTX 2080 Ti") == "nvidia_geforce_rtx_2080_ti"


def test_goals_are_the_internet_plus_over_internet_ratios() -> None:
    report = gc.Report()

    def speeds(b32: float) -> dict:
        return {"eager": {"float16": {"32": {"images_per_s": b32}}}, "compiled": {}}

    report.sections["inference"] = {"results": {"internet_plus": speeds(300.0), "resnet50": speeds(200.0)}}
    step = {"internet_plus": 0.5, "resnet50": 0.6}
    report.sections["training_speed"] = {
        "results": {b: {"precisions": {"16-mixed": {"time_per_iteration_s": t}}} for b, t in step.items()}
    }
    report.sections["data_wait"] = {
        "runs": [
            {"auto": True, "data_wait_fraction": 0.02},
            {"auto": True, "data_wait_fraction": 0.07},
            {"auto": False, "data_wait_fraction": 0.5},
            {"auto": True, "path": "decode_on=device", "data_wait_fraction": 0.3},  # a device path: not the goal's
        ]
    }
    goals = gc.goals(report)
    assert goals["inference_ratios"] == {"eager float16": {"32": 1.5}}
    assert goals["inference_goal_met"]  # 1.5 >= 1.35
    assert goals["training_speed_ratios"]["16-mixed"] == pytest.approx(1.2)
    assert not goals["training_goal_met"]  # 1.2 < 1.3
    assert goals["data_wait_auto_worst"] == 0.07 and not goals["data_wait_goal_met"]
    assert goals["paper"]["throughput"]["32"] == pytest.approx(296.41 / 257.26)

    # compiled variants: judged on the same settings for both models, "best vs best" only reported
    report.sections["compiled_training"] = {"ratios": {"eager": 1.1, "compiled": 1.25, "best vs best": 1.6}}
    goals = gc.goals(report)
    assert goals["compiled_training_ratios"]["best vs best"] == 1.6
    assert goals["training_ratio_best"] == 1.25 and not goals["training_goal_met"]
    report.sections["compiled_training"]["ratios"]["compiled reduce-overhead"] = 1.31
    assert gc.goals(report)["training_goal_met"]


def test_training_ratios_per_variant_and_each_model_at_its_fastest() -> None:
    results = {
        "internet_plus": {"eager": {"time_per_iteration_s": 0.030}, "compiled": {"time_per_iteration_s": 0.012}},
        "resnet50": {"eager": {"time_per_iteration_s": 0.027}, "compiled": {"error": "RuntimeError: no triton"}},
    }
    ratios = training_ratios(results)
    assert ratios == {"eager": pytest.approx(0.9), "best vs best": pytest.approx(0.027 / 0.012)}


def test_a_compiled_variant_that_computes_something_else_fails_its_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first loss of every variant is held against eager's: a "compilation" that changes the network (here it
    adds noise to its weights) is caught, and a variant that raises is a failed check while the others still run."""
    ct = importlib.import_module("internet_plus.tools.gpu_check.compiled_training")  # the module, not the function

    def altered(model: torch.nn.Module, options: dict) -> torch.nn.Module:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        return model

    monkeypatch.setattr(ct, "compile_network", altered)
    monkeypatch.setattr(ct, "PAPER_MODELS", ("internet_plus",))
    settings = gc.Settings.dry()
    settings.warmup, settings.repeats = 0, 1
    report = gc.Report()
    section = ct.compiled_training(settings, report)
    failed = {c["name"] for c in report.failed}
    assert failed == {"internet_plus compiled: first loss == eager's"}
    entry = section["results"]["internet_plus"]
    assert entry["eager channels-last"]["first_loss_rel_err"] < 1e-4  # the layout alone changes nothing

    def broken(model: torch.nn.Module, options: dict) -> torch.nn.Module:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(ct, "compile_network", broken)
    report = gc.Report()
    section = ct.compiled_training(settings, report)
    assert [c["name"] for c in report.failed] == ["internet_plus compiled: ran"]
    assert "no C++ compiler" in section["results"]["internet_plus"]["compiled"]["error"]
    assert section["results"]["internet_plus"]["eager channels-last"]["losses_finite"]

    report = gc.Report()  # no time left: the compiled variant is recorded as skipped, not failed
    section = ct.compiled_training(settings, report, gc.Budget(-1.0))
    assert "skipped" in section["results"]["internet_plus"]["compiled"] and not report.failed


def test_sections_run_in_the_order_asked_and_an_unknown_one_is_refused_before_any_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import internet_plus.tools.gpu_check.cli as cli

    with pytest.raises(SystemExit, match="unknown"):
        gc.main(["--dry-run", "--out", str(tmp_path / "none"), "--sections", "profile,warp_speed"])
    assert not (tmp_path / "none").exists()

    ran = []
    monkeypatch.setattr(cli, "profile_section", lambda settings, report: ran.append("profile") or {})
    monkeypatch.setattr(cli, "loss_parity", lambda settings, report: ran.append("loss_parity") or {})
    assert gc.main(["--dry-run", "--out", str(tmp_path), "--sections", "profile,loss_parity"]) == 0
    assert ran == ["profile", "loss_parity"]
    assert list(json.loads((tmp_path / "gpu_check.json").read_text())["sections"]) == ["profile", "loss_parity"]


@pytest.mark.parametrize("run", [1, 2])
def test_the_recorded_h200_reports_render_as_committed(run: int) -> None:
    report = json.loads((H200 / f"run{run}_gpu_check.json").read_text())
    assert report["machine"]["device_name"] == "NVIDIA H200" and not report["dry_run"]
    assert gc.markdown(report) == (H200 / f"run{run}_gpu_check.md").read_text()


def test_a_section_that_raises_is_a_failed_check_and_the_others_still_run() -> None:
    report, budget = gc.Report(), gc.Budget(100.0)

    def broken() -> dict:
        raise RuntimeError("boom")

    report.run("first", budget, broken)
    report.run("second", budget, lambda: {"value": 1})
    report.run("third", gc.Budget(-1.0), lambda: {"value": 2})
    assert report.sections["first"]["status"] == "error" and "boom" in report.sections["first"]["error"]
    assert report.sections["second"]["status"] == "ok" and report.sections["second"]["value"] == 1
    assert report.sections["third"]["status"] == "skipped"
    assert [c["name"] for c in report.failed] == ["section ran"]


def test_the_ddp_processes_run_in_the_background_only_beside_sections_that_time_nothing() -> None:
    assert gc.in_background(list(gc.SECTIONS))  # the default order: after the matrix and the loss parity
    assert gc.in_background(["loss_parity", "ddp", "inference"])
    assert not gc.in_background(["ddp", "training_matrix"])  # nothing before it to hide behind
    assert not gc.in_background(["training_matrix", "inference", "ddp"])  # would run beside a timed section
    assert not gc.in_background(["profile", "data_wait", "compiled_training"])  # not asked for


def test_stopping_the_ddp_processes_kills_the_running_one_and_starts_no_other(tmp_path: Path) -> None:
    processes = gc.DdpProcesses(gc.Settings.dry(), tmp_path, ["--dry-run"])
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    processes.commands = {"child": sleeper, "train_py": sleeper}
    processes.start()
    deadline = time.monotonic() + 20
    while processes._running is None and time.monotonic() < deadline:
        time.sleep(0.05)
    start = time.monotonic()
    processes.stop()
    assert time.monotonic() - start < 10 and processes.background and not processes._thread.is_alive()
    assert processes.outcome["child"]["exit"] not in (0, None)  # killed
    assert processes.outcome["train_py"] == {"exit": None, "tail": "not started: the check stopped", "seconds": 0.0}


def test_a_failed_ddp_child_is_a_failed_check_and_train_py_is_still_judged(tmp_path: Path) -> None:
    processes = gc.DdpProcesses(gc.Settings.dry(), tmp_path, ["--dry-run"])
    processes.commands = {
        "child": [sys.executable, "-c", "import sys; print('no process group'); sys.exit(3)"],
        "train_py": [sys.executable, "-c", "pass"],  # exits 0 but writes no metrics.json
    }
    report = gc.Report()
    result = gc.ddp_section(gc.Settings.dry(), report, processes)
    assert not result["background"] and result["child_exit"] == 3 and "no process group" in result["child_tail"]
    assert [c["name"] for c in report.failed] == [
        "strategy=ddp on one device",
        "python train.py trainer=ddp_cpu trainer.devices=1",
    ]
    assert result["train_py"]["exit"] == 0 and result["train_py"]["metrics"] == {}


@pytest.mark.slow
def test_without_cuda_the_command_runs_its_cpu_dry_run_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "WANDB_MODE": "disabled", "PROJECT_ROOT": str(ROOT)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "internet_plus.tools.gpu_check",
            "--out",
            str(tmp_path),
            "--compile-cache",
            str(tmp_path / "cc"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no CUDA device here" in proc.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] and report["machine"]["device_name"].startswith("CPU dry run")
    cache = report["compile_cache"]  # the dry run compiles nothing with Inductor: nothing loaded, nothing written
    assert cache["files_loaded"] == [] and cache["file_written"] is None and cache["fxgraph_cache_miss"] == 0
    assert {n: s["status"] for n, s in report["sections"].items()} == {n: "ok" for n in gc.SECTIONS}
    assert report["failed"] == 0 and report["passed"] >= 10
    matrix = report["sections"]["training_matrix"]["runs"]
    assert {(r["backbone"], r["channels_last"]) for r in matrix} >= {("internet_plus", False), ("resnet50", False)}
    assert all(r["fused"] and r["steps"] == report["settings"]["steps"] for r in matrix)
    assert all(0 < r["first_step_s"] < r["fit_s"] for r in matrix)  # where the section's time goes
    ddp = report["sections"]["ddp"]
    assert ddp["in_process"]["world_size"] == 1 and ddp["train_py"]["exit"] == 0
    # the default order: the DDP processes ran in the background beside the matrix and the loss parity
    assert ddp["background"] and "[ddp] child processes started in the background" in proc.stdout
    assert ddp["child_seconds"] > 0 and ddp["train_py_seconds"] > 0
    waits = report["sections"]["data_wait"]["runs"]
    paths = {(r["format"], r["path"]) for r in waits}
    assert paths == {(f, p) for f in ("rhd", "interhand") for p in ("worker", "warp_on=device")} | {
        ("interhand", "decode_on=device")
    }
    assert all(r["steps"] == report["settings"]["data_wait_device_steps"] for r in waits if r["path"] != "worker")
    assert all(0.0 <= r["data_wait_fraction"] <= 1.0 and r["samples_per_s"] > 0 for r in waits)
    compiled = report["sections"]["compiled_training"]
    assert set(compiled["variants"]) == {"eager", "eager channels-last", "compiled"}  # CUDA graphs: GPU only
    for entry in compiled["results"].values():  # traced by Dynamo alone: the same first loss as eager
        assert entry["compiled"]["first_loss_rel_err"] <= 1e-4 and entry["compiled"]["first_step_s"] > 0
        for r in entry.values():  # and each variant through train.py's loop (Trainer.fit)
            assert r["lightning_s_per_iteration"] > 0
            assert r["lightning_over_own_loop"] == pytest.approx(
                r["lightning_s_per_iteration"] / r["time_per_iteration_s"]
            )
    assert set(compiled["ratios"]) == {"eager", "eager channels-last", "compiled", "best vs best"}
    profiled = report["sections"]["profile"]["results"]
    assert all(r["aten_ops_per_step"] > 100 and len(r["top_operations"]) == 10 for r in profiled.values())
    parts = report["sections"]["profile"]["internet_plus_parts"]  # the smallest and largest inference batch
    assert set(parts) == {"1", "2"} and all(p["parts"]["PoseNet"]["calls_per_pass"] == 1 for p in parts.values())
    variants = report["sections"]["profile"]["attention_variants"]["results"]
    assert set(variants) == {"1", "2"} and all(len(v) == 4 for v in variants.values())
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert markdown.startswith("# GPU check — CPU dry run")
    assert "| interhand | decode_on=device |" in markdown and "| rhd | warp_on=device |" in markdown
    assert "| block attention: coordinate attention |" in markdown
    assert "| 1×1 convolutions as matrix products |" in markdown
    assert "The same network in `train.py`'s loop (`Trainer.fit`" in markdown
    assert "| AMP skipped steps | ms/step | first step s | fit s |" in markdown


def test_the_inference_compile_plan_is_keyed_by_mode_and_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled rows of Table 4 (run on a GPU only) on the CPU, with the copy's compilation replaced by the eager
    copy: each mode gets its options, its rows are keyed ``<precision>`` or ``<precision> reduce-overhead``, every
    pair is checked against eager, and the goals compute a ratio for every row both models have."""
    inference = importlib.import_module("internet_plus.tools.gpu_check.inference")
    real = inference.optimize_for_inference
    seen = []

    def uncompiled(model: torch.nn.Module, compile: bool = False, compile_options: dict | None = None, **kw):
        seen.append(compile_options)
        return real(model, **kw)

    monkeypatch.setattr(inference, "optimize_for_inference", uncompiled)
    settings = gc.Settings.dry()
    settings.compile, settings.warmup, settings.repeats = True, 0, 1
    plan = inference.compiled_plan(settings)
    assert plan == {"default": [("float16", 2), ("bfloat16", 2)], "reduce-overhead": [("float16", 1), ("float16", 2)]}
    # the CPU section measures float32 only: the plan's pairs are mapped onto it
    monkeypatch.setattr(
        inference, "compiled_plan", lambda s: {m: [("float32", b) for _, b in p] for m, p in plan.items()}
    )
    report = gc.Report()
    section = inference.inference_section(settings, report, gc.Budget(600.0))
    compiled_options = [o for o in seen if o is not None]
    assert compiled_options == [inference.COMPILE_OPTIONS["default"], inference.COMPILE_OPTIONS["reduce-overhead"]] * 2
    rows = section["results"]["internet_plus"]["compiled"]
    assert set(rows) == {"float32", "float32 reduce-overhead"} and set(rows["float32 reduce-overhead"]) == {"1", "2"}
    names = [c["name"] for c in report.checks if "torch.compile" in c["name"]]
    assert "internet_plus: torch.compile (reduce-overhead) == eager, float32, batch 1" in names
    assert not report.failed
    report.sections["inference"] = section
    ratios = gc.goals(report)["inference_ratios"]
    assert set(ratios) == {"eager float32", "compiled float32", "compiled float32 reduce-overhead"}
    assert all(o["dynamic"] is False for o in inference.COMPILE_OPTIONS.values())  # one graph per batch size

    class Broken(torch.nn.Module):  # a compilation that fails at its first call, as torch.compile does
        def forward(self, images: torch.Tensor) -> dict:
            raise RuntimeError("CUDA graphs: no")

    def broken_graphs(model: torch.nn.Module, compile: bool = False, compile_options: dict | None = None, **kw):
        graphs = compile_options == inference.COMPILE_OPTIONS["reduce-overhead"]
        return Broken() if graphs else real(model, **kw)

    monkeypatch.setattr(inference, "optimize_for_inference", broken_graphs)
    settings.backbones = ("internet_plus",)
    report = gc.Report()
    section = inference.inference_section(settings, report, gc.Budget(600.0))
    entry = section["results"]["internet_plus"]
    assert [c["name"] for c in report.failed] == [
        f"internet_plus: torch.compile (reduce-overhead), float32, batch {b}: ran" for b in (1, 2)
    ]
    assert set(entry["compile_errors"]) == {"reduce-overhead float32 batch 1", "reduce-overhead float32 batch 2"}
    assert set(entry["compiled"]) == {"float32"} and entry["eager"]["float32"]["2"]["images_per_s"] > 0


def test_on_a_gpu_the_compiled_training_adds_cuda_graphs_and_compiles_with_inductor() -> None:
    ct = importlib.import_module("internet_plus.tools.gpu_check.compiled_training")
    gpu = ct.variants(gc.Settings(device="cuda"))
    assert list(gpu) == ["eager", "eager channels-last", "compiled", "compiled reduce-overhead"]
    assert gpu["compiled"]["compile"] == {"backend": "inductor", "dynamic": False}
    assert gpu["compiled reduce-overhead"]["compile"]["mode"] == "reduce-overhead"
    assert uses_cuda_graphs(gpu["compiled reduce-overhead"]["compile"]) and not uses_cuda_graphs(
        gpu["compiled"]["compile"]
    )
    dry = ct.variants(gc.Settings.dry())
    assert (
        list(dry) == ["eager", "eager channels-last", "compiled"] and dry["compiled"]["compile"]["backend"] == "eager"
    )


def test_a_data_wait_run_that_fails_or_would_overrun_is_recorded_and_the_others_still_measure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The loader paths that never ran on a GPU (decode_on=device last) must not take the measured ones with them:
    a run that raises is a failed check with its error, one that would start past the budget is skipped; the goal
    is judged on the measured runs and the Markdown says which rows failed."""
    dw = importlib.import_module("internet_plus.tools.gpu_check.data_wait")
    monkeypatch.setattr(
        dw,
        "_data_wait_sets",
        lambda data_dir, settings: ({"rhd": tmp_path, "interhand": tmp_path}, {"rhd": 400.0, "interhand": 500.0}),
    )

    def measure(fmt, path, root, loader, steps_asked, precision, settings):
        if path == "decode_on=device":
            raise RuntimeError("nvjpeg: no")
        return {
            "steps": steps_asked,
            "step_ms_median": 30.0,
            "wait_ms_median": 1.0,
            "wait_ms_p90": 2.0,
            "data_wait_fraction": 0.03,
            "samples_per_s": 500.0,
            "fit_seconds": 1.0,
        }

    monkeypatch.setattr(dw, "_measure", measure)
    settings = gc.Settings.dry()
    settings.workers = [2]
    report = gc.Report()
    section = dw.data_wait(settings, report, tmp_path)
    by_path = {(r["format"], r["path"]): r for r in section["runs"]}
    assert by_path[("interhand", "decode_on=device")]["error"] == "RuntimeError: nvjpeg: no"
    auto = resolve_num_workers("auto")  # the device paths run at the auto worker count
    assert [c["name"] for c in report.failed] == [f"interhand decode_on=device workers {auto}: ran"]
    assert all("data_wait_fraction" in r for k, r in by_path.items() if k[1] != "decode_on=device")
    report.sections["data_wait"] = section
    assert gc.goals(report)["data_wait_goal_met"]  # judged on the measured worker runs
    markdown = "\n".join(report_md._md_data_wait(section))
    assert f"| interhand | decode_on=device | {auto} (auto) | error |" in markdown

    report = gc.Report()
    section = dw.data_wait(settings, report, tmp_path, gc.Budget(-1.0))  # no time left: every run skipped
    assert all("skipped" in r for r in section["runs"]) and not report.failed
    report.sections["data_wait"] = section
    assert "data_wait_goal_met" not in gc.goals(report)


def test_the_profile_counts_kernels_not_the_annotated_ranges_that_hold_them() -> None:
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    components = importlib.import_module("internet_plus.tools.gpu_check.components")
    kernel = SimpleNamespace(name="void cudnn::conv", device_type=DeviceType.CUDA, is_user_annotation=False)
    step_range = SimpleNamespace(name="Optimizer.step#AdamW.step", device_type=DeviceType.CUDA, is_user_annotation=True)
    host = SimpleNamespace(name="aten::conv2d", device_type=DeviceType.CPU, is_user_annotation=False)
    assert components.device_kernels([kernel, step_range, host]) == [kernel]


_COMPILE_CACHE_RUN = """
import json, sys
from pathlib import Path
import torch
from internet_plus.tools.gpu_check.compile_cache import CompileCache

folder, channels = Path(sys.argv[1]), int(sys.argv[2])
cache = CompileCache(folder)
cache.load()
model = torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3), torch.nn.ReLU(), torch.nn.Conv2d(channels, 4, 3))
model.compile(backend="inductor", dynamic=False)
model(torch.randn(2, 3, 12, 12)).sum().backward()
cache.save()
print(json.dumps(cache.summary()))
"""


@pytest.mark.slow
def test_the_compile_cache_carries_compilations_to_a_cold_machine_and_never_rewrites_an_earlier_file(
    tmp_path: Path,
) -> None:
    """Each run in a fresh process with an empty Inductor cache directory (a cold machine): the first compiles and
    writes its file; the second loads it and compiles nothing anew (cache hits, no new file); the third compiles
    another graph into a new file and leaves the first as it was."""
    folder = tmp_path / "cache"

    def run(channels: int, machine: str) -> dict:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / machine), "PYTHONPATH": str(ROOT / "src")}
        proc = subprocess.run(
            [sys.executable, "-c", _COMPILE_CACHE_RUN, str(folder), str(channels)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first = run(8, "machine1")
    assert first["files_loaded"] == [] and first["file_written"] == "compile_cache.bin"
    assert first["fxgraph_cache_miss"] >= 1 and first["new"].get("inductor", 0) >= 1
    written = (folder / "compile_cache.bin").read_bytes()

    second = run(8, "machine2")
    assert second["files_loaded"] == ["compile_cache.bin"] and second["fxgraph_cache_hit"] >= 1
    assert second["fxgraph_cache_miss"] == 0 and second["file_written"] is None

    third = run(6, "machine3")  # another graph
    assert third["file_written"] == "compile_cache-2.bin" and third["fxgraph_cache_miss"] >= 1
    assert (folder / "compile_cache.bin").read_bytes() == written
