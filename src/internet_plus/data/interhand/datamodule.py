"""``dataset=interhand``: the LightningDataModule of InterHand2.6M, :class:`InterHandDataModule`.

``train`` gives the training split and its validation hold-out, ``test_split`` (``test`` or ``val``) the test set
(InterNet's evaluation, ``docs/reference/internet.md`` §5.3, on the subset and sample kind asked for; datasets
§C.5). Each split is checked (:func:`~internet_plus.data.interhand.layout.find_interhand_files`), indexed or its index
reused (:func:`~internet_plus.data.interhand.index.load_or_build_index`) and its images spot-checked
(:func:`~internet_plus.data.interhand.index.check_images`) once, at ``setup``; under DDP the first process of each
node builds the index while the others wait. The test split is checked in the fit stage too, and its annotations are
range-checked in one vectorised pass (:func:`bad_rows`, ``data.on_bad_sample``: :mod:`internet_plus.data.sample_checks`)
before the first step. With ``rootnet_output`` (InterNet's default 'rootnet' mode, :mod:`internet_plus.data.rootnet`)
the test samples take their box (as is) and absolute root depths [right, left] from RootNet's
``rootnet_interhand2.6m_output_{val,test}.json``, whose ``annot_id`` is data.json's annotation id (InterNet's
loader keys the file by it); it is read and checked in the same setup step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from internet_plus.data.datamodule import HandPoseDataModule
from internet_plus.data.interhand.dataset import InterHandDataset
from internet_plus.data.interhand.index import (
    HAND_TYPE_VECTORS,
    InterHandIndex,
    SampleKind,
    check_images,
    load_or_build_index,
    select_rows,
)
from internet_plus.data.interhand.joints import annotation_validity
from internet_plus.data.interhand.layout import (
    V0_FOLDERS,
    InterHandFiles,
    InterHandLayoutError,
    Layout,
    Subset,
    find_interhand_files,
)
from internet_plus.data.rootnet import RootNetSamples, box_centre_inside, read_rootnet_output
from internet_plus.data.sample_checks import DEPTH_RANGE_MM
from internet_plus.data.verify import VERIFY_SHOWN

log = logging.getLogger(__name__)

__all__ = ["InterHandDataModule", "bad_rows"]

#: Rows range-checked at once by :func:`bad_rows` (bounds the memory of the camera-frame joints: 64k × 42 × 3).
_CHUNK_ROWS = 65_536


def bad_rows(index: InterHandIndex, rows: np.ndarray) -> dict[int, str]:
    """Position in ``rows`` → what is wrong, for each annotation that cannot be scored (one vectorised pass).

    Checks, with the limits of :mod:`internet_plus.data.sample_checks`: the camera's parameters are finite with
    positive focal lengths; the frame's world joints (``joint_3d.json``) are finite; at least one joint is annotated
    in front of the camera, and every such joint lies at 0 < z < 5 m in the camera frame; the annotation box (finite)
    overlaps the image.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cameras_all = np.asarray(index.array("cameras"), dtype=np.float64)
    world_all = index.array("world")
    lo, hi = DEPTH_RANGE_MM
    bad: dict[int, str] = {}
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[start : start + _CHUNK_ROWS]
        cams = cameras_all[np.asarray(index.array("camera_row")[chunk], dtype=np.int64)]
        world = np.asarray(world_all[np.asarray(index.array("frame_row")[chunk], dtype=np.int64)], dtype=np.float64)
        bbox = np.asarray(index.array("bbox")[chunk], dtype=np.float64)
        size = np.asarray(index.array("image_size")[chunk], dtype=np.float64)
        annotated = annotation_validity(np.asarray(index.array("joint_valid")[chunk])) > 0
        with np.errstate(invalid="ignore", over="ignore"):
            rot = cams[:, :9].reshape(-1, 3, 3)
            cam = np.einsum("nij,nkj->nki", rot, world - cams[:, None, 9:12])
            z = cam[..., 2]
            usable = annotated & (z > 1e-6)  # as InterHandIndex.record: joints behind the camera are not scored
            checks = {
                "camera parameters not finite or focal length not positive": ~np.isfinite(cams).all(axis=1)
                | (cams[:, 12:14] <= 0).any(axis=1),
                "world joints (joint_3d.json) not finite": ~np.isfinite(world).all(axis=(1, 2)),
                "no annotated joint in front of the camera (nothing to score)": ~usable.any(axis=1),
                f"scored joint(s) outside 0 < z < {hi / 1000:g} m in the camera frame": (
                    usable & ((z <= lo) | (z >= hi))
                ).any(axis=1),
                "box not finite or outside the image": ~np.isfinite(bbox).all(axis=1)
                | (bbox[:, 0] + bbox[:, 2] <= 0)
                | (bbox[:, 1] + bbox[:, 3] <= 0)
                | (bbox[:, 0] >= size[:, 0])
                | (bbox[:, 1] >= size[:, 1]),
            }
        for problem, flags in checks.items():
            for k in np.flatnonzero(flags):
                pos = start + int(k)
                bad[pos] = f"{bad[pos]}; {problem}" if pos in bad else problem
    for pos, problem in bad.items():
        row = int(rows[pos])
        bad[pos] = (
            f"{index.file_name(row)} (annotation {int(index.array('annot_id')[row])}, box "
            f"{np.round(np.asarray(index.array('bbox')[row], dtype=np.float64), 1).tolist()}): {problem}"
        )
    return dict(sorted(bad.items()))


def _verify_values(index: InterHandIndex, files: InterHandFiles, rows: np.ndarray) -> None:
    """``data.verify=true``: range-check every annotation of ``rows`` (:func:`bad_rows`); raises listing them."""
    bad = bad_rows(index, rows)
    where = f"InterHand2.6M {files.split} ({files.data})"
    if bad:
        shown = [f"  - {files.images_dir}/{p}" for p in list(bad.values())[:VERIFY_SHOWN]]
        if len(bad) > VERIFY_SHOWN:
            shown.append(f"  ... and {len(bad) - VERIFY_SHOWN} more")
        raise InterHandLayoutError(
            f"{where}: data.verify found {len(bad)} of {len(rows)} annotation(s) with implausible values:\n"
            + "\n".join(shown)
        )
    log.info("%s: verified %d annotations (values range-checked): no problems", where, len(rows))


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
        verify: check that every image named in data.json exists (else a sample of ``verify_sample``) and
            range-check every annotation's values (:func:`bad_rows`), listing every problem.
        verify_sample: how many images per split the quick check looks at.
        rootnet_output: RootNet's output for ``test_split`` (``rootnet_interhand2.6m_output_<test_split>.json``; the
            30 fps release has its own ``..._30fps.json``): the test samples' boxes and absolute root depths come from
            it, looked up by data.json annotation id (InterNet's default protocol); read and checked at setup.
            ``None``: the ground truth. Never used for training or validation.
        Other arguments (``on_bad_image`` among them): :class:`~internet_plus.data.datamodule.HandPoseDataModule`.
    """

    #: Scored with InterNet's InterHand2.6M metrics too (``mpjpe_*_mm``, ``mrrpe_mm``; the LightningModule reads it).
    protocol = "interhand"
    jpeg_images = True

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
        rootnet_output: str | None = None,
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
        self.rootnet_output = None if rootnet_output is None else str(Path(str(rootnet_output)).expanduser())
        self._rootnet: RootNetSamples | None = None

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
            rows = select_rows(index, self.sample_kind)
            if self.verify:
                _verify_values(index, files, rows)
            self._splits[split] = (index, files, rows)
        return self._splits[split]

    def setup(self, stage: str | None = None) -> None:
        """Under DDP the first process of each node builds the index, the others wait and then reuse it."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and int(trainer.world_size) > 1:
            needed = ["train", "test"] if stage in (None, "fit", "validate") else ["test"]
            if int(trainer.local_rank) == 0:
                for split in needed:
                    self.split_data(split)
            trainer.strategy.barrier("interhand_index")
        super().setup(stage)

    def _split_size(self, split: str) -> int:
        return len(self.split_data(split)[2])

    def _split_label(self, split: str) -> str:
        return f"InterHand2.6M {self.splits[split]} ({self.split_data(split)[1].data})"

    def rootnet(self) -> RootNetSamples | None:
        """RootNet's entries of every test sample (in row order), read and checked once; ``None`` without
        ``rootnet_output``.

        Raises:
            RootNetError: a malformed file, a test annotation id missing from it, or a non-positive depth of a hand
                the sample shows.
        """
        if self.rootnet_output is None:
            return None
        if self._rootnet is None:
            index, _, rows = self.split_data("test")
            present = HAND_TYPE_VECTORS[np.asarray(index.array("hand_type")[rows], dtype=np.int64)] > 0
            self._rootnet = read_rootnet_output(self.rootnet_output, "pair").select(
                np.asarray(index.array("annot_id")[rows]),
                f"the {len(rows)} annotations of {self._split_label('test')}",
                present=present,
            )
        return self._rootnet

    def _bad_samples(self, split: str) -> dict[int, str]:
        """:func:`bad_rows`; with ``rootnet_output``, also the test annotations whose RootNet box does not contain
        the centre of the annotation box (:func:`~internet_plus.data.rootnet.box_centre_inside`)."""
        index, files, rows = self.split_data(split)
        bad = {pos: f"{files.images_dir}/{problem}" for pos, problem in bad_rows(index, rows).items()}
        rootnet = self.rootnet() if split == "test" else None
        if rootnet is not None:
            boxes = np.asarray(index.array("bbox")[rows], dtype=np.float64)
            for pos in np.flatnonzero(~box_centre_inside(rootnet.bbox, boxes)):
                row = int(rows[pos])
                problem = (
                    f"RootNet box {np.round(rootnet.bbox[pos], 1).tolist()} (annot_id {int(rootnet.annot_id[pos])} in "
                    f"{rootnet.path}) does not contain the centre of the annotation box "
                    f"{np.round(boxes[pos], 1).tolist()}: the entry is not this annotation's"
                )
                where = f"{files.images_dir}/{index.file_name(row)} (annotation {int(rootnet.annot_id[pos])})"
                bad[int(pos)] = f"{bad[int(pos)]}; {problem}" if int(pos) in bad else f"{where}: {problem}"
        return dict(sorted(bad.items()))

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
            rootnet=self._split_rootnet(split, positions),
            warp_on=self.warp_on,
            decode_on=self.decode_on,
        )
