"""``data.on_bad_image``: what a dataset does with an image it cannot read while training or testing.

One policy for every data set (RHD, synthetic, STB, InterHand2.6M): :class:`BadImagePolicy` is a mixin for a torch
``Dataset``. ``raise`` stops at an unreadable image with its file name (a
:class:`~internet_plus.data.errors.DatasetLayoutError`); ``skip`` replaces the sample by the next readable one, logs
the file name and counts it in a counter shared with the DataLoader worker processes
(:attr:`BadImagePolicy.bad_images`). The data module reports the counts at the end of fit / test
(:meth:`~internet_plus.data.datamodule.HandPoseDataModule.teardown`).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from os import PathLike
from typing import Any

import numpy as np

from internet_plus.data.errors import DatasetLayoutError

__all__ = [
    "BAD_IMAGE_MAX_TRIES",
    "BAD_IMAGE_POLICIES",
    "BadImagePolicy",
    "check_bad_image_policy",
]

#: ``data.on_bad_image``: ``raise`` stops at an unreadable image with its file name; ``skip`` replaces the sample by
#: the next readable one, logs the file name and counts it (:attr:`BadImagePolicy.bad_images`).
BAD_IMAGE_POLICIES = ("raise", "skip")
#: With ``skip``, how many following samples are tried before giving up.
BAD_IMAGE_MAX_TRIES = 100


def check_bad_image_policy(policy: str) -> str:
    """``policy`` if it is one of :data:`BAD_IMAGE_POLICIES`, else ``ValueError`` naming the valid values."""
    if policy not in BAD_IMAGE_POLICIES:
        raise ValueError(f"data.on_bad_image={policy!r}: use one of {BAD_IMAGE_POLICIES}")
    return policy


class BadImagePolicy:
    """Mixin for a ``Dataset`` whose ``__getitem__`` reads one image per sample.

    The dataset calls :meth:`_init_bad_image_policy` in ``__init__``, implements :meth:`_image_path` (the file of
    sample ``i``, for the messages) and reads its image with :meth:`_read_with_policy`.
    """

    on_bad_image: str = "raise"
    #: Names the data set in the messages, e.g. ``"RHD"`` (``"RHD: skipping unreadable image …"``).
    _bad_image_name: str = "data"
    #: Names the split in the give-up message, e.g. ``"RHD training"``.
    _bad_image_where: str = "data"
    _bad_counter: Any = None
    _bad_local: int = 0

    def _init_bad_image_policy(self, policy: str, name: str = "data", where: str | None = None) -> None:
        """Check and store ``policy``; ``name`` / ``where`` name the data set / split in the messages."""
        self.on_bad_image = check_bad_image_policy(policy)
        self._bad_image_name = name
        self._bad_image_where = name if where is None else where
        # A shared counter, so that the skips of DataLoader worker processes are counted in the main process too.
        self._bad_counter = multiprocessing.Value("q", 0) if policy == "skip" else None
        self._bad_local = 0

    @property
    def bad_images(self) -> int:
        """How many unreadable images were skipped so far (``on_bad_image="skip"``), in every loader worker."""
        return int(self._bad_counter.value) if self._bad_counter is not None else self._bad_local

    @property
    def skipped_images(self) -> int:
        """Same as :attr:`bad_images`."""
        return self.bad_images

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # The shared counter travels only to processes being started (DataLoader workers); a plain pickle counts alone.
        if state.get("_bad_counter") is not None and multiprocessing.context.get_spawning_popen() is None:
            state["_bad_counter"] = None
        return state

    def _image_path(self, index: int) -> str | PathLike[str]:
        """The image file of sample ``index`` (named in the messages)."""
        raise NotImplementedError

    def _count_bad_image(self) -> None:
        if self._bad_counter is not None:
            with self._bad_counter.get_lock():
                self._bad_counter.value += 1
        else:
            self._bad_local += 1

    def _read_with_policy(self, index: int, read_fn: Callable[[int], np.ndarray]) -> tuple[int, np.ndarray]:
        """``(index, read_fn(index))``, or with ``skip`` the first readable sample from ``index`` on (counting skips).

        ``read_fn`` raises ``FileNotFoundError`` for an unreadable image (as
        :func:`~internet_plus.data.images.read_rgb`); other errors pass through.
        """
        n = len(self)  # type: ignore[arg-type]  # the dataset's __len__
        tries = 1 if self.on_bad_image == "raise" else min(n, BAD_IMAGE_MAX_TRIES)
        for k in range(tries):
            i = (index + k) % n
            try:
                return i, read_fn(i)
            except FileNotFoundError as err:
                if self.on_bad_image == "raise":
                    raise DatasetLayoutError(
                        f"{err} (data.on_bad_image=raise; use skip to replace such samples)"
                    ) from err
                logging.getLogger(type(self).__module__).warning(  # the dataset module's logger
                    "%s: skipping unreadable image %s (data.on_bad_image=skip)",
                    self._bad_image_name,
                    self._image_path(i),
                )
                self._count_bad_image()
        raise DatasetLayoutError(
            f"{self._bad_image_where}: {tries} consecutive unreadable images from {self._image_path(index)} on"
        )
