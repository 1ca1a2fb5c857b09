"""InterHand2.6M: the reader and its cached index, the Dataset, the data module, the metrics.

(1) The real sample files (``tests/fixtures/real_samples/interhand2.6m``, release v1.0 schema) are written back into the
official layout (``annotations/test/InterHand2.6M_test_*.json``, ``images/test/<file_name>`` with the official
``Capture<c>/<seq>/cam<cam>/image<frame>.jpg`` names rebuilt from data.json). (2) Sets in the exact official formats
come from the synthetic set's writer, :func:`internet_plus.data.synthetic.interhand.write_interhand_split` (with grey
frames from ``fakes.interhand``). Expected values here are computed from the documented conventions (datasets §C),
independently of the reader's index arrays.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REAL_SAMPLES, TINY, check_sample_keys, compose_config
from fakes.interhand import write_annotation_files, write_grey_frames, write_interhand_tree

from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.interhand import (
    INTERHAND_DOWNLOAD_PAGE,
    PROJECT_FROM_INTERHAND,
    InterHandDataModule,
    InterHandDataset,
    InterHandLayoutError,
    check_images,
    find_interhand_files,
    load_or_build_index,
    select_rows,
    world_to_camera,
)
from internet_plus.data.synthetic.interhand import write_interhand_split
from internet_plus.data.transforms import transform_points
from internet_plus.metrics import functional
from internet_plus.metrics.interhand import InterHandMetrics, internet_mrrpe_roots

ROOT = Path(__file__).resolve().parents[1]
REAL = REAL_SAMPLES / "interhand2.6m"
S = 256

# ------------------------------------------------------------------------------------------------ helpers


def _official_name(image: dict) -> str:
    return f"Capture{image['capture']}/{image['seq_name']}/cam{image['camera']}/image{image['frame_idx']:04d}.jpg"


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The 4 real frames in the v1.0 layout (split ``test``); returns (root, the original data.json)."""
    root = tmp_path_factory.mktemp("ih_real") / "InterHand2.6M"
    data = json.loads((REAL / "test_interhand2.6m_data.json").read_text())
    official = json.loads(json.dumps(data))
    for image in official["images"]:
        target = root / "images" / "test" / _official_name(image)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REAL / image["file_name"], target)
        image["file_name"] = _official_name(image)
    camera = json.loads((REAL / "test_interhand2.6m_camera.json").read_text())
    joint_3d = json.loads((REAL / "test_interhand2.6m_joint_3d.json").read_text())
    write_annotation_files(root, "test", data=official, camera=camera, joint_3d=joint_3d)
    return root, data


@pytest.fixture(scope="module")
def fake_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ih_fake") / "InterHand2.6M"
    return root, write_interhand_tree(root, {"train": 60, "test": 20}, cameras_per_capture=10)


def _index(root: Path, split: str, cache: Path, **kwargs):
    subset = kwargs.pop("subset", "all")
    files = find_interhand_files(
        root, split, subset=subset, **{k: kwargs.pop(k) for k in ("fps", "layout") if k in kwargs}
    )
    return load_or_build_index(files, cache, subset=subset, **kwargs), files


# ------------------------------------------------------------------------------------------------ (1) real samples


def test_real_samples_project_onto_their_images(real_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, data = real_tree
    index, files = _index(root, "test", tmp_path)
    assert files.layout == "v1.0" and len(index) == 4
    cameras = json.loads((REAL / "test_interhand2.6m_camera.json").read_text())
    joints = json.loads((REAL / "test_interhand2.6m_joint_3d.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    for row, ann in enumerate(data["annotations"]):
        image = images[ann["image_id"]]
        record = index.record(row)
        assert record.annot_id == ann["id"] and record.file_name == _official_name(image)
        assert ["right", "left", "interacting"][record.hand_type] == ann["hand_type"]
        assert record.hand_type_valid == ann["hand_type_valid"]
        # independent world -> camera -> pixel of the native joints (datasets §C.3)
        cam_p = cameras[str(image["capture"])]
        rot = np.asarray(cam_p["camrot"][image["camera"]])
        campos = np.asarray(cam_p["campos"][image["camera"]])
        world = np.asarray(joints[str(image["capture"])][str(image["frame_idx"])]["world_coord"])
        cam = (rot @ (world - campos).T).T
        uv = cam[:, :2] / cam[:, 2:] * cam_p["focal"][image["camera"]] + cam_p["princpt"][image["camera"]]
        valid = np.asarray(ann["joint_valid"]).reshape(-1) > 0
        # the reader's project order: project i = native PROJECT_FROM_INTERHAND[i]; wrists are native 20 and 41
        for project_wrist, native_wrist in ((0, 20), (21, 41)):
            expected = cam[native_wrist] if valid[native_wrist] else np.zeros(3)  # unannotated joints are zeroed
            np.testing.assert_allclose(record.joints_cam[project_wrist], expected, atol=1e-3)
        scored = record.joint_annotated > 0
        np.testing.assert_array_equal(scored, valid[PROJECT_FROM_INTERHAND])  # every hand here has a valid wrist
        np.testing.assert_allclose(record.joints_uv[scored], uv[PROJECT_FROM_INTERHAND][scored], atol=1e-3)
        # plausible: valid joints inside the image and inside the annotation box, in front of the camera
        w, h = image["width"], image["height"]
        assert (cam[valid, 2] > 500).all() and (cam[valid, 2] < 2000).all()
        assert (uv[valid] >= 0).all() and (uv[valid, 0] < w).all() and (uv[valid, 1] < h).all()
        x, y, bw, bh = ann["bbox"]
        assert (uv[valid, 0] >= x).all() and (uv[valid, 0] <= x + bw).all()
        assert (uv[valid, 1] >= y).all() and (uv[valid, 1] <= y + bh).all()
        # the box is 1.2x the tight box of the valid projected joints (datasets §C.2, observed)
        lo, hi = uv[valid].min(axis=0), uv[valid].max(axis=0)
        np.testing.assert_allclose([bw, bh], (hi - lo) * 1.2, atol=0.05)
        np.testing.assert_allclose([x + bw / 2, y + bh / 2], (lo + hi) / 2, atol=0.05)


def test_real_samples_dataset_items(real_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, data = real_tree
    index, files = _index(root, "test", tmp_path)
    check_images(index, files, verify=True)
    rows = select_rows(index, "all")
    kinds = [index.record(r).hand_type for r in rows]
    assert kinds == sorted(kinds, key=lambda k: k == 2)  # single first, then interacting (InterNet's order)
    dataset = InterHandDataset(index, files.images_dir, rows=rows, input_size=S)
    for i in range(len(dataset)):
        item = dataset[i]
        check_sample_keys(item)
        record = dataset.record(i)
        ann = torch.from_numpy(record.joint_annotated).float()
        torch.testing.assert_close(item["joint_annotated"], ann)
        torch.testing.assert_close(item["joint_valid"], ann)  # the whole annotated hand(s) lie inside the one crop
        assert item["image"].std() > 0.01  # a real image, not the black border
        expected_type = {0: [1.0, 0.0], 1: [0.0, 1.0], 2: [1.0, 1.0]}[record.hand_type]
        assert item["hand_type"].tolist() == expected_type
        # inv_trans(joints_img) is the projection of joints_cam
        mask = ann.numpy() > 0
        back = transform_points(item["joints_img"].double().numpy()[mask, :2], item["inv_trans"].double().numpy())
        np.testing.assert_allclose(back, record.joints_uv[mask], atol=0.05)
        if record.hand_type == 2:
            assert item["root_valid"] == 1.0
            dz = record.joints_cam[21, 2] - record.joints_cam[0, 2]
            assert item["rel_root_depth"].item() == pytest.approx(dz, abs=1e-3)
        else:
            assert item["root_valid"] == 0.0 and item["rel_root_depth"] == 0.0


# ------------------------------------------------------------------------------------------------ (2) geometry, order


def test_joint_order_maps_native_to_project() -> None:
    p = PROJECT_FROM_INTERHAND.tolist()
    assert sorted(p) == list(range(42))
    # project: wrist, thumb base..tip, index base..tip, ...; native: thumb tip..base (0-3), ..., wrist 20
    assert p[:5] == [20, 3, 2, 1, 0]
    assert p[5:9] == [7, 6, 5, 4] and p[17:21] == [19, 18, 17, 16]
    assert p[21:26] == [41, 24, 23, 22, 21]


def test_world_to_camera_hand_computed() -> None:
    # R rotates 90 degrees about z: (x, y, z) -> (-y, x, z); campos (10, 20, 30)
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    world = np.array([[13.0, 24.0, 1030.0]])
    # X - campos = (3, 4, 1000) -> R·(3, 4, 1000) = (-4, 3, 1000)
    np.testing.assert_allclose(world_to_camera(world, rot, [10.0, 20.0, 30.0]), [[-4.0, 3.0, 1000.0]])


# ------------------------------------------------------------------------------------------------ (2) layouts, options


def test_v1_and_v0_layouts_and_bare_joint_3d(tmp_path: Path) -> None:
    v1, v0 = tmp_path / "v1", tmp_path / "v0"
    write_interhand_split(v1, "test", 30, seed=3)
    write_interhand_split(v0, "test", 30, seed=3, layout="v0.0", subset_folder="all", bare_joint_3d=True)
    for root in (v1, v0):
        (root / "images" / "test").mkdir(parents=True)
    a, fa = _index(v1, "test", tmp_path / "cache")
    b, fb = _index(v0, "test", tmp_path / "cache")
    assert (fa.layout, fb.layout) == ("v1.0", "v0.0")
    assert fb.data == v0 / "annotations" / "all" / "InterHand2.6M_test_data.json"
    assert len(a) == len(b) == 30
    for row in (0, 7, 29):
        ra, rb = a.record(row), b.record(row)
        assert ra.file_name == rb.file_name
        np.testing.assert_allclose(ra.joints_cam, rb.joints_cam, atol=1e-3)
        np.testing.assert_array_equal(ra.joint_annotated, rb.joint_annotated)


def test_fps_picks_the_release_folder(tmp_path: Path) -> None:
    # the official archives unpack to InterHand2.6M_<fps>fps_batch1/; annotations inside it or next to it
    release = tmp_path / "InterHand2.6M_30fps_batch1"
    write_interhand_split(release, "val", 5, seed=1)
    (release / "images" / "val").mkdir(parents=True)
    files = find_interhand_files(tmp_path, "val", fps=30)
    assert files.images_dir == release / "images" / "val" and files.data.parent == release / "annotations" / "val"
    with pytest.raises(InterHandLayoutError, match="InterHand2.6M_30fps_batch1"):
        find_interhand_files(tmp_path, "val", fps=5)
    other = tmp_path / "five"
    write_interhand_split(other, "val", 5, seed=1)  # <root>/annotations next to <root>/InterHand2.6M_5fps_batch1/images
    (other / "InterHand2.6M_5fps_batch1" / "images" / "val").mkdir(parents=True)
    files5 = find_interhand_files(other, "val", fps=5)
    assert files5.images_dir == other / "InterHand2.6M_5fps_batch1" / "images" / "val"
    assert files5.data.parent == other / "annotations" / "val"
    # fps is part of the cache key and folder name
    i30 = load_or_build_index(files, tmp_path / "cache", fps=30)
    assert "30fps" in i30.directory.name
    with pytest.raises(ValueError, match="fps"):
        find_interhand_files(tmp_path, "val", fps=60)


def test_subsets_human_by_id_list_and_machine(tmp_path: Path) -> None:
    root = tmp_path / "ih"
    fake = write_interhand_split(root, "train", 40, seed=2)
    (root / "images" / "train").mkdir(parents=True)
    human = fake.annot_ids[::3]
    ids_file = tmp_path / "aid_human_annot_train.txt"
    ids_file.write_text("\n".join(str(i) for i in human) + "\n")
    pattern = str(tmp_path / "aid_human_annot_{split}.txt")
    h, _ = _index(root, "train", tmp_path / "cache", subset="human", human_annot_ids=pattern)
    m, _ = _index(root, "train", tmp_path / "cache", subset="machine", human_annot_ids=pattern)
    a, _ = _index(root, "train", tmp_path / "cache")
    assert sorted(np.asarray(h.array("annot_id")).tolist()) == sorted(human)
    assert sorted(np.asarray(m.array("annot_id")).tolist()) == sorted(set(fake.annot_ids) - set(human))
    assert len(a) == 40 and len({h.directory, m.directory, a.directory}) == 3
    row = int(np.flatnonzero(np.asarray(h.array("annot_id")) == human[1])[0])
    assert h.record(row).file_name == fake.file_names[fake.annot_ids.index(human[1])]
    with pytest.raises(ValueError, match="human_annot_ids"):
        _index(root, "train", tmp_path / "cache", subset="human")
    # v0.0: the subset picks the folder; val exists only in machine_annot
    v0 = tmp_path / "v0"
    write_interhand_split(v0, "test", 12, layout="v0.0", subset_folder="human_annot", seed=4)
    (v0 / "images" / "test").mkdir(parents=True)
    hv0, files = _index(v0, "test", tmp_path / "cache", subset="human")
    assert files.data.parent.name == "human_annot" and len(hv0) == 12
    with pytest.raises(InterHandLayoutError, match="machine_annot"):
        find_interhand_files(v0, "val", subset="human")


def test_sample_kinds(fake_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, fakes = fake_tree
    index, _ = _index(root, "train", tmp_path)
    types = np.asarray(index.array("hand_type"))
    single, inter, everything = (select_rows(index, k) for k in ("single", "interacting", "all"))
    assert (types[single] < 2).all() and (types[inter] == 2).all() and len(single) and len(inter)
    np.testing.assert_array_equal(everything, np.concatenate([single, inter]))
    expected = [t == "interacting" for t in fakes["train"].hand_types]
    assert sorted(inter.tolist()) == [i for i, e in enumerate(expected) if e]
    with pytest.raises(ValueError, match="sample_kind"):
        select_rows(index, "both")


def test_interacting_sample_is_one_crop_with_both_hands(fake_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = fake_tree
    index, files = _index(root, "train", tmp_path)
    dataset = InterHandDataset(index, files.images_dir, rows=select_rows(index, "interacting"), input_size=S)
    checked = 0
    for i in range(len(dataset)):
        record = dataset.record(i)
        if not (record.joint_annotated[0] and record.joint_annotated[21]):
            continue
        item = dataset[i]
        assert item["hand_type"].tolist() == [1.0, 1.0]
        assert item["root_valid"] == 1.0
        expected = record.joints_cam[21, 2] - record.joints_cam[0, 2]
        assert item["rel_root_depth"].item() == pytest.approx(expected, abs=1e-3)
        assert abs(expected) > 0.1
        torch.testing.assert_close(item["abs_root_depth"], torch.tensor(record.joints_cam[[0, 21], 2]).float())
        # one crop: every annotated joint of both hands lands inside the S×S input
        annotated = item["joint_annotated"] > 0
        assert annotated[:21].any() and annotated[21:].any()
        torch.testing.assert_close(item["joint_valid"], item["joint_annotated"])
        xy = item["joints_img"][annotated, :2]
        assert (xy >= 0).all() and (xy < S).all()
        checked += 1
    assert checked >= 3


def test_augmented_flip_keeps_geometry(fake_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = fake_tree
    index, files = _index(root, "train", tmp_path)
    dataset = InterHandDataset(
        index, files.images_dir, rows=select_rows(index, "interacting"), input_size=S, augment=True, seed=5
    )
    flipped = [i for i in range(len(dataset)) if dataset.augmentation_params(i).flip]
    assert flipped
    i = flipped[0]
    item, record = dataset[i], dataset.record(i)
    assert item["hand_type"].tolist() == [1.0, 1.0]
    # after a flip the hands swap blocks: the new right block is the old left hand (mirrored)
    np.testing.assert_allclose(item["joints_cam"][0, 2].item(), record.joints_cam[21, 2], atol=1e-2)
    if item["root_valid"] > 0:
        expected = record.joints_cam[0, 2] - record.joints_cam[21, 2]
        assert item["rel_root_depth"].item() == pytest.approx(expected, abs=1e-2)
    assert dataset[(3, i)]["image"].shape == (3, S, S)


# ------------------------------------------------------------------------------------------------ (2) cache, memory


def test_index_cache_is_reused_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ih"
    write_interhand_split(root, "test", 25, seed=6)
    (root / "images" / "test").mkdir(parents=True)
    cache = tmp_path / "cache"
    first, files = _index(root, "test", cache)
    stamp = (first.directory / "meta.json").stat().st_mtime_ns

    def no_json(*args, **kwargs):
        raise AssertionError("the JSON was parsed again")

    monkeypatch.setattr(json, "load", no_json)
    again, _ = _index(root, "test", cache)
    assert again.directory == first.directory and (again.directory / "meta.json").stat().st_mtime_ns == stamp
    assert again.record(3).file_name == first.record(3).file_name

    # an annotation file changes (size and mtime): the index is rebuilt, i.e. the JSON is parsed again
    write_interhand_split(root, "test", 26, seed=7)
    with pytest.raises(AssertionError, match="parsed again"):
        _index(root, "test", cache)
    monkeypatch.undo()
    rebuilt, _ = _index(root, "test", cache)
    assert rebuilt.directory != first.directory and len(rebuilt) == 26
    for name in ("world", "joint_valid", "bbox", "path_blob"):
        assert isinstance(rebuilt.array(name), np.memmap)


def test_dataset_pickles_small_and_holds_no_json(tmp_path: Path) -> None:
    root = tmp_path / "ih"
    fake = write_interhand_split(root, "train", 10_000, seed=8, cameras_per_capture=40)
    (root / "images" / "train").mkdir(parents=True)
    index, files = _index(root, "train", tmp_path / "cache")
    dataset = InterHandDataset(index, files.images_dir, input_size=64)
    assert len(dataset) == 10_000
    dataset.record(123)  # opens the memory maps
    blob = pickle.dumps(dataset)
    assert len(blob) < 200_000  # the index folder and 10k row numbers, not the annotations
    clone = pickle.loads(blob)
    assert clone.record(9_999).file_name == dataset.record(9_999).file_name
    assert clone.record(9_999).file_name in fake.file_names
    data_mb = files.data.stat().st_size
    assert len(blob) < data_mb / 20


# ------------------------------------------------------------------------------------------------ (4) errors


def test_layout_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InterHandLayoutError, match="does not exist") as err:
        find_interhand_files(tmp_path / "nowhere", "train")
    assert INTERHAND_DOWNLOAD_PAGE in str(err.value) and "InterHand2.6M_train_data.json" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InterHandLayoutError, match="annotations"):
        find_interhand_files(tmp_path / "empty", "train")
    root = tmp_path / "ih"
    fake = write_interhand_split(root, "test", 6, seed=9)
    with pytest.raises(InterHandLayoutError, match=r"images[/\\]test"):
        find_interhand_files(root, "test")
    (root / "images" / "test").mkdir(parents=True)
    fake.files["joint_3d"].unlink()
    with pytest.raises(InterHandLayoutError, match="InterHand2.6M_test_joint_3d.json is missing"):
        find_interhand_files(root, "test")
    with pytest.raises(InterHandLayoutError, match="neither train/"):
        find_interhand_files(root, "train")


def test_missing_images_are_named(fake_tree: tuple[Path, dict], tmp_path: Path) -> None:
    root = tmp_path / "ih"
    fake = write_interhand_split(root, "test", 9, seed=10)
    write_grey_frames(root, "test", fake.file_names, fake.image_size)
    index, files = _index(root, "test", tmp_path / "cache")
    check_images(index, files, verify=True)
    gone = root / "images" / "test" / fake.file_names[4]
    gone.unlink()
    check_images(index, files, sample=2)  # the quick check looks at the first and the last image only
    with pytest.raises(InterHandLayoutError, match=fake.file_names[4].split("/")[-1]) as err:
        check_images(index, files, verify=True)
    assert str(files.data) in str(err.value)
    with pytest.raises(InterHandLayoutError, match="image"):
        check_images(index, files, sample=9)


def test_malformed_annotations_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "ih"
    fake = write_interhand_split(root, "test", 4, seed=11)
    (root / "images" / "test").mkdir(parents=True)
    data = json.loads(fake.files["data"].read_text())
    good = json.dumps(data)
    data["annotations"][1]["hand_type"] = "both"
    fake.files["data"].write_text(json.dumps(data))
    with pytest.raises(InterHandLayoutError, match="hand_type 'both'") as err:
        _index(root, "test", tmp_path / "cache")
    assert "InterHand2.6M_test_data.json" in str(err.value)
    fake.files["data"].write_text(good)
    joints = json.loads(fake.files["joint_3d"].read_text())
    first_capture = next(iter(joints))
    joints[first_capture].pop(next(iter(joints[first_capture])))
    fake.files["joint_3d"].write_text(json.dumps(joints))
    with pytest.raises(InterHandLayoutError, match="InterHand2.6M_test_joint_3d.json has no joints for capture"):
        _index(root, "test", tmp_path / "cache")
    fake.files["joint_3d"].write_text("{not json")
    with pytest.raises(InterHandLayoutError, match="not a valid JSON"):
        _index(root, "test", tmp_path / "cache")


def test_cache_inside_the_data_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ih"
    write_interhand_split(root, "test", 3, seed=12)
    (root / "images" / "test").mkdir(parents=True)
    files = find_interhand_files(root, "test")
    with pytest.raises(ValueError, match="inside the data root"):
        load_or_build_index(files, root / "cache", data_root=root)


# ------------------------------------------------------------------------------------------------ (3) metrics


def _two_samples() -> dict[str, np.ndarray]:
    """Sample 0 single right hand, sample 1 interacting; predictions = GT + known offsets."""
    gt = np.zeros((2, 42, 3))
    gt[:, :, 2] = 500.0
    gt[:, 1:21, 0] = np.arange(1, 21) * 10.0
    gt[:, 22:42, 0] = np.arange(1, 21) * 10.0
    gt[1, 21:, 2] += 30.0  # the left hand 30 mm further
    pred = gt.copy()
    pred[0, 1, 0] += 3.0  # single: joint 1 off by 3 mm
    pred[0, 2, 1] += 4.0  # single: joint 2 off by 4 mm
    pred[1, 1, 0] += 6.0  # interacting: joint 1 off by 6 mm
    pred[1, 21:, :] += [0.0, 0.0, 10.0]  # interacting: left hand shifted 10 mm in z (root-relative error 0)
    valid = np.ones((2, 42))
    valid[0, 21:] = 0  # the single sample has no left hand
    valid[1, 30] = 0  # one unscored joint
    hand_type = np.array([[1.0, 0.0], [1.0, 1.0]])
    return {"pred": pred, "gt": gt, "valid": valid, "hand_type": hand_type}


def _update(metric: InterHandMetrics, s: dict[str, np.ndarray], prob: np.ndarray, type_valid: np.ndarray) -> None:
    """One ``update`` with the arrays of :func:`_two_samples` (or a slice of them) and the given hand predictions."""
    arrays = (s["pred"], s["gt"], s["valid"], s["hand_type"], prob, type_valid)
    metric.update(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))


def test_mpjpe_by_kind_hand_computed() -> None:
    s = _two_samples()
    got = functional.mpjpe_by_kind(s["pred"], s["gt"], s["valid"], s["hand_type"])
    # single: joints 0-20 scored once; errors 3 and 4 at joints 1 and 2 -> (3 + 4) / 21
    assert got["mpjpe_single_mm"] == pytest.approx(7.0 / 21)
    # interacting: 41 scored joints (30 not), error 6 at joint 1 -> 6 / 41
    assert got["mpjpe_interacting_mm"] == pytest.approx(6.0 / 41)
    # all: joint 1 mean (3 + 6) / 2, joint 2 mean 4 / 2, 41 joints seen -> (4.5 + 2) / 41
    assert got["mpjpe_all_mm"] == pytest.approx(6.5 / 41)
    metric = InterHandMetrics()
    for i in range(2):  # batch by batch
        _update(metric, {k: v[i : i + 1] for k, v in s.items()}, np.full((1, 2), 0.9), np.ones(1))
    values = metric.compute()
    for name in got:
        assert values[name].item() == pytest.approx(got[name], rel=1e-6)


def test_mrrpe_hand_computed() -> None:
    s = _two_samples()
    # (L - R)_pred - (L - R)_gt = (0, 0, 10) on the interacting sample; the single one does not count
    scored = functional.mrrpe_samples(s["valid"], s["hand_type"])
    assert scored.tolist() == [False, True]
    assert functional.mrrpe(s["pred"], s["gt"], scored) == pytest.approx(10.0)
    metric = InterHandMetrics()
    _update(metric, s, np.full((2, 2), 0.9), np.ones(2))
    assert metric.compute()["mrrpe_mm"].item() == pytest.approx(10.0)
    s["valid"][1, 21] = 0  # a left wrist not scored: no MRRPE sample left
    assert not functional.mrrpe_samples(s["valid"], s["hand_type"]).any()
    metric.reset()
    _update(metric, s, np.full((2, 2), 0.9), np.ones(2))
    assert torch.isnan(metric.compute()["mrrpe_mm"])
    # nothing scored is "undefined", which the LightningModule leaves out of metrics.json (not a NaN result)
    scored = metric.scored()
    assert scored["mrrpe_mm"] is False and scored["mpjpe_all_mm"] is True and scored["handedness_acc"] is True


def test_handedness_and_combined_metrics() -> None:
    s = _two_samples()
    prob = np.array([[0.9, 0.2], [0.8, 0.4]])  # right: correct; interacting predicted right-only: wrong
    metric = InterHandMetrics()
    _update(metric, s, prob, np.array([1.0, 1.0]))
    assert metric.compute()["handedness_acc"].item() == pytest.approx(0.5)
    _update(metric, s, prob, np.array([0.0, 1.0]))  # only the wrong one
    assert metric.compute()["handedness_acc"].item() == pytest.approx(1.0 / 3)
    both = np.concatenate([s["hand_type"]] * 2)
    assert functional.handedness_accuracy(np.concatenate([prob] * 2), both, [1, 1, 0, 1]) == pytest.approx(1.0 / 3)
    combined = InterHandMetrics()
    _update(combined, s, prob, np.ones(2))
    got = combined.compute()
    ref = functional.interhand_metrics(s["pred"], s["gt"], s["valid"], s["hand_type"], prob, np.ones(2))
    assert set(got) == {"mpjpe_single_mm", "mpjpe_interacting_mm", "mpjpe_all_mm", "mrrpe_mm", "handedness_acc"}
    for name, value in got.items():
        assert value.item() == pytest.approx(ref[name], rel=1e-6)
    assert ref["handedness_acc"] == 0.5 and ref["mrrpe_mm"] == pytest.approx(10.0)
    empty = InterHandMetrics()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert all(torch.isnan(v) for v in empty.compute().values())


def test_internet_mrrpe_roots_use_the_right_depth() -> None:
    joints_img = torch.zeros(1, 42, 3)
    joints_img[0, 0] = torch.tensor([10.0, 20.0, 0.0])
    joints_img[0, 21] = torch.tensor([30.0, 20.0, 5.0])
    inv_trans = torch.tensor([[[2.0, 0.0, 100.0], [0.0, 2.0, 50.0]]])  # crop px -> image px
    roots = internet_mrrpe_roots(
        joints_img,
        torch.tensor([40.0]),
        inv_trans,
        torch.tensor([[600.0, 999.0]]),
        torch.tensor([[1000.0, 1000.0]]),
        torch.tensor([[100.0, 50.0]]),
    )
    # right: u = 120, v = 90 -> x = 20/1000·600 = 12, y = 40/1000·600 = 24, z = 600
    # left: z = 600 + 5 + 40 = 645 (the right depth, not 999); u = 160 -> x = 60/1000·645
    torch.testing.assert_close(roots[0, 0], torch.tensor([12.0, 24.0, 600.0], dtype=torch.float64))
    torch.testing.assert_close(roots[0, 1], torch.tensor([60 * 0.645, 40 * 0.645, 645.0], dtype=torch.float64))


# ------------------------------------------------------------------------------------------------ (5) config, module


def test_hydra_datamodule_batch_matches_rhd(fake_tree: tuple[Path, dict], tmp_path: Path) -> None:
    import hydra

    root, _ = fake_tree
    overrides = ["dataset=interhand", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", *TINY]
    cfg = compose_config("train", overrides, tmp_path / "run")
    assert cfg.data.fps == 5 and cfg.data.subset == "all" and cfg.data.sample_kind == "all"
    dm = hydra.utils.instantiate(cfg.data)
    assert isinstance(dm, InterHandDataModule)
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 60
    batch = next(iter(dm.train_dataloader()))
    check_sample_keys(batch, size=64, batch=(4,))
    dm.setup("test")
    test_batches = list(dm.test_dataloader())
    assert sum(len(b["index"]) for b in test_batches) == 20
    # interacting only
    dm2 = InterHandDataModule(
        root=str(root),
        sample_kind="interacting",
        cache_dir=str(tmp_path / "cache"),
        batch_size=2,
        num_workers=0,
        input_size=64,
        val_fraction=0.0,
    )
    assert not len(select_rows(dm2.split_data("test")[0], "interacting"))  # this test split has single hands only
    with pytest.raises(DatasetLayoutError, match="evaluation split has no samples"):  # an empty split is an error
        dm2.setup("test")
    with pytest.raises(ValueError, match="test_split"):
        InterHandDataModule(root=str(root), test_split="dev")


def test_datamodule_setup_reports_layout_errors(tmp_path: Path) -> None:
    dm = InterHandDataModule(root=str(tmp_path / "missing"), cache_dir=str(tmp_path / "c"), num_workers=0)
    with pytest.raises(InterHandLayoutError, match="does not exist"):
        dm.setup("fit")
    assert os.listdir(tmp_path) == []  # nothing was written


# ------------------------------------------------------------------------------------------------ corrupt images


def test_truncated_image_raises_with_its_name_or_is_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "InterHand2.6M"
    write_interhand_tree(root, {"train": 8, "test": 8})
    index, files = _index(root, "test", tmp_path / "cache")
    strict = InterHandDataset(index, files.images_dir, input_size=64)
    names = [strict.record(k).file_name for k in range(len(strict))]
    i = next(k for k in range(len(names) - 1) if names.count(names[k]) == 1)
    bad = files.images_dir / names[i]
    bad.write_bytes(bad.read_bytes()[:100])  # cut inside the JPEG header: not decodable
    with pytest.raises(DatasetLayoutError, match=bad.name):
        strict[i]
    with pytest.raises(ValueError, match="on_bad_image"):
        InterHandDataset(index, files.images_dir, input_size=64, on_bad_image="ignore")

    lenient = InterHandDataset(index, files.images_dir, input_size=64, on_bad_image="skip")
    with caplog.at_level("WARNING", logger="internet_plus.data.interhand"):
        sample = lenient[i]
    assert int(sample["index"]) == i + 1  # replaced by the next readable sample
    assert lenient.skipped_images == lenient.bad_images == 1
    assert "InterHand2.6M: skipping unreadable image" in caplog.text and bad.name in caplog.text

    dm = InterHandDataModule(
        root=str(root),
        cache_dir=str(tmp_path / "cache"),
        on_bad_image="skip",
        batch_size=2,
        num_workers=0,
        input_size=64,
        val_fraction=0.0,
    )
    dm.setup("test")
    assert dm.test_set.on_bad_image == "skip"
    for k in range(len(dm.test_set)):
        dm.test_set[k]
    with caplog.at_level("WARNING"):
        dm.teardown("test")
    assert "1 unreadable test image(s) were skipped" in caplog.text


def _interhand_ddp_worker(rank: int, world: int, port: int, out_dir: str, shards: list) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        metric = InterHandMetrics()
        for batch in shards[rank]:
            metric.update(*batch)
        torch.save(metric.compute(), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_interhand_metrics_under_ddp_equal_one_process(tmp_path: Path) -> None:
    """Two gloo processes with uneven shards (single, interacting and invalid samples) give the one-process values."""
    import socket

    import torch.multiprocessing as mp

    rng = np.random.default_rng(3)
    n = 12
    gt = rng.normal(0, 50, (n, 42, 3)) + np.array([0, 0, 600.0])
    pred = gt + rng.normal(0, 8, (n, 42, 3))
    hand_type = np.array([[1, 0], [0, 1], [1, 1]] * 4, dtype=np.float64)  # single right, single left, interacting
    valid = np.zeros((n, 42))
    valid[:, :21] = hand_type[:, :1]
    valid[:, 21:] = hand_type[:, 1:]
    valid[rng.random((n, 42)) < 0.1] = 0.0  # some joints (and so some wrists: MRRPE skips them) not annotated
    prob, type_valid = rng.random((n, 2)), (rng.random(n) > 0.2) * 1.0
    arrays = (pred, gt, valid, hand_type, prob, type_valid)

    def batch(idx: slice) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(np.ascontiguousarray(a[idx])) for a in arrays)

    shards = [[batch(slice(0, 3)), batch(slice(3, 5))], [batch(slice(5, 12))]]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_interhand_ddp_worker, args=(2, port, str(tmp_path), shards), nprocs=2, join=True)
    ref = functional.interhand_metrics(*arrays)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for name, value in ref.items():
            assert got[name].item() == pytest.approx(value, rel=1e-6), (rank, name)  # float32 distances


# ------------------------------------------------------------------------------------------------ bad test samples


def _spoil_test_split(root: Path, files: dict[str, Path], case: str) -> int:
    """Spoil the test split's first annotation (or empty the split); returns that annotation's id."""
    data = json.loads(files["data"].read_text())
    ann = data["annotations"][0]
    image = next(i for i in data["images"] if i["id"] == ann["image_id"])
    capture, camera, frame = str(image["capture"]), str(image["camera"]), str(image["frame_idx"])
    if case in ("nan joint", "world*1e6"):
        joints = json.loads(files["joint_3d"].read_text())
        world = np.asarray(joints[capture][frame]["world_coord"], dtype=np.float64)
        if case == "nan joint":
            world[3, 0] = np.nan
        else:
            world *= 1e6
        joints[capture][frame]["world_coord"] = world.tolist()
        files["joint_3d"].write_text(json.dumps(joints))
    elif case == "focal 0":
        cameras = json.loads(files["camera"].read_text())
        cameras[capture]["focal"][camera] = [0.0, 0.0]
        files["camera"].write_text(json.dumps(cameras))
    elif case == "joint_valid 0":
        ann["joint_valid"] = [[0]] * len(ann["joint_valid"])
    elif case == "box outside":
        ann["bbox"] = [image["width"] + 100.0, 10.0, 50.0, 50.0]
    elif case == "empty test":
        data["images"], data["annotations"] = [], []
    files["data"].write_text(json.dumps(data))
    return int(ann["id"])


def _ih_datamodule(root: Path, cache: Path, **kwargs) -> InterHandDataModule:
    args = dict(root=str(root), cache_dir=str(cache), batch_size=2, num_workers=0, input_size=64, val_fraction=0.0)
    return InterHandDataModule(**{**args, **kwargs})


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("nan joint", "world joints .* not finite"),
        ("world*1e6", r"outside 0 < z < 5 m|no annotated joint in front"),
        ("focal 0", "focal length not positive"),
        ("joint_valid 0", "no annotated joint in front of the camera"),
        ("box outside", "box not finite or outside the image"),
        ("empty test", "evaluation split has no samples"),
    ],
)
def test_bad_test_annotation_stops_setup_or_is_skipped(tmp_path: Path, case: str, problem: str) -> None:
    root = tmp_path / "InterHand2.6M"
    splits = write_interhand_tree(root, {"train": 6, "test": 6}, cameras_per_capture=2, interacting_fraction=0.5)
    annot_id = _spoil_test_split(root, splits["test"].files, case)
    strict = _ih_datamodule(root, tmp_path / "cache")
    with pytest.raises(DatasetLayoutError, match=problem) as info:
        strict.setup("fit")  # the fit stage checks the test split before the first step
    assert "InterHand2.6M_test_data.json" in str(info.value)
    if case == "empty test":
        return
    assert f"(annotation {annot_id}, box" in str(info.value) and "images/test/Capture" in str(info.value)
    lenient = _ih_datamodule(root, tmp_path / "cache", on_bad_sample="skip")
    lenient.setup("fit")
    lenient.setup("test")
    assert annot_id not in lenient.test_set.annot_ids
    assert lenient.skipped_test_samples >= 1 and len(lenient.test_set) == 6 - lenient.skipped_test_samples
    verifying = _ih_datamodule(root, tmp_path / "cache", verify=True, on_bad_sample="skip")
    with pytest.raises(DatasetLayoutError, match=f"data.verify found {lenient.skipped_test_samples} of 6"):
        verifying.split_data("test")  # data.verify range-checks the values too, whatever the policy


def test_missing_test_annotations_are_found_at_fit_setup(tmp_path: Path) -> None:
    root = tmp_path / "InterHand2.6M"
    write_interhand_tree(root, {"train": 6, "test": 4})
    shutil.rmtree(root / "annotations" / "test")
    with pytest.raises(DatasetLayoutError, match="test"):
        _ih_datamodule(root, tmp_path / "cache").setup("fit")


def test_synthetic_frames_are_encoded_as_the_real_ones(tmp_path: Path) -> None:
    """The synthetic InterHand2.6M frames are JPEGs of the real frames' kind (tests/fixtures/real_samples):
    progressive, 4:2:0 chroma subsampling, in the real ones' size range, so that decoding them (in a loader worker
    or on a GPU) costs what the real data costs."""
    from PIL import Image

    from internet_plus.data.synthetic.interhand import write_interhand_frames

    write_interhand_frames(tmp_path, ["a.jpg", "b.jpg"], (512, 334), seed=0)
    real = sorted((REAL_SAMPLES / "interhand2.6m").glob("*.jpg"))
    assert real
    for synthetic in (tmp_path / "a.jpg", tmp_path / "b.jpg"):
        with Image.open(synthetic) as ours, Image.open(real[0]) as theirs:
            assert ours.info.get("progressive") == theirs.info.get("progressive") == 1
            assert ours.layer == theirs.layer  # component ids and sampling factors: Y 2×2, Cb and Cr 1×1 (4:2:0)
            assert ours.size == (512, 334)
        assert 10_000 < synthetic.stat().st_size < 45_000  # the real frames: 12–27 KB
    write_interhand_frames(tmp_path / "baseline", ["c.jpg"], (512, 334), progressive=False)
    with Image.open(tmp_path / "baseline" / "c.jpg") as baseline:
        assert not baseline.info.get("progressive")
