"""InterHand2.6M (Moon et al., ECCV 2020) read from its official files: a compact cached index, the torch ``Dataset``
and the LightningDataModule (``dataset=interhand``).

Format: ``docs/reference/datasets.md`` §C. Protocol: InterNet's InterHand2.6M loader (``docs/reference/internet.md``
§6.2, targets §4, evaluation §5.3, internet §7) in its 'gt' mode (ground-truth box and absolute root depth, §5.2).
One job per module:

- :mod:`~internet_plus.data.interhand.layout`: where a split's files are (release layouts v1.0 and v0.0, 5/30 fps,
  H/M subsets; datasets §C.1, §C.5), :class:`InterHandFiles`, :class:`InterHandLayoutError`;
- :mod:`~internet_plus.data.interhand.joints`: the native joint order → the project's (datasets §C.4) and
  ``joint_annotated`` from data.json's validity;
- :mod:`~internet_plus.data.interhand.geometry`: world → camera → pixel (datasets §C.3);
- :mod:`~internet_plus.data.interhand.annotations`: the streaming parse of the three JSON files;
- :mod:`~internet_plus.data.interhand.index`: a split's cached, memory-mapped index (:class:`InterHandIndex`,
  :class:`InterHandRecord`, :func:`load_or_build_index`, :func:`select_rows`);
- :mod:`~internet_plus.data.interhand.dataset`: :class:`InterHandDataset`, the sample dict;
- :mod:`~internet_plus.data.interhand.datamodule`: :class:`InterHandDataModule`.

Layout problems (missing root, folder, annotation file, images named by data.json, malformed entries) raise
:class:`InterHandLayoutError` (a :class:`~internet_plus.data.errors.DatasetLayoutError`) at ``setup``, naming the
file, the expected layout and the download page.
"""

from internet_plus.data.interhand.annotations import HAND_TYPE_CODES
from internet_plus.data.interhand.datamodule import InterHandDataModule
from internet_plus.data.interhand.dataset import InterHandDataset
from internet_plus.data.interhand.geometry import camera_to_pixel, world_to_camera
from internet_plus.data.interhand.index import (
    INDEX_VERSION,
    InterHandIndex,
    InterHandRecord,
    build_index,
    check_images,
    default_cache_dir,
    load_or_build_index,
    select_rows,
)
from internet_plus.data.interhand.joints import PROJECT_FROM_INTERHAND, annotation_validity, native_to_project
from internet_plus.data.interhand.layout import (
    INTERHAND_DOWNLOAD_PAGE,
    INTERHAND_LAYOUT,
    INTERHAND_SPLITS,
    InterHandFiles,
    InterHandLayoutError,
    find_interhand_files,
    read_id_list,
)

__all__ = [
    "HAND_TYPE_CODES",
    "INDEX_VERSION",
    "INTERHAND_DOWNLOAD_PAGE",
    "INTERHAND_LAYOUT",
    "INTERHAND_SPLITS",
    "PROJECT_FROM_INTERHAND",
    "InterHandDataModule",
    "InterHandDataset",
    "InterHandFiles",
    "InterHandIndex",
    "InterHandLayoutError",
    "InterHandRecord",
    "annotation_validity",
    "build_index",
    "camera_to_pixel",
    "check_images",
    "default_cache_dir",
    "find_interhand_files",
    "load_or_build_index",
    "native_to_project",
    "read_id_list",
    "select_rows",
    "world_to_camera",
]
