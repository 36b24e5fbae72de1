"""Crash-safe checkpoints for long runs: ``.npz`` files, no pickle, atomic writes.

A search or training run saves its state between compiled chunks with
:func:`save_checkpoint` and continues from it with :func:`load_checkpoint`.  The file is
fastnn's ``.npz`` container (``_archive``: format name and version, SHA-256 digest,
written to a temporary file and renamed), so a crash or kill at any moment leaves the
old or the new checkpoint, never a mix
(``test_sigkill_while_writing_leaves_a_loadable_checkpoint``).
"""

import json
import os

from . import _archive
from ._archive import _dumps, fingerprint  # noqa: F401  (fingerprint: re-exported)

FORMAT = "fastnn-checkpoint"
VERSION = 1
_MISSING = object()


class CheckpointError(ValueError):
    """A checkpoint file is damaged, foreign, or belongs to a different search."""


def _kind():
    # read at call time: the tests write foreign and future files by patching these
    return _archive.Kind(
        FORMAT, VERSION, "checkpoint", CheckpointError,
        todo="Delete it or restore a good copy, and start a new checkpoint.",
        foreign="Pass a file written by fastnn, or a new path to start one.",
        newer="Use the fastnn that wrote it, or start a new checkpoint.")


def save_checkpoint(path, arrays, meta):
    """Write ``arrays`` (name -> numeric ndarray) and ``meta`` (a JSON-able dict) to ``path``.

    ``path`` is used exactly as given (no ``.npz`` is appended).  If anything fails,
    KeyboardInterrupt included, the previous file at ``path`` is untouched and the
    temporary file is removed.  Floats in ``meta`` round-trip exactly (JSON uses
    ``repr``), ints of any size too; tuples come back as lists, NumPy scalars as Python
    numbers."""
    _archive.write(path, arrays, meta, _kind())


def load_checkpoint(path):
    """``(arrays, meta)`` from a file written by :func:`save_checkpoint`.

    Raises FileNotFoundError if there is no file and CheckpointError, naming the path,
    if it is damaged, not a fastnn checkpoint, from a newer format or fails its digest.
    The arrays are in-memory copies; the file is closed when this returns."""
    return _archive.read(path, _kind())


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


