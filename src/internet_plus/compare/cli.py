"""``python -m internet_plus.compare`` (``make compare``): MediaPipe Hands and a checkpoint of ours on labelled photos.

::

    python -m internet_plus.compare --input tests/fixtures/real_samples --ckpt <checkpoint> --out <folder>
    python -m internet_plus.compare --dataset rhd --root <RHD_published_v2> --limit 200 --ckpt <checkpoint>

Reads the labelled photos (:mod:`internet_plus.compare.labelled`), runs both systems
(:mod:`internet_plus.compare.systems`), scores them (:mod:`internet_plus.compare.metrics`,
:mod:`internet_plus.compare.report`) and writes into ``--out`` (a new or empty folder; default
``logs/compare/<date>_<time>``): ``compare.json`` (the command, every summary and every hand's errors), ``compare.md``
(the table, what it means, every hand) and ``montage/<photo>.png`` (annotation | MediaPipe | ours). The table is
printed too. Without ``--ckpt`` only MediaPipe runs, and the table says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from internet_plus.compare.labelled import DATASETS, LabelledImage, count_hands, read_dataset, read_folder
from internet_plus.compare.metrics import MATCH_MAX_COST
from internet_plus.compare.montage import montage
from internet_plus.compare.report import HandScore, markdown_report, markdown_table, score_hands, summarize
from internet_plus.compare.systems import BOX_MODES, OursModel, OursOutput, crop_plans, run_mediapipe
from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.images import read_rgb
from internet_plus.detect.mediapipe_hands import HandDetection, MediaPipeMissingError

__all__ = ["main", "parse_args", "run"]

log = logging.getLogger("internet_plus.compare")

MEDIAPIPE = "MediaPipe Hands"
OURS = "ours"
MEDIAPIPE_BOXES = "its own palm detector"
#: The table's "boxes" cell for ours, per ``--boxes``.
OURS_BOXES = {
    "annotated": "annotated box (evaluation crop)",
    "mediapipe": "MediaPipe's box (predict.py boxes=auto)",
}


def _thresholds(text: str) -> list[float]:
    try:
        values = sorted(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected pixel thresholds such as 10,20") from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected one or more positive pixel thresholds")
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m internet_plus.compare",
        description="MediaPipe Hands and a checkpoint of ours on labelled photos: detection rate, 2-D EPE and PCK in "
        "pixels, root-relative 3-D EPE after scale alignment; compare.json, compare.md and montages in --out.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input",
        type=Path,
        help="a folder laid out as tests/fixtures/real_samples (RHD COCO *rhd*.json and/or InterHand2.6M "
        "<prefix>_{data,camera,joint_3d}.json, in it or in its direct subfolders)",
    )
    source.add_argument("--dataset", choices=sorted(DATASETS), help="a data set root read by the project's readers")
    parser.add_argument("--root", type=Path, help="the data set's folder (with --dataset)")
    parser.add_argument(
        "--split",
        help="the split (default: the evaluation split: rhd evaluation, stb test, interhand test)",
    )
    parser.add_argument(
        "--limit", type=int, default=200, help="at most this many photos per set, spread evenly (0: all; default 200)"
    )
    parser.add_argument("--ckpt", type=Path, help="a checkpoint of ours; without it only MediaPipe runs")
    parser.add_argument(
        "--boxes",
        choices=BOX_MODES,
        default="annotated",
        help="our model's crop: the data set's evaluation box (annotated, default) or the box predict.py boxes=auto "
        "chooses from MediaPipe's detections (mediapipe)",
    )
    parser.add_argument("--out", type=Path, help="output folder, new or empty (default logs/compare/<date>_<time>)")
    parser.add_argument(
        "--pck-px", type=_thresholds, default=[10.0, 20.0], help="PCK thresholds in pixels (default 10,20)"
    )
    parser.add_argument("--device", default="auto", help="for ours: auto, cpu or cuda[:<index>] (default auto)")
    parser.add_argument("--batch-size", type=int, default=8, help="crops per forward pass of ours (default 8)")
    parser.add_argument(
        "--min-detection-confidence", type=float, default=0.3, help="MediaPipe's palm detector threshold (0.3)"
    )
    parser.add_argument(
        "--max-montages", type=int, default=50, help="write montages for at most this many photos (default 50)"
    )
    parser.add_argument("--cache-dir", type=Path, help="InterHand2.6M index cache (default ~/.cache/internet_plus)")
    args = parser.parse_args(argv)
    if args.dataset and args.root is None:
        parser.error("--dataset needs --root <the data set's folder>")
    if args.input is not None and (args.root is not None or args.split is not None):
        parser.error("--root and --split go with --dataset, not --input")
    if args.limit < 0 or args.max_montages < 0:
        parser.error("--limit and --max-montages must be >= 0")
    return args


def _output_dir(out: Path | None) -> Path:
    """``out`` (created; refused when it holds anything) or a new ``logs/compare/<date>_<time>``."""
    path = Path(out).expanduser() if out is not None else Path("logs") / "compare" / time.strftime("%Y-%m-%d_%H-%M-%S")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"--out {path} exists and is not empty; refusing to overwrite it (give a new folder)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _images(args: argparse.Namespace) -> tuple[list[LabelledImage], str]:
    if args.input is not None:
        return read_folder(args.input, args.limit, cache_dir=args.cache_dir), f"the photos in {args.input}"
    split = args.split or DATASETS[args.dataset]
    images = read_dataset(args.dataset, args.root, split, args.limit, cache_dir=args.cache_dir)
    if not images:
        raise ValueError(f"--dataset {args.dataset} --root {args.root}: the {split} split has no scorable hand")
    return images, f"{args.dataset} {split} in {args.root} ({len(images)} photos spread evenly, --limit {args.limit})"


def _rounded(value: float, digits: int) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def _hand_entries(images: Sequence[LabelledImage], scores: dict[str, list[HandScore]]) -> list[dict[str, Any]]:
    out, k = [], 0
    for image in images:
        for hand in image.hands:
            entry: dict[str, Any] = {"photo": image.name, "image": str(image.image_path), "hand": hand.name}
            for name, per_hand in scores.items():
                s = per_hand[k]
                entry[name] = {
                    "found": s.found,
                    "epe_2d_px": _rounded(s.mean(s.errors_2d), 3),
                    "epe_3d_scale_aligned_mm": _rounded(s.mean(s.errors_3d_scale), 3),
                    "epe_3d_procrustes_mm": _rounded(s.mean(s.errors_3d_procrustes), 3),
                    "scale": _rounded(s.scale, 4),
                    "handedness_agrees": s.handedness_agrees,
                }
            out.append(entry)
            k += 1
    return out


def _title(name: str, scores: Sequence[HandScore], extra: str = "") -> str:
    """A montage panel's title: hands found and their 2-D EPE over the annotated joints."""
    found = [s for s in scores if s.found]
    text = f"{name}: {len(found)}/{len(scores)} hands"
    if found:
        pooled = np.concatenate([s.errors_2d[s.annotated] for s in found])
        text += f", 2-D EPE {float(pooled.mean()):.1f} px"
    return text + extra


def _write_montages(
    out: Path,
    images: Sequence[LabelledImage],
    scores: dict[str, list[HandScore]],
    detections: Sequence[Sequence[HandDetection]],
    ours_outputs: Sequence[OursOutput | None] | None,
    limit: int,
) -> dict[str, str]:
    """``montage/<photo>.png`` for the first ``limit`` photos; returns photo name → relative path."""
    montages: dict[str, str] = {}
    if limit:
        (out / "montage").mkdir()
    first = 0
    for k, image in enumerate(images[:limit]):
        count = len(image.hands)
        mine = {name: per_hand[first : first + count] for name, per_hand in scores.items()}
        unmatched = len(detections[k]) - sum(s.found for s in mine[MEDIAPIPE])
        picture = montage(
            read_rgb(image.image_path),
            image,
            detections[k],
            _title(MEDIAPIPE, mine[MEDIAPIPE], f", {unmatched} other detection(s)" if unmatched else ""),
            ours_outputs[k] if ours_outputs is not None else None,
            _title(OURS, mine[OURS]) if OURS in mine else "",
        )
        cv2.imwrite(str(out / "montage" / f"{image.name}.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        montages[image.name] = f"montage/{image.name}.png"
        first += count
    return montages


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Everything the command does (module docstring); returns what ``compare.json`` holds."""
    images, source = _images(args)
    ours = OursModel(args.ckpt, args.device, args.batch_size) if args.ckpt is not None else None
    out = _output_dir(args.out)
    log.info("%d photos with %d annotated hands from %s; outputs in %s", len(images), count_hands(images), source, out)

    mp_predictions, detections = run_mediapipe(images, min_detection_confidence=args.min_detection_confidence)
    scores = {MEDIAPIPE: score_hands(images, mp_predictions)}
    ours_outputs = None
    if ours is not None:
        crops = crop_plans(images, args.boxes, detections, mp_predictions)
        ours_predictions, ours_outputs = ours.run(images, crops)
        scores[OURS] = score_hands(images, ours_predictions)
    scored = [all(per_hand[k].found for per_hand in scores.values()) for k in range(len(scores[MEDIAPIPE]))]
    boxes = {MEDIAPIPE: MEDIAPIPE_BOXES, OURS: OURS_BOXES[args.boxes]}
    summaries = [
        summarize(name, boxes[name], images, per_hand, scored, args.pck_px) for name, per_hand in scores.items()
    ]
    missing = None if ours is not None else "not run: no --ckpt given (MediaPipe only)"
    table = markdown_table(summaries, args.pck_px, missing)
    montages = _write_montages(out, images, scores, detections, ours_outputs, args.max_montages)

    notes = [
        f"Detected: {MEDIAPIPE} finds an annotated hand when one of its detections is assigned to it (Hungarian "
        f"matching on the mean landmark distance over the hand's size, at most {MATCH_MAX_COST:g} of the diagonal of "
        f"the annotated joints' box). Ours crops the {OURS_BOXES[args.boxes]}: "
        + (
            "it gives a pose for every annotated hand, so its detection rate is that of the annotated box."
            if args.boxes == "annotated"
            else "it gives a pose for a hand when the box holds MediaPipe's detection matched to it."
        ),
        "2-D EPE, PCK and 3-D EPE are pooled over the annotated joints of the hands every system in the run detected "
        "(hands scored); the 'misses wrong' PCK is over all annotated hands, a missed hand's joints all wrong.",
        "3-D EPE, scale-aligned: both poses root-relative (wrist at the origin), the prediction scaled by the "
        "least-squares s = Σ<p, g> / Σ<p, p>. Procrustes: the best rotation, scale and translation (PA-MPJPE).",
        "MediaPipe's 3-D pose is its world landmarks (mm, its own origin and scale); ours is decoded with the "
        "annotated intrinsics and wrist depths (InterNet's 'gt' mode).",
    ]
    if ours is None:
        notes.append("No checkpoint was given: only MediaPipe Hands ran.")
    result = {
        "command": command,
        "source": source,
        "checkpoint": str(ours.path) if ours is not None else None,
        "ours_boxes": args.boxes if ours is not None else None,
        "pck_thresholds_px": args.pck_px,
        "match_max_cost": MATCH_MAX_COST,
        "systems": [s.as_dict() for s in summaries],
        "hands": _hand_entries(images, scores),
    }
    (out / "compare.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "compare.md").write_text(
        markdown_report(
            command=command,
            source=source,
            table=table,
            notes=notes,
            images=images,
            scores=scores,
            montages=montages,
        )
    )
    print(table)
    print(f"\ncompare.json, compare.md and {len(montages)} montage(s) in {out}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0, or 2 when an input, the output folder, the checkpoint or
    MediaPipe is not usable: the message says which and why)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        run(args, shlex.join(["python", "-m", "internet_plus.compare", *words]))
    except (OSError, ValueError, DatasetLayoutError, MediaPipeMissingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
