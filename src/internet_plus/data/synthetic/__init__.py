"""The embedded synthetic data set: procedural 3-D hands rendered to disk in RHD_published_v2's exact format.

``dataset=synthetic`` is the RHD loader pointed at files made by :func:`generate_rhd_dataset`
(:class:`~internet_plus.data.synthetic.datamodule.SyntheticDataModule`); see ``docs/synthetic_dataset.md``. A synthetic
set in InterHand2.6M's release layout (annotations and texture frames) comes from :func:`write_interhand_split`
(:mod:`internet_plus.data.synthetic.interhand`).
"""

from internet_plus.data.synthetic.generate import (
    SceneStyle,
    SyntheticDatasetError,
    generate_rhd_dataset,
    read_meta,
    render_sample,
)
from internet_plus.data.synthetic.interhand import (
    InterHandSplit,
    hand_template,
    look_at,
    write_interhand_frames,
    write_interhand_split,
)

__all__ = [
    "InterHandSplit",
    "SceneStyle",
    "SyntheticDatasetError",
    "generate_rhd_dataset",
    "hand_template",
    "look_at",
    "read_meta",
    "render_sample",
    "write_interhand_frames",
    "write_interhand_split",
]
