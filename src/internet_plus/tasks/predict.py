"""``python predict.py ckpt_path=<file> input=<image|folder|video>``: 3-D hand pose for images without labels.

Inputs (``input=``): one image file, a folder (its ``.jpg``/``.jpeg``/``.png``/``.bmp`` files in sorted order; other
files are ignored) or a video file (``.mp4``/``.avi``/``.mov``/``.mkv``/``.webm``/``.m4v``, read with
``cv2.VideoCapture``; frame k is named ``<video stem>_<k:06d>``).

The hand box of each image comes from ``boxes=<file.json>``, an object ``{"<file name>": [x, y, w, h], ...}`` in
original-image pixels (for a video frame the key is the frame name, else the video's file name for every frame), or
is the whole image when no boxes file is given. An image that a given boxes file has no entry for is an error record
in ``errors.json`` (the other images go on), unless ``boxes_missing=whole_image`` asks for the whole image. As in
evaluation, the box goes through InterNet's ``process_bbox`` (square, ×1.25) and the identity crop (no shift,
rotation or flip) to the network's S×S input.

Intrinsics: ``focal`` (one number or ``[fx, fy]``, pixels) defaults to the image width for both axes, ``princpt``
(``[cx, cy]``) to the image centre ``(W/2, H/2)``, and the absolute right-wrist depth to ``root_depth_mm`` (500 mm);
the left wrist is placed at that depth plus the predicted relative root depth. These only matter for the camera-frame
output: the z components of the root-relative joints do not depend on them at all, while their x, y components scale
roughly with ``root_depth_mm / focal`` (a hand crop of fixed pixel size is a bigger hand farther away), and the
absolute camera coordinates depend on them fully. The 2-D joints in the original image do not depend on them.

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
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig

from internet_plus.data.transforms import AugParams, crop_affine, process_bbox, warp_image
from internet_plus.joints import BONES, HAND_NAMES, JOINT_NAMES, JOINTS_PER_HAND, NUM_JOINTS, hand_slice
from internet_plus.lit_module import HandPoseModule
from internet_plus.metrics.pose import root_relative
from internet_plus.models.inference import optimize_for_inference
from internet_plus.utils.allocator import keep_freed_memory
from internet_plus.visualize import HAND_COLORS, draw_skeleton

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Frame",
    "PredictError",
    "iter_frames",
    "load_boxes",
    "make_record",
    "prepare",
    "run",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


class PredictError(ValueError):
    """An input that cannot be predicted (unreadable file, bad box); reported in ``errors.json``."""


@dataclass
class Frame:
    """One input image.

    Attributes:
        name: output name (file stem or ``<video stem>_<frame:06d>``).
        source: the file it came from.
        keys: keys to look its box up under in the boxes JSON, first match wins.
        image: H×W×3 RGB ``uint8``, or ``None`` when it could not be read.
        error: why it could not be read.
        frame: the frame index for a video, else ``None``.
    """

    name: str
    source: str
    keys: tuple[str, ...]
    image: np.ndarray | None = None
    error: str | None = None
    frame: int | None = None


@dataclass
class Prepared:
    """A frame ready for the network: its crop and everything needed to map the predictions back."""

    frame: Frame
    crop: np.ndarray  # 3×S×S float32 in [0, 1]
    inv_trans: np.ndarray  # 2×3, crop pixels -> original pixels
    box: list[float]
    box_source: str
    box_processed: list[float]
    focal: list[float]
    princpt: list[float]


# --------------------------------------------------------------------------------------------------- inputs


def _read_image(path: Path) -> np.ndarray:
    """An image file as RGB ``uint8`` (cv2, so 16-bit and grey images are converted); raises :class:`PredictError`."""
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        raise PredictError(f"cannot read {path} as an image (missing, empty, corrupt or an unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _unique(name: str, used: set[str]) -> str:
    out, k = name, 1
    while out in used:
        out, k = f"{name}_{k}", k + 1
    used.add(out)
    return out


def count_frames(path: Path) -> int | None:
    """How many inputs ``path`` holds (a video's declared frame count), or ``None`` when unknown."""
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        capture = cv2.VideoCapture(str(path))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        return count or None
    return 1


def iter_frames(path: str | Path) -> Iterator[Frame]:
    """The inputs of ``path`` (an image, a folder of images or a video), lazily, with unreadable ones flagged.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        PredictError: ``path`` is a file of an unknown type, a video that cannot be opened, or a folder with no image.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"input={path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise PredictError(f"input={path}: the folder has no {'/'.join(IMAGE_EXTENSIONS)} file")
        used: set[str] = set()
        for file in files:
            yield _image_frame(file, _unique(file.stem, used))
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        yield _image_frame(path, path.stem)
    elif path.suffix.lower() in VIDEO_EXTENSIONS:
        yield from _video_frames(path)
    else:
        raise PredictError(
            f"input={path}: unknown file type {path.suffix!r} (images: {', '.join(IMAGE_EXTENSIONS)}; "
            f"videos: {', '.join(VIDEO_EXTENSIONS)})"
        )


def _image_frame(file: Path, name: str) -> Frame:
    frame = Frame(name=name, source=str(file), keys=(file.name, file.stem))
    try:
        frame.image = _read_image(file)
    except PredictError as err:
        frame.error = str(err)
    return frame


def _video_frames(path: Path) -> Iterator[Frame]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PredictError(f"input={path}: cv2.VideoCapture cannot open this video")
    try:
        index = 0
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                break
            name = f"{path.stem}_{index:06d}"
            yield Frame(
                name=name,
                source=str(path),
                keys=(name, path.name, path.stem),
                image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
                frame=index,
            )
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise PredictError(f"input={path}: no frame could be decoded from this video")


def load_boxes(path: str | Path | None) -> dict[str, Any]:
    """The boxes JSON ``{"<file name>": [x, y, w, h]}`` (``{}`` for ``None``); raises ValueError when malformed."""
    if path is None:
        return {}
    file = Path(path).expanduser()
    try:
        boxes = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"boxes={path}: cannot read the boxes JSON: {err}") from err
    if not isinstance(boxes, dict):
        raise ValueError(f'boxes={path}: expected an object {{"<file name>": [x, y, w, h], ...}}')
    return boxes


def _validate_box(value: Any, width: int, height: int) -> list[float]:
    """A given box as four floats; :class:`PredictError` when it is unusable."""
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError):
        raise PredictError(f"box {value!r} is not a list of four numbers [x, y, w, h]") from None
    if len(box) != 4:
        raise PredictError(f"box {value!r} has {len(box)} values, expected four [x, y, w, h]")
    if not all(math.isfinite(v) for v in box):
        raise PredictError(f"box {box} has a non-finite value")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise PredictError(f"box {box} has a non-positive width or height")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise PredictError(f"box {box} lies outside the {width}×{height} image")
    return box


def _intrinsic(value: Any, default: tuple[float, float], name: str) -> list[float]:
    if value is None:
        return [float(default[0]), float(default[1])]
    values = [float(value)] * 2 if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name}={value!r}: expected one number or two [x, y]")
    return values


def prepare(frame: Frame, boxes: dict[str, Any], input_size: int, cfg: DictConfig) -> Prepared:
    """Crop one readable frame as evaluation does (``process_bbox``, identity crop); raises :class:`PredictError`."""
    if frame.image is None:
        raise PredictError(frame.error or "the image could not be read")
    height, width = frame.image.shape[:2]
    key = next((k for k in frame.keys if k in boxes), None)
    if key is None and cfg.get("boxes") and cfg.get("boxes_missing", "error") != "whole_image":
        raise PredictError(
            f"no box for it in boxes={cfg.get('boxes')} (looked up under {', '.join(map(repr, frame.keys))}); add "
            "one, or set boxes_missing=whole_image to use the whole image for images without a box"
        )
    if key is None:
        box, box_source = [0.0, 0.0, float(width), float(height)], "whole_image"
    else:
        box, box_source = _validate_box(boxes[key], width, height), f"boxes[{key!r}]"
    processed = process_bbox(box)
    trans, inv_trans = crop_affine(processed, AugParams.identity(), input_size, width)
    crop = warp_image(frame.image.astype(np.float32), trans, input_size) * np.float32(1.0 / 255.0)
    focal = _intrinsic(cfg.get("focal"), (width, width), "focal")
    if focal[0] <= 0 or focal[1] <= 0:
        raise ValueError(f"focal={cfg.get('focal')!r} must be positive")
    princpt = _intrinsic(cfg.get("princpt"), (width / 2.0, height / 2.0), "princpt")
    return Prepared(
        frame=frame,
        crop=np.ascontiguousarray(crop.transpose(2, 0, 1)),
        inv_trans=inv_trans,
        box=box,
        box_source=box_source,
        box_processed=[float(v) for v in processed],
        focal=focal,
        princpt=princpt,
    )


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


# --------------------------------------------------------------------------------------------------- drawing


def _overlay(image: np.ndarray, joints_2d: np.ndarray, drawn: Sequence[int]) -> np.ndarray:
    valid = np.zeros(NUM_JOINTS)
    for hand in drawn:
        valid[hand_slice(hand)] = 1.0
    return draw_skeleton(image, joints_2d, valid)


def _plot_3d(joints_cam: np.ndarray, drawn: Sequence[int], title: str, path: Path) -> None:
    """Save a 3-D plot of the drawn hands in the camera frame, in mm relative to the first drawn hand's wrist."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    origin = joints_cam[drawn[0] * JOINTS_PER_HAND]
    pts = joints_cam - origin
    fig = plt.figure(figsize=(4.5, 4.5), dpi=100)
    try:
        ax = fig.add_subplot(projection="3d")
        shown = np.zeros(NUM_JOINTS, dtype=bool)
        for hand in drawn:
            shown[hand_slice(hand)] = True
        for parent, child in BONES:
            if shown[parent] and shown[child]:
                color = np.array(HAND_COLORS[child // JOINTS_PER_HAND]) / 255.0
                seg = pts[[parent, child]]
                # plotted as (x, z, −y): camera x right, depth into the page, image-up is up
                ax.plot(seg[:, 0], seg[:, 2], -seg[:, 1], color=color, linewidth=2)
        sel = pts[shown]
        ax.scatter(sel[:, 0], sel[:, 2], -sel[:, 1], s=8, c="k")
        centre = (sel.max(0) + sel.min(0)) / 2.0
        half = max(float((sel.max(0) - sel.min(0)).max()) / 2.0, 1.0)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[2] - half, centre[2] + half)
        ax.set_zlim(-centre[1] - half, -centre[1] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("z (mm)")
        ax.set_zlabel("−y (mm)")
        ax.set_title(title, fontsize=9)
        fig.savefig(path)
    finally:
        plt.close(fig)


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
        FileExistsError: ``out`` exists and is not empty.
        RuntimeError: no input succeeded (the errors are in ``errors.json``).
    """
    from tqdm.auto import tqdm

    ckpt = Path(str(cfg.ckpt_path)).expanduser()
    if not ckpt.is_file():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
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
    out_dir = _output_dir(cfg)

    model = HandPoseModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    model.eval().to(device)
    if cfg.get("optimize", True):  # the exact inference rewrites of models/inference.py
        keep_freed_memory()
        model = optimize_for_inference(model)  # type: ignore[assignment]
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
                overlay = _overlay(frame.image, pred["joints_2d"], drawn)
                cv2.imwrite(str(out_dir / f"{frame.name}_overlay.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            if cfg.get("save_plot_3d", True):
                hands = "+".join(HAND_NAMES[h] for h in drawn)
                _plot_3d(pred["joints_cam"], drawn, f"{frame.name} ({hands})", out_dir / f"{frame.name}_3d.png")
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
