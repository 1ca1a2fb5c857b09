"""Collect run and sweep directories into the paper's results tables and figures.

``python -m internet_plus.tasks.collect <dir> [<dir> ...] [--out <folder>] [--paper-table 2|5|6|7|all]``
(``make results RUNS=logs/ablation/multiruns/<date>``)

Every folder under the given directories that holds ``.hydra/config.yaml`` is a run directory. For each run the
backbone variant, data set and seed are read from its Hydra files, the final test metrics from ``metrics.json`` and
the per-epoch validation metrics from ``val_history.jsonl`` (:class:`internet_plus.callbacks.ValidationHistory`).
A run without a readable ``metrics.json`` is listed as FAILED/incomplete with its folder and the reason
(``failed.json`` of a sweep job when there is one), never silently dropped.

Written into ``--out`` (default: the first directory):

* ``results.md``: the paper's Tables 2 (EPE on STB and RHD), 5 (MPJPE on InterHand2.6M), 6 (coordinate attention
  vs SE vs none) and 7 (with/without FcaNet) laid out as in the paper, one row per backbone variant with our mean ±
  sample standard deviation over the runs (seeds), the paper's number beside it and the difference; then the AUC
  and median EPE of every variant, each twice and labelled: the contract's pooled value and the hand-pose
  literature's (hand3d: per keypoint, then averaged; the convention of published AUCs, so the one to compare with
  them; the paper's Figure 5 gives its AUCs only as a plot), a summary of all variants and data sets (the synthetic
  data set included), every run, and the failed ones;
* ``results.csv``: the same table cells in long form (one line per table, row and column);
* ``runs.csv``: one line per run directory, failed ones included;
* ``pck_curves.png``: the 3-D PCK curves of all runs, one panel per data set (Figure 5), with both AUCs;
* ``convergence.png``: the EPE per epoch of all runs, one panel per data set (Figure 7): the evaluation split's
  ``monitor/epe_mm`` (paper recipes) when recorded, else ``val/epe_mm``.

A ResNet-50 row names its recipe: InterNet as published (ImageNet weights, Adam step; the paper's InterNet numbers
stand only beside it) or the controlled variant (from scratch, InterNet+'s AdamW + cosine).

This module is the command; the reading is :mod:`internet_plus.results.runs`, the tables
:mod:`internet_plus.results.tables` and the figures :mod:`internet_plus.results.plots`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from internet_plus.results.plots import plot_convergence, plot_pck_curves
from internet_plus.results.runs import RunRecord, collect_runs
from internet_plus.results.tables import LAYOUTS, render_markdown, write_csv, write_runs_csv


def collect(
    dirs: Sequence[str | Path], out: str | Path | None = None, paper_table: str = "all"
) -> tuple[list[RunRecord], dict[str, Path]]:
    """Collect ``dirs`` and write every output into ``out`` (default: the first dir); returns runs and file paths.

    Raises:
        FileNotFoundError: a directory does not exist, or no run directory was found under them.
        ValueError: ``paper_table`` is not one of ``2``, ``5``, ``6``, ``7``, ``all``.
    """
    if paper_table != "all" and paper_table not in LAYOUTS:
        raise ValueError(f"--paper-table must be one of {', '.join(LAYOUTS)} or all, got {paper_table!r}")
    if not dirs:
        raise ValueError("give at least one run or sweep directory")
    tables = list(LAYOUTS) if paper_table == "all" else [paper_table]
    sources = [Path(d) for d in dirs]
    runs = collect_runs(sources)
    if not runs:
        raise FileNotFoundError(
            f"no run directory (a folder with .hydra/config.yaml) under {', '.join(map(str, sources))}"
        )
    out_dir = Path(out) if out is not None else sources[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "results.md": out_dir / "results.md",
        "results.csv": out_dir / "results.csv",
        "runs.csv": out_dir / "runs.csv",
        "pck_curves.png": out_dir / "pck_curves.png",
        "convergence.png": out_dir / "convergence.png",
    }
    files["results.md"].write_text(render_markdown(runs, tables, out_dir, sources), encoding="utf-8")
    write_csv(runs, tables, files["results.csv"])
    write_runs_csv(runs, files["runs.csv"])
    plot_pck_curves(runs, files["pck_curves.png"])
    plot_convergence(runs, files["convergence.png"])
    return runs, files


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (0, or 2 for bad arguments / nothing found)."""
    parser = argparse.ArgumentParser(
        prog="python -m internet_plus.tasks.collect",
        description="Collect run/sweep directories into the paper's results tables (markdown, CSV) and figures.",
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="run or sweep directories (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the first directory)")
    parser.add_argument(
        "--paper-table", default="all", choices=[*LAYOUTS, "all"], help="which of the paper's tables (default: all)"
    )
    args = parser.parse_args(argv)
    try:
        runs, files = collect(args.dirs, args.out, args.paper_table)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = [r for r in runs if not r.ok]
    print(f"{len(runs)} run directories: {len(runs) - len(failed)} finished, {len(failed)} FAILED/incomplete")
    for r in failed:
        print(f"  FAILED/incomplete {r.path}: {r.problem}")
    for path in files.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
