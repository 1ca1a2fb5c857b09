"""The RHD_published_v2 reader, its Dataset and the data modules, on real RHD samples and on the synthetic set.

The real samples (``tests/fixtures/real_samples/rhd``) come as COCO-style JSON; ``_build_rhd_tree`` writes them back
into the official layout (datasets §A: ``<set>/color``, ``<set>/mask``, ``anno_<set>.pickle`` in metres,
42 joints in RHD's native order, left hand first). The expected project-order values are computed here from the
documented orders, independently of ``rhd_format``.
"""

from __future__ import annotations

import copy
import json
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from conftest import REAL_SAMPLES, check_sample_keys, compose_config
from fakes.rhd import rhd_annotation, write_rhd_split

from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.rhd import (
    RHD_DOWNLOAD_PAGE,
    RHDDataset,
    read_rhd_split,
)
from internet_plus.data.transforms import bbox_from_joints, process_bbox, transform_points
from internet_plus.joints import JOINTS_PER_HAND, LEFT, NUM_JOINTS, RIGHT, hand_slice

REAL_RHD = REAL_SAMPLES / "rhd"
S = 256

# ------------------------------------------------------------------------------------------------ helpers


def native_to_project_hand(native21: np.ndarray) -> np.ndarray:
    """One hand from RHD's order (wrist, then each finger tip -> base) to the project's (wrist, base -> tip)."""
    out = np.empty_like(native21)
    out[0] = native21[0]
    for finger in range(5):
        for k in range(4):  # k = 0 base ... 3 tip in the project order
            out[1 + 4 * finger + k] = native21[1 + 4 * finger + (3 - k)]
    return out


def _native_block(hand_type: str) -> slice:
    return slice(0, 21) if hand_type == "left" else slice(21, 42)


def _load_real() -> list[dict]:
    data = json.loads((REAL_RHD / "test_rhd.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    samples = []
    for ann in data["annotations"]:
        im = images[ann["image_id"]]
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(21, 3)
        samples.append(
            {
                "file": REAL_RHD / im["file_name"],
                "uv": kp[:, :2],
                "vis": kp[:, 2],
                "cam": np.asarray(ann["joint_cam"], dtype=np.float64).reshape(21, 3),
                "focal": np.asarray(im["cam_param"]["focal"], dtype=np.float64),
                "princpt": np.asarray(im["cam_param"]["princpt"], dtype=np.float64),
                "hand_type": ann["hand_type"],
            }
        )
    return samples


#: An invisible keypoint written into the fixture (the real samples mark all 21 visible): sample id -> native joint.
INVISIBLE = {1111: 8}


def _mask_for(sample: dict, size: tuple[int, int]) -> np.ndarray:
    """A class-id mask painting the annotated hand around its keypoints, and a smaller patch of the other hand."""
    mask = np.zeros(size, dtype=np.uint8)
    mask[:20, :20] = 1  # some "person" pixels
    own, other = (17, 33) if sample["hand_type"] == "left" else (33, 17)
    for u, v in sample["uv"]:
        cv2.circle(mask, (int(round(u)), int(round(v))), 6, int(own), thickness=-1)
    mask[-12:, -12:] = other  # 144 px of the other hand: fewer than the annotated one
    return mask


def _anno_entry(sample: dict, sample_id: int) -> dict[str, np.ndarray]:
    """The official per-sample dict: xyz (42,3) metres, uv_vis (42,3), K (3,3); the other hand far away."""
    block, other = (
        _native_block(sample["hand_type"]),
        _native_block("right" if sample["hand_type"] == "left" else "left"),
    )
    xyz = np.zeros((42, 3))
    xyz[block] = sample["cam"] / 1000.0
    xyz[other] = sample["cam"] / 1000.0 + np.array([0.25, 0.1, 0.3])  # a plausible second hand, elsewhere
    K = np.array(
        [[sample["focal"][0], 0, sample["princpt"][0]], [0, sample["focal"][1], sample["princpt"][1]], [0, 0, 1]]
    )
    entry = rhd_annotation(xyz, K)
    entry["uv_vis"][block, :2] = sample["uv"]  # the annotated hand: the real uv
    entry["uv_vis"][block, 2] = sample["vis"]
    if sample_id in INVISIBLE:
        entry["uv_vis"][block.start + INVISIBLE[sample_id], 2] = 0.0
    return entry


def _write_split(root: Path, split: str, entries: dict[int, dict]) -> None:
    masks = {i: _mask_for(sample, cv2.imread(str(sample["file"])).shape[:2]) for i, sample in entries.items()}
    annotations = {i: _anno_entry(sample, i) for i, sample in entries.items()}
    write_rhd_split(root, split, annotations, {i: sample["file"] for i, sample in entries.items()}, masks)


def _build_rhd_tree(root: Path, num_train: int = 12) -> dict[int, dict]:
    """evaluation: the 3 real samples under their own ids; training: ``num_train`` samples cycling them."""
    samples = _load_real()
    evaluation = {int(s["file"].stem): s for s in samples}
    _write_split(root, "evaluation", evaluation)
    _write_split(root, "training", {i: samples[i % len(samples)] for i in range(num_train)})
    return evaluation


@pytest.fixture(scope="module")
def rhd_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, dict]]:
    root = tmp_path_factory.mktemp("rhd") / "RHD_published_v2"
    return root, _build_rhd_tree(root)


def _project(cam: np.ndarray, focal: np.ndarray, princpt: np.ndarray) -> np.ndarray:
    return cam[:, :2] / cam[:, 2:] * focal + princpt


def _check_self_consistent(sample: dict[str, torch.Tensor], atol: float = 0.05) -> None:
    """inv_trans(joints_img) is the projection of joints_cam with the sample's intrinsics (any augmentation)."""
    ann = sample["joint_annotated"].numpy() > 0
    cam = sample["joints_cam"].double().numpy()[ann]
    uv = _project(cam, sample["focal"].double().numpy(), sample["princpt"].double().numpy())
    back = transform_points(sample["joints_img"].double().numpy()[ann, :2], sample["inv_trans"].double().numpy())
    np.testing.assert_allclose(back, uv, atol=atol)
    # z is relative to the wrist of its own hand
    for hand in (RIGHT, LEFT):
        block = hand_slice(hand)
        if ann[block].any():
            z = sample["joints_cam"][block, 2] - sample["joints_cam"][block][0, 2]
            torch.testing.assert_close(sample["joints_img"][block, 2], z, atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------------------ (a) real samples


def test_real_samples_evaluation_crop(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, evaluation = rhd_tree
    dataset = RHDDataset(root, "evaluation", input_size=S)
    assert dataset.sample_ids == sorted(evaluation)
    for i, sample_id in enumerate(dataset.sample_ids):
        real = evaluation[sample_id]
        item = dataset[i]
        check_sample_keys(item)
        hand = LEFT if real["hand_type"] == "left" else RIGHT
        other = 1 - hand
        block = hand_slice(hand)
        # the dominant hand (more mask pixels) is the annotated one
        np.testing.assert_array_equal(item["hand_type"].numpy(), np.eye(2)[hand])
        assert item["hand_type_valid"] == 1 and item["root_valid"] == 0 and item["rel_root_depth"] == 0
        # joints_cam: the JSON's mm, remapped to the project order; the other block zero and not annotated
        expected_cam = native_to_project_hand(real["cam"])
        np.testing.assert_allclose(item["joints_cam"][block].numpy(), expected_cam, atol=2e-3)
        assert item["joints_cam"][hand_slice(other)].abs().sum() == 0
        np.testing.assert_array_equal(item["joint_annotated"][block].numpy(), 1.0)
        np.testing.assert_array_equal(item["joint_annotated"][hand_slice(other)].numpy(), 0.0)
        # the eval crop: the box around the GT keypoints, square x1.25, so every joint is inside and valid
        expected_uv = native_to_project_hand(real["uv"])
        box = process_bbox(bbox_from_joints(real["uv"]))
        centre = box[:2] + box[2:] / 2
        np.testing.assert_allclose(
            transform_points([centre], np.linalg.inv(np.vstack([item["inv_trans"].double().numpy(), [0, 0, 1]]))[:2]),
            [[S / 2, S / 2]],
            atol=1e-3,
        )
        xy = item["joints_img"][block, :2].double().numpy()
        np.testing.assert_allclose(xy, (expected_uv - box[:2]) * S / box[2:], atol=2e-3)
        np.testing.assert_array_equal(item["joint_valid"][block].numpy(), 1.0)
        # inv_trans maps them back to the JSON uv
        np.testing.assert_allclose(transform_points(xy, item["inv_trans"].double().numpy()), expected_uv, atol=1e-3)
        # z relative to the wrist, abs depth = the GT wrist depth, intrinsics from K
        np.testing.assert_allclose(
            item["joints_img"][block, 2].numpy(), expected_cam[:, 2] - expected_cam[0, 2], atol=2e-3
        )
        np.testing.assert_allclose(item["abs_root_depth"].numpy(), [real["cam"][0, 2]] * 2, atol=1e-2)
        np.testing.assert_allclose(item["focal"].numpy(), real["focal"], rtol=1e-6)
        np.testing.assert_allclose(item["princpt"].numpy(), real["princpt"], rtol=1e-6)
        assert item["index"] == i
        _check_self_consistent(item, atol=0.1)  # the real uv agree with the projection to ~0.07 px (datasets §A)


def test_real_samples_crop_shows_the_hand(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, evaluation = rhd_tree
    dataset = RHDDataset(root, "evaluation", input_size=S)
    for i, sample_id in enumerate(dataset.sample_ids):
        item = dataset[i]
        image = item["image"].numpy().transpose(1, 2, 0)
        assert image.min() >= 0.0 and image.max() <= 1.0
        hand = LEFT if evaluation[sample_id]["hand_type"] == "left" else RIGHT
        wx, wy = item["joints_img"][hand * JOINTS_PER_HAND, :2].numpy()
        x, y = int(round(wx)), int(round(wy))
        patch = image[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4]
        assert patch.max() > 0.05, "the crop is black around the wrist"
        # the crop pixel is the original image, bilinearly sampled where inv_trans points (RGB order)
        original = cv2.cvtColor(cv2.imread(str(evaluation[sample_id]["file"])), cv2.COLOR_BGR2RGB).astype(np.float32)
        ox, oy = transform_points([[x, y]], item["inv_trans"].double().numpy())[0]
        expected = cv2.getRectSubPix(original, (1, 1), (float(ox), float(oy)))[0, 0] / 255.0
        np.testing.assert_allclose(image[y, x], expected, atol=2.0 / 255)


def test_real_samples_augmented_and_flipped_stay_consistent(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, evaluation = rhd_tree
    dataset = RHDDataset(root, "evaluation", input_size=S, augment=True, seed=3)
    flipped = 0
    for epoch in range(8):
        for i, sample_id in enumerate(dataset.sample_ids):
            item = dataset[(epoch, i)]
            check_sample_keys(item)
            hand = LEFT if evaluation[sample_id]["hand_type"] == "left" else RIGHT
            params = dataset.augmentation_params(i, epoch)
            if params.flip:
                flipped += 1
                hand = 1 - hand  # the mirrored image shows the other hand
                assert item["princpt"][0] == pytest.approx(320 - 1 - evaluation[sample_id]["princpt"][0])
                expected_cam = native_to_project_hand(evaluation[sample_id]["cam"]) * [-1, 1, 1]
            else:
                expected_cam = native_to_project_hand(evaluation[sample_id]["cam"])
            np.testing.assert_array_equal(item["hand_type"].numpy(), np.eye(2)[hand])
            np.testing.assert_allclose(item["joints_cam"][hand_slice(hand)].numpy(), expected_cam, atol=2e-3)
            np.testing.assert_array_equal(item["joint_annotated"][hand_slice(hand)].numpy(), 1.0)
            _check_self_consistent(item, atol=0.1)
            x, y = item["joints_img"][:, 0], item["joints_img"][:, 1]
            inside = (x >= 0) & (x < S) & (y >= 0) & (y < S)
            torch.testing.assert_close(item["joint_valid"], item["joint_annotated"] * inside)
    assert flipped > 0


def test_augmentation_is_reproducible_and_follows_the_epoch(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, _ = rhd_tree
    a = RHDDataset(root, "training", input_size=64, augment=True, seed=5)
    b = RHDDataset(root, "training", input_size=64, augment=True, seed=5)
    for key, value in a[(2, 4)].items():
        torch.testing.assert_close(value, b[(2, 4)][key], rtol=0, atol=0)
    b.set_epoch(2)
    torch.testing.assert_close(b[4]["image"], a[(2, 4)]["image"], rtol=0, atol=0)
    assert not torch.equal(a[(3, 4)]["image"], a[(2, 4)]["image"])
    evaluation = RHDDataset(root, "training", input_size=64, augment=False)
    torch.testing.assert_close(evaluation[(0, 4)]["image"], evaluation[(9, 4)]["image"], rtol=0, atol=0)


def test_eval_visible_only(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, evaluation = rhd_tree
    dataset = RHDDataset(root, "evaluation", input_size=S, eval_visible_only=True)
    i = dataset.sample_ids.index(1111)
    item = dataset[i]
    hand = LEFT if evaluation[1111]["hand_type"] == "left" else RIGHT
    native = INVISIBLE[1111]  # native joint 8 = index MCP (tip -> base), project joint 5 (index base)
    project = hand * JOINTS_PER_HAND + 5
    assert native == 8
    expected = np.zeros(NUM_JOINTS)
    expected[hand_slice(hand)] = 1.0
    expected[project] = 0.0
    np.testing.assert_array_equal(item["joint_annotated"].numpy(), expected)
    np.testing.assert_array_equal(item["joint_valid"].numpy(), expected)
    # by default every joint of the dominant hand is annotated (RHD renders occluded joints exactly)
    assert RHDDataset(root, "evaluation", input_size=S)[i]["joint_annotated"].sum() == JOINTS_PER_HAND


def test_records_are_read_only_and_never_mutated(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, _ = rhd_tree
    dataset = RHDDataset(root, "training", input_size=64, augment=True, seed=1)
    before = copy.deepcopy([vars(r) for r in dataset.records])
    for n in range(50):
        dataset[(n, 0)]
        dataset[n % len(dataset)]
    after = [vars(r) for r in dataset.records]
    for old, new in zip(before, after, strict=True):
        assert old.keys() == new.keys()
        for key in old:
            if isinstance(old[key], np.ndarray):
                np.testing.assert_array_equal(new[key], old[key])
            else:
                assert new[key] == old[key]
    with pytest.raises(ValueError, match="read-only"):
        dataset.records[0].uv[0, 0] = 0.0
    # the identity crop of sample 0 is the same after all that augmentation
    plain = RHDDataset(root, "training", input_size=64, records=dataset.records)
    torch.testing.assert_close(plain[0]["inv_trans"], RHDDataset(root, "training", input_size=64)[0]["inv_trans"])


def test_dominant_hand_rule_ties_go_right(tmp_path: Path) -> None:
    from internet_plus.data.rhd import dominant_hands

    masks = tmp_path / "mask"
    masks.mkdir()
    cases = {0: (100, 50, LEFT), 1: (50, 100, RIGHT), 2: (70, 70, RIGHT), 3: (0, 0, RIGHT)}
    for sample_id, (n_left, n_right, _) in cases.items():
        mask = np.zeros((32, 32), dtype=np.uint8).ravel()
        mask[:n_left] = np.arange(n_left) % 16 + 2  # left ids 2..17
        mask[n_left : n_left + n_right] = np.arange(n_right) % 16 + 18  # right ids 18..33
        mask[-5:] = 1  # person
        cv2.imwrite(str(masks / f"{sample_id:05d}.png"), mask.reshape(32, 32))
    cache = tmp_path / "cache"
    hands = dominant_hands(masks, list(cases), cache_dir=cache)
    assert hands == {k: v[2] for k, v in cases.items()}
    assert len(list(cache.glob("rhd_dominant_*.json"))) == 1
    assert not list(masks.glob("*.json"))  # nothing written next to the data


def test_dominant_hand_cache_dir_is_used(rhd_tree: tuple[Path, dict[int, dict]], tmp_path: Path) -> None:
    from internet_plus.data import rhd as rhd_module

    root, _ = rhd_tree
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    rhd_module._DOMINANT_CACHE.clear()
    first = read_rhd_split(root, "evaluation", cache_dir=tmp_path / "cache")
    rhd_module._DOMINANT_CACHE.clear()
    # the second read must come from the JSON cache: break the mask reader to prove it
    original = rhd_module._mask_hand
    rhd_module._mask_hand = lambda path: (_ for _ in ()).throw(AssertionError(f"mask {path} re-read"))
    try:
        second = read_rhd_split(root, "evaluation", cache_dir=tmp_path / "cache")
    finally:
        rhd_module._mask_hand = original
    assert [r.hand for r in first] == [r.hand for r in second]
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written into the data folder


# ------------------------------------------------------------------------------------------------ (c) layout errors


def test_layout_errors_name_the_expected_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetLayoutError, match="does not exist") as info:
        read_rhd_split(missing, "training")
    assert RHD_DOWNLOAD_PAGE in str(info.value) and "anno_training.pickle" in str(info.value)

    root = tmp_path / "RHD_published_v2"
    _build_rhd_tree(root, num_train=3)
    (root / "training" / "anno_training.pickle").rename(tmp_path / "moved.pickle")
    with pytest.raises(DatasetLayoutError, match=r"training/anno_training\.pickle is missing"):
        read_rhd_split(root, "training")
    (tmp_path / "moved.pickle").rename(root / "training" / "anno_training.pickle")

    shutil.move(root / "evaluation" / "color", tmp_path / "color")
    with pytest.raises(DatasetLayoutError, match=r"evaluation/color is missing") as info:
        read_rhd_split(root, "evaluation")
    assert "color/00000.png" in str(info.value)  # the expected tree is shown
    shutil.move(tmp_path / "color", root / "evaluation" / "color")

    with pytest.raises(ValueError, match="split"):
        read_rhd_split(root, "test")  # type: ignore[arg-type]


def test_missing_image_is_detected_at_setup(tmp_path: Path) -> None:
    root = tmp_path / "RHD_published_v2"
    _build_rhd_tree(root, num_train=3)
    (root / "training" / "color" / "00001.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"training/color/00001\.png"):
        RHDDataset(root, "training")
    (root / "evaluation" / "mask" / "01111.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"evaluation/mask/01111\.png"):
        read_rhd_split(root, "evaluation")


def test_malformed_annotations_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "RHD_published_v2"
    _build_rhd_tree(root, num_train=3)
    path = root / "training" / "anno_training.pickle"
    anno = pickle.loads(path.read_bytes())
    anno[1]["xyz"] = anno[1]["xyz"][:21]
    path.write_bytes(pickle.dumps(anno))
    with pytest.raises(DatasetLayoutError, match=r"sample 1: 'xyz' must be a finite \(42, 3\) array"):
        read_rhd_split(root, "training")


# ------------------------------------------------------------------------------------------------ (d) data modules


def _datamodule(root: Path, **kwargs):
    from internet_plus.data.rhd import RHDDataModule

    defaults = dict(root=str(root), batch_size=4, num_workers=0, input_size=64, val_fraction=0.25, seed=0)
    defaults.update(kwargs)
    return RHDDataModule(**defaults)


def test_datamodule_loaders_and_batches(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, evaluation = rhd_tree
    dm = _datamodule(root)
    dm.setup("fit")
    train_ids, val_ids = set(dm.train_set.sample_ids), set(dm.val_set.sample_ids)
    assert len(val_ids) == 3 and len(train_ids) == 9 and not train_ids & val_ids
    assert train_ids | val_ids == set(range(12))
    batches = list(dm.train_dataloader())
    assert len(batches) == 2  # 9 samples, batch 4, the incomplete batch dropped
    check_sample_keys(batches[0], size=64, batch=(4,))
    val_batches = list(dm.val_dataloader())
    assert sum(len(b["index"]) for b in val_batches) == 3
    check_sample_keys(val_batches[0], size=64, batch=(3,))
    dm.setup("test")
    test_batches = list(dm.test_dataloader())
    assert [len(b["index"]) for b in test_batches] == [3]  # not padded
    assert test_batches[0]["index"].tolist() == [0, 1, 2]
    # the hold-out does not depend on the run seed
    other = _datamodule(root, seed=123)
    other.setup("fit")
    assert set(other.val_set.sample_ids) == val_ids
    # monitor_eval_split: the evaluation split as a second validation loader, logged as monitor/*
    monitored = _datamodule(root, monitor_eval_split=True)
    monitored.setup("fit")
    assert monitored.val_prefixes == ["val", "monitor"]
    hold_out, evaluation_split = monitored.val_dataloader()
    assert sum(len(b["index"]) for b in hold_out) == 3
    assert [b["index"].tolist() for b in evaluation_split] == [[0, 1, 2]]
    alone = _datamodule(root, monitor_eval_split=True, val_fraction=0.0)
    alone.setup("fit")
    assert alone.val_prefixes == ["monitor"] and len(alone.train_set) == 12
    assert [b["index"].tolist() for b in alone.val_dataloader()] == [[0, 1, 2]]


def test_eval_set_smaller_than_the_process_count_is_a_clear_error(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    """Under DDP every process needs one evaluation sample; fewer samples than processes would hang."""
    root, _ = rhd_tree
    dm = _datamodule(root, batch_size=4, limit_eval_samples=1)
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1)  # what Lightning sets on a DDP rank
    dm.setup("fit")
    with pytest.raises(ValueError, match=r"validation set has 1 sample\(s\) for 2 processes"):
        dm.val_dataloader()
    dm.setup("test")
    with pytest.raises(ValueError, match=r"test set has 1 sample\(s\) for 2 processes"):
        dm.test_dataloader()


def test_datamodule_batches_do_not_depend_on_workers(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, _ = rhd_tree
    runs = []
    for workers in (0, 2):
        dm = _datamodule(root, num_workers=workers, persistent_workers=True, val_fraction=0.0)
        dm.setup("fit")
        loader = dm.train_dataloader()
        epochs = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            epochs.append([b for b in loader])
        runs.append(epochs)
    for epoch_a, epoch_b in zip(*runs, strict=True):
        for batch_a, batch_b in zip(epoch_a, epoch_b, strict=True):
            for key in batch_a:
                torch.testing.assert_close(batch_a[key], batch_b[key], rtol=0, atol=0)
    assert not torch.equal(runs[0][0][0]["image"], runs[0][1][0]["image"])  # a new epoch, new augmentation


def test_datamodule_does_not_mutate_records(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, _ = rhd_tree
    dm = _datamodule(root, val_fraction=0.0)
    dm.setup("fit")
    before = [(r.xyz.copy(), r.uv.copy(), r.vis.copy(), r.K.copy(), r.hand) for r in dm.records("train")]
    loader = dm.train_dataloader()
    for epoch in range(5):
        loader.sampler.set_epoch(epoch)
        for _ in loader:
            pass
    for (xyz, uv, vis, K, hand), record in zip(before, dm.records("train"), strict=True):
        np.testing.assert_array_equal(record.xyz, xyz)
        np.testing.assert_array_equal(record.uv, uv)
        np.testing.assert_array_equal(record.vis, vis)
        np.testing.assert_array_equal(record.K, K)
        assert record.hand == hand


def test_datamodule_distributed_batches_and_no_padding(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, _ = rhd_tree
    seen: list[int] = []
    train_seen: list[int] = []
    for rank in range(2):
        dm = _datamodule(root, batch_size=4, limit_eval_samples=None)
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        dm.setup("test")
        dm.setup("fit")
        assert dm.per_device_batch_size == 2
        seen += [i for b in dm.test_dataloader() for i in b["index"].tolist()]
        train_seen += [dm.train_set.sample_ids[i] for _, i in dm.train_dataloader().sampler]
    assert sorted(seen) == [0, 1, 2]  # every test sample exactly once over the two processes
    assert set(train_seen) == set(_datamodule(root).records("train")[i].sample_id for i in range(12)) - set(
        dm.val_set.sample_ids
    )
    dm = _datamodule(root, batch_size=5)
    dm.trainer = SimpleNamespace(world_size=2, global_rank=0)
    with pytest.raises(ValueError, match="global batch size and must be divisible by the number of processes"):
        dm.setup("fit")


def test_datamodule_limits_and_argument_errors(rhd_tree: tuple[Path, dict[int, dict]]) -> None:
    root, _ = rhd_tree
    dm = _datamodule(root, limit_train_samples=5, limit_eval_samples=2)
    dm.setup(None)
    assert len(dm.train_set) == 5 and len(dm.val_set) == 2 and len(dm.test_set) == 2
    with pytest.raises(ValueError, match="num_workers"):
        _datamodule(root, num_workers="many")
    with pytest.raises(ValueError, match="unknown augmentation option"):
        _datamodule(root, augmentation={"rotate": 1})
    from internet_plus.data.datamodule import resolve_num_workers

    assert 1 <= resolve_num_workers("auto") <= 8


def test_hydra_instantiates_the_rhd_datamodule(rhd_tree: tuple[Path, dict[int, dict]], tmp_path: Path) -> None:
    import hydra

    from internet_plus.data.rhd import RHDDataModule

    root, _ = rhd_tree
    overrides = ["dataset=rhd", f"data.root={root}", "seed=7", "data.num_workers=0", "data.input_size=64"]
    cfg = compose_config("train", overrides, tmp_path)
    assert cfg.data.augmentation.rotation_factor == 45.0  # conf/augmentation/internet.yaml, composed by the data set
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    assert isinstance(dm, RHDDataModule)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    check_sample_keys(batch, size=64, batch=(3,))


# ------------------------------------------------------------------------------------------------ (b) synthetic


def _generator():
    from internet_plus.data.synthetic import generate_rhd_dataset

    return generate_rhd_dataset


@pytest.fixture(scope="module")
def synthetic_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    generate_rhd_dataset = _generator()
    root = tmp_path_factory.mktemp("synthetic_small") / "rhd"
    return Path(generate_rhd_dataset(root, num_train=8, num_eval=4, seed=0))


def test_synthetic_set_through_the_rhd_loader(synthetic_small: Path) -> None:
    for split, count in (("training", 8), ("evaluation", 4)):
        records = read_rhd_split(synthetic_small, split)
        assert len(records) == count
        dataset = RHDDataset(synthetic_small, split, input_size=S, records=records)
        for i, record in enumerate(records):
            item = dataset[i]
            check_sample_keys(item)
            hand = record.hand
            # the dominant hand is the one with more mask pixels
            mask = cv2.imread(
                str(synthetic_small / split / "mask" / f"{record.sample_id:05d}.png"), cv2.IMREAD_UNCHANGED
            )
            n_left = int(((mask >= 2) & (mask <= 17)).sum())
            n_right = int(((mask >= 18) & (mask <= 33)).sum())
            assert hand == (LEFT if n_left > n_right else RIGHT)
            np.testing.assert_array_equal(item["hand_type"].numpy(), np.eye(2)[hand])
            assert item["joint_annotated"][hand_slice(hand)].sum() == JOINTS_PER_HAND
            assert item["joint_annotated"][hand_slice(1 - hand)].sum() == 0
            np.testing.assert_allclose(
                item["joints_cam"][hand_slice(hand)].numpy(), record.xyz[hand_slice(hand)], atol=1e-3
            )
            _check_self_consistent(item, atol=0.5)
        augmented = RHDDataset(synthetic_small, split, input_size=S, augment=True, records=records)
        for epoch in range(3):
            for i in range(len(records)):
                _check_self_consistent(augmented[(epoch, i)], atol=0.5)


def test_synthetic_datamodule_prepares_and_loads(tmp_path: Path) -> None:
    _generator()
    from internet_plus.data.synthetic.datamodule import SyntheticDataModule

    dm = SyntheticDataModule(
        root=str(tmp_path / "synthetic"),
        num_train=8,
        num_eval=4,
        generator_seed=0,
        two_hand_fraction=0.5,
        batch_size=2,
        num_workers=0,
        input_size=64,
        val_fraction=0.25,
    )
    dm.prepare_data()
    dm.prepare_data()  # complete: nothing to do
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.train_set) == 6 and len(dm.val_set) == 2 and len(dm.test_set) == 4
    check_sample_keys(next(iter(dm.train_dataloader())), size=64, batch=(2,))
    check_sample_keys(next(iter(dm.test_dataloader())), size=64, batch=(2,))


class _RecordingModule:
    """A minimal LightningModule that records which samples and augmentations each epoch saw."""

    @staticmethod
    def make():
        import pytorch_lightning as L

        class Recording(L.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.weight = torch.nn.Parameter(torch.zeros(1))
                self.seen: list[tuple[int, list[float]]] = []
                self.val_batches = 0

            def training_step(self, batch, batch_idx):
                self.seen.append((self.current_epoch, batch["inv_trans"][:, 0, 2].tolist()))
                return (self.weight * batch["image"].mean()).sum()

            def validation_step(self, batch, batch_idx):
                self.val_batches += 1

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.0)

        return Recording()


@pytest.mark.parametrize("val_fraction", [0.25, 0.0])
def test_datamodule_under_a_lightning_trainer(rhd_tree: tuple[Path, dict[int, dict]], val_fraction: float) -> None:
    """Lightning keeps the epoch-aware sampler and advances its epoch; val_fraction=0 disables validation."""
    import pytorch_lightning as L

    root, _ = rhd_tree
    dm = _datamodule(root, val_fraction=val_fraction, batch_size=3)
    module = _RecordingModule.make()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    epochs = {epoch: [x for e, xs in module.seen if e == epoch for x in xs] for epoch in (0, 1)}
    assert len(epochs[0]) == len(epochs[1]) == len(dm.train_set) // 3 * 3
    assert sorted(epochs[0]) != sorted(epochs[1])  # the second epoch drew new augmentations
    assert isinstance(trainer.train_dataloader.sampler, type(dm.train_dataloader().sampler))
    assert (module.val_batches > 0) == (val_fraction > 0)


# ------------------------------------------------------------------------------------------------ (e) data.verify


def test_verify_lists_every_problem_of_a_broken_tree(tmp_path: Path) -> None:
    root = tmp_path / "RHD_published_v2"
    _build_rhd_tree(root, num_train=4)
    truncated = root / "training" / "color" / "00001.png"
    truncated.write_bytes(truncated.read_bytes()[:200])
    path = root / "training" / "anno_training.pickle"
    anno = pickle.loads(path.read_bytes())
    anno[3]["xyz"] = anno[3]["xyz"].copy()
    anno[3]["xyz"][5, 2] = np.nan
    path.write_bytes(pickle.dumps(anno))

    with pytest.raises(DatasetLayoutError) as info:
        _datamodule(root, verify=True).setup("fit")
    message = str(info.value)
    # The whole split was checked before raising: both files are named, with what is wrong.
    assert "2 problem(s) in 2 sample(s)" in message
    assert f"{truncated}: image cannot be decoded" in message
    assert str(root / "training" / "color" / "00003.png") in message
    assert "anno_training.pickle" in message and "'xyz' has 1 non-finite value(s)" in message
    # Without verify the reader stops at the first problem (the annotation).
    with pytest.raises(DatasetLayoutError, match="sample 3"):
        _datamodule(root).setup("fit")


def test_verify_range_checks(tmp_path: Path) -> None:
    root = tmp_path / "RHD_published_v2"
    _build_rhd_tree(root, num_train=3)
    path = root / "training" / "anno_training.pickle"
    anno = pickle.loads(path.read_bytes())
    anno[0]["xyz"] = anno[0]["xyz"] * 20.0  # ~10 m away
    anno[1]["uv_vis"] = anno[1]["uv_vis"].copy()
    anno[1]["uv_vis"][anno[1]["uv_vis"][:, 2] == 1, 0] += 5000.0
    anno[2]["K"] = anno[2]["K"] * np.array([[-1.0], [1.0], [1.0]])
    path.write_bytes(pickle.dumps(anno))
    with pytest.raises(DatasetLayoutError) as info:
        _datamodule(root, verify=True).setup("fit")
    message = str(info.value)
    assert "3 problem(s) in 3 sample(s)" in message
    assert "outside 0 < z < 5 m" in message and "outside the 320x320 image" in message
    assert "implausible intrinsics" in message


def test_verify_passes_on_clean_trees_and_logs_the_summary(
    rhd_tree: tuple[Path, dict[int, dict]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, _ = rhd_tree
    with caplog.at_level("INFO", logger="internet_plus.data.verify"):
        dm = _datamodule(root, verify=True)
        dm.setup("fit")
        dm.setup("test")
    assert "RHD training" in caplog.text and "verified 12 samples (12 images, 12 masks opened" in caplog.text
    assert "RHD evaluation" in caplog.text and "no problems" in caplog.text
    assert len(dm.train_set) + len(dm.val_set) == 12

    _generator()
    from internet_plus.data.synthetic.datamodule import SyntheticDataModule

    caplog.clear()
    dm = SyntheticDataModule(
        root=str(tmp_path / "synthetic"), num_train=8, num_eval=4, num_workers=0, input_size=64, verify=True
    )
    dm.prepare_data()
    with caplog.at_level("INFO", logger="internet_plus.data.verify"):
        dm.setup("test")
    assert "verified 4 samples" in caplog.text and "no problems" in caplog.text


def test_read_rgb_refuses_a_jpeg_cut_short(tmp_path: Path) -> None:
    """OpenCV decodes a truncated JPEG with a grey tail and only a warning: the reader must refuse it by name."""
    from internet_plus.data.images import read_rgb

    image = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    whole = tmp_path / "whole.jpg"
    cv2.imwrite(str(whole), image)
    assert read_rgb(whole).shape == (64, 80, 3)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with pytest.raises(FileNotFoundError, match=r"cut\.jpg: truncated JPEG"):
        read_rgb(cut)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_rgb(tmp_path / "missing.png")


# ------------------------------------------------------------------------------------------------ (e) bad samples


def _spoil_evaluation(root: Path, case: str) -> int:
    """Spoil one evaluation annotation of a fresh tree; returns its sample id."""
    path = root / "evaluation" / "anno_evaluation.pickle"
    anno = pickle.loads(path.read_bytes())
    sample_id = sorted(anno)[1]
    if case == "K=0":
        anno[sample_id]["K"] = np.zeros((3, 3), dtype=np.float32)
    elif case == "xyz*1e6":
        anno[sample_id]["xyz"] = anno[sample_id]["xyz"] * 1e6
    elif case == "uv=1e7":
        anno[sample_id]["uv_vis"][:, :2] = 1e7
    else:  # every keypoint invisible: nothing to score with eval_visible_only
        anno[sample_id]["uv_vis"][:, 2] = 0
    path.write_bytes(pickle.dumps(anno, protocol=2))
    return sample_id


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("K=0", "implausible intrinsics"),
        ("xyz*1e6", "outside 0 < z < 5 m"),
        ("uv=1e7", r"2-D keypoints outside the 320×320 image"),
        ("no joint", "no joint is annotated"),
    ],
)
def test_bad_evaluation_sample_stops_setup_or_is_skipped(tmp_path: Path, case: str, problem: str) -> None:
    root = tmp_path / "RHD_published_v2"
    _build_rhd_tree(root, num_train=4)
    sample_id = _spoil_evaluation(root, case)
    visible = {"eval_visible_only": True} if case == "no joint" else {}
    strict = _datamodule(root, **visible)
    with pytest.raises(DatasetLayoutError, match=problem) as info:
        strict.setup("fit")  # before training: the fit stage checks the evaluation split too
    assert f"evaluation/color/{sample_id:05d}.png (sample {sample_id})" in str(info.value)
    assert "on_bad_sample=skip" in str(info.value) and strict.train_set is not None and strict.test_set is None

    lenient = _datamodule(root, on_bad_sample="skip", **visible)
    lenient.setup("fit")
    lenient.setup("test")
    assert sample_id not in lenient.test_set.sample_ids and len(lenient.test_set) == 2
    assert lenient.skipped_test_samples == 1
    assert _datamodule(root, limit_eval_samples=1, **visible).test_positions().tolist() == [0]  # not scored: no stop


def test_a_skipped_evaluation_sample_is_counted_in_metrics_json(tmp_path: Path) -> None:
    """data.on_bad_sample=skip through train.py: the run scores the other samples and metrics.json says how many
    were left out."""
    from conftest import TINY

    from internet_plus.tasks import train as train_task

    root = tmp_path / "RHD_published_v2"
    _build_rhd_tree(root, num_train=4)
    _spoil_evaluation(root, "K=0")
    run_dir = tmp_path / "run"
    overrides = [*TINY, "dataset=rhd", f"data.root={root}", "data.on_bad_sample=skip", "debug=fdr"]
    cfg = compose_config("train", [*overrides, f"paths.log_dir={tmp_path / 'logs'}"], run_dir)
    train_task.run(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/skipped_samples"] == 1.0 and metrics["test/epe_mm"] > 0


def test_far_crop_keypoints_flags_garbage_but_not_a_hand_partly_out_of_view() -> None:
    from internet_plus.data.sample_checks import TRAINING_UV_MARGIN, far_crop_keypoints

    uv = np.full((4, 21, 2), 160.0)
    uv[1, 3] = (-2 * 320, 900.0)  # two image sizes out: a hand partly out of view, kept
    uv[2, 7] = (160.0, 320 * (1 + TRAINING_UV_MARGIN) + 1)  # just beyond the margin
    uv[3, 0] = (np.nan, 0.0)
    far = far_crop_keypoints(uv, (320, 320))
    assert sorted(far) == [2, 3]
    assert "keypoint 7 at uv [160.0, 3521.0]" in far[2] and "1 keypoint(s)" in far[3]


@pytest.mark.parametrize("keypoints", ["all", "some"])
def test_a_training_sample_whose_crop_cannot_show_the_hand_stops_at_setup(tmp_path: Path, keypoints: str) -> None:
    """Keypoints at 1e7 px in a *training* annotation: all of them (no box at all) or a few (the box still has a size,
    thousands of images wide: an all-black crop that would train on nothing). Setup stops naming the image and the
    sample, before the first step; ``on_bad_sample=skip`` trains without it."""
    root = tmp_path / "RHD_published_v2"
    _build_rhd_tree(root, num_train=4)
    path = root / "training" / "anno_training.pickle"
    anno = pickle.loads(path.read_bytes())
    sample_id = sorted(anno)[0]
    if keypoints == "all":
        anno[sample_id]["uv_vis"][:, :2] = 1e7
    else:
        anno[sample_id]["uv_vis"][::7, :2] = 1e7  # 6 of 42 joints, 3 in each hand
    path.write_bytes(pickle.dumps(anno, protocol=2))
    with pytest.raises(
        DatasetLayoutError,
        match=rf"1 training-split sample\(s\) cannot be cropped.*\n  - .*training/color/{sample_id:05d}\.png "
        rf"\(sample {sample_id}\): \d+ keypoint\(s\) of the crop box .* more than 10 image size",
    ):
        _datamodule(root, val_fraction=0.0).setup("fit")

    dm = _datamodule(root, val_fraction=0.0, on_bad_sample="skip")
    dm.setup("fit")
    assert len(dm.train_set) == 3
    # the sample itself, read anyway, still names its file when no crop can be made (every dataset's __getitem__)
    if keypoints == "all":
        position = [r.sample_id for r in dm.records("train")].index(sample_id)
        dataset = dm._make_dataset("train", [position], augment=False)
        with pytest.raises(
            ValueError, match=rf"training/color/{sample_id:05d}\.png \(sample 0 of this split\): cannot"
        ):
            dataset[0]


def test_every_split_is_checked_at_setup(tmp_path: Path) -> None:
    root = tmp_path / "RHD_published_v2"
    _build_rhd_tree(root, num_train=4)
    shutil.rmtree(root / "evaluation")
    with pytest.raises(DatasetLayoutError, match=r"evaluation/anno_evaluation\.pickle is missing"):
        _datamodule(root).setup("fit")
    dm = _datamodule(root)
    dm.tests_after_fit = False  # train.py with test=false: the run never reads the evaluation split
    dm.setup("fit")
    assert dm.train_set is not None and dm.test_set is None
    with pytest.raises(ValueError, match="on_bad_sample"):
        _datamodule(root, on_bad_sample="ignore")


def test_an_empty_training_annotation_file_is_named(rhd_tree: tuple[Path, dict[int, dict]], tmp_path: Path) -> None:
    """An ``anno_training.pickle`` that lists no sample: the error names that file, not data.val_fraction."""
    from fakes.rhd import write_rhd_split

    from internet_plus.data.errors import DatasetLayoutError

    root = tmp_path / "RHD_published_v2"
    shutil.copytree(rhd_tree[0] / "evaluation", root / "evaluation")
    write_rhd_split(root, "training", {}, {}, {})
    with pytest.raises(DatasetLayoutError) as err:
        _datamodule(root).setup("fit")
    message = str(err.value)
    assert message.startswith(f"{root / 'training' / 'anno_training.pickle'}: expected a non-empty dict")
    assert "val_fraction" not in message
