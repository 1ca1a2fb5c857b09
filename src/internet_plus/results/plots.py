"""The figures of the collected runs, drawn with matplotlib (no pyplot, so no GUI backend is needed).

* ``pck_curves.png``: the 3-D PCK curves of all finished runs, one panel per data set (the paper's Figure 5), each
  labelled with both AUCs, the contract's pooled one and hand3d's (:mod:`internet_plus.results.tables`);
* ``convergence.png``: the EPE per epoch of all runs with a ``val_history.jsonl``, one panel per data set (the
  paper's Figure 7): the evaluation split's ``monitor/epe_mm`` (paper recipes) when the run has it, else the
  held-out ``val/epe_mm``.

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
    colors = {b: cmap(i % 10) for i, b in enumerate(sorted({r.variant for r in runs}))}
    dashes, markers = ("-", "--", ":", "-."), ("o", "s", "^", "D", "v")
    seen: dict[str, int] = {}
    styles = {}
    for r in runs:
        k = seen[r.variant] = seen.get(r.variant, -1) + 1
        styles[r.path] = {
            "color": colors[r.variant],
            "linestyle": dashes[k % len(dashes)],
            "marker": markers[k % len(markers)],
            "markersize": 3,
        }
    return styles


def pck_label(run: RunRecord) -> str:
    """A run's legend entry in ``pck_curves.png``: its label and the AUCs it has, e.g.
    ``internet_plus seed=0 (AUC=0.900, hand3d AUC=0.930)`` (pooled first, as drawn; hand3d's second)."""
    metrics = run.metrics or {}
    aucs = [
        f"{name}={value:.3f}"
        for name, key in (("AUC", "test/auc_20_50"), ("hand3d AUC", "test/auc_20_50_hand3d"))
        if (value := number(metrics.get(key))) is not None
    ]
    return f"{run.label} ({', '.join(aucs)})" if aucs else run.label


def plot_pck_curves(runs: Sequence[RunRecord], path: Path) -> None:
    """``pck_curves.png``: each finished run's ``test/pck_curve`` against the thresholds (20, 21, …, 50 mm).

    The legend gives the run's ``test/auc_20_50`` (pooled, the curve drawn) and ``test/auc_20_50_hand3d`` (the
    literature's convention, comparable with published AUCs) when the run has it.
    """
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
            ax.plot(PCK_THRESHOLDS, values, label=pck_label(r), **styles[r.path])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="lower right")
    fig.savefig(path, dpi=120)


#: The per-epoch EPE a convergence curve draws, first found first: the evaluation split scored every epoch by the
#: paper recipes (``data.monitor_eval_split``), then the held-out validation set.
CONVERGENCE_KEYS = (
    ("monitor/epe_mm", "evaluation-split EPE"),
    ("val/epe_mm", "validation EPE"),
)


def convergence_series(run: RunRecord) -> tuple[str, list[tuple[int, float]]] | None:
    """The curve ``convergence.png`` draws for a run: the first key of :data:`CONVERGENCE_KEYS` its history has, and
    its (epoch counted from 1, EPE) points; ``None`` when it has neither."""
    for key, _ in CONVERGENCE_KEYS:
        points = sorted((int(e["epoch"]) + 1, v) for e in run.history if (v := number(e.get(key))) is not None)
        if points:
            return key, points
    return None


def plot_convergence(runs: Sequence[RunRecord], path: Path) -> None:
    """``convergence.png``: the EPE per epoch (epochs counted from 1) of every run with a history: ``monitor/epe_mm``
    (the evaluation split, paper recipes) when the run has it, else ``val/epe_mm``; the legend names the key."""
    from matplotlib.ticker import MaxNLocator

    series = {r.path: s for r in runs if (s := convergence_series(r)) is not None}
    with_history = [r for r in runs if r.path in series]
    datasets = sorted({r.dataset for r in with_history}, key=dataset_rank)
    fig, axes = _panels(datasets, "EPE per epoch (Figure 7)")
    styles = _styles(with_history)
    for ax, dataset in zip(axes, datasets or [""], strict=False):
        ax.set_title(
            f"Convergence on {DATASET_TITLES.get(dataset, dataset)}" if dataset else "no val_history.jsonl found"
        )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        keys = {series[r.path][0] for r in with_history if r.dataset == dataset}
        names = dict(CONVERGENCE_KEYS)
        ax.set_ylabel(" / ".join(f"{names[k]} ({k}, mm)" for k, _ in CONVERGENCE_KEYS if k in keys) or "EPE (mm)")
        ax.grid(alpha=0.3)
        for r in (r for r in with_history if r.dataset == dataset):
            key, points = series[r.path]
            label = f"{r.label} [{key}]" if r.ok else f"{r.label} [{key}] (incomplete)"
            ax.plot(*zip(*points, strict=True), label=label, **styles[r.path])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="upper right")
    fig.savefig(path, dpi=120)
