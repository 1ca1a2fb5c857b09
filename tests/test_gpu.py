"""CUDA-only tests (``pytest -m gpu`` / ``make test-gpu``; deselected by default, so CI on CPUs runs none of them).

They cover what only a GPU exercises: 16-bit mixed-precision training steps (float16 through the GradScaler,
bfloat16 without), the lean heatmap loss's hand-written backward on CUDA against the dense reference, and the
inference copy (``optimize_for_inference``) against eager inference on CUDA, the device warp and JPEG decoding, and
the compiled training step (Inductor, CUDA graphs) directly and through ``train.py``, ``train.py``'s loop
without a host synchronisation between its logging steps, and the GPU check's part-by-part device times.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import compose_config, tiny_train_overrides
from fakes.batch import training_batch

from internet_plus.checkpoints import load_model
from internet_plus.compile import compile_network, uses_cuda_graphs
from internet_plus.lit_module import HandPoseModule
from internet_plus.models.backbones.registry import backbone_config
from internet_plus.models.codec import HeatmapCodec
from internet_plus.models.inference import calibrate_batchnorm, optimize_for_inference
from internet_plus.models.losses import dense_heatmap_mse, lean_heatmap_mse
from internet_plus.resolvers import heatmap_size
from internet_plus.tasks import train as train_task

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")


def _model(backbone: str, input_size: int) -> HandPoseModule:
    """The whole model (PoseNet at InterNet's sizes) with a registry backbone, on the GPU."""
    codec = {"input_size": input_size, "heatmap_size": heatmap_size(input_size, 3)}
    return HandPoseModule(backbone=backbone_config(backbone), codec=codec).to(CUDA)


def _mixed_precision_step(
    model: HandPoseModule,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    dtype: torch.dtype,
) -> float:
    """One step as Lightning's ``16-mixed``/``bf16-mixed`` runs it: forward under autocast, the loss, backward
    through the ``GradScaler`` (enabled for float16 only) and the optimiser step; returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=dtype):
        outputs = model(batch["image"])
    loss = model.criterion({k: v.float() for k, v in outputs.items()}, batch)["loss"]
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_mixed_precision_training_steps_are_finite_and_learn(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = _model("internet_plus", 128).train()
    batch = training_batch(4, 128, CUDA)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    losses = [_mixed_precision_step(model, batch, optimizer, scaler, dtype) for _ in range(12)]
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
    for mse in (lean_heatmap_mse, dense_heatmap_mse):
        p = pred.clone().requires_grad_(True)
        value = mse(codec, p, coords, mask)
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
    model = _model(backbone, 128)
    images = torch.rand(4, 3, 128, 128, device=CUDA)
    calibrate_batchnorm(model, images)  # untrained eval-mode features would be ~1e-16: nothing to compare
    fast = optimize_for_inference(model)
    with torch.inference_mode():
        ref, out = model(images), fast(images)
    assert float(ref["heatmaps"].abs().max()) > 1e-3
    for key in ("heatmaps", "root_bins", "hand_logits"):
        err = float((out[key].double() - ref[key].double()).norm() / ref[key].double().norm())
        assert err < 1e-2, (key, err)  # eager float32 convolutions run in TF32 on cuDNN (PyTorch's default)


def test_device_warp_on_cuda_equals_the_cpu_warp() -> None:
    """data.warp_on=device: the batched warp gives the same crops on the GPU as on the CPU (float32 both; the
    sampling matrix is composed in float64 on each, and ``grid_sample``'s float32 arithmetic rounds differently on
    the two: within 0.13 grey level)."""
    from internet_plus.data.device_warp import warp_batch
    from internet_plus.data.transforms import AugParams, crop_affine

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 480, 640), dtype=torch.uint8, generator=generator)
    params = [AugParams(shift=(0.1, -0.05), scale=1.1, rotation=30.0 * k, flip=k % 2 == 1) for k in range(4)]
    trans = torch.stack([torch.as_tensor(crop_affine([200, 100, 220, 220], p, 256, 640)[0]) for p in params]).float()
    colors = torch.tensor([[1.0, 1.1, 0.9]] * 4)
    on_cpu = warp_batch(images, trans, colors, 256)
    on_gpu = warp_batch(images.cuda(), trans.cuda(), colors.cuda(), 256).cpu()
    assert (on_gpu - on_cpu).abs().max() <= 5e-4


def test_device_jpeg_decoding_on_cuda_is_close_to_the_cpu_decoder(real_samples) -> None:
    """data.decode_on=device: nvJPEG's pixels against the CPU decoder's (libjpeg-turbo, bit-identical to OpenCV's).
    nvJPEG repeats the chroma samples of these 4:2:0 JPEGs where libjpeg-turbo interpolates them, so pixels at colour
    edges can differ by many levels: the bounds are on the mean and on the share of larger differences, as
    torchvision's own test bounds the mean."""
    from internet_plus.data.device_decode import decode_jpegs

    files = sorted((real_samples / "interhand2.6m").glob("*.jpg"))
    data = [torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8) for path in files]
    on_cpu = decode_jpegs(data, "cpu").int()
    on_gpu = decode_jpegs(data, "cuda").cpu().int()
    assert on_gpu.shape == on_cpu.shape
    diff = (on_gpu - on_cpu).abs().float()
    assert float(diff.mean()) <= 1.0 and float((diff > 2).float().mean()) <= 0.05, (diff.mean(), (diff > 2).sum())


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_training_steps_on_cuda_follow_eager(mode: str) -> None:
    """Inductor (and CUDA graphs under ``reduce-overhead``) on the training step, as ``compile.enabled=true`` runs
    it: the same first loss as eager from the same weights, and a loss that falls like eager's."""
    torch.manual_seed(0)
    eager = _model("internet_plus", 128).train()
    compiled = _model("internet_plus", 128).train()
    compiled.load_state_dict(eager.state_dict())
    options = {"backend": "inductor", "dynamic": False, "fullgraph": True}
    if mode != "default":
        options["mode"] = mode
    compile_network(compiled, options)
    batch = training_batch(4, 128, CUDA)
    curves = []
    for model in (eager, compiled):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        losses = []
        for _ in range(8):
            if uses_cuda_graphs(options) and model is compiled:
                torch.compiler.cudagraph_mark_step_begin()
            losses.append(_mixed_precision_step(model, batch, optimizer, scaler, torch.bfloat16))
        curves.append(losses)
    assert all(math.isfinite(v) for v in curves[1])
    assert curves[1][0] == pytest.approx(curves[0][0], rel=2e-2)
    assert curves[1][-1] < curves[1][0] and curves[1][-1] == pytest.approx(curves[0][-1], rel=0.1)


def test_train_py_with_cuda_graphs_on_a_gpu(synthetic_root: Path, tmp_path: Path) -> None:
    """``train.py trainer=gpu compile.enabled=true compile.mode=reduce-overhead``: Lightning's 16-mixed loop around
    the compiled, graph-replayed network, through training, validation (eval graphs) and training again; CUDA graphs
    actually used (PyTorch falls back to plain compiled kernels with only a warning), finite test metrics and a
    checkpoint that loads into the eager model."""
    from torch._dynamo.utils import counters

    overrides = [o for o in tiny_train_overrides(synthetic_root, tmp_path) if o != "trainer=cpu"]
    overrides += ["trainer=gpu", "compile.enabled=true", "compile.mode=reduce-overhead", "trainer.max_epochs=2"]
    overrides += ["+trainer.limit_train_batches=3"]
    run_dir = tmp_path / "run"
    skips_before = counters["inductor"]["cudagraph_skips"]
    results = train_task.run(compose_config("train", overrides, run_dir))
    assert counters["inductor"]["cudagraph_skips"] == skips_before, dict(counters["inductor"])
    assert math.isfinite(results["test/epe_mm"])
    eager = load_model(run_dir / "checkpoints" / "last.ckpt")
    assert sum(p.numel() for p in eager.parameters()) > 0


class _NoSyncBetweenLoggingSteps(pl.Callback):
    """CUDA's synchronisation check in ``error`` mode from each step's start to the next, except in the steps that
    may read the device: the first of an epoch and Lightning's logging steps (every ``log_every_n_steps``)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.checked_steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: D102
        may_read = batch_idx == 0 or (trainer.global_step + 1) % self.every == 0
        torch.cuda.set_sync_debug_mode(0 if may_read else "error")
        self.checked_steps += not may_read

    def on_validation_start(self, trainer, pl_module) -> None:  # noqa: D102
        torch.cuda.set_sync_debug_mode(0)

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: D102
        torch.cuda.set_sync_debug_mode(0)


def test_train_py_on_a_gpu_synchronises_only_at_logging_steps(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``train.py trainer=gpu`` (16-bit mixed precision, the fused AdamW that ``internet_plus.optim`` picks on CUDA,
    the progress bar on, pinned batches): no operation between two logging steps waits for the GPU, or CUDA's
    synchronisation check raises inside the step that did."""
    check = _NoSyncBetweenLoggingSteps(every=4)
    original_callbacks = train_task.instantiate_callbacks
    monkeypatch.setattr(train_task, "instantiate_callbacks", lambda node: [*original_callbacks(node), check])
    drop = {"trainer=cpu", "trainer.enable_progress_bar=false", "data.pin_memory=false"}
    overrides = [o for o in tiny_train_overrides(synthetic_root, tmp_path) if o not in drop]
    overrides += ["trainer=gpu", "trainer.max_epochs=2", "trainer.log_every_n_steps=4", "data.num_workers=2"]
    try:
        results = train_task.run(compose_config("train", overrides, tmp_path / "run"))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert math.isfinite(results["test/epe_mm"])
    assert check.checked_steps >= 20  # 2 epochs of 15 steps, of which 8 may read


def test_the_forward_pass_part_by_part_measures_device_time_on_cuda() -> None:
    """The profile section's breakdown on CUDA: every part launches kernels and has device time, the parts add up
    to the pass, and the ranges' own device-side spans are not counted as kernels."""
    from internet_plus.tools.gpu_check import components as comp

    torch.manual_seed(0)
    model = _model("internet_plus", 128)
    costs = comp.component_costs(model, torch.rand(4, 3, 128, 128, device=CUDA), torch.float16, warmup=2, passes=3)
    parts = costs["parts"]
    assert costs["timed_by"] == "device"
    named = [k for k in parts if k not in (comp.OTHER, comp.FEATURE_EXTRACTOR, comp.POSENET)]
    assert all(parts[k]["device_ms_per_pass"] > 0 and parts[k]["kernels_per_pass"] >= 1 for k in named)
    assert all(1 <= len(parts[k]["top_kernels"]) <= comp.TOP_KERNELS for k in named)
    whole = parts[comp.FEATURE_EXTRACTOR]
    named_ms = sum(parts[k]["device_ms_per_pass"] for k in [*named, comp.OTHER])
    assert named_ms == pytest.approx(whole["device_ms_per_pass"])
    assert parts[comp.OTHER]["kernels_per_pass"] >= 0 and parts[comp.OTHER]["device_ms_per_pass"] >= 0
    # the parts hold nearly every kernel of the pass (all but the input normalisation) and none twice
    every = costs["device_ms_per_pass_all_kernels"]
    assert 0.8 * every <= costs["ms_per_pass"] <= every * 1.001
