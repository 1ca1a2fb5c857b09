"""Hydra sweeps that survive a failing job, and the report at the end of a sweep.

Hydra's basic launcher stops a multirun at the first job that raises, so one bad configuration of an ablation grid
would hide every job after it. Here:

* :func:`run_job` runs one job; in a multirun an exception is caught, written to ``failed.json`` in that job's run
  directory (type, message, traceback) and logged, and the sweep goes on with the next job. A single run
  (``python train.py ...``) still raises as usual. ``SystemExit`` and ``KeyboardInterrupt`` (SIGTERM, Ctrl-C) are
  never swallowed, nor is the refusal of a local multirun with DDP (it concerns every job).
* :class:`SweepReport` (a Hydra callback, ``conf/hydra/default.yaml``) reads every job directory of the sweep when
  it ends, prints which jobs finished (``metrics.json``), failed (``failed.json``) or stopped without either, writes
  ``sweep_summary.json`` into the sweep directory, and exits with status 1 when any job did not finish, so scripts
  and schedulers see the failure while every finished job keeps its results.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

FAILED_FILE = "failed.json"
METRICS_FILE = "metrics.json"
SUMMARY_FILE = "sweep_summary.json"


def _in_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not under Hydra
        return False


def run_job(run: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any]:
    """``run(cfg)``; inside a multirun a failure is recorded in ``failed.json`` and an empty result returned."""
    if not _in_multirun():
        return run(cfg)
    from internet_plus.tasks.train import MultirunWithDDPError

    try:
        return run(cfg)
    except MultirunWithDDPError:  # a mistake of the whole sweep, not of this job: stop at once
        raise
    except Exception as err:  # noqa: BLE001 - one failing job must not stop the sweep
        output_dir = Path(HydraConfig.get().runtime.output_dir)
        record = {
            "job": HydraConfig.get().job.num,
            "overrides": list(HydraConfig.get().overrides.task),
            "error": type(err).__name__,
            "message": str(err),
            "traceback": traceback.format_exc(),
        }
        (output_dir / FAILED_FILE).write_text(json.dumps(record, indent=2) + "\n")
        log.error(
            "job %s failed (%s: %s); the sweep continues. Details: %s",
            record["job"],
            record["error"],
            err,
            output_dir / FAILED_FILE,
        )
        return {}


def sweeper_value(results: dict[str, Any], metric: str | None) -> float | None:
    """What ``train.py`` returns to a Hydra sweeper (Optuna's objective): ``results[optimized_metric]``.

    ``optimized_metric`` null keeps the old return value, the test EPE (None when the run did not test). A job that
    failed (empty results, recorded in ``failed.json``) returns NaN, which Optuna records as a failed trial and goes
    on. A named metric that the run did not produce is an error that lists the ones it did.
    """
    if not metric:
        value = results.get("test/epe_mm")
        return None if value is None else float(value)
    if not results:
        return float("nan")
    if metric not in results:
        scalars = sorted(k for k, v in results.items() if isinstance(v, int | float))
        raise KeyError(f"optimized_metric={metric!r} is not among this run's results: {', '.join(scalars)}")
    return float(results[metric])


def summarize_sweep(sweep_dir: str | Path) -> dict[str, Any]:
    """Classify every job directory (one holding ``.hydra/``) below ``sweep_dir``: finished, failed or incomplete."""
    sweep_dir = Path(sweep_dir)
    jobs = sorted(p.parent for p in sweep_dir.rglob(".hydra") if p.is_dir() and p.parent != sweep_dir)
    summary: dict[str, Any] = {"sweep_dir": str(sweep_dir), "finished": [], "failed": [], "incomplete": []}
    for job in jobs:
        entry: dict[str, Any] = {"job": str(job.relative_to(sweep_dir)), "overrides": _job_overrides(job)}
        if (job / METRICS_FILE).is_file():
            summary["finished"].append(entry)
        elif (job / FAILED_FILE).is_file():
            failure = json.loads((job / FAILED_FILE).read_text())
            summary["failed"].append({**entry, "error": f"{failure['error']}: {failure['message']}"})
        else:
            summary["incomplete"].append(entry)
    return summary


def _job_overrides(job_dir: Path) -> list[str]:
    """The command-line overrides of one job (Hydra's ``.hydra/overrides.yaml``)."""
    path = job_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


class SweepReport(Callback):
    """At the end of a multirun: print and save the per-job outcome; exit 1 when a job did not finish."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:  # noqa: D102
        summary = summarize_sweep(config.hydra.sweep.dir)
        (Path(config.hydra.sweep.dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        total = len(summary["finished"]) + len(summary["failed"]) + len(summary["incomplete"])
        lines = [f"sweep {summary['sweep_dir']}: {len(summary['finished'])} of {total} jobs finished"]
        lines += [f"  FAILED     job {f['job']}: {f['error']}" for f in summary["failed"]]
        lines += [f"  INCOMPLETE job {i['job']} (no metrics.json and no failed.json)" for i in summary["incomplete"]]
        print("\n".join(lines), flush=True)
        if summary["failed"] or summary["incomplete"]:
            raise SystemExit(1)


__all__ = ["SweepReport", "run_job", "summarize_sweep"]
