"""The embedded synthetic data set in InterHand2.6M's release layout: :func:`write_interhand_split` is the one writer of
that format, as :func:`~internet_plus.data.synthetic.generate.generate_rhd_dataset` is the one writer of RHD's.

It writes ``num`` annotations of one split in the release v1.0 layout
(``annotations/<split>/InterHand2.6M_<split>_{data,camera,joint_3d}.json``, ``docs/reference/datasets.md`` §C.1-§C.3)
or the older v0.0 one, and on request one JPEG frame per image at ``images/<split>/<file_name>``
(:func:`write_interhand_frames`: smooth random colour with sensor-like noise, 512×334 or 334×512 like the real frames;
no hand is drawn, so the frames serve loading, decoding and timing, not learning). The annotations follow the recipe of
datasets §E: cameras on a ~1 m sphere looking at the hands, the world→camera rule X_cam = R·(X − campos), one
annotation per image (annotation id = image id), ``joint_valid`` = the joint exists and projects inside the image, the
box = 1.2 × the tight box of the valid projected joints, ``hand_type_valid`` = 1 for single hands and (> 30 valid
joints) for interacting ones, absent hands at the placeholder [1, 1, 1], string keys in camera/joint_3d and ints in
data.json, compact JSON as the official files.

The InterHand2.6M tests and the benchmarks of :mod:`internet_plus.tools` (input pipeline, index build) read what it
writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import cv2
import numpy as np

__all__ = ["InterHandSplit", "hand_template", "look_at", "write_interhand_frames", "write_interhand_split"]

#: One right hand in InterHand2.6M's native order (per finger tip → base, wrist last; datasets §C.4), mm.
_FINGER_BASES = np.array([[-35.0, -30.0], [-20.0, -85.0], [0.0, -90.0], [18.0, -85.0], [33.0, -78.0]])
_SEGMENTS = np.array(
    [[30.0, 33.0, 38.0], [22.0, 25.0, 40.0], [24.0, 28.0, 44.0], [23.0, 27.0, 40.0], [20.0, 22.0, 32.0]]
)


def hand_template() -> np.ndarray:
    """A flat right hand (21×3, native order, wrist at the origin, fingers along −y), in mm."""
    joints = np.zeros((21, 3))
    for finger in range(5):
        base = np.array([*_FINGER_BASES[finger], 0.0])
        direction = base / np.linalg.norm(base)
        for k in range(4):  # native k: 0 tip ... 3 base; joint k lies sum(segments[: 3 - k]) beyond the base
            joints[4 * finger + k] = base + direction * float(np.sum(_SEGMENTS[finger][: 3 - k]))
    joints[20] = 0.0
    return joints


def _rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(-max_angle, max_angle)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def look_at(campos: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """World→camera rotation R (rows: the camera's x, y, z axes) of a camera at ``campos`` facing ``target``, y down."""
    target = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    z = target - np.asarray(campos, dtype=np.float64)
    z /= np.linalg.norm(z)
    up = np.array([0.0, -1.0, 0.0])
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(np.array([1.0, 0.0, 0.0]), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


@dataclass
class InterHandSplit:
    """What :func:`write_interhand_split` wrote: file paths and the ground truth the tests compare with."""

    annotation_dir: Path
    files: dict[str, Path]
    file_names: list[str] = field(default_factory=list)
    annot_ids: list[int] = field(default_factory=list)
    hand_types: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (334, 512)


def _json_list(values: np.ndarray, digits: int = 4) -> str:
    return json.dumps(np.round(values, digits).tolist(), separators=(",", ":"))


def write_interhand_split(
    root: str | PathLike[str],
    split: str = "train",
    num: int = 100,
    *,
    layout: str = "v1.0",
    subset_folder: str = "all",
    seed: int = 0,
    cameras_per_capture: int = 20,
    interacting_fraction: float = 0.4,
    image_size: tuple[int, int] = (334, 512),
    bare_joint_3d: bool = False,
    first_id: int = 0,
    images: bool = False,
    jpeg_quality: int = 85,
    jpeg_progressive: bool = True,
) -> InterHandSplit:
    """Write ``num`` annotations of ``split`` under ``root/annotations/`` in the official formats, and with ``images``
    one JPEG frame per image under ``root/images/<split>/`` (:func:`write_interhand_frames`).

    Args:
        root: the data root (``annotations/`` is created inside it).
        split: ``train``, ``val`` or ``test``.
        num: number of annotations (= images).
        layout: ``v1.0`` (``annotations/<split>/``) or ``v0.0`` (``annotations/<subset_folder>/``).
        subset_folder: the v0.0 folder (``all``, ``human_annot``, ``machine_annot``).
        seed: everything is a function of it.
        cameras_per_capture: views per 3-D frame (one image per view).
        interacting_fraction: share of frames with both hands.
        image_size: (width, height) of every image (official: 334×512 or 512×334).
        bare_joint_3d: write joint_3d values as bare 42×3 lists (the format before 2020-08-31, §C.3).
        first_id: the first image / annotation id.
        images: also write the frames (without them ``images/<split>/`` is not made; the reader needs the folder).
        jpeg_quality, jpeg_progressive: the frames' JPEG encoding (:func:`write_interhand_frames`).
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    folder = root / "annotations" / (split if layout == "v1.0" else subset_folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {kind: folder / f"InterHand2.6M_{split}_{kind}.json" for kind in ("data", "camera", "joint_3d")}
    width, height = image_size
    num_frames = max(1, math.ceil(num / cameras_per_capture))
    frames_per_capture = max(1, min(num_frames, 500))
    num_captures = math.ceil(num_frames / frames_per_capture)

    # cameras: per capture, on a ~1 m sphere in front of the hands
    cameras: dict[int, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for capture in range(num_captures):
        cams = {}
        for c in range(cameras_per_capture):
            name = f"{400000 + 10 * capture + c if c % 3 else 410000 + 10 * capture + c}"
            theta, phi = rng.uniform(-0.9, 0.9), rng.uniform(-0.5, 0.5)
            campos = 1000.0 * np.array(
                [math.sin(theta) * math.cos(phi), math.sin(phi), -math.cos(theta) * math.cos(phi)]
            )
            campos += rng.normal(scale=20.0, size=3)
            rot = look_at(campos, rng.normal(scale=15.0, size=3))
            focal = np.array([1260.0, 1260.0]) + rng.uniform(0, 14.0, size=2)
            princpt = np.array([width / 2.0, height / 2.0]) + rng.uniform(-12.0, 12.0, size=2)
            cams[name] = (campos, rot, focal, princpt)
        cameras[capture] = cams

    with files["camera"].open("w") as f:
        f.write(
            json.dumps(
                {
                    str(capture): {
                        "campos": {n: p[0].tolist() for n, p in cams.items()},
                        "camrot": {n: p[1].tolist() for n, p in cams.items()},
                        "focal": {n: p[2].tolist() for n, p in cams.items()},
                        "princpt": {n: p[3].tolist() for n, p in cams.items()},
                    }
                    for capture, cams in cameras.items()
                },
                separators=(",", ":"),
            )
        )

    template = hand_template()
    frames: list[tuple[int, int, str, np.ndarray]] = []  # (capture, frame_idx, hand_type, 42×3 world native)
    with files["joint_3d"].open("w") as f:
        f.write("{")
        for capture in range(num_captures):
            f.write(("," if capture else "") + json.dumps(str(capture)) + ":{")
            for k in range(frames_per_capture):
                if len(frames) >= num_frames:
                    break
                frame_idx = 300 + 6 * (capture * frames_per_capture + k)  # 5 fps frames of a 30 fps stream
                kind = (
                    "interacting"
                    if rng.random() < interacting_fraction
                    else ("right" if rng.random() < 0.5 else "left")
                )
                right = template @ _rotation(rng, 0.6).T + rng.normal(scale=10.0, size=3) + [-45.0, 40.0, 0.0]
                mirror = template * np.array([-1.0, 1.0, 1.0])
                left = mirror @ _rotation(rng, 0.6).T + rng.normal(scale=10.0, size=3) + [45.0, 40.0, 0.0]
                world = np.ones((42, 3))
                if kind in ("right", "interacting"):
                    world[:21] = right
                if kind in ("left", "interacting"):
                    world[21:] = left
                frames.append((capture, frame_idx, kind, world))
                valid3d = [[int(kind != "left")]] * 21 + [[int(kind != "right")]] * 21
                if bare_joint_3d:
                    entry = _json_list(world)
                else:
                    entry = (
                        '{"world_coord":' + _json_list(world) + ',"joint_valid":' + json.dumps(valid3d) + ","
                        f'"hand_type":"{kind}","hand_type_valid":true}}'
                    )
                f.write(("," if k else "") + json.dumps(str(frame_idx)) + ":" + entry)
            f.write("}")
        f.write("}")

    out = InterHandSplit(folder, files, image_size=image_size)
    images_json: list[str] = []
    annotations_json: list[str] = []
    ann_id = first_id
    seqs = ["0007_thumbup_normal", "0266_dh_pray", "ROM07_Rt_Finger_Occlusions"]
    for capture, frame_idx, kind, world in frames:
        for name, (campos, rot, focal, princpt) in cameras[capture].items():
            if ann_id - first_id >= num:
                break
            cam = (world - campos) @ rot.T
            uv = cam[:, :2] / cam[:, 2:] * focal + princpt
            exists = np.array([kind != "left"] * 21 + [kind != "right"] * 21)
            inside = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
            valid = exists & inside
            if valid.any():
                lo, hi = uv[valid].min(axis=0), uv[valid].max(axis=0)
                centre, size = (lo + hi) / 2.0, (hi - lo) * 1.2
                bbox = [centre[0] - size[0] / 2, centre[1] - size[1] / 2, size[0], size[1]]
            else:
                bbox = [0.0, 0.0, 0.0, 0.0]
            seq = seqs[capture % len(seqs)]
            file_name = f"Capture{capture}/{seq}/cam{name}/image{frame_idx:04d}.jpg"
            htv = 1 if kind != "interacting" else int(valid.sum() > 30)
            images_json.append(
                json.dumps(
                    {
                        "id": ann_id,
                        "file_name": file_name,
                        "width": width,
                        "height": height,
                        "capture": capture,
                        "subject": capture % 10,
                        "seq_name": seq,
                        "camera": name,
                        "frame_idx": frame_idx,
                    },
                    separators=(",", ":"),
                )
            )
            valid_json = json.dumps([[int(v)] for v in valid])
            annotations_json.append(
                f'{{"id":{ann_id},"image_id":{ann_id},"bbox":{_json_list(np.asarray(bbox))},'
                f'"joint_valid":{valid_json},"hand_type":"{kind}","hand_type_valid":{htv}}}'
            )
            out.file_names.append(file_name)
            out.annot_ids.append(ann_id)
            out.hand_types.append(kind)
            ann_id += 1
    with files["data"].open("w") as f:
        f.write('{"images":[' + ",".join(images_json) + '],"annotations":[' + ",".join(annotations_json) + "]}")
    if images:
        write_interhand_frames(
            root / "images" / split,
            out.file_names,
            image_size,
            seed=seed,
            quality=jpeg_quality,
            progressive=jpeg_progressive,
        )
    return out


def _frame(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth random colour frame with mild pixel noise (JPEG-compresses like a real camera frame)."""
    coarse = rng.uniform(20, 200, size=(height // 16 + 1, width // 16 + 1, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    noisy = smooth + rng.normal(0.0, 4.0, size=smooth.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_interhand_frames(
    images_dir: str | PathLike[str],
    file_names: Sequence[str],
    image_size: tuple[int, int],
    *,
    seed: int = 0,
    quality: int = 85,
    progressive: bool = True,
) -> None:
    """One JPEG frame of ``image_size`` (W, H) at ``images_dir/<file_name>`` for each name (folders are made).

    The encoding follows the real InterHand2.6M frames (those in ``tests/fixtures/real_samples``): progressive, with
    4:2:0 chroma subsampling. Quality 85 gives these frames the real ones' size and decoding time (on the development
    machine: real 27 KB and 1.85 ms to decode with OpenCV, synthetic 28 KB and 1.9 ms; the baseline quality-95 frames
    written before were 67 KB and decoded in 1.06 ms, so they made the loader look faster than on the real data). A
    progressive JPEG also takes another path through a GPU decoder (``data.decode_on=device``) than a baseline one.
    """
    rng = np.random.default_rng(seed)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_PROGRESSIVE, int(bool(progressive))]
    for name in file_names:
        path = Path(images_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(".jpg", _frame(rng, *image_size), params)
        if not ok:  # pragma: no cover - OpenCV without JPEG support
            raise RuntimeError("cv2.imencode could not write a JPEG")
        path.write_bytes(encoded.tobytes())
