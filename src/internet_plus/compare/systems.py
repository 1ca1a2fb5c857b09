"""The two systems of a comparison, run on :class:`~internet_plus.compare.labelled.LabelledImage` s: MediaPipe Hands
on the whole photo (:func:`run_mediapipe`) and a checkpoint of ours on the evaluation crop (:class:`OursModel`).

Each gives, per annotated hand, a :class:`HandPrediction`: whether the hand was found, its 21 joints in the original
image's pixels and 21 root-relative 3-D joints (project order):

* **MediaPipe**: :class:`~internet_plus.detect.mediapipe_hands.HandDetector` on the photo (static-image mode); its
  detections are assigned to the annotated hands by :func:`~internet_plus.compare.metrics.match_hands`, whatever
  handedness MediaPipe gives them (whether the label agrees is recorded). 3-D: the world landmarks (mm, MediaPipe's
  own origin and scale), made root-relative.
* **Ours**: one crop per photo (``process_bbox`` of a box, the identity crop; internet §6.1), the network, InterNet's
  decoding (internet §5.1, §5.2) with the annotation's intrinsics and wrist depths (InterNet's 'gt' mode); each
  annotated hand is read from its own block of the 42 joints. The box (:func:`crop_plans`) is either the data set's
  evaluation box (``annotated``: ours then gives a pose for every annotated hand, its detection rate is the box's,
  100 %) or the one ``predict.py boxes=auto`` would crop from MediaPipe's detections (``mediapipe``:
  :func:`~internet_plus.detect.boxes.choose_box`; ours then gives a pose for an annotated hand when the box holds the
  MediaPipe detection matched to it, so both systems stand on the same detector).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from internet_plus.checkpoints import load_model
from internet_plus.compare.labelled import LabelledImage
from internet_plus.compare.metrics import landmarks_to_hand, match_cost, match_hands
from internet_plus.data.images import read_rgb
from internet_plus.data.transforms import AugParams, crop_affine, process_bbox, transform_points, warp_image
from internet_plus.detect.boxes import BoxRule, choose_box
from internet_plus.detect.mediapipe_hands import HandDetection, HandDetector
from internet_plus.joints import HAND_NAMES, hand_slice
from internet_plus.utils.devices import select_device

__all__ = [
    "BOX_MODES",
    "Crop",
    "HandPrediction",
    "OursModel",
    "OursOutput",
    "crop_plans",
    "match_detections",
    "run_mediapipe",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class HandPrediction:
    """One system's answer for one annotated hand.

    Attributes:
        found: the system gave a pose for this hand.
        uv: 21×2 pixels of the original image (``None`` when not found).
        rel3d: 21×3 root-relative joints in the system's own millimetres (``None`` when not found).
        handedness_agrees: the system's left/right label for the hand matches the annotation (``None``: not found, or
            the system gives no such label).
        detection: MediaPipe: the index of the detection assigned to the hand.
    """

    found: bool
    uv: np.ndarray | None = None
    rel3d: np.ndarray | None = None
    handedness_agrees: bool | None = None
    detection: int | None = None


MISSED = HandPrediction(found=False)

# --------------------------------------------------------------------------------------------------- MediaPipe


def match_detections(image: LabelledImage, detections: Sequence[HandDetection]) -> list[HandPrediction]:
    """MediaPipe's detections of one photo assigned to its annotated hands (:func:`match_hands`)."""
    landmarks = [landmarks_to_hand(d.landmarks_px) for d in detections]
    cost = np.array([[match_cost(lm, hand.uv, hand.annotated) for lm in landmarks] for hand in image.hands])
    out = []
    for hand, pick in zip(image.hands, match_hands(cost.reshape(len(image.hands), len(detections))), strict=True):
        if pick is None:
            out.append(MISSED)
            continue
        world = landmarks_to_hand(detections[pick].world_mm)
        out.append(
            HandPrediction(
                found=True,
                uv=landmarks[pick],
                rel3d=world - world[0],
                handedness_agrees=detections[pick].handedness == HAND_NAMES[hand.side],
                detection=pick,
            )
        )
    return out


def run_mediapipe(
    images: Sequence[LabelledImage], *, min_detection_confidence: float = 0.3
) -> tuple[list[list[HandPrediction]], list[list[HandDetection]]]:
    """MediaPipe Hands on every photo (at most two hands each): per photo, the prediction for each annotated hand and
    all raw detections (for the montage)."""
    predictions, raw = [], []
    with HandDetector(
        static_image_mode=True, max_num_hands=2, min_detection_confidence=min_detection_confidence
    ) as det:
        for image in images:
            detections = det(read_rgb(image.image_path))
            raw.append(detections)
            predictions.append(match_detections(image, detections))
    return predictions, raw


# --------------------------------------------------------------------------------------------------- ours


#: ``--boxes``: where our model's crop comes from (module docstring).
BOX_MODES = ("annotated", "mediapipe")


@dataclass(frozen=True)
class Crop:
    """Where our model looks in one photo: ``box`` (``[x, y, w, h]`` before ``process_bbox``; ``None``: no crop, the
    detector found nothing) and, per annotated hand, whether the crop is meant to hold it."""

    box: np.ndarray | None
    holds: tuple[bool, ...]


def crop_plans(
    images: Sequence[LabelledImage],
    mode: str,
    detections: Sequence[Sequence[HandDetection]] = (),
    mediapipe: Sequence[Sequence[HandPrediction]] = (),
) -> list[Crop]:
    """Our model's crop of each photo for ``--boxes`` ``mode`` (:data:`BOX_MODES`): the data set's box, or the box
    ``predict.py boxes=auto`` chooses from MediaPipe's ``detections`` (default :class:`BoxRule`), holding the annotated
    hands whose matched MediaPipe detection (``mediapipe``, from :func:`match_detections`) it holds."""
    if mode == "annotated":
        return [Crop(np.asarray(image.box, dtype=np.float64), (True,) * len(image.hands)) for image in images]
    if mode != "mediapipe":
        raise ValueError(f"--boxes {mode!r}: expected one of {', '.join(BOX_MODES)}")
    plans = []
    for image, found, predictions in zip(images, detections, mediapipe, strict=True):
        choice = choose_box(found, BoxRule())
        if choice is None:
            plans.append(Crop(None, (False,) * len(image.hands)))
            continue
        box, held = choice
        plans.append(Crop(np.asarray(box, dtype=np.float64), tuple(p.detection in held for p in predictions)))
    return plans


@dataclass(frozen=True, eq=False)
class OursOutput:
    """The network's decoded answer for one photo's crop: 42 joints and the crop box (for the montage)."""

    uv: np.ndarray  # 42×2 original pixels
    cam: np.ndarray  # 42×3 mm, each hand at the annotated wrist depth
    hand_prob: np.ndarray  # [right, left]
    box_processed: np.ndarray  # [x, y, w, h] after process_bbox

    def hand(self, side: int) -> HandPrediction:
        """The prediction for one annotated hand: its block of the 42 joints (handedness is not a label here)."""
        block = hand_slice(side)
        cam = self.cam[block]
        return HandPrediction(found=True, uv=self.uv[block].copy(), rel3d=cam - cam[0])


class OursModel:
    """A checkpoint of this project's model, evaluated on labelled photos as the evaluation crops them.

    Args:
        ckpt: the checkpoint file (:func:`~internet_plus.checkpoints.load_model` checks it).
        device: ``auto``, ``cpu`` or ``cuda[:<index>]``.
        batch_size: crops per forward pass.
    """

    def __init__(self, ckpt: str | PathLike[str], device: str = "auto", batch_size: int = 8) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"--batch-size {batch_size} must be >= 1")
        self.path = Path(ckpt).expanduser()
        self.device = select_device(device, "--device ")
        self.model = load_model(self.path, option="--ckpt").eval().to(self.device)
        self.batch_size = int(batch_size)
        self.input_size = int(self.model.codec.input_size)

    def _crop(self, image: LabelledImage, box: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(3×S×S crop in [0, 1], 2×3 inverse affine, processed box): InterNet's evaluation crop (internet §6.1)."""
        rgb = read_rgb(image.image_path)
        processed = process_bbox(box)
        trans, inv_trans = crop_affine(processed, AugParams.identity(), self.input_size, rgb.shape[1])
        crop = warp_image(rgb.astype(np.float32), trans, self.input_size) * np.float32(1.0 / 255.0)
        return np.ascontiguousarray(crop.transpose(2, 0, 1)), inv_trans, processed

    @torch.no_grad()
    def _decode(self, images: Sequence[LabelledImage], boxes: Sequence[np.ndarray]) -> list[OursOutput]:
        crops, inverses, processed = zip(
            *(self._crop(im, box) for im, box in zip(images, boxes, strict=True)), strict=True
        )
        f32 = {"dtype": torch.float32, "device": self.device}
        batch = {
            "inv_trans": torch.as_tensor(np.stack(inverses), **f32),
            "abs_root_depth": torch.as_tensor(np.stack([image.root_depths() for image in images]), **f32),
            "focal": torch.as_tensor(np.stack([image.focal for image in images]), **f32),
            "princpt": torch.as_tensor(np.stack([image.princpt for image in images]), **f32),
        }
        pred = self.model.codec.decode(self.model(torch.as_tensor(np.stack(crops), **f32)), batch)
        joints_img = pred["joints_img"].double().cpu().numpy()
        cam = pred["joints_cam"].double().cpu().numpy()
        prob = pred["hand_prob"].double().cpu().numpy()
        return [
            OursOutput(transform_points(joints_img[k, :, :2], inverses[k]), cam[k], prob[k], processed[k])
            for k in range(len(images))
        ]

    def run(
        self, images: Sequence[LabelledImage], crops: Sequence[Crop]
    ) -> tuple[list[list[HandPrediction]], list[OursOutput | None]]:
        """Per photo, the prediction for each annotated hand (found where its crop holds it), and the decoded outputs
        (``None`` for a photo without a crop; for the montage)."""
        todo = [(k, crop.box) for k, crop in enumerate(crops) if crop.box is not None]
        outputs: list[OursOutput | None] = [None] * len(images)
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            decoded = self._decode([images[k] for k, _ in chunk], [box for _, box in chunk])
            for (k, _), output in zip(chunk, decoded, strict=True):
                outputs[k] = output
        predictions = [
            [
                out.hand(hand.side) if out is not None and held else MISSED
                for hand, held in zip(image.hands, crop.holds, strict=True)
            ]
            for image, crop, out in zip(images, crops, outputs, strict=True)
        ]
        return predictions, outputs
