"""``python -m internet_plus.data.preview``: a grid of augmented training samples with their skeletons drawn.

    python -m internet_plus.data.preview dataset=rhd data.root=/path/to/RHD_published_v2 out=grid.png num=16 seed=0

A Hydra app on ``conf/preview.yaml``: the training config (every ``dataset`` and ``data.*`` override works as with
``train.py``) plus ``out``, ``num``, ``cols``, ``split`` and ``epoch``, which are plain keys there (no ``+`` needed).
It instantiates ``cfg.data``, runs ``prepare_data()`` and ``setup``, takes ``num`` samples (chosen under ``seed``)
of

- ``split=train``: the training set, with the data set's own augmentation (InterNet's recipe, as configured in
  ``data.augmentation``) at epoch ``epoch``; the augmentation is seeded by ``seed`` (``data.seed``), the epoch and
  the sample, so the same command writes the same PNG;
- ``split=test``: the evaluation crops (not augmented),

draws each crop's 42-joint skeleton (right hand red, left blue, only joints with ``joint_valid`` > 0; see
:mod:`internet_plus.visualize`), writes the grid as a PNG and prints its path.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import hydra
import numpy as np
from omegaconf import DictConfig

from internet_plus.data.datamodule import HandPoseDataModule
from internet_plus.data.device_warp import warp_device_batch
from internet_plus.visualize import draw_skeleton, make_grid, to_uint8_image

log = logging.getLogger(__name__)

__all__ = ["main", "render_preview", "run"]

ROOT = Path(__file__).resolve().parents[3]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))  # conf/paths: every path derives from it (as train.py does)
CONF_DIR = Path(os.environ["PROJECT_ROOT"]) / "conf"


def render_preview(
    datamodule: HandPoseDataModule, num: int = 16, cols: int = 4, split: str = "train", seed: int = 0, epoch: int = 0
) -> np.ndarray:
    """The preview grid (H×W×3 RGB ``uint8``) of ``num`` samples of ``datamodule``'s ``split`` (module docstring)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if int(num) < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    datamodule.prepare_data()
    datamodule.setup("fit" if split == "train" else "test")
    dataset = datamodule.train_set if split == "train" else datamodule.test_set
    if dataset is None or len(dataset) == 0:
        raise ValueError(f"the {split} set is empty")
    if split == "train" and not getattr(dataset, "augment", True):
        log.warning("preview: augmentation is disabled (data.augmentation.enabled=false); showing plain crops")
    rng = np.random.default_rng(int(seed))
    chosen = rng.choice(len(dataset), size=min(int(num), len(dataset)), replace=False)
    tiles = []
    for index in chosen:
        sample = dataset[(int(epoch), int(index))]
        if "image" not in sample:  # data.warp_on=device: the crop is made here, as on the device after transfer
            batch = warp_device_batch({k: v[None] for k, v in sample.items()}, datamodule.input_size)
            sample = {k: v[0] for k, v in batch.items()}
        tiles.append(draw_skeleton(to_uint8_image(sample["image"]), sample["joints_img"], sample["joint_valid"]))
    return make_grid(tiles, cols=int(cols))


def run(cfg: DictConfig) -> Path:
    """Build ``cfg.data``, render the preview and write it to ``cfg.out``; returns the PNG's path (also printed)."""
    datamodule = hydra.utils.instantiate(cfg.data)
    grid = render_preview(
        datamodule,
        num=int(cfg.num),
        cols=int(cfg.cols),
        split=str(cfg.split),
        seed=int(cfg.seed),
        epoch=int(cfg.epoch),
    )
    out = Path(str(cfg.out)).expanduser().absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write the preview image {out}")
    log.info("preview of the %s set written to %s", cfg.split, out)
    print(out)
    return out


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="preview")
def main(cfg: DictConfig) -> None:
    """The command-line entry point (module docstring)."""
    run(cfg)


if __name__ == "__main__":
    main()
