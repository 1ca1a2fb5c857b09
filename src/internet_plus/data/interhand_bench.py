"""Fake InterHand2.6M annotation sets in the official formats, and a benchmark of the index build.

``python -m internet_plus.data.interhand_bench --num 200000`` writes ``--num`` annotations of one split in the release
v1.0 layout (``annotations/<split>/InterHand2.6M_<split>_{data,camera,joint_3d}.json``, ``docs/reference/datasets.md``
§C.1-§C.3; no images) into a temporary folder, then builds the index (:func:`internet_plus.data.interhand.
load_or_build_index`) in a fresh child process and prints its wall time and peak RSS (``resource.getrusage``
``ru_maxrss`` of that process, so the generator's own memory is not counted), and the time of a second, cached open.

:func:`write_fake_split` is also what the tests use to make small fake sets (v1.0 or v0.0 layout, with images on
request). The content follows the recipe of datasets §E: cameras on a ~1 m sphere looking at the hands, the
world→camera rule X_cam = R·(X − campos), one annotation per image (annotation id = image id), ``joint_valid`` = the
joint exists and projects inside the image, the box = 1.2 × the tight box of the valid projected joints,
``hand_type_valid`` = 1 for single hands and (> 30 valid joints) for interacting ones, absent hands at the
placeholder [1, 1, 1], string keys in camera/joint_3d and ints in data.json, compact JSON as the official files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

__all__ = ["FakeSplit", "hand_template", "look_at", "main", "write_fake_split"]

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
class FakeSplit:
    """What :func:`write_fake_split` wrote: file paths and the ground truth the tests compare with."""

    annotation_dir: Path
    files: dict[str, Path]
    file_names: list[str] = field(default_factory=list)
    annot_ids: list[int] = field(default_factory=list)
    hand_types: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (334, 512)


def _json_list(values: np.ndarray, digits: int = 4) -> str:
    return json.dumps(np.round(values, digits).tolist(), separators=(",", ":"))


def write_fake_split(
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
) -> FakeSplit:
    """Write ``num`` annotations of ``split`` under ``root/annotations/`` in the official formats (no images).

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

    out = FakeSplit(folder, files, image_size=image_size)
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
    return out


# --------------------------------------------------------------------------------------------------- benchmark


def _peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _current_rss_mb() -> float:
    """This process's resident set size now, in MiB (``/proc/self/statm``; NaN where it does not exist)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _build_only(root: Path, cache_dir: Path, split: str) -> dict[str, float]:
    from internet_plus.data.interhand import find_interhand_files, load_or_build_index

    files = find_interhand_files(root, split)
    before = _current_rss_mb()
    start = time.perf_counter()
    index = load_or_build_index(files, cache_dir)
    seconds = time.perf_counter() - start
    return {"annotations": len(index), "seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": before}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=200_000, help="annotations to generate (default 200000)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    parser.add_argument("--build-only", nargs=2, metavar=("ROOT", "CACHE_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.build_only:
        result = _build_only(Path(args.build_only[0]), Path(args.build_only[1]), args.split)
        print(json.dumps(result))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="interhand_bench_"))
    root, cache = tmp / "InterHand2.6M", tmp / "cache"
    (root / "images" / args.split).mkdir(parents=True)
    start = time.perf_counter()
    fake = write_fake_split(root, args.split, args.num, seed=args.seed)
    sizes = {kind: path.stat().st_size / 2**20 for kind, path in fake.files.items()}
    print(
        f"generated {len(fake.annot_ids)} annotations in {time.perf_counter() - start:.1f} s "
        f"(data {sizes['data']:.0f} MiB, joint_3d {sizes['joint_3d']:.1f} MiB, camera {sizes['camera']:.2f} MiB)"
    )
    del fake
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "internet_plus.data.interhand_bench", "--split", args.split]
    results = []
    for label in ("build", "cached"):
        run = subprocess.run(
            [*command, "--build-only", str(root), str(cache)], capture_output=True, text=True, env=env, check=False
        )
        if run.returncode:
            print(run.stdout + run.stderr, file=sys.stderr)
            return run.returncode
        result = json.loads(run.stdout.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{label}: {result['annotations']} annotations, wall {result['seconds']:.2f} s, "
            f"peak RSS {result['peak_rss_mb']:.0f} MiB (whole child process; {result['rss_before_mb']:.0f} MiB of it "
            "already resident before the build: Python, numpy, torch, lightning, cv2 imports)"
        )
    index_mb = sum(p.stat().st_size for p in cache.rglob("*.npy")) / 2**20
    print(f"index on disk: {index_mb:.1f} MiB in {cache}")
    build = results[0]
    ok = build["seconds"] < 60 and build["peak_rss_mb"] < 1536
    print(f"targets (< 60 s, < 1.5 GiB peak): {'met' if ok else 'MISSED'}")
    if args.keep:
        print(f"kept {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
