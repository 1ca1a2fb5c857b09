"""A training run never writes into another run's directory (``hydra.run.dir=<an existing run>``).

Hydra creates the run directory and writes its own files there (``.hydra/``, ``<job>.log``) before the task starts;
everything else in it is the run's (checkpoints, ``metrics.json``, the CSV log, ``val_history.jsonl``). Two checks
refuse a directory that already holds a run's files, naming it, before any work:

- :class:`NewRunDirOnly`, a Hydra callback of the train config, checks ``hydra.run.dir`` (single runs) and
  ``hydra.sweep.dir`` (multiruns) before Hydra writes anything into them, so not even the old run's saved config is
  overwritten;
- :func:`check_new_run_dir`, at the start of the train task, checks the job's own directory (a multirun job, or a run
  started without the Hydra command line), allowing only Hydra's files of this start.

A resumed run gets a new directory anyway (:mod:`internet_plus.tasks.resume`). The processes of rank > 0 that
Lightning's DDP starts with ``hydra.run.dir=<rank 0's directory>`` (``design_notes`` §5.1), and the other ranks of a
``torchrun`` or SLURM start, are not checked: they share rank 0's directory on purpose.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

__all__ = ["NewRunDirOnly", "RunDirInUseError", "check_new_run_dir", "launch_rank"]

#: The environment variables that carry a process's rank, in the order Lightning reads them.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


class RunDirInUseError(FileExistsError):
    """The run (or sweep) directory already holds another run's files."""


def launch_rank() -> int:
    """This process's rank as its launcher set it (0 when none did): Lightning's rule (``RANK``, ``LOCAL_RANK``,
    ``SLURM_PROCID``, ``JSM_NAMESPACE_RANK``, the first one set)."""
    for key in RANK_VARIABLES:
        value = os.environ.get(key)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _hydra_files(job_name: str) -> set[str]:
    return {".hydra", f"{job_name}.log"}


def foreign_entries(folder: str | Path, allowed: set[str] = frozenset()) -> list[str]:
    """The names in ``folder`` other than ``allowed`` and Lightning's per-rank Hydra folders (``.pl_hydra*``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in allowed and not p.name.startswith(".pl_hydra"))


def _refuse(folder: str | Path, entries: list[str], what: str, override: str) -> None:
    shown = ", ".join(entries[:8]) + (f", … ({len(entries)} entries)" if len(entries) > 8 else "")
    raise RunDirInUseError(
        f"{what} {folder} is not empty (it holds {shown}): a new run never writes into another run's directory, "
        f"whose checkpoints, metrics, config and logs it would overwrite. Leave {override} out (each run gets a new "
        f"directory), name a new or empty folder, or, to continue that run, add resume={folder}/checkpoints/last.ckpt "
        "(the resumed run writes into a new directory)"
    )


def check_new_run_dir(output_dir: str | Path, job_name: str = "train") -> None:
    """Refuse ``output_dir`` when it holds anything but Hydra's own files of this start (``.hydra/``,
    ``<job_name>.log``); nothing is checked on a process of rank > 0 (:func:`launch_rank`).

    Raises:
        RunDirInUseError: naming the folder and what it holds.
    """
    if launch_rank() > 0:
        return
    entries = foreign_entries(output_dir, _hydra_files(job_name))
    if entries:
        _refuse(output_dir, entries, "the run directory", "hydra.run.dir")


def _resolved_dir(config: DictConfig, key: str) -> str | None:
    try:
        value = OmegaConf.select(config, key, throw_on_missing=True)
    except Exception:  # an interpolation Hydra resolves only later (e.g. ${hydra:...}): the task's check remains
        return None
    return None if value is None else str(value)


class NewRunDirOnly(HydraCallback):
    """Hydra callback: refuse a non-empty ``hydra.run.dir`` / ``hydra.sweep.dir`` before Hydra writes into it.

    Hydra turns an exception raised by a callback into a warning and goes on (writing into the folder), so the
    refusal leaves through ``SystemExit``: the message on stderr, exit status 1.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = _resolved_dir(config, "hydra.run.dir")
        if folder is None or launch_rank() > 0:
            return
        # Hydra's files of this start may already be there when all ranks start at once (torchrun, srun).
        job_name = str(_resolved_dir(config, "hydra.job.name") or "train")
        _exit_if_used(folder, foreign_entries(folder, _hydra_files(job_name)), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = _resolved_dir(config, "hydra.sweep.dir")
        if folder is None or launch_rank() > 0:
            return
        _exit_if_used(folder, foreign_entries(folder), "hydra.sweep.dir")


def _exit_if_used(folder: str, entries: list[str], option: str) -> None:
    if not entries:
        return
    try:
        _refuse(folder, entries, option, option)
    except RunDirInUseError as err:
        raise SystemExit(f"{type(err).__name__}: {err}") from err
