"""Train InterNet / InterNet+ (thin Hydra entry point; the logic is in ``internet_plus.tasks.train``).

python train.py backbone=internet_plus dataset=rhd data.root=/path/to/RHD_published_v2
python train.py experiment=quickstart
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))  # works from a plain checkout too; harmless after `pip install -e .`
os.environ.setdefault("PROJECT_ROOT", str(ROOT))  # conf/paths: every path derives from it; DDP ranks inherit it

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import internet_plus  # noqa: E402, F401  (registers the configs' resolvers: `--cfg job --resolve` works)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Fit, then test the best checkpoint; returns ``optimized_metric`` (default the test EPE) to Hydra sweepers."""
    from internet_plus.tasks.sweep import run_job, sweeper_value
    from internet_plus.tasks.train import run

    results = run_job(run, cfg)  # in a multirun, a failing job is recorded and the sweep goes on
    return sweeper_value(results, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
