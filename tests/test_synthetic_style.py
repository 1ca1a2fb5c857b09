"""The synthetic set's difficulty options (``SceneStyle``): colour glove, limited tilt, plain backgrounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from internet_plus.data.rhd_format import hand_of_mask_id
from internet_plus.data.synthetic import SceneStyle, SyntheticDatasetError, generate_rhd_dataset, render_sample
from internet_plus.data.synthetic.hand_model import tilted_rotation
from internet_plus.data.synthetic.render import GLOVE_COLORS

GLOVE = SceneStyle(hands="glove", max_tilt_deg=30.0, background="plain")


def _finger_of_mask_id(ids: np.ndarray) -> np.ndarray:
    """0-4 for the finger segments of either hand, 5 for a palm, -1 otherwise (RHD ids 2-33, 16 per hand)."""
    local = (ids.astype(int) - 2) % 16
    finger = np.where(local == 15, 5, local // 3)
    return np.where((ids >= 2) & (ids <= 33), finger, -1)


def test_glove_colours_each_finger_by_its_own_colour() -> None:
    unit = GLOVE_COLORS / np.linalg.norm(GLOVE_COLORS, axis=1, keepdims=True)
    checked = 0
    for index in range(6):
        color, mask, _, _ = render_sample(0, "training", index, 0.3, style=GLOVE)
        finger = _finger_of_mask_id(mask)
        for part in range(6):
            pixels = color[finger == part].astype(np.float64)
            if len(pixels) < 30:
                continue
            mean = pixels.mean(0)
            nearest = int(np.argmax(unit @ (mean / np.linalg.norm(mean))))
            assert nearest == part, f"sample {index}: part {part} looks like glove colour {nearest} ({mean})"
            checked += 1
    assert checked >= 20


def test_skin_hands_are_not_gloved() -> None:
    color, mask, _, _ = render_sample(0, "training", 0, 0.3)
    finger = _finger_of_mask_id(mask)
    means = [color[finger == d].mean(0) for d in range(5) if (finger == d).sum() >= 30]
    assert len(means) >= 2
    assert max(np.abs(m - means[0]).max() for m in means) < 40  # one skin tone for every finger


def test_tilted_rotation_keeps_the_palm_facing_the_camera() -> None:
    rng = np.random.default_rng(0)
    limit = 20.0
    rotations = [tilted_rotation(rng, limit) for _ in range(500)]
    normals = np.array([r[:, 2] for r in rotations])  # the palm normal in camera coordinates
    for r in rotations:
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(r) == pytest.approx(1.0)
    # Two tilts of at most 20° each: the normal is within ~28.2° of the optical axis, either way round.
    angle = np.degrees(np.arccos(np.abs(normals[:, 2])))
    assert angle.max() <= 28.3 and angle.max() > 15
    assert 0.35 < np.mean(normals[:, 2] > 0) < 0.65  # palm and back towards the camera, half each
    in_plane = np.degrees(np.arctan2(np.array([r[1, 1] for r in rotations]), np.array([r[0, 1] for r in rotations])))
    assert np.histogram(in_plane, bins=8, range=(-180, 180))[0].min() > 30  # every in-plane direction


def test_plain_background_is_one_colour() -> None:
    plain, mask_plain, _, _ = render_sample(0, "training", 3, 0.0, style=SceneStyle(background="plain"))
    varied, mask_varied, _, _ = render_sample(0, "training", 3, 0.0)
    plain_std = plain[mask_plain == 0].astype(float).std(0).max()
    assert plain_std < 8
    assert varied[mask_varied == 0].astype(float).std(0).max() > plain_std


def test_style_is_recorded_and_another_style_needs_another_folder(tmp_path: Path) -> None:
    root = tmp_path / "set"
    generate_rhd_dataset(root, num_train=2, num_eval=1)
    assert "style" not in json.loads((root / "synthetic_meta.json").read_text())  # the default adds no key
    before = (root / "training" / "color" / "00000.png").read_bytes()
    glove = {"hands": "glove", "max_tilt_deg": 30}
    with pytest.raises(SyntheticDatasetError, match=r"style: None there, \{'hands': 'glove'"):
        generate_rhd_dataset(root, num_train=2, num_eval=1, style=glove)
    assert (root / "training" / "color" / "00000.png").read_bytes() == before  # untouched
    other = generate_rhd_dataset(tmp_path / "glove", num_train=2, num_eval=1, style=glove)
    meta = json.loads((other / "synthetic_meta.json").read_text())
    assert meta["style"] == {"hands": "glove", "max_tilt_deg": 30.0, "background": "varied"}
    assert (other / "training" / "color" / "00000.png").read_bytes() != before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hands": "mitten"}, "hands='mitten'; valid: skin, glove"),
        ({"background": "sky"}, "background='sky'; valid: varied, plain"),
        ({"max_tilt_deg": 200}, r"max_tilt_deg=200: use a value in \[0, 180\]"),
        ({"tilt": 3}, r"unknown synthetic style field\(s\) \['tilt'\]"),
    ],
)
def test_bad_style_fields_are_named(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SceneStyle.of(fields)


def test_glove_hands_keep_the_annotations_consistent() -> None:
    """The style changes pixels, not geometry: visible joints still lie on their own hand's mask."""
    for index in range(4):
        _, mask, _, anno = render_sample(1, "evaluation", index, 0.5, style=GLOVE)
        uv, vis = anno["uv_vis"][:, :2], anno["uv_vis"][:, 2] > 0
        px = np.clip(np.round(uv).astype(int), 0, mask.shape[0] - 1)
        owners = hand_of_mask_id(mask[px[:, 1], px[:, 0]])
        assert (owners[vis] >= 0).all()
