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
  sample standard deviation over the runs (seeds), the paper's number beside it and the difference; then the AUC of
  every variant (the paper's Figure 5 gives its AUCs only as a plot), a summary of all variants and data sets
  (the synthetic data set included), every run, and the failed ones;
* ``results.csv``: the same table cells in long form (one line per table, row and column);
* ``runs.csv``: one line per run directory, failed ones included;
* ``pck_curves.png``: the 3-D PCK curves of all runs, one panel per data set (Figure 5);
* ``convergence.png``: the validation EPE per epoch of all runs, one panel per data set (Figure 7).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from internet_plus.metrics.functional import PCK_THRESHOLDS

log = logging.getLogger(__name__)

#: The paper's numbers, copied from the text of its tables (InterNet+, Sensors 2021):
#: table -> the paper's row label -> column -> value.
#:
#: * Table 2: "Comparison of various methods on the accuracy of hand pose estimation on the STB and RHD datasets",
#:   EPE (mm). Spurr et al. [41] appears twice: with ground-truth scale and handedness at inference (√ √) and
#:   without (× ×).
#: * Table 5: "Comparison of MPJPE (mean per joint position error) ... on the InterHand2.6M dataset", mm; InterNet+'s
#:   numbers are from training on the 5 fps version of the data set.
#: * Table 6: "The ablation experiment for coordinate attention mechanism module", EPE (mm).
#: * Table 7: "Ablation experiment of the FcaNet module on different datasets", EPE (mm).
PAPER_NUMBERS: dict[str, dict[str, dict[str, float]]] = {
    "2": {
        "Zimmermann et al. [11] (GT S, GT H)": {"stb": 8.68, "rhd": 30.42},
        "Yang et al. [39] (GT S, GT H)": {"stb": 8.66, "rhd": 19.95},
        "Chen et al. [40] (GT S, GT H)": {"stb": 10.95, "rhd": 24.20},
        "Spurr et al. [41] (GT S, GT H)": {"stb": 8.56, "rhd": 19.73},
        "Spurr et al. [41]": {"stb": 9.49, "rhd": 22.53},
        "InterNet [8]": {"stb": 7.95, "rhd": 20.89},
        "InterNet+ (ours)": {"stb": 7.38, "rhd": 19.30},
    },
    "5": {
        "InterNet": {"single": 12.16, "interacting": 16.02},
        "InterNet+ (ours)": {"single": 11.67, "interacting": 17.63},
    },
    "6": {
        "InterNet+ (without CA module)": {"stb": 7.44, "rhd": 19.36},
        "InterNet+ (with SE module)": {"stb": 7.76, "rhd": 19.45},
        "InterNet+ (ours)": {"stb": 7.38, "rhd": 19.30},
    },
    "7": {
        "InterNet+ (without FcaNet layer)": {"stb": 7.52, "rhd": 20.01},
        "InterNet+ (ours)": {"stb": 7.38, "rhd": 19.30},
    },
}


@dataclass(frozen=True)
class Column:
    """One measured column of a paper table: a data set and the ``metrics.json`` key read for it."""

    key: str  # the column's key in PAPER_NUMBERS
    title: str
    dataset: str
    metric: str


@dataclass(frozen=True)
class TableLayout:
    """How one of the paper's tables is rebuilt from our runs."""

    number: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, str], ...]  # (our backbone variant, the paper's row label)
    paper_only: tuple[str, ...] = ()  # the paper's rows with no counterpart here (other methods)


_EPE_COLUMNS = (
    Column("stb", "STB", "stb", "test/epe_mm"),
    Column("rhd", "RHD", "rhd", "test/epe_mm"),
)

LAYOUTS: dict[str, TableLayout] = {
    "2": TableLayout(
        "2",
        "Table 2: EPE (mm) on STB and RHD",
        _EPE_COLUMNS,
        (("resnet50", "InterNet [8]"), ("internet_plus", "InterNet+ (ours)")),
        paper_only=tuple(label for label in PAPER_NUMBERS["2"] if not label.startswith("InterNet")),
    ),
    "5": TableLayout(
        "5",
        "Table 5: MPJPE (mm) on InterHand2.6M",
        (
            Column("single", "Single hand", "interhand", "test/mpjpe_single_mm"),
            Column("interacting", "Interacting hands", "interhand", "test/mpjpe_interacting_mm"),
        ),
        (("resnet50", "InterNet"), ("internet_plus", "InterNet+ (ours)")),
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

DATASET_TITLES = {"stb": "STB", "rhd": "RHD", "interhand": "InterHand2.6M", "synthetic": "synthetic"}
_DATASET_ORDER = ("stb", "rhd", "interhand", "synthetic")
_DATAMODULE_DATASETS = {  # data._target_ class name -> dataset choice, when hydra.yaml is missing
    "RHDDataModule": "rhd",
    "STBDataModule": "stb",
    "InterHandDataModule": "interhand",
    "SyntheticDataModule": "synthetic",
}
#: internet_plus's fields that define the paper's variants, and the defaults of the others (conf/backbone/).
_INTERNET_PLUS_DEFAULTS = {"final_channels": 2048, "last_stride": "last_conv", "fca_dct_size": 8, "meta_acon": True}
_ATTENTION_VARIANTS = {"ca": "internet_plus", "none": "internet_plus_no_ca", "se": "internet_plus_se"}
#: The metrics of the per-variant summary: (metrics.json key, column title, digits).
_SUMMARY_METRICS = (
    ("test/epe_mm", "EPE (mm)", 2),
    ("test/epe_median_mm", "median EPE (mm)", 2),
    ("test/auc_20_50", "AUC 20-50 mm", 3),
    ("test/handedness_acc", "handedness acc.", 3),
    ("test/mpjpe_all_mm", "MPJPE all (mm)", 2),
)
UNKNOWN = "?"


@dataclass
class RunRecord:
    """What one run directory holds."""

    path: Path
    backbone: str = UNKNOWN
    dataset: str = UNKNOWN
    seed: str = UNKNOWN
    task: str = UNKNOWN
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None  # why the run counts as failed/incomplete

    @property
    def ok(self) -> bool:
        """True when the run finished (a readable ``metrics.json``)."""
        return self.metrics is not None

    @property
    def label(self) -> str:
        """A short name for plots and listings."""
        return f"{self.backbone} seed={self.seed}"


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


# ----------------------------------------------------------------------------------------------------------- reading


def find_run_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Every folder under ``roots`` (the roots included) that contains ``.hydra/config.yaml``, sorted, no repeats."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such directory")
        for config in root.rglob("config.yaml"):
            if config.parent.name == ".hydra":
                found.add(config.parent.parent.resolve())
    return sorted(found)


def _load_yaml(path: Path) -> Any:
    """A YAML file as plain Python, interpolations left unresolved (they may need Hydra's resolvers)."""
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def _overrides(run_dir: Path) -> dict[str, str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    items = _load_yaml(path) or []
    pairs = (str(item).lstrip("+~").split("=", 1) for item in items)
    return {key: value for key, *rest in pairs for value in rest}


def backbone_variant(node: dict[str, Any] | None) -> str | None:
    """The ``backbone`` config choice that a ``model.backbone`` node corresponds to, from its fields.

    ``internet_plus`` fields that differ from the defaults and are not one of the paper's variants are appended,
    e.g. ``internet_plus_se[meta_acon=False]``; ``None`` when the node says nothing.
    """
    if not isinstance(node, dict) or "name" not in node:
        return None
    name = str(node["name"])
    if name != "internet_plus":
        return name
    attention = str(node.get("attention", "ca"))
    fca = node.get("fca", True)
    extra = {k: node[k] for k, default in _INTERNET_PLUS_DEFAULTS.items() if k in node and node[k] != default}
    if attention in _ATTENTION_VARIANTS and (fca is True or attention == "ca"):
        variant = _ATTENTION_VARIANTS[attention] if fca is True else "internet_plus_no_fca"
    else:
        variant = "internet_plus"
        extra = {"attention": attention, "fca": fca, **extra}
    if extra:
        variant += "[" + ",".join(f"{k}={v}" for k, v in extra.items()) + "]"
    return variant


def read_run(run_dir: str | Path) -> RunRecord:
    """Read one run directory (see the module docstring); never raises for a broken run, it records why."""
    run_dir = Path(run_dir)
    record = RunRecord(path=run_dir)
    problems: list[str] = []
    config: dict[str, Any] = {}
    try:
        config = _load_yaml(run_dir / ".hydra" / "config.yaml") or {}
    except Exception as err:  # noqa: BLE001 - a broken file is reported, not fatal
        problems.append(f"unreadable .hydra/config.yaml ({err})")
    choices: dict[str, Any] = {}
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if hydra_file.is_file():
        try:
            hydra_cfg = _load_yaml(hydra_file) or {}
            choices = dict(((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("choices") or {})
        except Exception as err:  # noqa: BLE001
            problems.append(f"unreadable .hydra/hydra.yaml ({err})")
    overrides = _overrides(run_dir)

    fields = backbone_variant((config.get("model") or {}).get("backbone"))
    record.backbone = fields or str(choices.get("backbone") or overrides.get("backbone") or UNKNOWN)
    target = str((config.get("data") or {}).get("_target_", "")).rsplit(".", 1)[-1]
    record.dataset = str(
        choices.get("dataset") or overrides.get("dataset") or _DATAMODULE_DATASETS.get(target) or UNKNOWN
    )
    record.seed = str(config.get("seed", overrides.get("seed", UNKNOWN)))
    record.task = str(config.get("task_name", UNKNOWN))

    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
            if not isinstance(metrics, dict):
                raise ValueError("not a JSON object")
            record.metrics = metrics
        except (OSError, ValueError) as err:
            problems.append(f"unreadable metrics.json ({err})")
    else:
        problems.append(_missing_metrics_reason(run_dir))

    history_file = run_dir / "val_history.jsonl"
    if history_file.is_file():
        for line in history_file.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill: the others are still good
            if isinstance(entry, dict) and "epoch" in entry:
                record.history.append(entry)
    if record.metrics is None:
        record.problem = "; ".join(problems)
    return record


def _missing_metrics_reason(run_dir: Path) -> str:
    """Why a run has no ``metrics.json``: the sweep's ``failed.json``, or how far it got."""
    failed = run_dir / "failed.json"
    if failed.is_file():
        try:
            info = json.loads(failed.read_text())
            return f"failed: {info.get('error', 'error')}: {info.get('message', '')}".rstrip(": ")
        except (OSError, ValueError):
            return "failed (unreadable failed.json)"
    reason = "no metrics.json"
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        reason += " (checkpoints/last.ckpt exists: stopped or killed during training or testing)"
    return reason


def collect_runs(roots: Iterable[str | Path]) -> list[RunRecord]:
    """:func:`read_run` for every run directory under ``roots``, ordered by data set, backbone, seed and folder."""
    runs = [read_run(path) for path in find_run_dirs(roots)]
    return sorted(runs, key=lambda r: (_dataset_rank(r.dataset), r.backbone, _seed_key(r.seed), str(r.path)))


def _dataset_rank(dataset: str) -> tuple[int, str]:
    return (_DATASET_ORDER.index(dataset) if dataset in _DATASET_ORDER else len(_DATASET_ORDER), dataset)


def _seed_key(seed: str) -> tuple[int, str]:
    return (0, f"{int(seed):012d}") if seed.lstrip("-").isdigit() else (1, seed)


# ----------------------------------------------------------------------------------------------------------- tables


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(float(value)) else float(value)


def aggregate(runs: Sequence[RunRecord], backbone: str, dataset: str, metric: str) -> Stat:
    """Mean and sample standard deviation (n − 1; ``None`` for one run) of ``metric`` over the finished runs."""
    chosen = [r for r in runs if r.ok and r.backbone == backbone and r.dataset == dataset]
    values = [(r.seed, v) for r in chosen if (v := _number((r.metrics or {}).get(metric))) is not None]
    if not values:
        return Stat(None, None, 0)
    numbers = [v for _, v in values]
    std = statistics.stdev(numbers) if len(numbers) > 1 else None
    return Stat(statistics.fmean(numbers), std, len(numbers), tuple(s for s, _ in values))


def _signed(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:+.{digits}f}"


def table_cells(runs: Sequence[RunRecord], layout: TableLayout) -> list[dict[str, Any]]:
    """The cells of one paper table: one dict per (row, column) with ours, the paper's value and the difference."""
    cells = []
    for backbone, paper_row in layout.rows:
        for column in layout.columns:
            stat = aggregate(runs, backbone, column.dataset, column.metric)
            paper = PAPER_NUMBERS[layout.number].get(paper_row, {}).get(column.key)
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
    for paper_row in layout.paper_only:
        for column in layout.columns:
            paper = PAPER_NUMBERS[layout.number][paper_row].get(column.key)
            cells.append(
                {
                    "table": layout.number,
                    "row": paper_row,
                    "backbone": "",
                    "dataset": column.dataset,
                    "column": column.title,
                    "metric": column.metric,
                    "n": 0,
                    "seeds": "",
                    "mean": None,
                    "std": None,
                    "paper": paper,
                    "diff": None,
                }
            )
    return cells


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
    rows = []
    for backbone, paper_row in [*layout.rows, *(("", label) for label in layout.paper_only)]:
        row = [paper_row, f"`{backbone}`" if backbone else "(not implemented here)"]
        for column in layout.columns:
            cell = cells[(paper_row, column.title)]
            stat = Stat(cell["mean"], cell["std"], cell["n"])
            ours = stat.format() if backbone else "—"
            paper = f"{cell['paper']:.2f}" if cell["paper"] is not None else "—"
            row += [ours, paper, _signed(cell["diff"]) or "—"]
        rows.append(row)
    return [f"### {layout.title}", "", *_markdown_table(header, rows), ""]


def _variants(runs: Sequence[RunRecord]) -> list[tuple[str, str]]:
    return sorted({(r.dataset, r.backbone) for r in runs}, key=lambda k: (_dataset_rank(k[0]), k[1]))


def summary_markdown(runs: Sequence[RunRecord]) -> list[str]:
    """Every (data set, backbone) with our mean ± std of the main metrics over its finished runs."""
    finished = [r for r in runs if r.ok]
    header = ["data set", "backbone", "runs (finished/all)", "seeds", *(title for _, title, _ in _SUMMARY_METRICS)]
    rows = []
    for dataset, backbone in _variants(runs):
        group = [r for r in runs if r.dataset == dataset and r.backbone == backbone]
        done = [r for r in group if r.ok]
        row: list[Any] = [DATASET_TITLES.get(dataset, dataset), f"`{backbone}`", f"{len(done)}/{len(group)}"]
        row.append(" ".join(r.seed for r in done) or "—")
        for metric, _, digits in _SUMMARY_METRICS:
            stat = aggregate(finished, backbone, dataset, metric)
            row.append(stat.format(digits) if stat.n else "—")
        rows.append(row)
    return _markdown_table(header, rows)


def runs_markdown(runs: Sequence[RunRecord], out: Path) -> list[str]:
    """One line per run: folder (relative to ``out`` when inside it), choices, status and headline metrics."""
    header = ["folder", "task", "data set", "backbone", "seed", "status", "EPE (mm)", "AUC", "val epochs"]
    rows = []
    for r in runs:
        metrics = r.metrics or {}
        epe, auc = _number(metrics.get("test/epe_mm")), _number(metrics.get("test/auc_20_50"))
        rows.append(
            [
                f"`{_shown_path(r.path, out)}`",
                r.task,
                r.dataset,
                f"`{r.backbone}`",
                r.seed,
                "ok" if r.ok else "**FAILED/incomplete**",
                f"{epe:.2f}" if epe is not None else "—",
                f"{auc:.3f}" if auc is not None else "—",
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
        "The paper reports single numbers (no seeds, no spread).",
        "",
    ]
    if failed:
        lines += ["## FAILED / incomplete runs", "", "These runs are not in the tables below.", ""]
        lines += _markdown_table(
            ["folder", "data set", "backbone", "seed", "reason"],
            ([f"`{_shown_path(r.path, out)}`", r.dataset, f"`{r.backbone}`", r.seed, r.problem] for r in failed),
        )
        lines.append("")
    lines += ["## The paper's tables", ""]
    for number in tables:
        lines += paper_table_markdown(runs, LAYOUTS[number])
    lines += [
        "## AUC of the 3-D PCK curve, 20-50 mm (Figure 5)",
        "",
        "The paper shows its PCK curves and AUCs only as a figure (Figure 5), so there is no paper column here; "
        "our curves are in `pck_curves.png`.",
        "",
    ]
    finished = [r for r in runs if r.ok]
    auc_rows = []
    for dataset, backbone in _variants(runs):
        stat = aggregate(finished, backbone, dataset, "test/auc_20_50")
        auc_rows.append([DATASET_TITLES.get(dataset, dataset), f"`{backbone}`", stat.format(3)])
    lines += _markdown_table(["data set", "backbone", "AUC 20-50 mm"], auc_rows)
    lines += ["", "## All backbones and data sets", "", *summary_markdown(runs), ""]
    lines += ["## Runs", "", *runs_markdown(runs, out), ""]
    lines += [
        "## Figures",
        "",
        "- `pck_curves.png`: 3-D PCK at 20, 21, …, 50 mm of every finished run, one panel per data set (Figure 5).",
        "- `convergence.png`: validation EPE per epoch (`val_history.jsonl`) of every run, one panel per data set "
        "(Figure 7).",
        "",
    ]
    return "\n".join(lines)


_CSV_FIELDS = ["table", "row", "backbone", "dataset", "column", "metric", "n", "seeds", "mean", "std", "paper", "diff"]
_RUNS_CSV_FIELDS = ["folder", "task", "dataset", "backbone", "seed", "status", "reason", "val_epochs", "metrics"]


def write_csv(runs: Sequence[RunRecord], tables: Sequence[str], path: Path) -> None:
    """``results.csv``: every cell of the chosen paper tables, one line each (empty where there is no value)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_FIELDS)
        writer.writeheader()
        for number in tables:
            for cell in table_cells(runs, LAYOUTS[number]):
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
                    "backbone": r.backbone,
                    "seed": r.seed,
                    "status": "ok" if r.ok else "FAILED",
                    "reason": r.problem or "",
                    "val_epochs": len(r.history),
                    "metrics": json.dumps(scalars, sort_keys=True),
                }
            )


# ----------------------------------------------------------------------------------------------------------- figures


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
    datasets = sorted({r.dataset for r in curves}, key=_dataset_rank)
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
            auc = _number(r.metrics.get("test/auc_20_50"))
            label = f"{r.label} (AUC={auc:.3f})" if auc is not None else r.label
            ax.plot(PCK_THRESHOLDS, values, label=label, **styles[r.path])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="lower right")
    fig.savefig(path, dpi=120)


def plot_convergence(runs: Sequence[RunRecord], path: Path) -> None:
    """``convergence.png``: ``val/epe_mm`` per epoch (epochs counted from 1) of every run with a history."""
    from matplotlib.ticker import MaxNLocator

    with_history = [r for r in runs if any(_number(e.get("val/epe_mm")) is not None for e in r.history)]
    datasets = sorted({r.dataset for r in with_history}, key=_dataset_rank)
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
                (int(e["epoch"]) + 1, v) for e in r.history if (v := _number(e.get("val/epe_mm"))) is not None
            )
            label = r.label if r.ok else f"{r.label} (incomplete)"
            ax.plot(*zip(*points, strict=True), label=label, **styles[r.path])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="upper right")
    fig.savefig(path, dpi=120)


# ----------------------------------------------------------------------------------------------------------- main


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
