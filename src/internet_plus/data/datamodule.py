"""What every LightningDataModule shares: :class:`HandPoseDataModule`, the loaders around a data set.

Each data set keeps its subclass next to its ``Dataset`` (:mod:`internet_plus.data.rhd`,
:mod:`internet_plus.data.stb`, :mod:`internet_plus.data.interhand`, :mod:`internet_plus.data.synthetic.datamodule`);
``hydra.utils.instantiate(cfg.data)`` builds one.

Every constructor argument is a plain value (they come from the ``dataset`` config group). Common behaviour
(:class:`HandPoseDataModule`):

- ``batch_size`` is the **global** batch: ``setup`` divides it by ``trainer.world_size`` (InterNet: 16 per GPU,
  ``docs/reference/internet.md`` §1) and refuses a batch that does not divide;
- validation (best-checkpoint selection) uses a deterministic hold-out of ``val_fraction`` of the *training* split,
  the same samples for every run seed; test is the data set's evaluation split;
- training batches are shuffled per epoch and augmented per sample with a generator seeded by (seed, epoch, sample),
  so a run is reproducible whatever the number of workers (the sampler hands the epoch to the workers, which matters
  with ``persistent_workers``); the last incomplete training batch is dropped (batch norm needs > 1 sample);
- evaluation loaders neither shuffle nor pad: under DDP every sample is seen by exactly one process, once;
- the evaluation split is checked at setup, in the fit stage too (before the first training step): it must exist and
  hold samples, and every evaluation sample must be scorable (``data.on_bad_sample``,
  :mod:`internet_plus.data.sample_checks`);
- ``warp_on="device"`` moves the crop warp and colour augmentation from the loader workers to the batch's device
  (:mod:`internet_plus.data.device_warp`): the loaders collate the original images (zero-padded to the batch's
  largest size) and :meth:`HandPoseDataModule.on_after_batch_transfer` warps them after the transfer;
  ``decode_on="device"`` (with ``warp_on="device"``, JPEG data sets only: :attr:`HandPoseDataModule.jpeg_images`)
  also moves the decoding there (:mod:`internet_plus.data.device_decode`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as L
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from internet_plus.data.bad_images import BadImagePolicy, check_bad_image_policy
from internet_plus.data.device_decode import check_decode_on
from internet_plus.data.device_warp import check_warp_on, collate_device_samples, warp_device_batch
from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.rootnet import RootNetSamples
from internet_plus.data.sample_checks import (
    apply_bad_sample_policy,
    apply_training_crop_policy,
    check_bad_sample_policy,
)
from internet_plus.data.transforms import AugmentationConfig

log = logging.getLogger(__name__)

__all__ = [
    "EpochSampler",
    "HandPoseDataModule",
    "holdout_split",
    "local_processes_from_env",
    "resolve_num_workers",
    "usable_cores",
]

#: Batches each loader worker prepares ahead (torch's default, explicit): enough to hide the per-batch jitter of
#: decoding without holding many batches of 256² float images in shared memory.
PREFETCH_FACTOR = 2

#: Seed of the validation hold-out permutation: fixed, so runs with different seeds validate on the same samples.
HOLDOUT_SEED = 20_201


#: Most loader workers ``"auto"`` gives one process: one worker core makes >= 300 augmented samples/s (the
#: the performance target, measured by :mod:`internet_plus.tools.pipeline_bench`), so 8 feed any single GPU.
MAX_AUTO_WORKERS = 8


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask (taskset, cgroups cpusets, Slurm), else the CPU count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def local_processes_from_env() -> int:
    """Training processes on this machine as the launcher says (``LOCAL_WORLD_SIZE``, set by torchrun), else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def resolve_num_workers(num_workers: int | str, local_processes: int | None = None) -> int:
    """DataLoader workers per process: an int >= 0 as is, or ``"auto"``.

    ``"auto"`` scales with the cores this process may use (performance target: "DataLoader defaults that scale
    with the machine's cores"): with C = :func:`usable_cores` (the CPU affinity, not the machine's total) and
    P = ``local_processes`` (the training processes sharing this machine: the devices per node under DDP;
    ``LOCAL_WORLD_SIZE`` when not given, else 1), each process gets its share c = C // P; one of them stays with the
    main (training) process when c > 2; the result is clamped to [1, :data:`MAX_AUTO_WORKERS`] = [1, 8]:

        workers = clamp(c − 1 if c > 2 else c, 1, 8)

    e.g. 2 cores → 2, 4 → 3, 8 → 7, 32 → 8; 16 cores and 4 GPUs → 3 per process; 8 cores and 8 GPUs → 1.

    Raises:
        ValueError: neither an int >= 0 nor ``"auto"``.
    """
    if isinstance(num_workers, str):
        if num_workers.strip().lower() != "auto":
            raise ValueError(f"data.num_workers={num_workers!r}: use an int >= 0 or 'auto'")
        processes = local_processes_from_env() if local_processes is None else max(1, int(local_processes))
        share = usable_cores() // processes
        workers = share - 1 if share > 2 else share
        return max(1, min(MAX_AUTO_WORKERS, workers))
    if isinstance(num_workers, bool) or int(num_workers) != num_workers or num_workers < 0:
        raise ValueError(f"data.num_workers={num_workers!r}: use an int >= 0 or 'auto'")
    return int(num_workers)


def holdout_split(num_samples: int, fraction: float, seed: int = HOLDOUT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(num_samples)`` into sorted (train, val) positions, ``round(fraction · n)`` (at least 1 when
    ``fraction > 0``) held out at random under ``seed``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"data.val_fraction={fraction} must be in [0, 1)")
    n_val = int(round(fraction * num_samples))
    if fraction > 0 and n_val == 0:
        n_val = 1
    if num_samples - n_val < 1:
        raise ValueError(
            f"cannot hold out {n_val} of {num_samples} training samples for validation and still train; "
            "lower data.val_fraction or use more samples"
        )
    perm = np.random.default_rng(seed).permutation(num_samples)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _limit(positions: np.ndarray, limit: int | None, what: str) -> np.ndarray:
    if limit is None:
        return positions
    if int(limit) < 1:
        raise ValueError(f"data.{what}={limit} must be a positive int or null")
    return positions[: int(limit)]


class EpochSampler(DistributedSampler):
    """A ``DistributedSampler`` (shuffled by seed + epoch, padded to equal shards) that yields ``(epoch, index)``.

    The dataset receives the epoch with every index, so its per-sample augmentation follows the epoch even in
    persistent workers, whose copy of the dataset never sees ``set_epoch``. Lightning calls :meth:`set_epoch` at
    the start of every training epoch. ``num_replicas``/``rank`` are given explicitly (1/0 without DDP), so no
    process group is needed.
    """

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        return ((epoch, int(i)) for i in super().__iter__())


def _worker_init(_: int) -> None:
    """One OpenCV thread per loader worker (the workers already give the parallelism)."""
    import cv2

    cv2.setNumThreads(1)


class HandPoseDataModule(L.LightningDataModule):
    """The loaders shared by every data set; subclasses say how to read their splits.

    Args:
        batch_size: global batch size, divided by the number of processes in ``setup``.
        num_workers: DataLoader workers per process, or ``"auto"``: the process's share of the usable cores (CPU
            affinity divided by the training processes on this machine, one core left to the main process when the
            share is above 2), between 1 and 8 (:func:`resolve_num_workers`). Resolved at construction, and again
            in ``setup`` with the trainer's devices per node under DDP.
        pin_memory: pin batches (only where CUDA is available).
        persistent_workers: keep workers between epochs (only with ``num_workers > 0``).

    Each worker prefetches 2 batches (``prefetch_factor``, set only with workers) and runs one OpenCV thread.
        input_size: side S of the square network input.
        augmentation: :class:`~internet_plus.data.transforms.AugmentationConfig` fields (InterNet's by default).
        val_fraction: share of the training split held out for validation (0 disables validation).
        monitor_eval_split: also score the evaluation split after every training epoch, logged as ``monitor/*``
            (the paper's convergence curves, Figure 7); never used to select a checkpoint (:attr:`val_prefixes`).
        seed: seeds the shuffling and the per-sample augmentation.
        limit_train_samples: use only this many training samples (quick runs).
        limit_eval_samples: use only this many validation and this many test samples (quick runs).
        on_bad_image: an image that cannot be read during training or testing: ``"raise"`` stops with its file name,
            ``"skip"`` replaces the sample by the next readable one and reports the count at the end of fit / test
            (subclasses pass it to their datasets, which use :class:`~internet_plus.data.bad_images.BadImagePolicy`).
        on_bad_sample: an evaluation sample that cannot be scored, or a training-split sample whose crop cannot show
            the hand (:mod:`internet_plus.data.sample_checks`), found at setup: ``"raise"`` stops before training,
            naming the file and the sample; ``"skip"`` leaves it out and logs the count, which for the evaluation
            split is also reported as ``test/skipped_samples`` (:attr:`skipped_test_samples`).
        warp_on: where the crop warp and colour augmentation run: ``"worker"`` (OpenCV in the loader workers) or
            ``"device"`` (batched on the batch's device after the transfer, :mod:`internet_plus.data.device_warp`;
            the same crops within a fraction of a grey level, the same targets).
        decode_on: where the images are decoded: ``"worker"`` (OpenCV in the loader workers) or ``"device"`` (the
            JPEG bytes decoded on the batch's device after the transfer, then warped; needs ``warp_on="device"`` and a
            data set of JPEG images, :attr:`jpeg_images`; :mod:`internet_plus.data.device_decode`).

    Subclasses implement :meth:`_split_size`, :meth:`_make_dataset` and :meth:`_bad_samples`, and name their
    evaluation protocol in :attr:`protocol`.
    """

    #: The evaluation protocol the data set is scored with: ``"rhd"`` (the root-relative EPE family: ``epe_mm``,
    #: ``epe_median_mm``, ``pck_curve``, ``auc_20_50``, ``handedness_acc``; RHD, STB, synthetic) or ``"interhand"``
    #: (also InterNet's ``mpjpe_*_mm`` and ``mrrpe_mm``). The LightningModule reads it in ``setup``.
    protocol: str = "rhd"
    #: The data set's images are JPEG files, which ``decode_on="device"`` can decode on the device (InterHand2.6M);
    #: PNG data sets (RHD, STB) refuse it.
    jpeg_images: bool = False

    def __init__(
        self,
        batch_size: int = 16,
        num_workers: int | str = "auto",
        pin_memory: bool = True,
        persistent_workers: bool = True,
        input_size: int = 256,
        augmentation: Mapping[str, Any] | None = None,
        val_fraction: float = 0.05,
        monitor_eval_split: bool = False,
        seed: int = 0,
        limit_train_samples: int | None = None,
        limit_eval_samples: int | None = None,
        on_bad_image: str = "raise",
        on_bad_sample: str = "raise",
        warp_on: str = "worker",
        decode_on: str = "worker",
    ) -> None:
        super().__init__()
        self.warp_on = check_warp_on(warp_on)
        self.decode_on = check_decode_on(decode_on, self.warp_on, self.jpeg_images, f"{type(self).__name__}")
        self.on_bad_image = check_bad_image_policy(on_bad_image)
        self.on_bad_sample = check_bad_sample_policy(on_bad_sample)
        if int(batch_size) < 1:
            raise ValueError(f"data.batch_size={batch_size} must be >= 1")
        if int(input_size) < 8:
            raise ValueError(f"data.input_size={input_size} is too small")
        self.batch_size = int(batch_size)
        self._num_workers_setting = num_workers
        self.num_workers = resolve_num_workers(num_workers)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.input_size = int(input_size)
        self.augmentation = AugmentationConfig.from_dict(augmentation)
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"data.val_fraction={val_fraction} must be in [0, 1)")
        self.val_fraction = float(val_fraction)
        self.monitor_eval_split = bool(monitor_eval_split)
        self.seed = int(seed)
        self.limit_train_samples = limit_train_samples
        self.limit_eval_samples = limit_eval_samples
        self.per_device_batch_size = self.batch_size
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self._test_positions: np.ndarray | None = None
        #: The run tests after fitting (``test=true``, train.py): the fit stage then checks the test split first.
        self.tests_after_fit = True
        #: Evaluation samples left out by ``on_bad_sample="skip"`` (``None`` with ``"raise"`` or before setup).
        self.skipped_test_samples: int | None = None
        self._world_size = 1
        self._rank = 0

    # ------------------------------------------------------------------------------------------ subclass hooks

    def _split_size(self, split: str) -> int:
        """Number of samples in ``split`` (``"train"``: the training split, ``"test"``: the evaluation split)."""
        raise NotImplementedError

    def _make_dataset(self, split: str, positions: Sequence[int], augment: bool) -> Dataset:
        """The dataset of ``split`` restricted to ``positions`` (augmented or not)."""
        raise NotImplementedError

    def _bad_samples(self, split: str) -> dict[int, str]:
        """Position → what is wrong (naming the file and the sample) for each sample of ``split`` that cannot be
        scored (:mod:`internet_plus.data.sample_checks`); subclasses check their own annotations."""
        return {}

    def _uncroppable_training_samples(self) -> dict[int, str]:
        """Position → what is wrong (naming the file and the sample) for each sample of the training split whose
        crop cannot show the hand (:func:`~internet_plus.data.sample_checks.far_crop_keypoints`); subclasses whose
        boxes come from keypoints check them."""
        return {}

    def rootnet(self) -> RootNetSamples | None:
        """RootNet's entries of every evaluation sample, in the split's order (``data.rootnet_output``); ``None``
        (the ground-truth box and depth) unless the data set reads RootNet's files."""
        return None

    def _split_rootnet(self, split: str, positions: Sequence[int]) -> RootNetSamples | None:
        """RootNet's entries at ``positions`` of the evaluation split; ``None`` for training and validation, which
        never use RootNet."""
        rootnet = self.rootnet() if split == "test" else None
        return None if rootnet is None else rootnet.subset(positions)

    def _split_label(self, split: str) -> str:
        """How the messages name ``split`` (e.g. ``"RHD evaluation"``)."""
        return f"{type(self).__name__} {split}"

    def test_positions(self) -> np.ndarray:
        """The positions of the test split to score, checked once: the split holds samples, and its bad samples
        raise or are left out (``on_bad_sample``; :func:`~internet_plus.data.sample_checks.apply_bad_sample_policy`),
        then ``limit_eval_samples`` applies.

        Raises:
            DatasetLayoutError: an empty split, every sample bad, or (``raise``) a bad sample among those scored.
        """
        if self._test_positions is None:
            if self.limit_eval_samples is not None and int(self.limit_eval_samples) < 1:
                raise ValueError(f"data.limit_eval_samples={self.limit_eval_samples} must be a positive int or null")
            kept, skipped = apply_bad_sample_policy(
                np.arange(self._split_size("test")),
                self._bad_samples("test"),
                self.on_bad_sample,
                self._split_label("test"),
                limit=self.limit_eval_samples,
            )
            self._test_positions = kept
            self.skipped_test_samples = skipped if self.on_bad_sample == "skip" else None
        return self._test_positions

    # ------------------------------------------------------------------------------------------ setup

    def _distributed_context(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def setup(self, stage: str | None = None) -> None:
        """Per-process batch size and the datasets the stage needs (each built once)."""
        self._world_size, self._rank = self._distributed_context()
        if self._world_size > 1:  # "auto" shares the cores among the processes of this machine
            trainer = getattr(self, "trainer", None)
            devices = getattr(trainer, "num_devices", None)
            self.num_workers = resolve_num_workers(
                self._num_workers_setting, local_processes=int(devices) if devices else None
            )
        if self.batch_size % self._world_size:
            raise ValueError(
                f"data.batch_size={self.batch_size} is the global batch size and must be divisible by the number of "
                f"processes ({self._world_size}); use e.g. data.batch_size="
                f"{max(1, self.batch_size // self._world_size) * self._world_size}"
            )
        self.per_device_batch_size = self.batch_size // self._world_size
        if stage in (None, "fit", "validate") and self.train_set is None:
            if self._split_size("train") == 0:  # not holdout_split's message about data.val_fraction
                raise DatasetLayoutError(
                    f"{self._split_label('train')}: the training split holds no sample; check its annotation file "
                    "(it lists no sample, or none of its samples was kept)"
                )
            train_pos, val_pos = holdout_split(self._split_size("train"), self.val_fraction)
            train_pos = _limit(train_pos, self.limit_train_samples, "limit_train_samples")
            val_pos = _limit(val_pos, self.limit_eval_samples, "limit_eval_samples")
            uncroppable = self._uncroppable_training_samples()
            if uncroppable:  # before the first step: a crop that shows nothing would train (or score) silently
                where = self._split_label("train")
                train_pos = apply_training_crop_policy(train_pos, uncroppable, self.on_bad_sample, where)
                if len(val_pos):
                    val_pos = apply_training_crop_policy(val_pos, uncroppable, self.on_bad_sample, where)
            self.train_set = self._make_dataset("train", train_pos, augment=self.augmentation.enabled)
            self.val_set = self._make_dataset("train", val_pos, augment=False) if len(val_pos) else None
            log.info(
                "data: %d training / %d validation samples (held out of the training split)",
                len(train_pos),
                len(val_pos),
            )
            if self.tests_after_fit or self.monitor_eval_split:  # checked before the first step, not after the fit
                self.test_positions()
            if self.monitor_eval_split:
                self.test_set = self._make_dataset("test", self.test_positions(), augment=False)
                log.info("data: %d test samples, also scored after every epoch as monitor/*", len(self.test_set))
        if stage in (None, "test", "predict") and self.test_set is None:
            test_pos = self.test_positions()
            self.test_set = self._make_dataset("test", test_pos, augment=False)
            log.info("data: %d test samples", len(test_pos))

    # ------------------------------------------------------------------------------------------ loaders

    def _loader_kwargs(self) -> dict[str, Any]:
        return {
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory and torch.cuda.is_available(),
            "persistent_workers": self.persistent_workers and self.num_workers > 0,
            "prefetch_factor": PREFETCH_FACTOR if self.num_workers > 0 else None,
            "worker_init_fn": _worker_init if self.num_workers > 0 else None,
            "collate_fn": collate_device_samples if self.warp_on == "device" else None,
        }

    def _require(self, dataset: Dataset | None, name: str, stage: str) -> Dataset:
        if dataset is None:
            raise RuntimeError(f"the {name} set is not built: call setup({stage!r}) first")
        return dataset

    def train_dataloader(self) -> DataLoader:
        dataset = self._require(self.train_set, "training", "fit")
        sampler = EpochSampler(
            dataset, num_replicas=self._world_size, rank=self._rank, shuffle=True, seed=self.seed, drop_last=False
        )
        per_process = len(sampler)
        return DataLoader(
            dataset,
            batch_size=self.per_device_batch_size,
            sampler=sampler,
            drop_last=per_process >= self.per_device_batch_size,
            **self._loader_kwargs(),
        )

    def _eval_loader(self, dataset: Dataset, name: str) -> DataLoader:
        sampler = None
        if self._world_size > 1:  # Lightning's default DistributedSampler would pad with repeated samples
            if 0 < len(dataset) < self._world_size:  # type: ignore[arg-type]
                raise ValueError(
                    f"the {name} set has {len(dataset)} sample(s) for {self._world_size} processes: every process "  # type: ignore[arg-type]
                    f"needs at least one (DDP would hang otherwise). Use more samples (data.limit_eval_samples, "
                    f"data.val_fraction) or fewer devices."
                )
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=self._world_size, rank=self._rank, shuffle=False
            )
        return DataLoader(
            dataset,
            batch_size=self.per_device_batch_size,
            shuffle=False,
            sampler=sampler,
            drop_last=False,
            **self._loader_kwargs(),
        )

    @property
    def val_prefixes(self) -> list[str]:
        """The metric prefix of each validation loader, in :meth:`val_dataloader`'s order: ``val`` for the hold-out
        of the training split (``val_fraction``; what ``best.ckpt`` is chosen by) and ``monitor`` for the evaluation
        split (``monitor_eval_split``; logged only)."""
        return ["val"] * (self.val_set is not None) + ["monitor"] * self.monitor_eval_split

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The hold-out's loader, the evaluation split's (``monitor_eval_split``), both (a list, in
        :attr:`val_prefixes` order) or none (an empty list: no validation)."""
        if self.train_set is None:
            raise RuntimeError("the validation set is not built: call setup('fit') first")
        loaders = [self._eval_loader(self.val_set, "validation")] if self.val_set is not None else []
        if self.monitor_eval_split:
            loaders.append(self._eval_loader(self._require(self.test_set, "test", "fit"), "test"))
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self._require(self.test_set, "test", "test"), "test")

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """With ``warp_on="device"``: the batch's original images (with ``decode_on="device"`` first decoded from their
        JPEG bytes) warped and colour-augmented on its device
        (:func:`~internet_plus.data.device_warp.warp_device_batch`), so the model sees the worker path's ``image``.
        Lightning calls this after moving every training, validation, test and predict batch."""
        return warp_device_batch(batch, self.input_size) if self.warp_on == "device" else batch

    def teardown(self, stage: str) -> None:
        """With ``on_bad_image="skip"``: warn how many unreadable images each split replaced (their names were
        logged as they were met)."""
        for name, dataset in (("training", self.train_set), ("validation", self.val_set), ("test", self.test_set)):
            count = dataset.bad_images if isinstance(dataset, BadImagePolicy) else 0
            if count:
                log.warning(
                    "data: %d unreadable %s image(s) were skipped and replaced (data.on_bad_image=skip); "
                    "run with data.verify=true to list every bad file",
                    count,
                    name,
                )
