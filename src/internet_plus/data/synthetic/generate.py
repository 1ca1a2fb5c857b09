"""Generate a synthetic data set on disk in the exact RHD_published_v2 format (``docs/reference/datasets.md`` §A).

Sample ``i`` of a split is drawn from a generator seeded by ``(seed, split, i)`` only, so it is identical however many
samples are generated, in which order and by how many worker processes. The set is written as
``<root>/{training,evaluation}/{color,mask,depth}/%05d.png`` plus ``anno_<set>.pickle``; ``synthetic_meta.json``
records the parameters and is written *last*, so a half-written set is detected and regenerated; a complete set is
never rewritten with other parameters.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from internet_plus.data.rhd_format import IMAGE_SIZE, RHD_FROM_PROJECT, encode_rhd_depth, hand_of_mask_id
from internet_plus.data.synthetic.hand_model import mirror_to_left, random_rotation, sample_hand_pose, tilted_rotation
from internet_plus.data.synthetic.render import SKIN_TONES, background, draw, hand_primitives, project
from internet_plus.joints import JOINTS_PER_HAND, LEFT, RIGHT, hand_slice

log = logging.getLogger(__name__)

META_FILE = "synthetic_meta.json"
FORMAT_VERSION = 2
SPLIT_CODES = {"training": 0, "evaluation": 1}


class SyntheticDatasetError(RuntimeError):
    """The target folder cannot be used for a synthetic data set."""


HAND_LOOKS = ("skin", "glove")
BACKGROUNDS = ("varied", "plain")


@dataclass(frozen=True)
class SceneStyle:
    """How hard the pictures are; the defaults are the full synthetic set (``docs/synthetic_dataset.md``).

    Args:
        hands: ``"skin"`` (skin tones, fingernails on the back side) or ``"glove"`` (each finger and the palm in its
            own colour: Wang and Popović's colour glove, SIGGRAPH 2009; the quickstart's easier task).
        max_tilt_deg: 180 = uniformly random 3-D orientations; below 180 the in-plane angle stays uniform and the
            out-of-plane tilts about the camera's x and y axes are within ±max_tilt_deg (palm or back towards the
            camera, half each).
        background: ``"varied"`` (noise, gradients, clutter) or ``"plain"`` (one colour, mild noise).
    """

    hands: str = "skin"
    max_tilt_deg: float = 180.0
    background: str = "varied"

    def __post_init__(self) -> None:
        if self.hands not in HAND_LOOKS:
            raise ValueError(f"synthetic style hands={self.hands!r}; valid: {', '.join(HAND_LOOKS)}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"synthetic style background={self.background!r}; valid: {', '.join(BACKGROUNDS)}")
        if not 0.0 <= float(self.max_tilt_deg) <= 180.0:
            raise ValueError(f"synthetic style max_tilt_deg={self.max_tilt_deg}: use a value in [0, 180]")
        object.__setattr__(self, "max_tilt_deg", float(self.max_tilt_deg))

    @classmethod
    def of(cls, value: SceneStyle | dict[str, Any] | None) -> SceneStyle:
        """A style from itself, a dict of its fields (a Hydra config) or None (the default)."""
        if value is None:
            return cls()
        if isinstance(value, SceneStyle):
            return value
        unknown = set(value) - {"hands", "max_tilt_deg", "background"}
        if unknown:
            raise ValueError(
                f"unknown synthetic style field(s) {sorted(unknown)}; valid: hands, max_tilt_deg, background"
            )
        return cls(**value)

    def rotation(self, rng: np.random.Generator) -> np.ndarray:
        """A hand orientation drawn as this style says."""
        return random_rotation(rng) if self.max_tilt_deg >= 180.0 else tilted_rotation(rng, self.max_tilt_deg)


def _place_hand(
    rng: np.random.Generator,
    hand_frame: np.ndarray,
    K: np.ndarray,
    size: int,
    centre_px: np.ndarray,
    style: SceneStyle,
):
    """Rotate a hand randomly and put its wrist 250-700 mm away so that its centre lands near ``centre_px``."""
    for _ in range(20):
        rotation = style.rotation(rng)
        rotated = hand_frame @ rotation.T
        z = float(rng.uniform(250, 700))
        centroid = rotated.mean(axis=0)
        ray = np.linalg.solve(K, np.array([centre_px[0], centre_px[1], 1.0]))
        target = ray * (z + centroid[2])  # the centroid's camera position
        joints = rotated - centroid + target
        if joints[:, 2].min() < 150:
            continue
        uv = project(joints, K)
        inside = np.mean((uv >= 0).all(1) & (uv < size).all(1))
        if inside >= 0.9:
            return joints, rotation
    return joints, rotation


def _offscreen(joints: np.ndarray, K: np.ndarray, size: int) -> np.ndarray:
    """Move a hand sideways until all its joints project outside the image (z stays positive)."""
    shifted = joints.copy()
    for _ in range(50):
        uv = project(shifted, K)
        if (uv[:, 0] > size + 5).all():
            break
        shifted[:, 0] += 60.0
    return shifted


def render_sample(
    seed: int,
    split: str,
    index: int,
    two_hand_fraction: float,
    size: int = IMAGE_SIZE,
    style: SceneStyle | None = None,
):
    """One sample: (colour RGB uint8, mask uint8, depth metres, annotation dict in RHD's native order)."""
    style = style or SceneStyle()
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    f = float(rng.uniform(250, 320))
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    two_hands = rng.random() < two_hand_fraction
    shown = [RIGHT, LEFT] if two_hands else [int(rng.integers(2))]
    joints = np.zeros((2 * JOINTS_PER_HAND, 3))
    prims = []
    for hand in (RIGHT, LEFT):
        pose, _ = sample_hand_pose(rng)
        if hand == LEFT:
            pose = mirror_to_left(pose)
        if hand in shown:
            if two_hands:
                centre = np.array([size * (0.65 if hand == RIGHT else 0.35), size / 2]) + rng.normal(0, 20, 2)
            else:
                centre = size / 2 + rng.normal(0, 25, 2)
            cam, rotation = _place_hand(rng, pose, K, size, centre, style)
            skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.1, 3)
            forearm = -rotation[:, 1]  # away from the fingers (the hand frame's −y axis)
            scale = float(np.linalg.norm(pose[9] - pose[0]) / 93.0)
            prims += hand_primitives(
                cam, hand, K, skin.astype(np.float32), scale, forearm, rotation[:, 2], glove=style.hands == "glove"
            )
        else:
            cam, _ = _place_hand(rng, pose, K, size, np.array([size / 2, size / 2]), style)
            cam = _offscreen(cam, K, size)
        joints[hand_slice(hand)] = cam
    color, mask, depth = draw(background(rng, size, plain=style.background == "plain"), prims, rng)

    uv = project(joints, K)
    vis = np.zeros(len(joints), np.float32)
    inside = (uv >= 0).all(1) & (uv < size - 0.5).all(1)
    px = np.clip(np.round(uv).astype(int), 0, size - 1)
    owner = hand_of_mask_id(mask[px[:, 1], px[:, 0]])
    joint_hand = np.repeat([RIGHT, LEFT], JOINTS_PER_HAND)
    surface_mm = depth[px[:, 1], px[:, 0]] * 1000.0
    vis[inside & (owner == joint_hand) & (np.abs(surface_mm - joints[:, 2]) < 30.0)] = 1.0

    native = RHD_FROM_PROJECT
    annotation = {
        "xyz": (joints[native] / 1000.0).astype(np.float32),
        "uv_vis": np.concatenate([uv[native], vis[native, None]], axis=1).astype(np.float32),
        "K": K.astype(np.float32),
    }
    return color, mask, depth, annotation


def _write_one(args: tuple[Path, int, str, int, float, int, SceneStyle]) -> tuple[int, dict[str, np.ndarray]]:
    folder, seed, split, index, two_hand_fraction, size, style = args
    color, mask, depth, annotation = render_sample(seed, split, index, two_hand_fraction, size, style)
    name = f"{index:05d}.png"
    cv2.imwrite(str(folder / "color" / name), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "mask" / name), mask)
    cv2.imwrite(str(folder / "depth" / name), cv2.cvtColor(encode_rhd_depth(depth), cv2.COLOR_RGB2BGR))
    return index, annotation


def _meta(
    num_train: int, num_eval: int, seed: int, two_hand_fraction: float, image_size: int, style: SceneStyle
) -> dict[str, Any]:
    meta = {
        "generator": "internet_plus.data.synthetic",
        "format_version": FORMAT_VERSION,
        "num_train": num_train,
        "num_eval": num_eval,
        "seed": seed,
        "two_hand_fraction": two_hand_fraction,
        "image_size": image_size,
    }
    if style != SceneStyle():  # the default style adds no key: sets made before styles existed stay valid
        meta["style"] = asdict(style)
    return meta


def read_meta(root: str | Path) -> dict[str, Any] | None:
    """The parameters of the complete synthetic set at ``root``, or None when there is none (or it is partial)."""
    path = Path(root) / META_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def generate_rhd_dataset(
    root: str | Path,
    num_train: int = 2000,
    num_eval: int = 200,
    seed: int = 0,
    two_hand_fraction: float = 0.3,
    image_size: int = IMAGE_SIZE,
    workers: int = 1,
    overwrite: bool = False,
    style: SceneStyle | dict[str, Any] | None = None,
) -> Path:
    """Write (or reuse) a synthetic RHD-format data set at ``root``; returns ``root``.

    An existing complete set with the same parameters is reused. A complete set with other parameters is never
    rewritten in place: it is an error that names both settings (``overwrite=True`` replaces it on purpose). A set
    this generator left unfinished (an interrupted run) is regenerated; any other non-empty folder is refused, so
    nothing a user made is overwritten. ``style``: :class:`SceneStyle` (or a dict of its fields); recorded in
    ``synthetic_meta.json`` when it is not the default.
    """
    root = Path(root).expanduser()
    style = SceneStyle.of(style)
    wanted = _meta(num_train, num_eval, seed, two_hand_fraction, image_size, style)
    existing = read_meta(root)
    if existing == wanted and not overwrite:
        return root
    if existing is not None and not overwrite:
        differ = sorted(k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k))
        raise SyntheticDatasetError(
            f"{root} holds a synthetic data set made with other settings; it is not rewritten in place.\n"
            + "".join(f"  {k}: {existing.get(k)!r} there, {wanted.get(k)!r} requested\n" for k in differ)
            + "Point data.root at a new folder for these settings (or delete that one yourself)."
        )
    if root.exists() and any(root.iterdir()):
        ours = existing is not None or (root / ".synthetic_in_progress").exists()
        if not ours:
            raise SyntheticDatasetError(
                f"{root} exists and is not a synthetic data set made by this generator; refusing to write into it. "
                "Point data.root at an empty or new folder."
            )
        log.info("regenerating the synthetic data set at %s", root)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / ".synthetic_in_progress").touch()
    for split, count in (("training", num_train), ("evaluation", num_eval)):
        folder = root / split
        for sub in ("color", "mask", "depth"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        jobs = [(folder, seed, split, i, two_hand_fraction, image_size, style) for i in range(count)]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(_write_one, jobs, chunksize=16))
        else:
            results = [_write_one(job) for job in jobs]
        with open(folder / f"anno_{split}.pickle", "wb") as fh:
            pickle.dump(dict(results), fh, protocol=4)
    (root / META_FILE).write_text(json.dumps(wanted, indent=2) + "\n")
    (root / ".synthetic_in_progress").unlink()
    return root
