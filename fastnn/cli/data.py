"""The data the subcommands run on: nnfs's data sets and the user's own files.

* ``make_data``: nnfs's ``spiral_data``, ``vertical_data`` and ``sine_data``, seeded
  without disturbing the caller's global NumPy random state.  ``sine`` is nnfs's
  regression set turned into a classification task (classes by quantile of the sine)
  rather than refused: the loss is categorical, and this gives a 1-feature data set
  whose classes are not linearly separable
  (``tests/test_cli.py::test_sine_is_cut_into_classes_by_quantile``).
* ``load_data``: ``.npz`` (never unpickled) and ``.csv`` files, checked so that a bad
  file gives a ``DataError`` saying what is wrong, which ``search --data`` reports as
  ``error: argument --data: FILE: ...`` (exit 2), never a traceback.
"""

import csv
import os
import threading
import zipfile

import numpy as np

#: np.random.seed (which seeds nnfs's data) takes seeds below 2**32
MAX_SEED = 2 ** 32 - 1
#: held while NumPy's global generator is seeded and drawn from (nnfs's data sets, the
#: book's weights): a Dask worker runs several sweep jobs in threads of one process, and
#: two seeded draws interleaving would give both jobs the wrong numbers
GLOBAL_RNG_LOCK = threading.RLock()


def make_data(dataset, samples, classes, seed, dtype):
    """nnfs data (``spiral_data``, ``vertical_data``, ``sine_data``), X cast to ``dtype``,
    y as int64.

    ``sine`` is nnfs's regression set (x = i / n for i < n, target sin(2 pi x)), turned
    into a classification task: its ``samples * classes`` points are ranked by their
    sine value and cut into ``classes`` groups of ``samples`` (class 0 the lowest
    values), so the network learns which band of the sine each x falls in.

    nnfs draws from NumPy's global RNG: it is seeded for the call and then restored,
    so the caller's global random state is left as it was."""
    from nnfs.datasets import sine_data, spiral_data, vertical_data

    if dataset == "sine":  # deterministic: no random numbers involved
        X, values = sine_data(samples=samples * classes)
        y = np.empty(X.shape[0], dtype=np.int64)
        y[np.argsort(values.ravel(), kind="stable")] = np.arange(X.shape[0]) // samples
        return np.ascontiguousarray(X, dtype=dtype), y
    make = spiral_data if dataset == "spiral" else vertical_data
    # nnfs only knows the legacy global RNG, so these legacy calls are deliberate.
    with GLOBAL_RNG_LOCK:
        state = np.random.get_state()  # noqa: NPY002
        try:
            if seed is not None:
                np.random.seed(seed)  # noqa: NPY002
            X, y = make(samples=samples, classes=classes)
        finally:
            np.random.set_state(state)  # noqa: NPY002
    return np.ascontiguousarray(X, dtype=dtype), y.astype(np.int64)


def book_model(layers, dtype, seed, dataset=None, samples=None, classes=None):
    """An ``MLP`` whose weights are drawn as the book's scripts draw them: NumPy's global
    RNG seeded with ``seed`` (``nnfs.init()`` seeds it with 0), the nnfs data set drawn
    first when there is one (``make_data``'s draw, made again), then ``0.01 * randn`` per
    layer, as each ``Layer_Dense`` draws its weights; biases 0.  So ``fastnn train`` on
    spiral data with seed 0 starts from the weights of the book's chapter 10 script (up to
    float32 rounding: the book's nnfs.init() rounds randn's numbers before scaling them).
    The caller's global random state is left as it was."""
    from nnfs.datasets import spiral_data, vertical_data

    from ..network import MLP

    with GLOBAL_RNG_LOCK:
        state = np.random.get_state()  # noqa: NPY002 - nnfs and the book use the legacy RNG
        try:
            np.random.seed(seed)  # noqa: NPY002
            if dataset in ("spiral", "vertical"):  # sine draws nothing
                (spiral_data if dataset == "spiral" else vertical_data)(samples=samples,
                                                                        classes=classes)
            return MLP(layers, seed=None, dtype=dtype)  # np.random.randn, layer by layer
        finally:
            np.random.set_state(state)  # noqa: NPY002


class DataError(ValueError):
    """The user's data file cannot be used; the message says why (without the path)."""


#: accepted names of the two arrays in a .npz file (np.savez(f, X, y) names them
#: arr_0 and arr_1, accepted when they are the file's only arrays)
NPZ_KEYS = (("X", "x"), ("y", "Y"))


def load_data(path):
    """``(X, y)`` from the user's ``.npz`` or ``.csv`` file: X float (samples x
    features), y int64 labels in ``[0, classes)``.

    ``.npz``: arrays ``X`` (or ``x``) and ``y`` (or ``Y``), or the two unnamed arrays of
    ``np.savez(f, X, y)``; y as integer labels (whole-number floats and bools too), a
    ``(samples, 1)`` column, or one-hot rows.  ``.csv``: comma-separated, one sample
    per line, the features then an integer label in the last column; the first line
    may be a header; blank lines are skipped.  Raises DataError saying what is wrong."""
    path, kind = _existing_data_file(path)
    X, y = _read_npz(path) if kind == ".npz" else _read_csv(path)
    return _check_data(X, y)


def _read_npz(path, labels_optional=False):
    with open(path, "rb") as f:
        magic = f.read(6)
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        raise DataError("is not a .npz file (a zip archive of .npy arrays, as np.savez writes)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot be read as a .npz file ({exc})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError("holds a single array (.npy format); expected a .npz file with "
                        "arrays X and y, as written by np.savez(path, X=X, y=y)")
    with loaded:
        names = list(loaded.files)
        x_key, y_key = (next((k for k in keys if k in names), None) for keys in NPZ_KEYS)
        if x_key is None and y_key is None and sorted(names) == ["arr_0", "arr_1"]:
            x_key, y_key = "arr_0", "arr_1"
        if labels_optional and x_key is None and y_key is None and len(names) == 1:
            x_key = names[0]
        if labels_optional and x_key is not None and y_key is None:
            return _read_arrays(loaded, [x_key]) + [None]
        if x_key is None or y_key is None:
            raise DataError(f"expected arrays named X and y (or x and Y), found: "
                            f"{', '.join(names) or 'no arrays'}")
        return _read_arrays(loaded, [x_key, y_key])


def _read_arrays(loaded, keys):
    arrays = []
    for key in keys:
        try:
            arrays.append(loaded[key])
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise DataError(f"array {key} holds Python objects (dtype object); save "
                                "it as numbers") from None
            raise DataError(f"cannot read array {key} ({exc})") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot read array {key} ({exc})") from None
    return arrays


def _existing_data_file(path):
    """``(path, ".npz" or ".csv")`` of a data file that exists, or DataError."""
    path = os.fspath(path)
    kind = os.path.splitext(path)[1].lower()
    if kind not in (".npz", ".csv"):
        raise DataError("expected a .npz or .csv file (by its extension)")
    if os.path.isdir(path):
        raise DataError("is a directory")
    if not os.path.exists(path):
        raise DataError("no such file")
    return path, kind


def load_inputs(path, n_features):
    """``(X, y or None)`` from a file to predict on: the model's ``n_features`` feature
    columns, and labels when there are any -- a ``.npz`` with ``X`` (or ``x``, or the
    only array) and optionally ``y`` (or ``Y``), a ``.csv`` with ``n_features`` columns,
    or ``n_features + 1`` with the label last.  Labels may be a single class (any
    integers >= 0, or one-hot rows).  Raises DataError saying what is wrong."""
    path, kind = _existing_data_file(path)
    if kind == ".csv":
        data, lines = _read_csv_rows(path)
        if data.shape[1] not in (n_features, n_features + 1):
            raise DataError(f"has {data.shape[1]} columns, but the model takes {n_features} "
                            f"features: give {n_features} columns, or {n_features + 1} with "
                            "the label last")
        X = data[:, :n_features]
        y = data[:, n_features] if data.shape[1] > n_features else None
    else:
        X, y = _read_npz(path, labels_optional=True)
    X, y = np.asarray(X), None if y is None else np.asarray(y)
    if X.ndim == 2 and X.shape[1] != n_features:
        raise DataError(f"X has {X.shape[1]} features (columns), but the model takes "
                        f"{n_features}")
    if y is None:
        return _check_features(X), None
    return _check_data(X, y, min_classes=1)


def _check_features(X):
    if X.dtype.kind not in "biuf":
        raise DataError(f"X must hold numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        raise DataError(f"X must be 2-D (samples, features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise DataError("X has no samples")
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1)) if X.dtype.kind == "f" else ()
    if len(bad):
        raise DataError(f"X row {bad[0]} has a NaN or infinite value")
    return X


def _read_csv(path):
    data, lines = _read_csv_rows(path)
    if data.shape[1] < 2:
        raise DataError("needs at least 2 columns: the features, then the label")
    labels = data[:, -1]
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < 0))
    if bad.size:
        raise DataError(f"line {lines[bad[0]]}: the label (last column) must be an integer "
                        f">= 0, got {labels[bad[0]]:g}")
    return data[:, :-1], labels


def _read_csv_rows(path):
    """(every row as a float matrix, their line numbers); a first line that is not
    numbers is a header."""
    rows, lines, width, header = [], [], None, False
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                cells = [cell.strip() for cell in row]
                if not any(cells):
                    continue
                try:
                    values = [float(cell) for cell in cells]
                except ValueError:
                    if width is None:  # the first line: a header
                        width, header = len(cells), True
                        continue
                    col, cell = next((j, c) for j, c in enumerate(cells) if not _is_float(c))
                    raise DataError(f"line {reader.line_num}, column {col + 1}: {cell!r} is "
                                    f"not a number") from None
                if width is None:
                    width = len(values)
                elif len(values) != width:
                    raise DataError(f"line {reader.line_num} has {len(values)} columns, but "
                                    f"{'the header' if header else 'the first line'} has "
                                    f"{width}")
                rows.append(values)
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise DataError("is not a UTF-8 text file") from None
    except csv.Error as exc:
        raise DataError(f"is not valid CSV ({exc})") from None
    if not rows:
        raise DataError("has no data rows")
    data = np.array(rows)
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad.size:
        raise DataError(f"line {lines[bad[0]]} has a NaN or infinite value")
    return data, lines


def _is_float(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_data(X, y, min_classes=2):
    X, y = np.asarray(X), np.asarray(y)
    if X.dtype.kind not in "biuf":
        raise DataError(f"X must hold numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        raise DataError(f"X must be 2-D (samples, features), got shape {X.shape}"
                        + ("; for one feature use X.reshape(-1, 1)" if X.ndim == 1 else ""))
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"X must have at least one sample and one feature, got shape {X.shape}")
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1)) if X.dtype.kind == "f" else ()
    if len(bad):
        raise DataError(f"X row {bad[0]} has a NaN or infinite value")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf":  # one-hot rows
        ones = y == 1
        if not (ones.sum(axis=1) == 1).all() or not ((y == 0) | ones).all():
            raise DataError(f"y has shape {y.shape} but is not one-hot (each row a single 1 "
                            "and zeros); give integer labels as a 1-D array")
        y = ones.argmax(axis=1)
    if y.ndim != 1:
        raise DataError(f"y must be 1-D integer labels (or one-hot rows), got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise DataError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.shape[0] != X.shape[0]:
        raise DataError(f"X has {X.shape[0]} samples (rows) but y has {y.shape[0]} labels")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            raise DataError(f"y must hold integer class labels, got {y[bad[0]]:g} "
                            f"at index {bad[0]}")
    if y.min() < 0:
        raise DataError(f"y labels must be >= 0 (classes 0, 1, ...), got {y.min()}")
    top = int(y.max())
    if top < 1 and min_classes > 1:
        raise DataError("y has a single class (0); a classifier needs at least 2")
    if top >= y.shape[0] and min_classes > 1:
        raise DataError(f"y labels must be 0..C-1 for C classes; the largest, {top}, is more "
                        f"than the {y.shape[0]} samples can cover")
    return X, y.astype(np.int64)
