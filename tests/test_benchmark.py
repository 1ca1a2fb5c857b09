"""The benchmark's tiny mode produces complete JSON and prints the paper's Tables 3 and 4 beside ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from internet_plus.models.backbones.registry import backbone_names
from internet_plus.models.summary import count_parameters, model_summary
from internet_plus.tools.benchmark import PAPER_TABLES_3_4, build_model, main, parse_args
from internet_plus.tools.memory import PeakMemory

INTERNET_PLUS_FE = 11_103_221
RESNET50_FE = 23_508_032
POSENET_2048 = 23_797_442


def test_tiny_benchmark_json_and_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["--tiny", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())

    config, results = report["config"], report["results"]
    assert config["input_size"] == 64 and config["batch_sizes"] == [1, 2]
    assert set(results) == {"internet_plus", "resnet50"}
    assert report["machine"]["matmul_gflops"] > 0
    for res in results.values():
        assert set(res["inference"]) == {"1", "2"}
        for entry in res["inference"].values():
            assert entry["images_per_s"] > 0 and entry["flop_bound_fraction"] > 0
        assert res["train"]["time_per_iteration_s"] > 0 and res["train"]["images_per_s"] > 0
        assert all(loss == loss for loss in res["train"]["losses"])  # finite, not NaN
        assert res["gflops_per_image"] > res["feature_extractor_gflops_per_image"] > 0
        assert res["flop_bound_images_per_s"] > 0
        assert res["posenet_params"] == POSENET_2048
        assert res["model_params"] == res["feature_extractor_params"] + POSENET_2048
    plus, internet = results["internet_plus"], results["resnet50"]
    assert plus["feature_extractor_params"] == INTERNET_PLUS_FE
    assert internet["feature_extractor_params"] == RESNET50_FE
    assert plus["feature_extractor_mib"] == pytest.approx(INTERNET_PLUS_FE * 4 / 2**20)
    assert internet["gflops_per_image"] > plus["gflops_per_image"]
    assert set(report["ratios"]["internet_plus"]["throughput"]) == {"1", "2"}

    # The printed tables carry the paper's Table 3 and Table 4 figures.
    for row in PAPER_TABLES_3_4["table3"].values():
        for value in row.values():
            assert f"{value:.2f}" in printed
    for row in PAPER_TABLES_3_4["table4"].values():
        for value in row.values():
            assert f"{value:.2f}" in printed
    assert "Table 3" in printed and "Table 4" in printed and "InterNet+/InterNet" in printed


@pytest.mark.parametrize(("backbone", "fe_params"), [("internet_plus", INTERNET_PLUS_FE), ("resnet50", RESNET50_FE)])
def test_parameter_counts_match_model_summary(backbone: str, fe_params: int) -> None:
    model = build_model(backbone, 64)
    assert count_parameters(model.backbone) == fe_params
    total = fe_params + POSENET_2048
    assert f"Backbone + PoseNet: {total:,} parameters" in model_summary(model, 64)


def test_tiny_overrides_sizes() -> None:
    args = parse_args(["--tiny", "--backbones", "internet_plus,internet_plus_se,resnet50"])
    assert (args.input_size, args.batch_sizes, args.repeats, args.warmup) == (64, [1, 2], 1, 0)
    assert args.backbones == ["internet_plus", "resnet50"]
    assert parse_args([]).backbones == backbone_names()  # by default every member of the registry
    with pytest.raises(SystemExit):
        parse_args(["--backbones", "vgg"])


def test_tiny_benchmark_with_inference_optimizations(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["--tiny", "--optimize", "--backbones", "internet_plus", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["config"]["optimize"] is True and report["config"]["compile"] is False
    inference = report["results"]["internet_plus"]["inference"]
    assert all(entry["images_per_s"] > 0 for entry in inference.values())
    assert "first_pass_s" not in inference["1"]  # only compiled runs report a compilation pass


def test_training_only_benchmark_reports_training_and_tensor_peak(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["--tiny", "--no-inference", "--keep-freed-memory", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["config"]["batch_sizes"] == [] and report["config"]["keep_freed_memory"] is True
    for res in report["results"].values():
        assert res["inference"] == {}
        # The tensor meter counts at least the heatmap volume and its gradient (2 × 42×16×16×16 floats at 64 px).
        assert res["train"]["peak_memory_mib"] > 2 * 2 * 42 * 16**3 * 4 / 2**20


def test_cpu_peak_memory_does_not_count_existing_tensors_seen_through_views() -> None:
    """A step that reshapes a weight for a matrix product allocates only its product, not the weight again."""
    weight = torch.randn(256, 1024)  # 1 MiB
    x = torch.randn(8, 256)

    def step() -> None:
        x @ weight.view(256, 4, 256).reshape(256, 1024)  # views of the weight, then an 8×1024 product (32 KiB)

    tracker = PeakMemory(torch.device("cpu"))
    naive = tracker.measure(step)
    assert naive is not None and naive >= 1.0  # the weight's storage, seen as an operator output, was counted
    measured = tracker.measure(step, existing=[weight, x])
    assert measured is not None and measured == pytest.approx(8 * 1024 * 4 / 2**20)
