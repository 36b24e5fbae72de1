"""fastnn.checkpoint: round trips, atomic writes under failure and SIGKILL, damaged files."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from fastnn import checkpoint
from fastnn.checkpoint import (
    CheckpointError,
    check_compatible,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)

META = {
    "seed": 1,
    "big": 2**64 - 1,
    "neg": -(2**63),
    "lr": 0.1,
    "tiny": 1e-300,
    "third": 1 / 3,
    "neg_zero": -0.0,
    "name": "spiral ünïcode",
    "flag": True,
    "none": None,
    "layer_sizes": [2, [3, [4.5, None]], 3],
    "nested": {"a": {"b": [1, 2.5]}},
}


def sample_arrays():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6))
    return {
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f64": base,
        "i64": np.array([-(2**63), 0, 2**63 - 1], dtype=np.int64),
        "u64": np.array([0, 2**64 - 1], dtype=np.uint64),
        "bool": np.array([[True, False], [False, True]]),
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "strided": base[:, ::2],
        "fortran": np.asfortranarray(base),
        "layers/0/weights": np.ones((2, 3)),
    }


def assert_same_arrays(got, want):
    assert list(got) == list(want)
    for key, arr in want.items():
        assert got[key].dtype == arr.dtype, key
        assert got[key].shape == arr.shape, key
        np.testing.assert_array_equal(got[key], arr, strict=True)


def files_in(directory):
    return sorted(os.listdir(directory))


# ---------------------------------------------------------------- round trips


def test_round_trip_arrays_and_meta(tmp_path):
    path = tmp_path / "run.npz"
    arrays = sample_arrays()
    save_checkpoint(path, arrays, META)
    got, meta = load_checkpoint(path)
    assert_same_arrays(got, arrays)
    for arr in got.values():
        assert arr.flags.c_contiguous and arr.flags.writeable
    assert meta == META
    assert json.dumps(meta) == json.dumps(META)  # -0.0 and key order too
    assert type(meta["big"]) is int and type(meta["lr"]) is float
    assert files_in(tmp_path) == ["run.npz"]


def test_meta_inf_nan_tuples_and_numpy_scalars(tmp_path):
    meta_in = {
        "inf": float("inf"), "ninf": -np.inf, "nan": float("nan"), "sizes": (2, 64, 3),
        "n": np.int64(7), "u": np.uint64(2**64 - 1), "x": np.float64(0.1), "b": np.bool_(True),
    }
    save_checkpoint(tmp_path / "c.npz", {}, meta_in)
    arrays, meta = load_checkpoint(tmp_path / "c.npz")
    assert arrays == {}
    assert meta["inf"] == np.inf and meta["ninf"] == -np.inf and np.isnan(meta["nan"])
    assert meta["sizes"] == [2, 64, 3]
    assert meta["n"] == 7 and meta["u"] == 2**64 - 1 and meta["x"] == 0.1
    assert meta["b"] is True


def test_path_is_used_as_given(tmp_path):
    """np.savez adds .npz to a name; the checkpoint must land exactly at ``path``."""
    save_checkpoint(str(tmp_path / "ckpt"), {"a": np.arange(3)}, {"i": 1})
    assert files_in(tmp_path) == ["ckpt"]
    arrays, meta = load_checkpoint(tmp_path / "ckpt")
    np.testing.assert_array_equal(arrays["a"], np.arange(3))


def test_file_is_a_plain_npz(tmp_path):
    path = tmp_path / "run.npz"
    save_checkpoint(path, {"w": np.arange(4.0)}, {"seed": 3})
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["w"], np.arange(4.0))
        header = json.loads(npz["__fastnn_meta__"].tobytes())
    assert header == {"format": "fastnn-checkpoint", "version": 1, "meta": {"seed": 3}}


def test_names_np_savez_would_swallow(tmp_path):
    arrays = {"file": np.zeros(2), "allow_pickle": np.ones(1, dtype=bool)}
    save_checkpoint(tmp_path / "c", arrays, {})
    assert_same_arrays(load_checkpoint(tmp_path / "c")[0], arrays)


def test_same_content_gives_same_bytes(tmp_path):
    save_checkpoint(tmp_path / "a", sample_arrays(), META)
    save_checkpoint(tmp_path / "b", sample_arrays(), META)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_overwrite_keeps_only_new_content(tmp_path):
    path = tmp_path / "run.npz"
    save_checkpoint(path, {"old": np.arange(1000), "w": np.zeros(3)}, {"i": 1, "old": True})
    save_checkpoint(path, {"w": np.ones(2)}, {"i": 2})
    arrays, meta = load_checkpoint(path)
    assert list(arrays) == ["w"] and meta == {"i": 2}
    np.testing.assert_array_equal(arrays["w"], np.ones(2))
    assert files_in(tmp_path) == ["run.npz"]


def test_loaded_arrays_are_independent_of_the_file(tmp_path):
    path = tmp_path / "run.npz"
    save_checkpoint(path, {"w": np.zeros(3)}, {})
    arrays, _ = load_checkpoint(path)
    os.remove(path)  # the file is closed
    arrays["w"][:] = 5
    save_checkpoint(path, {"w": np.zeros(3)}, {})
    np.testing.assert_array_equal(load_checkpoint(path)[0]["w"], np.zeros(3))


@pytest.mark.parametrize(
    "value", [np.array([object()], dtype=object), np.array(["a", "b"]), ["x"],
              np.array([b"x"]), np.zeros(2, dtype="datetime64[s]"),
              np.zeros(2, dtype=[("a", "f8")])],
)
def test_non_numeric_arrays_refused(tmp_path, value):
    path = tmp_path / "run.npz"
    save_checkpoint(path, {"w": np.zeros(2)}, {"i": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"arrays\['bad'\]"):
        save_checkpoint(path, {"w": np.ones(2), "bad": value}, {"i": 2})
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["run.npz"]


@pytest.mark.parametrize(
    ("arrays", "meta", "error", "match"),
    [
        ({"__fastnn_meta__": np.zeros(1)}, {}, ValueError, "reserved"),
        ({"": np.zeros(1)}, {}, TypeError, "non-empty"),
        ({1: np.zeros(1)}, {}, TypeError, "strings"),
        ({}, [1, 2], TypeError, "meta must be a dict"),
        ({}, {"x": object()}, TypeError, "JSON-serialisable"),
        ({}, {"x": np.zeros(2)}, TypeError, "put arrays in"),
        ({}, {"x": 1j}, TypeError, "complex"),
    ],
)
def test_bad_arguments(tmp_path, arrays, meta, error, match):
    with pytest.raises(error, match=match):
        save_checkpoint(tmp_path / "c", arrays, meta)
    assert files_in(tmp_path) == []


def test_circular_meta_refused(tmp_path):
    meta = {}
    meta["self"] = meta
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "c", {}, meta)


# ---------------------------------------------------------------- atomic writes


def fail_on_second_write_array(monkeypatch, exc):
    real = np.lib.format.write_array
    calls = []

    def write_array(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_array)


def fail_on(name, exc):
    def patch(monkeypatch):
        def boom(*args, **kwargs):
            raise exc

        monkeypatch.setattr(os, name, boom)

    return patch


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param(lambda mp: fail_on_second_write_array(mp, OSError("disk full")),
                     id="write_array-OSError"),
        pytest.param(lambda mp: fail_on_second_write_array(mp, KeyboardInterrupt()),
                     id="write_array-KeyboardInterrupt"),
        pytest.param(fail_on("fsync", OSError("I/O error")), id="fsync-OSError"),
        pytest.param(fail_on("replace", OSError("no rename")), id="replace-OSError"),
        pytest.param(fail_on("replace", KeyboardInterrupt()), id="replace-KeyboardInterrupt"),
    ],
)
def test_failed_write_leaves_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch, patch):
    path = tmp_path / "run.npz"
    old = {"w": np.arange(5.0), "v": np.arange(3)}
    save_checkpoint(path, old, {"i": 1})
    before = path.read_bytes()
    with monkeypatch.context() as mp:
        patch(mp)
        with pytest.raises((OSError, KeyboardInterrupt)):
            save_checkpoint(path, {"w": np.zeros(50_000), "v": np.ones(3)}, {"i": 2})
    assert files_in(tmp_path) == ["run.npz"]
    assert path.read_bytes() == before
    arrays, meta = load_checkpoint(path)
    assert_same_arrays(arrays, old)
    assert meta == {"i": 1}


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    fail_on_second_write_array(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "run.npz", {"w": np.zeros(3)}, {})
    assert files_in(tmp_path) == []


def test_directory_fsync_is_best_effort(tmp_path, monkeypatch):
    real_open = os.open

    def no_directories(path, flags, *args, **kwargs):
        if os.path.isdir(path):
            raise PermissionError("cannot open a directory here")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_directories)
    save_checkpoint(tmp_path / "run.npz", {"w": np.zeros(3)}, {"i": 1})
    assert load_checkpoint(tmp_path / "run.npz")[1] == {"i": 1}


WRITER = """
import sys
import numpy as np
from fastnn.checkpoint import save_checkpoint
path = sys.argv[1]
for i in range(1_000_000):
    w = np.full(500_000, float(i))  # 4 MB
    save_checkpoint(path, {"w": w, "i": np.array(i)}, {"i": i})
    if i == 0:
        print("ready", flush=True)
"""


@pytest.mark.slow
def test_sigkill_while_writing_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "run.npz"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished or crashed
    arrays, meta = load_checkpoint(path)
    i = meta["i"]
    assert i >= 1, "the writer should have finished several checkpoints in 0.5 s"
    assert arrays["i"] == i
    np.testing.assert_array_equal(arrays["w"], np.full(500_000, float(i)))
    # a temporary file may be left by the kill, but never in place of the checkpoint
    assert all(name == "run.npz" or name.startswith(".run.npz.") for name in files_in(tmp_path))


# ---------------------------------------------------------------- damaged and foreign files


@pytest.fixture
def good(tmp_path):
    """A small valid checkpoint: its path, bytes, arrays and meta."""
    path = tmp_path / "run.npz"
    arrays = {"w": np.arange(12, dtype=np.float64).reshape(3, 4) + 0.5, "i": np.array(7)}
    meta = {"seed": 1, "lr": 0.1, "sizes": [2, 3, 3]}
    save_checkpoint(path, arrays, meta)
    return path, path.read_bytes(), arrays, meta


def assert_checkpoint_error(path, match=None):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert repr(str(path)) in str(info.value)
    if match:
        assert match in str(info.value)
    return info.value


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_checkpoint(tmp_path / "nope.npz")


def test_every_truncation_is_an_error(good):
    path, data, _, _ = good
    for size in range(len(data)):
        path.write_bytes(data[:size])
        assert_checkpoint_error(path)


def test_every_flipped_byte_is_an_error_or_harmless(good):
    """CRC, npy header checks and the digest catch every flip that changes content; the
    rest (zip dates, attributes, version fields) load the original content unchanged."""
    path, data, arrays, meta = good
    harmless = set()
    for offset in range(len(data)):
        for mask in [0x01, 0xFF]:  # 0x01 sets the "encrypted" flag bit: RuntimeError
            damaged = bytearray(data)
            damaged[offset] ^= mask
            path.write_bytes(bytes(damaged))
            try:
                got, got_meta = load_checkpoint(path)
            except CheckpointError as exc:
                assert repr(str(path)) in str(exc)
                continue
            harmless.add(offset)
            assert_same_arrays(got, arrays)
            assert got_meta == meta
    assert len(harmless) < len(data) // 3  # fields zipfile ignores: local header, zip64


def test_flipped_array_or_meta_byte_is_an_error(good):
    path, data, arrays, _ = good
    offsets = [
        data.index(arrays["w"].tobytes()) + 17,
        data.index(b'"lr": 0.1') + 7,
        data.index(b"'descr'") + 2,
    ]
    for offset in offsets:
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        path.write_bytes(bytes(damaged))
        assert_checkpoint_error(path, "cannot be read")


def test_random_bytes_and_empty_file(tmp_path):
    path = tmp_path / "run.npz"
    rng = np.random.default_rng(1)
    for size in [0, 1, 22, 100, 5000]:
        path.write_bytes(rng.bytes(size))
        assert_checkpoint_error(path, "cannot be read")
    path.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: no entries at all
    assert_checkpoint_error(path, "not a fastnn checkpoint")


def test_a_plain_npy_file(tmp_path):
    path = tmp_path / "run.npz"
    with open(path, "wb") as f:
        np.save(f, np.arange(3))
    assert_checkpoint_error(path, "cannot be read")


def test_plain_npz_without_meta(tmp_path):
    path = tmp_path / "run.npz"
    np.savez(path, w=np.zeros(3))
    assert_checkpoint_error(path, "not a fastnn checkpoint")


def test_npz_with_pickled_object_array(tmp_path):
    path = tmp_path / "run.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    err = assert_checkpoint_error(path, "cannot be read")
    assert "allow_pickle" in str(err)


def rewrite(path, change):
    """Re-zip ``path`` with ``change(entries)`` applied: valid CRCs, possibly bad content."""
    with zipfile.ZipFile(path) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    change(entries)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def header_entry(header):
    return npy_bytes(np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))


def test_edited_array_fails_digest(good):
    path, _, arrays, _ = good

    def change(entries):
        entries["w.npy"] = npy_bytes(arrays["w"] + 1)

    rewrite(path, change)
    assert_checkpoint_error(path, "SHA-256")


def test_edited_meta_fails_digest(good):
    path, _, _, meta = good
    header = {"format": "fastnn-checkpoint", "version": 1, "meta": {**meta, "seed": 2}}
    rewrite(path, lambda entries: entries.update({"__fastnn_meta__.npy": header_entry(header)}))
    assert_checkpoint_error(path, "SHA-256")


def test_missing_digest(good):
    path = good[0]
    rewrite(path, lambda entries: entries.pop("__fastnn_sha256__.npy"))
    assert_checkpoint_error(path, "SHA-256")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\xff\xfe{", "UnicodeDecodeError"),
        (b"{not json", "JSONDecodeError"),
        (b"[1, 2]", "not a fastnn checkpoint"),
        (b'{"format": "fastnn-checkpoint", "version": 1, "meta": 3}', "SHA-256"),
    ],
)
def test_bad_meta_entry(good, raw, match):
    path = good[0]
    entry = npy_bytes(np.frombuffer(raw, dtype=np.uint8))
    rewrite(path, lambda entries: entries.update({"__fastnn_meta__.npy": entry}))
    assert_checkpoint_error(path, match)


def test_meta_entry_of_wrong_dtype(good):
    path = good[0]
    rewrite(path, lambda entries: entries.update({"__fastnn_meta__.npy": npy_bytes(np.zeros(3))}))
    assert_checkpoint_error(path, "uint8")


def test_unexpected_entry(good):
    path = good[0]
    rewrite(path, lambda entries: entries.update({"notes.txt": b"hello"}))
    assert_checkpoint_error(path, "notes.txt")


def test_wrong_format_name(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    monkeypatch.setattr(checkpoint, "FORMAT", "someone-else")
    save_checkpoint(path, {"w": np.zeros(2)}, {})
    monkeypatch.undo()
    assert_checkpoint_error(path, "'someone-else'")


def test_future_version(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    monkeypatch.setattr(checkpoint, "VERSION", 2)
    save_checkpoint(path, {"w": np.zeros(2)}, {})
    monkeypatch.undo()
    err = assert_checkpoint_error(path, "version 2")
    assert "reads version 1" in str(err)


# ---------------------------------------------------------------- check_compatible


def test_check_compatible_accepts_equal_values():
    meta = {"layer_sizes": [2, 3, 3], "seed": 1, "lr": 0.1, "x": float("nan"), "extra": 5}
    expected = {"layer_sizes": (2, 3, 3), "seed": np.int64(1), "lr": 0.1, "x": np.nan}
    check_compatible("run.npz", meta, expected)
    check_compatible("run.npz", meta, {})


def test_check_compatible_lists_every_mismatch():
    meta = {"layer_sizes": [2, 3, 3], "seed": 1, "lr": 0.1, "data": "abc"}
    expected = {
        "layer_sizes": [2, 64, 3], "seed": 2, "lr": float(np.nextafter(0.1, 1.0)),
        "data": "abc", "dtype": "float32",
    }
    with pytest.raises(CheckpointError) as info:
        check_compatible("run.npz", meta, expected)
    msg = str(info.value)
    assert msg.startswith(
        "checkpoint 'run.npz' does not match this search: "
        "layer_sizes is [2, 3, 3] in the checkpoint but [2, 64, 3] now; "
        "seed is 1 in the checkpoint but 2 now; "
        "lr is 0.1 in the checkpoint but 0.10000000000000002 now; "
        "dtype is missing in the checkpoint but 'float32' now."
    )
    assert "data is" not in msg
    assert msg.endswith("Use the same data and arguments, or start a new checkpoint.")


@pytest.mark.parametrize(("have", "want"), [(1, 1.0), (1, True), (0.0, -0.0), ([1], [1, 1])])
def test_check_compatible_is_exact(have, want, tmp_path):
    with pytest.raises(CheckpointError, match=str(tmp_path)):
        check_compatible(tmp_path / "c.npz", {"k": have}, {"k": want})


# ---------------------------------------------------------------- fingerprint


def test_fingerprint():
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    y = np.array([0, 1, 2])
    fp = fingerprint(x, y)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fingerprint(x.copy(), y.copy()) == fp
    assert fingerprint(np.asfortranarray(x), y) == fp
    assert fingerprint(x[:, ::2]) == fingerprint(x[:, ::2].copy())
    different = [
        fingerprint(x.astype(np.float32), y),
        fingerprint(x.reshape(4, 3), y),
        fingerprint(x.reshape(-1), y),
        fingerprint(x, y.astype(np.int32)),
        fingerprint(x + np.eye(3, 4) * 1e-12, y),
        fingerprint(y, x),
        fingerprint(x),
        fingerprint(x, y, np.zeros(0)),
        fingerprint(),
    ]
    assert len({fp, *different}) == len(different) + 1
    # pinned: a fingerprint recorded in an old checkpoint must still match
    assert fingerprint(np.array([1.0, 2.0], dtype="<f8")) == (
        "f9f1d0de7c11e01051c25a86d69075b3a4aa82a7064d7f2ddf3cfd399a1581f0"
    )
    with pytest.raises(TypeError, match="array 1"):
        fingerprint(x, np.array(["a"]))
