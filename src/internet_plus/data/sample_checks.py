"""``data.on_bad_sample``: the evaluation samples are checked at setup, so a bad annotation never reaches the metrics.

Every data module checks the samples of its evaluation split before the first step (the fit stage included, see
:meth:`~internet_plus.data.datamodule.HandPoseDataModule.setup`): values finite, focal lengths positive, every scored
joint at a plausible depth (0 < z < 5 m, the range of ``data.verify``, ``docs/reference/datasets.md`` §A.4, §B.3,
§C.3), at least one joint to score (InterNet scores the annotated joints only, ``docs/reference/internet.md`` §5.3)
and, on InterHand2.6M, a box that overlaps the image. One bad sample makes a null or absurd metric, so by default
(``raise``) the run stops naming the file and the sample; ``skip`` leaves the bad samples out and reports their count
(the log and ``test/skipped_samples`` in ``metrics.json``).

The per-sample checks here (:func:`annotation_problems`) are used by RHD and STB; InterHand2.6M checks its index with
the same limits in one vectorised pass (:mod:`internet_plus.data.interhand.datamodule`).

The samples of the training split (training and hold-out validation) are checked at setup for what would silently
spoil them: the keypoints their crop box is made from (RHD, STB) must be finite and within
``TRAINING_UV_MARGIN`` image sizes of the image (:func:`far_crop_keypoints`). One keypoint at uv = 10⁷ makes a box
thousands of images wide, and the crop an all-black picture that trains the model on nothing; ``data.on_bad_sample``
decides as for evaluation (:func:`apply_training_crop_policy`). The margin is ten times ``data.verify``'s on purpose:
it is meant to catch garbage, never a real frame with a hand partly out of view (InterNet trains on every sample).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.verify import VERIFY_DEPTH_RANGE_M, keypoints_far_outside

log = logging.getLogger(__name__)

__all__ = [
    "BAD_SAMPLE_POLICIES",
    "BAD_SAMPLES_SHOWN",
    "DEPTH_RANGE_MM",
    "TRAINING_UV_MARGIN",
    "annotation_problems",
    "apply_bad_sample_policy",
    "apply_training_crop_policy",
    "far_crop_keypoints",
    "check_bad_sample_policy",
]

#: ``data.on_bad_sample``: ``raise`` stops at setup naming the bad evaluation samples; ``skip`` leaves them out and
#: reports the count.
BAD_SAMPLE_POLICIES = ("raise", "skip")
#: Plausible depth of a scored joint, in mm (the range of ``data.verify``).
DEPTH_RANGE_MM = (VERIFY_DEPTH_RANGE_M[0] * 1000.0, VERIFY_DEPTH_RANGE_M[1] * 1000.0)
#: A training sample's crop keypoint may lie this many image sizes outside the image (``data.verify``: 1).
TRAINING_UV_MARGIN = 10.0
#: How many bad samples an error or a warning names (the count is always complete).
BAD_SAMPLES_SHOWN = 5


def check_bad_sample_policy(policy: str) -> str:
    """``policy`` if it is one of :data:`BAD_SAMPLE_POLICIES`, else ``ValueError`` naming the valid values."""
    if policy not in BAD_SAMPLE_POLICIES:
        raise ValueError(f"data.on_bad_sample={policy!r}: use one of {BAD_SAMPLE_POLICIES}")
    return policy


def annotation_problems(
    xyz_mm: np.ndarray,
    annotated: np.ndarray | float,
    K: np.ndarray,
    uv: np.ndarray | None = None,
    image_size: tuple[int, int] | None = None,
) -> list[str]:
    """What makes one sample unscorable: J×3 camera-frame joints (mm), their J annotation flags (or one flag for
    all) and the 3×3 intrinsics; with ``uv`` (J×2 pixels, what the crop box is made from) and ``image_size``
    ``(W, H)``, also keypoints that are not finite or whose box misses the image (it could not be cropped). Empty
    when the sample is fine."""
    xyz = np.asarray(xyz_mm, dtype=np.float64).reshape(-1, 3)
    scored = np.broadcast_to(np.asarray(annotated, dtype=np.float64), (len(xyz),)) > 0
    K = np.asarray(K, dtype=np.float64)
    problems = []
    if K.shape != (3, 3) or not np.isfinite(K).all() or not (K[0, 0] > 0 and K[1, 1] > 0):
        problems.append(f"implausible intrinsics K = {np.round(K, 3).tolist()} (need finite values, fx, fy > 0)")
    if not scored.any():
        problems.append("no joint is annotated (nothing to score)")
    pts = xyz[scored]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(pts).all(axis=1) | (pts[:, 2] <= DEPTH_RANGE_MM[0]) | (pts[:, 2] >= DEPTH_RANGE_MM[1])
    if bad.any():
        first = pts[int(np.argmax(bad))]
        problems.append(
            f"{int(bad.sum())} scored joint(s) not finite or outside {VERIFY_DEPTH_RANGE_M[0]:g} < z < "
            f"{VERIFY_DEPTH_RANGE_M[1]:g} m (first: xyz {np.round(first, 1).tolist()} mm)"
        )
    if uv is not None and image_size is not None:
        points = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        width, height = image_size
        if not np.isfinite(points).all():
            problems.append("2-D keypoints not finite (the crop box is made from them)")
        elif (
            (points[:, 0].max() < 0)
            or (points[:, 1].max() < 0)
            or (points[:, 0].min() >= width)
            or (points[:, 1].min() >= height)
        ):
            problems.append(
                f"2-D keypoints outside the {width}×{height} image (first: uv {np.round(points[0], 1).tolist()}): "
                "no crop can be made from them"
            )
    return problems


def apply_bad_sample_policy(
    used: np.ndarray, bad: Mapping[int, str], policy: str, where: str, limit: int | None = None
) -> tuple[np.ndarray, int]:
    """The positions of an evaluation split to score, given its bad samples.

    Args:
        used: the split's positions, in order.
        bad: position → what is wrong, naming the file and the sample (every bad sample of the split).
        policy: ``raise`` or ``skip`` (``data.on_bad_sample``).
        where: names the split in the messages, e.g. ``"RHD evaluation"``.
        limit: keep the first ``limit`` positions (``data.limit_eval_samples``; applied after skipping, and only the
            positions kept are checked).

    Returns:
        (kept positions, number of bad samples left out).

    Raises:
        DatasetLayoutError: ``raise`` and a bad sample among the kept positions (names the first
            :data:`BAD_SAMPLES_SHOWN` and the count), or no sample left (an empty split, or every sample bad).
    """
    used = np.asarray(used, dtype=np.int64)
    if len(used) == 0:
        raise DatasetLayoutError(f"{where}: the evaluation split has no samples; nothing could be scored")
    skipped = 0
    if policy == "skip":
        is_bad = np.isin(used, np.fromiter(bad, dtype=np.int64, count=len(bad)))
        skipped = int(is_bad.sum())
        kept = used[~is_bad]
        if skipped:
            shown = "; ".join(bad[int(p)] for p in used[is_bad][:BAD_SAMPLES_SHOWN])
            more = f"; and {skipped - BAD_SAMPLES_SHOWN} more" if skipped > BAD_SAMPLES_SHOWN else ""
            log.warning(
                "data: %d bad %s sample(s) left out (data.on_bad_sample=skip): %s%s", skipped, where, shown, more
            )
        if len(kept) == 0:
            raise DatasetLayoutError(f"{where}: all {len(used)} evaluation samples are bad; nothing could be scored")
    else:
        kept = used
    if limit is not None:
        kept = kept[: int(limit)]
    found = [int(p) for p in kept if int(p) in bad]
    if found:
        shown = "\n  - ".join(bad[p] for p in found[:BAD_SAMPLES_SHOWN])
        more = f"\n  ... and {len(found) - BAD_SAMPLES_SHOWN} more" if len(found) > BAD_SAMPLES_SHOWN else ""
        raise DatasetLayoutError(
            f"{where}: {len(found)} evaluation sample(s) cannot be scored:\n  - {shown}{more}\n"
            "Fix these annotations, or set data.on_bad_sample=skip to leave such samples out (their count is "
            "reported in metrics.json as test/skipped_samples)."
        )
    return kept, skipped


def far_crop_keypoints(
    uv: np.ndarray, image_size: tuple[int, int], margin: float = TRAINING_UV_MARGIN
) -> dict[int, str]:
    """Sample → what is wrong, for the samples of ``uv`` (N×J×2 pixels: the keypoints each crop box is made from)
    with a keypoint that is not finite or more than ``margin`` image sizes outside the ``(W, H)`` image.
    Vectorised: the whole training split of RHD or STB in one pass."""
    uv = np.asarray(uv, dtype=np.float64)
    width, height = image_size
    bad = keypoints_far_outside(uv, image_size, margin)  # N×J
    out = {}
    for n in np.flatnonzero(bad.any(axis=1)):
        j = int(np.argmax(bad[n]))
        out[int(n)] = (
            f"{int(bad[n].sum())} keypoint(s) of the crop box not finite or more than {margin:g} image size(s) "
            f"outside the {width}×{height} image (first: keypoint {j} at uv {np.round(uv[n, j], 1).tolist()}): the "
            "crop would show nothing of the hand"
        )
    return out


def apply_training_crop_policy(positions: np.ndarray, bad: Mapping[int, str], policy: str, where: str) -> np.ndarray:
    """The training-split ``positions`` to use, given the samples whose crop cannot show the hand (``bad``: position
    → what is wrong, naming the file and the sample): ``raise`` stops naming them (only those among ``positions``
    count), ``skip`` leaves them out with a warning.

    Raises:
        DatasetLayoutError: ``raise`` and a bad sample among ``positions``, or ``skip`` and none left.
    """
    positions = np.asarray(positions, dtype=np.int64)
    found = [int(p) for p in positions if int(p) in bad]
    if not found:
        return positions
    shown = "\n  - ".join(bad[p] for p in found[:BAD_SAMPLES_SHOWN])
    more = f"\n  ... and {len(found) - BAD_SAMPLES_SHOWN} more" if len(found) > BAD_SAMPLES_SHOWN else ""
    if policy != "skip":
        raise DatasetLayoutError(
            f"{where}: {len(found)} training-split sample(s) cannot be cropped around the hand:\n  - {shown}{more}\n"
            "Fix these annotations, or set data.on_bad_sample=skip to train without them (their count is logged)."
        )
    kept = positions[~np.isin(positions, found)]
    if len(kept) == 0:
        raise DatasetLayoutError(f"{where}: all {len(positions)} training-split samples cannot be cropped")
    log.warning(
        "data: %d %s training-split sample(s) left out (data.on_bad_sample=skip), their crop cannot show the hand:"
        "\n  - %s%s",
        len(found),
        where,
        shown,
        more,
    )
    return kept
