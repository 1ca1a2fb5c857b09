"""The figures of the collected runs, drawn with matplotlib (no pyplot, so no GUI backend is needed).

* ``pck_curves.png``: the 3-D PCK curves of all finished runs, one panel per data set (the paper's Figure 5);
* ``convergence.png``: the validation EPE per epoch of all runs with a ``val_history.jsonl``, one panel per data set
  (the paper's Figure 7).

The colour of a line names the backbone variant, its dash pattern and marker the run (seed) within it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from internet_plus.metrics.functional import PCK_THRESHOLDS
from internet_plus.results.runs import DATASET_TITLES, RunRecord, dataset_rank, number

log = logging.getLogger(__name__)


def _panels(datasets: Sequence[str], title: str) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe in any process

    count = max(1, len(datasets))
    fig = Figure(figsize=(5.5 * count, 4.5), layout="constrained")
    axes = fig.subplots(1, count, squeeze=False)[0]
    fig.suptitle(title)
    return fig, list(axes)


def _styles(runs: Sequence[RunRecord]) -> dict[Path, dict[str, Any]]:
    """A line style per run: the colour names the backbone, the dash pattern and marker the run within it."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    colors = {b: cmap(i % 10) for i, b in enumerate(sorted({r.backbone for r in runs}))}
    dashes, markers = ("-", "--", ":", "-."), ("o", "s", "^", "D", "v")
    seen: dict[str, int] = {}
    styles = {}
    for r in runs:
        k = seen[r.backbone] = seen.get(r.backbone, -1) + 1
        styles[r.path] = {
            "color": colors[r.backbone],
            "linestyle": dashes[k % len(dashes)],
            "marker": markers[k % len(markers)],
            "markersize": 3,
        }
    return styles


def plot_pck_curves(runs: Sequence[RunRecord], path: Path) -> None:
    """``pck_curves.png``: each finished run's ``test/pck_curve`` against the thresholds (20, 21, …, 50 mm)."""
    curves = [r for r in runs if r.ok and isinstance((r.metrics or {}).get("test/pck_curve"), list)]
    datasets = sorted({r.dataset for r in curves}, key=dataset_rank)
    fig, axes = _panels(datasets, "3-D PCK (Figure 5)")
    styles = _styles(curves)
    for ax, dataset in zip(axes, datasets or [""], strict=False):
        ax.set_title(f"3D PCK on {DATASET_TITLES.get(dataset, dataset)}" if dataset else "no finished runs")
        ax.set_xlabel("error threshold (mm)")
        ax.set_ylabel("3D PCK")
        ax.set_xlim(PCK_THRESHOLDS[0], PCK_THRESHOLDS[-1])
        ax.grid(alpha=0.3)
        for r in (r for r in curves if r.dataset == dataset):
            values = np.array([np.nan if v is None else v for v in r.metrics["test/pck_curve"]], dtype=float)
            if values.shape != PCK_THRESHOLDS.shape:
                log.warning(
                    "%s: pck_curve has %d values, expected %d; skipped", r.path, values.size, PCK_THRESHOLDS.size
                )
                continue
            auc = number(r.metrics.get("test/auc_20_50"))
            label = f"{r.label} (AUC={auc:.3f})" if auc is not None else r.label
            ax.plot(PCK_THRESHOLDS, values, label=label, **styles[r.path])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="lower right")
    fig.savefig(path, dpi=120)


def plot_convergence(runs: Sequence[RunRecord], path: Path) -> None:
    """``convergence.png``: ``val/epe_mm`` per epoch (epochs counted from 1) of every run with a history."""
    from matplotlib.ticker import MaxNLocator

    with_history = [r for r in runs if any(number(e.get("val/epe_mm")) is not None for e in r.history)]
    datasets = sorted({r.dataset for r in with_history}, key=dataset_rank)
    fig, axes = _panels(datasets, "Validation EPE per epoch (Figure 7)")
    styles = _styles(with_history)
    for ax, dataset in zip(axes, datasets or [""], strict=False):
        ax.set_title(
            f"Convergence on {DATASET_TITLES.get(dataset, dataset)}" if dataset else "no val_history.jsonl found"
        )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("validation EPE (mm)")
        ax.grid(alpha=0.3)
        for r in (r for r in with_history if r.dataset == dataset):
            points = sorted(
                (int(e["epoch"]) + 1, v) for e in r.history if (v := number(e.get("val/epe_mm"))) is not None
            )
            label = r.label if r.ok else f"{r.label} (incomplete)"
            ax.plot(*zip(*points, strict=True), label=label, **styles[r.path])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="upper right")
    fig.savefig(path, dpi=120)
