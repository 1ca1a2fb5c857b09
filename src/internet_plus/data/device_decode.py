"""``data.decode_on=device``: the JPEG images of a batch decoded on the batch's device, before the device warp.

With ``data.decode_on=device`` (which needs ``data.warp_on=device``, :mod:`internet_plus.data.device_warp`) a loader
worker does not decode the image (InterNet's ``load_img``, ``docs/reference/internet.md`` §6.1): it reads the file's
bytes with the checks that need no decoding (a regular file, a JPEG, an end-of-image marker;
:func:`~internet_plus.data.images.read_jpeg_bytes`) and takes the image size, which the crop geometry needs (the
flip mirrors about the width), from the JPEG header. The sample carries the bytes as a ``uint8`` 1-D tensor
(:data:`SOURCE_JPEG`) in place of the decoded original; the loader collates them as a :class:`JpegBatch` (the lengths
differ), which Lightning's transfer leaves on the CPU, where ``torchvision.io.decode_jpeg`` wants its input. After
the transfer :func:`decode_jpegs` decodes the whole batch on the batch's device (nvJPEG, batched, on CUDA; libjpeg-turbo
on the CPU) to RGB, and the device warp goes on as with ``decode_on=worker``.

Only JPEG files are decoded so: InterHand2.6M's images are JPEG, RHD's and STB's PNG, and a data module of PNG images
refuses ``decode_on=device`` at construction (:func:`check_decode_on`). On the CPU torchvision's decoder and OpenCV's
(both libjpeg-turbo) give the same pixels, bit for bit, on the real InterHand2.6M samples in ``tests/fixtures``
(``tests/test_device_warp.py``). nvJPEG does not: torchvision calls it with its default flags, which upsample the
colour planes of a 4:2:0 JPEG (InterHand2.6M's, and most cameras') by repeating each chroma sample, where libjpeg-turbo
interpolates them ("fancy upsampling"); its inverse DCT rounds differently too. Most pixels should agree within a
grey level, but at sharp colour edges one can differ by many: the kind of difference there is between two JPEG
decoders, far below the colour augmentation's ±20 %. The CUDA test bounds the mean difference (one grey level) and the
share of values off by more than two (5 %); it has not run on a GPU yet.
A JPEG whose entropy-coded data is corrupt but which ends with an end-of-image marker is not found by the worker
(finding it needs the decoding): torchvision's CPU decoder then decodes it with a warning on stderr, as OpenCV does
(:func:`~internet_plus.data.images.read_image` refuses it only when its last pixel is libjpeg's grey).

``torchvision.io.decode_jpeg`` is deprecated since torchvision 0.29 in favour of TorchCodec; its deprecation warning is
silenced around the call here, and the decoder still works in the pinned range.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from os import PathLike

import torch
import torch.nn.functional as F

from internet_plus.data.images import read_jpeg_bytes

__all__ = [
    "DECODE_ON",
    "SOURCE_JPEG",
    "EncodedJpeg",
    "JpegBatch",
    "check_decode_on",
    "decode_jpegs",
    "read_jpeg",
]

#: Where the images are decoded: in the loader ``worker`` (OpenCV) or on the batch's ``device`` (JPEG only).
DECODE_ON = ("worker", "device")
#: The sample key of the undecoded JPEG bytes (``uint8``, 1-D) with ``decode_on=device``.
SOURCE_JPEG = "source_jpeg"


def check_decode_on(value: str, warp_on: str, jpeg_images: bool = True, where: str = "this data set") -> str:
    """``value`` if it is one of :data:`DECODE_ON` and, for ``"device"``, ``warp_on`` is ``"device"`` and the
    data set's images are JPEG (``jpeg_images``).

    Raises:
        ValueError: naming ``data.decode_on`` (and ``data.warp_on``, or the data set ``where``) and what is wrong.
    """
    if value not in DECODE_ON:
        raise ValueError(f"data.decode_on={value!r} is not a valid value; use one of {list(DECODE_ON)}")
    if value == "device" and warp_on != "device":
        raise ValueError(
            f"data.decode_on=device needs data.warp_on=device (got data.warp_on={warp_on!r}): the decoded images are "
            "warped on the device; set both, or data.decode_on=worker"
        )
    if value == "device" and not jpeg_images:
        raise ValueError(
            f"data.decode_on=device decodes JPEG images only, and {where} reads PNG images; use data.decode_on=worker "
            "(data.warp_on=device still moves the warp to the device)"
        )
    return str(value)


class EncodedJpeg:
    """A JPEG file's bytes and its image size, in place of the decoded image in the sample builders.

    ``shape`` is the decoded image's, ``(height, width, 3)``: the crop geometry reads the width from it.
    """

    __slots__ = ("data", "height", "width")

    def __init__(self, data: bytes, height: int, width: int) -> None:
        self.data, self.height, self.width = data, int(height), int(width)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.height, self.width, 3

    def tensor(self) -> torch.Tensor:
        """The bytes as a 1-D ``uint8`` tensor (a copy)."""
        return torch.frombuffer(bytearray(self.data), dtype=torch.uint8)


def read_jpeg(path: str | PathLike[str]) -> EncodedJpeg:
    """``path``'s bytes and header size (:func:`~internet_plus.data.images.read_jpeg_bytes`: its checks and errors)."""
    return EncodedJpeg(*read_jpeg_bytes(path))


class JpegBatch:
    """A batch's JPEG bytes: one 1-D ``uint8`` CPU tensor per sample.

    Deliberately neither a sequence nor a tensor (and without a ``to`` method): Lightning's batch transfer leaves it
    on the CPU, where ``torchvision.io.decode_jpeg`` reads its input, whatever device it decodes on.
    """

    __slots__ = ("tensors",)

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __repr__(self) -> str:
        return f"JpegBatch({len(self.tensors)} JPEGs, {sum(int(t.numel()) for t in self.tensors)} bytes)"


def _jpeg_list(jpegs: JpegBatch | Sequence[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
    """The 1-D CPU tensors of ``jpegs``: a :class:`JpegBatch`, a sequence of tensors, or a B×N tensor (B JPEGs of N
    bytes each: one sample with a batch axis added)."""
    items = jpegs.tensors if isinstance(jpegs, JpegBatch) else list(jpegs)
    return [t.detach().reshape(-1).to(device="cpu", dtype=torch.uint8) for t in items]


def decode_jpegs(jpegs: JpegBatch | Sequence[torch.Tensor] | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """The JPEGs decoded to RGB on ``device`` (one batched call), as a B×3×H×W ``uint8`` tensor; images of different
    sizes zero-padded at the bottom and right (as :func:`~internet_plus.data.device_warp.collate_device_samples` pads
    decoded originals: the warp is unchanged)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = _jpeg_list(jpegs)
    if not data:
        raise ValueError("no JPEG to decode: the batch is empty")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*image decoding and encoding capabilities of TorchVision.*")
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=torch.device(device))
    height = max(int(image.shape[-2]) for image in images)
    width = max(int(image.shape[-1]) for image in images)
    return torch.stack([F.pad(image, (0, width - image.shape[-1], 0, height - image.shape[-2])) for image in images])
