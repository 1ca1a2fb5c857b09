"""CUDA-only tests (``pytest -m gpu`` / ``make test-gpu``; deselected by default, so CI on CPUs runs none of them).

They cover what only a GPU exercises: 16-bit mixed-precision training steps (float16 through the GradScaler,
bfloat16 without), the lean heatmap loss's hand-written backward on CUDA against the dense reference, and the
inference copy (``optimize_for_inference``) against eager inference on CUDA.
"""

from __future__ import annotations

import math

import pytest
import torch

from internet_plus.benchmark import build_model, synthetic_batch, training_step_fn
from internet_plus.models.codec import HeatmapCodec
from internet_plus.models.inference import calibrate_batchnorm, optimize_for_inference

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_mixed_precision_training_steps_are_finite_and_learn(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = build_model("internet_plus", 128).to(CUDA).train()
    batch = synthetic_batch(4, 128, CUDA)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    losses: list[float] = []
    step = training_step_fn(model, batch, optimizer, amp_dtype=dtype, losses=losses)
    for _ in range(12):
        step()
    assert all(math.isfinite(v) for v in losses), losses
    assert sum(losses[-3:]) < sum(losses[:3]), losses  # one fixed batch: the loss must come down


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_lean_heatmap_loss_equals_dense_on_cuda(dtype: torch.dtype) -> None:
    codec = HeatmapCodec(input_size=128, heatmap_size=32, depth_bins=32)
    g = torch.Generator(device="cuda").manual_seed(0)
    pred = (torch.rand(2, 42, 32, 32, 32, generator=g, device=CUDA) * 255).to(dtype)
    joints = torch.rand(2, 42, 3, generator=g, device=CUDA) * torch.tensor([128.0, 128.0, 300.0], device=CUDA)
    joints[..., 2] -= 150.0
    valid = (torch.rand(2, 42, generator=g, device=CUDA) > 0.2).float()
    coords, mask = codec.encode_joints(joints, valid)
    values, grads = [], []
    for mse in (codec.heatmap_mse, codec.heatmap_mse_dense):
        p = pred.clone().requires_grad_(True)
        value = mse(p, coords, mask)
        value.backward()
        values.append(value.double())
        grads.append(p.grad.double())
    # both sum in float32; a 16-bit gradient may round one element to a neighbouring value
    tol = 1e-5 if dtype == torch.float32 else 1e-3
    assert values[0].item() == pytest.approx(values[1].item(), rel=1e-5)
    assert float((grads[0] - grads[1]).norm() / grads[1].norm()) < tol


@pytest.mark.parametrize("backbone", ["internet_plus", "resnet50"])
def test_inference_copy_matches_eager_on_cuda(backbone: str) -> None:
    torch.manual_seed(0)
    model = build_model(backbone, 128).to(CUDA)
    images = torch.rand(4, 3, 128, 128, device=CUDA)
    calibrate_batchnorm(model, images)  # untrained eval-mode features would be ~1e-16: nothing to compare
    fast = optimize_for_inference(model)
    with torch.inference_mode():
        ref, out = model(images), fast(images)
    assert float(ref["heatmaps"].abs().max()) > 1e-3
    for key in ("heatmaps", "root_bins", "hand_logits"):
        err = float((out[key].double() - ref[key].double()).norm() / ref[key].double().norm())
        assert err < 1e-2, (key, err)  # eager float32 convolutions run in TF32 on cuDNN (PyTorch's default)
