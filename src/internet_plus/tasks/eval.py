"""``python eval.py ckpt_path=<file> [dataset=<d> data.root=<folder>]``: test a checkpoint on an evaluation split.

The network is rebuilt from the hyperparameters stored in the checkpoint (plain values, loaded with PyTorch's safe
``weights_only`` loading), so it does not matter which backbone the eval config names. The test data is the training
run's own (its resolved ``data`` node is saved in every checkpoint), so ``ckpt_path`` alone reproduces the run's test
metrics; naming the data on the command line evaluates on another set (:func:`evaluation_data`). Writes
``metrics.json`` into the run directory (``logs/eval/runs/<time>``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from internet_plus.accel import Accel
from internet_plus.checkpoints import load_model
from internet_plus.tasks.common import (
    check_accelerator,
    finish_wandb,
    format_metrics_table,
    instantiate_loggers,
    tidy_logging,
    write_metrics_json,
)

log = logging.getLogger(__name__)


#: Command-line overrides that choose the evaluation data themselves (then the checkpoint's data node is not used).
DATA_OVERRIDE_PREFIXES = ("dataset=", "data.", "+data.", "++data.", "~data", "data=")


def _data_overridden() -> bool:
    """True when the command line names the data (``dataset=…`` or any ``data.…`` override)."""
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not running under Hydra
        return False
    return any(o.startswith(DATA_OVERRIDE_PREFIXES) for o in overrides)


#: DataModule classes that moved, as checkpoints saved before the move name them (their ``data_config``).
MOVED_DATAMODULES = {
    "internet_plus.data.datamodule.RHDDataModule": "internet_plus.data.rhd.RHDDataModule",
    "internet_plus.data.datamodule.SyntheticDataModule": "internet_plus.data.synthetic.datamodule.SyntheticDataModule",
}


def evaluation_data(cfg: DictConfig, saved: dict[str, Any] | None, ckpt: Path) -> tuple[DictConfig, str]:
    """The ``data`` node to test on and where it came from.

    ``data_from_checkpoint``: ``auto`` (default) uses the data node saved in the checkpoint by the training run
    (data set, root, input size, protocol, synthetic sizes and style), unless the command line names the data
    itself (``dataset=…``, ``data.…``); ``true`` always uses the checkpoint's (an error when it has none); ``false``
    always the eval config's.
    """
    choice = str(cfg.get("data_from_checkpoint", "auto")).lower()
    if choice not in ("auto", "true", "false"):
        raise ValueError(f"data_from_checkpoint={choice!r}: use auto, true or false")
    overridden = _data_overridden()
    if choice == "false" or (choice == "auto" and overridden):
        return cfg.data, "the command line" if overridden else "the eval config (data_from_checkpoint=false)"
    if saved is None:
        if choice == "true":
            raise ValueError(
                f"{ckpt} holds no data config (it was written before checkpoints carried one); name the data set: "
                "dataset=<d> data.root=<folder>"
            )
        log.warning(
            "%s holds no data config (an older checkpoint): testing on the eval config's data; name it with "
            "dataset=<d> data.root=<folder>",
            ckpt,
        )
        return cfg.data, "the eval config (the checkpoint has none)"
    saved = {**saved, "_target_": MOVED_DATAMODULES.get(saved.get("_target_"), saved.get("_target_"))}
    return OmegaConf.create(saved), f"the checkpoint ({ckpt.name})"


def run(cfg: DictConfig) -> dict[str, Any]:
    """Test ``cfg.ckpt_path`` on ``cfg.data``; returns the test metrics."""
    tidy_logging()
    check_accelerator(cfg.trainer)
    ckpt = Path(str(cfg.ckpt_path)).expanduser()
    model = load_model(ckpt)  # names the file and says what it is when it is not a checkpoint of this project
    L.seed_everything(cfg.seed, workers=True)
    data_cfg, origin = evaluation_data(cfg, model.data_config, ckpt)
    log.info("test data: %s at %s (data config from %s)", data_cfg.get("_target_"), data_cfg.get("root"), origin)
    with open_dict(cfg):
        cfg.data = data_cfg
    input_size = model.codec.input_size
    if cfg.data.get("input_size") != input_size:
        raise ValueError(
            f"the checkpoint was trained on {input_size}×{input_size} inputs but data.input_size="
            f"{cfg.data.get('input_size')}; add data.input_size={input_size}"
        )
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    with finish_wandb():
        loggers = instantiate_loggers(cfg.get("logger"), task_name=cfg.get("task_name", "eval"))
        trainer: L.Trainer = hydra.utils.instantiate(
            cfg.trainer, logger=loggers or False, callbacks=[Accel(cfg.get("accel", "auto"))]
        )
        trainer.test(model, datamodule=datamodule, verbose=False)  # our table below says it once
        results = dict(model.test_results)
        if trainer.is_global_zero:
            path = write_metrics_json(results, cfg.paths.output_dir)
            print(format_metrics_table(results))
            log.info("metrics written to %s", path)
    return results
