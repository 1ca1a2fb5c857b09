"""``python predict.py ckpt_path=<file> input=<image|folder|video>``: 3-D hand pose for images without labels.

Inputs (an image, a folder of images or a video), their hand boxes (``boxes=<file.json>`` or the whole image) and
the assumed intrinsics (``focal``, ``princpt``, ``root_depth_mm``) are described in
:mod:`internet_plus.tasks.predict_inputs`, which reads and crops them; this module runs the network and writes the
outputs, drawn by :mod:`internet_plus.visualize`.

Outputs (into ``out=`` when given, which must not exist or be empty, else into the Hydra run directory
``logs/predict/runs/<time>``), per input named ``<name>`` (the file stem, or the frame name):

* ``<name>.json``: the record (:func:`make_record`), keys ``joints_2d_px`` (42×2 pixels of the original image;
  joints in ``joint_names`` order: right hand 0-20, left 21-41), ``joints_3d_rel_mm`` (42×3, each hand relative to
  its own wrist), ``joints_3d_cam_mm`` (42×3 camera frame under the assumed intrinsics and depth), ``joints_crop``
  (42×3, the network's own output: crop pixels and mm relative to the wrist), ``hand_prob`` ``[right, left]``,
  ``hands_present`` / ``drawn_hands``, ``rel_root_depth_mm`` (predicted z(left wrist) − z(right wrist)),
  ``abs_root_depth_mm`` (the wrist depths used, [right, left]), ``box`` (as given, or the whole image),
  ``box_source``, ``box_processed`` (after ``process_bbox``), ``focal``, ``princpt``, ``image_size`` ``[W, H]``,
  ``name``, ``source`` and ``frame`` (the video frame index, else null);
* ``<name>_overlay.png``: the 2-D skeleton(s) over the original image;
* ``<name>_3d.png``: a matplotlib 3-D plot of the skeleton(s) in the camera frame, relative to the wrist of the first
  drawn hand (axes x, z and −y, so that image-up is up).

Only the hands whose handedness probability exceeds ``hand_threshold`` (0.5) are drawn; when neither does, both are
(the record's ``drawn_hands`` says which). Inputs that cannot be used (an unreadable image or video frame, a box that
is not four finite numbers, has a non-positive width or height, or lies outside the image) are logged and listed in
``errors.json`` (``[{"name", "source", "error"}]``) and the rest is still processed; ``summary.json`` counts both.
The task fails (non-zero exit status) only when no input succeeded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig

from internet_plus.accel import accelerate_inference
from internet_plus.checkpoints import load_model, read_checkpoint
from internet_plus.joints import HAND_NAMES, JOINT_NAMES
from internet_plus.lit_module import HandPoseModule
from internet_plus.metrics.pose import root_relative
from internet_plus.models.inference import optimize_for_inference
from internet_plus.tasks.predict_inputs import (
    Frame,
    PredictError,
    Prepared,
    count_frames,
    iter_frames,
    load_boxes,
    prepare,
)
from internet_plus.visualize import draw_hands, save_3d_plot

__all__ = ["make_record", "run"]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------- network


def _select_device(name: str) -> torch.device:
    name = str(name).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name}: CUDA is not available here (use device=cpu or device=auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"device={name}: expected auto, cpu or cuda[:<index>]")
    return torch.device(name)


@torch.no_grad()
def _predict(model: HandPoseModule, items: Sequence[Prepared], root_depth_mm: float) -> list[dict[str, np.ndarray]]:
    """Run the network on a batch of prepared frames and decode it in the original images and the camera frame."""
    device = model.device
    images = torch.from_numpy(np.stack([it.crop for it in items])).to(device)
    outputs = model(images)
    rel_root = model.codec.decode_root_depth(outputs["root_bins"].float().reshape(-1))
    right = torch.full_like(rel_root, float(root_depth_mm))
    batch = {
        "inv_trans": torch.from_numpy(np.stack([it.inv_trans for it in items])).to(device),
        "abs_root_depth": torch.stack([right, right + rel_root], dim=1),
        "focal": torch.tensor([it.focal for it in items], device=device),
        "princpt": torch.tensor([it.princpt for it in items], device=device),
    }
    pred = model.codec.decode(outputs, batch)
    inv = batch["inv_trans"].to(pred["joints_img"].dtype)
    xy = pred["joints_img"][..., :2]
    uv = torch.einsum("bik,bjk->bji", inv[:, :, :2], xy) + inv[:, None, :, 2]
    rel = root_relative(pred["joints_cam"])
    out = []
    for b in range(len(items)):
        out.append(
            {
                "joints_2d": uv[b].double().cpu().numpy(),
                "joints_img": pred["joints_img"][b].double().cpu().numpy(),
                "joints_cam": pred["joints_cam"][b].double().cpu().numpy(),
                "joints_rel": rel[b].double().cpu().numpy(),
                "hand_prob": pred["hand_prob"][b].double().cpu().numpy(),
                "rel_root_depth_mm": float(pred["rel_root_depth_mm"][b]),
                "abs_root_depth": batch["abs_root_depth"][b].double().cpu().numpy(),
            }
        )
    return out


def _drawn_hands(hand_prob: np.ndarray, threshold: float) -> list[int]:
    hands = [h for h in (0, 1) if hand_prob[h] > threshold]
    return hands or [0, 1]


def _round(array: np.ndarray, digits: int = 3) -> list[Any]:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()


def make_record(item: Prepared, pred: dict[str, np.ndarray], cfg: DictConfig) -> dict[str, Any]:
    """The JSON record of one prediction (see the module docstring)."""
    frame = item.frame
    assert frame.image is not None
    height, width = frame.image.shape[:2]
    threshold = float(cfg.get("hand_threshold", 0.5))
    hand_prob = pred["hand_prob"]
    drawn = _drawn_hands(hand_prob, threshold)
    return {
        "name": frame.name,
        "source": frame.source,
        "frame": frame.frame,
        "image_size": [int(width), int(height)],
        "box": _round(item.box),
        "box_source": item.box_source,
        "box_processed": _round(item.box_processed),
        "focal": _round(item.focal),
        "princpt": _round(item.princpt),
        "abs_root_depth_mm": _round(pred["abs_root_depth"]),
        "hand_prob": _round(hand_prob, 4),
        "hands_present": [HAND_NAMES[h] for h in (0, 1) if hand_prob[h] > threshold],
        "drawn_hands": [HAND_NAMES[h] for h in drawn],
        "rel_root_depth_mm": round(pred["rel_root_depth_mm"], 3),
        "joint_names": list(JOINT_NAMES),
        "joints_2d_px": _round(pred["joints_2d"]),
        "joints_3d_rel_mm": _round(pred["joints_rel"]),
        "joints_3d_cam_mm": _round(pred["joints_cam"]),
        "joints_crop": _round(pred["joints_img"]),
    }


# --------------------------------------------------------------------------------------------------- the task


def _output_dir(cfg: DictConfig) -> Path:
    out = cfg.get("out")
    if out is None:
        path = Path(str(cfg.paths.output_dir))
    else:
        path = Path(str(out)).expanduser()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise FileExistsError(
                f"out={path} exists and is not empty; refusing to overwrite it (give a new or empty folder)"
            )
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON: one line per key of a top-level object (or item of a list), values compact."""
    if isinstance(value, dict) and value:
        text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()) + "\n}"
    elif isinstance(value, list) and value:
        text = "[\n" + ",\n".join(f" {json.dumps(v)}" for v in value) + "\n]"
    else:
        text = json.dumps(value)
    path.write_text(text + "\n")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Predict every input of ``cfg.input`` with ``cfg.ckpt_path``; returns the summary (also ``summary.json``).

    Raises:
        FileNotFoundError: no such checkpoint or input.
        CheckpointError: ``ckpt_path`` is not a checkpoint of this project (the message says what it is).
        FileExistsError: ``out`` exists and is not empty.
        RuntimeError: no input succeeded (the errors are in ``errors.json``).
    """
    from tqdm.auto import tqdm

    ckpt = Path(str(cfg.ckpt_path)).expanduser()
    read_checkpoint(ckpt)  # first: names the file and says what it is when it is not a checkpoint of this project
    source = Path(str(cfg.input)).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"input={cfg.input}: no such file or folder")
    batch_size = int(cfg.get("batch_size", 8))
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    boxes = load_boxes(cfg.get("boxes"))
    if cfg.get("boxes_missing", "error") not in ("error", "whole_image"):
        raise ValueError(f"boxes_missing={cfg.get('boxes_missing')!r}: use 'error' or 'whole_image'")
    device = _select_device(cfg.get("device", "auto"))
    model = load_model(ckpt)
    out_dir = _output_dir(cfg)

    model.eval().to(device)
    if cfg.get("optimize", True):  # the exact inference rewrites of models/inference.py
        model = optimize_for_inference(model)  # type: ignore[assignment]
    accelerate_inference(model, cfg.get("accel", "auto"))  # CPU only (accel.py)
    input_size = int(model.codec.input_size)
    root_depth = float(cfg.get("root_depth_mm", 500.0))
    threshold = float(cfg.get("hand_threshold", 0.5))
    log.info("predicting %s with %s on %s; outputs in %s", source, ckpt, device, out_dir)

    errors: list[dict[str, Any]] = []
    written: list[str] = []

    def fail(frame: Frame, message: str) -> None:
        log.error("%s (%s): %s", frame.name, frame.source, message)
        errors.append({"name": frame.name, "source": frame.source, "frame": frame.frame, "error": message})

    def flush(pending: list[Prepared]) -> None:
        if not pending:
            return
        for item, pred in zip(pending, _predict(model, pending, root_depth), strict=True):
            frame = item.frame
            assert frame.image is not None
            record = make_record(item, pred, cfg)
            _write_json(out_dir / f"{frame.name}.json", record)
            drawn = _drawn_hands(pred["hand_prob"], threshold)
            if cfg.get("save_overlay", True):
                overlay = draw_hands(frame.image, pred["joints_2d"], drawn)
                cv2.imwrite(str(out_dir / f"{frame.name}_overlay.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            if cfg.get("save_plot_3d", True):
                hands = "+".join(HAND_NAMES[h] for h in drawn)
                save_3d_plot(pred["joints_cam"], drawn, f"{frame.name} ({hands})", out_dir / f"{frame.name}_3d.png")
            written.append(frame.name)
        pending.clear()

    pending: list[Prepared] = []
    with tqdm(total=count_frames(source), desc="predict", unit="img", disable=not cfg.get("progress", True)) as bar:
        for frame in iter_frames(source):
            try:
                pending.append(prepare(frame, boxes, input_size, cfg))
            except PredictError as err:
                fail(frame, str(err))
            if len(pending) >= batch_size:
                flush(pending)
            bar.update(1)
        flush(pending)

    summary = {
        "input": str(source),
        "checkpoint": str(ckpt),
        "output_dir": str(out_dir),
        "num_ok": len(written),
        "num_errors": len(errors),
        "predicted": written,
    }
    _write_json(out_dir / "errors.json", errors)
    _write_json(out_dir / "summary.json", summary)
    log.info("%d input(s) predicted, %d error(s); outputs in %s", len(written), len(errors), out_dir)
    if not written:
        raise RuntimeError(f"no input could be predicted ({len(errors)} error(s), see {out_dir / 'errors.json'})")
    return summary
