"""Coordinate attention written other ways (the GPU check's profile section), on the CPU: the matrix-product form
equals the module, every formulation leaves the model as it was, and the section times and compares them."""

from __future__ import annotations

import copy

import pytest
import torch

from internet_plus.models.inference import calibrate_batchnorm
from internet_plus.models.layers import CoordinateAttention
from internet_plus.tools.benchmark import build_model
from internet_plus.tools.gpu_check import attention_variants as av
from internet_plus.tools.gpu_check.report_md import _md_attention_variants
from internet_plus.tools.gpu_check.settings import Report, Settings


def _trained_like(module: CoordinateAttention) -> CoordinateAttention:
    """Random BatchNorm statistics and affine terms, as after training (the initial ones are 0, 1, 1, 0)."""
    bn = module.bn1
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    torch.nn.init.uniform_(bn.weight, 0.5, 1.5)
    torch.nn.init.uniform_(bn.bias, -0.3, 0.3)
    return module.eval()


@pytest.mark.parametrize(("channels", "h", "w"), [(48, 16, 16), (240, 8, 12), (16, 5, 3)])
def test_the_matrix_product_form_equals_the_module(channels: int, h: int, w: int) -> None:
    torch.manual_seed(0)
    module = _trained_like(CoordinateAttention(channels).double())
    x = torch.randn(3, channels, h, w, dtype=torch.float64)
    expected = module(x)
    assert torch.allclose(av.attention_as_matmuls(module, x), expected, rtol=1e-12, atol=1e-12)
    # in training mode too: the batch statistics of the strip, and the same running-statistics update
    twin = copy.deepcopy(module).train()
    module.train()
    assert torch.allclose(av.attention_as_matmuls(twin, x), module(x), rtol=1e-12, atol=1e-12)
    for a, b in zip(twin.bn1.buffers(), module.bn1.buffers(), strict=True):
        assert torch.allclose(a.double(), b.double(), rtol=1e-12, atol=1e-12)
    assert int(twin.bn1.num_batches_tracked) == 1


def test_each_formulation_is_undone_on_exit() -> None:
    torch.manual_seed(0)
    model = build_model("internet_plus", 64)
    x = torch.rand(2, 3, 64, 64)
    calibrate_batchnorm(model, x)  # features of order one, as in a trained model (see attention_variants)
    model.eval()
    with torch.no_grad():
        before = model(x)["heatmaps"]
    for name in av.FORMULATIONS:
        with av.formulation(model, name) as layout:
            with torch.no_grad():
                inside = model(layout(x))["heatmaps"]
            if name == av.CHANNELS_LAST:
                assert layout(x).is_contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            assert torch.equal(model(x)["heatmaps"], before), name
        assert all("forward" not in m.__dict__ for m in model.modules() if isinstance(m, CoordinateAttention))
        assert all(p.is_contiguous() for p in model.parameters())
        if name == av.WITHOUT:
            assert not torch.allclose(inside, before)  # the attention did something
    with pytest.raises(ValueError, match="unknown formulation"), av.formulation(model, "fused"):
        pass


def test_the_section_times_every_formulation_and_checks_the_equal_ones() -> None:
    report = Report()
    section = av.attention_variants(Settings.dry(), report)
    assert section["precision"] == "float32" and set(section["results"]) == {"1", "2"}
    for entry in section["results"].values():
        assert list(entry) == list(av.FORMULATIONS)
        assert all(r["images_per_s"] > 0 for r in entry.values())
        assert "output_rel_err" not in entry[av.WITHOUT] and "speedup" not in entry[av.AS_BUILT]
        assert max(entry[av.AS_MATMULS]["output_rel_err"].values()) < 1e-4  # float32 summation order
    training = section["training"]["results"]
    assert list(training) == list(av.FORMULATIONS) and all(r["time_per_iteration_s"] > 0 for r in training.values())
    assert training[av.AS_MATMULS]["first_loss_rel_err"] < 1e-5  # the same weights, the same first loss
    # the equal formulations are checks (2 per batch, 2 for training); the identity is not compared
    assert len(report.checks) == 6 and not report.failed
    lines = _md_attention_variants(section)
    assert lines[2] == (
        "| coordinate attention | eval batch 1: images/s | vs as built | eval batch 2: images/s | vs as built "
        "| training ms/iteration | vs as built |"
    )
    assert lines[4].startswith("| as built |") and lines[4].count("–") == 3
