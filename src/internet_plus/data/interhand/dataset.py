"""InterHand2.6M samples as the sample dict of ``docs/architecture.md``: :class:`InterHandDataset`.

Protocol: InterNet's InterHand2.6M loader (``docs/reference/internet.md`` §6.2, targets §4) in its 'gt' mode
(ground-truth box and absolute root depth, §5.2), on the rows of the split's index
(:class:`~internet_plus.data.interhand.index.InterHandIndex`):

- **validity** (§6.2, ``docs/reference/datasets.md`` §C.6): ``joint_annotated`` = data.json ``joint_valid``, each hand
  multiplied by its own wrist's validity; ``joint_valid`` = annotated × inside the crop after augmentation (§6.1);
- **hand type**: data.json ``hand_type`` → right [1, 0], left [0, 1], interacting [1, 1]; ``hand_type_valid`` from
  data.json (§6.2);
- **crop**: ``process_bbox`` of the annotation box (square, ×1.25, not clipped; §6.1). An interacting sample has one
  box around both hands, so one crop shows both (§6.2);
- **relative root depth**: z(left wrist) − z(right wrist) in mm, recomputed after a flip; ``root_valid`` needs an
  interacting sample with both wrists valid after augmentation (the codec adds the ±200 mm range test; §4.2, §7.8);
- **absolute root depths** [right, left]: the ground-truth wrist depths; in InterNet's 'rootnet' mode (§5.2; the
  ``rootnet`` argument, :mod:`internet_plus.data.rootnet`) RootNet's ``abs_depth`` [right, left] of the sample's
  data.json annotation id, with RootNet's box used as is instead of ``process_bbox`` of the annotation box.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from internet_plus.data.base_dataset import HandPoseDataset
from internet_plus.data.device_decode import EncodedJpeg
from internet_plus.data.interhand.index import InterHandIndex, InterHandRecord, select_rows
from internet_plus.data.rootnet import RootNetSamples
from internet_plus.data.safe_paths import safe_join
from internet_plus.data.transforms import (
    AugmentationConfig,
    build_sample,
    process_bbox,
)
from internet_plus.joints import ROOTS

__all__ = ["InterHandDataset"]


class InterHandDataset(HandPoseDataset):
    """InterHand2.6M samples as the sample dict of ``docs/architecture.md`` (module docstring for the rules).

    Args:
        index: the split's :class:`InterHandIndex`.
        images_dir: ``images/<split>``.
        rows: index rows to use, in this order (default: :func:`select_rows` with ``sample_kind="all"``).
        input_size: side S of the square network input.
        augment: draw InterNet's augmentation (§6.1) per sample; otherwise the identity crop.
        augmentation: an :class:`AugmentationConfig` or a mapping of its fields (default: InterNet's values).
        seed: with the epoch and the annotation id, seeds each sample's augmentation.
        on_bad_image: ``"raise"`` (an unreadable image stops with its file name) or ``"skip"`` (the sample is replaced
            by the next readable one, the file name is logged and :attr:`bad_images` counts it, across loader workers;
            :class:`~internet_plus.data.bad_images.BadImagePolicy`).
        rootnet: RootNet's entries of the rows, in their order (``RootNetOutput.select(annot_ids)``): each sample's
            crop box (as is) and absolute root depths [right, left] come from them (InterNet's 'rootnet' mode,
            §5.2). ``None``: the ground-truth box and depths.
        warp_on: ``"worker"`` or ``"device"`` (:mod:`internet_plus.data.device_warp`).
        decode_on: ``"worker"`` or ``"device"`` (the JPEGs decoded on the batch's device; needs ``warp_on="device"``,
            :mod:`internet_plus.data.device_decode`).

    ``dataset[i]`` gives sample ``i`` at the epoch of :meth:`set_epoch`; ``dataset[(epoch, i)]`` at that epoch. The
    object holds the index folder and the row numbers only (and, in 'rootnet' mode, six numbers per row), so it
    pickles small (for spawned workers).
    """

    def __init__(
        self,
        index: InterHandIndex,
        images_dir: str | PathLike[str],
        rows: Sequence[int] | np.ndarray | None = None,
        input_size: int = 256,
        augment: bool = False,
        augmentation: AugmentationConfig | Mapping[str, Any] | None = None,
        seed: int = 0,
        on_bad_image: str = "raise",
        rootnet: RootNetSamples | None = None,
        warp_on: str = "worker",
        decode_on: str = "worker",
    ) -> None:
        super().__init__()
        self._init_bad_image_policy(on_bad_image, name="InterHand2.6M", where=f"InterHand2.6M {Path(images_dir).name}")
        self.index = index
        self.images_dir = Path(images_dir)
        rows_arr = select_rows(index) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows_arr) and (rows_arr.min() < 0 or rows_arr.max() >= len(index)):
            raise IndexError(f"rows outside the {len(index)} annotations of the index {index.directory}")
        self.rows = rows_arr
        self._init_sampling(
            input_size=input_size,
            augment=augment,
            augmentation=augmentation,
            seed=seed,
            warp_on=warp_on,
            decode_on=decode_on,
        )
        self._init_rootnet(rootnet)

    def __len__(self) -> int:
        return len(self.rows)

    def _image_path(self, index: int) -> Path:
        return safe_join(self.images_dir, self.record(index).file_name, source="data.json")

    @property
    def annot_ids(self) -> np.ndarray:
        """data.json annotation ids of this dataset's samples, in order."""
        return np.asarray(self.index.array("annot_id"))[self.rows]

    def record(self, index: int) -> InterHandRecord:
        """The annotation of sample ``index``."""
        return self.index.record(int(self.rows[index]))

    def _augmentation_key(self, index: int) -> int:
        return int(self.index.array("annot_id")[int(self.rows[index])])

    def _sample(self, index: int, image: np.ndarray | EncodedJpeg, epoch: int) -> dict[str, torch.Tensor]:
        record = self.record(index)
        right, left = ROOTS
        rootnet = self.rootnet_entry(index)
        if rootnet is None:
            bbox = process_bbox(record.bbox)
            abs_root_depth = np.array([record.joints_cam[right, 2], record.joints_cam[left, 2]])
        else:
            bbox, abs_root_depth = rootnet
        return build_sample(
            image=image,
            joints_uv=record.joints_uv,
            joints_cam=record.joints_cam,
            joint_annotated=record.joint_annotated,
            hand_type=record.hand_type_vector,
            hand_type_valid=record.hand_type_valid,
            interacting=record.interacting,
            focal=record.focal,
            princpt=record.princpt,
            abs_root_depth=abs_root_depth,
            bbox_xywh=bbox,
            params=self.augmentation_params(index, epoch),
            input_size=self.input_size,
            index=index,
            warp_on=self.warp_on,
        )

    def __repr__(self) -> str:
        return (
            f"InterHandDataset(index={str(self.index.directory)!r}, samples={len(self)}, "
            f"input_size={self.input_size}, augment={self.augment})"
        )
