"""The heatmap-loss memory meter and the lean loss's memory and gradient (performance target: lean peak memory per
sample at most half of the dense formulation's, gradients equal within a relative 1e-5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from internet_plus.models.codec import HeatmapCodec
from internet_plus.models.losses import dense_heatmap_mse, lean_heatmap_mse
from internet_plus.tools.loss_memory import compare_loss_memory, loss_peak_memory, main
from internet_plus.tools.memory import TensorMemoryMeter


def test_meter_counts_a_hand_computed_case() -> None:
    with TensorMemoryMeter() as meter:
        a = torch.empty(1000, dtype=torch.float32)  # 4000 B
        view = a.view(10, 100)  # same storage: nothing
        a.add_(1.0)  # in place: nothing
        b = torch.empty(500, dtype=torch.float64)  # 4000 B -> 8000 live
        c = view[:5].clone()  # 5 * 100 * 4 = 2000 B -> 10000 live (the peak)
        del a, view
        d = torch.empty(100, dtype=torch.int16)  # a freed: 4000 + 2000 + 200
    assert meter.peak == 10_000
    assert meter.current == 6_200
    del b, c, d


def test_meter_tracks_inputs_made_before_it() -> None:
    x = torch.ones(256)
    with TensorMemoryMeter() as meter:
        meter.track(x, x[:10])  # one storage, counted once
        y = x * 2.0
    assert meter.peak == 2 * 256 * 4
    del y


def _case(
    dtype: torch.dtype, batch: int = 3, joints: int = 5, size: int = 16
) -> tuple[HeatmapCodec, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    codec = HeatmapCodec(input_size=4 * size, heatmap_size=size, depth_bins=size)
    coords = torch.rand(batch, joints, 3, generator=g) * size
    valid = (torch.rand(batch, joints, generator=g) > 0.3).float()
    pred = codec.render(coords) + 20.0 * torch.randn(batch, joints, size, size, size, generator=g)
    return codec, pred.to(dtype).requires_grad_(True), coords, valid


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def test_lean_gradient_matches_dense_in_float32_with_an_upstream_gradient() -> None:
    """The hand-written backward: float32, a non-unit upstream gradient, relative difference <= 1e-5."""
    codec, pred, coords, valid = _case(torch.float32)
    (grad_lean,) = torch.autograd.grad(3.5 * lean_heatmap_mse(codec, pred, coords, valid), pred)
    (grad_dense,) = torch.autograd.grad(3.5 * dense_heatmap_mse(codec, pred, coords, valid), pred)
    assert grad_lean.dtype == torch.float32 and grad_lean.shape == pred.shape
    assert _relative(grad_lean, grad_dense) <= 1e-5
    masked = valid == 0
    assert torch.all(grad_lean[masked] == 0)


def test_lean_gradient_of_a_bfloat16_prediction_has_its_dtype() -> None:
    codec, pred, coords, valid = _case(torch.bfloat16)
    (grad_lean,) = torch.autograd.grad(lean_heatmap_mse(codec, pred, coords, valid), pred)
    (grad_dense,) = torch.autograd.grad(dense_heatmap_mse(codec, pred, coords, valid), pred)
    assert grad_lean.dtype == torch.bfloat16
    assert _relative(grad_lean, grad_dense) <= 1e-2  # both rounded to bfloat16 (8 bits of mantissa)


def test_lean_loss_with_differentiable_targets_falls_back_to_autograd() -> None:
    codec, pred, coords, valid = _case(torch.float64)
    coords = coords.double().requires_grad_(True)
    loss = lean_heatmap_mse(codec, pred, coords, valid.double())
    grad_pred, grad_coords = torch.autograd.grad(loss, (pred, coords))
    (grad_dense,) = torch.autograd.grad(dense_heatmap_mse(codec, pred, coords.detach(), valid.double()), pred)
    assert _relative(grad_pred, grad_dense) <= 1e-10
    assert torch.isfinite(grad_coords).all() and grad_coords.abs().sum() > 0


@pytest.mark.parametrize("batch", [1, 4])
def test_lean_peak_per_sample_is_at_most_half_of_dense(batch: int) -> None:
    """A deterministic count of tensor bytes (not a timing), so it is asserted."""
    codec = HeatmapCodec(input_size=64, heatmap_size=16, depth_bins=16)
    result = compare_loss_memory(codec, batch, num_joints=42)
    lean, dense = result["lean"], result["dense"]
    volume = batch * 42 * 16**3 * 4
    assert lean["prediction_bytes"] == volume
    assert lean["prediction_and_grad_bytes"] == 2 * volume
    # the dense path holds the prediction, its gradient and several target-sized temporaries
    assert dense["peak_bytes"] >= 4 * volume
    # the lean path: prediction, gradient and only plane-sized (1/D of a volume) extras
    assert lean["peak_bytes"] <= 2 * volume + volume // 8
    assert lean["peak_bytes_per_sample"] <= 0.5 * dense["peak_bytes_per_sample"]
    assert result["ratio_total_peak"] <= 0.5
    assert result["ratio_beyond_prediction_and_grad"] <= 0.1
    assert result["loss_relative_difference"] <= 1e-5


def test_peak_is_deterministic_and_scales_with_the_batch() -> None:
    codec = HeatmapCodec(input_size=32, heatmap_size=8, depth_bins=8)
    first = loss_peak_memory(codec, 2, dense=True, num_joints=4)
    again = loss_peak_memory(codec, 2, dense=True, num_joints=4)
    double = loss_peak_memory(codec, 4, dense=True, num_joints=4)
    assert first["peak_bytes"] == again["peak_bytes"]
    assert double["peak_bytes"] > first["peak_bytes"]


def test_cli_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mem.json"
    assert main(["--batch-size", "2", "--heatmap-size", "8", "--depth-bins", "8", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "total peak" in printed and "beyond prediction and gradient" in printed
    data = json.loads(out.read_text())
    assert set(data) >= {"lean", "dense", "ratio_total_peak", "ratio_beyond_prediction_and_grad"}
    assert data["lean"]["peak_bytes"] > 0 and data["dense"]["volume_shape"] == [8, 8, 8]
