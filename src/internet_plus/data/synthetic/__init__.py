"""The embedded synthetic data set: procedural 3-D hands rendered to disk in RHD_published_v2's exact format.

``dataset=synthetic`` is the RHD loader pointed at files made by :func:`generate_rhd_dataset`; see
``docs/synthetic_dataset.md``.
"""

from internet_plus.data.synthetic.generate import (
    SceneStyle,
    SyntheticDatasetError,
    generate_rhd_dataset,
    read_meta,
    render_sample,
)

__all__ = ["SceneStyle", "SyntheticDatasetError", "generate_rhd_dataset", "read_meta", "render_sample"]
