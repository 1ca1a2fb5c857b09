"""The backbone registry: the ``backbone`` config group, ``conf/backbone/*.yaml``.

Each file of the group is one feature extractor: InterNet's ResNet-50, InterNet+'s Table 1 network and its Table 6
and 7 ablations (paper §4). Its ``model.backbone`` node names the class with ``_target_`` and holds the
constructor's fields; a variant inherits another member through its ``defaults`` list and states only what differs.
Adding a backbone is adding a file: it is then a ``backbone=<name>`` choice of ``train.py``, a ``--backbone`` of
``python -m internet_plus.models.summary``, a model of the benchmark and of the GPU check, and a variant that
``python -m internet_plus.tasks.collect`` recognises.

* :func:`conf_dir`: ``$PROJECT_ROOT/conf`` (``train.py``, ``eval.py`` and the data preview export ``PROJECT_ROOT``),
  else the ``conf/`` of the repository this package is in;
* :func:`backbone_names`: the group's file names, ``internet_plus`` (``train.yaml``'s default) first, ``resnet50``
  (InterNet, the baseline every ratio divides by) last, the others sorted between;
* :func:`backbone_config`: one member's ``model.backbone`` node composed by Hydra's compose API (so ``defaults``
  inheritance applies), as plain values;
* :func:`nearest_variant` and :func:`variant_of`: which member a saved node is (collecting results);
* :func:`backbone_node`: a saved node with its class in ``_target_``, also one saved before the registry
  (:data:`LEGACY_NAMES`).

Composed nodes are kept per file state (name, size, modification time), so a changed file is composed again.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: The config group that is the registry.
GROUP = "backbone"
#: Listed first: ``train.yaml``'s default backbone (InterNet+).
FIRST = "internet_plus"
#: Listed last: InterNet's ResNet-50, the baseline of the InterNet+/InterNet ratios.
LAST = "resnet50"

_REPO_ROOT = Path(__file__).resolve().parents[4]

#: Checkpoints written before the backbone nodes named their class hold ``backbone: {name: <legacy name>, ...fields}``
#: in their hyperparameters; they keep loading: the two names of that time map to their classes here.
LEGACY_NAMES = {
    "internet_plus": "internet_plus.models.backbones.internet_plus.InterNetPlusBackbone",
    "resnet50": "internet_plus.models.backbones.resnet.ResNet50Backbone",
}


def backbone_node(node: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """``node`` as plain values with its class in ``_target_``: a legacy ``name`` (:data:`LEGACY_NAMES`) becomes the
    ``_target_`` of that name, the other fields are kept as they are.

    Raises:
        ValueError: the node names no class (neither ``_target_`` nor a legacy ``name``).
    """
    if isinstance(node, DictConfig):
        fields = OmegaConf.to_container(node, resolve=True)
        assert isinstance(fields, dict)
    else:
        fields = dict(node)
    if "_target_" not in fields and "name" in fields:
        name = fields.pop("name")
        if name not in LEGACY_NAMES:
            raise ValueError(f"unknown legacy backbone name {name!r}; the legacy names are {', '.join(LEGACY_NAMES)}")
        fields = {"_target_": LEGACY_NAMES[name], **fields}
    if "_target_" not in fields:
        raise ValueError(f"a model.backbone node names its class with _target_ (conf/backbone/*.yaml); got {fields}")
    return fields


def conf_dir() -> Path:
    """The config directory: ``$PROJECT_ROOT/conf``, else the repository's ``conf/`` (found from this file)."""
    return Path(os.environ.get("PROJECT_ROOT", str(_REPO_ROOT))) / "conf"


def _files() -> list[Path]:
    return list((conf_dir() / GROUP).glob("*.yaml"))


def _stamp(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """What identifies the group's state: each file's name, size and modification time."""
    stats = ((p.name, p.stat()) for p in files)
    return tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in stats))


def backbone_names() -> list[str]:
    """The members of the group (file names without ``.yaml``): :data:`FIRST`, the others sorted, :data:`LAST`."""
    return sorted((p.stem for p in _files()), key=lambda name: (name != FIRST, name == LAST, name))


@contextlib.contextmanager
def _hydra_at(config_dir: str) -> Iterator[None]:
    """Hydra initialised on ``config_dir`` for the compose API; whatever Hydra state there was (a running app, a
    test's composition) is put back afterwards."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            yield
    finally:
        restore_gh_from_backup(backup)


@functools.lru_cache(maxsize=256)
def _composed(config_dir: str, name: str, stamp: tuple[tuple[str, int, int], ...]) -> dict[str, Any]:
    from hydra import compose

    with _hydra_at(config_dir):
        cfg = compose(overrides=[f"+{GROUP}={name}"])
    node = OmegaConf.to_container(cfg.model.backbone, resolve=True)
    assert isinstance(node, dict)
    return node


def backbone_config(name: str) -> dict[str, Any]:
    """The composed ``model.backbone`` node of the member ``name`` (``_target_`` and the constructor's fields).

    Raises:
        ValueError: ``name`` is not a member; the message lists the valid names.
    """
    files = _files()
    names = sorted(p.stem for p in files)
    if name not in names:
        valid = ", ".join(backbone_names())
        raise ValueError(f"unknown backbone {name!r}; valid names ({conf_dir() / GROUP}/*.yaml): {valid}")
    return copy.deepcopy(_composed(str(conf_dir()), name, _stamp(files)))


def backbone_targets() -> frozenset[str]:
    """The classes the group names: the ``_target_`` of every file that sets one (the others inherit it).

    Read from the files themselves, without composing, so that building a backbone costs no Hydra composition.
    """
    files = _files()
    return _targets(tuple(sorted(str(p) for p in files)), _stamp(files))


@functools.lru_cache(maxsize=64)
def _targets(paths: tuple[str, ...], stamp: tuple[tuple[str, int, int], ...]) -> frozenset[str]:
    targets = set()
    for path in paths:
        node = OmegaConf.load(path)
        target = node.get("_target_") if isinstance(node, Mapping) else None
        if target is not None:
            targets.add(str(target))
    return frozenset(targets)


def nearest_variant(node: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """The member nearest to a saved ``model.backbone`` node, and the fields in which the node differs from it.

    Only members with the node's class count. A field the node lacks has the value of the first of them in
    :func:`backbone_names` order, the class's base member (``internet_plus`` for the InterNet+ variants). The nearest
    member differs in the fewest fields; when several tie, none is nearer than the others and the base member is
    taken (``{attention: se, fca: false}`` is ``internet_plus`` with both fields, not one of the two ablations).
    Keys starting with ``_`` other than ``_target_`` are ignored. ``None``: ``node`` is not a node, or names no
    class of the group.
    """
    if not isinstance(node, Mapping):
        return None
    try:
        saved = backbone_node(node)
    except ValueError:
        return None
    target = saved.pop("_target_")
    saved = {k: v for k, v in saved.items() if not str(k).startswith("_")}
    members = {}
    for name in backbone_names():
        config = backbone_config(name)
        if config.pop("_target_", None) == target:
            members[name] = config
    if not members:
        return None
    base = next(iter(members))
    full = {**members[base], **saved}
    missing = object()
    differences = {
        name: {k: v for k, v in full.items() if config.get(k, missing) != v}
        | {k: None for k in config if k not in full}
        for name, config in members.items()
    }
    fewest = min(len(d) for d in differences.values())
    nearest = [name for name, d in differences.items() if len(d) == fewest]
    name = nearest[0] if len(nearest) == 1 else base
    return name, differences[name]


def variant_of(node: Mapping[str, Any] | None) -> str | None:
    """The member whose composed node equals ``node`` (missing fields as in :func:`nearest_variant`); ``None`` if
    no member does."""
    found = nearest_variant(node)
    return found[0] if found is not None and not found[1] else None


__all__ = [
    "FIRST",
    "GROUP",
    "LAST",
    "LEGACY_NAMES",
    "backbone_config",
    "backbone_names",
    "backbone_node",
    "backbone_targets",
    "conf_dir",
    "nearest_variant",
    "variant_of",
]
