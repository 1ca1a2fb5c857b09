"""The project's metrics (``docs/reference/conventions.md``, "Metric names").

* :mod:`internet_plus.metrics.functional` — numpy reference definitions (EPE, median, PCK, AUC, handedness
  accuracy, InterHand2.6M's MPJPE and MRRPE);
* :mod:`internet_plus.metrics.pose` — the torchmetrics ``Metric`` classes used in training and evaluation,
  DDP-correct: :class:`PoseErrorMetrics` (``epe_mm``, ``epe_median_mm``, ``pck_curve``, ``auc_20_50``) and
  :class:`HandednessAccuracy` (``handedness_acc``).
"""

from internet_plus.metrics import functional
from internet_plus.metrics.pose import HandednessAccuracy, PoseErrorMetrics

__all__ = ["HandednessAccuracy", "PoseErrorMetrics", "functional"]
