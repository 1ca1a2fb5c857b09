"""Test a checkpoint (thin Hydra entry point; the logic is in ``internet_plus.tasks.eval``).

python eval.py ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt dataset=rhd data.root=/path/to/RHD
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import internet_plus  # noqa: E402, F401  (registers the configs' resolvers: `--cfg job --resolve` works)


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    """Test ``ckpt_path`` on the configured data set; returns the test EPE."""
    from internet_plus.tasks.eval import run

    return run(cfg).get("test/epe_mm")


if __name__ == "__main__":
    main()
