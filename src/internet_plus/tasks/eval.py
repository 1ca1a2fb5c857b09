"""``python eval.py ckpt_path=<file> dataset=<d>``: test a checkpoint on a data set's evaluation split.

The network is rebuilt from the hyperparameters stored in the checkpoint (plain values, loaded with PyTorch's safe
``weights_only`` loading), so it does not matter which backbone the eval config names. Writes ``metrics.json`` into
the run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig

from internet_plus.lit_module import HandPoseModule
from internet_plus.tasks.common import (
    check_accelerator,
    finish_wandb,
    format_metrics_table,
    instantiate_loggers,
    write_metrics_json,
)
from internet_plus.utils.allocator import keep_freed_memory

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Test ``cfg.ckpt_path`` on ``cfg.data``; returns the test metrics."""
    check_accelerator(cfg.trainer)
    ckpt = Path(str(cfg.ckpt_path)).expanduser()
    if not ckpt.is_file():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
    if cfg.get("keep_freed_memory", True):
        keep_freed_memory()  # utils/allocator.py: big per-step tensors reuse memory instead of page-faulting
    L.seed_everything(cfg.seed, workers=True)
    model = HandPoseModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    input_size = model.codec.input_size
    if cfg.data.get("input_size") != input_size:
        raise ValueError(
            f"the checkpoint was trained on {input_size}×{input_size} inputs but data.input_size="
            f"{cfg.data.get('input_size')}; add data.input_size={input_size}"
        )
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    with finish_wandb():
        loggers = instantiate_loggers(cfg.get("logger"), task_name=cfg.get("task_name", "eval"))
        trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=[])
        trainer.test(model, datamodule=datamodule)
        results = dict(model.test_results)
        if trainer.is_global_zero:
            path = write_metrics_json(results, cfg.paths.output_dir)
            print(format_metrics_table(results))
            log.info("metrics written to %s", path)
    return results
