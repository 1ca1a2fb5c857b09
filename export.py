"""Export a checkpoint to ONNX (thin Hydra entry point; the logic: ``internet_plus.export``).

python export.py ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt out=model.onnx
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    """Export ``cfg.ckpt_path`` to ``cfg.out`` and check it (see ``conf/export.yaml``)."""
    from internet_plus.export import run

    run(cfg)


if __name__ == "__main__":
    main()
