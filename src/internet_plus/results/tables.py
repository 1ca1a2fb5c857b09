"""The paper's results tables rebuilt from our runs, written as Markdown (``results.md``) and CSV.

Tables 2 (EPE on STB and RHD), 5 (MPJPE on InterHand2.6M), 6 (coordinate attention vs SE vs none) and 7
(with/without FcaNet) are laid out as in the paper (:data:`LAYOUTS`): one row per backbone variant with our mean ±
sample standard deviation over its finished runs (seeds), the paper's number (:data:`internet_plus.paper.ACCURACY`)
beside it and the difference. ``results.md`` adds the AUC of every variant, a summary of all variants and data sets,
every run and the failed ones; ``results.csv`` holds the table cells in long form, ``runs.csv`` one line per run.

AUC and median EPE are shown twice, labelled: the contract's pooled values (``auc_20_50``: PCK over all scored joints
at 20, 21, …, 50 mm; ``epe_median_mm``: the median of all errors) and the hand-pose literature's (hand3d's
``auc_20_50_hand3d``: PCK per keypoint averaged over keypoints at linspace(0, 50, 20)[8:] = 21.05 … 50 mm;
``epe_median_mm_hand3d``: the mean of the per-keypoint medians). Published AUCs follow hand3d's convention, so they
belong beside the hand3d column (:data:`AUC_NOTE`).
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from internet_plus.paper import ACCURACY
from internet_plus.results.runs import DATASET_TITLES, PUBLISHED, SCRATCH, RunRecord, dataset_rank, number


@dataclass(frozen=True)
class Column:
    """One measured column of a paper table: a data set and the ``metrics.json`` key read for it."""

    key: str  # the column's key in internet_plus.paper.ACCURACY
    title: str
    dataset: str
    metric: str


@dataclass(frozen=True)
class TableLayout:
    """How one of the paper's tables is rebuilt from our runs."""

    number: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, str], ...]  # (our row: RunRecord.variant, the paper's row label)
    paper_only: tuple[str, ...] = ()  # the paper's rows with no counterpart here (other methods)

    @property
    def all_rows(self) -> list[tuple[str, str]]:
        """:attr:`rows`, then the :attr:`paper_only` rows with an empty backbone."""
        return [*self.rows, *(("", label) for label in self.paper_only)]


#: Our ResNet-50 rows: InterNet as published is the paper's InterNet row (its published numbers beside it); the
#: controlled variant (from scratch, InterNet+'s recipe) has no paper number.
INTERNET = f"resnet50 ({PUBLISHED})"
RESNET50_SCRATCH = f"resnet50 ({SCRATCH})"
CONTROLLED = "ResNet-50 from scratch, InterNet+ recipe (controlled; not in the paper)"

_EPE_COLUMNS = (
    Column("stb", "STB", "stb", "test/epe_mm"),
    Column("rhd", "RHD", "rhd", "test/epe_mm"),
)

LAYOUTS: dict[str, TableLayout] = {
    "2": TableLayout(
        "2",
        "Table 2: EPE (mm) on STB and RHD",
        _EPE_COLUMNS,
        ((INTERNET, "InterNet [8]"), (RESNET50_SCRATCH, CONTROLLED), ("internet_plus", "InterNet+ (ours)")),
        paper_only=tuple(label for label in ACCURACY["2"] if not label.startswith("InterNet")),
    ),
    "5": TableLayout(
        "5",
        "Table 5: MPJPE (mm) on InterHand2.6M",
        (
            Column("single", "Single hand", "interhand", "test/mpjpe_single_mm"),
            Column("interacting", "Interacting hands", "interhand", "test/mpjpe_interacting_mm"),
        ),
        ((INTERNET, "InterNet"), (RESNET50_SCRATCH, CONTROLLED), ("internet_plus", "InterNet+ (ours)")),
    ),
    "6": TableLayout(
        "6",
        "Table 6: coordinate attention (CA) vs squeeze-and-excitation (SE) vs no attention, EPE (mm)",
        _EPE_COLUMNS,
        (
            ("internet_plus_no_ca", "InterNet+ (without CA module)"),
            ("internet_plus_se", "InterNet+ (with SE module)"),
            ("internet_plus", "InterNet+ (ours)"),
        ),
    ),
    "7": TableLayout(
        "7",
        "Table 7: with and without the FcaNet layer, EPE (mm)",
        _EPE_COLUMNS,
        (("internet_plus_no_fca", "InterNet+ (without FcaNet layer)"), ("internet_plus", "InterNet+ (ours)")),
    ),
}

#: The two AUCs and the two median EPEs: (metrics.json key, column title, digits); the contract's pooled value first,
#: the hand-pose literature's (hand3d) second.
AUC_METRICS = (
    ("test/auc_20_50", "AUC 20-50 (pooled, contract)", 3),
    ("test/auc_20_50_hand3d", "AUC 20-50 (hand3d)", 3),
)
MEDIAN_METRICS = (
    ("test/epe_median_mm", "median EPE mm (pooled, contract)", 2),
    ("test/epe_median_mm_hand3d", "median EPE mm (hand3d)", 2),
)

#: What the AUC columns mean, and which one a published AUC is compared with.
AUC_NOTE = (
    "*AUC 20-50 (pooled, contract)*: 3-D PCK over all scored joints pooled, at the 31 thresholds 20, 21, …, 50 mm, "
    "trapezoidal area / 30 mm. *AUC 20-50 (hand3d)*: the hand-pose literature's value as hand3d's `eval_full.py` "
    "computes it: PCK per keypoint averaged over the keypoints, at linspace(0, 50, 20), area of its last 12 points "
    "(21.05 … 50 mm) / 28.95 mm. Published RHD/STB AUCs follow hand3d's convention, and the paper's Figure 5 plots "
    "them beside its own (it does not state its computation): compare them with the hand3d column. The medians "
    "likewise: pooled = median of all errors, hand3d = mean of the per-keypoint medians."
)

#: The metrics of the per-variant summary: (metrics.json key, column title, digits).
_SUMMARY_METRICS = (
    ("test/epe_mm", "EPE (mm)", 2),
    *MEDIAN_METRICS,
    *AUC_METRICS,
    ("test/handedness_acc", "handedness acc.", 3),
    ("test/mpjpe_all_mm", "MPJPE all (mm)", 2),
)


@dataclass(frozen=True)
class Stat:
    """Our value of one table cell: mean and sample standard deviation over ``n`` runs."""

    mean: float | None
    std: float | None
    n: int
    seeds: tuple[str, ...] = ()

    def format(self, digits: int = 2) -> str:
        """``19.30 ± 0.12 (n=2)``; ``19.30 (n=1)``; ``not run``."""
        if self.n == 0 or self.mean is None:
            return "not run"
        std = f" ± {self.std:.{digits}f}" if self.std is not None else ""
        return f"{self.mean:.{digits}f}{std} (n={self.n})"


# ----------------------------------------------------------------------------------------------------------- cells


def aggregate(runs: Sequence[RunRecord], backbone: str, dataset: str, metric: str) -> Stat:
    """Mean and sample standard deviation (n − 1; ``None`` for one run) of ``metric`` over the finished runs of one
    row (``backbone``: :attr:`RunRecord.variant`, e.g. ``resnet50 (InterNet as published)``) and data set."""
    chosen = [r for r in runs if r.ok and r.variant == backbone and r.dataset == dataset]
    values = [(r.seed, v) for r in chosen if (v := number((r.metrics or {}).get(metric))) is not None]
    if not values:
        return Stat(None, None, 0)
    numbers = [v for _, v in values]
    std = statistics.stdev(numbers) if len(numbers) > 1 else None
    return Stat(statistics.fmean(numbers), std, len(numbers), tuple(s for s, _ in values))


def _signed(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:+.{digits}f}"


def table_cells(runs: Sequence[RunRecord], layout: TableLayout) -> list[dict[str, Any]]:
    """The cells of one paper table: one dict per (row, column) with ours, the paper's value and the difference.

    The paper's rows with no counterpart here (:attr:`TableLayout.paper_only`) have an empty backbone and no runs.
    """
    cells = []
    for backbone, paper_row in layout.all_rows:
        for column in layout.columns:
            stat = aggregate(runs, backbone, column.dataset, column.metric) if backbone else Stat(None, None, 0)
            paper = ACCURACY[layout.number].get(paper_row, {}).get(column.key)
            diff = stat.mean - paper if stat.mean is not None and paper is not None else None
            cells.append(
                {
                    "table": layout.number,
                    "row": paper_row,
                    "backbone": backbone,
                    "dataset": column.dataset,
                    "column": column.title,
                    "metric": column.metric,
                    "n": stat.n,
                    "seeds": " ".join(stat.seeds),
                    "mean": stat.mean,
                    "std": stat.std,
                    "paper": paper,
                    "diff": diff,
                }
            )
    return cells


# ----------------------------------------------------------------------------------------------------------- Markdown


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    def esc(value: Any) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in rows]
    return lines


def paper_table_markdown(runs: Sequence[RunRecord], layout: TableLayout) -> list[str]:
    """One paper table in markdown: per column ours (mean ± std, n), the paper's value and Δ = ours − paper."""
    cells = {(c["row"], c["column"]): c for c in table_cells(runs, layout)}
    header = ["paper's row", "backbone"]
    for column in layout.columns:
        header += [f"{column.title} ours", f"{column.title} paper", f"{column.title} Δ"]
    header.append("tested epochs")
    datasets = [column.dataset for column in layout.columns]
    rows = []
    for backbone, paper_row in layout.all_rows:
        row = [paper_row, shown_variant(backbone) if backbone else "(not implemented here)"]
        for column in layout.columns:
            cell = cells[(paper_row, column.title)]
            stat = Stat(cell["mean"], cell["std"], cell["n"])
            ours = stat.format() if backbone else "—"
            paper = f"{cell['paper']:.2f}" if cell["paper"] is not None else "—"
            row += [ours, paper, _signed(cell["diff"]) or "—"]
        row.append(tested_epochs(runs, backbone, datasets) if backbone else "—")
        rows.append(row)
    return [f"### {layout.title}", "", *_markdown_table(header, rows), ""]


def _variants(runs: Sequence[RunRecord]) -> list[tuple[str, str]]:
    return sorted({(r.dataset, r.variant) for r in runs}, key=lambda k: (dataset_rank(k[0]), k[1]))


def shown_variant(variant: str) -> str:
    r"""A row's name in Markdown: the backbone as code, the recipe after it (``\`resnet50\` (InterNet as
    published)``)."""
    backbone, _, recipe = variant.partition(" (")
    return f"`{backbone}` ({recipe}" if recipe else f"`{backbone}`"


def tested_epochs(runs: Sequence[RunRecord], variant: str, datasets: Iterable[str]) -> str:
    """The epochs the row's finished runs were tested at (``test/ckpt_epochs``) and which checkpoint: ``50 (last)``;
    ``—`` for runs written before it was recorded."""
    chosen = [r.metrics or {} for r in runs if r.ok and r.variant == variant and r.dataset in set(datasets)]
    epochs = sorted({int(v) for m in chosen if (v := number(m.get("test/ckpt_epochs"))) is not None})
    if not epochs:
        return "—"
    kinds = {"last" if number(m.get("test/ckpt_is_last")) == 1 else "best" for m in chosen if "test/ckpt_is_last" in m}
    return ", ".join(map(str, epochs)) + (f" ({'/'.join(sorted(kinds))})" if kinds else "")


def summary_markdown(runs: Sequence[RunRecord]) -> list[str]:
    """Every (data set, backbone) with our mean ± std of the main metrics over its finished runs."""
    finished = [r for r in runs if r.ok]
    header = ["data set", "backbone", "runs (finished/all)", "seeds", *(title for _, title, _ in _SUMMARY_METRICS)]
    rows = []
    for dataset, backbone in _variants(runs):
        group = [r for r in runs if r.dataset == dataset and r.variant == backbone]
        done = [r for r in group if r.ok]
        row: list[Any] = [DATASET_TITLES.get(dataset, dataset), shown_variant(backbone), f"{len(done)}/{len(group)}"]
        row.append(" ".join(r.seed for r in done) or "—")
        for metric, _, digits in _SUMMARY_METRICS:
            stat = aggregate(finished, backbone, dataset, metric)
            row.append(stat.format(digits) if stat.n else "—")
        rows.append(row)
    return _markdown_table(header, rows)


def runs_markdown(runs: Sequence[RunRecord], out: Path) -> list[str]:
    """One line per run: folder (relative to ``out`` when inside it), choices, status and headline metrics."""
    header = ["folder", "task", "data set", "backbone", "seed", "status", "EPE (mm)"]
    header += ["AUC (pooled, contract)", "AUC (hand3d)", "val epochs"]
    rows = []
    for r in runs:
        metrics = r.metrics or {}
        epe = number(metrics.get("test/epe_mm"))
        aucs = [number(metrics.get(key)) for key, _, _ in AUC_METRICS]
        rows.append(
            [
                f"`{_shown_path(r.path, out)}`",
                r.task,
                r.dataset,
                shown_variant(r.variant),
                r.seed,
                "ok" if r.ok else "**FAILED/incomplete**",
                f"{epe:.2f}" if epe is not None else "—",
                *(f"{auc:.3f}" if auc is not None else "—" for auc in aucs),
                len(r.history),
            ]
        )
    return _markdown_table(header, rows)


def _shown_path(path: Path, out: Path) -> str:
    try:
        return str(path.resolve().relative_to(out.resolve())) or "."
    except ValueError:
        return str(path)


def render_markdown(runs: Sequence[RunRecord], tables: Sequence[str], out: Path, sources: Sequence[Path]) -> str:
    """The whole ``results.md``."""
    failed = [r for r in runs if not r.ok]
    lines = [
        "# Results",
        "",
        f"Collected from {', '.join(f'`{s}`' for s in sources)} by `python -m internet_plus.tasks.collect`: "
        f"{len(runs)} run directories, {len(runs) - len(failed)} finished, {len(failed)} FAILED/incomplete.",
        "",
        "Ours: mean ± sample standard deviation (n − 1) over the finished runs of that backbone and data set "
        "(usually the seeds), n = number of runs; Δ = ours − paper (negative: lower error than the paper). "
        "The paper reports single numbers (no seeds, no spread). A ResNet-50 row names its recipe: *InterNet as "
        "published* (ImageNet weights, Adam with step decay; the paper's InterNet numbers are its published results, "
        "so only this row has them) or *from scratch, InterNet+ recipe* (the controlled variant: random start, "
        "AdamW + cosine). *tested epochs*: the epochs the scored checkpoint had trained (`test/ckpt_epochs`) and "
        "whether it was `last.ckpt` or `best.ckpt`.",
        "",
    ]
    if failed:
        lines += ["## FAILED / incomplete runs", "", "These runs are not in the tables below.", ""]
        lines += _markdown_table(
            ["folder", "data set", "backbone", "seed", "reason"],
            ([f"`{_shown_path(r.path, out)}`", r.dataset, shown_variant(r.variant), r.seed, r.problem] for r in failed),
        )
        lines.append("")
    lines += ["## The paper's tables", ""]
    for table in tables:
        lines += paper_table_markdown(runs, LAYOUTS[table])
    lines += [
        "## AUC of the 3-D PCK curve, 20-50 mm, and median EPE: pooled (contract) and hand3d (Figure 5)",
        "",
        AUC_NOTE,
        "",
        "The paper shows its PCK curves and AUCs only as a figure (Figure 5), so there is no paper number beside the "
        "hand3d column here; our curves are in `pck_curves.png`. Runs written before the hand3d values existed "
        "show — in those columns.",
        "",
    ]
    finished = [r for r in runs if r.ok]
    auc_rows = []
    for dataset, backbone in _variants(runs):
        row = [DATASET_TITLES.get(dataset, dataset), shown_variant(backbone)]
        for metric, _, digits in (*AUC_METRICS, *MEDIAN_METRICS):
            stat = aggregate(finished, backbone, dataset, metric)
            row.append(stat.format(digits) if stat.n else "—")
        auc_rows.append(row)
    header = ["data set", "backbone", *(title for _, title, _ in (*AUC_METRICS, *MEDIAN_METRICS))]
    lines += _markdown_table(header, auc_rows)
    lines += ["", "## All backbones and data sets", "", *summary_markdown(runs), ""]
    lines += ["## Runs", "", *runs_markdown(runs, out), ""]
    lines += [
        "## Figures",
        "",
        "- `pck_curves.png`: 3-D PCK at 20, 21, …, 50 mm of every finished run, one panel per data set (Figure 5).",
        "- `convergence.png`: EPE per epoch (`val_history.jsonl`) of every run, one panel per data set (Figure 7): "
        "the evaluation split's `monitor/epe_mm` when the run recorded it (paper recipes), else `val/epe_mm`.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------- CSV

_CSV_FIELDS = ["table", "row", "backbone", "dataset", "column", "metric", "n", "seeds", "mean", "std", "paper", "diff"]
_RUNS_CSV_FIELDS = ["folder", "task", "dataset", "backbone", "seed", "status", "reason", "val_epochs", "metrics"]


def write_csv(runs: Sequence[RunRecord], tables: Sequence[str], path: Path) -> None:
    """``results.csv``: every cell of the chosen paper tables, one line each (empty where there is no value)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_FIELDS)
        writer.writeheader()
        for table in tables:
            for cell in table_cells(runs, LAYOUTS[table]):
                writer.writerow({k: "" if v is None else v for k, v in cell.items()})


def write_runs_csv(runs: Sequence[RunRecord], path: Path) -> None:
    """``runs.csv``: one line per run directory with its scalar test metrics as a JSON object."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=_RUNS_CSV_FIELDS)
        writer.writeheader()
        for r in runs:
            scalars = {k: v for k, v in (r.metrics or {}).items() if not isinstance(v, list)}
            writer.writerow(
                {
                    "folder": str(r.path),
                    "task": r.task,
                    "dataset": r.dataset,
                    "backbone": r.variant,
                    "seed": r.seed,
                    "status": "ok" if r.ok else "FAILED",
                    "reason": r.problem or "",
                    "val_epochs": len(r.history),
                    "metrics": json.dumps(scalars, sort_keys=True),
                }
            )
