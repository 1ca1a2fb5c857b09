"""Special files never hang a run, SIGTERM ends it even when it is blocked, and the smaller silent input cases are
refused with a message naming the file, sample or config key (unit level, tiny files in tmp_path)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from internet_plus.data.errors import DatasetLayoutError
from internet_plus.data.images import read_image, read_rgb
from internet_plus.data.verify import VerifyItem, verify_samples
from internet_plus.tasks import common
from internet_plus.tasks.common import ConfigValueError, check_config, sigterm_deadline
from internet_plus.tasks.predict_inputs import PredictError, _validate_box, iter_frames


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A named pipe called ``00000.jpg``; a guard opens its write end after 10 s, so a blocked reader cannot hang."""
    path = tmp_path / "00000.jpg"
    os.mkfifo(path)
    done = threading.Event()

    def release() -> None:
        if not done.wait(10.0):
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # a reader is waiting: this returns and unblocks it
            os.close(fd)

    guard = threading.Thread(target=release, daemon=True)
    guard.start()
    yield path
    done.set()
    guard.join()


def _release(path: Path) -> None:
    with contextlib.suppress(OSError):  # nobody reading yet
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _jpeg(path: Path, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


def _noise(h: int = 96, w: int = 128) -> np.ndarray:
    return cv2.GaussianBlur((np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8), (5, 5), 0)


# ------------------------------------------------------------------------------------------ special files


def test_images_that_are_not_regular_files_are_refused_by_name(fifo: Path, tmp_path: Path) -> None:
    for path, kind in ((fifo, "named pipe"), (tmp_path, "directory"), (Path("/dev/zero"), "character device")):
        with pytest.raises(FileNotFoundError, match=kind) as err:
            read_rgb(path)
        assert str(path) in str(err.value) and "not a regular file" in str(err.value)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), _noise())
    link = tmp_path / "link.png"
    link.symlink_to(good)
    assert read_rgb(link).shape == (96, 128, 3)  # a link to a regular file is fine

    with pytest.raises(DatasetLayoutError) as err:
        verify_samples([VerifyItem(name="s0", image=str(fifo))], "test", workers=1)
    assert f"{fifo}: image is a named pipe (FIFO), not a regular file" in str(err.value)

    (frame,) = iter_frames(fifo)
    assert frame.image is None and str(fifo) in frame.error and "named pipe" in frame.error
    video = tmp_path / "clip.mp4"
    os.mkfifo(video)
    with pytest.raises(PredictError, match="not a regular file"):
        list(iter_frames(video))


def test_sigterm_outside_the_training_loop_ends_a_blocked_open(fifo: Path) -> None:
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    with pytest.raises(SystemExit) as err, sigterm_deadline(seconds=30):
        timer.start()
        with open(fifo, "rb"):  # blocks: no writer
            pass
    assert err.value.code == 143


def test_sigterm_deadline_exits_when_training_cannot_stop(fifo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []

    def fake_exit(status: int) -> None:  # records, then unblocks the "worker" instead of ending pytest
        exits.append(status)
        _release(fifo)

    monkeypatch.setattr(common.os, "_exit", fake_exit)
    seen: list[int] = []
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_deadline(seconds=0.5):
        ours = signal.getsignal(signal.SIGTERM)
        # Lightning's handler: sets its flag, then calls the handler it found installed (ours).
        signal.signal(signal.SIGTERM, lambda signum, frame: (seen.append(signum), ours(signum, frame)))
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        with open(fifo, "rb"):  # blocked like a loader worker reading a named pipe; the flag is never read
            pass
        signal.signal(signal.SIGTERM, ours)  # Lightning's teardown
    assert seen == [signal.SIGTERM] and exits == [143]
    assert signal.getsignal(signal.SIGTERM) is before


# ------------------------------------------------------------------------------------------ corrupt JPEG


def test_jpeg_cut_short_with_an_end_marker_is_refused(tmp_path: Path) -> None:
    raw = _jpeg(tmp_path / "full.jpg", _noise())
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(raw[: len(raw) // 2] + b"\xff\xd9")
    assert cv2.imread(str(cut)) is not None  # OpenCV alone decodes it, the lower half grey
    with pytest.raises(FileNotFoundError, match=r"cut\.jpg: corrupt JPEG \(Corrupt JPEG data"):
        read_rgb(cut)
    with pytest.raises(FileNotFoundError, match="corrupt JPEG"):
        read_image(cut, cv2.IMREAD_UNCHANGED)
    with pytest.raises(DatasetLayoutError, match=rf"{cut}: image corrupt JPEG"):
        verify_samples([VerifyItem(name="s0", image=str(cut))], "test", workers=1)
    (frame,) = iter_frames(cut)
    assert frame.image is None and "corrupt JPEG" in frame.error

    grey = tmp_path / "grey.jpg"  # a whole JPEG whose corner really is mid-grey is read
    _jpeg(grey, np.full((40, 40, 3), 128, np.uint8))
    assert read_rgb(grey).shape == (40, 40, 3)
    np.testing.assert_array_equal(read_rgb(tmp_path / "full.jpg"), cv2.imread(str(tmp_path / "full.jpg"))[..., ::-1])


# ------------------------------------------------------------------------------------------ config


def _cfg(**overrides: object):
    cfg = OmegaConf.create({"train": True, "data": {"batch_size": 16}, "trainer": {"max_epochs": 50}})
    for key, value in overrides.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    return cfg


def test_config_values_that_cannot_work_are_named_before_any_work() -> None:
    check_config(_cfg())
    with pytest.raises(ConfigValueError, match=r"trainer\.max_epochs=0 trains nothing.*untrained"):
        check_config(_cfg(trainer__max_epochs=0))
    with pytest.raises(ConfigValueError, match=r"trainer\.max_steps=0"):
        check_config(_cfg(trainer__max_steps=0))
    check_config(_cfg(trainer__max_epochs=0, train=False))  # testing the initial weights on purpose
    check_config(_cfg(trainer__max_epochs=-1))  # Lightning's "no limit"
    with pytest.raises(ConfigValueError, match=r"data\.batch_size='abc' is not an integer"):
        check_config(_cfg(data__batch_size="abc"))
    with pytest.raises(ConfigValueError, match=r"data\.batch_size=0 must be >= 1"):
        check_config(_cfg(data__batch_size=0))
    with pytest.raises(ConfigValueError, match=r"data\.batch_size=2\.5"):
        check_config(_cfg(data__batch_size=2.5))


# ------------------------------------------------------------------------------------------ predict inputs


def test_a_box_far_larger_than_the_image_is_refused() -> None:
    assert _validate_box([10, 10, 100, 120], 640, 480) == [10.0, 10.0, 100.0, 120.0]
    assert _validate_box([-50, -50, 700, 500], 640, 480)  # a box a little beyond the image is fine
    with pytest.raises(PredictError, match=r"implausibly large for the 640×480 image"):
        _validate_box([10, 10, 1e12, 1e12], 640, 480)


class _TruncatedCapture:
    """``cv2.VideoCapture`` of a video whose container declares 10 frames but whose data ends after 4."""

    def __init__(self, path: str) -> None:
        self.left = 4

    def isOpened(self) -> bool:  # noqa: N802 - cv2's name
        return True

    def get(self, prop: int) -> float:
        return 10.0 if prop == cv2.CAP_PROP_FRAME_COUNT else 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.left -= 1
        return (True, np.zeros((48, 64, 3), np.uint8)) if self.left >= 0 else (False, None)

    def release(self) -> None:
        pass


def test_a_truncated_video_is_warned_about_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from internet_plus.tasks import predict_inputs

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 64)
    monkeypatch.setattr(predict_inputs.cv2, "VideoCapture", _TruncatedCapture)
    with caplog.at_level(logging.WARNING):
        frames = list(iter_frames(video))
    assert [f.frame for f in frames] == [0, 1, 2, 3, 4] and all(f.error is None for f in frames[:4])
    last = frames[-1]
    assert last.image is None and last.name == "clip_000004" and last.source == str(video)
    assert "ends after 4 of the 10 frames its container declares" in last.error
    assert str(video) in caplog.text and "truncated" in caplog.text


# ------------------------------------------------------------------------------------------ data module


def test_an_empty_training_split_names_the_split_not_val_fraction() -> None:
    from internet_plus.data.datamodule import HandPoseDataModule

    class Empty(HandPoseDataModule):
        def _split_size(self, split: str) -> int:
            return 0

        def _split_label(self, split: str) -> str:
            return f"toy {split} (/data/toy/anno_{split}.json)"

    with pytest.raises(DatasetLayoutError, match=r"anno_train\.json\): the training split holds no sample") as err:
        Empty(num_workers=0).setup("fit")
    assert "val_fraction" not in str(err.value)
