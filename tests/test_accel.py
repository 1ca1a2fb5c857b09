"""``accel: auto | off`` (``src/internet_plus/accel.py``): the CPU speed-ups change no value, apply only where they
should, and leave the model classes plain (every speed-up keeps a test that guards its exactness)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from internet_plus import accel
from internet_plus.accel import GemmConvTranspose2d, gemm_first_deconvolutions, plain_first_deconvolutions
from internet_plus.lit_module import HandPoseModule
from internet_plus.models.backbones.internet_plus import InterNetPlusBackbone
from internet_plus.models.inference import optimize_for_inference
from internet_plus.models.posenet import PoseNet

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _gemm_copy(deconv: nn.ConvTranspose2d) -> GemmConvTranspose2d:
    gemm = GemmConvTranspose2d(
        deconv.in_channels,
        deconv.out_channels,
        deconv.kernel_size,
        stride=deconv.stride,
        padding=deconv.padding,
        bias=deconv.bias is not None,
    )
    gemm.load_state_dict(deconv.state_dict())
    return gemm


# ------------------------------------------------------------------------------------------ GEMM + col2im layer
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "bias", "channels_last"),
    [
        (4, 2, 1, False, True),
        (4, 2, 1, True, False),
        (3, 1, 1, True, True),
        (2, 2, 0, False, False),
        (5, 3, 2, True, True),
    ],
)
def test_gemm_conv_transpose_equals_conv_transpose_values_and_gradients(
    kernel: int, stride: int, padding: int, bias: bool, channels_last: bool
) -> None:
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(24, 10, kernel, stride=stride, padding=padding, bias=bias)
    gemm = _gemm_copy(deconv)
    assert gemm.state_dict().keys() == deconv.state_dict().keys()
    x = torch.randn(3, 24, 5, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    want, got = deconv(x), gemm(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    grad_out = torch.randn(want.shape)
    want_grads = torch.autograd.grad(want, (x, *deconv.parameters()), grad_out)
    got_grads = torch.autograd.grad(got, (x, *gemm.parameters()), grad_out)
    for w, g in zip(want_grads, got_grads, strict=True):
        assert (g - w).abs().max() <= 1e-5 * w.abs().max()


def test_gemm_conv_transpose_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(ValueError, match="groups=1"):
        GemmConvTranspose2d(4, 4, 4, stride=2, padding=1, groups=2)
    with pytest.raises(ValueError, match="output_padding"):
        GemmConvTranspose2d(4, 4, 4, stride=2, padding=1, output_padding=1)


def test_gemm_conv_transpose_keeps_its_weight_in_the_standard_layout() -> None:
    """``.to(channels_last)`` must not leave a weight that every forward would have to copy into a matrix."""
    layer = GemmConvTranspose2d(16, 8, 4, stride=2, padding=1).to(memory_format=torch.channels_last)
    assert layer.weight.is_contiguous()


@pytest.mark.parametrize("bias", [False, True])
def test_gemm_conv_transpose_under_bfloat16_autocast_is_as_accurate_as_onednn(bias: bool) -> None:
    """16-bit columns are summed in float32 (as a convolution accumulates); the output keeps autocast's dtype."""
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(256, 64, 4, stride=2, padding=1, bias=bias)
    gemm = _gemm_copy(deconv)
    x = torch.randn(4, 256, 8, 8)
    with torch.no_grad():
        reference = deconv(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            onednn, got = deconv(x), gemm(x)
    assert got.dtype == onednn.dtype == torch.bfloat16
    scale = reference.abs().max()
    onednn_error = (onednn.float() - reference).abs().max() / scale
    assert (got.float() - reference).abs().max() / scale <= 1.25 * onednn_error


# ------------------------------------------------------------------------------------------ the plain model
def test_a_built_model_has_only_torch_layers_and_the_papers_own() -> None:
    """No CPU kernel is part of the model as built: every module class is torch.nn's or the project's model code."""
    model = HandPoseModule(
        backbone={"_target_": "internet_plus.models.backbones.internet_plus.InterNetPlusBackbone"},
        codec={"input_size": 64, "heatmap_size": 16, "depth_bins": 8},
        posenet={"deconv_channels": 32, "depth_bins": 8},
    )
    network = [*model.backbone.modules(), *model.posenet.modules()]
    modules = {type(m).__module__ for m in network}
    foreign = {m for m in modules if not m.startswith(("torch.nn.", "internet_plus.models."))}
    assert not foreign, foreign
    assert not any(isinstance(m, GemmConvTranspose2d) for m in model.modules())
    depthwise = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1]
    assert depthwise and all(type(m) is nn.Conv2d for m in depthwise)


def test_swapping_the_first_deconvolutions_keeps_parameters_values_and_checkpoints() -> None:
    torch.manual_seed(0)
    posenet = PoseNet(in_channels=64, deconv_channels=16, depth_bins=4, root_depth_bins=4).eval()
    params = [id(p) for p in posenet.parameters()]
    state = {k: v.clone() for k, v in posenet.state_dict().items()}
    x = torch.randn(2, 64, 4, 4)
    with torch.no_grad():
        want = posenet(x)["heatmaps"]
    assert gemm_first_deconvolutions(posenet) == 2  # one per hand branch, only the first layer
    for branch in (posenet.right_hand, posenet.left_hand):
        assert type(branch[0]) is GemmConvTranspose2d
        assert all(type(m) is nn.ConvTranspose2d for m in list(branch)[1:] if isinstance(m, nn.ConvTranspose2d))
    assert [id(p) for p in posenet.parameters()] == params  # an optimiser holding them keeps working
    assert posenet.state_dict().keys() == state.keys()
    with torch.no_grad():
        torch.testing.assert_close(posenet(x)["heatmaps"], want, rtol=1e-5, atol=1e-5)
    fresh = PoseNet(in_channels=64, deconv_channels=16, depth_bins=4, root_depth_bins=4)
    fresh.load_state_dict(posenet.state_dict())  # a checkpoint saved with the swap loads into the plain model
    assert gemm_first_deconvolutions(posenet) == 0  # idempotent
    assert plain_first_deconvolutions(posenet) == 2
    assert type(posenet.right_hand[0]) is nn.ConvTranspose2d


def test_accelerate_inference_applies_on_the_cpu_with_auto_only() -> None:
    model = HandPoseModule(
        backbone={"_target_": "internet_plus.models.backbones.internet_plus.InterNetPlusBackbone"},
        codec={"input_size": 64, "heatmap_size": 16, "depth_bins": 8},
        posenet={"deconv_channels": 32, "depth_bins": 8},
    ).eval()
    fast = optimize_for_inference(model)
    accel.accelerate_inference(fast, "off")
    assert type(fast.posenet.merged_heatmaps.layers[0]) is nn.ConvTranspose2d
    accel.accelerate_inference(fast, "auto")
    assert type(fast.posenet.merged_heatmaps.layers[0]) is GemmConvTranspose2d  # the merged 2048 -> 2·C layer
    assert type(fast.posenet.merged_heatmaps.layers[3]) is nn.ConvTranspose2d  # grouped: not GEMM's
    assert accel.applies("auto", "cpu") and not accel.applies("auto", "cuda") and not accel.applies("off", "cpu")
    with pytest.raises(ValueError, match="accel='fast' is not a mode; valid: auto, off"):
        accel.check_accel("fast")


class _TinyPoseModule(pl.LightningModule):
    """PoseNet alone, a step that runs it: all the callback needs."""

    def __init__(self) -> None:
        super().__init__()
        self.posenet = PoseNet(in_channels=16, deconv_channels=8, depth_bins=4, root_depth_bins=4)
        self.seen: dict[str, type] = {}

    def _step(self, features: torch.Tensor, stage: str) -> torch.Tensor:
        self.seen[stage] = type(self.posenet.right_hand[0])
        return self.posenet(features)["heatmaps"].square().mean()

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:  # noqa: D102
        return self._step(batch, "fit")

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:  # noqa: D102
        return self._step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:  # noqa: D102
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize(("mode", "test_layer"), [("auto", GemmConvTranspose2d), ("off", nn.ConvTranspose2d)])
def test_the_callback_uses_gemm_for_testing_only(mode: str, test_layer: type) -> None:
    """Training keeps the plain layer (GEMM's gain there is under 5 %); testing on the CPU uses GEMM with ``auto``;
    the module leaves the run as it was built."""
    model = _TinyPoseModule()
    loader = torch.utils.data.DataLoader([torch.randn(2, 16, 2, 2)], batch_size=None)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=1,
        callbacks=[accel.Accel(mode)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dataloaders=loader)
    trainer.test(model, dataloaders=loader, verbose=False)
    assert model.seen == {"fit": nn.ConvTranspose2d, "test": test_layer}
    assert type(model.posenet.right_hand[0]) is nn.ConvTranspose2d


def test_internet_plus_backbone_builds_plain_depthwise_convolutions() -> None:
    backbone = InterNetPlusBackbone()
    assert not {type(m).__name__ for m in backbone.modules()} & {"DepthwiseConv2d", "GemmConvTranspose2d"}


# ------------------------------------------------------------------------------------------ the allocator
#: Run a 1×1 convolution with a 32 MiB output 4 times (as inference does with PoseNet's volumes), then count the page
#: faults of each of 5 more passes and print the fewest: on a busy machine (the suite's parallel workers) a pass now
#: and then maps its pages anew even with the memory kept, but never all five; without it every pass does.
PROBE = """
import resource, sys, torch
if sys.argv[1] == "keep":
    from internet_plus.accel import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()  # applied, and idempotent
torch.manual_seed(0)
conv, x = torch.nn.Conv2d(64, 256, 1), torch.randn(8, 64, 64, 64)
faults = []
with torch.inference_mode():
    for _ in range(4):
        conv(x)
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        y = conv(x)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(min(faults), float(y.double().sum()))
"""


def _faults(mode: str) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    faults, total = out.split()
    return int(faults), float(total)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_kept_memory_is_reused_without_page_faults() -> None:
    default_faults, default_sum = _faults("default")
    kept_faults, kept_sum = _faults("keep")
    assert default_faults > 8_000  # 32 MiB of 4 KiB pages mapped anew
    assert kept_faults < 1_000
    assert kept_sum == default_sum  # the same result
