"""Input checks and conversions, run before any kernel sees the data.

One dtype policy, decided here: float32 stays float32, float64 stays float64, other
numeric inputs are cast (integers and bools to float64, float16 to float32, unless a
target dtype is given); labels stay int64, int32 or uint8 (nnfs's dtype) and other
integer dtypes become int64, always C-contiguous.  Everything a kernel gets is
C-contiguous, finite and, for labels, inside ``[0, n_classes)``.
"""

import numbers
import operator

import numpy as np

from .kernels.checks import all_finite, int_range, one_hot_labels

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_numeric_array(value, name):
    """``value`` as an ndarray of bools, ints or floats, or a TypeError naming it."""
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be array-like numbers: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (int or float), got dtype {arr.dtype}"
        )
    return arr


def float_dtype(*dtypes):
    """The float dtype NumPy's promotion gives these dtypes, as ``np.dot(x, w) + b``
    would: integers and bools alone give float64, float16 gives float32."""
    dt = np.result_type(*dtypes)
    if dt.kind != "f" or dt.itemsize > 8:
        return np.dtype(np.float64)
    if dt.itemsize < 4:
        return np.dtype(np.float32)
    return dt


def resolve_dtype(dtype, name="dtype"):
    """float32 or float64 from anything np.dtype understands."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, got {dt}")
    return dt


def check_finite(arr, name):
    """Raise ValueError naming ``name`` if ``arr`` (C-contiguous float) has NaN or inf."""
    if arr.size and not all_finite(arr.reshape(-1)):
        raise ValueError(f"{name} must be finite, but it contains NaN or infinity")


def as_matrix(value, name, *, n_cols=None, dtype=None, what="n_features", check=True):
    """A non-empty, C-contiguous 2-D float array, finite unless ``check=False``.

    ``dtype=None`` keeps float32/float64 and casts other numbers (see module doc).
    ``check=False`` is for callers that scan finiteness in a combined kernel."""
    arr = value if type(value) is np.ndarray else as_numeric_array(value, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (int or float), got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, {what}), got {arr.ndim}-D with shape {arr.shape}"
        )
    n_rows, cols = arr.shape
    if n_rows == 0:
        raise ValueError(f"{name} must have at least one sample (row), got shape {arr.shape}")
    if n_cols is not None and cols != n_cols:
        raise ValueError(f"{name} must have {n_cols} columns ({what}), got shape {arr.shape}")
    if cols == 0:
        raise ValueError(f"{name} must have at least one column, got shape {arr.shape}")
    dt = float_dtype(arr.dtype) if dtype is None else dtype
    if arr.dtype != dt or not arr.flags.c_contiguous:
        # float64 too big for float32 becomes inf here, and is reported as not finite
        with np.errstate(over="ignore"):
            arr = np.ascontiguousarray(arr, dtype=dt)
    if check:
        check_finite(arr, name)
    return arr


#: Label dtypes the kernels take as they are (no copy); others are cast to int64.
#: uint8 is what nnfs's data sets return.
NATIVE_LABEL_DTYPES = (np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.uint8))


def as_labels(value, n_samples, n_classes, name="y", check=True):
    """C-contiguous integer class labels from 1-D integer labels or 2-D one-hot rows.

    ``check=False`` skips the range check, for callers that scan it in a combined
    kernel (one-hot rows are always checked here)."""
    arr = value if type(value) is np.ndarray else as_numeric_array(value, name)
    if arr.ndim == 2:
        return _one_hot_labels(arr, n_samples, n_classes, name)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D class labels or 2-D one-hot rows, got shape {arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must hold integer class labels, got dtype {arr.dtype} "
            f"(convert with y.astype(int) if the values are whole numbers)"
        )
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} labels but there are {n_samples} samples")
    if arr.dtype not in NATIVE_LABEL_DTYPES or not arr.flags.c_contiguous:
        if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} labels must be in [0, {n_classes}), got {arr.max()}")
        arr = np.ascontiguousarray(arr, dtype=np.int64)
    if check:
        check_label_range(arr, n_classes, name)
    return arr


def check_label_range(labels, n_classes, name):
    """Raise ValueError naming ``name`` unless every label is in [0, n_classes)."""
    lo, hi = int_range(labels)
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"{name} labels must be in [0, {n_classes}) for {n_classes} classes, got {bad}"
        )


def _one_hot_labels(arr, n_samples, n_classes, name):
    if arr.shape != (n_samples, n_classes):
        raise ValueError(
            f"{name} as one-hot labels must have shape ({n_samples}, {n_classes}), "
            f"got {arr.shape}"
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    labels = np.empty(n_samples, dtype=np.int64)
    bad = one_hot_labels(np.ascontiguousarray(arr, dtype=np.float64), labels)
    if bad >= 0:
        raise ValueError(
            f"{name} one-hot row {bad} must hold a single 1 and zeros elsewhere, "
            f"got {arr[bad].tolist()}"
        )
    return labels


def as_positive_int(value, name, minimum=1):
    """An int >= minimum (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value
