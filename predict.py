"""Predict 3-D hand poses on images or a video (thin Hydra entry point; the logic: ``internet_plus.tasks.predict``).

python predict.py ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt input=path/to/image_or_folder_or_video
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> int:
    """Predict every input of ``cfg.input``; returns the number of inputs predicted (fails when none was)."""
    from internet_plus.tasks.predict import run

    return int(run(cfg)["num_ok"])


if __name__ == "__main__":
    main()
