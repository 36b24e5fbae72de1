"""Gradient training, compiled whole: forward, softmax + cross-entropy, backward,
regularisation, dropout, the optimizer update and the epoch bookkeeping, a chunk of steps
per call.

Layout (as ``kernels/network.py``): parameters are one flat vector, layer ``l`` holding
``W`` (``sizes[l] x sizes[l+1]``, row-major) then ``b``; gradients land in the same
layout, so regularisation and the optimizer are passes over one vector
(``kernels/optim.py``).  A batch is processed in blocks of ``B = work.shape[2]`` samples,
samples innermost (every loop a straight vector sweep), in a caller-owned scratch array
with one row per unit (``layout``, made by ``fastnn/train.py``):

* ``layout[l]``, l = 0..L: the rows of layer ``l``'s activations (the input block, the
  hidden activations after ReLU and dropout, the logits), each padded to 4 rows;
* ``layout[L + 1]``, ``layout[L + 2]``: two buffers for the gradients ``dz`` flowing back;
* ``layout[L + 3]``: per-sample scratch rows (``SCRATCH_ROWS``).

**Families.**  ``pair23`` (d-H-C networks with d <= 2, C <= 3 and no dropout: nnfs's data
sets) fuses each four hidden units' forward sweep with the logits and recomputes them in
one fused backward pass per two units; ``deep`` handles any depth, width and dropout
layer by layer.  Each family is its own compiled build (``train_kernels``).

**Compile time** is part of speed: Numba re-optimises every callee's code inside each
caller, so the call tree is kept flat -- the chunk loop (``_train``) calls a block
function per family (``_block_pair23``, ``_block_deep``), and those call only leaves.
A first ``fastnn.train`` compiles one family's build (``bench/cold_start.py``).

**Determinism.**  A batch's blocks start at fixed offsets (multiples of ``B``) whatever
the number of threads; each block writes its gradient, loss and count into its own slot,
and the slots are added in block order.  So the same arguments and seed give the same
bits with 1 or many threads, serially or in ``prange`` (``tests/test_train.py``).  Sums
over a block's samples are vectorised reductions (``REDUCE``, the one place with
``reassoc``): their order is fixed by the compiled code, not by the schedule.

**Dropout** masks come from a counter-based hash of (seed, layer, iteration, position in
the batch, unit) -- no generator state, the same in any thread -- or, for the book's
``Model``, from masks NumPy drew (``given``), so a seeded script gets the book's masks.
"""

import functools

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .._config import HELPER, compiled
from .fastmath import exp_, log_, max2, min2, select
from .network import (
    _INDICES,
    _b,
    _pair_sweep23,
    _round4,
    _round32,
    _sweep4x2,
    _sweep4x4,
    _w,
)
from .noise import stream_key
from .optim import decayed_rate, update
from .target import prefer_vector_width
from .train_book import SOFTMAX_LOSS, block_book, exp_matches_numpy
from .train_book import gradient_step as _book_gradient_step
from .train_book import update_step as _book_update_step

#: helpers whose loops are sums over samples: ``reassoc`` lets LLVM vectorise them
#: (8x faster than a scalar chain, measured).  Their order is a property of the compiled
#: code, the same for every call: results stay bit-identical across threads and chunks.
REDUCE = dict(HELPER, fastmath={"contract", "nsz", "reassoc"})

# -- state vectors (``fastnn/train.py`` reads and writes them by these names) ----------
#: istate: int64 run state, checkpointed
(EPOCH, STEP, ITER, STATUS, CORRECT, COUNT, BEST_EPOCH, N_STEP_REC, N_EPOCH_REC,
 HAS_GOOD) = range(10)
ISTATE_SIZE = 10
#: fstate: float64 run state, checkpointed
LOSS_SUM, BEST_LOSS, REG_SUM = range(3)
FSTATE_SIZE = 3
#: config: int64 settings of the run
(C_EPOCHS, C_BATCH, C_SHUFFLE, C_PATIENCE, C_RECORD_STEPS, C_MAX_STEPS, C_HAS_VAL,
 C_GIVEN_MASKS, C_PARALLEL, C_KIND, C_BOOK) = range(11)
CONFIG_SIZE = 11
#: hyper: float64 settings
H_LR, H_DECAY, H_1, H_2, H_EPS, H_TARGET = range(6)
HYPER_SIZE = 6
#: status codes
RUNNING, TARGET_REACHED, PATIENCE_EXHAUSTED, DIVERGED = 0, 1, 2, 3
#: columns of the step and epoch records
STEP_COLUMNS = ("epoch", "step", "loss", "reg_loss", "correct", "count", "lr")
EPOCH_COLUMNS = ("epoch", "loss", "reg_loss_before", "reg_loss_after", "correct", "count",
                 "lr", "val_loss", "val_correct")
#: per-sample scratch rows after the gradient buffers
_MAX, _SUM, _LABEL, _LOSS, _BEST, _ARG = range(6)
SCRATCH_ROWS = 6
#: the streams of dropout masks and of the shuffle, distinct from the search's noise
_DROPOUT_TAG = np.uint64(0xD0)
_SHUFFLE_TAG = np.uint64(0x5F)


# -- leaves: sums, loads, dropout -------------------------------------------------------


@intrinsic
def _uniform(typingctx, key, index):
    """A float32 in [0, 1) from a 32-bit hash of (key, index): index * golden + key
    through Wellons' ``lowbias32`` (two multiply-xorshift rounds), top 24 bits.  All in
    32-bit lanes, so a loop of them vectorises (64-bit multiplies do not on AVX2)."""
    if not isinstance(key, types.Integer) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)

        def c(v):
            return ir.Constant(i32, v)

        k = builder.trunc(args[0], i32) if args[0].type.width > 32 else args[0]
        i = builder.trunc(args[1], i32) if args[1].type.width > 32 else args[1]
        h = builder.add(builder.mul(i, c(0x9E3779B9)), k)
        h = builder.xor(h, builder.lshr(h, c(16)))
        h = builder.mul(h, c(0x21F0AAAD))
        h = builder.xor(h, builder.lshr(h, c(15)))
        h = builder.mul(h, c(0x735A2D97))
        h = builder.xor(h, builder.lshr(h, c(15)))
        top = builder.lshr(h, c(8))
        f = builder.sitofp(top, ir.FloatType())
        return builder.fmul(f, ir.Constant(ir.FloatType(), 2.0 ** -24))

    return types.float32(key, index), codegen


@njit(**REDUCE)
def _row_sum(work, row, n):
    """Sum of work[row, :n] in float64."""
    prefer_vector_width()
    total = 0.0
    for s in range(n):
        total += np.float64(work[row, s])
    return total


@njit(**REDUCE)
def _row_sum_t(work, row, n):
    """Sum of work[row, :n] in the work dtype (a bias gradient)."""
    prefer_vector_width()
    total = work.dtype.type(0)
    for s in range(n):
        total += work[row, s]
    return total


@njit(**REDUCE)
def _dot4x4(work, ra, rb, n):
    """The 16 sums over s < n of work[ra + i, s] * work[rb + j, s], i, j < 4 (row
    major in i)."""
    prefer_vector_width()
    z = work.dtype.type(0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = z
    for s in range(n):
        a0, a1, a2, a3 = work[ra, s], work[ra + 1, s], work[ra + 2, s], work[ra + 3, s]
        b0, b1, b2, b3 = work[rb, s], work[rb + 1, s], work[rb + 2, s], work[rb + 3, s]
        s00 += a0 * b0
        s01 += a0 * b1
        s02 += a0 * b2
        s03 += a0 * b3
        s10 += a1 * b0
        s11 += a1 * b1
        s12 += a1 * b2
        s13 += a1 * b3
        s20 += a2 * b0
        s21 += a2 * b1
        s22 += a2 * b2
        s23 += a2 * b3
        s30 += a3 * b0
        s31 += a3 * b1
        s32 += a3 * b2
        s33 += a3 * b3
    return (s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23,
            s30, s31, s32, s33)


@njit(**HELPER)
def _store_grad(g, off, d_in, d_out, i, j, sums):
    """g[off + (i + a) * d_out + j + b] = sums[4a + b] for the entries inside the layer."""
    for a in range(4):
        if i + a < d_in:
            for b in range(4):
                if j + b < d_out:
                    g[off + (i + a) * d_out + j + b] = sums[4 * a + b]


@njit(**HELPER)
def _load(x, labels, perm, start, nb, work, lab_row):
    """The block's samples x[perm[start:start+nb]] into the input rows (one feature per
    row, samples innermost) and their labels, as floats, into ``lab_row``, zero-padded to
    whole 32-column vectors and four rows; returns the padded width.  ``perm`` is the
    epoch's shuffle, or the identity.  One plain loop: a specialised de-interleave (as
    ``kernels/network.py`` has) is not worth its compile time next to a training step's
    arithmetic."""
    prefer_vector_width()
    t = work.dtype.type
    d = x.shape[1]
    for s in range(nb):
        r = perm[start + s]
        for i in range(d):
            work[i, s] = x[r, i]
        work[lab_row, s] = t(labels[r])
    nw = _round32(nb)
    for s in range(nb, nw):
        for i in range(d):
            work[i, s] = t(0)
        work[lab_row, s] = t(0)
    for i in range(d, _round4(d)):
        for s in range(nw):
            work[i, s] = t(0)
    return nw


@njit(**HELPER)
def _dropout(work, row, units, nb, nw, pos0, keep, key, given, goff):
    """Multiply rows row..row+units by the dropout mask (0, or 1/keep): from ``given``
    (NumPy's 0/1 draws, sample-major, at ``goff``) when goff >= 0, else from the hash of
    (key, position in the batch * units + unit)."""
    prefer_vector_width()
    t = work.dtype.type
    scale = t(1.0 / keep)
    zero = t(0)
    if goff >= 0:
        for j in range(units):
            for s in range(nb):
                m = given[goff + (pos0 + s) * units + j]
                work[row + j, s] *= scale if m != 0 else zero
        return
    keep32 = np.float32(keep)
    for j in range(units):
        for s in range(nw):
            u = _uniform(key, (pos0 + s) * units + j)
            work[row + j, s] *= select(u < keep32, scale, zero)


# -- leaves: softmax, loss, accuracy, dz ---------------------------------------------


@njit(**HELPER)
def _softmax_c3(work, z, n_classes, nb, nw, dz, sc, training, n_div):
    """Softmax of the logit rows z.. (in place: they become probabilities), the clipped
    cross-entropy (row ``_LOSS``) and whether the argmax (first maximum, as np.argmax)
    is the label (row ``_BEST``) of each sample; with ``training``, dz = (p - onehot) /
    n_div into rows dz.. (zero for padding samples), the book's ``dvalues / samples``.
    For 1 to 3 classes, in one pass with everything in registers."""
    prefer_vector_width()
    t = work.dtype.type
    zero, one, two = t(0), t(1), t(2)
    neg_inf = t(-np.inf)
    lo, hi = t(1e-7), t(1 - 1e-7)
    div = t(n_div)
    has2 = n_classes > 1
    has3 = n_classes > 2
    lab = sc + _LABEL
    for s in range(nw):
        y = work[lab, s]
        z0 = work[z, s]
        z1 = select(has2, work[z + 1, s], neg_inf)
        z2 = select(has3, work[z + 2, s], neg_inf)
        m = max2(max2(z0, z1), z2)
        e0, e1, e2 = exp_(z0 - m), exp_(z1 - m), exp_(z2 - m)
        total = e0 + e1 + e2
        p0, p1, p2 = e0 / total, e1 / total, e2 / total
        py = select(y == zero, p0, select(y == one, p1, p2))
        py = lo if py < lo else py  # as np.clip: a NaN stays NaN (and stops the run)
        py = hi if py > hi else py
        work[sc + _LOSS, s] = -log_(py)
        arg = select(p1 > p0, one, zero)
        arg = select(p2 > max2(p0, p1), two, arg)
        work[sc + _BEST, s] = select(arg == y, one, zero)
        work[z, s] = p0
        work[z + 1, s] = p1
        work[z + 2, s] = p2
        if training:
            inside = s < nb
            work[dz, s] = select(inside, (p0 - select(y == zero, one, zero)) / div, zero)
            work[dz + 1, s] = select(inside, (p1 - select(y == one, one, zero)) / div, zero)
            work[dz + 2, s] = select(inside, (p2 - select(y == two, one, zero)) / div, zero)
            work[dz + 3, s] = zero


@njit(**HELPER)
def _softmax_cn(work, z, n_classes, nb, nw, dz, sc, training, n_div):
    """``_softmax_c3`` for any number of classes, a few vector passes per class."""
    prefer_vector_width()
    t = work.dtype.type
    zero = t(0)
    one = t(1)
    lo, hi = t(1e-7), t(1 - 1e-7)
    div = t(n_div)
    lab = sc + _LABEL
    mx = sc + _MAX
    sm = sc + _SUM
    py = sc + _LOSS
    best = sc + _BEST
    arg = sc + _ARG
    for s in range(nw):
        work[mx, s] = work[z, s]
        work[sm, s] = zero
    for c in range(1, n_classes):
        for s in range(nw):
            work[mx, s] = max2(work[mx, s], work[z + c, s])
    for c in range(n_classes):
        for s in range(nw):
            e = exp_(work[z + c, s] - work[mx, s])
            work[z + c, s] = e
            work[sm, s] += e
    for c in range(n_classes):
        for s in range(nw):
            work[z + c, s] = work[z + c, s] / work[sm, s]
    for s in range(nw):
        p0 = work[z, s]
        work[py, s] = p0
        work[best, s] = p0
        work[arg, s] = zero
    for c in range(1, n_classes):
        fc = t(c)
        for s in range(nw):
            pc = work[z + c, s]
            work[py, s] = select(work[lab, s] == fc, pc, work[py, s])
            better = pc > work[best, s]
            work[best, s] = select(better, pc, work[best, s])
            work[arg, s] = select(better, fc, work[arg, s])
    for s in range(nw):
        p = work[py, s]
        p = lo if p < lo else p  # as np.clip: a NaN stays NaN (and stops the run)
        p = hi if p > hi else p
        work[py, s] = -log_(p)
        work[best, s] = select(work[arg, s] == work[lab, s], one, zero)
    if training:
        for c in range(n_classes):
            fc = t(c)
            for s in range(nw):
                hot = select(work[lab, s] == fc, one, zero)
                work[dz + c, s] = select(s < nb, (work[z + c, s] - hot) / div, zero)
        for c in range(n_classes, _round4(n_classes)):
            for s in range(nw):
                work[dz + c, s] = zero


# -- leaves: backward pieces ----------------------------------------------------------


@njit(**HELPER)
def _back4x4(work, r, rc, ra, n, params, off, d_in, d_out, i, j, first, last, scale):
    """Rows r..r+3 (units i..i+3 of the layer below) += W[i.., j..j+3] @ rows rc..rc+3
    (the gradient of units j..j+3 above); on the ``last`` group, multiplied by the ReLU
    and dropout factor: ``scale`` where the unit's activation (rows ra..) is > 0, else 0.
    """
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
    zero = work.dtype.type(0)
    for s in range(n):
        c0, c1, c2, c3 = work[rc, s], work[rc + 1, s], work[rc + 2, s], work[rc + 3, s]
        o0 = zero if first else work[r, s]
        o1 = zero if first else work[r + 1, s]
        o2 = zero if first else work[r + 2, s]
        o3 = zero if first else work[r + 3, s]
        o0 += w00 * c0 + w01 * c1 + w02 * c2 + w03 * c3
        o1 += w10 * c0 + w11 * c1 + w12 * c2 + w13 * c3
        o2 += w20 * c0 + w21 * c1 + w22 * c2 + w23 * c3
        o3 += w30 * c0 + w31 * c1 + w32 * c2 + w33 * c3
        if last:
            o0 = o0 * select(work[ra, s] > zero, scale, zero)
            o1 = o1 * select(work[ra + 1, s] > zero, scale, zero)
            o2 = o2 * select(work[ra + 2, s] > zero, scale, zero)
            o3 = o3 * select(work[ra + 3, s] > zero, scale, zero)
        work[r, s] = o0
        work[r + 1, s] = o1
        work[r + 2, s] = o2
        work[r + 3, s] = o3


@njit(**REDUCE)
def _pair_back2(work, xr, dz, n, params, d, hid, c, j):
    """The gradient sums of hidden units j, j+1 of a d-H-C network (d <= 2, C <= 3) in
    one pass over the block: h recomputed from the inputs, then W2 (h * dz), and through
    dh = (W2 dz) * relu', W1 (x * dh) and b1 (dh).  Twelve accumulators: 24 (four
    units) spill out of AVX2's 16 registers (measured)."""
    prefer_vector_width()
    k0, k1, k2, _ = _INDICES
    b1 = d * hid
    w2 = b1 + hid
    q00, q01 = _w(params, k0, d, hid, k0, j), _w(params, k0, d, hid, k0, j + 1)
    q10, q11 = _w(params, k0, d, hid, k1, j), _w(params, k0, d, hid, k1, j + 1)
    e0, e1 = _b(params, b1, hid, j), _b(params, b1, hid, j + 1)
    v00, v01 = _w(params, w2, hid, c, j, k0), _w(params, w2, hid, c, j, k1)
    v02 = _w(params, w2, hid, c, j, k2)
    v10, v11 = _w(params, w2, hid, c, j + 1, k0), _w(params, w2, hid, c, j + 1, k1)
    v12 = _w(params, w2, hid, c, j + 1, k2)
    zero = work.dtype.type(0)
    a00 = a01 = a02 = a10 = a11 = a12 = zero
    u00 = u01 = u10 = u11 = c0 = c1 = zero
    for s in range(n):
        x0, x1 = work[xr, s], work[xr + 1, s]
        h0 = e0 + q00 * x0 + q10 * x1
        h1 = e1 + q01 * x0 + q11 * x1
        h0 = h0 if h0 > zero else zero
        h1 = h1 if h1 > zero else zero
        z0, z1, z2 = work[dz, s], work[dz + 1, s], work[dz + 2, s]
        a00 += h0 * z0
        a01 += h0 * z1
        a02 += h0 * z2
        a10 += h1 * z0
        a11 += h1 * z1
        a12 += h1 * z2
        dh0 = select(h0 > zero, v00 * z0 + v01 * z1 + v02 * z2, zero)
        dh1 = select(h1 > zero, v10 * z0 + v11 * z1 + v12 * z2, zero)
        u00 += x0 * dh0
        u10 += x1 * dh0
        u01 += x0 * dh1
        u11 += x1 * dh1
        c0 += dh0
        c1 += dh1
    return a00, a01, a02, a10, a11, a12, u00, u10, u01, u11, c0, c1


# -- leaves: the step and the epoch ---------------------------------------------------


@njit(**HELPER)
def _reduce_slots(gslots, lslots, n_slots, n_blocks):
    """Add the first ``n_slots`` gradient slots into slot 0, in block order, and return
    the blocks' summed loss and number correct."""
    grad = gslots[0]
    for blk in range(1, n_slots):
        other = gslots[blk]
        for q in range(grad.shape[0]):
            grad[q] += other[q]
    loss_sum = 0.0
    correct = 0.0
    for blk in range(n_blocks):
        loss_sum += lslots[blk, 0]
        correct += lslots[blk, 1]
    return loss_sum, correct


@njit(**HELPER)
def _copy(src, dst):
    """dst[:] = src (a loop: under parallel=True a slice assignment becomes a parallel
    region of its own)."""
    for q in range(src.shape[0]):
        dst[q] = src[q]


@njit(**HELPER)
def _all_finite(w):
    bad = np.int32(0)
    for q in range(w.shape[0]):
        v = w[q]
        bad |= np.int32((v - v) != 0)
    return bad == 0


@njit(**HELPER)
def _regularize(g, w, sizes, layer_off, reg, add):
    """The regularisation loss of the parameters ``w`` (float64), and, when ``add``, the
    book's gradient terms added to ``g``, layer by layer (``reg[l]``: weight L1, weight
    L2, bias L1, bias L2), as ``kernels/optim.py``'s ``regularization_loss`` and
    ``add_regularization`` do for one array (written out here over offsets: views and
    nested calls cost compile time)."""
    prefer_vector_width()
    t = g.dtype.type
    total = 0.0
    for layer in range(sizes.shape[0] - 1):
        off = layer_off[layer]
        b_off = off + sizes[layer] * sizes[layer + 1]
        for lo, hi, l1, l2 in ((off, b_off, reg[layer, 0], reg[layer, 1]),
                               (b_off, b_off + sizes[layer + 1], reg[layer, 2], reg[layer, 3])):
            if l1 > 0.0:
                s = 0.0
                for q in range(lo, hi):
                    s += abs(np.float64(w[q]))
                total += l1 * s
                if add:
                    pos, neg = t(l1), t(-l1)
                    for q in range(lo, hi):
                        g[q] += neg if w[q] < 0 else pos
            if l2 > 0.0:
                s = 0.0
                for q in range(lo, hi):
                    s += np.float64(w[q]) * np.float64(w[q])
                total += l2 * s
                if add:
                    two_l2 = t(2.0 * l2)
                    for q in range(lo, hi):
                        g[q] += two_l2 * w[q]
    return total


@njit(**HELPER)
def _shuffle(perm, seed, epoch):
    """perm = a permutation of 0..n-1 that depends only on (seed, epoch): Fisher-Yates
    driven by the counter-based hash, from the identity each epoch."""
    n = perm.shape[0]
    for i in range(n):
        perm[i] = i
    key = stream_key(seed, np.uint64(1), epoch, _SHUFFLE_TAG)
    for i in range(n - 1, 0, -1):
        # Lemire's multiply-shift: the top 32 bits of a hash scaled to 0..i
        h = stream_key(key, np.uint64(0), i, np.uint64(0)) >> np.uint64(32)
        j = np.int64((h * np.uint64(i + 1)) >> np.uint64(32))
        perm[i], perm[j] = perm[j], perm[i]


@njit(**HELPER)
def _close_epoch(params, good, best, full_batch, reg_after, val_total, val_n, val_correct,
                 config, hyper, istate, fstate, epoch_rec, lr):
    """Record the finished epoch (its mean loss and accuracy, the regularisation loss
    before its last update and after it, the learning rate, validation loss and number
    correct), apply the stop rules on the monitored loss, start the next epoch.

    The monitored loss and the parameters it belongs to (``best`` keeps them, for
    ``patience``): with validation data, the validation loss of the parameters after
    the epoch; else, for a full batch, the training loss of the step (data and
    regularisation, before its update: the parameters in ``good``); for mini-batches,
    the epoch's mean data loss with the regularisation after the epoch, and the
    parameters after it (what there is to keep)."""
    epoch = istate[EPOCH]
    count = istate[COUNT]
    loss = fstate[LOSS_SUM] / count
    monitored = loss + reg_after
    source = params
    val_loss = np.nan
    if config[C_HAS_VAL] != 0:
        val_loss = val_total / val_n
        monitored = val_loss
    elif full_batch:
        monitored = loss + fstate[REG_SUM]
        source = good
    r = istate[N_EPOCH_REC]
    epoch_rec[r, 0] = epoch
    epoch_rec[r, 1] = loss
    epoch_rec[r, 2] = fstate[REG_SUM]
    epoch_rec[r, 3] = reg_after
    epoch_rec[r, 4] = istate[CORRECT]
    epoch_rec[r, 5] = count
    epoch_rec[r, 6] = lr
    epoch_rec[r, 7] = val_loss
    epoch_rec[r, 8] = val_correct
    istate[N_EPOCH_REC] = r + 1
    if not np.isfinite(monitored):
        istate[STATUS] = DIVERGED
    elif monitored < fstate[BEST_LOSS]:
        fstate[BEST_LOSS] = monitored
        istate[BEST_EPOCH] = epoch
        if config[C_PATIENCE] > 0:
            _copy(source, best)
    if istate[STATUS] == RUNNING:
        if monitored <= hyper[H_TARGET]:
            istate[STATUS] = TARGET_REACHED
        elif config[C_PATIENCE] > 0 and epoch - istate[BEST_EPOCH] >= config[C_PATIENCE]:
            istate[STATUS] = PATIENCE_EXHAUSTED
    istate[EPOCH] = epoch + 1
    istate[STEP] = 0
    istate[CORRECT] = 0
    istate[COUNT] = 0
    fstate[LOSS_SUM] = 0.0


# -- one block: forward, softmax and loss, backward, one function per family ------------
# ``_block_<family>(x, labels, perm, start, nb, pos0, n_div, params, sizes, layout,
# layer_off, work, keep, keys, given, goff, training, load, g)`` pushes the ``nb``
# samples x[perm[start:start+nb]] (``perm``: the epoch's shuffle, or the identity) through
# the network (``load=False``: they are still in ``work`` from the last call, whose rows
# for inputs and labels no pass overwrites) and returns (sum of their clipped
# cross-entropy losses in float64, number correct).  With ``training`` it applies dropout
# (``pos0``: the block's first position in the batch) and writes the gradient of the
# losses' sum / ``n_div`` into ``g``, every entry in the parameters' layout (the slot
# needs no zeroing).


def _block_pair23(x, labels, perm, start, nb, pos0, n_div, params, sizes, layout, layer_off,
                  work, keep, keys, given, goff, training, load, g):
    """d-H-C networks with d <= 2 and C <= 3 (nnfs's data sets), no dropout.  Forward:
    the fused loss's sweep (``kernels/network.py``), each four hidden units computed in
    registers and added straight into the logit rows; the hidden layer never goes to
    memory.  Backward: one fused pass per two hidden units (``_pair_back2``) that
    recomputes them.  (Storing the hidden rows in the forward sweep made it too many
    streams for LLVM's alias checks: not vectorised, 4x slower, measured.)"""
    prefer_vector_width()
    d, hid, c = sizes[0], sizes[1], sizes[2]
    z, dz, sc = layout[2], layout[3], layout[5]
    nw = _load(x, labels, perm, start, nb, work, sc + _LABEL) if load else _round32(nb)
    for j in range(0, hid, 4):
        _pair_sweep23(work, z, nw, params, d, hid, c, j, j == 0)
    _softmax_c3(work, z, c, nb, nw, dz, sc, training, n_div)
    total = _row_sum(work, sc + _LOSS, nb)
    correct = _row_sum(work, sc + _BEST, nb)
    if training:
        b1 = d * hid
        w2 = b1 + hid
        b2 = w2 + hid * c
        for k in range(c):
            g[b2 + k] = _row_sum_t(work, dz + k, nw)
        for j in range(0, hid, 2):
            sums = _pair_back2(work, layout[0], dz, nw, params, d, hid, c, j)
            for u in range(2):
                if j + u < hid:
                    for k in range(c):
                        g[w2 + (j + u) * c + k] = sums[3 * u + k]
                    for i in range(d):
                        g[i * hid + j + u] = sums[6 + 2 * u + i]
                    g[b1 + j + u] = sums[10 + u]
    return total, correct


def _block_deep(x, labels, perm, start, nb, pos0, n_div, params, sizes, layout, layer_off,
                work, keep, keys, given, goff, training, load, g):
    """Any depth and width, layer by layer.  Forward: ``kernels/network.py``'s sweeps
    (four outputs by four or two inputs, bias and ReLU folded in), each layer's
    activations kept, dropout after the ReLU of hidden layers.  Backward per layer: W's
    sums (``_dot4x4``), b's, then dz of the layer below through W, ReLU and dropout
    (``_back4x4``), in the two ping-pong gradient buffers.  ``softmax_fn`` is
    ``_softmax_c3`` or ``_softmax_cn`` (a build per class count family)."""
    prefer_vector_width()
    t = work.dtype.type
    zero = t(0)
    neg_inf = t(-np.inf)
    n_layers = sizes.shape[0] - 1
    sc = layout[n_layers + 3]
    nw = _load(x, labels, perm, start, nb, work, sc + _LABEL) if load else _round32(nb)
    for layer in range(n_layers):
        d_in = sizes[layer]
        d_out = sizes[layer + 1]
        in_row = layout[layer]
        out_row = layout[layer + 1]
        off = layer_off[layer]
        b_off = off + d_in * d_out
        relu = layer < n_layers - 1
        for j in range(0, d_out, 4):
            i = 0
            while i < d_in:
                floor = zero if relu and d_in - i <= 4 else neg_inf
                if d_in - i > 2:
                    _sweep4x4(work, out_row + j, in_row + i, nw, params, off, b_off, d_in,
                              d_out, i, j, i == 0, floor)
                    i += 4
                else:
                    _sweep4x2(work, out_row + j, in_row + i, nw, params, off, b_off, d_in,
                              d_out, i, j, i == 0, floor)
                    i += 2
        if relu and training and keep[layer] < 1.0:
            _dropout(work, out_row, d_out, nb, nw, pos0, keep[layer], keys[layer], given,
                     goff[layer])
    z = layout[n_layers]
    cur = layout[n_layers + 1]
    nxt = layout[n_layers + 2]
    softmax_fn(work, z, sizes[n_layers], nb, nw, cur, sc, training, n_div)
    total = _row_sum(work, sc + _LOSS, nb)
    correct = _row_sum(work, sc + _BEST, nb)
    if not training:
        return total, correct
    for layer in range(n_layers - 1, -1, -1):
        d_in = sizes[layer]
        d_out = sizes[layer + 1]
        a_row = layout[layer]
        off = layer_off[layer]
        b_off = off + d_in * d_out
        for i in range(0, d_in, 4):
            for j in range(0, d_out, 4):
                _store_grad(g, off, d_in, d_out, i, j, _dot4x4(work, a_row + i, cur + j, nw))
        for j in range(d_out):
            g[b_off + j] = _row_sum_t(work, cur + j, nw)
        if layer > 0:
            scale = t(1.0 / keep[layer - 1])
            last_j = (d_out - 1) // 4 * 4
            for i in range(0, d_in, 4):
                for j in range(0, d_out, 4):
                    _back4x4(work, nxt + i, cur + j, a_row + i, nw, params, off, d_in,
                             d_out, i, j, j == 0, j == last_j, scale)
            for i in range(d_in, _round4(d_in)):  # padding rows: zero for the next layer
                for s in range(nw):
                    work[nxt + i, s] = zero
            cur, nxt = nxt, cur
    return total, correct


# -- the chunk: steps and epochs -----------------------------------------------------


def _train(block_fn, x, labels, xv, lv, sizes, layout, layer_off, params, m, v, good,
           good_m, good_v, best, gslots, lslots, work, perm, vperm, keys, given, goff, config,
           hyper, reg, keep, seed, istate, fstate, step_rec, epoch_rec):
    """Run steps from (istate[EPOCH], istate[STEP]) until ``config[C_MAX_STEPS]`` steps
    are done, the run ends (all epochs, a stop rule, divergence) or a record buffer is
    full.  Each step: the batch's blocks in ``prange`` (each into its own gradient
    slot), the slots added in order, regularisation, the optimizer update; after an
    epoch's last step, the validation pass and ``_close_epoch``.  ``block_fn`` is the
    family's block kernel, a function pointer (``block_kernel``): its code is not
    compiled into this one, so one build of the loop serves every family.  ``perm`` is the
    epoch's shuffle (redrawn each epoch when ``config[C_SHUFFLE]``) or the identity,
    ``vperm`` the identity over the validation samples.

    Divergence: a step whose loss is not finite, or whose update leaves a parameter that
    is not, stops the run with the parameters of the last step that had a finite loss
    and the optimizer's state and iteration count from before its update (``good``,
    ``good_m``, ``good_v``: training can go on from there, with a smaller rate)."""
    prefer_vector_width()
    n = x.shape[0]
    n_layers = sizes.shape[0] - 1
    block = work.shape[2]
    epochs = config[C_EPOCHS]
    bs = config[C_BATCH]
    shuffled = config[C_SHUFFLE] != 0
    parallel = config[C_PARALLEL] != 0
    book = config[C_BOOK] != 0  # the book family: serial, its blocks add into slot 0
    n_batches = (n + bs - 1) // bs
    yes = n > 0  # flags as run-time bools: a literal True would compile another build
    no = not yes
    dropout = False
    for layer in range(n_layers):
        dropout |= keep[layer] < 1.0
    # one unshuffled block per step (full batch): the samples stay in work[0] from step
    # to step (until a validation pass overwrites them); 10% of a 300-sample step
    same_block = not shuffled and n_batches == 1 and n <= block and not parallel
    loaded = False
    done = 0
    while (done < config[C_MAX_STEPS] and istate[STATUS] == RUNNING
           and istate[EPOCH] < epochs and istate[N_EPOCH_REC] < epoch_rec.shape[0]
           and istate[N_STEP_REC] < step_rec.shape[0]):
        epoch = istate[EPOCH]
        step = istate[STEP]
        it = istate[ITER]
        if step == 0 and shuffled:
            _shuffle(perm, seed, epoch)
        b0 = step * bs
        bn = min2(bs, n - b0)
        if dropout:
            for layer in range(n_layers):
                keys[layer] = stream_key(seed, layer, it, _DROPOUT_TAG)
        gl = goff[done] if config[C_GIVEN_MASKS] != 0 else goff[0]
        # blocks of equal size (within one sample), not full ones and a short last one:
        # they share the threads evenly (1.67x -> 1.8x on 2 threads at 30,000 samples);
        # their bounds depend on the batch and the block size only, never on threads
        n_blocks = (bn + block - 1) // block
        n_div = np.float64(bn)
        for blk in prange(n_blocks):
            tid = thread_id() if parallel else 0
            pos0 = np.int64(blk) * bn // n_blocks  # prange's index is unsigned
            nb = (np.int64(blk) + 1) * bn // n_blocks - pos0
            total, correct = block_fn(x, labels, perm, b0 + pos0, nb, pos0, n_div, params,
                                      sizes, layout, layer_off, work[tid], keep, keys, given,
                                      gl, yes, not (same_block and loaded),
                                      gslots[np.int64(0) if book else np.int64(blk)])
            lslots[blk, 0] = total
            lslots[blk, 1] = correct
        loaded = same_block
        loss_sum, correct = _reduce_slots(gslots, lslots, 1 if book else n_blocks, n_blocks)
        if not np.isfinite(loss_sum):  # the state before the last update was good
            if istate[HAS_GOOD] != 0:
                _copy(good, params)
                _copy(good_m, m)
                _copy(good_v, v)
                istate[ITER] = it - 1
            istate[STATUS] = DIVERGED
            break
        grad = gslots[0]
        reg_loss = _regularize(grad, params, sizes, layer_off, reg, not book)
        if book:
            gradient_step(grad, params, sizes, layer_off, reg, gl)
        lr = decayed_rate(hyper[H_LR], hyper[H_DECAY], it)
        _copy(params, good)
        _copy(m, good_m)
        _copy(v, good_v)
        istate[HAS_GOOD] = 1
        if book:
            update_step(config[C_KIND], params, grad, m, v, lr, hyper[H_1], hyper[H_2],
                        hyper[H_EPS], it, sizes, layer_off, gl)
        else:
            update(config[C_KIND], params, grad, m, v, lr, hyper[H_1], hyper[H_2],
                   hyper[H_EPS], it)
        if not (_all_finite(params) and _all_finite(m) and _all_finite(v)):
            _copy(good, params)
            _copy(good_m, m)
            _copy(good_v, v)
            istate[STATUS] = DIVERGED
            break
        istate[ITER] = it + 1
        if config[C_RECORD_STEPS] != 0:
            r = istate[N_STEP_REC]
            step_rec[r, 0] = epoch
            step_rec[r, 1] = step
            step_rec[r, 2] = loss_sum / bn
            step_rec[r, 3] = reg_loss
            step_rec[r, 4] = correct
            step_rec[r, 5] = bn
            step_rec[r, 6] = lr
            istate[N_STEP_REC] = r + 1
        fstate[LOSS_SUM] += loss_sum
        fstate[REG_SUM] = reg_loss
        istate[CORRECT] += np.int64(correct)
        istate[COUNT] += bn
        done += 1
        istate[STEP] = step + 1
        if step + 1 < n_batches:
            continue
        val_total = 0.0
        val_correct = 0.0
        if config[C_HAS_VAL] != 0:  # dropout off, blocks one after another
            for s0 in range(0, xv.shape[0], block):
                vt, vc = block_fn(xv, lv, vperm, s0, min2(block, xv.shape[0] - s0), s0, 1.0,
                                  params, sizes, layout, layer_off, work[0], keep, keys,
                                  given, goff[0], no, yes, gslots[0])
                loaded = False
                val_total += vt
                val_correct += vc
        reg_after = _regularize(grad, params, sizes, layer_off, reg, no)
        _close_epoch(params, good, best, n_batches == 1, reg_after, val_total, xv.shape[0],
                     val_correct, config, hyper, istate, fstate, epoch_rec, lr)


#: placeholders, replaced in each build (``_config.specialise``)
softmax_fn = None
thread_id = None
gradient_step = None
update_step = None


@njit(**HELPER)
def _no_gradient_step(g, w, sizes, layer_off, reg, goff):
    """``gradient_step`` of the builds that do not run the book's arithmetic: never
    called (their config says so), and nothing to compile (``train_book.update_step``
    cost a first ``fastnn.train`` 1.3 s)."""


@njit(**HELPER)
def _no_update_step(kind, w, g, m, v, lr, h1, h2, eps, iterations, sizes, layer_off, goff):
    """``update_step`` of the builds that do not run the book's arithmetic (as above)."""


@njit(**HELPER)
def _no_thread_id():
    """The serial build's ``thread_id``: a cached function that calls
    ``numba.get_thread_id`` crashes when loaded from the disk cache before Numba's
    threads are started (numba 0.68; ``tests/test_train.py`` runs it in a fresh process),
    and the serial build must not depend on the threading layer at all."""
    return 0


def train_family(sizes, dropout):
    """The family of a network with these layer sizes (plain Python): ``pair23``, or
    ``deep_c3``/``deep_cn`` (up to 3 classes, or more).  ``dropout``: whether any hidden
    layer has dropout (``pair23`` has none)."""
    if len(sizes) == 3 and sizes[0] <= 2 and sizes[2] <= 3 and not dropout:
        return "pair23"
    return "deep_c3" if sizes[-1] <= 3 else "deep_cn"


#: every family, with a network of it (``fastnn.warmup``, the tests)
EXAMPLES = {"pair23": ((2, 6, 3), False), "deep_c3": ((2, 5, 4, 3), True),
            "deep_cn": ((3, 5, 4), False)}


@functools.cache
def _signatures(dtype):
    """(block, train) signatures for parameters and data of ``dtype``: exactly the types
    ``fastnn/train.py`` passes (C-contiguous, writable, aligned arrays)."""
    f = numba.from_dtype(np.dtype(dtype))

    def arr(t, ndim):
        return types.Array(t, ndim, "C")

    i64, f64 = types.int64, types.float64
    block = types.UniTuple(f64, 2)(
        arr(f, 2), arr(i64, 1), arr(i64, 1), i64, i64, i64, f64, arr(f, 1), arr(i64, 1),
        arr(i64, 1), arr(i64, 1), arr(f, 2), arr(f64, 1), arr(types.uint64, 1),
        arr(types.uint8, 1), arr(i64, 1), types.boolean, types.boolean, arr(f, 1))
    train = types.none(
        types.FunctionType(block), arr(f, 2), arr(i64, 1), arr(f, 2), arr(i64, 1),
        arr(i64, 1), arr(i64, 1), arr(i64, 1), arr(f, 1), arr(f, 1), arr(f, 1), arr(f, 1),
        arr(f, 1), arr(f, 1), arr(f, 1), arr(f, 2), arr(f64, 2), arr(f, 3), arr(i64, 1),
        arr(i64, 1), arr(types.uint64, 1), arr(types.uint8, 1), arr(i64, 2), arr(i64, 1),
        arr(f64, 1), arr(f64, 2), arr(f64, 1), types.uint64, arr(i64, 1), arr(f64, 1),
        arr(f64, 2), arr(f64, 2))
    return block, train


_exp_matches_numpy = functools.cache(exp_matches_numpy)


def block_kernel(family, dtype):
    """The block kernel of a family for parameters of ``dtype``, compiled (or loaded)
    on first use."""
    name = np.dtype(dtype).name
    dtype = np.dtype(dtype)
    if family == "pair23":
        fn, callees = _block_pair23, {}
    elif family == "book":  # NumPy's float32 exp where this machine's NumPy has it
        exp = "npexp" if _exp_matches_numpy() else "libm"
        return compiled(block_book, f"book_{exp}_{name}",
                        dict(softmax_loss=SOFTMAX_LOSS[exp]),
                        _signatures(dtype)[0], fastmath=False)
    else:
        fn = _block_deep
        callees = dict(softmax_fn=_softmax_c3 if family == "deep_c3" else _softmax_cn)
    return compiled(fn, f"{family}_{name}", callees, _signatures(dtype)[0])


def train_kernel(dtype, parallel, book=False):
    """The chunk loop for parameters of ``dtype``: serial (a batch's blocks one after
    another; also the twin used off the main thread) or parallel (in ``prange``).  Both
    give the same bits; each is compiled (or loaded) on first use.  ``book``: the serial
    build that finishes each step with the book's arithmetic (``train_book.py``; the
    ``book`` family's, float64)."""
    name = np.dtype(dtype).name
    dtype = np.dtype(dtype)
    steps = dict(gradient_step=_no_gradient_step, update_step=_no_update_step)
    if parallel:
        return compiled(_train, f"{name}_parallel",
                        dict(thread_id=numba.get_thread_id, **steps),
                        _signatures(dtype)[1], parallel=True)
    if book:
        name += "_book"
        steps = dict(gradient_step=_book_gradient_step, update_step=_book_update_step)
    return compiled(_train, name, dict(thread_id=_no_thread_id, **steps),
                    _signatures(dtype)[1])
