"""The project's metrics (``docs/reference/conventions.md``, "Metric names").

* :mod:`internet_plus.metrics.functional` — the numpy reference definitions, one per metric (EPE, median, PCK, AUC,
  their hand3d per-keypoint variants, handedness accuracy, InterHand2.6M's MPJPE by sample kind and MRRPE), which the
  classes below are tested against;
* :mod:`internet_plus.metrics.pose` — the torchmetrics ``Metric`` classes used in training and evaluation,
  DDP-correct: :class:`PoseErrorMetrics` (``epe_mm``, ``epe_median_mm``, ``pck_curve``, ``auc_20_50`` and hand3d's
  ``pck_curve_hand3d``, ``auc_20_50_hand3d``, ``epe_median_mm_hand3d``) and
  :class:`HandednessAccuracy` (``handedness_acc``);
* :mod:`internet_plus.metrics.interhand` — :class:`~internet_plus.metrics.interhand.InterHandMetrics`, InterHand2.6M's
  five values in InterNet's definitions (internet §5.3), for its test protocol.
"""

from internet_plus.metrics import functional
from internet_plus.metrics.pose import HandednessAccuracy, PoseErrorMetrics

__all__ = ["HandednessAccuracy", "PoseErrorMetrics", "functional"]
