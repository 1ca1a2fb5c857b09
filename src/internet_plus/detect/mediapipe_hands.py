"""MediaPipe Hands as a hand detector: 21 landmarks per hand, handedness and a confidence, in original pixels.

MediaPipe Hands (Zhang et al. 2020, "MediaPipe Hands: On-device Real-time Hand Tracking") runs a palm detector and a
hand-landmark model. ``mediapipe==0.10.14`` is the last release whose wheel bundles both models
(``mediapipe/modules/palm_detection/*.tflite`` and ``hand_landmark/*.tflite``), so ``mp.solutions.hands`` works with no
network; later releases ship no models. It is an optional dependency (``make install`` brings it; see
``docs/detection.md`` for why it is installed without its declared dependencies).

Two facts this wrapper takes care of:

* **Handedness.** MediaPipe labels hands as if the image were mirrored (a selfie camera). For an ordinary photo the
  label is the other hand: on the three real RHD sample photos MediaPipe says "Right" where the annotation says left,
  and vice versa. :class:`HandDetector` swaps the label unless ``mirrored=True``.
* **Landmark order.** MediaPipe's 21 landmarks (wrist; thumb CMC, MCP, IP, tip; index MCP, PIP, DIP, tip; middle;
  ring; pinky) are in the project's per-hand joint order (wrist, thumb base to tip, index MCP to tip, ...;
  :mod:`internet_plus.joints`), so landmark ``i`` is joint ``i`` of its hand (and ``21 + i`` for a left hand in the
  42-joint layout). :data:`LANDMARK_TO_JOINT` states the table and a test checks it against the names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np

__all__ = [
    "LANDMARK_NAMES",
    "LANDMARK_TO_JOINT",
    "MEDIAPIPE_VERSION",
    "HandDetection",
    "HandDetector",
    "MediaPipeMissingError",
    "import_mediapipe",
]

MEDIAPIPE_VERSION = "0.10.14"

#: MediaPipe's hand landmarks in its own order (``mp.solutions.hands.HandLandmark``).
LANDMARK_NAMES: tuple[str, ...] = (
    "WRIST",
    "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP",
    "INDEX_FINGER_MCP", "INDEX_FINGER_PIP", "INDEX_FINGER_DIP", "INDEX_FINGER_TIP",
    "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP", "MIDDLE_FINGER_TIP",
    "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
    "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP",
)  # fmt: skip

#: Landmark ``i`` -> joint index within its hand in the project's order (the identity: both run wrist, thumb,
#: index, middle, ring, little, each from the base to the tip).
LANDMARK_TO_JOINT: tuple[int, ...] = tuple(range(21))

INSTALL_HINT = (
    f"hand detection (boxes=auto) needs mediapipe=={MEDIAPIPE_VERSION}, the last release that bundles its hand "
    f"models; `make install` installs it, or by hand: pip install --no-deps mediapipe=={MEDIAPIPE_VERSION} && "
    "pip install -e '.[detect]'. Without it, give boxes=<file.json> or boxes=whole_image"
)


class MediaPipeMissingError(ImportError):
    """mediapipe is not installed (or not the release with bundled models); the message says how to install it."""


def _restore_get_prototype() -> None:
    """mediapipe 0.10.14 calls ``GetPrototype`` on protobuf's symbol database and message factory, which protobuf 5
    removed; later mediapipe releases call ``message_factory.GetMessageClass`` instead, and so does this one after
    this shim (the project needs protobuf >= 5 for wandb and onnx)."""
    from google.protobuf import message_factory, symbol_database

    for owner in (symbol_database.SymbolDatabase, message_factory.MessageFactory):
        if not hasattr(owner, "GetPrototype"):
            owner.GetPrototype = lambda self, descriptor: message_factory.GetMessageClass(descriptor)


def import_mediapipe() -> ModuleType:
    """``mediapipe.solutions.hands``, or :class:`MediaPipeMissingError` with the install command."""
    try:
        _restore_get_prototype()
        mediapipe = importlib.import_module("mediapipe")
        hands = importlib.import_module("mediapipe.python.solutions.hands")
    except ImportError as error:
        raise MediaPipeMissingError(f"{INSTALL_HINT} ({error})") from error
    version = getattr(mediapipe, "__version__", "unknown")
    if version != MEDIAPIPE_VERSION:
        raise MediaPipeMissingError(f"mediapipe {version} is installed; {INSTALL_HINT}")
    return hands


@dataclass(frozen=True)
class HandDetection:
    """One hand found by MediaPipe in one image.

    Attributes:
        landmarks_px: 21×2 float, the landmarks in the original image's pixels (x right, y down), MediaPipe's order
            (= the project's per-hand order, :data:`LANDMARK_TO_JOINT`).
        world_mm: 21×3 float, MediaPipe's "world" landmarks in millimetres: metric 3-D coordinates with the origin
            at the hand's approximate geometric centre (x right, y down, z away from the camera).
        handedness: ``"right"`` or ``"left"``, the person's hand (MediaPipe's label corrected for its mirrored-image
            assumption unless the detector was built with ``mirrored=True``).
        score: MediaPipe's handedness confidence in [0, 1] (the per-hand score it reports).
    """

    landmarks_px: np.ndarray
    world_mm: np.ndarray
    handedness: Literal["right", "left"]
    score: float

    def extent(self) -> list[float]:
        """The landmarks' tight box ``[x, y, w, h]`` in pixels."""
        low = self.landmarks_px.min(axis=0)
        high = self.landmarks_px.max(axis=0)
        return [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])]


class HandDetector:
    """MediaPipe Hands on RGB images (a context manager; ``close()`` frees the graph).

    Args:
        static_image_mode: True runs the palm detector on every image (photos); False lets MediaPipe track the
            hands from frame to frame and detect only when tracking is lost (video).
        max_num_hands: at most this many hands per image (InterNet's crops hold one or two).
        min_detection_confidence: the palm detector's threshold, below MediaPipe's default 0.5 (on the repository's
            real sample photos every threshold from 0.05 to 0.5 finds the same hands; docs/detection.md).
        min_tracking_confidence: below this, a tracked hand counts as lost (video mode only).
        model_complexity: 0 (lite) or 1 (full) landmark model.
        mirrored: the images are mirrored (selfie camera), MediaPipe's own convention; False for ordinary photos.
    """

    def __init__(
        self,
        *,
        static_image_mode: bool = True,
        max_num_hands: int = 2,
        min_detection_confidence: float = 0.3,
        min_tracking_confidence: float = 0.5,
        model_complexity: int = 1,
        mirrored: bool = False,
    ) -> None:
        for name, value in (("min_detection_confidence", min_detection_confidence),
                            ("min_tracking_confidence", min_tracking_confidence)):  # fmt: skip
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name}={value} must be in [0, 1]")
        if int(max_num_hands) < 1:
            raise ValueError(f"max_num_hands={max_num_hands} must be at least 1")
        if int(model_complexity) not in (0, 1):
            raise ValueError(f"model_complexity={model_complexity} must be 0 (lite) or 1 (full)")
        hands = import_mediapipe()
        self.mirrored = bool(mirrored)
        self._hands = hands.Hands(
            static_image_mode=bool(static_image_mode),
            max_num_hands=int(max_num_hands),
            model_complexity=int(model_complexity),
            min_detection_confidence=float(min_detection_confidence),
            min_tracking_confidence=float(min_tracking_confidence),
        )

    def __call__(self, image_rgb: np.ndarray) -> list[HandDetection]:
        """The hands in one H×W×3 uint8 RGB image, most confident first (an empty list when there is none)."""
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 RGB image, got {image_rgb.dtype} {tuple(image_rgb.shape)}")
        height, width = image_rgb.shape[:2]
        result = self._hands.process(np.ascontiguousarray(image_rgb))
        found = []
        for landmarks, world, handedness in zip(
            result.multi_hand_landmarks or (),
            result.multi_hand_world_landmarks or (),
            result.multi_handedness or (),
            strict=True,
        ):
            label = handedness.classification[0]
            side = label.label.lower()
            if not self.mirrored:
                side = "left" if side == "right" else "right"
            found.append(
                HandDetection(
                    landmarks_px=np.array([[p.x * width, p.y * height] for p in landmarks.landmark], dtype=np.float64),
                    world_mm=np.array([[p.x, p.y, p.z] for p in world.landmark], dtype=np.float64) * 1000.0,
                    handedness=side,
                    score=float(label.score),
                )
            )
        return sorted(found, key=lambda hand: -hand.score)

    def close(self) -> None:
        """Free MediaPipe's graph (idempotent)."""
        if self._hands is not None:
            self._hands.close()
            self._hands = None

    def __enter__(self) -> HandDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
