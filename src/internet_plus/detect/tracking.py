"""Hand boxes through images and videos (``predict.py boxes=auto``), and the joints smoothed over a video.

:class:`AutoBoxes` runs MediaPipe Hands (:mod:`.mediapipe_hands`) on each frame and turns its detections into one
crop box (:func:`.boxes.choose_box`):

* **Images** (``video=False``): MediaPipe's image mode, its palm detector on every image; each image on its own.
* **Videos and cameras** (``video=True``): MediaPipe's video mode (``static_image_mode=False``), which tracks: the
  landmarks of one frame give the hand region of the next, and the palm detector runs again when a hand is lost
  (its landmark confidence below ``min_tracking_confidence``) and, while fewer than ``max_num_hands`` hands are
  tracked, to look for another. A frame is ``"detected"`` when the previous frame had no box (the first frame, or the
  first after a frame without a hand: the track starts afresh) and ``"tracked"`` otherwise, when the box comes from
  the hand(s) MediaPipe carried over from the previous frame; the box then follows the hand that overlaps the
  previous box most. The box is not taken from InterNet's own predicted joints: a poor prediction would steer the
  next crop away from the hand, and the network gives no reliable signal that it has lost the hand.

:class:`JointSmoother` applies the One-Euro filter (:mod:`.one_euro`) to each prediction array of a video, restarted
at every new track (a ``"detected"`` frame) and after every frame without a prediction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from internet_plus.detect.boxes import BoxRule, choose_box
from internet_plus.detect.mediapipe_hands import HandDetection, HandDetector
from internet_plus.detect.one_euro import OneEuroFilter

__all__ = ["AutoBox", "AutoBoxes", "JointSmoother"]


def _round(array: np.ndarray, digits: int = 2) -> list[Any]:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()


@dataclass
class AutoBox:
    """What :class:`AutoBoxes` found in one frame.

    Attributes:
        box: the crop box ``[x, y, w, h]`` in original pixels, or ``None`` when no hand was detected.
        detections: MediaPipe's hands, most confident first.
        in_box: indices into ``detections`` of the hands the box holds.
        state: ``"detected"`` (a fresh detection: an image, a video's first frame or the first after a loss) or
            ``"tracked"`` (carried over from the previous video frame).
    """

    box: list[float] | None
    detections: list[HandDetection] = field(default_factory=list)
    in_box: tuple[int, ...] = ()
    state: Literal["detected", "tracked"] = "detected"

    def record(self) -> dict[str, Any]:
        """The prediction record's detection keys: ``detection`` (the state) and ``detected_hands`` (MediaPipe's
        handedness, score, landmark box, 21×2 landmarks in pixels and whether the crop box holds it)."""
        return {
            "detection": self.state,
            "detected_hands": [
                {
                    "handedness": hand.handedness,
                    "score": round(hand.score, 4),
                    "in_box": k in self.in_box,
                    "extent": _round(hand.extent()),
                    "landmarks_px": _round(hand.landmarks_px),
                }
                for k, hand in enumerate(self.detections)
            ],
        }


class AutoBoxes:
    """One box per frame from MediaPipe Hands (module docstring); a context manager (``close()`` frees MediaPipe).

    Args:
        rule: margin and interaction rule (:class:`.boxes.BoxRule`).
        video: track through consecutive frames (MediaPipe's video mode) instead of detecting in each image.
        detector: keyword arguments of :class:`.mediapipe_hands.HandDetector` (``min_detection_confidence``, ...).

    Raises:
        MediaPipeMissingError: mediapipe is not installed (the message says how to install it, or what to use).
    """

    def __init__(self, rule: BoxRule, *, video: bool, detector: Mapping[str, Any] | None = None) -> None:
        options = dict(detector or {})
        options.pop("static_image_mode", None)
        self.rule = rule
        self.video = bool(video)
        self.min_detection_confidence = float(options.get("min_detection_confidence", 0.3))
        self._detector = HandDetector(static_image_mode=not self.video, **options)
        self._previous: list[float] | None = None

    @property
    def no_hand_message(self) -> str:
        """The ``errors.json`` entry of a frame without a hand."""
        return f"no hand detected (MediaPipe, min_detection_confidence={self.min_detection_confidence:g})"

    def __call__(self, image_rgb: np.ndarray) -> AutoBox:
        """The box of one H×W×3 ``uint8`` RGB frame (the next frame of the video in video mode)."""
        detections = self._detector(image_rgb)
        previous = self._previous if self.video else None
        chosen = choose_box(detections, self.rule, previous)
        state: Literal["detected", "tracked"] = "tracked" if previous is not None else "detected"
        if chosen is None:
            self._previous = None
            return AutoBox(None, detections, (), state)
        box, in_box = chosen
        self._previous = box
        return AutoBox(box, detections, in_box, state)

    def close(self) -> None:
        """Free MediaPipe's graph (idempotent)."""
        self._detector.close()

    def __enter__(self) -> AutoBoxes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JointSmoother:
    """One-Euro filters over the named arrays of consecutive video frames (one filter per name).

    Args:
        min_cutoff, beta, d_cutoff: the filter's parameters (:class:`.one_euro.OneEuroFilter`).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self._make = lambda: OneEuroFilter(min_cutoff, beta, d_cutoff)
        self._make()  # the parameters are checked now, not at the first frame
        self._filters: dict[str, OneEuroFilter] = {}
        self._last_frame: int | None = None

    def __call__(self, arrays: Mapping[str, np.ndarray], frame: int, t: float, *, restart: bool) -> dict[str, Any]:
        """The smoothed ``arrays`` of video frame ``frame`` at time ``t`` (seconds). The filters start afresh (the
        frame passes unchanged) when ``restart`` is set or the previous frame had no prediction."""
        if restart or self._last_frame is None or frame != self._last_frame + 1:
            self._filters = {}
        self._last_frame = frame
        out = {}
        for name, value in arrays.items():
            if name not in self._filters:
                self._filters[name] = self._make()
            out[name] = self._filters[name](value, t)
        return out
