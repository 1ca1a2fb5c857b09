"""The restricted unpickler: numpy arrays and containers load; anything else is refused before it runs."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from internet_plus.data.safe_pickle import UnsafePickleError, load_restricted_pickle


def _rhd_like_annotations() -> dict[int, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        i: {
            "xyz": rng.normal(size=(42, 3)).astype(np.float32),
            "uv_vis": rng.normal(size=(42, 3)).astype(np.float32),
            "K": np.eye(3, dtype=np.float32),
        }
        for i in range(3)
    }


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_annotations_round_trip(tmp_path: Path, protocol: int) -> None:
    obj = _rhd_like_annotations()
    obj[99] = {  # type: ignore[assignment]
        "scalar": np.float32(2.5),
        "int": np.int64(-3),
        "containers": [1, (2, 3), {4, 5}, frozenset({6})],
        "bytes": b"\x00\xff",
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "bool": np.array([True, False]),
    }
    path = tmp_path / "anno.pickle"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    out = load_restricted_pickle(path)
    assert sorted(out) == sorted(obj)
    for i in range(3):
        for key in ("xyz", "uv_vis", "K"):
            np.testing.assert_array_equal(out[i][key], obj[i][key])
            assert out[i][key].dtype == np.float32
    extra = out[99]
    assert extra["scalar"] == np.float32(2.5) and extra["int"] == -3
    assert extra["containers"] == [1, (2, 3), {4, 5}, frozenset({6})]
    assert extra["bytes"] == b"\x00\xff"
    np.testing.assert_array_equal(extra["fortran"], np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(extra["bool"], [True, False])


def _python2_array_pickle(values: np.ndarray) -> bytes:
    """A pickle as Python 2 + numpy 1.x wrote it: ``numpy.core`` names and the array data as a py2 ``str``."""
    raw = values.astype("<f8").tobytes()
    assert len(raw) < 256
    return b"".join(
        [
            b"\x80\x02",
            b"cnumpy.core.multiarray\n_reconstruct\n",
            b"cnumpy\nndarray\n",
            b"K\x00\x85U\x01b\x87R",  # _reconstruct(ndarray, (0,), 'b')
            b"(K\x01",  # state: (version,
            b"K" + bytes([len(values)]) + b"\x85",  # shape,
            b"cnumpy\ndtype\nU\x02f8K\x00K\x01\x87R",  # dtype('f8', 0, 1)
            b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb",  # dtype state
            b"\x89",  # is_fortran False
            b"U" + bytes([len(raw)]) + raw,  # raw data as a Python-2 str
            b"tb.",
        ]
    )


def test_python2_pickle_with_latin1(tmp_path: Path) -> None:
    values = np.array([1.5, -2.25, 1e-3])  # their bytes include values >= 0x80
    path = tmp_path / "py2.pickle"
    path.write_bytes(_python2_array_pickle(values))
    np.testing.assert_array_equal(load_restricted_pickle(path), values)
    with pytest.raises(pickle.UnpicklingError, match="py2.pickle"):
        load_restricted_pickle(path, encoding="ascii")


class _SystemPayload:
    """Unpickling this calls ``os.system`` (the classic pickle exploit)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


class _PopenPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (subprocess.Popen, (["touch", str(self.marker)],))


class _ExecPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize(
    ("payload", "refused"),
    [(_SystemPayload, "system"), (_PopenPayload, "Popen"), (_ExecPayload, ".exec")],
)
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_malicious_pickle_is_refused_and_does_not_run(
    tmp_path: Path, payload: type, refused: str, protocol: int
) -> None:
    marker = tmp_path / "pwned"
    annotations = _rhd_like_annotations()
    annotations[1]["xyz"] = payload(marker)  # hidden inside an otherwise valid RHD-style annotation
    path = tmp_path / "anno_training.pickle"
    path.write_bytes(pickle.dumps(annotations, protocol=protocol))
    with pytest.raises(UnsafePickleError) as info:
        load_restricted_pickle(path)
    message = str(info.value)
    assert str(path) in message
    assert refused in message
    assert not marker.exists(), "the payload ran"
    # the same file really is an exploit: plain pickle would have run it
    loaded = pickle.loads(path.read_bytes())
    if isinstance(loaded[1]["xyz"], subprocess.Popen):
        loaded[1]["xyz"].wait(timeout=30)
    assert marker.exists()


def test_hand_written_global_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    path.write_bytes(b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(UnsafePickleError, match=r"posix\.system"):
        load_restricted_pickle(path)
    assert not marker.exists()


def test_numpy_globals_beyond_arrays_are_refused(tmp_path: Path) -> None:
    # numpy has callables that read files or evaluate strings; only the array reconstructors are allowed
    path = tmp_path / "np.pickle"
    path.write_bytes(b"cnumpy\nload\n(S'/etc/passwd'\ntR.")
    with pytest.raises(UnsafePickleError, match=r"numpy\.load"):
        load_restricted_pickle(path)


def test_codecs_encode_only_text_encodings(tmp_path: Path) -> None:
    path = tmp_path / "codec.pickle"
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVzlib\ntR.")
    with pytest.raises(UnsafePickleError, match="zlib"):
        load_restricted_pickle(path)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pickle"):
        load_restricted_pickle(tmp_path / "nope.pickle")
    path = tmp_path / "truncated.pickle"
    path.write_bytes(pickle.dumps(_rhd_like_annotations(), protocol=4)[:100])
    with pytest.raises(pickle.UnpicklingError, match="truncated.pickle"):
        load_restricted_pickle(path)
    persistent = tmp_path / "pid.pickle"
    persistent.write_bytes(b"\x80\x02X\x03\x00\x00\x00abcQ.")
    with pytest.raises(UnsafePickleError, match="persistent"):
        load_restricted_pickle(persistent)
