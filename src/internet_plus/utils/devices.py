"""The torch device a command-line option names (``predict.py device=…``, ``internet_plus.compare --device``)."""

from __future__ import annotations

import torch

__all__ = ["select_device"]


def select_device(name: str, option: str = "device=") -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu`` or ``cuda[:<index>]``.

    Anything else, or CUDA where there is none, is a ``ValueError`` naming ``option`` (how the command spells it,
    e.g. ``"device="`` or ``"--device "``).
    """
    name = str(name).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{option}{name}: CUDA is not available here (use cpu or auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"{option}{name}: expected auto, cpu or cuda[:<index>]")
    return torch.device(name)
