"""Crash-safe checkpoints for long searches: ``.npz`` files, no pickle, atomic writes.

A search saves its state between compiled chunks with :func:`save_checkpoint` and
continues from it with :func:`load_checkpoint`.  A write goes to a temporary file in the
same directory, is flushed to disk and then renamed over the old checkpoint
(``os.replace`` is atomic), so a crash or kill at any moment leaves the old or the new
checkpoint, never a mix (``test_sigkill_while_writing_leaves_a_loadable_checkpoint``).

The file is a plain ``.npz`` that ``np.load`` can read, with two reserved entries:
``__fastnn_meta__``, UTF-8 JSON of the format name, version and the caller's metadata,
and ``__fastnn_sha256__``, a digest over every other entry.  The zip CRC catches most
damage; the digest also catches an entry that was edited and re-zipped.  It guards
against accidents, not attacks (anyone can recompute it).

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

import numpy as np
from numpy.lib import format as npy_format

FORMAT = "fastnn-checkpoint"
VERSION = 1
_RESERVED = "__fastnn_"
_META = "__fastnn_meta__"
_DIGEST = "__fastnn_sha256__"
_MISSING = object()

#: What a damaged or foreign file makes zipfile, numpy's .npy reader or json raise
#: (UnicodeDecodeError and JSONDecodeError are ValueErrors; OSError is a seek to a bad
#: offset; RuntimeError a set "encrypted" flag).  MemoryError is left alone.  Found by
#: fuzzing every single-byte change; guarded by ``test_every_flipped_byte_...``.
_UNREADABLE = (
    zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError,
    RuntimeError, struct.error, zlib.error, NotImplementedError,
)


class CheckpointError(ValueError):
    """A checkpoint file is damaged, foreign, or belongs to a different search."""


def save_checkpoint(path, arrays, meta):
    """Write ``arrays`` (name -> numeric ndarray) and ``meta`` (a JSON-able dict) to ``path``.

    ``path`` is used exactly as given (no ``.npz`` is appended).  If anything fails,
    KeyboardInterrupt included, the previous file at ``path`` is untouched and the
    temporary file is removed.  Floats in ``meta`` round-trip exactly (JSON uses
    ``repr``), ints of any size too; tuples come back as lists, NumPy scalars as Python
    numbers."""
    path = os.fspath(path)
    members = _members(arrays, meta)  # every check before the disk is touched
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)[:64]}.", suffix=".tmp", dir=directory
    )
    try:
        with open(fd, "wb") as f:
            _write_zip(f, members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def load_checkpoint(path):
    """``(arrays, meta)`` from a file written by :func:`save_checkpoint`.

    Raises FileNotFoundError if there is no file and CheckpointError, naming the path,
    if it is damaged, not a fastnn checkpoint, from a newer format or fails its digest.
    The arrays are in-memory copies; the file is closed when this returns."""
    path = os.fspath(path)
    todo = "Delete it or restore a good copy, and start a new checkpoint."
    with open(path, "rb") as f:  # a missing file raises FileNotFoundError with the path
        try:
            members, header = _read_zip(f)
        except _UNREADABLE as exc:
            raise CheckpointError(
                f"checkpoint {path!r} cannot be read: it is damaged, truncated or not a "
                f".npz file ({type(exc).__name__}: {exc}). {todo}"
            ) from exc
    if header is None:
        raise CheckpointError(
            f"checkpoint {path!r} is a .npz file but not a fastnn checkpoint (it has no "
            f"{_META} entry). Pass a file written by fastnn, or a new path to start one."
        )
    found = header.get("format") if isinstance(header, dict) else None
    if found != FORMAT:
        raise CheckpointError(
            f"checkpoint {path!r} is not a fastnn checkpoint (format {found!r}, expected "
            f"{FORMAT!r}). Pass a file written by fastnn, or a new path to start one."
        )
    if header.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path!r} has format version {header.get('version')!r}, but this "
            f"fastnn reads version {VERSION}. Use the fastnn that wrote it, or start a new "
            "checkpoint."
        )
    stored = members.pop(_DIGEST, None)
    if stored is None or stored.tobytes() != _digest(members).encode():
        raise CheckpointError(
            f"checkpoint {path!r} fails its SHA-256 check: its content was changed after "
            f"it was written. {todo}"
        )
    del members[_META]
    if not isinstance(header.get("meta"), dict):
        raise CheckpointError(f"checkpoint {path!r} has no metadata dict. {todo}")
    return members, header["meta"]


def check_compatible(path, meta, expected):
    """Raise CheckpointError listing every key of ``expected`` whose value differs from
    ``meta`` (a checkpoint's metadata; a missing key is a mismatch).

    Values are compared as canonical JSON: floats exactly, NaN equal to NaN, tuples equal
    to lists, but ``1`` differs from ``1.0`` and ``True`` -- these are identity fields."""
    wrong = []
    for key, want in expected.items():
        have = meta.get(key, _MISSING)
        now = json.loads(_dumps(want))  # tuples and NumPy scalars shown as stored
        if have is _MISSING:
            wrong.append(f"{key} is missing in the checkpoint but {now!r} now")
        elif _dumps(have, sort_keys=True) != _dumps(want, sort_keys=True):
            wrong.append(f"{key} is {have!r} in the checkpoint but {now!r} now")
    if wrong:
        raise CheckpointError(
            f"checkpoint {os.fspath(path)!r} does not match this search: "
            f"{'; '.join(wrong)}. Use the same data and arguments, or start a new checkpoint."
        )


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


def _members(arrays, meta):
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
        text = _dumps({"format": FORMAT, "version": VERSION, "meta": meta})
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
