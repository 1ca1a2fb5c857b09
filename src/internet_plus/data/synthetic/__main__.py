"""``python -m internet_plus.data.synthetic --root DIR [--num-train N --num-eval M --seed S --workers W]
[--hands skin|glove --max-tilt-deg A --background varied|plain]``."""

from __future__ import annotations

import argparse
import time

from internet_plus.data.synthetic import SceneStyle, generate_rhd_dataset
from internet_plus.data.synthetic.generate import BACKGROUNDS, HAND_LOOKS


def main(argv: list[str] | None = None) -> None:
    """Generate a synthetic RHD-format data set and report how long it took."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-eval", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--two-hand-fraction", type=float, default=0.3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--hands", choices=HAND_LOOKS, default="skin", help="skin tones, or a colour glove")
    parser.add_argument("--max-tilt-deg", type=float, default=180.0, help="180: any orientation")
    parser.add_argument("--background", choices=BACKGROUNDS, default="varied")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    root = generate_rhd_dataset(
        args.root,
        args.num_train,
        args.num_eval,
        args.seed,
        args.two_hand_fraction,
        workers=args.workers,
        overwrite=args.overwrite,
        style=SceneStyle(args.hands, args.max_tilt_deg, args.background),
    )
    elapsed = time.perf_counter() - start
    total = args.num_train + args.num_eval
    print(f"{root}: {total} samples in {elapsed:.1f} s ({total / elapsed:.1f} samples/s, {args.workers} worker(s))")


if __name__ == "__main__":
    main()
