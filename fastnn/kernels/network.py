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

#: per-sample scratch rows after the activation buffers (sum of exps, true logit, flag)
EXTRA_ROWS = 3
#: any d_j above this contributes exp(80) ~ 5e34 (finite in float32); NaN maps here too
_D_MAX = 80.0
#: sum of exps is capped here before the log; log(1e30) = 69 is far above the clip
_T_MAX = 1e30


def work_rows(sizes):
    """Rows of scratch ``work`` needs for a network with these layer sizes."""
    return int(sizes[0]) + 2 * int(max(sizes[1:])) + EXTRA_ROWS


@njit(**INLINE)
def _hidden_max(sizes):
    h = 0
    for l in range(1, sizes.shape[0]):
        h = max(h, sizes[l])
    return h


@njit(**INLINE)
def _forward_block(x, s0, nb, params, sizes, work):
    """Push samples ``x[s0:s0+nb]`` through all layers; return the work row where the
    logits (``sizes[-1]`` rows x ``nb`` columns) start."""
    d = x.shape[1]
    hmax = _hidden_max(sizes)
    zero = work.dtype.type(0)
    for i in range(d):
        for s in range(nb):
            work[i, s] = x[s0 + s, i]
    n_layers = sizes.shape[0] - 1
    in_row = 0
    off = 0
    for layer in range(n_layers):
        d_in = sizes[layer]
        d_out = sizes[layer + 1]
        out_row = d if layer % 2 == 0 else d + hmax
        b_off = off + d_in * d_out
        hidden = layer < n_layers - 1
        for j in range(d_out):
            r = out_row + j
            bj = params[b_off + j]
            for s in range(nb):
                work[r, s] = bj
            for i in range(d_in):
                wij = params[off + i * d_out + j]
                ri = in_row + i
                for s in range(nb):
                    work[r, s] += wij * work[ri, s]
            if hidden:
                for s in range(nb):
                    v = work[r, s]
                    work[r, s] = v if v > zero else zero
        off = b_off + d_out
        in_row = out_row
    return in_row


@njit(**JIT)
def network_loss(x, labels, params, sizes, work):
    """Return (sum of clipped cross-entropy losses as float64, number correct).

    ``labels`` must already be int64 in ``[0, sizes[-1])``: they are used as indices.
    Accuracy counts a sample correct when its label is the first maximal logit, as
    ``np.argmax`` on the softmax output does."""
    n = x.shape[0]
    block = work.shape[1]
    n_classes = sizes[sizes.shape[0] - 1]
    t_row = x.shape[1] + 2 * _hidden_max(sizes)
    zy_row = t_row + 1
    ok_row = t_row + 2
    dt = work.dtype.type
    d_max = dt(_D_MAX)
    t_max = dt(_T_MAX)
    zero = dt(0)
    one = dt(1)
    loss_lo = dt(-np.log(dt(1 - 1e-7)))
    loss_hi = dt(-np.log(dt(1e-7)))
    total = 0.0
    correct = 0
    for s0 in range(0, n, block):
        nb = min(block, n - s0)
        z = _forward_block(x, s0, nb, params, sizes, work)
        for s in range(nb):
            work[zy_row, s] = work[z + labels[s0 + s], s]
            work[t_row, s] = zero
            work[ok_row, s] = one
        for j in range(n_classes):
            for s in range(nb):
                dj = work[z + j, s] - work[zy_row, s]
                # correct iff no class beats the label, and no earlier class ties it
                ok = (dj < zero) | ((dj == zero) & (j <= labels[s0 + s]))
                work[ok_row, s] = work[ok_row, s] if ok else zero
                dj = dj if dj < d_max else d_max  # also maps NaN (overflowed logits) to d_max
                work[t_row, s] += exp_(dj)
        for s in range(nb):
            t = work[t_row, s]
            t = t if t < t_max else t_max
            loss = log_(t)
            loss = loss if loss > loss_lo else loss_lo
            work[t_row, s] = loss if loss < loss_hi else loss_hi
        total += _row_sum(work, t_row, nb)
        correct += np.int64(_row_sum(work, ok_row, nb))
    return total, correct


@njit(**INLINE)
def _row_sum(work, row, nb):
    """float64 sum of work[row, :nb] with 4 independent accumulators (fixed order, so
    deterministic, and not one long dependency chain)."""
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    k = 0
    while k + 4 <= nb:
        a0 += work[row, k]
        a1 += work[row, k + 1]
        a2 += work[row, k + 2]
        a3 += work[row, k + 3]
        k += 4
    while k < nb:
        a0 += work[row, k]
        k += 1
    return (a0 + a1) + (a2 + a3)


@njit(**JIT)
def network_forward(x, params, sizes, work, out):
    """out[s] = softmax(logits of x[s]), max subtracted first."""
    n = x.shape[0]
    block = work.shape[1]
    n_classes = sizes[sizes.shape[0] - 1]
    m_row = x.shape[1] + 2 * _hidden_max(sizes)
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
