"""Inference-time rewrites of a trained model that keep its outputs (performance target 1).

:func:`optimize_for_inference` returns a frozen copy of a :class:`~internet_plus.lit_module.HandPoseModule` whose
forward pass gives the same outputs up to floating-point rounding, faster:

* **Batch norm folded into the preceding convolution** (:func:`fold_batchnorm`). In eval mode BN is the affine map
  ``y = γ·(x − μ)/√(σ² + ε) + β`` per channel, so it folds exactly into the weights and bias of the convolution or
  transposed convolution in front of it (``torch.nn.utils.fusion.fuse_conv_bn_eval``). This covers every
  conv → BN pair of the InterNet+ feature extractor (Table 1 rows, the inverted residuals, coordinate attention's
  and Meta-ACON-C's 1×1 convolutions), of torchvision's ResNet-50 and of PoseNet's deconvolutions.
* **Last Conv's stride moved into IR13's projection** (:func:`hoist_strides_into_projections`). Table 1 halves the
  map in a 1×1 convolution with stride 2 right after a pointwise projection + BN, so the projection computed 3 of
  every 4 of its outputs (8.5 GFLOPs per batch of 8) only for them to be skipped; with the stride moved, it computes
  just the positions that are read. Exact in eval mode.
* **PoseNet's two hand branches merged** (:class:`MergedHeatmapBranches`). InterNet runs the right- and the
  left-hand branch on the same features and concatenates their 21×64-channel outputs, a copy of the largest tensor
  of the whole network (42×64³ floats per image). Merged, the first deconvolution is one 2048 -> 512 deconvolution
  (the two weights side by side), the other layers are grouped convolutions with 2 groups (one per hand), and the
  heatmap volume comes out of the last grouped 1×1 convolution already in place: no concatenation, and half the
  number of kernel calls, each twice as wide.
* **Channels-last memory format** (NHWC), which oneDNN's depthwise and 1×1 convolutions prefer on the CPU and
  tensor cores prefer on the GPU.
* optionally **``torch.compile``**, which fuses the chains of element-wise operations (hard-swish, coordinate
  attention's products, ACON-C) into single loops.

The CPU's own speed-up for PoseNet's first deconvolution is not here: ``accel=auto`` applies it to the copy
(:func:`internet_plus.accel.accelerate_inference`).

The result is for inference only: gradients are off, BN statistics are frozen into weights, and the module keeps the
forward signature ``images -> outputs dict`` of the original. Tests (``tests/test_inference_optimizations.py``)
check each rewrite against the unmodified model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from internet_plus.models.layers.inverted_residual import InvertedResidual

if TYPE_CHECKING:
    from internet_plus.lit_module import HandPoseModule
    from internet_plus.models.posenet import HeatmapBranch, PoseNet

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)

#: Conv -> BN pairs held as named attributes rather than consecutive ``nn.Sequential`` entries, by module class name:
#: Meta-ACON-C's β network, coordinate attention's shared 1×1 conv, torchvision's ResNet stem and bottlenecks.
ATTRIBUTE_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "MetaAconC": (("fc1", "bn1"), ("fc2", "bn2")),
    "CoordinateAttention": (("conv1", "bn1"),),
    "Bottleneck": (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
    "BasicBlock": (("conv1", "bn1"), ("conv2", "bn2")),
    "ResNet": (("conv1", "bn1"),),
}


def _fold(conv: nn.Module, bn: nn.Module) -> nn.Module:
    return fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a convolution into it, in place; returns how many were folded.

    The module must be in eval mode (its BN layers then use their running statistics, which is what is folded).
    Folded BN layers are replaced by ``nn.Identity``.
    """
    if any(m.training for m in module.modules()):
        raise ValueError("fold_batchnorm needs a module in eval mode (call .eval() first): BN folds its running stats")
    folded = 0
    for parent in list(module.modules()):
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            for first, second in zip(names, names[1:], strict=False):
                conv, bn = parent._modules[first], parent._modules[second]
                if isinstance(conv, _CONVS) and isinstance(bn, nn.BatchNorm2d):
                    parent._modules[first] = _fold(conv, bn)
                    parent._modules[second] = nn.Identity()
                    folded += 1
        for conv_name, bn_name in ATTRIBUTE_PAIRS.get(type(parent).__name__, ()):
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if isinstance(conv, _CONVS) and isinstance(bn, nn.BatchNorm2d):
                setattr(parent, conv_name, _fold(conv, bn))
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


def _is_1x1_conv(module: nn.Module) -> bool:
    """A 1×1 convolution without padding or dilation: pointwise, whatever its stride."""
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.padding == (0, 0)
        and module.dilation == (1, 1)
    )


def hoist_strides_into_projections(module: nn.Module) -> int:
    """Move a strided 1×1 convolution's stride back into the pointwise projection in front of it, in place.

    Table 1 halves the map in "Last Conv", a 1×1 convolution with stride 2, right after Inverted Residual 13, whose
    output is its 1×1 projection + BN (no shortcut: 480 -> 960 channels). Both are pointwise in eval mode, so
    subsampling commutes with the projection: ``last(stride 2)(project(x)) = last(stride 1)(project(stride 2)(x))``,
    exactly. The projection then computes the 8×8 positions Last Conv reads instead of all 16×16: 8.5 of the
    extractor's 30 GFLOPs per batch of 8 were computed and thrown away. In training BN's batch statistics see every
    position, so this is for eval-mode copies only. Returns how many strides were moved (1 for InterNet+ with
    ``last_stride: last_conv``, 0 for ``ir12``, ResNet-50 and PoseNet).
    """
    if any(m.training for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        raise ValueError("hoist_strides_into_projections needs a module in eval mode (BN must be a fixed affine map)")
    moved = 0
    for parent in list(module.modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        children = list(parent)
        for block, nxt in zip(children, children[1:], strict=False):
            if not (isinstance(block, InvertedResidual) and not block.use_shortcut):
                continue
            tail = list(block.project)
            if not (
                tail
                and _is_1x1_conv(tail[0])
                and tail[0].stride == (1, 1)
                and all(isinstance(m, (nn.BatchNorm2d, nn.Identity)) for m in tail[1:])
            ):
                continue
            first = nxt[0] if isinstance(nxt, nn.Sequential) and len(nxt) > 0 else nxt
            if not (_is_1x1_conv(first) and first.stride != (1, 1)):
                continue
            tail[0].stride, first.stride = first.stride, (1, 1)
            moved += 1
    return moved


class MergedHeatmapBranches(nn.Module):
    """PoseNet's right- and left-hand :class:`~internet_plus.models.posenet.HeatmapBranch` as one network.

    Built from the two trained branches (BN already folded or still present: both work). Layer by layer:

    * first deconvolution ``C -> W`` of each hand: one ``C -> 2W`` deconvolution (the right hand's output channels
      first); its input is shared, so this is exact;
    * every later layer ``W -> W`` of each hand: a grouped layer ``2W -> 2W`` with 2 groups; group 0 is the right
      hand, group 1 the left;
    * BN / ReLU / Identity layers: per channel, concatenated (BN) or shared (ReLU, Identity).

    ``forward(features)`` returns the B×42×D×H×W heatmap volume of ``torch.cat([right(f), left(f)], dim=1)``.
    """

    def __init__(self, right: HeatmapBranch, left: HeatmapBranch) -> None:
        super().__init__()
        if len(right) != len(left):
            raise ValueError("the two heatmap branches must have the same layers")
        layers: list[nn.Module] = []
        for index, (r, lft) in enumerate(zip(right, left, strict=True)):
            layers.append(_merge_layer(r, lft, grouped=index > 0))
        self.layers = nn.Sequential(*layers)
        self.joints = right.joints + left.joints
        self.depth_bins = right.depth_bins

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.layers(features)
        b, _, h, w = out.shape
        return out.view(b, self.joints, self.depth_bins, h, w)


def _merge_layer(right: nn.Module, left: nn.Module, grouped: bool) -> nn.Module:
    if type(right) is not type(left):
        raise ValueError(f"cannot merge {type(right).__name__} with {type(left).__name__}")
    if isinstance(right, (nn.ReLU, nn.Identity)):
        return copy.deepcopy(right)
    # the merged layer lives where the branches live (a model on CUDA, in float64, ...)
    factory = {"device": right.weight.device, "dtype": right.weight.dtype}
    if isinstance(right, nn.BatchNorm2d):
        assert isinstance(left, nn.BatchNorm2d)
        merged = nn.BatchNorm2d(right.num_features + left.num_features, eps=right.eps, **factory)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(merged, name).data.copy_(torch.cat([getattr(right, name), getattr(left, name)]))
        return merged.eval()
    if isinstance(right, nn.ConvTranspose2d):
        assert isinstance(left, nn.ConvTranspose2d)
        # ConvTranspose2d weight: in × (out / groups) × k × k.
        if grouped:
            weight = torch.cat([right.weight, left.weight], dim=0)
            in_ch, groups = right.in_channels + left.in_channels, 2
        else:
            weight = torch.cat([right.weight, left.weight], dim=1)
            in_ch, groups = right.in_channels, 1
        # The shared-input first deconvolution keeps its class (GEMM + col2im on the CPU); grouped ones are oneDNN's.
        merged_class = nn.ConvTranspose2d if grouped else type(right)
        merged_t = merged_class(
            in_ch,
            right.out_channels + left.out_channels,
            right.kernel_size,  # type: ignore[arg-type]
            stride=right.stride,  # type: ignore[arg-type]
            padding=right.padding,  # type: ignore[arg-type]
            output_padding=right.output_padding,  # type: ignore[arg-type]
            groups=groups,
            bias=right.bias is not None,
            **factory,
        )
        merged_t.weight.data.copy_(weight)
        if right.bias is not None and left.bias is not None:
            merged_t.bias.data.copy_(torch.cat([right.bias, left.bias]))
        return merged_t
    if isinstance(right, nn.Conv2d):
        assert isinstance(left, nn.Conv2d)
        # Conv2d weight: out × (in / groups) × k × k; grouped or not, the outputs stack along dim 0.
        merged_c = nn.Conv2d(
            right.in_channels + left.in_channels if grouped else right.in_channels,
            right.out_channels + left.out_channels,
            right.kernel_size,  # type: ignore[arg-type]
            stride=right.stride,  # type: ignore[arg-type]
            padding=right.padding,  # type: ignore[arg-type]
            groups=2 if grouped else 1,
            bias=right.bias is not None,
            **factory,
        )
        merged_c.weight.data.copy_(torch.cat([right.weight, left.weight], dim=0))
        if right.bias is not None and left.bias is not None:
            merged_c.bias.data.copy_(torch.cat([right.bias, left.bias]))
        return merged_c
    raise ValueError(f"no rule to merge a {type(right).__name__} layer of the heatmap branches")


def merge_heatmap_branches(posenet: PoseNet) -> None:
    """Replace PoseNet's two heatmap branches by one :class:`MergedHeatmapBranches`, in place."""
    assert posenet.right_hand is not None and posenet.left_hand is not None
    posenet.merged_heatmaps = MergedHeatmapBranches(posenet.right_hand, posenet.left_hand)
    posenet.right_hand = None
    posenet.left_hand = None


@torch.no_grad()
def calibrate_batchnorm(model: torch.nn.Module, images: torch.Tensor, passes: int = 3) -> None:
    """Give every BatchNorm the running statistics of ``images`` (cumulative average over ``passes`` forward passes),
    then put the model in eval mode.

    A freshly initialised network in eval mode normalises with mean 0 and variance 1 instead of its activations'
    statistics; through InterNet+'s 17 blocks its features shrink to about 1e-16 at 256 px (measured on the CPU),
    which float16 flushes to zero, so that every 16-bit comparison of eager and rewritten inference would compare
    zeros. Calibrated, the features are of order 1 as in a trained model.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    for _ in range(passes):
        model(images)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def optimize_for_inference(
    model: HandPoseModule,
    *,
    fold_bn: bool = True,
    hoist_strides: bool = True,
    merge_branches: bool = True,
    channels_last: bool = True,
    compile: bool = False,
    compile_options: dict[str, Any] | None = None,
    before_compile: Callable[[nn.Module], Any] | None = None,
) -> nn.Module:
    """A frozen, faster copy of ``model`` for inference (the module docstring lists the rewrites).

    ``model`` itself is not modified. The copy is in eval mode with gradients off; call it under
    ``torch.inference_mode()``. With ``compile=True`` the copy is wrapped by ``torch.compile`` with Inductor's
    ``freezing`` (weights become constants: convolutions get prepacked oneDNN weights with their activation fused
    on the CPU) unless ``compile_options`` (passed on to ``torch.compile``) say otherwise; it compiles on the first
    call of each input shape (seconds; the compile times are in experiments/performance).
    """
    fast = copy.deepcopy(model).eval()
    if fold_bn:
        fold_batchnorm(fast)
    if hoist_strides:
        hoist_strides_into_projections(fast)
    if merge_branches:
        merge_heatmap_branches(fast.posenet)
    if channels_last:
        fast.channels_last = True
        fast.to(memory_format=torch.channels_last)
    fast.requires_grad_(False)
    if before_compile is not None:  # e.g. accel.accelerate_inference: module swaps that compilation should see
        before_compile(fast)
    if compile:
        options = compile_options if compile_options is not None else {"options": {"freezing": True}}
        return torch.compile(fast, **options)  # type: ignore[return-value]
    return fast


__all__ = [
    "ATTRIBUTE_PAIRS",
    "calibrate_batchnorm",
    "MergedHeatmapBranches",
    "fold_batchnorm",
    "hoist_strides_into_projections",
    "merge_heatmap_branches",
    "optimize_for_inference",
]
