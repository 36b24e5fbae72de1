"""One kernel per drop-in operation: dense, ReLU, softmax, cross-entropy and accuracy
forward, and the book's backward passes (chapter 9).

These back the notebook/book-compatible classes in ``fastnn.layers`` and
``fastnn.losses``.  They favour fidelity to NumPy and a short compile over the last bit of
speed: small plain loops, products accumulated in float64 (as ``nnfs.init()``'s ``np.dot``
does), libm ``log`` in the loss.  The hot paths of the search and the trainer are
``kernels.network`` and ``kernels.train``, not these.

**Checks ride along.**  Each kernel returns whether what it read was usable (finite,
labels in range), computed in the same pass as the result, so a drop-in call costs one
kernel dispatch, not one per check (~1 µs each, ten calls per training epoch).  For the
dense products the check is on the outputs: a NaN or infinity anywhere in the inputs,
weights or biases reaches some output (``NaN * 0`` is NaN, ``inf * 0`` is NaN), so
finite outputs prove finite inputs; the caller finds the culprit only when the check
fails (``fastnn.layers.diagnose``).

**Two loop orders for a product** ``C[s, :] = A[s, :] @ B`` (``_DOT_MIN``): with few
terms per output (``K``, the first layer's two inputs) each sample broadcasts its ``K``
values over a row of outputs, vectorised over the outputs; with many terms and few outputs
(64 hidden units into 3 classes) each output is a dot product of two contiguous rows,
vectorised over the terms (``_dot``, the one helper built with ``reassoc``).  The first
order at 64 -> 3 ran 4x slower than NumPy (a 3-wide loop cannot be vectorised), the second
at 2 -> 64 5x slower than the first (measured, AMD Zen 3).

**The book's arithmetic where it shows.**  Float32 training under ``nnfs.init()`` is
chaotic at its start (near-uniform outputs: a last-bit difference flips a prediction, and
Adam turns a last-bit difference in a tiny gradient into a whole step), so wherever the
book's NumPy does float32 arithmetic these kernels do the same operations in the same
order: the bias gradient is summed sample after sample in its own dtype (NumPy's axis-0
sum), the combined softmax + cross-entropy gradient is ``(dv - 1) / n`` with those two
roundings, and the softmax leaves ``exp`` and the row sums to NumPy itself
(``softmax_shift`` only subtracts the row maximum).  Products are accumulated in float64
and rounded once, which is what nnfs's ``np.dot`` does.
"""

import math

import numpy as np
from numba import njit

from .._config import HELPER, kernel
from .fastmath import flat_view, max2
from .target import always_inline, prefer_vector_width

#: a product with at least this many terms per output (``K``) is computed as dot
#: products (``_dot``); below it, by broadcasting (64 -> 3: 9 vs 36 µs per 300 samples;
#: 2 -> 64: 21 vs 43 µs; AMD Zen 3)
_DOT_MIN = 16

#: helpers whose loop is a sum: ``reassoc`` lets LLVM split it into vector lanes (a
#: float64 dot product of 64 terms, 4x faster).  The order of the additions is then a
#: property of the compiled code (the vector width), not of the data: results are the
#: same on every call, and rounded to float32 they match a sequential sum except at a
#: rounding tie
REDUCE = dict(HELPER, fastmath={"contract", "nsz", "reassoc"})

#: status codes returned by the kernels that take labels
OK, NOT_FINITE, BAD_LABEL, ZERO_AT_LABEL = 0, 1, 2, 3


@njit(**REDUCE)
def _dot(a, b, j, k):
    """``sum(a[:k] * b[j, :k])`` in float64 (``a`` 1-D, ``b`` 2-D, both float64).

    Rows of a 2-D array, not offsets into a 1-D one: Numba cannot tell that ``off + i``
    is never negative, and its wraparound check on every element halved the speed."""
    always_inline()  # a call per output cost more than the sum (Numba passes each array
    prefer_vector_width()  # as a dozen scalars)
    acc = 0.0
    for i in range(k):
        acc += a[i] * b[j, i]
    return acc


@njit(**HELPER)
def _load_row(src, s, row):
    """``row[:n] = src[s, :]`` as float64."""
    always_inline()
    prefer_vector_width()
    for i in range(src.shape[1]):
        row[i] = np.float64(src[s, i])


@njit(**HELPER)
def _transpose(w, wt):
    """``wt[j, i] = w[i, j]``."""
    d, h = w.shape
    for i in range(d):
        for j in range(h):
            wt[j, i] = w[i, j]


@kernel
def dense_forward(x, w, bias, dot_like, out, scratch):
    """``out = x @ w + bias``; True when every output is finite.

    The product is accumulated in float64 (as ``nnfs.init()``'s ``np.dot`` does; ``w`` is
    the float64 weights), rounded to the product's dtype (that of the 0-length
    ``dot_like``), then ``bias`` is added in ``out``'s dtype: the two roundings of
    ``np.dot(x, w) + b``.  One rounding moved losses by 1e-5 when biases grow large
    (``tests/test_notebook_dropin.py``).  ``scratch``: float64, ``d * h + d + h``
    (allocated by the caller: an allocation in a kernel is a Numba library call)."""
    prefer_vector_width()
    n, d = x.shape
    h = w.shape[1]
    to_dot = dot_like.dtype.type
    to_out = out.dtype.type
    bad = np.int32(0)
    if d >= _DOT_MIN:  # each output a dot product of x's row and w's column
        wt = scratch[:d * h].reshape((h, d))
        row = scratch[d * h:d * h + d]
        _transpose(w, wt)
        for s in range(n):
            _load_row(x, s, row)
            for j in range(h):
                v = to_out(to_dot(_dot(row, wt, j, d))) + bias[j]
                out[s, j] = v
                bad |= np.int32((v - v) != 0)  # NaN and inf give NaN here
        return bad == 0
    acc = scratch[:h]
    for s in range(n):  # broadcast each input over the row of outputs
        x0 = np.float64(x[s, 0])
        for j in range(h):  # the first input sets acc (a zeroing pass, and this
            acc[j] = x0 * w[0, j]  # loop's check, cost 1.5x: LLVM, measured)
        for i in range(1, d):
            xi = np.float64(x[s, i])
            for j in range(h):
                acc[j] += xi * w[i, j]
        for j in range(h):
            v = to_out(to_dot(acc[j])) + bias[j]
            out[s, j] = v
            bad |= np.int32((v - v) != 0)
    return bad == 0


@kernel
def dense_backward(x, dv, w, dw, db, dx, scratch):
    """The book's dense backward pass (without the regularisation terms, added by the
    caller with ``kernels.optim.regularize_gradient``); True when every result is finite.

    ``dw = x.T @ dv`` and ``dx = dv @ w.T``, accumulated in float64 and rounded once to
    each result's dtype (as ``nnfs.init()``'s ``np.dot``); ``db = sum(dv, axis=0)``
    accumulated in ``db``'s dtype, sample after sample, as NumPy sums along axis 0, so
    it is the book's bit for bit.  ``w`` is the float64 weights (d x h).  ``scratch``:
    float64, ``2 * d * h + 2 * d + h``."""
    prefer_vector_width()
    n, d = x.shape
    h = w.shape[1]
    wide = h >= d  # dw accumulated as (d, h), vectorised over h; else as (h, d)
    acc_w = scratch[:d * h].reshape((d, h) if wide else (h, d))
    wt = scratch[d * h:2 * d * h].reshape((h, d))
    xrow = scratch[2 * d * h:2 * d * h + d]
    acc_x = scratch[2 * d * h + d:2 * d * h + 2 * d]
    dvrow = scratch[2 * d * h + 2 * d:2 * d * h + 2 * d + h]
    acc_w[:, :] = 0.0
    t_db = db.dtype.type
    for j in range(h):
        db[0, j] = t_db(0)
    dot_x = h >= _DOT_MIN  # dx[s, i] as a dot product of dv's row and w's row
    if not dot_x:
        _transpose(w, wt)
    to_dx = dx.dtype.type
    bad = np.int32(0)
    for s in range(n):
        _load_row(dv, s, dvrow)
        _load_row(x, s, xrow)
        for j in range(h):
            db[0, j] += t_db(dv[s, j])
        if wide:  # dw += outer(x[s], dv[s]), vectorised over the wider side
            for i in range(d):
                xi = xrow[i]
                for j in range(h):
                    acc_w[i, j] += xi * dvrow[j]
        else:
            for j in range(h):
                g = dvrow[j]
                for i in range(d):
                    acc_w[j, i] += g * xrow[i]
        if dot_x:  # dx[s] = dv[s] @ w.T
            for i in range(d):
                v = to_dx(_dot(dvrow, w, i, h))
                dx[s, i] = v
                bad |= np.int32((v - v) != 0)
        else:  # dx[s] = sum_j dv[s, j] w[:, j]
            g = dvrow[0]
            for i in range(d):
                acc_x[i] = g * wt[0, i]
            for j in range(1, h):
                g = dvrow[j]
                for i in range(d):
                    acc_x[i] += g * wt[j, i]
            for i in range(d):
                v = to_dx(acc_x[i])
                dx[s, i] = v
                bad |= np.int32((v - v) != 0)
    to_dw = dw.dtype.type
    for i in range(d):
        for j in range(h):
            v = to_dw(acc_w[i, j] if wide else acc_w[j, i])
            dw[i, j] = v
            bad |= np.int32((v - v) != 0)
    for j in range(h):
        v = db[0, j]
        bad |= np.int32((v - v) != 0)
    return bad == 0


@kernel
def relu(x, out):
    """out = max(0, x), elementwise over a C-contiguous 2-D array; True when x is finite."""
    prefer_vector_width()
    xf = flat_view(x)
    of = flat_view(out)
    zero = x.dtype.type(0)
    bad = np.int32(0)
    for k in range(xf.shape[0]):
        v = xf[k]
        of[k] = v if v > zero else zero
        bad |= np.int32((v - v) != 0)
    return bad == 0


@kernel
def relu_backward(x, dv, out):
    """The book's ``dinputs = dvalues.copy(); dinputs[inputs <= 0] = 0`` in ``out``'s
    dtype; True when ``x`` and ``dv`` are finite."""
    prefer_vector_width()
    xf = flat_view(x)
    df = flat_view(dv)
    of = flat_view(out)
    t = out.dtype.type
    zero = t(0)
    bad = np.int32(0)
    for k in range(xf.shape[0]):
        v = xf[k]
        g = t(df[k])
        of[k] = g if v > 0 else zero
        bad |= np.int32(((v - v) != 0) | ((g - g) != 0))
    return bad == 0


@kernel
def softmax_shift(z, out):
    """``out = z - max(z, axis=1)``, the first step of the book's softmax (the caller
    goes on with NumPy's ``exp``, row sums and division, as the book); True when z is
    finite."""
    prefer_vector_width()
    n, c = z.shape
    bad = np.int32(0)
    for s in range(n):
        m = z[s, 0]
        for j in range(1, c):
            m = max2(m, z[s, j])
        for j in range(c):
            v = z[s, j]
            bad |= np.int32((v - v) != 0)  # NaN and inf give NaN here
            out[s, j] = v - m
    return bad == 0


@kernel
def softmax_backward(p, dv, out):
    """The book's per-sample Jacobian product ``(diag(p) - p p^T) @ dv``, computed as
    ``p * (dv - p . dv)`` in float64 and rounded to ``out``'s dtype; True when every
    result is finite (a NaN or infinity in ``p`` or ``dv`` reaches its row)."""
    prefer_vector_width()
    n, c = p.shape
    t = out.dtype.type
    bad = np.int32(0)
    for s in range(n):
        pd = 0.0
        for j in range(c):
            pd += np.float64(p[s, j]) * np.float64(dv[s, j])
        for j in range(c):
            v = t(np.float64(p[s, j]) * (np.float64(dv[s, j]) - pd))
            out[s, j] = v
            bad |= np.int32((v - v) != 0)
    return bad == 0


@njit(**HELPER)
def _labels_ok(labels, c):
    """Whether every label is in [0, c)."""
    prefer_vector_width()
    bad = np.int32(0)
    for s in range(labels.shape[0]):
        v = labels[s]
        bad |= np.int32((v < 0) | (v >= c))
    return bad == 0


@njit(**HELPER)
def _all_finite(a):
    prefer_vector_width()
    af = flat_view(a)
    bad = np.int32(0)
    for k in range(af.shape[0]):
        v = af[k]
        bad |= np.int32((v - v) != 0)
    return bad == 0


@kernel
def crossentropy_sum(p, labels):
    """(sum over samples of -log(clip(p[s, labels[s]], 1e-7, 1 - 1e-7)) in float64,
    status): ``OK``, ``NOT_FINITE`` (p) or ``BAD_LABEL`` (a label outside [0, c)).

    The clip bounds are rounded to p's dtype first, as ``np.clip`` does."""
    prefer_vector_width()
    if not _all_finite(p):
        return 0.0, NOT_FINITE
    if not _labels_ok(labels, p.shape[1]):
        return 0.0, BAD_LABEL
    lo = p.dtype.type(1e-7)
    hi = p.dtype.type(1 - 1e-7)
    total = 0.0
    for s in range(p.shape[0]):
        v = p[s, labels[s]]
        v = lo if v < lo else v
        v = hi if v > hi else v
        total -= math.log(v)
    return total, OK


@kernel
def softmax_crossentropy_backward(dv, labels, out):
    """The book's combined softmax + cross-entropy gradient ``(dv - onehot) / n``, in
    ``dv``'s dtype with its two roundings (``dv - 1``, then ``/ n``); a status code."""
    prefer_vector_width()
    n, c = dv.shape
    if not _labels_ok(labels, c):
        return BAD_LABEL
    t = out.dtype.type
    one = t(1)
    nn = t(n)
    bad = np.int32(0)
    for s in range(n):
        y = labels[s]
        for j in range(c):
            v = t(dv[s, j])
            bad |= np.int32((v - v) != 0)
            out[s, j] = (v - one if j == y else v) / nn
    return NOT_FINITE if bad else OK


@kernel
def crossentropy_backward(dv, labels, out):
    """The book's cross-entropy gradient ``-onehot / dv / n`` in ``out``'s dtype (the
    promotion of ``dv`` and the one-hot labels'), rounded after each division as NumPy
    does; a status code (``ZERO_AT_LABEL``: a zero probability at a label, whose gradient
    is infinite).  Away from the label the gradient is 0 (the book divides 0 by ``dv``
    there, which gives NaN where ``dv`` is 0)."""
    prefer_vector_width()
    n, c = dv.shape
    if not _labels_ok(labels, c):
        return BAD_LABEL
    if not _all_finite(dv):
        return NOT_FINITE
    t = out.dtype.type
    minus_one = t(-1)
    minus_zero = t(-0.0)
    nn = t(n)
    status = OK
    for s in range(n):
        y = labels[s]
        for j in range(c):
            out[s, j] = minus_zero
        v = t(dv[s, y])
        if v == 0:
            status = ZERO_AT_LABEL
        out[s, y] = minus_one / v / nn
    return status


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
