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
  allocated per call.  Rows: the transposed input block (``d`` rounded up to 4), then
  two ping-pong buffers of ``hmax`` rows (rounded up to 4), then ``EXTRA_ROWS`` rows of
  per-sample scratch (see ``_layout``).
* Loss by softmax shift invariance: with d_j = z_j - z_y,
  ``-log(clip(p_y, 1e-7, 1-1e-7)) == clip(log(sum_j exp(d_j)), -log(1-1e-7), -log(1e-7))``:
  no row max, no division, C-1 exps (up to 3 classes) and one log per four samples,
  finite for any finite logits.
"""

import numpy as np
from numba import njit

from .._config import HELPER, specialise
from .checks import inputs_ok
from .fastmath import exp_, flat_view, log_, max2, min2, select
from .target import always_inline, prefer_vector_width

#: per-sample scratch rows after the activation buffers (loss, true logit, flag, label)
EXTRA_ROWS = 4
#: any d_j above this contributes exp(80) ~ 5e34 (finite in float32); NaN maps here too
_D_MAX = 80.0
#: unit offsets 0..3 passed to helpers as int64 values: a literal constant argument
#: would compile one specialisation of the helper per constant
_INDICES = (np.int64(0), np.int64(1), np.int64(2), np.int64(3))


def work_rows(sizes):
    """Rows of scratch ``work`` needs for a network with these layer sizes (plain
    Python: calling the jitted ``_round4`` here would compile it, uncached, per process)."""
    def round4(k):
        return (int(k) + 3) // 4 * 4

    return round4(sizes[0]) + 2 * round4(max(sizes[1:])) + EXTRA_ROWS


@njit(**HELPER)
def _round4(k):
    always_inline()
    return (k + 3) // 4 * 4


@njit(**HELPER)
def _round32(k):
    always_inline()
    return (k + 31) // 32 * 32


@njit(**HELPER)
def _layout(sizes):
    """(first activation buffer row, second buffer row, first scratch row)."""
    always_inline()
    hmax = sizes[1]
    for layer in range(1, sizes.shape[0]):
        hmax = max2(hmax, sizes[layer])
    a = _round4(sizes[0])
    return a, a + _round4(hmax), a + 2 * _round4(hmax)


@njit(**HELPER)
def _w(params, off, d_in, d_out, i, j):
    """W[i, j] of the layer whose weights start at ``off``; 0 for padding rows/columns."""
    always_inline()
    return params[off + i * d_out + j] if (i < d_in) & (j < d_out) else params.dtype.type(0)


@njit(**HELPER)
def _b(params, b_off, d_out, j):
    """b[j], or 0 for a padding output."""
    always_inline()
    return params[b_off + j] if j < d_out else params.dtype.type(0)


@njit(**HELPER)
def _sweep4x4(work, r, ri, nb, params, off, b_off, d_in, d_out, i, j, first, floor):
    """Outputs j..j+3 (rows r..r+3) += inputs i..i+3 (rows ri..ri+3) times weights.

    Four outputs by four inputs per sweep: 16 FMAs per 8 loads and 4 stores, and a
    quarter of the loop set-ups (short sweeps are set-up bound; measured).  ``first``
    starts from the bias instead of the row; ``floor`` is 0 for a ReLU on the way out,
    -inf for none."""
    prefer_vector_width()
    w00, w01 = _w(params, off, d_in, d_out, i, j), _w(params, off, d_in, d_out, i, j + 1)
    w02, w03 = _w(params, off, d_in, d_out, i, j + 2), _w(params, off, d_in, d_out, i, j + 3)
    w10, w11 = _w(params, off, d_in, d_out, i + 1, j), _w(params, off, d_in, d_out, i + 1, j + 1)
    w12 = _w(params, off, d_in, d_out, i + 1, j + 2)
    w13 = _w(params, off, d_in, d_out, i + 1, j + 3)
    w20, w21 = _w(params, off, d_in, d_out, i + 2, j), _w(params, off, d_in, d_out, i + 2, j + 1)
    w22 = _w(params, off, d_in, d_out, i + 2, j + 2)
    w23 = _w(params, off, d_in, d_out, i + 2, j + 3)
    w30, w31 = _w(params, off, d_in, d_out, i + 3, j), _w(params, off, d_in, d_out, i + 3, j + 1)
    w32 = _w(params, off, d_in, d_out, i + 3, j + 2)
    w33 = _w(params, off, d_in, d_out, i + 3, j + 3)
    b0, b1 = _b(params, b_off, d_out, j), _b(params, b_off, d_out, j + 1)
    b2, b3 = _b(params, b_off, d_out, j + 2), _b(params, b_off, d_out, j + 3)
    for s in range(nb):
        x0, x1, x2, x3 = work[ri, s], work[ri + 1, s], work[ri + 2, s], work[ri + 3, s]
        o0, o1, o2, o3 = work[r, s], work[r + 1, s], work[r + 2, s], work[r + 3, s]
        a0 = (b0 if first else o0) + w00 * x0 + w10 * x1 + w20 * x2 + w30 * x3
        a1 = (b1 if first else o1) + w01 * x0 + w11 * x1 + w21 * x2 + w31 * x3
        a2 = (b2 if first else o2) + w02 * x0 + w12 * x1 + w22 * x2 + w32 * x3
        a3 = (b3 if first else o3) + w03 * x0 + w13 * x1 + w23 * x2 + w33 * x3
        work[r, s] = a0 if a0 > floor else floor
        work[r + 1, s] = a1 if a1 > floor else floor
        work[r + 2, s] = a2 if a2 > floor else floor
        work[r + 3, s] = a3 if a3 > floor else floor


@njit(**HELPER)
def _sweep4x2(work, r, ri, nb, params, off, b_off, d_in, d_out, i, j, first, floor):
    """``_sweep4x4`` for the last one or two inputs (the first layer often has two)."""
    prefer_vector_width()
    w00, w01 = _w(params, off, d_in, d_out, i, j), _w(params, off, d_in, d_out, i, j + 1)
    w02, w03 = _w(params, off, d_in, d_out, i, j + 2), _w(params, off, d_in, d_out, i, j + 3)
    w10, w11 = _w(params, off, d_in, d_out, i + 1, j), _w(params, off, d_in, d_out, i + 1, j + 1)
    w12 = _w(params, off, d_in, d_out, i + 1, j + 2)
    w13 = _w(params, off, d_in, d_out, i + 1, j + 3)
    b0, b1 = _b(params, b_off, d_out, j), _b(params, b_off, d_out, j + 1)
    b2, b3 = _b(params, b_off, d_out, j + 2), _b(params, b_off, d_out, j + 3)
    if first:  # no loads of the output rows (their values are not used)
        for s in range(nb):
            x0, x1 = work[ri, s], work[ri + 1, s]
            a0 = b0 + w00 * x0 + w10 * x1
            a1 = b1 + w01 * x0 + w11 * x1
            a2 = b2 + w02 * x0 + w12 * x1
            a3 = b3 + w03 * x0 + w13 * x1
            work[r, s] = a0 if a0 > floor else floor
            work[r + 1, s] = a1 if a1 > floor else floor
            work[r + 2, s] = a2 if a2 > floor else floor
            work[r + 3, s] = a3 if a3 > floor else floor
        return
    for s in range(nb):
        x0, x1 = work[ri, s], work[ri + 1, s]
        o0, o1, o2, o3 = work[r, s], work[r + 1, s], work[r + 2, s], work[r + 3, s]
        a0 = (b0 if first else o0) + w00 * x0 + w10 * x1
        a1 = (b1 if first else o1) + w01 * x0 + w11 * x1
        a2 = (b2 if first else o2) + w02 * x0 + w12 * x1
        a3 = (b3 if first else o3) + w03 * x0 + w13 * x1
        work[r, s] = a0 if a0 > floor else floor
        work[r + 1, s] = a1 if a1 > floor else floor
        work[r + 2, s] = a2 if a2 > floor else floor
        work[r + 3, s] = a3 if a3 > floor else floor


@njit(**HELPER)
def _pair_sweep23(work, ro, nb, params, d, hid, c, j, first):
    """Hidden units j..j+3 of a d-H-C network (d <= 2, C <= 3) computed in registers from
    the input rows and added straight into the logit rows ro..ro+2: the hidden layer
    never goes to memory.  The sweep is FMA-bound: padding 2 inputs and 3 classes to 4
    cost a third of it (measured), hence this narrow twin of ``_pair_sweep44``."""
    prefer_vector_width()
    k0, k1, k2, k3 = _INDICES  # not literals: each constant would be a compile
    b1 = d * hid
    w2 = b1 + hid
    b2 = w2 + hid * c
    u00, u01 = _w(params, k0, d, hid, k0, j), _w(params, k0, d, hid, k0, j + 1)
    u02, u03 = _w(params, k0, d, hid, k0, j + 2), _w(params, k0, d, hid, k0, j + 3)
    u10, u11 = _w(params, k0, d, hid, k1, j), _w(params, k0, d, hid, k1, j + 1)
    u12, u13 = _w(params, k0, d, hid, k1, j + 2), _w(params, k0, d, hid, k1, j + 3)
    c0, c1 = _b(params, b1, hid, j), _b(params, b1, hid, j + 1)
    c2, c3 = _b(params, b1, hid, j + 2), _b(params, b1, hid, j + 3)
    v00, v01 = _w(params, w2, hid, c, j, k0), _w(params, w2, hid, c, j, k1)
    v02 = _w(params, w2, hid, c, j, k2)
    v10, v11 = _w(params, w2, hid, c, j + 1, k0), _w(params, w2, hid, c, j + 1, k1)
    v12 = _w(params, w2, hid, c, j + 1, k2)
    v20, v21 = _w(params, w2, hid, c, j + 2, k0), _w(params, w2, hid, c, j + 2, k1)
    v22 = _w(params, w2, hid, c, j + 2, k2)
    v30, v31 = _w(params, w2, hid, c, j + 3, k0), _w(params, w2, hid, c, j + 3, k1)
    v32 = _w(params, w2, hid, c, j + 3, k2)
    e0, e1, e2 = _b(params, b2, c, k0), _b(params, b2, c, k1), _b(params, b2, c, k2)
    zero = work.dtype.type(0)
    for s in range(nb):
        x0, x1 = work[0, s], work[1, s]
        h0 = c0 + u00 * x0 + u10 * x1
        h1 = c1 + u01 * x0 + u11 * x1
        h2 = c2 + u02 * x0 + u12 * x1
        h3 = c3 + u03 * x0 + u13 * x1
        h0 = h0 if h0 > zero else zero
        h1 = h1 if h1 > zero else zero
        h2 = h2 if h2 > zero else zero
        h3 = h3 if h3 > zero else zero
        o0, o1, o2 = work[ro, s], work[ro + 1, s], work[ro + 2, s]
        o0 = e0 if first else o0
        o1 = e1 if first else o1
        o2 = e2 if first else o2
        work[ro, s] = o0 + v00 * h0 + v10 * h1 + v20 * h2 + v30 * h3
        work[ro + 1, s] = o1 + v01 * h0 + v11 * h1 + v21 * h2 + v31 * h3
        work[ro + 2, s] = o2 + v02 * h0 + v12 * h1 + v22 * h2 + v32 * h3


@njit(**HELPER)
def _pair_sweep44(work, ro, nb, params, d, hid, c, j, first):
    """``_pair_sweep23`` for up to 4 inputs and 4 classes (padding rows are zero)."""
    prefer_vector_width()
    k0, k1, k2, k3 = _INDICES  # not literals: each constant would be a compile
    b1 = d * hid
    w2 = b1 + hid
    b2 = w2 + hid * c
    u00, u01 = _w(params, k0, d, hid, k0, j), _w(params, k0, d, hid, k0, j + 1)
    u02, u03 = _w(params, k0, d, hid, k0, j + 2), _w(params, k0, d, hid, k0, j + 3)
    u10, u11 = _w(params, k0, d, hid, k1, j), _w(params, k0, d, hid, k1, j + 1)
    u12, u13 = _w(params, k0, d, hid, k1, j + 2), _w(params, k0, d, hid, k1, j + 3)
    u20, u21 = _w(params, k0, d, hid, k2, j), _w(params, k0, d, hid, k2, j + 1)
    u22, u23 = _w(params, k0, d, hid, k2, j + 2), _w(params, k0, d, hid, k2, j + 3)
    u30, u31 = _w(params, k0, d, hid, k3, j), _w(params, k0, d, hid, k3, j + 1)
    u32, u33 = _w(params, k0, d, hid, k3, j + 2), _w(params, k0, d, hid, k3, j + 3)
    c0, c1 = _b(params, b1, hid, j), _b(params, b1, hid, j + 1)
    c2, c3 = _b(params, b1, hid, j + 2), _b(params, b1, hid, j + 3)
    v00, v01 = _w(params, w2, hid, c, j, k0), _w(params, w2, hid, c, j, k1)
    v02, v03 = _w(params, w2, hid, c, j, k2), _w(params, w2, hid, c, j, k3)
    v10, v11 = _w(params, w2, hid, c, j + 1, k0), _w(params, w2, hid, c, j + 1, k1)
    v12, v13 = _w(params, w2, hid, c, j + 1, k2), _w(params, w2, hid, c, j + 1, k3)
    v20, v21 = _w(params, w2, hid, c, j + 2, k0), _w(params, w2, hid, c, j + 2, k1)
    v22, v23 = _w(params, w2, hid, c, j + 2, k2), _w(params, w2, hid, c, j + 2, k3)
    v30, v31 = _w(params, w2, hid, c, j + 3, k0), _w(params, w2, hid, c, j + 3, k1)
    v32, v33 = _w(params, w2, hid, c, j + 3, k2), _w(params, w2, hid, c, j + 3, k3)
    e0, e1 = _b(params, b2, c, k0), _b(params, b2, c, k1)
    e2, e3 = _b(params, b2, c, k2), _b(params, b2, c, k3)
    zero = work.dtype.type(0)
    for s in range(nb):
        x0, x1, x2, x3 = work[0, s], work[1, s], work[2, s], work[3, s]
        h0 = c0 + u00 * x0 + u10 * x1 + u20 * x2 + u30 * x3
        h1 = c1 + u01 * x0 + u11 * x1 + u21 * x2 + u31 * x3
        h2 = c2 + u02 * x0 + u12 * x1 + u22 * x2 + u32 * x3
        h3 = c3 + u03 * x0 + u13 * x1 + u23 * x2 + u33 * x3
        h0 = h0 if h0 > zero else zero
        h1 = h1 if h1 > zero else zero
        h2 = h2 if h2 > zero else zero
        h3 = h3 if h3 > zero else zero
        o0, o1 = work[ro, s], work[ro + 1, s]
        o2, o3 = work[ro + 2, s], work[ro + 3, s]
        o0 = e0 if first else o0
        o1 = e1 if first else o1
        o2 = e2 if first else o2
        o3 = e3 if first else o3
        work[ro, s] = o0 + v00 * h0 + v10 * h1 + v20 * h2 + v30 * h3
        work[ro + 1, s] = o1 + v01 * h0 + v11 * h1 + v21 * h2 + v31 * h3
        work[ro + 2, s] = o2 + v02 * h0 + v12 * h1 + v22 * h2 + v32 * h3
        work[ro + 3, s] = o3 + v03 * h0 + v13 * h1 + v23 * h2 + v33 * h3


@njit(**HELPER)
def _load_block(x, s0, nb, work):
    """work[i, s] = x[s0 + s, i]: the block's samples, one feature per row, zero-padded
    to whole 32-column vectors and four rows (padding samples are zero inputs, so no
    pass has a scalar remainder loop).  Returns the padded width.

    Indexing views with the bare loop variable and, for up to four features, constant
    strides lets LLVM vectorise the de-interleave (6x faster for 2 features)."""
    prefer_vector_width()
    d = x.shape[1]
    xb = flat_view(x)[d * s0:d * (s0 + nb)]
    if d == 1:
        for s in range(nb):
            work[0, s] = xb[s]
    elif d == 2:
        for s in range(nb):
            a, b = xb[2 * s], xb[2 * s + 1]
            work[0, s] = a
            work[1, s] = b
    elif d == 3:
        for s in range(nb):
            a, b, c = xb[3 * s], xb[3 * s + 1], xb[3 * s + 2]
            work[0, s] = a
            work[1, s] = b
            work[2, s] = c
    elif d == 4:
        for s in range(nb):
            a, b, c, e = xb[4 * s], xb[4 * s + 1], xb[4 * s + 2], xb[4 * s + 3]
            work[0, s] = a
            work[1, s] = b
            work[2, s] = c
            work[3, s] = e
    else:
        xm = x[s0:s0 + nb]
        for i in range(d):
            for s in range(nb):
                work[i, s] = xm[s, i]
    zero = work.dtype.type(0)
    nw = _round32(nb)
    for i in range(d):
        for s in range(nb, nw):
            work[i, s] = zero
    for i in range(d, _round4(d)):
        for s in range(nw):
            work[i, s] = zero
    return nw


# --- forward passes, one per shape family -------------------------------------------
# Each pushes samples x[s0:s0+nb] through all layers and returns the work row where the
# logits (sizes[-1] rows x nb columns) start.  Columns nb up to the next multiple of 32
# hold the logits of all-zero padding samples.  load=False skips loading the samples:
# the search evaluates thousands of candidates on the same block, whose input rows no
# pass overwrites.  A family is a separate function (and each kernel that uses one a
# separate compiled variant, ``specialise``) so that a first call compiles only the
# family its shape needs: building all of them into one kernel took 10-20 s.


@njit(**HELPER)
def forward_pair23(x, s0, nb, params, sizes, work, load):
    """d-H-C networks with d <= 2 and C <= 3 (nnfs's data sets): ``_pair_sweep23``."""
    prefer_vector_width()
    nw = _load_block(x, s0, nb, work) if load else _round32(nb)
    ro = _layout(sizes)[0]
    for j in range(0, sizes[1], 4):
        _pair_sweep23(work, ro, nw, params, sizes[0], sizes[1], sizes[2], j, j == 0)
    return ro


@njit(**HELPER)
def forward_pair44(x, s0, nb, params, sizes, work, load):
    """d-H-C networks with d <= 4 and C <= 4: ``_pair_sweep44``."""
    prefer_vector_width()
    nw = _load_block(x, s0, nb, work) if load else _round32(nb)
    ro = _layout(sizes)[0]
    for j in range(0, sizes[1], 4):
        _pair_sweep44(work, ro, nw, params, sizes[0], sizes[1], sizes[2], j, j == 0)
    return ro


@njit(**HELPER)
def forward_deep(x, s0, nb, params, sizes, work, load):
    """Any depth and width, layer by layer through the two ping-pong buffers.

    Each sweep updates four output rows from four (or, at the end, two) input rows,
    the bias folded into the first sweep and ReLU into the last.  Layer widths are
    padded to a multiple of four: padding inputs are zero rows, padding weights and
    biases are zero, so padding outputs come out zero for the next layer."""
    prefer_vector_width()
    nw = _load_block(x, s0, nb, work) if load else _round32(nb)
    buf_a, buf_b, _ = _layout(sizes)
    zero = work.dtype.type(0)
    neg_inf = work.dtype.type(-np.inf)
    n_layers = sizes.shape[0] - 1
    in_row = 0
    off = 0
    for layer in range(n_layers):
        d_in = sizes[layer]
        d_out = sizes[layer + 1]
        out_row = buf_a if layer % 2 == 0 else buf_b
        b_off = off + d_in * d_out
        relu = layer < n_layers - 1
        for j in range(0, d_out, 4):
            r = out_row + j
            i = 0
            while i < d_in:
                # ReLU (floor 0) on the last sweep of a hidden layer; -inf: no floor
                floor = zero if relu and d_in - i <= 4 else neg_inf
                if d_in - i > 2:
                    _sweep4x4(work, r, in_row + i, nw, params, off, b_off, d_in, d_out,
                              i, j, i == 0, floor)
                    i += 4
                else:
                    _sweep4x2(work, r, in_row + i, nw, params, off, b_off, d_in, d_out,
                              i, j, i == 0, floor)
                    i += 2
        off = b_off + d_out
        in_row = out_row
    return in_row


def forward_family(sizes):
    """Which forward pass a network with these layer sizes uses (plain Python)."""
    if len(sizes) == 3 and sizes[0] <= 4 and sizes[2] <= 4:
        return "pair23" if sizes[0] <= 2 and sizes[2] <= 3 else "pair44"
    return "deep"


def loss_family(sizes):
    """Forward family plus the exp pass: ``"c3"`` (up to 3 classes, one fused pass) or
    ``"cn"`` (any number, one pass per class)."""
    return forward_family(sizes) + ("_c3" if sizes[-1] <= 3 else "_cn")


#: one network of each loss family (``fastnn.warmup`` compiles them all)
EXAMPLE_SIZES = {
    "pair23_c3": (2, 3, 3),
    "pair44_c3": (4, 5, 3),
    "pair44_cn": (2, 5, 4),
    "deep_c3": (2, 4, 4, 3),
    "deep_cn": (5, 4, 6),
}

@njit(**HELPER)
def _log_sum(work, t_row, nb):
    """float64 sum of log(work[t_row, :nb]) with one log per four samples.

    Clipping the loss log(t) to [-log(1-1e-7), -log(1e-7)] was clipping t to
    [t_lo, t_hi], so log(t[g]) + log(t[g+q]) + log(t[g+2q]) + log(t[g+3q]) is the log
    of their product (at most 1e28, finite in float32).  Quarters rather than
    neighbours: stride-4 loads do not vectorise (7x, measured).  Padding samples get
    t = 1, adding log(1) = 0; 32 columns make q a multiple of 8.  Its own compiled
    function: inlined after the exp pass it ran ~8% slower (300 samples, measured)."""
    prefer_vector_width()
    one = work.dtype.type(1)
    nb32 = _round32(nb)
    q = nb32 // 4
    for s in range(nb, nb32):
        work[t_row, s] = one
    log_row = t_row + 1
    for g in range(q):
        prod = ((work[t_row, g] * work[t_row, g + q])
                * (work[t_row, g + 2 * q] * work[t_row, g + 3 * q]))
        work[log_row, g] = log_(prod)
    return _sum8(work, log_row, q)


@njit(**HELPER)
def _clip_t(t):
    """Clip t = sum_j exp(z_j - z_y) so that log(t) is the notebook's clipped loss."""
    always_inline()
    dt = type(t)
    t_lo = dt(1) / dt(1 - 1e-7)
    t_hi = dt(1e7)
    t = t if t > t_lo else t_lo
    return t if t < t_hi else t_hi


@njit(**HELPER)
def _wrong_flag(dj, j_before_label):
    """1 if class j beats the label (or dj is NaN from overflowed logits), or ties it
    while coming first (argmax takes the first maximum); else 0.  Float 0/1 flags
    combined with max: boolean and/or here stops vectorisation (9x, measured)."""
    always_inline()
    zero = type(dj)(0)
    one = type(dj)(1)
    beats = zero if dj <= zero else one
    ties_first = j_before_label if dj == zero else zero
    return beats if beats > ties_first else ties_first


@njit(**HELPER)
def _label_terms(work, z, lab_row, s, two, three):
    """(d_a, d_b, label): for 1 to 3 classes, the two logit differences z_j - z_y that
    need an exp (the label's own term is exp(0) = 1): classes 1, 2 for label 0; 0, 2
    for 1; 0, 1 for 2.  Missing classes (fewer than 3) get logit -inf: their exp is 0
    and they never beat the label."""
    always_inline()
    dt = work.dtype.type
    zero = dt(0)
    one = dt(1)
    neg_inf = dt(-np.inf)
    label = work[lab_row, s]
    z0 = work[z, s]
    z1 = select(two, work[z + 1, s], neg_inf)
    z2 = select(three, work[z + 2, s], neg_inf)
    zy = select(label == zero, z0, select(label == one, z1, z2))
    d_a = select(label == zero, z1, z0) - zy  # class 0, or 1 when the label is 0
    d_b = select(label == dt(2), z1, z2) - zy  # class 2, or 1 when the label is 2
    return d_a, d_b, label


@njit(**HELPER)
def _upto3_t(d_a, d_b):
    """Clipped t = 1 + exp(d_a) + exp(d_b); d above _D_MAX (or NaN) counts as _D_MAX."""
    always_inline()
    d_max = type(d_a)(_D_MAX)
    d_a = select(d_a < d_max, d_a, d_max)  # also maps NaN to d_max
    d_b = select(d_b < d_max, d_b, d_max)
    return _clip_t(type(d_a)(1) + exp_(d_a) + exp_(d_b))


@njit(**HELPER)
def exp_sums_c3(work, z, lab, nb, n_classes, t_row, accuracy):
    """Write clipped t = sum_j exp(z_j - z_y) to work[t_row] for 1 to 3 classes, in one
    register-resident pass (the general loop makes 2C + 2 passes); return # wrong
    (0 unless ``accuracy``).  Runs over whole 32-column vectors; padding samples get
    label 0."""
    prefer_vector_width()
    dt = work.dtype.type
    zero = dt(0)
    one = dt(1)
    two = n_classes > 1
    three = n_classes > 2
    bad_row = t_row + 2
    lab_row = t_row + 3
    nw = _round32(nb)
    for s in range(nb):  # own pass: int64 lanes in the main loop would halve its width
        work[lab_row, s] = dt(lab[s])
    for s in range(nb, nw):
        work[lab_row, s] = zero
    if accuracy:  # two loops, not a test per sample: the flags cost a fifth (measured)
        for s in range(nw):
            d_a, d_b, label = _label_terms(work, z, lab_row, s, two, three)
            # a class before the label wins a tie: class a is before unless label
            # is 0, class b only when the label is 2
            work[bad_row, s] = max2(_wrong_flag(d_a, select(label == zero, zero, one)),
                                   _wrong_flag(d_b, select(label == dt(2), one, zero)))
            work[t_row, s] = _upto3_t(d_a, d_b)
        return _count_flags(work, bad_row, nb)
    for s in range(nw):
        d_a, d_b, _ = _label_terms(work, z, lab_row, s, two, three)
        work[t_row, s] = _upto3_t(d_a, d_b)
    return np.int32(0)


@njit(**HELPER)
def exp_sums_cn(work, z, lab, nb, n_classes, t_row, accuracy):
    """``exp_sums_c3`` for any number of classes, one class per sweep."""
    prefer_vector_width()
    zy_row = t_row + 1
    bad_row = t_row + 2
    lab_row = t_row + 3
    dt = work.dtype.type
    d_max = dt(_D_MAX)
    zero = dt(0)
    one = dt(1)
    nw = _round32(nb)
    # Per-sample label (as a float) and true-class logit, by selects rather than a
    # gather: every loop below is then a straight vector sweep.
    for s in range(nb):
        work[lab_row, s] = dt(lab[s])
    for s in range(nb, nw):
        work[lab_row, s] = zero
    for s in range(nw):
        work[zy_row, s] = work[z, s]
        work[t_row, s] = zero
        work[bad_row, s] = zero
    for j in range(1, n_classes):
        fj = dt(j)
        for s in range(nw):
            zj = work[z + j, s]  # load both sides before selecting: a load inside
            zy = work[zy_row, s]  # a conditional stops vectorisation (10x, measured)
            work[zy_row, s] = zj if work[lab_row, s] == fj else zy
    for j in range(n_classes):
        fj = dt(j)
        if accuracy:
            for s in range(nw):
                dj = work[z + j, s] - work[zy_row, s]
                flag = _wrong_flag(dj, one if fj < work[lab_row, s] else zero)
                work[bad_row, s] = max2(work[bad_row, s], flag)
        for s in range(nw):
            dj = work[z + j, s] - work[zy_row, s]
            dj = dj if dj < d_max else d_max  # also maps NaN to d_max
            work[t_row, s] += exp_(dj)
    for s in range(nw):
        work[t_row, s] = _clip_t(work[t_row, s])
    return _count_flags(work, bad_row, nb) if accuracy else np.int32(0)


@njit(**HELPER)
def _count_flags(work, row, nb):
    """Number of 1s in the 0/1 float row; its own pass, because an integer reduction
    inside a float loop makes LLVM pick half-width vectors (1.6x slower, measured)."""
    prefer_vector_width()
    count = np.int32(0)
    for s in range(nb):
        count += np.int32(work[row, s])
    return count


@njit(**HELPER)
def _sum8(work, row, m):
    """float64 sum of work[row, :m], m a multiple of 8, in eight interleaved partial
    sums: a fixed order (deterministic) without one long dependency chain (a single
    accumulator cost 0.3 ns/sample, measured)."""
    prefer_vector_width()
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    for k in range(0, m, 8):
        a0 += work[row, k]
        a1 += work[row, k + 1]
        a2 += work[row, k + 2]
        a3 += work[row, k + 3]
        a4 += work[row, k + 4]
        a5 += work[row, k + 5]
        a6 += work[row, k + 6]
        a7 += work[row, k + 7]
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))



# --- the kernels: one source each, compiled per family (``specialise``) -------------
# ``forward_block`` and ``exp_sums`` are placeholders that each variant replaces with
# its family's functions.
forward_block = forward_deep
exp_sums = exp_sums_cn


def _loss(x, labels, params, sizes, work, accuracy, load, check):
    """(ok, sum of clipped cross-entropy losses as float64, number correct).

    One kernel for every use, with run-time flags instead of one build per flag
    combination: ``check`` first runs ``checks.inputs_ok`` (finite inputs and
    parameters, labels in range) and returns (False, 0, 0) before touching anything if
    it fails; ``accuracy=False`` skips the argmax count (the search needs it only for
    the candidates it accepts: a fifth of the time); ``load=False`` reuses the samples
    already in ``work`` (a single block only: the search passes it after the first
    evaluation of a chunk; 10% at 300 samples).  Accuracy counts a sample correct when
    its label is the first maximal logit, as ``np.argmax`` on the softmax does."""
    prefer_vector_width()
    if check and not inputs_ok(x, labels, params, sizes[sizes.shape[0] - 1]):
        return False, 0.0, 0
    n = x.shape[0]
    block = work.shape[1]
    n_classes = sizes[sizes.shape[0] - 1]
    t_row = _layout(sizes)[2]
    total = 0.0
    wrong = 0
    for s0 in range(0, n, block):
        nb = min2(block, n - s0)
        # skipping the load is only right when one block holds every sample
        z = forward_block(x, s0, nb, params, sizes, work, load or n > block)
        wrong += exp_sums(work, z, labels[s0:s0 + nb], nb, n_classes, t_row, accuracy)
        total += _log_sum(work, t_row, nb)
    return True, total, n - wrong


def _forward(x, params, sizes, work, out):
    """out[s] = softmax(logits of x[s]), max subtracted first."""
    prefer_vector_width()
    n = x.shape[0]
    block = work.shape[1]
    n_classes = sizes[sizes.shape[0] - 1]
    m_row = _layout(sizes)[2]
    t_row = m_row + 1
    one = work.dtype.type(1)
    for s0 in range(0, n, block):
        nb = min2(block, n - s0)
        z = forward_block(x, s0, nb, params, sizes, work, nb > 0)  # True, not a literal
        for s in range(nb):
            work[m_row, s] = work[z, s]
            work[t_row, s] = 0
        for j in range(1, n_classes):
            for s in range(nb):
                work[m_row, s] = max2(work[m_row, s], work[z + j, s])
        for j in range(n_classes):
            for s in range(nb):
                e = exp_(work[z + j, s] - work[m_row, s])
                work[z + j, s] = e
                work[t_row, s] += e
        for s in range(nb):
            inv = one / work[t_row, s]
            for j in range(n_classes):
                out[s0 + s, j] = work[z + j, s] * inv


def _predict(x, params, sizes, work, out):
    """out[s] = index of the first maximal logit of x[s] (= argmax of the softmax)."""
    prefer_vector_width()
    n = x.shape[0]
    block = work.shape[1]
    n_classes = sizes[sizes.shape[0] - 1]
    for s0 in range(0, n, block):
        nb = min2(block, n - s0)
        z = forward_block(x, s0, nb, params, sizes, work, nb > 0)  # True, not a literal
        for s in range(nb):
            best = work[z, s]
            arg = 0
            for j in range(1, n_classes):
                v = work[z + j, s]
                if v > best:
                    best = v
                    arg = j
            out[s0 + s] = arg


_FORWARDS = {"pair23": forward_pair23, "pair44": forward_pair44, "deep": forward_deep}
_EXP_SUMS = {"c3": exp_sums_c3, "cn": exp_sums_cn}


def loss_kernel(family):
    """``_loss`` for a loss family (``loss_family(sizes)``), built on first use."""
    forward, exps = family.split("_")
    return specialise(_loss, family, dict(forward_block=_FORWARDS[forward],
                                          exp_sums=_EXP_SUMS[exps]))


def forward_kernel(family):
    """``_forward`` (softmax probabilities) for a forward family."""
    return specialise(_forward, family, dict(forward_block=_FORWARDS[family]))


def predict_kernel(family):
    """``_predict`` (class indices) for a forward family."""
    return specialise(_predict, family, dict(forward_block=_FORWARDS[family]))
