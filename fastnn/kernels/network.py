"""Fused forward pass of a dense ReLU network, straight to loss and accuracy.

This is the hot path of the search.  Layout choices, each measured to matter
(``../shared/PERFORMANCE.md``, ``bench/``):

* Parameters are one flat vector; layer ``l`` holds ``W`` (``sizes[l] x sizes[l+1]``,
  row-major) then ``b`` (``sizes[l+1]``).  Perturbing the whole network is one pass
  over one vector, and a backward pass can write gradients in the same layout.
* Samples are processed in blocks of ``B = work.shape[1]`` and sit in the innermost
  loop (activations are stored transposed, units x samples) so every loop is a
  straight vectorisable sweep.  A per-sample loop over units is 8-25x slower.
* ``work`` is a caller-owned scratch array (rows x B) reused across calls: nothing is
  allocated per call.  Rows: ``[0, d)`` the transposed input block, then two
  ping-pong buffers of ``hmax`` rows, then ``_EXTRA_ROWS`` rows of per-sample scratch.
* Loss by softmax shift invariance: with d_j = z_j - z_y,
  ``-log(clip(p_y, 1e-7, 1-1e-7)) == clip(log(sum_j exp(d_j)), -log(1-1e-7), -log(1e-7))``:
  no row max, no division, one log per sample, finite for any finite logits.
"""

import numpy as np
from numba import njit

from .._config import INLINE, JIT
from .fastmath import exp_, log_

#: per-sample scratch rows after the activation buffers (loss, true logit, flag, label)
EXTRA_ROWS = 4
#: any d_j above this contributes exp(80) ~ 5e34 (finite in float32); NaN maps here too
_D_MAX = 80.0


def work_rows(sizes):
    """Rows of scratch ``work`` needs for a network with these layer sizes."""
    return _round4(int(sizes[0])) + 2 * _round4(int(max(sizes[1:]))) + EXTRA_ROWS


@njit(**INLINE)
def _round4(k):
    return (k + 3) // 4 * 4


@njit(**INLINE)
def _layout(sizes):
    """(first activation buffer row, second buffer row, first scratch row)."""
    hmax = 0
    for layer in range(1, sizes.shape[0]):
        hmax = max(hmax, sizes[layer])
    a = _round4(sizes[0])
    return a, a + _round4(hmax), a + 2 * _round4(hmax)


@njit(**INLINE)
def _weight(params, off, d_in, d_out, i, j):
    """W[i, j] of the layer at ``off``, or 0 for the padding inputs i >= d_in."""
    return params[off + i * d_out + j] if i < d_in else params.dtype.type(0)


@njit(**INLINE)
def _sweep4(work, r, ri, nb, bias, w0, w1, w2, w3, first, relu):
    """work[r] (=bias if first, else +=) sum of w_k * work[ri + k], k < 4; ReLU if asked.

    Four inputs per sweep: one load and store of the output row per four FMAs."""
    zero = work.dtype.type(0)
    if first and relu:
        for s in range(nb):
            v = (bias + w0 * work[ri, s] + w1 * work[ri + 1, s]
                 + w2 * work[ri + 2, s] + w3 * work[ri + 3, s])
            work[r, s] = v if v > zero else zero
    elif first:
        for s in range(nb):
            work[r, s] = (bias + w0 * work[ri, s] + w1 * work[ri + 1, s]
                          + w2 * work[ri + 2, s] + w3 * work[ri + 3, s])
    elif relu:
        for s in range(nb):
            v = work[r, s] + (w0 * work[ri, s] + w1 * work[ri + 1, s]
                              + w2 * work[ri + 2, s] + w3 * work[ri + 3, s])
            work[r, s] = v if v > zero else zero
    else:
        for s in range(nb):
            work[r, s] += (w0 * work[ri, s] + w1 * work[ri + 1, s]
                           + w2 * work[ri + 2, s] + w3 * work[ri + 3, s])


@njit(**INLINE)
def _sweep2(work, r, ri, nb, bias, w0, w1, first, relu):
    """``_sweep4`` for the last one or two inputs (the first layer has only 2 inputs)."""
    zero = work.dtype.type(0)
    if first and relu:
        for s in range(nb):
            v = bias + w0 * work[ri, s] + w1 * work[ri + 1, s]
            work[r, s] = v if v > zero else zero
    elif first:
        for s in range(nb):
            work[r, s] = bias + w0 * work[ri, s] + w1 * work[ri + 1, s]
    elif relu:
        for s in range(nb):
            v = work[r, s] + (w0 * work[ri, s] + w1 * work[ri + 1, s])
            work[r, s] = v if v > zero else zero
    else:
        for s in range(nb):
            work[r, s] += w0 * work[ri, s] + w1 * work[ri + 1, s]


@njit(**INLINE)
def _forward_block(x, s0, nb, params, sizes, work):
    """Push samples ``x[s0:s0+nb]`` through all layers; return the work row where the
    logits (``sizes[-1]`` rows x ``nb`` columns) start.

    Inputs are consumed four (or, at the end, two) rows per sweep, the bias folded into
    the first sweep and ReLU into the last.  Layer widths are padded to a multiple of
    four with zero rows and zero weights, so there is no scalar remainder loop."""
    d = x.shape[1]
    buf_a, buf_b, _ = _layout(sizes)
    zero = work.dtype.type(0)
    xb = x[s0:s0 + nb]  # a view: indexing it with the loop variable lets LLVM vectorise
    for i in range(d):
        for s in range(nb):
            work[i, s] = xb[s, i]
    for i in range(d, _round4(d)):
        for s in range(nb):
            work[i, s] = zero
    n_layers = sizes.shape[0] - 1
    in_row = 0
    off = 0
    for layer in range(n_layers):
        d_in = sizes[layer]
        d_out = sizes[layer + 1]
        out_row = buf_a if layer % 2 == 0 else buf_b
        b_off = off + d_in * d_out
        relu = layer < n_layers - 1
        for j in range(d_out):
            r = out_row + j
            bj = params[b_off + j]
            i = 0
            while i < d_in:
                first = i == 0
                if d_in - i > 2:
                    w0 = params[off + i * d_out + j]
                    w1 = params[off + (i + 1) * d_out + j]
                    w2 = params[off + (i + 2) * d_out + j]
                    w3 = _weight(params, off, d_in, d_out, i + 3, j)
                    last = relu and i + 4 >= d_in
                    _sweep4(work, r, in_row + i, nb, bj, w0, w1, w2, w3, first, last)
                    i += 4
                else:
                    w0 = params[off + i * d_out + j]
                    w1 = _weight(params, off, d_in, d_out, i + 1, j)
                    _sweep2(work, r, in_row + i, nb, bj, w0, w1, first, relu)
                    i += 2
        for j in range(d_out, _round4(d_out)):  # zero padding rows for the next layer
            for s in range(nb):
                work[out_row + j, s] = zero
        off = b_off + d_out
        in_row = out_row
    return in_row


@njit(**JIT)
def network_loss(x, labels, params, sizes, work):
    """Return (sum of clipped cross-entropy losses as float64, number correct).

    ``labels`` must already be integers in ``[0, sizes[-1])``.  Accuracy counts a
    sample correct when its label is the first maximal logit, as ``np.argmax`` on the
    softmax output does."""
    n = x.shape[0]
    block = work.shape[1]
    total = 0.0
    wrong = 0
    for s0 in range(0, n, block):
        nb = min(block, n - s0)
        z = _forward_block(x, s0, nb, params, sizes, work)
        block_total, block_wrong = _block_loss(work, z, labels[s0:s0 + nb], nb, sizes)
        total += block_total
        wrong += block_wrong
    return total, n - wrong


@njit(**INLINE)
def _block_loss(work, z, lab, nb, sizes):
    """(sum of clipped losses, number wrong) of one block whose logits start at row z."""
    n_classes = sizes[sizes.shape[0] - 1]
    t_row = _layout(sizes)[2]
    zy_row = t_row + 1
    bad_row = t_row + 2
    lab_row = t_row + 3
    dt = work.dtype.type
    d_max = dt(_D_MAX)
    zero = dt(0)
    one = dt(1)
    t_lo = dt(1) / dt(1 - 1e-7)
    t_hi = dt(1e7)
    # Per-sample label (as a float) and true-class logit, by selects rather than a
    # gather: every loop below is then a straight vector sweep.
    for s in range(nb):
        work[lab_row, s] = dt(lab[s])
        work[zy_row, s] = work[z, s]
        work[t_row, s] = zero
        work[bad_row, s] = zero
    for j in range(1, n_classes):
        fj = dt(j)
        for s in range(nb):
            zj = work[z + j, s]  # load both sides before selecting: a load inside
            zy = work[zy_row, s]  # a conditional stops vectorisation (10x, measured)
            work[zy_row, s] = zj if work[lab_row, s] == fj else zy
    for j in range(n_classes):
        fj = dt(j)
        for s in range(nb):
            dj = work[z + j, s] - work[zy_row, s]
            # Wrong if a class beats the label (or overflow made dj NaN), or an
            # earlier class ties it (argmax takes the first maximum).  Float 0/1
            # flags and max: boolean and/or here stops vectorisation (9x, measured).
            beats = zero if dj <= zero else one
            earlier = one if fj < work[lab_row, s] else zero
            ties_first = earlier if dj == zero else zero
            work[bad_row, s] = max(work[bad_row, s], max(beats, ties_first))
            dj = dj if dj < d_max else d_max  # also maps NaN to d_max
            work[t_row, s] += exp_(dj)
    # Clipping the loss log(t) to [-log(1-1e-7), -log(1e-7)] is clipping t to
    # [t_lo, t_hi]; then one log per four samples: the log of the product of
    # t[g], t[g+q], t[g+2q], t[g+3q] (at most 1e28, finite in float32).  Quarters
    # rather than neighbours: stride-4 loads do not vectorise (7x, measured).
    # Padding with t = 1 adds log(1) = 0.
    nb4 = (nb + 3) // 4 * 4  # the block width is a multiple of 16, so this fits
    q = nb4 // 4
    wrong = np.int32(0)
    for s in range(nb):
        t = work[t_row, s]
        t = t if t > t_lo else t_lo
        work[t_row, s] = t if t < t_hi else t_hi
        wrong += np.int32(work[bad_row, s])
    for s in range(nb, nb4):
        work[t_row, s] = one
    for g in range(q):
        prod = ((work[t_row, g] * work[t_row, g + q])
                * (work[t_row, g + 2 * q] * work[t_row, g + 3 * q]))
        work[zy_row, g] = log_(prod)
    total = 0.0
    for g in range(q):
        total += work[zy_row, g]
    return total, wrong


@njit(**JIT)
def network_forward(x, params, sizes, work, out):
    """out[s] = softmax(logits of x[s]), max subtracted first."""
    n = x.shape[0]
    block = work.shape[1]
    n_classes = sizes[sizes.shape[0] - 1]
    m_row = _layout(sizes)[2]
    t_row = m_row + 1
    one = work.dtype.type(1)
    for s0 in range(0, n, block):
        nb = min(block, n - s0)
        z = _forward_block(x, s0, nb, params, sizes, work)
        for s in range(nb):
            work[m_row, s] = work[z, s]
            work[t_row, s] = 0
        for j in range(1, n_classes):
            for s in range(nb):
                work[m_row, s] = max(work[m_row, s], work[z + j, s])
        for j in range(n_classes):
            for s in range(nb):
                e = exp_(work[z + j, s] - work[m_row, s])
                work[z + j, s] = e
                work[t_row, s] += e
        for s in range(nb):
            inv = one / work[t_row, s]
            for j in range(n_classes):
                out[s0 + s, j] = work[z + j, s] * inv


@njit(**JIT)
def network_predict(x, params, sizes, work, out):
    """out[s] = index of the first maximal logit of x[s] (= argmax of the softmax)."""
    n = x.shape[0]
    block = work.shape[1]
    n_classes = sizes[sizes.shape[0] - 1]
    for s0 in range(0, n, block):
        nb = min(block, n - s0)
        z = _forward_block(x, s0, nb, params, sizes, work)
        for s in range(nb):
            best = work[z, s]
            arg = 0
            for j in range(1, n_classes):
                v = work[z + j, s]
                if v > best:
                    best = v
                    arg = j
            out[s0 + s] = arg
