"""The error every data set reader raises for files that are not as expected: :class:`DatasetLayoutError`.

RHD, STB and InterHand2.6M (``docs/reference/datasets.md`` §A-§C) raise it, or a subclass of it
(:class:`~internet_plus.data.stb.STBLayoutError`, :class:`~internet_plus.data.interhand.InterHandLayoutError`),
naming the file and the expected layout; the ``data.on_bad_image=raise`` policy
(:mod:`internet_plus.data.bad_images`) and ``data.verify=true`` (:mod:`internet_plus.data.verify`) raise it too.
"""

from __future__ import annotations

__all__ = ["DatasetLayoutError"]


class DatasetLayoutError(RuntimeError):
    """A data set folder does not have the expected files (the message names the file and the expected layout)."""
