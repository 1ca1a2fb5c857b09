"""``dataset=interhand``: the LightningDataModule of InterHand2.6M, :class:`InterHandDataModule`.

``train`` gives the training split and its validation hold-out, ``test_split`` (``test`` or ``val``) the test set
(InterNet's evaluation, ``docs/reference/internet.md`` §5.3, on the subset and sample kind asked for; datasets
§C.5). Each split is checked (:func:`~internet_plus.data.interhand.layout.find_interhand_files`), indexed or its index
reused (:func:`~internet_plus.data.interhand.index.load_or_build_index`) and its images spot-checked
(:func:`~internet_plus.data.interhand.index.check_images`) once, at ``setup``; under DDP the first process of each
node builds the index while the others wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from internet_plus.data.datamodule import HandPoseDataModule
from internet_plus.data.interhand.dataset import InterHandDataset
from internet_plus.data.interhand.index import (
    InterHandIndex,
    SampleKind,
    check_images,
    load_or_build_index,
    select_rows,
)
from internet_plus.data.interhand.layout import V0_FOLDERS, InterHandFiles, Layout, Subset, find_interhand_files

__all__ = ["InterHandDataModule"]


class InterHandDataModule(HandPoseDataModule):
    """InterHand2.6M (``train`` → training + validation hold-out, ``test_split`` → test).

    Args:
        root: the data folder (:mod:`internet_plus.data.interhand.layout`, ``docs/datasets/interhand.md``).
        fps: 5 or 30: which release folder (``InterHand2.6M_<fps>fps_batch1``) to read.
        subset: ``all`` (H+M), ``human`` (H) or ``machine`` (M).
        sample_kind: ``all``, ``single`` or ``interacting`` samples (train and test alike).
        cache_dir: where the index lives (``None``: ``$XDG_CACHE_HOME/internet_plus/interhand``); never in ``root``.
        layout: ``auto``, ``v1.0`` or ``v0.0``.
        human_annot_ids: the H annotation-id list for v1.0 H/M subsets (``{split}`` is replaced by the split).
        test_split: the evaluation split, ``test`` or ``val``.
        verify: check that every image named in data.json exists (else a sample of ``verify_sample``).
        verify_sample: how many images per split the quick check looks at.
        Other arguments (``on_bad_image`` among them): :class:`~internet_plus.data.datamodule.HandPoseDataModule`.
    """

    #: Scored with InterNet's InterHand2.6M metrics too (``mpjpe_*_mm``, ``mrrpe_mm``; the LightningModule reads it).
    protocol = "interhand"

    def __init__(
        self,
        root: str,
        fps: int = 5,
        subset: Subset = "all",
        sample_kind: SampleKind = "all",
        cache_dir: str | None = None,
        layout: Layout = "auto",
        human_annot_ids: str | None = None,
        test_split: str = "test",
        verify: bool = False,
        verify_sample: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = str(Path(str(root)).expanduser())
        if int(fps) not in (5, 30):
            raise ValueError(f"data.fps must be 5 or 30, got {fps!r}")
        if subset not in V0_FOLDERS:
            raise ValueError(f"data.subset must be one of {sorted(V0_FOLDERS)}, got {subset!r}")
        if sample_kind not in ("all", "single", "interacting"):
            raise ValueError(f"data.sample_kind must be 'all', 'single' or 'interacting', got {sample_kind!r}")
        if layout not in ("auto", "v1.0", "v0.0"):
            raise ValueError(f"data.layout must be 'auto', 'v1.0' or 'v0.0', got {layout!r}")
        if test_split not in ("test", "val"):
            raise ValueError(f"data.test_split must be 'test' or 'val', got {test_split!r}")
        self.fps = int(fps)
        self.subset = subset
        self.sample_kind = sample_kind
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.layout = layout
        self.human_annot_ids = None if human_annot_ids is None else str(human_annot_ids)
        self.test_split = test_split
        self.verify = bool(verify)
        self.verify_sample = int(verify_sample)
        self.splits = {"train": "train", "test": test_split}
        self._splits: dict[str, tuple[InterHandIndex, InterHandFiles, np.ndarray]] = {}

    def split_data(self, split: str) -> tuple[InterHandIndex, InterHandFiles, np.ndarray]:
        """(index, files, selected rows) of ``"train"`` or ``"test"``: checked, indexed (or reused) once."""
        if split not in self._splits:
            files = find_interhand_files(
                self.root, self.splits[split], fps=self.fps, subset=self.subset, layout=self.layout
            )
            index = load_or_build_index(
                files,
                self.cache_dir,
                subset=self.subset,
                fps=self.fps,
                human_annot_ids=self.human_annot_ids,
                data_root=self.root,
            )
            check_images(index, files, verify=self.verify, sample=self.verify_sample)
            self._splits[split] = (index, files, select_rows(index, self.sample_kind))
        return self._splits[split]

    def setup(self, stage: str | None = None) -> None:
        """Under DDP the first process of each node builds the index, the others wait and then reuse it."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and int(trainer.world_size) > 1:
            needed = []
            if stage in (None, "fit", "validate"):
                needed.append("train")
            if stage in (None, "test", "predict"):
                needed.append("test")
            if int(trainer.local_rank) == 0:
                for split in needed:
                    self.split_data(split)
            trainer.strategy.barrier("interhand_index")
        super().setup(stage)

    def _split_size(self, split: str) -> int:
        return len(self.split_data(split)[2])

    def _make_dataset(self, split: str, positions: Sequence[int], augment: bool) -> InterHandDataset:
        index, files, rows = self.split_data(split)
        return InterHandDataset(
            index,
            files.images_dir,
            rows=rows[np.asarray(positions, dtype=np.int64)],
            input_size=self.input_size,
            augment=augment,
            augmentation=self.augmentation,
            seed=self.seed,
            on_bad_image=self.on_bad_image,
        )
