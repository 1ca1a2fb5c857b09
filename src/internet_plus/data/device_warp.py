"""InterNet's crop warp and colour augmentation (``docs/reference/internet.md`` §6.1) batched on the batch's device.

With ``data.warp_on=device`` a loader worker only decodes the image and computes the sample's geometry: the sample
carries the decoded original image (:data:`SOURCE_IMAGE`, ``uint8`` 3×H×W), the crop affine (:data:`WARP_TRANS`,
2×3 ``float32``, exactly :func:`~internet_plus.data.transforms.crop_affine`'s ``trans``) and the colour factors
(:data:`WARP_COLOR`, 3 ``float32``; 1, 1, 1 for evaluation) instead of the warped ``image``. Every other key is the
worker path's, bit for bit, because the targets depend on ``trans`` only. After the batch reaches its device,
:func:`warp_device_batch` (called by the data module's ``on_after_batch_transfer``) replaces those three keys by the
``image`` the worker path would have made: :func:`warp_batch` does the worker's three steps in its order, warp, colour
with clipping to [0, 255], scale to [0, 1].

The warp is ``cv2.warpAffine(image, trans, (S, S), INTER_LINEAR, BORDER_CONSTANT 0)``
(:func:`~internet_plus.data.transforms.warp_image`) written as ``grid_sample``: OpenCV samples output pixel (x, y) at
the source point ``trans⁻¹ · (x, y, 1)``, pixel centres at integer coordinates; ``grid_sample`` with
``align_corners=False`` reads normalised coordinate g of a W-pixel axis at pixel ``((g + 1)·W − 1) / 2``. So the
sampling affine in normalised coordinates is ``N_in · trans⁻¹ · N_out⁻¹`` with ``N_in(x) = (2x + 1)/W − 1`` and
``N_out⁻¹(u) = (S·u + S − 1)/2``, given to ``affine_grid``; bilinear interpolation with zeros padding is OpenCV's
bilinear with a black border. The two differ only by OpenCV's fixed-point arithmetic: it rounds the source
coordinates to 1/32 pixel (``INTER_BITS`` = 5), so a pixel differs by at most the local intensity step over 1/32
pixel (``tests/test_device_warp.py`` measures it). All the arithmetic here is float32.

Images of different sizes in one batch are padded with zeros at the bottom and right (:func:`collate_device_samples`):
the affine maps the same pixels, and the padding reads as the black border the warp gives outside the image anyway,
so the result is unchanged.

With ``data.decode_on=device`` (:mod:`internet_plus.data.device_decode`) the worker does not decode either: the sample
carries the JPEG's bytes (:data:`~internet_plus.data.device_decode.SOURCE_JPEG`) instead of :data:`SOURCE_IMAGE`, the
collate keeps them as a :class:`~internet_plus.data.device_decode.JpegBatch`, and :func:`warp_device_batch` decodes
them on the batch's device before the warp.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from internet_plus.data.device_decode import SOURCE_JPEG, EncodedJpeg, JpegBatch, decode_jpegs

__all__ = [
    "SOURCE_IMAGE",
    "WARP_COLOR",
    "WARP_ON",
    "WARP_TRANS",
    "check_warp_on",
    "collate_device_samples",
    "device_fields",
    "sampling_theta",
    "warp_batch",
    "warp_device_batch",
]

#: Where the crop warp and colour augmentation run: in the loader ``worker`` (OpenCV) or on the batch's ``device``.
WARP_ON = ("worker", "device")
#: The sample keys of the device path: the decoded image, the crop affine and the colour factors.
SOURCE_IMAGE, WARP_TRANS, WARP_COLOR = "source_image", "warp_trans", "warp_color"


def check_warp_on(value: str) -> str:
    """``value`` if it is one of :data:`WARP_ON`.

    Raises:
        ValueError: naming ``data.warp_on`` and the valid values.
    """
    if value not in WARP_ON:
        raise ValueError(f"data.warp_on={value!r} is not a valid value; use one of {list(WARP_ON)}")
    return str(value)


def device_fields(
    image: np.ndarray | EncodedJpeg, trans: np.ndarray, color: Sequence[float] | np.ndarray
) -> dict[str, torch.Tensor]:
    """The device path's sample keys: the H×W×3 ``uint8`` image as a 3×H×W view (or, for an undecoded
    :class:`~internet_plus.data.device_decode.EncodedJpeg`, its bytes under ``SOURCE_JPEG``), ``trans`` and ``color``
    in float32.

    Raises:
        ValueError: the image is not H×W×3 ``uint8`` (what the readers decode).
    """
    geometry = {
        WARP_TRANS: torch.from_numpy(np.asarray(trans, dtype=np.float32).reshape(2, 3).copy()),
        WARP_COLOR: torch.from_numpy(np.asarray(color, dtype=np.float32).reshape(3).copy()),
    }
    if isinstance(image, EncodedJpeg):
        return {SOURCE_JPEG: image.tensor(), **geometry}
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"data.warp_on=device needs the decoded H×W×3 uint8 image, got {image.dtype} of shape {image.shape}"
        )
    return {SOURCE_IMAGE: torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), **geometry}


def collate_device_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``default_collate``, with the source images of different sizes zero-padded at the bottom and right to the
    largest height and width of the batch (module docstring: the warp is unchanged). JPEG bytes
    (``decode_on=device``) are kept as a :class:`~internet_plus.data.device_decode.JpegBatch` (their lengths differ)."""
    if samples and SOURCE_JPEG in samples[0]:
        jpegs = JpegBatch([s[SOURCE_JPEG] for s in samples])
        return {
            **default_collate([{k: v for k, v in s.items() if k != SOURCE_JPEG} for s in samples]),
            SOURCE_JPEG: jpegs,
        }
    sizes = {tuple(s[SOURCE_IMAGE].shape[-2:]) for s in samples}
    if len(sizes) > 1:
        height = max(h for h, _ in sizes)
        width = max(w for _, w in sizes)
        samples = [
            {
                **s,
                SOURCE_IMAGE: F.pad(
                    s[SOURCE_IMAGE], (0, width - s[SOURCE_IMAGE].shape[-1], 0, height - s[SOURCE_IMAGE].shape[-2])
                ),
            }
            for s in samples
        ]
    return default_collate(list(samples))


def sampling_theta(trans: torch.Tensor, width: int, height: int, size: int) -> torch.Tensor:
    """``affine_grid``'s B×2×3 ``theta`` (float32): from the crop's normalised coordinates to the image's.

    The composition, in float64 on ``trans``' device: crop [-1, 1] → crop pixels (centre of pixel i at i) → image
    pixels (the inverse of ``trans``, image pixels → crop pixels) → image [-1, 1] (``align_corners=False``). The
    inverse of each 2×3 affine is written out (``[[a, b, c], [d, e, f]]`` → ``[[e, -b, bf - ce], [-d, a, cd - af]] /
    (ae - bd)``) and the two normalisations are folded in with Python numbers, so that nothing waits for the device: no
    constant is copied to it and no inverse checks its result on the host (``torch.linalg.inv`` would)."""
    t = trans.to(torch.float64)
    a, b, c = t[:, 0, 0], t[:, 0, 1], t[:, 0, 2]
    d, e, f = t[:, 1, 0], t[:, 1, 1], t[:, 1, 2]
    det = a * e - b * d
    inverse = ((e, -b, b * f - c * e), (-d, a, c * d - a * f))  # image pixels from crop pixels, times det
    half, centre = size / 2.0, (size - 1) / 2.0  # crop pixels = half · normalised + centre
    rows = []
    for (p, q, r), extent in zip(inverse, (width, height), strict=True):
        scale = 2.0 / extent  # image normalised = scale · pixels + scale / 2 - 1
        rows.append(
            torch.stack(
                [
                    scale * half * p / det,
                    scale * half * q / det,
                    scale * (centre * (p + q) + r) / det + (scale / 2.0 - 1.0),
                ],
                dim=-1,
            )
        )
    return torch.stack(rows, dim=1).to(torch.float32)


def warp_batch(images: torch.Tensor, trans: torch.Tensor, colors: torch.Tensor, input_size: int) -> torch.Tensor:
    """The worker path's network input from the original images (module docstring), on ``images``' device.

    Args:
        images: B×3×H×W ``uint8`` (or any real type), values in [0, 255].
        trans: B×2×3 affines from image pixels to crop pixels (``crop_affine``'s ``trans``).
        colors: B×3 per-channel colour factors.
        input_size: S, the side of the square crop.

    Returns:
        B×3×S×S float32 in [0, 1]: ``clip(warp(images) · colors, 0, 255) / 255``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be B×3×H×W, got shape {tuple(images.shape)}")
    batch, _, height, width = images.shape
    if tuple(trans.shape) != (batch, 2, 3) or tuple(colors.shape) != (batch, 3):
        raise ValueError(
            f"for {batch} images, trans must be {batch}×2×3 and colors {batch}×3; got {tuple(trans.shape)} and "
            f"{tuple(colors.shape)}"
        )
    size = int(input_size)
    theta = sampling_theta(trans, width, height, size).to(images.device)
    grid = F.affine_grid(theta, [batch, 3, size, size], align_corners=False)
    crops = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    crops = crops * colors.to(device=images.device, dtype=torch.float32)[:, :, None, None]
    return crops.clamp_(0.0, 255.0).mul_(float(np.float32(1.0 / 255.0)))


def warp_device_batch(batch: Any, input_size: int) -> Any:
    """``batch`` with :data:`SOURCE_IMAGE` (or the JPEG bytes, ``SOURCE_JPEG``, first decoded on the device of
    :data:`WARP_TRANS` by :func:`~internet_plus.data.device_decode.decode_jpegs`), :data:`WARP_TRANS` and
    :data:`WARP_COLOR` replaced by the warped ``image`` (:func:`warp_batch`); anything else (a worker-path batch, the
    model summary's example input tensor) is returned as is."""
    if not isinstance(batch, Mapping) or (SOURCE_IMAGE not in batch and SOURCE_JPEG not in batch):
        return batch
    out = {k: v for k, v in batch.items() if k not in (SOURCE_IMAGE, SOURCE_JPEG, WARP_TRANS, WARP_COLOR)}
    jpegs = batch.get(SOURCE_JPEG)
    images = batch[SOURCE_IMAGE] if jpegs is None else decode_jpegs(jpegs, batch[WARP_TRANS].device)
    out["image"] = warp_batch(images, batch[WARP_TRANS], batch[WARP_COLOR], input_size)
    return out
