"""ONNX export of a checkpoint: normalisation + backbone + PoseNet + the decoding that needs no crop metadata.

Command (Hydra, like every entry point; the options and their defaults are in ``conf/export.yaml``)::

    python export.py ckpt_path=<file.ckpt> [out=model.onnx] [dynamic_batch=true] [opset=18]
        [batch_size=1] [check=true] [check_batch_sizes=[1,3]] [report=<file.json>]

The exported graph (:class:`ExportWrapper`) has one input and four outputs (``docs/export.md``):

========================  ==============  ===========================================================================
name                      shape / dtype   meaning
========================  ==============  ===========================================================================
``image`` (input)         B×3×S×S float32 RGB crop in [0, 1] (S = the checkpoint's ``model.codec.input_size``); the
                                          model's own normalisation (``model.input_norm``) is inside the graph
``joints_img``            B×42×3 float32  per joint: x, y in pixels of the S×S input crop and z in mm relative to
                                          the joint's own wrist (joints 0-20 right hand, 21-41 left hand) — hard
                                          argmax of each 3-D heatmap (InterNet's decoding, no sub-voxel offset)
``joint_score``           B×42 float32    the heatmap value at that argmax (a confidence, ≈255 for a sure peak)
``root_depth_mm``         B float32       relative root depth: z(left wrist) − z(right wrist) in mm (soft-argmax)
``hand_prob``             B×2 float32     handedness probabilities [right present, left present] (sigmoid)
========================  ==============  ===========================================================================

What stays outside the graph (it needs per-sample crop metadata): mapping the crop pixels back to the original image
with the inverse crop affine, and back-projecting to the camera frame with the intrinsics and an absolute wrist depth
(:meth:`internet_plus.models.codec.HeatmapCodec.input_to_camera`; ``internet_plus.tasks.predict`` does both).

With ``check=true`` (the default) the exported file is run with onnxruntime on random inputs at each of
``check_batch_sizes`` and compared with PyTorch (:func:`check_onnx`): the largest absolute difference of the
continuous outputs (``joint_score``, ``root_depth_mm``, ``hand_prob``) and the fraction of joints whose argmax matches
are printed on one line (``report=<file.json>`` writes the whole comparison). The argmax can legitimately flip
between two voxels whose heatmap values tie to within float rounding, so that fraction is reported rather than
required to be 1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from internet_plus.checkpoints import load_model
from internet_plus.lit_module import HandPoseModule

__all__ = [
    "CONTINUOUS_OUTPUTS",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "ExportWrapper",
    "check_onnx",
    "export_onnx",
    "load_module",
    "run",
]

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("joints_img", "joint_score", "root_depth_mm", "hand_prob")
#: Outputs compared by their absolute difference; ``joints_img`` is compared as an argmax match fraction.
CONTINUOUS_OUTPUTS = ("joint_score", "root_depth_mm", "hand_prob")


class ExportWrapper(nn.Module):
    """The exported network: image in [0, 1] -> decoded joints in the crop, root depth and handedness.

    Args:
        model: a :class:`HandPoseModule` (put into eval mode by the caller).
    """

    def __init__(self, model: HandPoseModule) -> None:
        super().__init__()
        self.model = model
        codec = model.codec
        self.input_size = int(codec.input_size)
        self.heatmap_size = int(codec.heatmap_size)
        self.depth_bins = int(codec.depth_bins)
        self.depth_range_mm = float(codec.depth_range_mm)
        self.root_depth_bins = int(codec.root_depth_bins)
        self.root_depth_range_mm = float(codec.root_depth_range_mm)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``image`` B×3×S×S -> (``joints_img`` B×42×3, ``joint_score`` B×42, ``root_depth_mm`` B, ``hand_prob`` B×2).

        The same arithmetic as :meth:`HeatmapCodec.decode_heatmaps`, :meth:`HeatmapCodec.heatmap_to_input` and
        :meth:`HeatmapCodec.decode_root_depth`, written with export-friendly operations.
        """
        outputs = self.model(image)
        heatmaps = outputs["heatmaps"]
        flat = heatmaps.flatten(2)
        score, idx = flat.max(dim=-1)
        h = w = self.heatmap_size
        z = torch.div(idx, h * w, rounding_mode="floor")
        y = torch.div(idx, w, rounding_mode="floor") % h
        x = idx % w
        scale = self.input_size / self.heatmap_size
        z_mm = (z.to(torch.float32) / self.depth_bins * 2.0 - 1.0) * (self.depth_range_mm / 2.0)
        joints = torch.stack([x.to(torch.float32) * scale, y.to(torch.float32) * scale, z_mm], dim=-1)
        root_bins = outputs["root_bins"].float().reshape(-1)
        root_mm = (root_bins / self.root_depth_bins * 2.0 - 1.0) * (self.root_depth_range_mm / 2.0)
        hand_prob = torch.sigmoid(outputs["hand_logits"].float())
        return joints, score.float(), root_mm, hand_prob


def load_module(ckpt_path: str | Path) -> HandPoseModule:
    """Load a checkpoint with PyTorch's safe ``weights_only`` loading, on the CPU, in eval mode.

    Raises:
        FileNotFoundError: there is no such file.
        CheckpointError: the file is not a checkpoint of this project (the message names it and says what it is).
    """
    model = load_model(ckpt_path)
    model.eval()
    return model


def export_onnx(
    model: HandPoseModule,
    out: str | Path,
    *,
    dynamic_batch: bool = True,
    opset: int = 18,
    batch_size: int = 1,
) -> Path:
    """Export ``model`` wrapped in :class:`ExportWrapper` to ``out`` (``torch.onnx.export`` with ``dynamo=True``).

    The ``torch.export``-based exporter (it needs ``onnxscript``) is used: the older TorchScript exporter cannot export
    the FcaNet layer's adaptive pooling. Its native opset is 18; a lower ``opset`` is attempted by onnx's version
    converter, which fails for some operators (e.g. the axes of reductions), and the model then stays at opset 18.

    Args:
        model: the LightningModule (set to eval mode here; channels-last is turned off for the export).
        out: the ``.onnx`` file to write (its folder is created).
        dynamic_batch: make the batch axis of the input and every output dynamic (``batch``); else fixed to
            ``batch_size``.
        opset: the ONNX opset version (18 is the exporter's own; see above).
        batch_size: the batch size of the example input.

    Returns:
        The written path.
    """
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    wrapper = ExportWrapper(model).eval()
    size = wrapper.input_size
    example = torch.rand(int(batch_size), 3, size, size)
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
    channels_last = model.channels_last
    model.channels_last = False  # memory format is a runtime choice; the graph is the same without it
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                (example,),
                str(out),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=dynamic_shapes,
                opset_version=int(opset),
                dynamo=True,
                external_data=False,
                verbose=False,  # the exporter's step-by-step progress lines
            )
    finally:
        model.channels_last = channels_last
    return out


def _voxel_index(wrapper: ExportWrapper, joints_img: np.ndarray) -> np.ndarray:
    """Invert the wrapper's decoding: ``joints_img`` B×J×3 -> the flat (z, y, x) voxel index B×J (int64)."""
    size = wrapper.heatmap_size
    scale = wrapper.input_size / size
    x = np.rint(joints_img[..., 0] / scale)
    y = np.rint(joints_img[..., 1] / scale)
    z = np.rint((joints_img[..., 2] / (wrapper.depth_range_mm / 2.0) + 1.0) / 2.0 * wrapper.depth_bins)
    return (z * size * size + y * size + x).astype(np.int64)


def check_onnx(
    model: HandPoseModule, onnx_path: str | Path, batch_sizes: Sequence[int] = (1, 3), seed: int = 0
) -> dict[str, Any]:
    """Run the exported file with onnxruntime (CPU) on random inputs and compare with PyTorch.

    Args:
        model: the LightningModule the file was exported from.
        onnx_path: the ``.onnx`` file.
        batch_sizes: batch sizes to try (the file must accept them: dynamic batch, or its fixed size).
        seed: seed of the random ``[0, 1]`` inputs.

    Returns:
        ``{"max_abs_diff": float, "max_abs_diff_by_output": {name: float}, "argmax_match": float,
        "argmax_tie_gap": float, "argmax_tie_gap_rel": float, "batch_sizes": [...]}``: the largest absolute
        difference over the continuous outputs and batch sizes, per output; the fraction of (sample, joint) argmax
        positions (``joints_img``) that are identical; and, over all joints, the largest difference between PyTorch's
        heatmap maximum and PyTorch's heatmap value at onnxruntime's argmax voxel (0 when they agree, tiny when a flip
        is a near-tie), absolute and as a fraction of that joint's heatmap range (max − min).

    Raises:
        ImportError: onnxruntime is not installed (``pip install -e '.[export]'``).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    wrapper = ExportWrapper(model.to("cpu").eval()).eval()
    size = wrapper.input_size
    generator = torch.Generator().manual_seed(seed)
    by_output = dict.fromkeys(CONTINUOUS_OUTPUTS, 0.0)
    matches, total, tie_gap, tie_gap_rel = 0, 0, 0.0, 0.0
    for bsz in batch_sizes:
        image = torch.rand(int(bsz), 3, size, size, generator=generator)
        with torch.no_grad():
            reference = [t.numpy() for t in wrapper(image)]
            flat = model(image)["heatmaps"].flatten(2).float()
        result = session.run(list(OUTPUT_NAMES), {INPUT_NAME: image.numpy()})
        for name, ref, got in zip(OUTPUT_NAMES, reference, result, strict=True):
            if ref.shape != got.shape:
                raise AssertionError(f"output {name}: onnxruntime gives shape {got.shape}, PyTorch {ref.shape}")
            if name in by_output:
                by_output[name] = max(by_output[name], float(np.abs(ref - got).max()))
        same = np.all(reference[0] == result[0], axis=-1)
        matches += int(same.sum())
        total += int(same.size)
        # PyTorch's heatmap value at onnxruntime's argmax voxel vs its own maximum: ≈ 0 when a flip is a near-tie
        index = torch.from_numpy(_voxel_index(wrapper, result[0]))
        at_onnx = flat.gather(-1, index[..., None])[..., 0]
        top = flat.max(dim=-1).values
        gap = top - at_onnx
        spread = (top - flat.min(dim=-1).values).clamp(min=torch.finfo(flat.dtype).tiny)
        tie_gap = max(tie_gap, float(gap.max()))
        tie_gap_rel = max(tie_gap_rel, float((gap / spread).max()))
    return {
        "max_abs_diff": max(by_output.values()),
        "max_abs_diff_by_output": by_output,
        "argmax_match": matches / max(total, 1),
        "argmax_tie_gap": tie_gap,
        "argmax_tie_gap_rel": tie_gap_rel,
        "batch_sizes": [int(b) for b in batch_sizes],
    }


#: Loggers of the ONNX toolchain whose INFO lines describe its internal graph passes (hundreds per export).
EXPORTER_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch._dynamo", "torch.export")


def summarize_check(report: dict[str, Any]) -> str:
    """One line for the onnxruntime comparison (the full report goes to ``report=<file>``)."""
    return (
        f"onnxruntime check at batch {', '.join(map(str, report['batch_sizes']))}: largest absolute difference "
        f"{report['max_abs_diff']:.1e}; argmax agreement {100 * report['argmax_match']:.1f} % (flips only at ties "
        f"within {report['argmax_tie_gap_rel']:.1e} of a joint's heatmap range)"
    )


def run(cfg: Any) -> dict[str, Any] | None:
    """Export ``cfg.ckpt_path`` to ``cfg.out`` and, with ``cfg.check``, compare it with PyTorch (``conf/export.yaml``);
    returns the comparison report (None without a check)."""
    for name in EXPORTER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    batch_sizes = [int(b) for b in cfg.check_batch_sizes]
    if not cfg.dynamic_batch:
        batch_sizes = [int(cfg.batch_size)]  # a fixed-batch graph runs at that batch only
    model = load_module(cfg.ckpt_path)
    path = export_onnx(
        model, cfg.out, dynamic_batch=bool(cfg.dynamic_batch), opset=int(cfg.opset), batch_size=int(cfg.batch_size)
    )
    log.info("exported %s (input %s: B×3×%d×%d float32 in [0, 1])", path, INPUT_NAME, *(2 * [model.codec.input_size]))
    if not cfg.check:
        return None
    try:
        report = check_onnx(model, path, batch_sizes)
    except ImportError:
        log.warning("onnxruntime is not installed (pip install -e '.[export]'); the ONNX check was skipped")
        return None
    log.info("%s", summarize_check(report))
    if cfg.get("report"):
        Path(str(cfg.report)).expanduser().write_text(json.dumps(report, indent=2) + "\n")
        log.info("full check report: %s", cfg.report)
    return report
