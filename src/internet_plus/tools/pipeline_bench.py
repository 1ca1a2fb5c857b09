"""Input-pipeline throughput per worker core: ``dataset[i]`` with training augmentation, RHD PNGs and InterHand JPEGs.

The performance target: "at least 300 samples/s per worker core with training augmentation, for
RHD-format PNGs and for InterHand2.6M-format JPEGs, measured; DataLoader defaults that scale with the machine's
cores" (the defaults are :func:`internet_plus.data.datamodule.resolve_num_workers`).

**What is measured.** Samples per second of the project's own training ``Dataset`` (``RHDDataset`` and
``InterHandDataset`` with ``augment=True``, InterNet's augmentation, at the paper's 256 px input), i.e. what one
DataLoader worker does per sample: read the file, decode it, draw the augmentation, warp, colour-scale, normalise
and assemble the target tensors. Collation and inter-process transfer are not included.

**How.** A small synthetic tree of each format is written into a temporary folder: RHD_published_v2 by the synthetic
generator (:func:`internet_plus.data.synthetic.generate.generate_rhd_dataset`: rendered hands on a textured
background, 320×320 colour, mask and depth PNGs as the official files) and InterHand2.6M v1.0 annotations with
512×334 JPEG frames (progressive, quality 85, as the real frames in size and decoding time; smooth random content
with sensor-like noise) by
:func:`internet_plus.data.synthetic.interhand.write_interhand_split`. The process is pinned to one core
(``os.sched_setaffinity`` where available) with ``torch.set_num_threads(1)`` and ``cv2.setNumThreads(1)``, as one
loader worker; after a warm-up pass the samples are read in a fixed order (cycling over the tree, epochs 1, 2, … so
each pass draws new augmentation; the files stay in the page cache, as on a machine whose data set fits in RAM).

The per-stage split comes from a second, separately timed pass: ``read+decode`` (the dataset's image read:
``np.fromfile`` + ``cv2.imdecode`` + BGR→RGB), ``warp`` (:func:`internet_plus.data.transforms.warp_image`, the
bilinear ``cv2.warpAffine`` to 256²) and ``other`` (the augmentation draw, the float conversion, the colour scale,
normalisation, targets and tensors: the rest of the dataset's ``_sample``).

``python -m internet_plus.tools.pipeline_bench [--samples 200] [--json F]`` prints samples/s per worker core for each
format against the 300 target.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from internet_plus.data import transforms
from internet_plus.data.base_dataset import HandPoseDataset
from internet_plus.utils.reports import write_json_report

__all__ = [
    "TARGET_SAMPLES_PER_S",
    "bench_dataset",
    "main",
    "make_interhand_dataset",
    "make_rhd_dataset",
    "one_core",
    "run_bench",
]

#: The target, samples per second per worker core.
TARGET_SAMPLES_PER_S = 300.0

#: InterHand2.6M frame size (W, H): 512×334 or 334×512 in the release (``docs/reference/datasets.md`` §C).
INTERHAND_IMAGE_SIZE = (512, 334)


@contextlib.contextmanager
def one_core() -> Iterator[int | None]:
    """Run the block as one loader worker: pinned to one CPU (where the OS allows), one torch and one OpenCV thread.

    Yields the pinned core (``None`` when affinity is not available); everything is restored afterwards.
    """
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    affinity = None
    core: int | None = None
    if hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity"):
        affinity = os.sched_getaffinity(0)
        core = max(affinity)
        os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield core
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


def make_rhd_dataset(folder: Path, num: int, input_size: int = 256, image_size: int = 320) -> HandPoseDataset:
    """A synthetic RHD_published_v2 tree of ``num`` training samples under ``folder`` and its augmented dataset."""
    from internet_plus.data.rhd import RHDDataset
    from internet_plus.data.synthetic.generate import generate_rhd_dataset

    root = generate_rhd_dataset(folder / "RHD_published_v2", num_train=num, num_eval=1, image_size=image_size)
    return RHDDataset(root, "training", input_size=input_size, augment=True, cache_dir=folder / "cache")


def make_interhand_dataset(
    folder: Path, num: int, input_size: int = 256, image_size: tuple[int, int] = INTERHAND_IMAGE_SIZE
) -> HandPoseDataset:
    """A synthetic InterHand2.6M v1.0 train split of ``num`` annotated JPEG frames under ``folder`` and its augmented
    dataset (every annotation, single and interacting hands)."""
    from internet_plus.data.interhand import InterHandDataset, find_interhand_files, load_or_build_index
    from internet_plus.data.synthetic.interhand import write_interhand_split

    root = folder / "InterHand2.6M"
    write_interhand_split(root, "train", num, image_size=image_size, cameras_per_capture=min(10, num), images=True)
    files = find_interhand_files(root, "train")
    index = load_or_build_index(files, folder / "cache")
    return InterHandDataset(index, root / "images" / "train", input_size=input_size, augment=True)


def _mean_file_kb(dataset: HandPoseDataset) -> float:
    sizes = [os.path.getsize(dataset._image_path(i)) for i in range(len(dataset))]
    return float(np.mean(sizes)) / 1024.0


def _timed(fn: Callable[..., Any], bucket: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket.append(time.perf_counter() - start)

    return wrapper


def bench_dataset(dataset: HandPoseDataset, samples: int, warmup: int = 10) -> dict[str, Any]:
    """Samples/s of ``dataset[(epoch, i)]`` in this process on one core, and the per-stage split (module docstring).

    Args:
        dataset: an augmented training dataset.
        samples: samples timed (the dataset is cycled over, one epoch number per pass).
        warmup: samples read first and not timed.
    """
    n = len(dataset)
    if n == 0 or samples < 1:
        raise ValueError(f"need a non-empty dataset and samples >= 1, got {n} samples and samples={samples}")
    items = [(1 + k // n, k % n) for k in range(samples)]
    with one_core() as core:
        for k in range(min(warmup, n)):
            dataset[(0, k)]
        start = time.perf_counter()
        for item in items:
            dataset[item]
        total = time.perf_counter() - start

        # stage split: a second pass over the same items, each stage timed on its own
        decode: list[float] = []
        sample: list[float] = []
        warp: list[float] = []
        original_warp = transforms.warp_image
        transforms.warp_image = _timed(original_warp, warp)
        try:
            for epoch, index in items:
                t0 = time.perf_counter()
                index, image = dataset._read_image(index)
                t1 = time.perf_counter()
                dataset._sample(index, image, epoch)
                t2 = time.perf_counter()
                decode.append(t1 - t0)
                sample.append(t2 - t1)
        finally:
            transforms.warp_image = original_warp
    per_sample_ms = {
        "read+decode": 1e3 * float(np.mean(decode)),
        "warp": 1e3 * float(np.mean(warp)),
        "other": 1e3 * float(np.mean(sample) - np.mean(warp)),
    }
    rate = samples / total
    return {
        "samples": samples,
        "dataset_size": n,
        "core": core,
        "seconds": total,
        "samples_per_s": rate,
        "ms_per_sample": 1e3 * total / samples,
        "stage_ms_per_sample": per_sample_ms,
        "mean_file_kb": _mean_file_kb(dataset),
        "target_samples_per_s": TARGET_SAMPLES_PER_S,
        "meets_target": rate >= TARGET_SAMPLES_PER_S,
    }


def run_bench(
    samples: int = 200,
    tree_size: int = 40,
    input_size: int = 256,
    rhd_image_size: int = 320,
    interhand_image_size: tuple[int, int] = INTERHAND_IMAGE_SIZE,
    warmup: int = 10,
    folder: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write both fake trees (in ``folder`` or a temporary one) and bench each format; results keyed by format."""
    with tempfile.TemporaryDirectory(prefix="pipeline_bench_") as tmp:
        base = Path(folder) if folder is not None else Path(tmp)
        rhd = make_rhd_dataset(base / "rhd", tree_size, input_size, rhd_image_size)
        interhand = make_interhand_dataset(base / "interhand", tree_size, input_size, interhand_image_size)
        return {
            "rhd_png": {
                "image": f"{rhd_image_size}x{rhd_image_size} PNG",
                **bench_dataset(rhd, samples, warmup),
            },
            "interhand_jpeg": {
                "image": f"{interhand_image_size[0]}x{interhand_image_size[1]} JPEG",
                **bench_dataset(interhand, samples, warmup),
            },
            "input_size": input_size,
            "torch_threads": 1,
        }


def format_table(result: dict[str, Any]) -> str:
    """The results of :func:`run_bench` as a small text table."""
    lines = [
        f"dataset[i] with training augmentation, {result['input_size']} px input, one process on one core",
        f"{'format':<16}{'image':<16}{'file KB':>8}{'samples/s':>11}{'decode ms':>11}{'warp ms':>9}{'other ms':>10}"
        f"{'target':>8}",
    ]
    for key in ("rhd_png", "interhand_jpeg"):
        r = result[key]
        stages = r["stage_ms_per_sample"]
        lines.append(
            f"{key:<16}{r['image']:<16}{r['mean_file_kb']:>8.1f}{r['samples_per_s']:>11.1f}"
            f"{stages['read+decode']:>11.2f}{stages['warp']:>9.2f}{stages['other']:>10.2f}"
            f"{'met' if r['meets_target'] else 'NOT met':>8}"
        )
    lines.append(f"target: >= {TARGET_SAMPLES_PER_S:.0f} samples/s per worker core")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: write the fake trees, bench both formats, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="timed samples per format")
    parser.add_argument("--tree-size", type=int, default=40, help="samples written per fake tree")
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    result = run_bench(args.samples, args.tree_size, args.input_size, warmup=args.warmup)
    print(format_table(result))
    write_json_report(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
