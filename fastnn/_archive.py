"""The ``.npz`` container of fastnn's files (checkpoints, model files): no pickle, a
format name and version, a SHA-256 digest, atomic writes.

A file is a plain ``.npz`` that ``np.load`` can read, with two reserved entries:
``__fastnn_meta__``, UTF-8 JSON of the format name, version and the caller's metadata,
and ``__fastnn_sha256__``, a digest over every other entry.  The zip CRC catches most
damage; the digest also catches an entry that was edited and re-zipped.  It guards
against accidents, not attacks (anyone can recompute it).

A write goes to a temporary file in the same directory, is flushed to disk and then
renamed over the old file (``os.replace`` is atomic), so a crash or kill at any moment
leaves the old or the new file, never a mix.

Rejected: pickle anywhere (loading a pickle runs code from the file), so object and string
arrays are refused and everything is read with ``allow_pickle=False``; ``np.savez`` -- its
``file`` and ``allow_pickle`` parameters would swallow arrays of those names, so the zip
is written here the way ``np.savez`` writes it.
"""

import contextlib
import hashlib
import io
import json
import os
import struct
import tempfile
import zipfile
import zlib
from typing import NamedTuple

import numpy as np
from numpy.lib import format as npy_format

_RESERVED = "__fastnn_"
_META = "__fastnn_meta__"
_DIGEST = "__fastnn_sha256__"

#: What a damaged or foreign file makes zipfile, numpy's .npy reader or json raise
#: (UnicodeDecodeError and JSONDecodeError are ValueErrors; OSError is a seek to a bad
#: offset; RuntimeError a set "encrypted" flag).  MemoryError is left alone.  Found by
#: fuzzing every single-byte change; guarded by ``test_every_flipped_byte_...``.
_UNREADABLE = (
    zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError,
    RuntimeError, struct.error, zlib.error, NotImplementedError,
)


class Kind(NamedTuple):
    """One kind of file: its format name, the version written, and the words of its
    errors."""

    format: str
    version: int
    what: str  # "checkpoint"
    error: type  # the exception raised for a bad file (a ValueError subclass)
    todo: str  # what to do about a damaged file
    foreign: str  # what to do about a file of another format
    newer: str  # what to do about a file from a newer version


def write(path, arrays, meta, kind):
    """Write ``arrays`` (name -> numeric ndarray) and ``meta`` (a JSON-able dict) to
    ``path``, atomically.

    ``path`` is used exactly as given (no ``.npz`` is appended).  If anything fails,
    KeyboardInterrupt included, the previous file at ``path`` is untouched and the
    temporary file is removed.  Floats in ``meta`` round-trip exactly (JSON uses
    ``repr``), ints of any size too; tuples come back as lists, NumPy scalars as Python
    numbers."""
    path = os.fspath(path)
    members = _members(arrays, meta, kind)  # every check before the disk is touched
    with atomic_file(path, "wb") as f:
        _write_zip(f, members)


@contextlib.contextmanager
def atomic_file(path, mode="w", **open_kwargs):
    """Write ``path`` atomically: yields a temporary file in the same folder, which is
    flushed, fsynced and renamed over ``path`` when the block ends (then the folder is
    fsynced); if the block raises, KeyboardInterrupt included, the previous file at
    ``path`` is untouched and the temporary file is removed.  Model files, checkpoints,
    a sweep's job records and its ``results.csv`` are all written this way."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)[:64]}.", suffix=".tmp", dir=directory
    )
    try:
        with open(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def read(path, kind):
    """``(arrays, meta)`` from a file written by :func:`write` with this ``kind``.

    Raises FileNotFoundError if there is no file and ``kind.error``, naming the path, if
    it is damaged, of another format, from a newer version or fails its digest.  The
    arrays are in-memory copies; the file is closed when this returns."""
    path = os.fspath(path)
    what = kind.what
    with open(path, "rb") as f:  # a missing file raises FileNotFoundError with the path
        try:
            members, header = _read_zip(f)
        except _UNREADABLE as exc:
            raise kind.error(
                f"{what} {path!r} cannot be read: it is damaged, truncated or not a "
                f".npz file ({type(exc).__name__}: {exc}). {kind.todo}"
            ) from exc
    if header is None:
        raise kind.error(
            f"{what} {path!r} is a .npz file but not a fastnn {what} (it has no "
            f"{_META} entry). {kind.foreign}"
        )
    found = header.get("format") if isinstance(header, dict) else None
    if found != kind.format:
        raise kind.error(
            f"{what} {path!r} is not a fastnn {what} (format {found!r}, expected "
            f"{kind.format!r}). {kind.foreign}"
        )
    version = header.get("version")
    if version != kind.version:
        raise kind.error(
            f"{what} {path!r} has format version {version!r}, but this fastnn reads "
            f"version {kind.version}. {kind.newer}"
        )
    stored = members.pop(_DIGEST, None)
    if stored is None or stored.tobytes() != _digest(members).encode():
        raise kind.error(
            f"{what} {path!r} fails its SHA-256 check: its content was changed after "
            f"it was written. {kind.todo}"
        )
    del members[_META]
    if not isinstance(header.get("meta"), dict):
        raise kind.error(f"{what} {path!r} has no metadata dict. {kind.todo}")
    return members, header["meta"]


def fingerprint(*arrays):
    """Hex SHA-256 over each array's dtype string, shape and C-order bytes.

    Records which data a search ran on: the same values in another dtype or shape give a
    different fingerprint; memory layout (strides, Fortran order) does not matter."""
    h = hashlib.sha256()
    for i, arr in enumerate(arrays):
        _hash_array(h, _numeric(arr, f"array {i}"))
    return h.hexdigest()


def _numeric(value, name):
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc":
        raise TypeError(
            f"{name} must hold numbers or bools, got dtype {arr.dtype} "
            "(object and string arrays would need pickle)"
        )
    return arr


def _json_default(obj):
    if isinstance(obj, np.generic):  # np.int64(3) -> 3; np.float64 is a float already
        return obj.item()
    hint = " (put arrays in `arrays`)" if isinstance(obj, np.ndarray) else ""
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable{hint}")


def _dumps(obj, sort_keys=False):
    """JSON text; floats via repr (exact), inf and NaN as JSON's Infinity and NaN."""
    return json.dumps(obj, allow_nan=True, sort_keys=sort_keys, default=_json_default)


def _members(arrays, meta, kind):
    """The zip entries (name -> array), header and digest included, after all checks."""
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    members = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key or "\0" in key:
            raise TypeError(f"array names must be non-empty strings without NUL, got {key!r}")
        if key.startswith(_RESERVED):
            raise ValueError(f"array name {key!r} is reserved (names starting {_RESERVED!r})")
        members[key] = np.asarray(_numeric(value, f"arrays[{key!r}]"), order="C")
    try:
        text = _dumps({"format": kind.format, "version": kind.version, "meta": meta})
    except (TypeError, ValueError) as exc:  # ValueError: a circular reference
        raise TypeError(f"meta must be JSON-serialisable: {exc}") from None
    members[_META] = np.frombuffer(text.encode(), dtype=np.uint8)
    members[_DIGEST] = np.frombuffer(_digest(members).encode(), dtype=np.uint8)
    return members


def _hash_array(h, arr):
    h.update(f"{arr.dtype.str}{arr.shape}\0".encode())
    h.update(np.ascontiguousarray(arr))


def _digest(members):
    """Hex SHA-256 over every entry but the digest: name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for key in sorted(members):
        if key != _DIGEST:
            h.update(key.encode() + b"\0")
            _hash_array(h, members[key])
    return h.hexdigest()


def _write_zip(f, members):
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in members.items():
            # ZipInfo's fixed 1980 date: the same content gives the same bytes
            with zf.open(zipfile.ZipInfo(key + ".npy"), "w", force_zip64=True) as member:
                npy_format.write_array(member, arr, allow_pickle=False)


def _read_zip(f):
    """Every entry as an in-memory array, and the parsed header (None if absent).

    ``zf.read`` checks each entry's CRC before numpy parses it."""
    members = {}
    with zipfile.ZipFile(f) as zf:
        for name in zf.namelist():
            key = name[:-4]
            if not name.endswith(".npy") or key in members:
                raise ValueError(f"unexpected or repeated entry {name!r}")
            data = io.BytesIO(zf.read(name))
            members[key] = npy_format.read_array(data, allow_pickle=False)
    raw = members.get(_META)
    if raw is None:
        return members, None
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{_META} must be 1-D uint8, got {raw.dtype} {raw.shape}")
    return members, json.loads(raw.tobytes().decode("utf-8"))


def _fsync_dir(directory):
    """Make the rename itself durable (POSIX); skipped where a directory cannot be opened
    or synced (Windows, some network file systems)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
