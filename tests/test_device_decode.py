"""``data.decode_on=device``: the JPEGs decoded on the batch's device (:mod:`internet_plus.data.device_decode`), then
warped there, give the worker path's crops and exactly its targets.

The bound: on the CPU torchvision's ``decode_jpeg`` and OpenCV's ``imdecode`` (both libjpeg-turbo) decode the real
InterHand2.6M sample JPEGs bit for bit alike (measured: max difference 0), so the device path differs from the worker
path only by the warp (``tests/test_device_warp.py``'s 0.1 grey level, mean 0.005; measured here 0.004 and 0.0001).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fakes.interhand import write_interhand_tree
from pytorch_lightning.utilities import move_data_to_device
from test_device_warp import _assert_close_to_worker

from internet_plus.data.device_decode import SOURCE_JPEG, JpegBatch, check_decode_on, decode_jpegs, read_jpeg
from internet_plus.data.device_warp import SOURCE_IMAGE, WARP_COLOR, WARP_TRANS, warp_device_batch
from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.images import read_rgb
from internet_plus.data.interhand import InterHandDataModule
from internet_plus.data.rhd import RHDDataModule

REAL_JPEGS = sorted((Path(__file__).parent / "fixtures" / "real_samples" / "interhand2.6m").glob("*.jpg"))


@pytest.fixture(scope="module")
def jpeg_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake InterHand2.6M tree with a real sample photo (resized to each split's size) as every frame."""
    root = tmp_path_factory.mktemp("ih_decode") / "InterHand2.6M"
    photo = cv2.imread(str(REAL_JPEGS[0]))
    for split, files in write_interhand_tree(root, {"train": 8, "test": 4}).items():
        ok, encoded = cv2.imencode(".jpg", cv2.resize(photo, files.image_size, interpolation=cv2.INTER_AREA))
        assert ok
        for name in set(files.file_names):
            (root / "images" / split / name).write_bytes(encoded.tobytes())
    return root


def _datamodule(root: Path, cache: Path, on: str, **kwargs) -> InterHandDataModule:
    args = dict(root=str(root), cache_dir=str(cache), batch_size=4, num_workers=0, input_size=64, val_fraction=0.0)
    return InterHandDataModule(**{**args, "warp_on": on, "decode_on": on, **kwargs})


def test_torchvision_decodes_the_real_interhand_jpegs_as_opencv_does() -> None:
    """The header size is the decoded size, and the CPU decodes are bit-identical (also padded to a common size)."""
    jpegs = [read_jpeg(path) for path in REAL_JPEGS]
    decoded = decode_jpegs([jpeg.tensor() for jpeg in jpegs], "cpu")
    assert decoded.dtype == torch.uint8 and decoded.shape == (len(jpegs), 3, 512, 512)  # 512×334 and 334×512
    for path, jpeg, image in zip(REAL_JPEGS, jpegs, decoded, strict=True):
        reference = read_rgb(path)
        assert jpeg.shape == reference.shape, path.name
        height, width = reference.shape[:2]
        assert torch.equal(image[:, :height, :width], torch.from_numpy(reference).permute(2, 0, 1)), path.name
        assert not image[:, height:].any() and not image[:, :, width:].any()


def test_the_batches_equal_the_worker_path_with_decoding_on_the_device(jpeg_tree: Path, tmp_path: Path) -> None:
    """Training (augmented, epoch 1) and test batches: the JPEG bytes stay on the CPU through the transfer, and after
    the hook the images are within the bound and every other key is exactly the worker path's."""
    worker = _datamodule(jpeg_tree, tmp_path / "cache", "worker")
    device = _datamodule(jpeg_tree, tmp_path / "cache", "device")
    for module in (worker, device):
        module.setup("fit")
        module.setup("test")
        module.train_dataloader().sampler.set_epoch(1)
    pairs = [
        (worker.train_dataloader(), device.train_dataloader()),
        (worker.test_dataloader(), device.test_dataloader()),
    ]
    for worker_loader, device_loader in pairs:
        for worker_batch, device_batch in zip(worker_loader, device_loader, strict=True):
            assert isinstance(device_batch[SOURCE_JPEG], JpegBatch) and SOURCE_IMAGE not in device_batch
            moved = move_data_to_device(device_batch, torch.device("meta"))
            assert moved[WARP_TRANS].is_meta and all(t.device.type == "cpu" for t in moved[SOURCE_JPEG].tensors)
            device_batch = device.on_after_batch_transfer(device_batch, 0)
            assert set(device_batch) == set(worker_batch)
            _assert_close_to_worker(device_batch["image"].numpy(), worker_batch["image"].numpy())
            for key in set(worker_batch) - {"image"}:
                assert torch.equal(device_batch[key], worker_batch[key]), key
    assert any(float(b[WARP_COLOR].min()) != 1.0 for b in device.train_dataloader()), "colour-augmented batches"


def test_one_sample_with_a_batch_axis_is_decoded_and_warped(jpeg_tree: Path, tmp_path: Path) -> None:
    """What the preview does with one sample (``v[None]`` on every key, the JPEG bytes included)."""
    worker = _datamodule(jpeg_tree, tmp_path / "cache", "worker")
    device = _datamodule(jpeg_tree, tmp_path / "cache", "device")
    worker.setup("test")
    device.setup("test")
    sample = device.test_set[0]
    assert sample[SOURCE_JPEG].dtype == torch.uint8 and sample[SOURCE_JPEG].ndim == 1
    out = warp_device_batch({k: v[None] for k, v in sample.items()}, 64)
    _assert_close_to_worker(out["image"][0].numpy(), worker.test_set[0]["image"].numpy())


def test_a_truncated_or_non_jpeg_file_is_refused_by_name_in_the_worker(jpeg_tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy" / "InterHand2.6M"
    write_interhand_tree(root, {"train": 4, "test": 4})
    module = _datamodule(root, tmp_path / "cache", "device", limit_eval_samples=1)
    module.setup("test")
    path = module.test_set._image_path(0)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetLayoutError, match=rf"{path.name}.*truncated JPEG \(no end-of-image marker\)"):
        module.test_set[0]
    ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    path.write_bytes(png.tobytes())
    with pytest.raises(DatasetLayoutError, match=rf"{path.name}.*not a JPEG file"):
        module.test_set[0]


def test_the_bad_combinations_are_refused_naming_the_keys(jpeg_tree: Path, synthetic_root: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.decode_on=device needs data\.warp_on=device.*'worker'"):
        InterHandDataModule(root=str(jpeg_tree), warp_on="worker", decode_on="device")
    with pytest.raises(ValueError, match=r"data\.decode_on='gpu' is not a valid value.*\['worker', 'device'\]"):
        check_decode_on("gpu", "device")
    with pytest.raises(ValueError, match=r"data\.decode_on=device decodes JPEG images only.*RHDDataModule.*PNG"):
        RHDDataModule(root=str(synthetic_root), warp_on="device", decode_on="device")
    assert RHDDataModule(root=str(synthetic_root), warp_on="device", decode_on="worker").decode_on == "worker"
