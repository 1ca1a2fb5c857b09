"""InterNet+'s forward pass part by part (the GPU check's profile section), on the CPU: the ranges cover the right
modules, the parts add up, the model is left without hooks, and the kernel count walks the operation tree."""

from __future__ import annotations

import importlib
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from internet_plus.models.layers import CoordinateAttention, InvertedResidual, MetaAconC, MultiSpectralAttention
from internet_plus.tools.benchmark import build_model
from internet_plus.tools.gpu_check import components as comp
from internet_plus.tools.gpu_check.report_md import _md_parts, _md_profile
from internet_plus.tools.gpu_check.settings import Report, Settings


def _count(model: torch.nn.Module, cls: type) -> int:
    return sum(isinstance(m, cls) for m in model.backbone.modules())


@pytest.fixture(scope="module")
def internet_plus_costs() -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(0)
    model = build_model("internet_plus", 64)
    return model, comp.component_costs(model, torch.rand(2, 3, 64, 64), None, warmup=1, passes=2)


def test_each_part_is_timed_once_per_module_per_pass(internet_plus_costs: tuple[torch.nn.Module, dict]) -> None:
    model, costs = internet_plus_costs
    parts = costs["parts"]
    blocks = _count(model, InvertedResidual)
    assert (blocks, _count(model, CoordinateAttention)) == (13, 7)  # Table 1: 13 bottlenecks, 7 of them with CA
    expected_calls = {
        "block expansion 1×1": blocks,
        "block depthwise": blocks,
        "block projection 1×1": blocks,
        "block attention: coordinate attention": 7,
        "Meta-ACON-C": _count(model, MetaAconC),
        "FcaNet multi-spectral attention": _count(model, MultiSpectralAttention),
        "feature extractor": 1,
        "PoseNet": 1,
    }
    assert {k: v["calls_per_pass"] for k, v in parts.items() if k != comp.OTHER} == expected_calls
    assert list(parts)[-3:] == [comp.OTHER, "feature extractor", "PoseNet"]
    assert costs["timed_by"] == "host" and costs["batch_size"] == 2 and costs["dtype"] == "float32"


def test_the_parts_add_up_to_the_pass(internet_plus_costs: tuple[torch.nn.Module, dict]) -> None:
    model, costs = internet_plus_costs
    parts = costs["parts"]
    named = [k for k in parts if k not in (comp.OTHER, "feature extractor", "PoseNet")]
    whole = parts["feature extractor"]
    assert sum(parts[k]["host_ms_per_pass"] for k in [*named, comp.OTHER]) == pytest.approx(whole["host_ms_per_pass"])
    assert whole["share"] + parts["PoseNet"]["share"] == pytest.approx(1.0)
    assert costs["ms_per_pass"] == pytest.approx(whole["host_ms_per_pass"] + parts["PoseNet"]["host_ms_per_pass"])
    assert all(parts[k]["share"] > 0 for k in named) and parts[comp.OTHER]["share"] >= 0
    # the ranges are gone afterwards: the model runs without hooks
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_the_se_ablation_is_labelled_by_its_attention() -> None:
    torch.manual_seed(0)
    model = build_model("internet_plus_se", 64)
    labels = set(comp.labelled_parts(model).values())
    assert "block attention: SE" in labels and "block attention: coordinate attention" not in labels


def test_kernels_are_counted_through_the_operation_tree_and_the_ranges_own_spans_are_not() -> None:
    def k(name: str, us: float) -> SimpleNamespace:
        return SimpleNamespace(name=name, duration=us)

    conv = SimpleNamespace(kernels=[k("cudnn conv", 10.0), k("bias add", 2.0)], cpu_children=[])
    mul = SimpleNamespace(kernels=[k("elementwise mul", 3.0)], cpu_children=[])
    sigmoid = SimpleNamespace(kernels=[], cpu_children=[SimpleNamespace(kernels=[k("sigmoid", 1.0)], cpu_children=[])])
    # the range's own device-side span (a GPU user annotation holding the kernels above), if attached to it
    span = SimpleNamespace(kernels=[k(comp.PREFIX + "block depthwise", 16.0)], cpu_children=[conv, mul, sigmoid])
    by_kernel: Counter[str] = Counter()
    assert comp._device_work(span, by_kernel) == (16.0, 4)
    assert by_kernel.most_common(1) == [("cudnn conv", 10.0)] and comp.PREFIX + "block depthwise" not in by_kernel


def test_the_markdown_table_has_a_column_group_per_batch() -> None:
    part = {"calls_per_pass": 1.0, "host_ms_per_pass": 1.0, "device_ms_per_pass": 0.5, "kernels_per_pass": 12.0}
    ca = {**part, "share": 0.5, "top_kernels": [{"name": "reduce_kernel<float>", "ms_per_pass": 0.25}]}
    costs = {
        "timed_by": "device",
        "dtype": "float16",
        "parts": {"block attention: coordinate attention": ca, "PoseNet": {**part, "share": 0.5}},
    }
    by_batch = {"1": costs, "32": costs}
    lines = _md_parts(by_batch)
    top = "longest kernels: `reduce_kernel<float>` 0.250 ms"
    assert lines[-1] == f"- block attention: coordinate attention, batch 32, {top}"
    assert lines[0].startswith("InterNet+'s forward pass part by part (float16, eval; device time per pass)")
    assert "| part | batch 1: ms | share | kernels | batch 32: ms | share | kernels |" in lines
    assert "| PoseNet | 0.500 | 50.0 % | 12 | 0.500 | 50.0 % | 12 |" in lines


def test_a_failing_analysis_is_a_failed_check_and_the_profiles_other_figures_stay(monkeypatch) -> None:
    profile = importlib.import_module("internet_plus.tools.gpu_check.profile")
    monkeypatch.setattr(profile, "PAPER_MODELS", ("internet_plus",))

    def broken(settings, report):  # noqa: ANN001, ANN202
        raise RuntimeError("no kernels recorded")

    monkeypatch.setattr(profile, "attention_variants", broken)
    report = Report()
    section = profile.profile_section(Settings.dry(), report)
    assert section["attention_variants"] == {"error": "RuntimeError: no kernels recorded"}
    assert "aten_ops_per_step" in section["results"]["internet_plus"] and "1" in section["internet_plus_parts"]
    assert [c["name"] for c in report.failed] == ["CA variants: ran"]
    assert "- attention variants: error: RuntimeError: no kernels recorded" in _md_profile(section)
