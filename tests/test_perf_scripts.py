"""The measuring scripts of ``internet_plus.tools`` compute what they claim (not timings: their logic)."""

from __future__ import annotations

import itertools

import pytest
import torch
from fakes.batch import training_batch

from internet_plus.accel import GemmConvTranspose2d
from internet_plus.lit_module import HandPoseModule
from internet_plus.models.backbones.registry import backbone_config
from internet_plus.tools import paired_ratios, training_rewrites


def test_paired_ratio_is_the_median_of_per_pair_ratios(monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_training_rewrites_measures_each_step_as_labelled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each row switches on what its label says, and only that (the cells run a tiny model, timings faked)."""
    kept, built = [], []
    monkeypatch.setattr(training_rewrites, "keep_freed_memory", lambda: kept.append(True))
    monkeypatch.setattr(training_rewrites, "timed_runs", lambda fn, device, warmup, repeats: [fn() or 1.0] * repeats)

    def tiny(backbone: str, input_size: int) -> HandPoseModule:
        model = HandPoseModule(
            backbone=backbone_config(backbone),
            posenet={"deconv_channels": 8, "depth_bins": 4, "root_depth_bins": 4},
            codec={"input_size": 64, "heatmap_size": 16, "depth_bins": 4, "root_depth_bins": 4},
        )
        built.append(model)
        return model

    monkeypatch.setattr(training_rewrites, "build_model", tiny)
    monkeypatch.setattr(training_rewrites, "synthetic_batch", lambda b, s, d: training_batch(b, 64))
    for step, (_, keep_memory, gemm) in enumerate(training_rewrites.STEPS):
        kept.clear()
        assert training_rewrites._measure_cell(step, "internet_plus", 2, repeats=1) == 1.0
        assert bool(kept) == keep_memory
        first = type(built[-1].posenet.right_hand[0])
        assert (first is GemmConvTranspose2d) == gemm and issubclass(first, torch.nn.ConvTranspose2d)
