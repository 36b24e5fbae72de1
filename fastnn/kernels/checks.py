"""Compiled input scans used by the validation layer.

They read values but never use them as indices, so they are safe on any input; one
pass each instead of NumPy's temporary boolean arrays keeps per-call checks cheap.
"""

import numpy as np
from numba import njit

from .._config import HELPER, kernel
from .fastmath import flat_view, max2, min2
from .target import prefer_vector_width


@kernel
def all_finite(flat):
    """True when no element of the 1-D array is NaN or +-inf."""
    prefer_vector_width()
    ok = True
    for k in range(flat.shape[0]):
        v = flat[k]
        ok &= (v - v) == 0  # NaN and inf give NaN here
    return ok


@kernel
def int_range(values):
    """(min, max) of a non-empty 1-D int64 array."""
    prefer_vector_width()
    lo = values[0]
    hi = values[0]
    for k in range(values.shape[0]):
        v = values[k]
        lo = min2(lo, v)
        hi = max2(hi, v)
    return lo, hi


@kernel
def one_hot_labels(onehot, labels):
    """Write each row's hot column into labels; return the first bad row index or -1.

    A good row has exactly one 1 and zeros elsewhere."""
    prefer_vector_width()
    n, c = onehot.shape
    for s in range(n):
        hot = -1
        for j in range(c):
            v = onehot[s, j]
            if v == 1:
                if hot >= 0:
                    return s
                hot = j
            elif v != 0:
                return s
        if hot < 0:
            return s
        labels[s] = hot
    return np.int64(-1)


@kernel
def network_inputs_ok(x, labels, params, n_classes):
    """True when ``x`` and ``params`` are finite and every label is in
    ``[0, n_classes)``: everything a network kernel reads, in one pass."""
    prefer_vector_width()
    return inputs_ok(x, labels, params, n_classes)


@njit(**HELPER)
def inputs_ok(x, labels, params, n_classes):
    """``network_inputs_ok``, called by kernels that check before they compute.

    One call instead of three saves a microsecond of dispatch on small batches; the
    flags are OR-ed integers, which LLVM vectorises (a boolean ``&=`` chain is 8x
    slower)."""
    prefer_vector_width()
    bad = np.int32(0)
    xf = flat_view(x)
    for k in range(xf.shape[0]):
        v = xf[k]
        bad |= np.int32((v - v) != 0)  # NaN and inf give NaN here
    for k in range(params.shape[0]):
        v = params[k]
        bad |= np.int32((v - v) != 0)
    for k in range(labels.shape[0]):
        v = labels[k]
        bad |= np.int32((v < 0) | (v >= n_classes))
    return bad == 0
