"""The results collector (``python -m internet_plus.tasks.collect``, ``internet_plus.results``) and the per-epoch
validation history."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import compose_config, tiny_train_overrides

from internet_plus.callbacks import ValidationHistory
from internet_plus.results.plots import convergence_series, pck_label
from internet_plus.results.runs import backbone_variant, collect_runs, read_run, resnet50_recipe
from internet_plus.tasks import collect

CURVE_LEN = 31
ADAM = {"_target_": "torch.optim.Adam", "lr": 1e-4}
ADAMW = {"_target_": "torch.optim.AdamW", "lr": 1e-4}
STEP = {"_target_": "torch.optim.lr_scheduler.MultiStepLR", "milestones": [45, 47]}
COSINE = {"_target_": "torch.optim.lr_scheduler.CosineAnnealingWarmRestarts", "T_0": 2}


def _make_run(
    folder: Path,
    backbone: str,
    dataset: str,
    seed: int,
    epe: float | None,
    *,
    auc: float = 0.5,
    hand3d: tuple[float, float] | None = None,
    fields: dict | None = None,
    history: list[float] = (30.0, 25.0, 22.0),
    model: dict | None = None,
    monitor: list[float] | None = None,
    tested: tuple[int, int] | None = None,
) -> Path:
    """A fake run directory as Hydra and the train task leave it; ``epe=None``: no metrics.json.

    ``hand3d``: (AUC, median) of the hand3d values, written with a 20-point hand3d curve; None: a metrics.json from
    before they existed. ``model``: more ``model`` config (optimizer, scheduler); ``monitor``: ``monitor/epe_mm`` per
    epoch beside ``val/epe_mm``; ``tested``: (``test/ckpt_epochs``, ``test/ckpt_is_last``).
    """
    hydra_dir = folder / ".hydra"
    hydra_dir.mkdir(parents=True)
    backbone_node = fields if fields is not None else {"name": backbone}
    if fields is None and backbone.startswith("internet_plus"):
        attention = {"internet_plus_no_ca": "none", "internet_plus_se": "se"}.get(backbone, "ca")
        backbone_node = {"name": "internet_plus", "attention": attention, "fca": backbone != "internet_plus_no_fca"}
    config = {
        "task_name": "ablation",
        "seed": seed,
        "model": {"backbone": backbone_node, **(model or {})},
        "data": {"_target_": "internet_plus.data.rhd.RHDDataModule", "root": "${paths.data_dir}/x"},
        "trainer": {"max_epochs": "${ablation_epochs.${hydra:runtime.choices.dataset}}"},
    }
    (hydra_dir / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    hydra = {"hydra": {"runtime": {"output_dir": str(folder), "choices": {"backbone": backbone, "dataset": dataset}}}}
    (hydra_dir / "hydra.yaml").write_text(json.dumps(hydra))
    (hydra_dir / "overrides.yaml").write_text(
        json.dumps([f"backbone={backbone}", f"dataset={dataset}", f"seed={seed}"])
    )
    entries = [{"epoch": i, "step": 10 * (i + 1), "val/epe_mm": v} for i, v in enumerate(history)]
    for entry, value in zip(entries, monitor or (), strict=False):
        entry["monitor/epe_mm"] = value
    lines = [json.dumps(entry) for entry in entries]
    (folder / "val_history.jsonl").write_text("\n".join(lines) + "\n")
    if epe is not None:
        curve = [min(1.0, 0.3 + 0.02 * i) for i in range(CURVE_LEN)]
        metrics = {"test/epe_mm": epe, "test/auc_20_50": auc, "test/pck_curve": curve, "test/epe_median_mm": epe - 1}
        if hand3d is not None:
            metrics["test/auc_20_50_hand3d"], metrics["test/epe_median_mm_hand3d"] = hand3d
            metrics["test/pck_curve_hand3d"] = [min(1.0, 0.05 * i) for i in range(20)]
        if tested is not None:
            metrics["test/ckpt_epochs"], metrics["test/ckpt_is_last"] = tested
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """An ablation-like sweep: internet_plus × 2 seeds on RHD and STB, resnet50 on RHD as published (with the
    evaluation split's monitor/* history) and from scratch, one SE job that died."""
    root = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    _make_run(
        root / "0_backbone=internet_plus,dataset=rhd", "internet_plus", "rhd", 0, 19.0, auc=0.90, hand3d=(0.93, 15.0)
    )
    _make_run(
        root / "1_backbone=internet_plus,dataset=rhd", "internet_plus", "rhd", 1, 19.4, auc=0.92, hand3d=(0.95, 16.0)
    )
    _make_run(root / "2_backbone=internet_plus,dataset=stb", "internet_plus", "stb", 0, 7.50)
    _make_run(root / "3_backbone=internet_plus,dataset=stb", "internet_plus", "stb", 1, 7.70)
    _make_run(
        root / "4_backbone=resnet50,dataset=rhd",
        "resnet50",
        "rhd",
        0,
        21.0,
        fields={"name": "resnet50", "pretrained": True},
        model={"optimizer": ADAM, "scheduler": STEP},
        monitor=[35.0, 28.0, 24.0],
        tested=(50, 1),
    )
    _make_run(
        root / "6_backbone=resnet50,dataset=rhd",
        "resnet50",
        "rhd",
        0,
        23.0,
        fields={"name": "resnet50", "pretrained": False},
        model={"optimizer": ADAMW, "scheduler": COSINE},
    )
    _make_run(root / "5_backbone=internet_plus_se,dataset=rhd", "internet_plus_se", "rhd", 0, None, history=[40.0])
    (root / "multirun.yaml").write_text("{}\n")
    return root


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _csv_cells(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    """results.csv by (table, backbone, column title)."""
    return {(r["table"], r["backbone"], r["column"]): r for r in _csv_rows(path)}


def test_collect_tables_failed_runs_and_figures(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert collect.main([str(sweep), "--out", str(out)]) == 0
    for name in ("results.md", "results.csv", "runs.csv", "pck_curves.png", "convergence.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "pck_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    cells = _csv_cells(out / "results.csv")
    rhd = cells[("2", "internet_plus", "RHD")]
    assert rhd["n"] == "2" and rhd["seeds"] == "0 1"
    assert float(rhd["mean"]) == pytest.approx(19.2)
    assert float(rhd["std"]) == pytest.approx(math.sqrt(0.08))  # sample std of 19.0 and 19.4
    assert float(rhd["paper"]) == pytest.approx(19.30)
    assert float(rhd["diff"]) == pytest.approx(-0.10)
    stb = cells[("2", "internet_plus", "STB")]
    assert float(stb["mean"]) == pytest.approx(7.60) and float(stb["diff"]) == pytest.approx(0.22)
    resnet = cells[("2", "resnet50 (InterNet as published)", "RHD")]
    assert resnet["n"] == "1" and resnet["std"] == "" and float(resnet["diff"]) == pytest.approx(21.0 - 20.89)
    scratch = cells[("2", "resnet50 (from scratch, InterNet+ recipe)", "RHD")]
    assert scratch["n"] == "1" and float(scratch["mean"]) == 23.0 and scratch["paper"] == scratch["diff"] == ""
    assert cells[("6", "internet_plus_se", "RHD")]["n"] == "0"  # the failed SE run is not averaged in
    assert float(cells[("6", "internet_plus_no_ca", "STB")]["paper"]) == pytest.approx(7.44)
    assert float(cells[("7", "internet_plus_no_fca", "RHD")]["paper"]) == pytest.approx(20.01)
    assert float(cells[("5", "resnet50 (InterNet as published)", "Single hand")]["paper"]) == pytest.approx(12.16)
    assert float(cells[("5", "internet_plus", "Interacting hands")]["paper"]) == pytest.approx(17.63)

    md = (out / "results.md").read_text()
    assert "7 run directories, 6 finished, 1 FAILED/incomplete" in md
    assert "## FAILED / incomplete runs" in md
    failed_section = md.split("## FAILED / incomplete runs")[1].split("## The paper's tables")[0]
    assert "5_backbone=internet_plus_se,dataset=rhd" in failed_section and "no metrics.json" in failed_section
    assert (
        "| InterNet+ (ours) | `internet_plus` | 7.60 ± 0.14 (n=2) | 7.38 | +0.22 | 19.20 ± 0.28 (n=2) | 19.30 | -0.10 "
        "| — |" in md
    )
    assert (
        "| InterNet [8] | `resnet50` (InterNet as published) | not run | 7.95 | — | 21.00 (n=1) | 20.89 | +0.11 "
        "| 50 (last) |" in md
    )
    assert (
        "| ResNet-50 from scratch, InterNet+ recipe (controlled; not in the paper) "
        "| `resnet50` (from scratch, InterNet+ recipe) | not run | — | — | 23.00 (n=1) | — | — | — |" in md
    )
    assert "0.910 ± 0.014 (n=2)" in md  # AUC of internet_plus on RHD
    # Both AUCs and both medians, labelled; the hand3d ones are "—" for runs written before they existed (STB).
    auc_section = md.split("## AUC of the 3-D PCK curve")[1].split("## All backbones")[0]
    assert "compare them with the hand3d column" in auc_section
    assert (
        "| data set | backbone | AUC 20-50 (pooled, contract) | AUC 20-50 (hand3d) | median EPE mm (pooled, contract) "
        "| median EPE mm (hand3d) |" in auc_section
    )
    assert (
        "| RHD | `internet_plus` | 0.910 ± 0.014 (n=2) | 0.940 ± 0.014 (n=2) | 18.20 ± 0.28 (n=2) "
        "| 15.50 ± 0.71 (n=2) |" in auc_section
    )
    assert "| STB | `internet_plus` | 0.500 ± 0.000 (n=2) | — | 6.60 ± 0.14 (n=2) | — |" in auc_section
    summary = md.split("## All backbones and data sets")[1].split("## Runs")[0]
    assert "AUC 20-50 (pooled, contract) | AUC 20-50 (hand3d) |" in summary and "median EPE mm (hand3d)" in summary
    listing = md.split("## Runs")[1]
    assert "| AUC (pooled, contract) | AUC (hand3d) |" in listing and "| 19.00 | 0.900 | 0.930 |" in listing

    runs = _csv_rows(out / "runs.csv")
    assert len(runs) == 7 and sum(r["status"] == "FAILED" for r in runs) == 1


def test_pck_legend_names_both_aucs(sweep: Path) -> None:
    labels = {r.path.name: pck_label(r) for r in collect_runs([sweep])}
    assert labels["0_backbone=internet_plus,dataset=rhd"] == "internet_plus seed=0 (AUC=0.900, hand3d AUC=0.930)"
    assert labels["2_backbone=internet_plus,dataset=stb"] == "internet_plus seed=0 (AUC=0.500)"
    assert labels["5_backbone=internet_plus_se,dataset=rhd"] == "internet_plus_se seed=0"


def test_convergence_uses_the_evaluation_split_when_recorded(sweep: Path) -> None:
    """Paper recipes record ``monitor/epe_mm`` (the evaluation split): Figure 7 draws it; other runs ``val/epe_mm``."""
    series = {r.path.name: convergence_series(r) for r in collect_runs([sweep])}
    assert series["4_backbone=resnet50,dataset=rhd"] == ("monitor/epe_mm", [(1, 35.0), (2, 28.0), (3, 24.0)])
    assert series["0_backbone=internet_plus,dataset=rhd"] == ("val/epe_mm", [(1, 30.0), (2, 25.0), (3, 22.0)])


@pytest.mark.parametrize(
    ("pretrained", "optimizer", "scheduler", "choice", "recipe"),
    [
        (True, ADAM, STEP, "paper/resnet50", "InterNet as published"),
        (False, ADAMW, COSINE, "paper/resnet50_scratch", "from scratch, InterNet+ recipe"),
        (None, None, None, "paper_interhand/resnet50", "InterNet as published"),  # fields missing: the choice
        (None, None, None, "paper/resnet50_scratch", "from scratch, InterNet+ recipe"),
        (False, ADAM, STEP, "adam_step", "from scratch, Adam step"),
        (True, ADAMW, COSINE, None, "ImageNet weights, AdamW cosine"),
        (None, None, None, None, "recipe unknown"),
    ],
)
def test_resnet50_recipe(pretrained, optimizer, scheduler, choice, recipe) -> None:
    backbone = {"name": "resnet50"} if pretrained is None else {"name": "resnet50", "pretrained": pretrained}
    model = {"backbone": backbone, **({"optimizer": optimizer, "scheduler": scheduler} if optimizer else {})}
    assert resnet50_recipe({"model": model}, choice) == recipe


def test_published_resnet50_run_is_the_internet_row(tmp_path: Path) -> None:
    """A composed InterNet-as-published node (ImageNet weights from a file) is `resnet50`, the recipe says the rest."""
    fields = {"_target_": "internet_plus.models.backbones.resnet.ResNet50Backbone", "pretrained": True}
    run = _make_run(
        tmp_path / "r",
        "resnet50",
        "stb",
        0,
        8.0,
        fields={**fields, "weights_path": "/w/resnet50.pth"},
        model={"optimizer": ADAM, "scheduler": STEP},
    )
    record = read_run(run)
    assert (record.backbone, record.variant) == ("resnet50", "resnet50 (InterNet as published)")
    assert record.label == "resnet50 (InterNet as published) seed=0"


def test_collect_default_out_and_one_table(sweep: Path) -> None:
    runs, files = collect.collect([sweep], paper_table="7")
    assert files["results.md"] == sweep / "results.md" and files["results.md"].is_file()
    md = files["results.md"].read_text()
    assert "Table 7" in md and "Table 2:" not in md and "Table 6" not in md
    assert {r["table"] for r in _csv_rows(files["results.csv"])} == {"7"}
    failed = [r for r in runs if not r.ok]
    assert len(failed) == 1 and failed[0].backbone == "internet_plus_se" and len(failed[0].history) == 1


def test_failed_json_reason_and_no_runs(tmp_path: Path) -> None:
    run = _make_run(tmp_path / "runs" / "a", "internet_plus", "rhd", 3, None)
    (run / "failed.json").write_text(json.dumps({"error": "RuntimeError", "message": "CUDA out of memory"}))
    record = read_run(run)
    assert not record.ok and record.problem == "failed: RuntimeError: CUDA out of memory" and record.seed == "3"
    (tmp_path / "empty").mkdir()
    assert collect.main([str(tmp_path / "empty")]) == 2
    with pytest.raises(ValueError, match="paper-table"):
        collect.collect([tmp_path / "runs"], paper_table="3")


@pytest.mark.parametrize(
    ("fields", "variant"),
    [
        ({"name": "resnet50", "pretrained": False}, "resnet50"),
        ({"name": "internet_plus", "attention": "ca", "fca": True, "meta_acon": True}, "internet_plus"),
        ({"name": "internet_plus", "attention": "none", "fca": True}, "internet_plus_no_ca"),
        ({"name": "internet_plus", "attention": "se", "fca": True}, "internet_plus_se"),
        ({"name": "internet_plus", "attention": "ca", "fca": False}, "internet_plus_no_fca"),
        ({"name": "internet_plus", "attention": "se", "fca": False}, "internet_plus[attention=se,fca=False]"),
        (
            {"name": "internet_plus", "attention": "ca", "fca": True, "meta_acon": False},
            "internet_plus[meta_acon=False]",
        ),
    ],
)
def test_backbone_variant_from_fields(fields: dict, variant: str) -> None:
    assert backbone_variant(fields) == variant


def test_fields_win_over_the_config_choice(tmp_path: Path) -> None:
    """`backbone=internet_plus model.backbone.attention=se` is the SE variant, whatever the choice says."""
    fields = {"name": "internet_plus", "attention": "se", "fca": True}
    run = _make_run(tmp_path / "r", "internet_plus", "stb", 0, 7.7, fields=fields)
    assert read_run(run).backbone == "internet_plus_se"


def _fake_trainer(epoch: int, step: int, metrics: dict, *, sanity: bool = False, rank0: bool = True):
    return SimpleNamespace(
        sanity_checking=sanity, is_global_zero=rank0, current_epoch=epoch, global_step=step, callback_metrics=metrics
    )


def test_validation_history_unit(tmp_path: Path) -> None:
    cb = ValidationHistory(dirpath=str(tmp_path))
    metrics = {
        "val/epe_mm": torch.tensor(21.5),
        "val/auc_20_50": torch.tensor(0.75),
        "val/pck_curve": torch.ones(31),  # not a scalar: left out
        "val/handedness_acc": torch.tensor(float("nan")),
        "train/loss": torch.tensor(3.0),  # not val/*
    }
    cb.on_validation_end(_fake_trainer(0, 0, metrics, sanity=True), None)  # sanity check: nothing
    cb.on_validation_end(_fake_trainer(0, 10, metrics, rank0=False), None)  # not rank 0: nothing
    assert not cb.path.exists()
    cb.on_validation_end(_fake_trainer(0, 10, metrics), None)
    cb.on_validation_end(_fake_trainer(1, 20, {**metrics, "val/epe_mm": torch.tensor(20.0)}), None)
    lines = [json.loads(line) for line in cb.path.read_text().splitlines()]
    assert lines == [
        {"epoch": 0, "step": 10, "val/auc_20_50": 0.75, "val/epe_mm": 21.5, "val/handedness_acc": None},
        {"epoch": 1, "step": 20, "val/auc_20_50": 0.75, "val/epe_mm": 20.0, "val/handedness_acc": None},
    ]
    assert cb.path == tmp_path / "val_history.jsonl"


def test_validation_history_in_a_tiny_training_run(synthetic_root: Path, tmp_path: Path) -> None:
    """The callbacks group wires it: a 2-epoch run writes two lines, then the collector plots them."""
    from internet_plus.tasks import train as train_task

    run_dir = tmp_path / "run"
    extra = (
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=1",
        "+trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=1",
        "test=false",
        "callbacks.model_checkpoint=null",  # no checkpoint writes: only the history is under test
        "callbacks.last_checkpoint=null",
        "callbacks.step_checkpoint=null",
        "callbacks.lr_monitor=null",
    )
    cfg = compose_config("train", tiny_train_overrides(synthetic_root, tmp_path, *extra), run_dir)
    assert cfg.callbacks.val_history.dirpath == str(run_dir)
    train_task.run(cfg)
    lines = [json.loads(line) for line in (run_dir / "val_history.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1]  # the sanity check is not recorded
    assert all({"step", "val/epe_mm", "val/auc_20_50"} <= set(line) for line in lines)
    assert all(isinstance(line["val/epe_mm"], float) for line in lines)
