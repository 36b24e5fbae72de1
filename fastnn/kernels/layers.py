"""One kernel per notebook operation: dense, ReLU, softmax, cross-entropy, accuracy.

These back the notebook-compatible classes in ``fastnn.layers``.  They favour fidelity
to NumPy and a short compile over the last bit of speed: small plain loops, the dense
product accumulated in float64 (as ``nnfs.init()``'s ``np.dot`` does), libm ``log`` in
the loss.  The hot path of the search is ``kernels.network``, not these.
"""

import math

import numpy as np

from .._config import kernel
from .fastmath import exp_, flat_view, max2
from .target import prefer_vector_width


@kernel
def dense_forward(x, w, bias, dot_like, acc, out):
    """out = x @ w + bias, the product accumulated in float64 (as ``nnfs.init()``'s
    ``np.dot`` does; ``w`` is the float64 weights), rounded to the product's dtype (that
    of the 0-length ``dot_like``), then ``bias`` added in ``out``'s dtype: the two
    roundings of ``np.dot(x, w) + b``.  One rounding moved losses by 1e-5 when biases
    grow large (``tests/test_notebook_dropin.py``).

    A plain loop, units innermost (it vectorises over units): the drop-in classes run
    one small operation per call, where compiling fast matters more than the last
    nanosecond (the fused network kernels are the fast path).  ``acc`` is float64
    scratch of ``w.shape[1]`` (allocated by the caller: an allocation in the kernel is a
    Numba library call, see ``kernels/target.py``)."""
    prefer_vector_width()
    n, d = x.shape
    h = w.shape[1]
    to_dot = dot_like.dtype.type
    to_out = out.dtype.type
    for s in range(n):
        for j in range(h):
            acc[j] = 0.0
        for i in range(d):
            xi = np.float64(x[s, i])
            for j in range(h):
                acc[j] += xi * w[i, j]
        for j in range(h):
            out[s, j] = to_out(to_dot(acc[j])) + bias[j]


@kernel
def relu(x, out):
    """out = max(0, x), elementwise over a C-contiguous 2-D array."""
    prefer_vector_width()
    xf = flat_view(x)
    of = flat_view(out)
    zero = x.dtype.type(0)
    for k in range(xf.shape[0]):
        v = xf[k]
        of[k] = v if v > zero else zero


@kernel
def softmax(z, out):
    """Row-wise softmax with the row max subtracted first (no overflow for any finite z)."""
    prefer_vector_width()
    n, c = z.shape
    for s in range(n):
        m = z[s, 0]
        for j in range(1, c):
            m = max2(m, z[s, j])
        total = z.dtype.type(0)
        for j in range(c):
            e = exp_(z[s, j] - m)
            out[s, j] = e
            total += e
        inv = z.dtype.type(1) / total
        for j in range(c):
            out[s, j] *= inv


@kernel
def crossentropy_sum(p, labels):
    """Sum over samples of -log(clip(p[s, labels[s]], 1e-7, 1 - 1e-7)), in float64.

    The clip bounds are rounded to p's dtype first, as ``np.clip`` does."""
    prefer_vector_width()
    lo = p.dtype.type(1e-7)
    hi = p.dtype.type(1 - 1e-7)
    total = 0.0
    for s in range(p.shape[0]):
        v = p[s, labels[s]]
        v = lo if v < lo else v
        v = hi if v > hi else v
        total -= math.log(v)
    return total


@kernel
def argmax_rows(z, out):
    """out[s] = first index of the row maximum, as ``np.argmax(z, axis=1)``."""
    prefer_vector_width()
    n, c = z.shape
    for s in range(n):
        best = z[s, 0]
        arg = 0
        for j in range(1, c):
            if z[s, j] > best:
                best = z[s, j]
                arg = j
        out[s] = arg


@kernel
def count_correct(z, labels):
    """How many rows have their (first) maximum at the label."""
    prefer_vector_width()
    n, c = z.shape
    correct = 0
    for s in range(n):
        best = z[s, 0]
        arg = 0
        for j in range(1, c):
            if z[s, j] > best:
                best = z[s, j]
                arg = j
        correct += arg == labels[s]
    return correct
