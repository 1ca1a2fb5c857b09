"""The measuring scripts of ``experiments/performance`` compute what they claim (not timings: their logic)."""

from __future__ import annotations

import importlib.util
import itertools
from types import ModuleType

import pytest
import torch
from conftest import ROOT

from internet_plus.lit_module import HandPoseModule
from internet_plus.models.layers.depthwise import DepthwiseConv2d
from internet_plus.models.layers.gemm_deconv import GemmConvTranspose2d


def _script(name: str) -> ModuleType:
    path = ROOT / "experiments" / "performance" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"perf_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_ratio_is_the_median_of_per_pair_ratios(monkeypatch: pytest.MonkeyPatch) -> None:
    paired_ratios = _script("paired_ratios")
    # fast, slow alternate: (1, 2), (1, 3), (2, 3) -> ratios 2, 3, 1.5; median 2
    times = iter([1.0, 2.0, 1.0, 3.0, 2.0, 3.0])
    calls = itertools.count()

    def fake_seconds(fn: object) -> float:
        next(calls)
        return next(times)

    monkeypatch.setattr(paired_ratios, "_seconds", fake_seconds)
    untimed = []
    result = paired_ratios.paired(lambda: untimed.append("f"), lambda: untimed.append("s"), pairs=3, warmup=1)
    assert result["ratios"] == [1.5, 2.0, 3.0]
    assert result["ratio_median"] == 2.0 and result["ratio_min"] == 1.5 and result["ratio_max"] == 3.0
    assert result["internet_plus_median_s"] == 1.0 and result["internet_median_s"] == 3.0
    # one warm-up pair, then one untimed re-warming pass before every timed one
    assert untimed == ["f", "s"] + ["f", "s"] * 3 and next(calls) == 6


def test_training_rewrites_switches_each_change_off_and_on() -> None:
    training_rewrites = _script("training_rewrites")
    model = HandPoseModule(
        backbone={"name": "internet_plus"},
        posenet={"deconv_channels": 8, "depth_bins": 4, "root_depth_bins": 4},
        codec={"input_size": 64, "heatmap_size": 16, "depth_bins": 4, "root_depth_bins": 4},
    )
    training_rewrites._set_gemm_first_deconv(model, False)
    assert type(model.posenet.right_hand[0]) is torch.nn.ConvTranspose2d
    training_rewrites._set_gemm_first_deconv(model, True)
    assert type(model.posenet.left_hand[0]) is GemmConvTranspose2d
    training_rewrites._set_depthwise_threshold(model, training_rewrites.NEVER)
    depthwise = [m for m in model.modules() if isinstance(m, DepthwiseConv2d)]
    assert depthwise and all(m.channels_last_weight_grad_min_kernel == training_rewrites.NEVER for m in depthwise)
    assert DepthwiseConv2d.channels_last_weight_grad_min_kernel == 5  # the class default is untouched
