"""What the torch ``Dataset`` of every real data set (RHD, STB, InterHand2.6M) shares: :class:`HandPoseDataset`.

A subclass reads its records and builds one sample (:meth:`HandPoseDataset._sample`); the base class selects the records
by position, keeps the epoch (:meth:`~HandPoseDataset.set_epoch`), draws each sample's augmentation from (seed, epoch,
sample key) (:meth:`~HandPoseDataset.augmentation_params`, :func:`sample_rng`), reads the image
(:func:`~internet_plus.data.images.read_rgb`; with ``decode_on="device"`` only the JPEG's bytes and header size,
:func:`~internet_plus.data.device_decode.read_jpeg`) with the ``data.on_bad_image`` policy
(:class:`~internet_plus.data.bad_images.BadImagePolicy`) and accepts ``dataset[i]`` or ``dataset[(epoch, i)]``. An
evaluation dataset may carry RootNet's box and absolute root depths of each sample
(:class:`~internet_plus.data.rootnet.RootNetSamples`, InterNet's 'rootnet' mode, ``docs/reference/internet.md`` §5.2),
which the subclass uses instead of the ground-truth box and depth (:meth:`HandPoseDataset.rootnet_entry`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from internet_plus.data.bad_images import BadImagePolicy
from internet_plus.data.device_decode import EncodedJpeg, check_decode_on, read_jpeg
from internet_plus.data.device_warp import check_warp_on
from internet_plus.data.images import read_rgb
from internet_plus.data.rootnet import RootNetSamples
from internet_plus.data.transforms import AugmentationConfig, AugParams, sample_augmentation

__all__ = ["HandPoseDataset", "sample_rng"]

_R = TypeVar("_R")


def sample_rng(seed: int, epoch: int, key: int) -> np.random.Generator:
    """The augmentation generator of one sample in one epoch: a function of (seed, epoch, key) only.

    So a sample's augmentation does not depend on the worker that loads it or on the order of loading.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, int(epoch), int(key)]))


class HandPoseDataset(BadImagePolicy, Dataset):
    """Base of the hand-pose datasets: records by position, epoch, per-sample augmentation, bad-image policy.

    A subclass calls :meth:`_init_bad_image_policy` and :meth:`_init_sampling` in ``__init__``, sets ``records``
    (e.g. with :meth:`_select_records`) or overrides ``__len__`` / :meth:`_image_path`, and implements
    :meth:`_augmentation_key` (the key seeding a sample's augmentation) and :meth:`_sample` (one sample dict).
    """

    records: list[Any]
    input_size: int
    augment: bool
    augmentation: AugmentationConfig
    seed: int
    warp_on: str = "worker"
    decode_on: str = "worker"
    _epoch: int
    rootnet: RootNetSamples | None = None

    def _init_sampling(
        self,
        *,
        input_size: int,
        augment: bool,
        augmentation: AugmentationConfig | Mapping[str, Any] | None,
        seed: int,
        warp_on: str = "worker",
        decode_on: str = "worker",
    ) -> None:
        """The input size, the augmentation settings, where the warp runs (``warp_on``,
        :mod:`internet_plus.data.device_warp`) and where the images are decoded (``decode_on``, JPEG only,
        :mod:`internet_plus.data.device_decode`); the epoch starts at 0."""
        self.input_size = int(input_size)
        self.augment = bool(augment)
        self.augmentation = (
            augmentation if isinstance(augmentation, AugmentationConfig) else AugmentationConfig.from_dict(augmentation)
        )
        self.seed = int(seed)
        self.warp_on = check_warp_on(warp_on)
        self.decode_on = check_decode_on(decode_on, self.warp_on)
        self._epoch = 0

    def _init_rootnet(self, rootnet: RootNetSamples | None) -> None:
        """Keep RootNet's entries of this dataset's samples (in its order; ``None``: ground truth).

        Raises:
            ValueError: ``rootnet`` does not hold one entry per sample.
        """
        if rootnet is not None and len(rootnet) != len(self):
            raise ValueError(f"RootNet entries for {len(rootnet)} samples given to a dataset of {len(self)} samples")
        self.rootnet = rootnet

    def rootnet_entry(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """RootNet's ``(box [x, y, w, h], abs_depth [right, left])`` of sample ``index``, or ``None`` (ground truth)."""
        if self.rootnet is None:
            return None
        return self.rootnet.bbox[index], self.rootnet.abs_depth[index]

    def single_hand_rootnet(self, index: int) -> dict[str, Any]:
        """The ``bbox_xywh`` / ``abs_root_depth`` arguments of ``build_single_hand_sample`` for sample ``index`` of a
        one-hand data set (RHD, STB): RootNet's box and its one depth, or nothing (the ground truth)."""
        entry = self.rootnet_entry(index)
        return {} if entry is None else {"bbox_xywh": entry[0], "abs_root_depth": float(entry[1][0])}

    @staticmethod
    def _select_records(all_records: list[_R], indices: Sequence[int] | None, what: str) -> list[_R]:
        """``all_records`` at ``indices`` (all if ``None``); ``IndexError`` naming ``what`` (e.g. "samples of RHD
        training") for positions out of range."""
        if indices is None:
            return all_records
        bad = [i for i in indices if not 0 <= int(i) < len(all_records)]
        if bad:
            raise IndexError(f"indices {bad[:5]} are outside the {len(all_records)} {what}")
        return [all_records[int(i)] for i in indices]

    def __len__(self) -> int:
        return len(self.records)

    def _image_path(self, index: int) -> str | PathLike[str]:
        return self.records[index].image_path

    def _read_image(self, index: int) -> tuple[int, np.ndarray | EncodedJpeg]:
        """``(index, image)``, or with ``skip`` the first readable sample from ``index`` on (counting the skips); with
        ``decode_on="device"`` the image is the undecoded JPEG."""
        read = read_jpeg if self.decode_on == "device" else read_rgb
        return self._read_with_policy(index, lambda i: read(self._image_path(i)))

    def set_epoch(self, epoch: int) -> None:
        """The epoch that seeds the augmentation of ``dataset[i]`` (``dataset[(epoch, i)]`` overrides it)."""
        self._epoch = int(epoch)

    def _augmentation_key(self, index: int) -> int:
        """The key of sample ``index`` that, with the seed and the epoch, seeds its augmentation."""
        raise NotImplementedError

    def augmentation_params(self, index: int, epoch: int | None = None) -> AugParams:
        """The augmentation sample ``index`` gets at ``epoch`` (identity when ``augment`` is off)."""
        if not self.augment:
            return AugParams.identity()
        epoch = self._epoch if epoch is None else epoch
        return sample_augmentation(sample_rng(self.seed, epoch, self._augmentation_key(index)), self.augmentation)

    def _sample(self, index: int, image: np.ndarray | EncodedJpeg, epoch: int) -> dict[str, torch.Tensor]:
        """The sample dict of sample ``index`` with its ``image``, augmented as at ``epoch``."""
        raise NotImplementedError

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        if isinstance(item, tuple):
            epoch, index = int(item[0]), int(item[1])
        else:
            epoch, index = self._epoch, int(item)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index, image = self._read_image(index)
        try:
            return self._sample(index, image, epoch)
        except ValueError as err:  # an annotation that cannot make a crop (e.g. keypoints at 1e7 px): name the sample
            raise ValueError(f"{self._image_path(index)} (sample {index} of this split): {err}") from err
