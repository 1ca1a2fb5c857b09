"""Run directories: where they are and what each one holds.

Every folder that holds ``.hydra/config.yaml`` is a run directory. For each run the backbone variant, data set and
seed are read from its Hydra files, the final test metrics from ``metrics.json`` and the per-epoch validation
metrics from ``val_history.jsonl`` (:class:`internet_plus.callbacks.ValidationHistory`). A run without a readable
``metrics.json`` is kept as FAILED/incomplete with the reason (``failed.json`` of a sweep job when there is one),
never silently dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from internet_plus.models.backbones.registry import nearest_variant

DATASET_TITLES = {"stb": "STB", "rhd": "RHD", "interhand": "InterHand2.6M", "synthetic": "synthetic"}
_DATASET_ORDER = ("stb", "rhd", "interhand", "synthetic")
_DATAMODULE_DATASETS = {  # data._target_ class name -> dataset choice, when hydra.yaml is missing
    "RHDDataModule": "rhd",
    "STBDataModule": "stb",
    "InterHandDataModule": "interhand",
    "SyntheticDataModule": "synthetic",
}
UNKNOWN = "?"

#: The ResNet-50 rows' recipes: InterNet as its authors trained it (the paper's baseline: ImageNet weights, Adam with
#: step decay; ``optimizer=paper/resnet50``) and the controlled variant (from scratch with InterNet+'s AdamW + cosine
#: recipe; ``optimizer=paper/resnet50_scratch``). Only the first is the paper's InterNet row.
PUBLISHED = "InterNet as published"
SCRATCH = "from scratch, InterNet+ recipe"
#: Backbone fields that say how the weights start, not what the network is: part of the recipe, not of the variant.
_INIT_FIELDS = ("pretrained", "weights_path")
_OPTIMIZERS = {"Adam": "Adam", "AdamW": "AdamW"}
_SCHEDULERS = {"MultiStepLR": "step", "CosineAnnealingWarmRestarts": "cosine"}


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
    recipe: str | None = None  # ResNet-50 only: PUBLISHED, SCRATCH or what else it was trained with

    @property
    def variant(self) -> str:
        """The row a run belongs to: its backbone, with the recipe for ResNet-50, e.g.
        ``resnet50 (InterNet as published)``."""
        return f"{self.backbone} ({self.recipe})" if self.recipe else self.backbone

    @property
    def ok(self) -> bool:
        """True when the run finished (a readable ``metrics.json``)."""
        return self.metrics is not None

    @property
    def label(self) -> str:
        """A short name for plots and listings."""
        return f"{self.variant} seed={self.seed}"


def number(value: Any) -> float | None:
    """A metric value as a float; ``None`` for NaN, booleans and anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(float(value)) else float(value)


def dataset_rank(dataset: str) -> tuple[int, str]:
    """Sort key of a data set: STB, RHD, InterHand2.6M, synthetic, then any other by name."""
    return (_DATASET_ORDER.index(dataset) if dataset in _DATASET_ORDER else len(_DATASET_ORDER), dataset)


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

    The choice is the member of the backbone registry (``conf/backbone/*.yaml``) nearest to the node
    (:func:`internet_plus.models.backbones.registry.nearest_variant`); the fields in which the node differs from it
    are appended, e.g. ``internet_plus_se[meta_acon=False]``. Nodes saved before the registry
    (``name: internet_plus|resnet50``) are read too. ``None`` when the node names no backbone of the registry.
    """
    found = nearest_variant(node)
    if found is None:
        return None
    variant, extra = found
    if extra:
        variant += "[" + ",".join(f"{k}={v}" for k, v in extra.items()) + "]"
    return variant


def resnet50_recipe(config: dict[str, Any], optimizer_choice: str | None) -> str:
    """How a ResNet-50 run was trained: :data:`PUBLISHED` (ImageNet weights, Adam, MultiStepLR), :data:`SCRATCH`
    (random start, AdamW, cosine warm restarts), else a description such as ``ImageNet weights, AdamW cosine``.

    Read from the run's ``model.backbone.pretrained`` and the classes of ``model.optimizer`` / ``model.scheduler``;
    the Hydra optimizer choice (``paper/resnet50``, ``paper/resnet50_scratch``, ``paper_interhand/…``) decides when
    those fields are missing (configs saved before they existed).
    """
    model = config.get("model") or {}
    backbone = model.get("backbone") or {}
    short = lambda node, names: names.get(str((node or {}).get("_target_", "")).rsplit(".", 1)[-1])  # noqa: E731
    optimizer, scheduler = short(model.get("optimizer"), _OPTIMIZERS), short(model.get("scheduler"), _SCHEDULERS)
    choice = str(optimizer_choice or "").rsplit("/", 1)[-1]
    pretrained = backbone.get("pretrained")
    if pretrained is None or optimizer is None:
        if choice == "resnet50":
            return PUBLISHED
        if choice == "resnet50_scratch":
            return SCRATCH
    if optimizer is None:
        return "recipe unknown"
    if pretrained is True and (optimizer, scheduler) == ("Adam", "step"):
        return PUBLISHED
    if not pretrained and (optimizer, scheduler) == ("AdamW", "cosine"):
        return SCRATCH
    start = "ImageNet weights" if pretrained else "from scratch"
    return f"{start}, {optimizer}{f' {scheduler}' if scheduler else ''}"


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

    node = (config.get("model") or {}).get("backbone")
    found = nearest_variant(node)
    if found is not None and found[0] == "resnet50":
        node = {k: v for k, v in node.items() if k not in _INIT_FIELDS}
    fields = backbone_variant(node)
    record.backbone = fields or str(choices.get("backbone") or overrides.get("backbone") or UNKNOWN)
    if record.backbone == "resnet50":
        record.recipe = resnet50_recipe(config, choices.get("optimizer") or overrides.get("optimizer"))
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
    return sorted(runs, key=lambda r: (dataset_rank(r.dataset), r.variant, _seed_key(r.seed), str(r.path)))


def _seed_key(seed: str) -> tuple[int, str]:
    return (0, f"{int(seed):012d}") if seed.lstrip("-").isdigit() else (1, seed)
