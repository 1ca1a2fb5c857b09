"""The Stereo Hand Pose Tracking Benchmark (STB) read from its official files, its torch ``Dataset`` and data module.

Format: ``docs/reference/datasets.md`` §B. Protocol: InterNet's STB loader (``docs/reference/internet.md`` §6.4,
identical to its RHD loader, §6.3) on the raw STB files instead of InterNet's converted JSON:

- **files**: ``labels/<seq>_SK.mat`` (or ``_BB.mat``), one variable ``handPara`` of shape 3×21×N in mm, frame ``i``
  = ``handPara[:, :, i]`` = image ``<prefix>_<i>.png`` (no zero padding; datasets §B.1, §B.2). Images live in
  ``<root>/images/<seq>/`` (the official layout) or ``<root>/<seq>/`` (the layout several codebases use, §B.1);
  both are accepted, per sequence. N need not be 1500, but every label frame needs its image and the folder may not
  hold more frames than the label file;
- **views** (``camera``, §B.3, §B.4): ``sk`` (default) = the RealSense F200 colour images ``SK_color_<i>.png`` with
  the ``_SK`` labels, which are in the *depth*-camera frame and are converted to the colour frame with
  X_color = Rᵀ (X_SK − T); ``bb_left`` / ``bb_right`` = the Bumblebee2 stereo views ``BB_left_<i>.png`` /
  ``BB_right_<i>.png`` with the ``_BB`` labels (left-camera frame; the right view subtracts the 120.054 mm baseline
  from x). All intrinsics and extrinsics are the module constants below (the STB authors' README);
- **palm → wrist**: STB's joint 0 is the palm centre, the project's root is the wrist. By default the wrist is
  synthesised as ``wrist = ring_MCP + 2·(palm − ring_MCP)``, the rule of hand3d (``use_wrist_coord=True``),
  hand-graph-cnn (``palm2wrist``) and bihand (datasets §B.5): the palm centre lies about halfway between the
  wrist and the ring MCP, so pushing it as far again along that line lands near the wrist, and using the rule most
  later works use keeps our wrist-relative EPE comparable with theirs. ``wrist_rule`` selects bihand's alternatives
  (``middle_mcp`` ×2.2, ``mcp_mean`` = mean of the four finger MCPs ×2.25) or ``palm`` (keep the palm centre as
  root: Zimmermann & Brox's STB protocol); ``wrist_factor`` overrides the factor (see :data:`WRIST_RULES`);
- **joint order**: STB lists the palm, then the fingers little → thumb, each MCP → tip (§B.2). It becomes the
  project's order (wrist, thumb … little, base → tip) in exactly one place, :func:`native_to_project`, with the
  index array :data:`PROJECT_FROM_STB`;
- **one left hand per frame** (§B.2): its joints fill the project's *left* block (21-41), ``hand_type`` = [0, 1],
  ``hand_type_valid`` = 1; the right block is zero with ``joint_annotated`` = 0. All 21 joints are annotated (STB
  labels every joint, §B.6); ``joint_valid`` = annotated × inside the crop after augmentation (§6.1);
- **crop box**: the tight box around the ground-truth keypoints projected with the view's intrinsics, then
  ``process_bbox`` (square, ×1.25; §6.1). The absolute root depth is the ground-truth wrist depth (InterNet's 'gt'
  mode, §5.2); ``rel_root_depth`` = ``root_valid`` = 0 (not interacting, §6.4);
- **split** (§B.6): train = B2-B6 Counting + Random (10 sequences), test = B1Counting + B1Random. The data module
  holds its validation set out of the training sequences (``val_fraction``);
- **RootNet** (``rootnet_output``, InterNet's default 'rootnet' mode, :mod:`internet_plus.data.rootnet`): the test
  frames take box (as is) and absolute root depth from ``rootnet_stb_output.json``. Its ``annot_id`` is taken to be
  the frame's position in the standard test split (B1Counting frames 0..N−1, then B1Random), the order of
  InterNet's converted ``STB_test.json`` (one annotation per ``BB_left`` image, frames in order within a sequence),
  whose ids we could not inspect: an assumption (``docs/datasets/rootnet.md``). So it needs ``camera=bb_left`` and
  the standard test sequences, the file must hold exactly one id per test frame, and a frame whose RootNet box does
  not contain the centre of its keypoint box is a bad sample (``on_bad_sample``). The depth is that of InterNet's
  STB root (its JSON's joint 0: STB's palm centre, unconfirmed), so ``wrist_rule=palm`` decodes from the same root;
  other rules log a warning.

Layout problems (a missing root, folder, label file or image, a malformed ``handPara``) raise
:class:`STBLayoutError` (a :class:`~internet_plus.data.errors.DatasetLayoutError`) while the split is read, i.e. at
``setup``, before any training step; the message names the file and shows the expected layout and download page.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from internet_plus.data.base_dataset import HandPoseDataset
from internet_plus.data.datamodule import HandPoseDataModule
from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.rootnet import RootNetSamples, box_centre_inside, read_rootnet_output
from internet_plus.data.sample_checks import annotation_problems, far_crop_keypoints
from internet_plus.data.transforms import (
    AugmentationConfig,
    bbox_from_joints,
    build_single_hand_sample,
)
from internet_plus.data.verify import VerifyItem, VerifyReport, verify_samples
from internet_plus.joints import JOINTS_PER_HAND, LEFT

log = logging.getLogger(__name__)

__all__ = [
    "BB_BASELINE_MM",
    "BB_INTRINSICS",
    "CAMERAS",
    "PROJECT_FROM_STB",
    "SK_COLOR_INTRINSICS",
    "SK_DEPTH_FROM_COLOR_R",
    "SK_DEPTH_FROM_COLOR_RVEC",
    "SK_DEPTH_FROM_COLOR_T",
    "SK_DEPTH_INTRINSICS",
    "STB_DOWNLOAD_PAGE",
    "STB_LAYOUT",
    "STB_SEQUENCES",
    "STB_SPLITS",
    "STBCamera",
    "STBDataModule",
    "STBDataset",
    "STBLayoutError",
    "STBRecord",
    "WRIST_RULES",
    "bb_left_to_right",
    "find_sequence_dir",
    "intrinsic_matrix",
    "native_to_project",
    "palm_to_wrist",
    "project",
    "read_stb_labels",
    "read_stb_split",
    "rodrigues",
    "sk_depth_to_color",
    "verify_stb_records",
]

#: The STB authors' page (README with the camera parameters and the download links; datasets §0, tag STBR).
STB_DOWNLOAD_PAGE = "https://github.com/zhjwustc/icip17_stereo_hand_pose_dataset"

#: The 12 sequences: 6 backgrounds × {Counting, Random} (datasets §B.1).
STB_SEQUENCES: tuple[str, ...] = tuple(f"B{b}{kind}" for b in range(1, 7) for kind in ("Counting", "Random"))

#: The standard split (datasets §B.6): train on B2-B6, evaluate on B1Counting + B1Random.
STB_SPLITS: dict[str, tuple[str, ...]] = {
    "train": tuple(s for s in STB_SEQUENCES if not s.startswith("B1")),
    "test": ("B1Counting", "B1Random"),
}
Split = Literal["train", "test"]
CameraName = Literal["sk", "bb_left", "bb_right"]

#: Image size of every STB view (W, H) (datasets §B.1).
IMAGE_SIZE = (640, 480)

# ---------------------------------------------------------------------------------------------- camera constants
# Source: the STB authors' README (github.com/zhjwustc/icip17_stereo_hand_pose_dataset), repeated in hand3d,
# hand-graph-cnn and bihand; quoted in docs/reference/datasets.md §B.3-§B.4. Units: pixels and millimetres.

#: Bumblebee2 stereo camera (left and right share one K, rectified): (fx, fy, cx, cy).
BB_INTRINSICS = (822.79041, 822.79041, 318.47345, 250.31296)
#: Bumblebee2 baseline: X_right = X_left − (BB_BASELINE_MM, 0, 0).
BB_BASELINE_MM = 120.054
#: RealSense F200 colour camera (``SK_color_*``): (fx, fy, cx, cy).
SK_COLOR_INTRINSICS = (607.92271, 607.88192, 314.78337, 236.42484)
#: RealSense F200 depth camera (``SK_depth_*``; the frame of the ``_SK`` labels; not used for projection here).
SK_DEPTH_INTRINSICS = (475.62768, 474.77709, 336.41179, 238.77962)
#: Colour → depth extrinsics of the F200: X_depth = R·X_color + T, R = Rodrigues(rvec), T in mm.
SK_DEPTH_FROM_COLOR_RVEC = (0.00531, -0.01196, 0.00301)
SK_DEPTH_FROM_COLOR_T = (-24.0381, -0.4563, -1.2326)


def rodrigues(rvec: Sequence[float] | np.ndarray) -> np.ndarray:
    """The rotation matrix of an axis-angle vector (Rodrigues' formula; same as ``cv2.Rodrigues``)."""
    r = np.asarray(rvec, dtype=np.float64).reshape(3)
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * kx + (1.0 - np.cos(theta)) * (kx @ kx)


#: R of :data:`SK_DEPTH_FROM_COLOR_RVEC` (≈ [[0.999924, −0.003042, −0.011952], …], datasets §B.4).
SK_DEPTH_FROM_COLOR_R: np.ndarray = rodrigues(SK_DEPTH_FROM_COLOR_RVEC)
SK_DEPTH_FROM_COLOR_R.setflags(write=False)


def intrinsic_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The 3×3 K of (fx, fy, cx, cy)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def sk_depth_to_color(xyz: np.ndarray) -> np.ndarray:
    """``_SK`` label points (…×3, depth-camera frame, mm) → the colour-camera frame: X_color = Rᵀ (X_SK − T).

    (STBR ``positionCalc``; hand-graph-cnn and bihand write the row-vector form ``(X − T)·R``; datasets §B.3.)
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    return (xyz - np.asarray(SK_DEPTH_FROM_COLOR_T)) @ SK_DEPTH_FROM_COLOR_R


def bb_left_to_right(xyz: np.ndarray) -> np.ndarray:
    """``_BB`` label points (…×3, left Bumblebee frame, mm) → the right Bumblebee camera: x − baseline (§B.3)."""
    return np.asarray(xyz, dtype=np.float64) - np.array([BB_BASELINE_MM, 0.0, 0.0])


def _identity(xyz: np.ndarray) -> np.ndarray:
    return np.asarray(xyz, dtype=np.float64)


@dataclass(frozen=True)
class STBCamera:
    """One STB view: its image file prefix, its label file suffix, its intrinsics and the label → view transform."""

    name: str
    image_prefix: str
    label_suffix: str
    intrinsics: tuple[float, float, float, float]
    description: str

    @property
    def K(self) -> np.ndarray:
        return intrinsic_matrix(*self.intrinsics)

    def to_camera(self, xyz: np.ndarray) -> np.ndarray:
        """Label-frame points (…×3 mm) → this view's camera frame."""
        return {"sk": sk_depth_to_color, "bb_left": _identity, "bb_right": bb_left_to_right}[self.name](xyz)

    def image_name(self, frame: int) -> str:
        return f"{self.image_prefix}_{int(frame)}.png"

    def label_name(self, sequence: str) -> str:
        return f"{sequence}_{self.label_suffix}.mat"


#: The views ``camera`` selects (datasets §B.1, §B.3, §B.4).
CAMERAS: dict[str, STBCamera] = {
    "sk": STBCamera("sk", "SK_color", "SK", SK_COLOR_INTRINSICS, "RealSense F200 colour"),
    "bb_left": STBCamera("bb_left", "BB_left", "BB", BB_INTRINSICS, "Bumblebee2 left"),
    "bb_right": STBCamera("bb_right", "BB_right", "BB", BB_INTRINSICS, "Bumblebee2 right"),
}


def _camera(camera: str | STBCamera) -> STBCamera:
    if isinstance(camera, STBCamera):
        return camera
    if camera not in CAMERAS:
        raise ValueError(f"STB camera must be one of {sorted(CAMERAS)}, got {camera!r}")
    return CAMERAS[camera]


# ---------------------------------------------------------------------------------------------- joint order
# STB native order (21, datasets §B.2): 0 palm centre; 1-4 little MCP, PIP, DIP, tip; 5-8 ring; 9-12 middle;
# 13-16 index; 17-20 thumb MCP, PIP, DIP, tip (each finger base → tip, fingers little → thumb).
STB_PALM = 0
STB_MCP = {"little": 1, "ring": 5, "middle": 9, "index": 13, "thumb": 17}

#: ``project_hand = native_hand[PROJECT_FROM_STB]``: the project's wrist (STB's joint 0 after :func:`palm_to_wrist`),
#: then thumb, index, middle, ring, little, each base → tip (``internet_plus.joints``). The only joint-order mapping.
PROJECT_FROM_STB: np.ndarray = np.array(
    [STB_PALM] + [STB_MCP[f] + k for f in ("thumb", "index", "middle", "ring", "little") for k in range(4)]
)
PROJECT_FROM_STB.setflags(write=False)

#: Palm → wrist rules: name → (native reference joints averaged into the reference point, default factor).
#: wrist = ref + factor·(palm − ref); ``palm`` keeps the palm centre (factor 1). Sources: datasets §B.5.
WRIST_RULES: dict[str, tuple[tuple[int, ...], float]] = {
    "ring_mcp": ((STB_MCP["ring"],), 2.0),  # hand3d use_wrist_coord=True, hand-graph-cnn palm2wrist, bihand
    "middle_mcp": ((STB_MCP["middle"],), 2.2),  # bihand alternative
    "mcp_mean": ((STB_MCP["little"], STB_MCP["ring"], STB_MCP["middle"], STB_MCP["index"]), 2.25),  # bihand alt.
    "palm": ((STB_MCP["ring"],), 1.0),  # the palm centre itself (Zimmermann & Brox's STB root)
}


def palm_to_wrist(native: np.ndarray, rule: str = "ring_mcp", factor: float | None = None) -> np.ndarray:
    """STB-order joints (…×21×3) with joint 0 (the palm centre) replaced by the synthesised wrist (a copy).

    ``wrist = ref + factor·(palm − ref)`` with the reference point and default factor of :data:`WRIST_RULES`.
    The rule is affine, so it gives the same wrist in any camera frame.
    """
    if rule not in WRIST_RULES:
        raise ValueError(f"STB wrist_rule must be one of {sorted(WRIST_RULES)}, got {rule!r}")
    refs, default = WRIST_RULES[rule]
    factor = default if factor is None else float(factor)
    if rule == "palm" and factor != 1.0:
        raise ValueError(f"wrist_rule='palm' keeps the palm centre; wrist_factor must be null or 1, got {factor}")
    out = np.array(native, dtype=np.float64, copy=True)
    if rule == "palm":
        return out
    ref = out[..., list(refs), :].mean(axis=-2)
    out[..., STB_PALM, :] = ref + factor * (out[..., STB_PALM, :] - ref)
    return out


def native_to_project(native: np.ndarray) -> np.ndarray:
    """Reorder the joint axis (axis −2, 21 joints) from STB's order to the project's one-hand order."""
    native = np.asarray(native)
    if native.shape[-2] != JOINTS_PER_HAND:
        raise ValueError(f"expected {JOINTS_PER_HAND} joints on axis -2, got shape {native.shape}")
    return np.ascontiguousarray(native[..., PROJECT_FROM_STB, :])


def project(xyz: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of …×3 camera points: u = fx·x/z + cx, v = fy·y/z + cy."""
    xyz = np.asarray(xyz, dtype=np.float64)
    uvw = xyz @ np.asarray(K, dtype=np.float64).T
    return uvw[..., :2] / uvw[..., 2:]


# ---------------------------------------------------------------------------------------------- layout and errors

#: The folder tree the reader expects (datasets §B.1); ``SK_depth_*`` is not read.
STB_LAYOUT = """\
<root>/
  images/                                   (this level may be left out: <root>/B1Counting/... works too)
    B1Counting/ B1Random/ ... B6Counting/ B6Random/
      SK_color_0.png ... SK_color_1499.png  (camera=sk, 640x480)
      BB_left_0.png  ... BB_left_1499.png   (camera=bb_left)
      BB_right_0.png ... BB_right_1499.png  (camera=bb_right)
  labels/
    B1Counting_SK.mat ... B6Random_SK.mat   (camera=sk; variable handPara, 3 x 21 x frames, mm)
    B1Counting_BB.mat ... B6Random_BB.mat   (camera=bb_left, bb_right)"""


class STBLayoutError(DatasetLayoutError):
    """The STB folder does not have the expected files (the message names the file and the expected layout)."""


def _layout_error(problem: str, expected: str = "") -> STBLayoutError:
    expected = f"\n{expected}" if expected else ""
    return STBLayoutError(
        f"{problem}{expected}\nExpected the STB layout:\n{STB_LAYOUT}\n"
        f"Download STB from {STB_DOWNLOAD_PAGE} and set data.root to the folder that holds labels/ (and images/)."
    )


def _expected_files(root: Path, sequences: Sequence[str], camera: STBCamera) -> str:
    lines = [f"For camera={camera.name} these files were expected under {root}:"]
    for seq in sequences:
        lines.append(
            f"  labels/{camera.label_name(seq)}  and  images/{seq}/{camera.image_name(0)}, "
            f"{camera.image_name(1)}, ... (or {seq}/{camera.image_name(0)}, ...)"
        )
    return "\n".join(lines)


def find_sequence_dir(root: str | PathLike[str], sequence: str) -> Path | None:
    """The image folder of ``sequence``: ``<root>/images/<seq>`` (official) or ``<root>/<seq>``; ``None`` if neither."""
    root = Path(root)
    for candidate in (root / "images" / sequence, root / sequence):
        if candidate.is_dir():
            return candidate
    return None


def _check_sequences(sequences: Sequence[str]) -> tuple[str, ...]:
    sequences = tuple(str(s) for s in sequences)
    unknown = [s for s in sequences if s not in STB_SEQUENCES]
    if unknown or not sequences:
        raise ValueError(f"STB sequences must be a non-empty subset of {list(STB_SEQUENCES)}, got {list(sequences)}")
    return sequences


def read_stb_labels(path: str | PathLike[str]) -> np.ndarray:
    """``handPara`` of one label file as an N×21×3 float64 array (frame, STB-order joint, xyz in mm).

    Raises:
        STBLayoutError: the file is unreadable, has no ``handPara`` or it is not a finite 3×21×N array (N ≥ 1).
    """
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path))
    except (NotImplementedError, ValueError, TypeError, OSError) as err:
        raise _layout_error(f"STB label file {path} cannot be read as a MATLAB v5 .mat file ({err}).") from err
    if "handPara" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise _layout_error(f"STB label file {path} has no variable 'handPara' (found: {found}).")
    try:
        para = np.asarray(mat["handPara"], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise _layout_error(f"STB label file {path}: 'handPara' is not numeric ({err}).") from err
    if para.ndim == 2 and para.shape == (3, JOINTS_PER_HAND):  # MATLAB drops a trailing singleton: one frame
        para = para[:, :, None]
    if para.ndim != 3 or para.shape[:2] != (3, JOINTS_PER_HAND) or para.shape[2] < 1:
        raise _layout_error(
            f"STB label file {path}: 'handPara' must have shape (3, 21, frames), got {tuple(para.shape)}."
        )
    if not np.isfinite(para).all():
        raise _layout_error(f"STB label file {path}: 'handPara' contains non-finite values.")
    return np.ascontiguousarray(para.transpose(2, 1, 0))


_FRAME_RE_CACHE: dict[str, re.Pattern[str]] = {}


def _frame_numbers(folder: Path, prefix: str) -> set[int]:
    """Frame numbers of the ``<prefix>_<i>.png`` files in ``folder`` (one ``os.scandir``)."""
    pattern = _FRAME_RE_CACHE.setdefault(prefix, re.compile(rf"^{re.escape(prefix)}_(\d+)\.png$"))
    with os.scandir(folder) as entries:
        return {int(m.group(1)) for e in entries if (m := pattern.match(e.name))}


@dataclass(frozen=True, eq=False)
class STBRecord:
    """One STB frame's annotation in the project's one-hand joint order (arrays are read-only).

    Attributes:
        sequence: e.g. ``"B1Counting"``.
        frame: the frame number (image ``<prefix>_<frame>.png``, label ``handPara[:, :, frame]``).
        key: a unique int per (sequence, frame), seeding the sample's augmentation.
        image_path: the image of the selected view.
        xyz: 21×3 camera-frame joints of the (left) hand in mm, project order, wrist first.
        uv: 21×2 their projection in image pixels.
        K: 3×3 intrinsics of the view.
    """

    sequence: str
    frame: int
    key: int
    image_path: str
    xyz: np.ndarray
    uv: np.ndarray
    K: np.ndarray

    def __post_init__(self) -> None:
        for name in ("xyz", "uv", "K"):
            getattr(self, name).setflags(write=False)


def read_stb_split(
    root: str | PathLike[str],
    split: Split | None = "train",
    *,
    camera: str | STBCamera = "sk",
    wrist_rule: str = "ring_mcp",
    wrist_factor: float | None = None,
    sequences: Sequence[str] | None = None,
) -> list[STBRecord]:
    """All frames of the split's sequences (``sequences`` overrides the standard split), in sequence/frame order.

    Checks the root, the ``labels/`` folder, every label file and its content, each sequence's image folder (either
    layout) and that its ``<prefix>_<i>.png`` frames are exactly the label's frames 0..N−1; raises
    :class:`STBLayoutError` naming the offending path otherwise.
    """
    cam = _camera(camera)
    if sequences is None:
        if split not in STB_SPLITS:
            raise ValueError(f"STB split must be one of {sorted(STB_SPLITS)}, got {split!r}")
        sequences = STB_SPLITS[split]
    sequences = _check_sequences(sequences)
    if wrist_rule not in WRIST_RULES:
        raise ValueError(f"STB wrist_rule must be one of {sorted(WRIST_RULES)}, got {wrist_rule!r}")
    root = Path(root).expanduser()
    expected = _expected_files(root, sequences, cam)
    if not root.is_dir():
        raise _layout_error(f"STB root folder {root} does not exist.", expected)
    labels = root / "labels"
    if not labels.is_dir():
        raise _layout_error(f"STB label folder {labels} is missing (wrong data.root or layout?).", expected)
    K = cam.K
    records: list[STBRecord] = []
    for seq in sequences:
        label_path = labels / cam.label_name(seq)
        if not label_path.is_file():
            raise _layout_error(f"STB label file {label_path} is missing.", expected)
        image_dir = find_sequence_dir(root, seq)
        if image_dir is None:
            raise _layout_error(
                f"STB image folder of sequence {seq} is missing: neither {root / 'images' / seq} nor {root / seq} "
                "exists.",
                expected,
            )
        native = read_stb_labels(label_path)
        n = native.shape[0]
        present = _frame_numbers(image_dir, cam.image_prefix)
        missing = [i for i in range(n) if i not in present]
        if missing:
            shown = ", ".join(str(image_dir / cam.image_name(i)) for i in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise _layout_error(
                f"{len(missing)} image(s) of the {n} frames labelled in {label_path} are missing: {shown}{more}."
            )
        extra = sorted(i for i in present if i >= n)
        if extra:
            raise _layout_error(
                f"{image_dir} holds {len(present)} {cam.image_prefix} images but {label_path} labels only {n} frames "
                f"(0..{n - 1}); e.g. {image_dir / cam.image_name(extra[0])} has no label. Is the label file "
                "truncated or from another sequence?"
            )
        xyz = native_to_project(palm_to_wrist(cam.to_camera(native), wrist_rule, wrist_factor))
        if (xyz[..., 2] <= 0).any():
            bad = int(np.nonzero((xyz[..., 2] <= 0).any(axis=1))[0][0])
            raise _layout_error(
                f"STB label file {label_path}: frame {bad} has joints at depth <= 0 in the {cam.description} frame "
                "(labels of another camera?)."
            )
        uv = project(xyz, K)
        base = STB_SEQUENCES.index(seq) * 1_000_000
        for i in range(n):
            records.append(
                STBRecord(
                    sequence=seq,
                    frame=i,
                    key=base + i,
                    image_path=str(image_dir / cam.image_name(i)),
                    xyz=xyz[i].copy(),
                    uv=uv[i].copy(),
                    K=K.copy(),
                )
            )
    log.info("STB: %d frames of %s (%s view) under %s", len(records), ", ".join(sequences), cam.description, root)
    return records


def verify_stb_records(records: Sequence[STBRecord], dataset: str = "STB") -> VerifyReport:
    """``data.verify=true``: open every image of ``records`` and range-check their annotations.

    (The label files' shape, finiteness and positive depths, and the presence of every image, are checked while the
    split is read.) Per frame: the image decodes, the joints lie at 0 < z < 5 m, they project within one image size
    of the image, ``K`` has positive focal lengths. Logs a summary.

    Raises:
        DatasetLayoutError: after the whole pass, listing every problem (each naming the image file and label file).
    """
    items = [
        VerifyItem(
            name=f"{r.image_path} (frame {r.frame} of {r.sequence})",
            image=r.image_path,
            xyz_mm=r.xyz,
            uv=r.uv,
            K=r.K,
        )
        for r in records
    ]
    return verify_samples(items, dataset)


# ---------------------------------------------------------------------------------------------- Dataset


class STBDataset(HandPoseDataset):
    """STB frames as the sample dict of ``docs/architecture.md`` (InterNet's STB protocol; module docstring).

    Args:
        root: the STB folder (holds ``labels/`` and ``images/`` or the sequence folders).
        split: ``"train"`` (B2-B6) or ``"test"`` (B1).
        camera: ``"sk"`` (default), ``"bb_left"`` or ``"bb_right"``.
        input_size: side S of the square network input.
        augment: draw InterNet's augmentation (§6.1) per sample; otherwise the identity crop.
        augmentation: an :class:`AugmentationConfig` or a mapping of its fields (default: InterNet's values).
        seed: with the epoch (:meth:`set_epoch`) and the record key, seeds each sample's augmentation.
        indices: positions of the split's frames to keep (default: all), in this order.
        wrist_rule, wrist_factor: the palm → wrist rule (:func:`palm_to_wrist`).
        sequences: read these sequences instead of the split's.
        records: the split's records if already read (:func:`read_stb_split`), so that several subsets share them.
        on_bad_image: ``"raise"`` (an unreadable image stops with its file name) or ``"skip"`` (the sample is replaced
            by the next readable one, the file name is logged and :attr:`bad_images` counts it, across loader workers;
            :class:`~internet_plus.data.bad_images.BadImagePolicy`).
        rootnet: RootNet's entries of the kept frames, in their order: each frame's crop box (as is) and absolute
            root depth come from them (InterNet's 'rootnet' mode, §5.2). ``None``: the ground-truth box and depth.
        warp_on: ``"worker"`` or ``"device"`` (:mod:`internet_plus.data.device_warp`).

    ``dataset[i]`` gives sample ``i`` at the epoch of :meth:`set_epoch`; ``dataset[(epoch, i)]`` at that epoch.
    """

    def __init__(
        self,
        root: str | PathLike[str],
        split: Split = "train",
        camera: CameraName = "sk",
        input_size: int = 256,
        augment: bool = False,
        augmentation: AugmentationConfig | Mapping[str, Any] | None = None,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        wrist_rule: str = "ring_mcp",
        wrist_factor: float | None = None,
        sequences: Sequence[str] | None = None,
        records: Sequence[STBRecord] | None = None,
        on_bad_image: str = "raise",
        rootnet: RootNetSamples | None = None,
        warp_on: str = "worker",
    ) -> None:
        super().__init__()
        self._init_bad_image_policy(on_bad_image, name="STB", where=f"STB {split}")
        self.root = Path(root).expanduser()
        self.split = split
        self.camera = _camera(camera).name
        self._init_sampling(
            input_size=input_size, augment=augment, augmentation=augmentation, seed=seed, warp_on=warp_on
        )
        if records is None:
            records = read_stb_split(
                self.root,
                split,
                camera=self.camera,
                wrist_rule=wrist_rule,
                wrist_factor=wrist_factor,
                sequences=sequences,
            )
        self.records: list[STBRecord] = self._select_records(list(records), indices, f"frames of STB {split}")
        self._init_rootnet(rootnet)

    @property
    def sample_ids(self) -> list[tuple[str, int]]:
        """(sequence, frame) of this dataset's samples, in order."""
        return [(r.sequence, r.frame) for r in self.records]

    def _augmentation_key(self, index: int) -> int:
        return self.records[index].key

    def _sample(self, index: int, image: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        params = self.augmentation_params(index, epoch)

        # STB shows one left hand, every joint annotated
        return build_single_hand_sample(
            image,
            LEFT,
            record.xyz,
            record.uv,
            1.0,
            record.K,
            params,
            self.input_size,
            index,
            **self.single_hand_rootnet(index),
            warp_on=self.warp_on,
        )

    def __repr__(self) -> str:
        return (
            f"STBDataset(root={str(self.root)!r}, split={self.split!r}, camera={self.camera!r}, samples={len(self)}, "
            f"input_size={self.input_size}, augment={self.augment})"
        )


# ---------------------------------------------------------------------------------------------- data module


class STBDataModule(HandPoseDataModule):
    """STB (``train`` = B2-B6 → training + validation hold-out, ``test`` = B1Counting + B1Random).

    Args:
        root: the STB folder (holds ``labels/`` and ``images/``, or ``labels/`` and the sequence folders).
        camera: ``sk`` (RealSense colour, default), ``bb_left`` or ``bb_right`` (Bumblebee2 stereo views).
        wrist_rule: palm → wrist rule (``ring_mcp`` default, ``middle_mcp``, ``mcp_mean``, ``palm``).
        wrist_factor: overrides the rule's factor (``None``: the rule's own).
        train_sequences, test_sequences: replace the standard split's sequences (``None``: B2-B6 / B1).
        verify: after reading a split, open every image and range-check every frame's annotation
            (:func:`verify_stb_records`); logs a summary, raises listing every problem.
        rootnet_output: RootNet's ``rootnet_stb_output.json``: the test frames' boxes and absolute root depths come
            from it (InterNet's default protocol; ``annot_id`` = position in the standard test split, so it needs
            ``camera=bb_left`` and the standard test sequences; module docstring); read and checked at setup.
            ``None``: the ground truth. Never used for training or validation.
        Other arguments (``on_bad_image`` among them): :class:`~internet_plus.data.datamodule.HandPoseDataModule`.
    """

    def __init__(
        self,
        root: str,
        camera: CameraName = "sk",
        wrist_rule: str = "ring_mcp",
        wrist_factor: float | None = None,
        train_sequences: Sequence[str] | None = None,
        test_sequences: Sequence[str] | None = None,
        verify: bool = False,
        rootnet_output: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = str(Path(str(root)).expanduser())
        self.camera = _camera(camera).name
        self.verify = bool(verify)
        if wrist_rule not in WRIST_RULES:
            raise ValueError(f"data.wrist_rule must be one of {sorted(WRIST_RULES)}, got {wrist_rule!r}")
        self.wrist_rule = wrist_rule
        self.wrist_factor = None if wrist_factor is None else float(wrist_factor)
        palm_to_wrist(np.ones((JOINTS_PER_HAND, 3)), wrist_rule, self.wrist_factor)  # argument check, not data
        self.sequences: dict[str, tuple[str, ...]] = {
            "train": _check_sequences(train_sequences) if train_sequences is not None else STB_SPLITS["train"],
            "test": _check_sequences(test_sequences) if test_sequences is not None else STB_SPLITS["test"],
        }
        self._records: dict[str, list[STBRecord]] = {}
        self.rootnet_output = None if rootnet_output is None else str(Path(str(rootnet_output)).expanduser())
        self._rootnet: RootNetSamples | None = None
        if self.rootnet_output is not None:
            _check_rootnet_setup(self.camera, self.sequences["test"], self.wrist_rule)

    def records(self, split: str) -> list[STBRecord]:
        """The records of ``"train"`` or ``"test"``, read (and checked) once."""
        if split not in self._records:
            records = read_stb_split(
                self.root,
                split,  # type: ignore[arg-type]
                camera=self.camera,
                wrist_rule=self.wrist_rule,
                wrist_factor=self.wrist_factor,
                sequences=self.sequences[split],
            )
            if self.verify:
                verify_stb_records(records, f"STB {split} ({self.camera} view, {self.root})")
            self._records[split] = records
        return self._records[split]

    def _split_size(self, split: str) -> int:
        return len(self.records(split))

    def _split_label(self, split: str) -> str:
        return f"STB {split} ({self.camera} view, the label files in {Path(self.root) / 'labels'})"

    def rootnet(self) -> RootNetSamples | None:
        """RootNet's entries of every test frame (in record order), read and checked once; ``None`` without
        ``rootnet_output``. ``annot_id`` = the frame's position in the standard test split (module docstring).

        Raises:
            RootNetError: a malformed file, or its ids are not exactly 0 .. (number of test frames − 1).
        """
        if self.rootnet_output is None:
            return None
        if self._rootnet is None:
            n = len(self.records("test"))
            self._rootnet = read_rootnet_output(self.rootnet_output, "scalar").select(
                np.arange(n), f"the {n} frames of {self._split_label('test')}", exact=True
            )
        return self._rootnet

    def _bad_samples(self, split: str) -> dict[int, str]:
        """The frames that cannot be scored (:func:`~internet_plus.data.sample_checks.annotation_problems`; every
        STB joint is annotated); with ``rootnet_output``, also the test frames whose RootNet box does not contain
        the centre of the hand's keypoint box (:func:`~internet_plus.data.rootnet.box_centre_inside`)."""
        rootnet = self.rootnet() if split == "test" else None
        bad = {}
        for pos, record in enumerate(self.records(split)):
            problems = annotation_problems(record.xyz, 1.0, record.K, uv=record.uv, image_size=IMAGE_SIZE)
            if rootnet is not None and not box_centre_inside(rootnet.bbox[pos], bbox_from_joints(record.uv))[0]:
                problems.append(
                    f"RootNet box {np.round(rootnet.bbox[pos], 1).tolist()} (annot_id {pos} in {rootnet.path}) does "
                    "not contain the hand: the entry is not this frame's"
                )
            if problems:
                label = f"labels/{_camera(self.camera).label_name(record.sequence)}"
                bad[pos] = f"{record.image_path} (frame {record.frame} of {label}): " + "; ".join(problems)
        return bad

    def _uncroppable_training_samples(self) -> dict[int, str]:
        """The training frames whose projected keypoints (the crop box) reach far outside the image."""
        records = self.records("train")
        if not records:
            return {}
        far = far_crop_keypoints(np.stack([r.uv for r in records]), IMAGE_SIZE)
        out = {}
        for pos, problem in far.items():
            record = records[pos]
            label = f"labels/{_camera(self.camera).label_name(record.sequence)}"
            out[pos] = f"{record.image_path} (frame {record.frame} of {label}): {problem}"
        return out

    def _make_dataset(self, split: str, positions: Sequence[int], augment: bool) -> STBDataset:
        return STBDataset(
            root=self.root,
            split=split,  # type: ignore[arg-type]
            camera=self.camera,  # type: ignore[arg-type]
            input_size=self.input_size,
            augment=augment,
            augmentation=self.augmentation,
            seed=self.seed,
            indices=[int(p) for p in positions],
            records=self.records(split),
            on_bad_image=self.on_bad_image,
            rootnet=self._split_rootnet(split, positions),
            warp_on=self.warp_on,
        )


def _check_rootnet_setup(camera: str, test_sequences: Sequence[str], wrist_rule: str) -> None:
    """What ``data.rootnet_output`` needs on STB (module docstring): InterNet's view and test split; a warning when
    the root is not InterNet's STB root (the palm centre).

    Raises:
        ValueError: another view or other test sequences.
    """
    if camera != "bb_left":
        raise ValueError(
            f"data.rootnet_output on STB needs data.camera=bb_left, got {camera!r}: InterNet's STB_test.json, whose "
            "annotations RootNet's rootnet_stb_output.json follows, is the left Bumblebee view; its boxes and depths "
            "do not fit another view (docs/datasets/rootnet.md)"
        )
    if tuple(test_sequences) != STB_SPLITS["test"]:
        raise ValueError(
            f"data.rootnet_output on STB needs the standard test sequences {list(STB_SPLITS['test'])}, got "
            f"{list(test_sequences)}: its annot_id is the frame's position in that split (docs/datasets/rootnet.md)"
        )
    if wrist_rule != "palm":
        log.warning(
            "STB: data.rootnet_output gives the depth of InterNet's STB root (STB's palm centre, as far as known), "
            "but data.wrist_rule=%s makes the root a synthesised wrist, so every decoded depth is off by the "
            "palm-wrist depth difference; data.wrist_rule=palm decodes from InterNet's root (docs/datasets/rootnet.md)",
            wrist_rule,
        )
