"""Reading checkpoint files: the one loader behind resuming, ``eval.py``, ``predict.py`` and ``export.py``.

:func:`read_checkpoint` loads a file with PyTorch's safe ``weights_only`` loading (``design_notes`` §5.6), on the
CPU, and stops with a :class:`CheckpointError` that names the file and says what it is when it is not a checkpoint
of this project: a folder, an empty file, a text file, a truncated or damaged zip archive, a file of another format,
a plain ``state_dict`` (parameter name → tensor), a dictionary not written by Lightning, a checkpoint without saved
hyperparameters or with another model's. :func:`load_model` builds the :class:`HandPoseModule` from a checked file;
:func:`check_resumable` also requires the training state that resuming needs (a ``save_weights_only`` file such as
``best.ckpt`` holds none).
"""

from __future__ import annotations

import inspect
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "check_resumable", "load_model", "read_checkpoint"]

#: The first bytes of a zip archive (what ``torch.save`` writes) and of a legacy pickle-format ``torch.save`` file.
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = b"\x80"


class CheckpointError(ValueError):
    """A file given as a checkpoint is not one of this project's checkpoints; the message names it and says why."""


def _head(path: Path, size: int = 512) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _text_start(head: bytes) -> str | None:
    """The first line of ``head`` when it reads as text, else ``None``."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(not (c.isprintable() or c in "\t\r\n") for c in text):
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:60]


def _unreadable(path: Path, error: BaseException) -> str:
    """What ``path`` is, for a file that ``torch.load`` could not read."""
    size = path.stat().st_size
    head = _head(path)
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if size == 0:
        return "is an empty file (0 bytes), not a checkpoint (a save that never finished, or a placeholder)"
    zipped = head.startswith(ZIP_MAGIC)
    if zipped and not zipfile.is_zipfile(path):
        return (
            f"is a truncated or damaged zip archive ({size} bytes; its end, the zip directory, is missing or "
            "broken): not a complete checkpoint (a copy or a download that stopped early?)"
        )
    pickled = zipped or head.startswith(PICKLE_MAGIC)
    if pickled and isinstance(error, pickle.UnpicklingError) and "weights only" in str(error).lower():
        return (
            "holds Python objects that safe loading (weights_only=True) refuses, so it was not written by this "
            f"project's training; only load it unsafely if you trust its origin ({first})"
        )
    if zipped:
        return f"is a zip archive that torch.load cannot read ({size} bytes): not a PyTorch checkpoint ({first})"
    if head.startswith(PICKLE_MAGIC):
        return f"is a pickle file that torch.load cannot read ({size} bytes; truncated or damaged?): {first}"
    text = _text_start(head)
    if text is not None:
        return f"is a text file ({size} bytes, it begins {text!r}), not a PyTorch checkpoint"
    return f"is not a PyTorch checkpoint (a binary file of {size} bytes that begins {head[:8]!r})"


def _module_parameters() -> tuple[set[str], set[str]]:
    """The ``HandPoseModule`` constructor's parameters: (all, required)."""
    from internet_plus.lit_module import HandPoseModule

    params = list(inspect.signature(HandPoseModule.__init__).parameters.values())[1:]
    return {p.name for p in params}, {p.name for p in params if p.default is inspect.Parameter.empty}


def read_checkpoint(path: str | Path, *, option: str = "ckpt_path") -> dict[str, Any]:
    """Load ``path`` safely (``weights_only``, on the CPU) and check that it is a checkpoint of this project's model.

    Args:
        path: the checkpoint file.
        option: how the user named it (``ckpt_path``, ``resume``, ``resume=last``), the start of every message.

    Returns:
        The checkpoint dictionary (tensors memory-mapped for a zip file; nothing is copied until used).

    Raises:
        FileNotFoundError: there is no such file.
        CheckpointError: the file is not a checkpoint of this project (the message says what it is).
    """
    path = Path(path).expanduser()
    where = f"{option}: {path}"
    if path.is_dir():
        raise CheckpointError(f"{where} is a folder, not a checkpoint file (a run's are in <run dir>/checkpoints/)")
    if not path.is_file():
        raise FileNotFoundError(f"{option}={path}: no such checkpoint file")
    zipped = _head(path, len(ZIP_MAGIC)) == ZIP_MAGIC
    try:
        # mmap needs torch.save's zip format; a legacy (pickle-format) file is read without it.
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except Exception as err:  # torch.load raises RuntimeError, EOFError, UnpicklingError, ... for a bad file
        raise CheckpointError(f"{where} {_unreadable(path, err)}") from err
    check_model_checkpoint(ckpt, path, option=option)
    return ckpt


def check_model_checkpoint(ckpt: Any, path: str | Path, *, option: str = "ckpt_path") -> None:
    """Raise :class:`CheckpointError` unless ``ckpt`` (loaded from ``path``) is a Lightning checkpoint of
    ``HandPoseModule``: a dictionary with ``state_dict``, ``pytorch-lightning_version`` and the module's
    hyperparameters."""
    where = f"{option}: {path}"
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{where} holds a {type(ckpt).__name__}, not a checkpoint (a dictionary)")
    if "state_dict" not in ckpt:
        if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            example = next(iter(ckpt))
            raise CheckpointError(
                f"{where} is a plain state_dict ({len(ckpt)} tensors, e.g. {example!r}), not a Lightning checkpoint: "
                "it holds no hyperparameters to rebuild the network from. Use a training run's "
                "checkpoints/best.ckpt or last.ckpt (or save the model with trainer.save_checkpoint)"
            )
        keys = ", ".join(repr(k) for k in list(ckpt)[:8]) or "none"
        raise CheckpointError(
            f"{where} is a dictionary without 'state_dict' (keys: {keys}): not a Lightning checkpoint"
        )
    if "pytorch-lightning_version" not in ckpt:
        raise CheckpointError(
            f"{where} has a 'state_dict' but no 'pytorch-lightning_version': it was not written by Lightning's "
            "Trainer (save the model with trainer.save_checkpoint, or use a training run's checkpoints/*.ckpt)"
        )
    hparams = ckpt.get("hyper_parameters")
    if not isinstance(hparams, Mapping) or not hparams:
        raise CheckpointError(
            f"{where} is a Lightning checkpoint without saved hyperparameters (a model that does not call "
            "save_hyperparameters, e.g. another project's): the network cannot be rebuilt from it"
        )
    accepted, required = _module_parameters()
    unknown = sorted(str(k) for k in hparams if k not in accepted)
    missing = sorted(required - set(hparams))
    if unknown or missing:
        raise CheckpointError(
            f"{where} holds the hyperparameters of another model (unknown: {', '.join(unknown) or 'none'}; missing: "
            f"{', '.join(missing) or 'none'}): this project's HandPoseModule takes {', '.join(sorted(accepted))}"
        )


def check_resumable(ckpt: Mapping[str, Any], path: str | Path, *, option: str = "resume") -> None:
    """Raise :class:`CheckpointError` unless ``ckpt`` also holds the training state ``trainer.fit`` resumes from."""
    missing = [k for k in ("optimizer_states", "loops") if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{option}: {path} is a weights-only checkpoint (saved with save_weights_only, like checkpoints/best.ckpt; "
            f"no {' or '.join(missing)}): training cannot resume from it. Resume from the run's "
            "checkpoints/last.ckpt, or test this file with eval.py ckpt_path=<file>"
        )


def _without_initial_weights(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameter overrides that build the network without its *initial* weights (ImageNet's for
    ``resnet50 pretrained: true``): the checkpoint's own weights replace them, so they need not be on this machine."""
    backbone = hparams.get("backbone")
    if isinstance(backbone, Mapping) and (backbone.get("pretrained") or backbone.get("weights_path")):
        return {"backbone": {**backbone, "pretrained": False, "weights_path": None}}
    return {}


def load_model(path: str | Path, *, option: str = "ckpt_path") -> Any:
    """The :class:`~internet_plus.lit_module.HandPoseModule` of a checked checkpoint file, on the CPU.

    Raises:
        FileNotFoundError: there is no such file.
        CheckpointError: the file is not a checkpoint of this project, or its weights do not fit the network its
            hyperparameters describe.
    """
    from internet_plus.lit_module import HandPoseModule

    path = Path(path).expanduser()
    ckpt = read_checkpoint(path, option=option)
    overrides = _without_initial_weights(ckpt["hyper_parameters"])
    try:
        return HandPoseModule.load_from_checkpoint(path, map_location="cpu", weights_only=True, **overrides)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{option}: {path} does not fit the network its hyperparameters describe: {err}") from err
