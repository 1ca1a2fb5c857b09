"""A benchmark of the InterHand2.6M index build on a large synthetic annotation set.

``python -m internet_plus.tools.interhand_bench --num 200000`` writes ``--num`` annotations of one split in the release
v1.0 layout (``annotations/<split>/InterHand2.6M_<split>_{data,camera,joint_3d}.json``, ``docs/reference/datasets.md``
§C.1-§C.3; no images) with :func:`internet_plus.data.synthetic.interhand.write_interhand_split` into a temporary
folder, then builds the index (:func:`internet_plus.data.interhand.load_or_build_index`) in a fresh child process and
prints its wall time and peak RSS (``resource.getrusage`` ``ru_maxrss`` of that process, so the generator's own memory
is not counted), and the time of a second, cached open.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from internet_plus.data.synthetic.interhand import write_interhand_split

__all__ = ["main"]


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
    from internet_plus.data.interhand import find_interhand_files, load_or_build_index  # imported in the child only

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
    fake = write_interhand_split(root, args.split, args.num, seed=args.seed)
    sizes = {kind: path.stat().st_size / 2**20 for kind, path in fake.files.items()}
    print(
        f"generated {len(fake.annot_ids)} annotations in {time.perf_counter() - start:.1f} s "
        f"(data {sizes['data']:.0f} MiB, joint_3d {sizes['joint_3d']:.1f} MiB, camera {sizes['camera']:.2f} MiB)"
    )
    del fake
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "internet_plus.tools.interhand_bench", "--split", args.split]
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
