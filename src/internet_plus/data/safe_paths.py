"""File names read from annotation files must stay inside the data set's folder."""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["PathEscapeError", "safe_join"]


class PathEscapeError(ValueError):
    """A file name from an annotation file is absolute or climbs out of the data set's folder with ``..``."""


def safe_join(root: str | PathLike[str], relative: str | PathLike[str], *, source: str = "") -> Path:
    """``root / relative``, refusing a ``relative`` that is absolute or escapes ``root`` through ``..``.

    The check is on the names (``os.path.normpath``), not on resolved paths, so a data set whose folders are symbolic
    links to other disks (common for large image trees) still works; only what the annotation file says is checked.

    Args:
        root: the folder the file must be in.
        relative: the file name from the annotation file.
        source: what the name came from (e.g. the annotation file), for the error message.

    Raises:
        PathEscapeError: naming the offending file name, the root and ``source``.
    """
    name = os.fspath(relative)
    where = f" (from {source})" if source else ""
    if not name or "\x00" in name:
        raise PathEscapeError(f"empty or NUL-containing file name {name!r}{where}")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise PathEscapeError(f"absolute file name {name!r}{where}: file names must be relative to {root}")
    normal = os.path.normpath(name.replace("\\", "/"))
    if normal == ".." or normal.startswith("../") or os.path.isabs(normal):
        raise PathEscapeError(f"file name {name!r}{where} escapes the data set folder {root}")
    return Path(root) / normal
