"""One kernel per notebook operation: dense, ReLU, softmax, cross-entropy, accuracy.

These back the notebook-compatible classes in ``fastnn.layers``.  They favour fidelity
to NumPy over the last bit of speed: the dense product accumulates in float64 (as
``nnfs.init()``'s ``np.dot`` does) and the loss uses libm ``log``.  The hot path of the
search is ``kernels.network``, not these.
"""

import math

from .._config import kernel
from .fastmath import exp_
from .network import _forward_block


@kernel
def dense_forward(x, params, sizes, work, dot_like, bias, out):
    """out = x @ W + bias, with W packed as a one-layer network in float64 ``params``
    (layout of ``kernels.network``, zero biases there) and float64 ``work``.

    The product is accumulated in float64 (as ``nnfs.init()``'s ``np.dot`` does, and
    vectorised by the same block sweeps as the fused network kernel), rounded to the
    product's dtype (that of the 0-length ``dot_like``), then ``bias`` is added in
    ``out``'s dtype: the two roundings of ``np.dot(x, w) + b``.  One rounding moved
    losses by 1e-5 when biases grow large (``tests/test_notebook_dropin.py``)."""
    n = x.shape[0]
    block = work.shape[1]
    h = out.shape[1]
    to_dot = dot_like.dtype.type
    to_out = out.dtype.type
    for s0 in range(0, n, block):
        nb = min(block, n - s0)
        z = _forward_block(x, s0, nb, params, sizes, work, nb > 0)  # True, not a literal
        for j in range(h):  # samples innermost: each work row read straight through
            # (units innermost read 64 rows 4096 bytes apart: one L1 set, 10x slower)
            for s in range(nb):
                out[s0 + s, j] = to_out(to_dot(work[z + j, s])) + bias[j]


@kernel
def relu(x, out):
    """out = max(0, x), elementwise over a C-contiguous 2-D array."""
    xf = x.reshape(-1)
    of = out.reshape(-1)
    zero = x.dtype.type(0)
    for k in range(xf.shape[0]):
        v = xf[k]
        of[k] = v if v > zero else zero


@kernel
def softmax(z, out):
    """Row-wise softmax with the row max subtracted first (no overflow for any finite z)."""
    n, c = z.shape
    for s in range(n):
        m = z[s, 0]
        for j in range(1, c):
            m = max(m, z[s, j])
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
