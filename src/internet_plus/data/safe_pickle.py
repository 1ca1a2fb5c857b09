"""A restricted unpickler for annotation files that hold only numpy arrays and plain containers.

RHD ships its annotations as a pickle (``anno_<set>.pickle``: a dict from int sample id to a dict of numpy arrays,
datasets §A.2). ``pickle.load`` on a downloaded file runs whatever callable the file names, so this
module never uses it: :func:`load_restricted_pickle` resolves only the handful of globals that numpy arrays, numpy
scalars and builtin containers need and refuses every other one with :class:`UnsafePickleError` *before* anything is
called. Python-2 era pickles (byte strings inside numpy arrays) are read with ``encoding="latin1"``, the default here.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "UnsafePickleError", "load_restricted_pickle"]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global (a class or callable) that the restricted unpickler does not allow."""


def _numpy_core_attr(submodule: str, name: str) -> Callable[..., Any]:
    """``numpy._core.<submodule>.<name>`` (numpy >= 2) or ``numpy.core.<submodule>.<name>`` (numpy 1.x).

    Resolved without importing ``numpy.core`` under numpy 2, where that alias package warns on import.
    """
    import importlib

    try:
        module = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy < 2
        module = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(module, name)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    reconstruct = _numpy_core_attr("multiarray", "_reconstruct")
    scalar = _numpy_core_attr("multiarray", "scalar")
    frombuffer = _numpy_core_attr("numeric", "_frombuffer")
    allowed: dict[tuple[str, str], Any] = {
        # numpy arrays: protocol 0-4 reduce to _reconstruct(ndarray, (0,), b'b') + __setstate__,
        # protocol 5 to _frombuffer(buffer, dtype, shape, order).
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # plain containers and byte strings (protocols 0-2 name them as globals; later protocols use opcodes);
        # ``_codecs.encode`` is how protocol <= 2 pickles written by Python 3 store ``bytes`` (array data).
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "bytes"): bytes,
        ("builtins", "bytearray"): bytearray,
        ("_codecs", "encode"): _latin1_encode,
    }
    # Python 2 (and Python 3 writing protocol <= 2) spell the builtins module ``__builtin__``.
    allowed.update(
        {("__builtin__", name): obj for (module, name), obj in list(allowed.items()) if module == "builtins"}
    )
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to the text encodings pickle itself uses for ``bytes`` (latin1)."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591", "ascii", "utf8"):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed (only latin1 / utf-8)")
    return text.encode(encoding, errors)


#: The (module, name) pairs a restricted pickle may reference, and what each resolves to.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose :meth:`find_class` resolves only :data:`ALLOWED_GLOBALS`.

    ``source`` names the file in error messages. Persistent ids are refused too (numpy data never uses them).
    """

    def __init__(self, file: io.BufferedIOBase, *, source: str = "<stream>", encoding: str = "latin1") -> None:
        # Python-2 module names are listed in ALLOWED_GLOBALS directly (fix_imports only acts in the base find_class).
        super().__init__(file, fix_imports=True, encoding=encoding, errors="strict")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refused to load the global '{module}.{name}'. This file may only contain numpy "
                "arrays and plain containers (dict, list, tuple, set); a pickle that names other classes or "
                "callables could run arbitrary code, so it is not loaded."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refused a persistent id ({pid!r}); not used by numpy data")


def load_restricted_pickle(path: str | PathLike[str], *, encoding: str = "latin1") -> Any:
    """Load ``path`` with :class:`RestrictedUnpickler` (numpy arrays and plain containers only).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafePickleError: the pickle names a global outside :data:`ALLOWED_GLOBALS` (nothing was executed).
        pickle.UnpicklingError: the file is not a readable pickle (truncated or corrupt); the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such pickle file")
    with path.open("rb") as f:
        unpickler = RestrictedUnpickler(f, source=str(path), encoding=encoding)
        try:
            return unpickler.load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
            raise pickle.UnpicklingError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from err
