"""Feature extractors: images B×3×H×W -> features B×C×(H/32)×(W/32); each has an ``out_channels`` attribute.

The ``backbone`` config group (``conf/backbone/*.yaml``) is the registry of feature extractors
(:mod:`internet_plus.models.backbones.registry`): each member's ``model.backbone`` node names its class with
``_target_`` and every other field is a constructor argument, so any field can be overridden from the command line
(``model.backbone.attention=se``). :func:`build_backbone` builds one from such a node with ``hydra.utils.instantiate``.

A node comes from the composed config or from a checkpoint's hyperparameters. Checkpoints load with PyTorch's
``weights_only`` loading so that a file cannot run code (``docs/reference/design_notes.md`` §5.6); a ``_target_``
read from one could undo that, so only the classes that the group names are built (and those of the legacy names,
:data:`~internet_plus.models.backbones.registry.LEGACY_NAMES`, that older checkpoints hold).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig
from torch import nn

from internet_plus.models.backbones.registry import LEGACY_NAMES, backbone_node, backbone_targets, conf_dir


def build_backbone(node: Mapping[str, Any] | DictConfig) -> nn.Module:
    """Build the feature extractor that a ``model.backbone`` node names (or a legacy one:
    :func:`~internet_plus.models.backbones.registry.backbone_node`).

    Raises:
        ValueError: the node names no class, a class that no member of the ``backbone`` group names, or has
            instantiation keys other than ``_target_`` (``_args_``, ``_partial_``, ...).
        TypeError: the class built no ``nn.Module`` with an ``out_channels`` attribute.
    """
    fields = backbone_node(node)
    target = fields["_target_"]
    allowed = {*LEGACY_NAMES.values(), *backbone_targets()}
    if target not in allowed:
        raise ValueError(
            f"model.backbone._target_={target!r} is not a class of the backbone group ({conf_dir() / 'backbone'}); "
            f"valid: {', '.join(sorted(allowed))}"
        )
    special = sorted(k for k in fields if k.startswith("_") and k != "_target_")
    if special:
        raise ValueError(f"model.backbone may not set {', '.join(special)}: its fields are constructor arguments")
    try:
        module = hydra.utils.instantiate(fields, _convert_="all")
    except InstantiationException as err:  # the constructor's own error (e.g. PretrainedWeightsError) as it is
        raise (err.__cause__ or err) from None
    if not isinstance(module, nn.Module) or not hasattr(module, "out_channels"):
        raise TypeError(f"{target} built {type(module).__name__}, not an nn.Module with an out_channels attribute")
    return module


__all__ = ["build_backbone"]
