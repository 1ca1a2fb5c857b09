"""``data.warp_on=device``: the crop warp and colour augmentation batched on the batch's device
(:mod:`internet_plus.data.device_warp`) give the worker path's crops and exactly its targets.

The bound: OpenCV's bilinear ``warpAffine`` (on the float32 image, as the worker path calls it) and ``grid_sample`` in
float32 differ by at most 0.05 grey levels on 640×480 images (measured: 0.046 on noise, 0.037 on smooth images, mean
0.002 and 0.00004); the tests allow 0.1 grey level, i.e. 0.1/255 after scaling to [0, 1], and a mean of 0.005.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import SAMPLE_KEYS, compose_config, tiny_train_overrides

from internet_plus.data.device_warp import (
    SOURCE_IMAGE,
    WARP_COLOR,
    WARP_TRANS,
    collate_device_samples,
    sampling_theta,
    warp_batch,
)
from internet_plus.data.rhd import RHDDataModule, RHDDataset
from internet_plus.data.transforms import (
    AugmentationConfig,
    AugParams,
    apply_color,
    bbox_from_joints,
    build_single_hand_sample,
    crop_affine,
    process_bbox,
    sample_augmentation,
    warp_image,
)

MAX_LEVELS = 0.1
MEAN_LEVELS = 0.005


def _image(rng: np.random.Generator, height: int, width: int, smooth: bool) -> np.ndarray:
    if not smooth:
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _random_crops(rng: np.random.Generator, image: np.ndarray, count: int, size: int):
    """``count`` augmented crops of ``image`` (rotation, scale, flip, colour; boxes partly outside the image): the
    worker path's crops in [0, 1] (3×S×S) and each one's ``trans`` and colour factors."""
    height, width = image.shape[:2]
    refs, trans, colors = [], [], []
    for _ in range(count):
        params = sample_augmentation(rng, AugmentationConfig())
        side = rng.uniform(0.1, 0.8) * width
        box = np.array([rng.uniform(-0.3, 1.0) * width, rng.uniform(-0.3, 1.0) * height, side, side])
        t, _ = crop_affine(box, params, size, width)
        crop = apply_color(warp_image(image.astype(np.float32), t, size), params.color, 255.0) * np.float32(1 / 255)
        refs.append(crop.transpose(2, 0, 1))
        trans.append(t)
        colors.append(params.color)
    return np.stack(refs), torch.tensor(np.array(trans), dtype=torch.float32), torch.tensor(colors)


def _assert_close_to_worker(device_image: np.ndarray, worker_image: np.ndarray) -> None:
    levels = np.abs(np.asarray(device_image, dtype=np.float64) - np.asarray(worker_image, dtype=np.float64)) * 255
    assert levels.max() <= MAX_LEVELS, levels.max()
    assert levels.mean() <= MEAN_LEVELS, levels.mean()


@pytest.mark.parametrize("smooth", [False, True], ids=["noise", "smooth"])
def test_warp_batch_matches_opencv_warp_affine(smooth: bool) -> None:
    rng = np.random.default_rng(3)
    image = _image(rng, 480, 640, smooth)
    refs, trans, colors = _random_crops(rng, image, 12, 96)
    images = torch.from_numpy(image).permute(2, 0, 1)[None].expand(len(refs), -1, -1, -1)
    out = warp_batch(images, trans, colors, 96)
    assert out.dtype == torch.float32 and out.shape == (12, 3, 96, 96)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert (refs == 0).mean() > 0.01, "some crops reach outside the image (the black border is compared too)"
    _assert_close_to_worker(out.numpy(), refs)


def test_identity_colour_and_a_pure_translation_are_exact() -> None:
    """An integer translation reads whole pixels: the crop is the image's window exactly (zeros outside)."""
    rng = np.random.default_rng(0)
    image = _image(rng, 20, 30, smooth=False)
    trans = torch.tensor([[[1.0, 0.0, -4.0], [0.0, 1.0, 3.0]]])
    out = warp_batch(torch.from_numpy(image).permute(2, 0, 1)[None], trans, torch.ones(1, 3), 16)[0] * 255
    expected = np.zeros((16, 16, 3), dtype=np.float32)
    expected[3:16, 0:16] = image[0:13, 4:20]
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, atol=1e-3)


def test_images_of_different_sizes_are_zero_padded_and_warp_unchanged() -> None:
    rng = np.random.default_rng(1)
    samples, refs = [], []
    for height, width in ((40, 50), (64, 30)):
        image = _image(rng, height, width, smooth=False)
        ref, trans, colors = _random_crops(rng, image, 1, 32)
        refs.append(ref[0])
        samples.append(
            {SOURCE_IMAGE: torch.from_numpy(image).permute(2, 0, 1), WARP_TRANS: trans[0], WARP_COLOR: colors[0]}
        )
    batch = collate_device_samples(samples)
    assert batch[SOURCE_IMAGE].shape == (2, 3, 64, 50)
    assert not batch[SOURCE_IMAGE][0, :, 40:].any() and not batch[SOURCE_IMAGE][1, :, :, 30:].any()
    out = warp_batch(batch[SOURCE_IMAGE], batch[WARP_TRANS], batch[WARP_COLOR], 32)
    _assert_close_to_worker(out.numpy(), np.stack(refs))


def test_a_device_sample_carries_the_original_image_trans_and_colour_and_the_same_targets() -> None:
    rng = np.random.default_rng(2)
    image = _image(rng, 48, 64, smooth=True)
    uv = rng.uniform(15, 35, (21, 2))
    xyz = np.column_stack([rng.normal(0, 30, (21, 2)), rng.uniform(400, 500, 21)])
    K = np.array([[300.0, 0, 32], [0, 300.0, 24], [0, 0, 1]])
    params = sample_augmentation(np.random.default_rng(5), AugmentationConfig(flip_prob=1.0))
    args = (image, 0, xyz, uv, 1.0, K, params, 32, 7)
    worker = build_single_hand_sample(*args)
    device = build_single_hand_sample(*args, warp_on="device")
    assert set(device) == (set(SAMPLE_KEYS) - {"image"}) | {SOURCE_IMAGE, WARP_TRANS, WARP_COLOR}
    assert device[SOURCE_IMAGE].dtype == torch.uint8 and torch.equal(
        device[SOURCE_IMAGE], torch.from_numpy(image).permute(2, 0, 1)
    )
    trans, _ = crop_affine(process_bbox(bbox_from_joints(uv)), params, 32, 64)
    assert torch.equal(device[WARP_TRANS], torch.from_numpy(trans.astype(np.float32)))
    assert torch.equal(device[WARP_COLOR], torch.tensor(params.color, dtype=torch.float32))
    for key in set(worker) - {"image"}:
        assert torch.equal(device[key], worker[key]), key
    out = warp_batch(device[SOURCE_IMAGE][None], device[WARP_TRANS][None], device[WARP_COLOR][None], 32)
    _assert_close_to_worker(out[0].numpy(), worker["image"].numpy())


def _datamodule(root: Path, warp_on: str) -> RHDDataModule:
    datamodule = RHDDataModule(
        root=str(root),
        input_size=64,
        batch_size=4,
        num_workers=0,
        pin_memory=False,
        val_fraction=0.1,
        seed=11,
        limit_train_samples=8,
        limit_eval_samples=4,
        warp_on=warp_on,
    )
    datamodule.setup("fit")
    datamodule.setup("test")
    return datamodule


def test_the_datamodule_gives_the_same_batches_both_ways(synthetic_root: Path) -> None:
    """Training (augmented, epoch 1), validation and test batches: after the hook, images within the bound and every
    other key exactly equal."""
    worker, device = _datamodule(synthetic_root, "worker"), _datamodule(synthetic_root, "device")
    for module in (worker, device):
        module.train_dataloader().sampler.set_epoch(1)
    pairs = [
        (worker.train_dataloader(), device.train_dataloader()),
        (worker.val_dataloader(), device.val_dataloader()),
        (worker.test_dataloader(), device.test_dataloader()),
    ]
    for worker_loader, device_loader in pairs:
        for worker_batch, device_batch in zip(worker_loader, device_loader, strict=True):
            assert SOURCE_IMAGE in device_batch and "image" not in device_batch
            assert worker.on_after_batch_transfer(worker_batch, 0) is worker_batch
            device_batch = device.on_after_batch_transfer(device_batch, 0)
            assert set(device_batch) == set(worker_batch)
            _assert_close_to_worker(device_batch["image"].numpy(), worker_batch["image"].numpy())
            for key in set(worker_batch) - {"image"}:
                assert torch.equal(device_batch[key], worker_batch[key]), key
    assert any(float(c.min()) != 1.0 for c in (b[WARP_COLOR] for b in device.train_dataloader())), (
        "the training batches are colour-augmented"
    )


def test_a_training_run_with_the_warp_on_the_device(synthetic_root: Path, tmp_path: Path) -> None:
    """train.py's fast dev run (fit, validation and test through Lightning's hooks) with ``data.warp_on=device``."""
    from internet_plus.tasks import train as train_task

    overrides = tiny_train_overrides(synthetic_root, tmp_path, "debug=fdr", "data.warp_on=device")
    results = train_task.run(compose_config("train", overrides, tmp_path / "run"))
    assert np.isfinite(results["test/epe_mm"])


def test_an_unknown_warp_on_is_refused_naming_the_key_and_the_values(synthetic_root: Path) -> None:
    message = r"data\.warp_on='gpu'.*\['worker', 'device'\]"
    with pytest.raises(ValueError, match=message):
        RHDDataModule(root=str(synthetic_root), warp_on="gpu")
    with pytest.raises(ValueError, match=message):
        RHDDataset(synthetic_root, "evaluation", warp_on="gpu")


def test_the_sampling_matrix_is_the_composition_of_the_normalisations_and_the_inverse_affine() -> None:
    """``sampling_theta`` writes the inverse out and folds the normalisations in (so that nothing waits for the
    device); it must equal the matrix product through ``torch.linalg.inv`` in float64: crop [-1, 1] → crop pixels
    → image pixels → image [-1, 1]."""
    g = torch.Generator().manual_seed(3)
    params = [AugParams(shift=(0.1, -0.05), scale=0.8 + 0.1 * k, rotation=40.0 * k, flip=k % 2 == 0) for k in range(5)]
    trans = torch.stack([torch.as_tensor(crop_affine([150, 90, 240, 200], p, 256, 640)[0]) for p in params])
    trans = trans + 1e-3 * torch.randn(trans.shape, generator=g, dtype=trans.dtype)  # any affine, not only crops
    width, height, size = 640, 480, 256
    full = torch.cat([trans.double(), torch.tensor([[[0.0, 0.0, 1.0]]]).double().expand(5, 1, 3)], dim=1)
    to_image = torch.tensor([[2 / width, 0, 1 / width - 1], [0, 2 / height, 1 / height - 1], [0, 0, 1]]).double()
    from_crop = torch.tensor([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1]]).double()
    expected = (to_image @ torch.linalg.inv(full) @ from_crop)[:, :2]
    theta = sampling_theta(trans, width, height, size)
    assert theta.dtype == torch.float32 and theta.shape == (5, 2, 3)
    torch.testing.assert_close(theta.double(), expected, rtol=0, atol=1e-6)
