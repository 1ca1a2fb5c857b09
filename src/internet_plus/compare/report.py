"""The comparison's numbers: per-hand scores (:func:`score_hands`), one summary per system (:func:`summarize`), the
Markdown table both ``compare.md`` and the terminal show (:func:`markdown_table`) and ``compare.md`` itself
(:func:`markdown_report`).

**Which hands are scored.** A system *detects* an annotated hand when it gives a pose for it (MediaPipe: a matched
detection; ours: always, on the annotated box). The errors (2-D EPE, PCK, 3-D EPE) are pooled over the annotated
joints of the hands that *every* system in the run detected, so both systems are scored on the same hands; a missed
hand only lowers its system's detection rate there. One more column counts misses as errors: PCK over *all*
annotated hands, where every joint of a missed hand is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from internet_plus.compare.labelled import LabelledImage
from internet_plus.compare.metrics import pck, point_errors, procrustes_errors, scale_aligned_errors, scale_factor
from internet_plus.compare.systems import HandPrediction
from internet_plus.joints import JOINTS_PER_HAND

__all__ = ["HandScore", "SystemSummary", "markdown_report", "markdown_table", "score_hands", "summarize"]


@dataclass(frozen=True)
class HandScore:
    """One system's errors on one annotated hand (NaN where it found no pose): per-joint arrays over 21 joints."""

    found: bool
    errors_2d: np.ndarray  # px
    errors_3d_scale: np.ndarray  # mm, after root-relative + least-squares scale
    errors_3d_procrustes: np.ndarray  # mm, after the similarity transform
    annotated: np.ndarray  # the joints that count
    scale: float
    handedness_agrees: bool | None

    def mean(self, errors: np.ndarray) -> float:
        """The mean of one of its per-joint errors over the annotated joints (NaN when not found)."""
        return float(errors[self.annotated].mean()) if self.found else math.nan


def score_hands(images: Sequence[LabelledImage], predictions: Sequence[Sequence[HandPrediction]]) -> list[HandScore]:
    """The :class:`HandScore` of every annotated hand, photo by photo and hand by hand (the order of ``images``)."""
    out = []
    nan = np.full(JOINTS_PER_HAND, np.nan)
    for image, per_hand in zip(images, predictions, strict=True):
        for hand, pred in zip(image.hands, per_hand, strict=True):
            if not pred.found or pred.uv is None or pred.rel3d is None:
                out.append(HandScore(False, nan, nan, nan, hand.annotated, math.nan, None))
                continue
            gt = hand.cam - hand.cam[0]
            out.append(
                HandScore(
                    found=True,
                    errors_2d=point_errors(pred.uv, hand.uv),
                    errors_3d_scale=scale_aligned_errors(pred.rel3d, gt, hand.annotated),
                    errors_3d_procrustes=procrustes_errors(pred.rel3d, gt, hand.annotated),
                    annotated=hand.annotated,
                    scale=scale_factor(pred.rel3d, gt, hand.annotated),
                    handedness_agrees=pred.handedness_agrees,
                )
            )
    return out


@dataclass(frozen=True)
class SystemSummary:
    """One row of the table (module docstring for which hands count)."""

    system: str
    boxes: str
    images: int
    hands_annotated: int
    detected: int
    detection_rate: float
    hands_scored: int
    epe_2d_px: float
    pck_px: dict[str, float]
    pck_px_misses_wrong: dict[str, float]
    epe_3d_scale_aligned_mm: float
    epe_3d_procrustes_mm: float
    median_scale: float
    handedness_agreement: float | None

    def as_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in asdict(self).items()}


def _plain(value: Any) -> Any:
    """JSON-ready: NaN becomes ``None``; floats are rounded to 4 decimals."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def _pooled_mean(errors: list[np.ndarray], masks: list[np.ndarray]) -> float:
    values = [e[m] for e, m in zip(errors, masks, strict=True)]
    joined = np.concatenate(values) if values else np.zeros(0)
    return float(joined.mean()) if joined.size else math.nan


def summarize(
    system: str,
    boxes: str,
    images: Sequence[LabelledImage],
    scores: Sequence[HandScore],
    scored: Sequence[bool],
    thresholds: Sequence[float],
) -> SystemSummary:
    """One system's row: detection over all annotated hands, errors over the hands flagged in ``scored``."""
    masks = [hand.annotated for image in images for hand in image.hands]
    if not len(masks) == len(scores) == len(scored):
        raise ValueError(f"{len(masks)} annotated hands, {len(scores)} scores and {len(scored)} flags")
    picked = [k for k, flag in enumerate(scored) if flag]
    if any(not scores[k].found for k in picked):
        raise ValueError(f"{system}: a hand flagged as scored was not found by it")
    detected = sum(s.found for s in scores)
    keys = [f"{t:g}" for t in thresholds]
    errors_2d = np.stack([scores[k].errors_2d for k in picked]) if picked else np.zeros((0, JOINTS_PER_HAND))
    mask_2d = np.stack([masks[k] for k in picked]) if picked else np.zeros((0, JOINTS_PER_HAND), bool)
    all_errors = (
        np.stack([np.where(s.found, s.errors_2d, np.inf) for s in scores]) if scores else np.zeros((0, JOINTS_PER_HAND))
    )
    all_masks = np.stack(masks) if masks else np.zeros((0, JOINTS_PER_HAND), bool)
    labels = [scores[k].handedness_agrees for k in range(len(scores)) if scores[k].handedness_agrees is not None]
    return SystemSummary(
        system=system,
        boxes=boxes,
        images=len(images),
        hands_annotated=len(scores),
        detected=int(detected),
        detection_rate=detected / len(scores) if scores else math.nan,
        hands_scored=len(picked),
        epe_2d_px=_pooled_mean([scores[k].errors_2d for k in picked], [masks[k] for k in picked]),
        pck_px=dict(zip(keys, map(float, pck(errors_2d, mask_2d, thresholds)), strict=True)),
        pck_px_misses_wrong=dict(zip(keys, map(float, pck(all_errors, all_masks, thresholds)), strict=True)),
        epe_3d_scale_aligned_mm=_pooled_mean([scores[k].errors_3d_scale for k in picked], [masks[k] for k in picked]),
        epe_3d_procrustes_mm=_pooled_mean([scores[k].errors_3d_procrustes for k in picked], [masks[k] for k in picked]),
        median_scale=float(np.median([scores[k].scale for k in picked])) if picked else math.nan,
        handedness_agreement=float(np.mean(labels)) if labels else None,
    )


# --------------------------------------------------------------------------------------------------- Markdown


def _number(value: float | None, digits: int = 1, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.{digits}f} %" if percent else f"{value:.{digits}f}"


def markdown_table(summaries: Sequence[SystemSummary], thresholds: Sequence[float], missing: str | None) -> str:
    """The comparison table (one row per system; ``missing`` a row text for a system that was not run)."""
    keys = [f"{t:g}" for t in thresholds]
    head = [
        "system",
        "boxes",
        "images",
        "hands annotated",
        "detected",
        "detection rate",
        "hands scored",
        "2-D EPE (px)",
        *(f"PCK@{k} px" for k in keys),
        f"PCK@{keys[-1]} px, misses wrong",
        "3-D EPE, scale-aligned (mm)",
        "3-D EPE, Procrustes (mm)",
        "handedness agrees",
    ]
    rows = [head, ["---"] * len(head)]
    for s in summaries:
        rows.append(
            [
                s.system,
                s.boxes,
                str(s.images),
                str(s.hands_annotated),
                str(s.detected),
                _number(s.detection_rate, 1, percent=True),
                str(s.hands_scored),
                _number(s.epe_2d_px, 2),
                *(_number(s.pck_px[k], 1, percent=True) for k in keys),
                _number(s.pck_px_misses_wrong[keys[-1]], 1, percent=True),
                _number(s.epe_3d_scale_aligned_mm, 1),
                _number(s.epe_3d_procrustes_mm, 1),
                _number(s.handedness_agreement, 1, percent=True),
            ]
        )
    if missing:
        rows.append(["ours", missing, *(["—"] * (len(head) - 2))])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _hand_rows(
    images: Sequence[LabelledImage], scores: Mapping[str, Sequence[HandScore]], montages: Mapping[str, str]
) -> str:
    systems = list(scores)
    head = ["photo", "hand", *(f"{name}: 2-D EPE (px) / 3-D scale-aligned (mm)" for name in systems)]
    rows = [head, ["---"] * len(head)]
    k = 0
    for image in images:
        photo = f"[{image.name}]({montages[image.name]})" if image.name in montages else image.name
        for hand in image.hands:
            cells = [
                f"{_number(s.mean(s.errors_2d), 1)} / {_number(s.mean(s.errors_3d_scale), 1)}" if s.found else "missed"
                for s in (scores[name][k] for name in systems)
            ]
            rows.append([photo, hand.name, *cells])
            k += 1
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def markdown_report(
    *,
    command: str,
    source: str,
    table: str,
    notes: Sequence[str],
    images: Sequence[LabelledImage],
    scores: Mapping[str, Sequence[HandScore]],
    montages: Mapping[str, str],
) -> str:
    """``compare.md``: the command, the table, what its columns mean, and every hand's errors."""
    lines = [
        "# MediaPipe Hands and ours on labelled photos",
        "",
        f"Command: `{command}`",
        "",
        f"Labelled set: {source}.",
        "",
        table,
        "",
        *(f"- {note}" for note in notes),
        "",
        "## Every annotated hand",
        "",
        _hand_rows(images, scores, montages),
        "",
    ]
    return "\n".join(lines)
