"""``dataset=synthetic``: the LightningDataModule of the embedded synthetic data set.

The set is RHD_published_v2's exact format (``docs/synthetic_dataset.md``; datasets §A), so its data module is the RHD
one (:class:`~internet_plus.data.rhd.RHDDataModule`: InterNet's RHD protocol, ``docs/reference/internet.md`` §6.3)
plus the generation of the files when they are not there yet (:func:`~internet_plus.data.synthetic.generate.
generate_rhd_dataset`), in a cache folder by default (:func:`default_synthetic_root`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from internet_plus.data.rhd import RHDDataModule
from internet_plus.data.synthetic.generate import SceneStyle, generate_rhd_dataset, read_meta

log = logging.getLogger(__name__)

__all__ = ["SyntheticDataModule", "default_synthetic_root"]


def default_synthetic_root(num_train: int, num_eval: int, generator_seed: int) -> str:
    """``$XDG_CACHE_HOME/internet_plus/synthetic/rhd_n<train>_e<eval>_s<seed>`` (``~/.cache`` by default)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(cache / "internet_plus" / "synthetic" / f"rhd_n{num_train}_e{num_eval}_s{generator_seed}")


class SyntheticDataModule(RHDDataModule):
    """The embedded synthetic data set: :class:`~internet_plus.data.rhd.RHDDataModule` on files generated in RHD's
    exact format.

    ``prepare_data`` (run once, on the main process) generates the set at ``root`` when it is missing, partial or
    made with other parameters (:func:`~internet_plus.data.synthetic.generate.generate_rhd_dataset`; it never writes
    into a folder it did not make).

    Args:
        root: where the set lives; ``None`` = :func:`default_synthetic_root` (a cache folder).
        num_train: samples in ``training`` (the validation hold-out comes out of these).
        num_eval: samples in ``evaluation`` (the test split).
        generator_seed: seed of the generator (the data set itself); ``seed`` seeds shuffling and augmentation.
        two_hand_fraction: share of images showing both hands.
        generator_workers: processes used to generate the set.
        style: how hard the pictures are, the fields of :class:`~internet_plus.data.synthetic.generate.SceneStyle`
            (``hands: skin|glove``, ``max_tilt_deg``, ``background: varied|plain``); ``None`` = the full set.
        Other arguments: :class:`~internet_plus.data.rhd.RHDDataModule`.
    """

    def __init__(
        self,
        root: str | None = None,
        num_train: int = 2000,
        num_eval: int = 200,
        generator_seed: int = 0,
        two_hand_fraction: float = 0.3,
        generator_workers: int = 1,
        style: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.style = SceneStyle.of(dict(style) if style is not None else None)  # invalid fields fail here, at once
        root = root or default_synthetic_root(num_train, num_eval, generator_seed)
        super().__init__(root=root, **kwargs)
        self.num_train = int(num_train)
        self.num_eval = int(num_eval)
        self.generator_seed = int(generator_seed)
        self.two_hand_fraction = float(two_hand_fraction)
        self.generator_workers = int(generator_workers)

    def prepare_data(self) -> None:
        """Generate the set when it is not there yet (a no-op when it is complete)."""
        root = self.root
        if read_meta(root) is None:
            log.info("generating the synthetic data set (%d + %d samples) at %s", self.num_train, self.num_eval, root)
        generate_rhd_dataset(
            self.root,
            num_train=self.num_train,
            num_eval=self.num_eval,
            seed=self.generator_seed,
            two_hand_fraction=self.two_hand_fraction,
            workers=self.generator_workers,
            style=self.style,
        )
