"""The optimiser's keyword arguments: PyTorch's fused kernel on CUDA unless the config says otherwise.

The optimiser is a Hydra ``_target_`` node (``conf/optimizer``: AdamW for InterNet+, paper §4.3; Adam for InterNet).
Left to PyTorch's default, Adam and AdamW on CUDA run the ``foreach`` implementation, and under 16-bit mixed precision
(``trainer=gpu``, ``trainer=ddp``) the GradScaler then reads on the host, at every step, whether the gradients hold an
inf or NaN before it lets the optimiser step: the CPU waits for the whole backward pass before it can launch the
optimiser's kernels. The fused implementation (``fused=True``) takes the scale and that flag as device tensors and
skips the update on the GPU: one kernel per parameter group, and no host read. So when every parameter is on a CUDA
device, the node does not set ``fused`` or ``foreach``, and no gradient clipping is configured, ``fused=True`` is
added. Gradient clipping needs the gradients unscaled before the step, which a fused optimiser under a GradScaler
does internally and Lightning therefore refuses to combine with clipping: with ``trainer.gradient_clip_val`` set the
node is left as it is. ``fused: false`` (or any ``foreach`` value) in the node keeps PyTorch's choice.

The fused and ``foreach`` kernels compute the same update (the same formula, in another order of float operations),
and their state dicts load into each other, so resuming across the two is allowed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import hydra

__all__ = ["with_fused_default"]


def _accepts_fused(target: str) -> bool:
    try:
        cls = hydra.utils.get_class(target)
    except Exception:  # an unknown target fails where it is instantiated, with Hydra's own message
        return False
    return "fused" in inspect.signature(cls).parameters


def with_fused_default(
    node: Mapping[str, Any], device_types: Iterable[str], *, gradient_clipping: bool = False
) -> dict[str, Any]:
    """A copy of the optimiser ``node`` with ``fused=True`` added when its class takes ``fused``, neither ``fused`` nor
    ``foreach`` is set (or both are null), every parameter lives on a CUDA device (``device_types``) and no gradient
    clipping is configured; otherwise an unchanged copy."""
    node = dict(node)
    types = set(device_types)
    if (
        types == {"cuda"}
        and not gradient_clipping
        and node.get("fused") is None
        and node.get("foreach") is None
        and _accepts_fused(str(node.get("_target_", "")))
    ):
        node["fused"] = True
    return node
