"""The book's arithmetic under ``nnfs.init()``, for ``Model.train`` (``kernels/train.py``
runs it as the ``book`` family, on float64 arrays holding what the book holds).

Under ``nnfs.init()`` the book's numbers are not plain float32.  nnfs wraps ``np.dot``
to compute in float64 and round the product to float32; a dropout mask is float64
(``binomial(...) / keep``), so the dropout output is a float64 array, and so are the
gradient it sends down and the bias gradient ``np.sum(dvalues, axis=0)`` of the dense
layer below, whose Adam state (``bias_momentums``, ``bias_cache``) then turns float64
too.  Everything else -- biases added, ReLU, softmax, the loss gradient, the weight
gradients and all optimizer state of weights -- stays float32.  Which of the two a
value is matters: at chapter 18's learning rate, rounding the dropout output to float32
or keeping the bias state in float32 changed the printed accuracy from epoch 11 on (a
one-off last-bit change of the initial weights, or of every step's weight gradient, did
not within 30 epochs; nor did another order of the float64 sums).

So this family computes in float64 and rounds to float32 exactly where the book's
arrays are float32 (``_r32``; a float32 operation is the float64 one rounded, for
+, -, *, / and sqrt): products as nnfs's ``np.dot`` (float64 sums, any order, then
rounded), biases added in float32, the dropout output and the gradient through it left
in float64, bias gradients summed sample by sample as NumPy's axis-0 sum does (float32
or float64 as the book's array is).  ``gradient_step`` and ``update_step`` finish the
step as the book's ``Layer_Dense.backward`` (regularisation) and optimizer do, on the
float32 and float64 parts.  The softmax's float32 ``exp`` is NumPy's own where NumPy
has one: on CPUs with AVX2 and FMA3 (or AVX-512) NumPy computes it with its SIMD code,
not libm's, within a few ulp of the true value and not always libm's bits -- enough
for chapter 18's printed accuracy to differ from epoch 19 on.  ``numpy_expf`` is that
code written out per element (``exp_matches_numpy`` checks it against ``np.exp`` on
the machine, and the ``book`` family takes libm's ``exp`` where it does not match).

A layer is *wide* (its bias gradient and state float64) when its output goes through a
dropout layer: ``goff[layer] >= 0`` (the run draws that layer's masks).
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import HELPER, kernel
from .optim import ADAGRAD, update
from .target import prefer_vector_width

#: no FMA contraction, no reassociation: the float32 steps must round where the book's do
EXACT = dict(HELPER, fastmath=False)
#: float64 sums whose order does not matter (they are rounded to float32 after)
SUMS = dict(HELPER, fastmath={"contract", "nsz", "reassoc"})

#: the row of the block's labels, in the scratch rows (``layout[L + 3]``)
_LABEL = 0
#: the softmax and loss of a build: a ``SOFTMAX_LOSS`` entry (replaced in each build)
softmax_loss = None


@intrinsic
def _fma32(typingctx, a, b, c):
    """a * b + c in float32, rounded once (``llvm.fma.f32``)."""
    f32 = types.float32
    if not (a == f32 and b == f32 and c == f32):
        return None

    def codegen(context, builder, sig, args):
        ft = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ft, [ft] * 3),
                                            "llvm.fma.f32")
        return builder.call(fn, args)

    return f32(f32, f32, f32), codegen


# NumPy's float32 exp constants (numpy/_core/include/numpy/npy_math.h)
_EXP_XMAX = np.float32(88.72283935546875)
_EXP_XMIN = np.float32(-103.97208404541015625)
_LOG2E = np.float32(1.442695040888963407359924681001892137)
_RINT_MAGIC = np.float32(1.5 * 2.0 ** 23)
_LN2_HIGH = np.float32(-6.93145752e-1)
_LN2_LOW = np.float32(-1.42860677e-6)
_P0, _P1, _P2, _P3, _P4, _P5 = (np.float32(c) for c in (
    9.999999999980870924916e-01, 7.257664613233124478488e-01, 2.473615434895520810817e-01,
    5.114512081637298353406e-02, 6.757896990527504603057e-03, 5.082762527590693718096e-04))
_Q0, _Q1, _Q2 = (np.float32(c) for c in (
    1.0, -2.742335390411667452936e-01, 2.159509375685829852307e-02))


@njit(**EXACT)
def numpy_expf(x):
    """``np.exp`` of a float32 as NumPy's AVX2/AVX-512 code computes it: k = rint(x *
    log2(e)), Cody-Waite reduction r = x - k ln 2 in two fused steps, exp(r) as a ratio
    of a degree-5 and a degree-2 polynomial (fused multiply-adds), times 2^k."""
    if x != x:
        return x
    if x >= _EXP_XMAX:
        return np.float32(np.inf)
    if x <= _EXP_XMIN:
        return np.float32(0)
    k = (x * _LOG2E + _RINT_MAGIC) - _RINT_MAGIC
    r = _fma32(k, _LN2_HIGH, x)
    r = _fma32(k, _LN2_LOW, r)
    num = _fma32(_P5, r, _P4)
    num = _fma32(num, r, _P3)
    num = _fma32(num, r, _P2)
    num = _fma32(num, r, _P1)
    num = _fma32(num, r, _P0)
    den = _fma32(_Q2, r, _Q1)
    den = _fma32(den, r, _Q0)
    # times 2^k, rounded once (NumPy adds k to the exponent, or for a subnormal result
    # scales by 2^-125 and divides: the same single rounding)
    return np.float32(np.float64(num / den) * 2.0 ** np.float64(k))


@njit(**EXACT)
def libm_expf(x):
    """``exp`` of a float32 by libm (NumPy's own on CPUs without AVX2 and FMA3)."""
    return np.exp(x)


@kernel
def _exp_probe(x, out):
    for i in range(x.shape[0]):
        out[i] = numpy_expf(x[i])


def exp_matches_numpy():
    """Whether ``numpy_expf`` gives ``np.exp``'s bits on this machine, over float32
    values a softmax sees (and beyond).  Plain Python."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-110, 90, 20001), rng.uniform(-20, 0, 20000),
                        [0.0, -0.0, 88.72, 88.73, -103.97, -103.98, np.inf, -np.inf]]
                       ).astype(np.float32)
    out = np.empty_like(x)
    _exp_probe(x, out)
    with np.errstate(over="ignore", under="ignore"):
        return bool(np.array_equal(out.view(np.uint32), np.exp(x).view(np.uint32)))


@njit(**EXACT)
def _r32(v):
    """``v`` rounded to float32, as a float64."""
    return np.float64(np.float32(v))


@njit(**SUMS)
def _dot(work, ra, rb, n):
    """sum over s < n of work[ra, s] * work[rb, s], in float64."""
    prefer_vector_width()
    total = 0.0
    for s in range(n):
        total += work[ra, s] * work[rb, s]
    return total


@njit(**SUMS)
def _axpy(work, out, ra, w, n):
    """work[out, :n] += work[ra, :n] * w."""
    prefer_vector_width()
    for s in range(n):
        work[out, s] += work[ra, s] * w


@njit(**EXACT)
def _bias_sums(g, b_off, work, row, d_out, nb, wide):
    """g[b_off + j] += the samples' gradients of unit j, one sample after another (NumPy's
    axis-0 sum), in float64 (``wide``) or float32.  Four units at a time: four chains
    of additions in flight (one chain waits on each addition: 4x slower)."""
    for j0 in range(0, d_out, 4):
        # past the layer's end: a repeat of its last unit, not stored
        u1, u2, u3 = min(j0 + 1, d_out - 1), min(j0 + 2, d_out - 1), min(j0 + 3, d_out - 1)
        r0, r1, r2, r3 = row + j0, row + u1, row + u2, row + u3
        q0, q1, q2, q3 = b_off + j0, b_off + u1, b_off + u2, b_off + u3
        if wide:
            a0, a1, a2, a3 = g[q0], g[q1], g[q2], g[q3]
            for s in range(nb):
                a0 += work[r0, s]
                a1 += work[r1, s]
                a2 += work[r2, s]
                a3 += work[r3, s]
            sums = (a0, a1, a2, a3)
        else:
            f0, f1, f2, f3 = (np.float32(g[q0]), np.float32(g[q1]), np.float32(g[q2]),
                              np.float32(g[q3]))
            for s in range(nb):
                f0 += np.float32(work[r0, s])
                f1 += np.float32(work[r1, s])
                f2 += np.float32(work[r2, s])
                f3 += np.float32(work[r3, s])
            sums = (np.float64(f0), np.float64(f1), np.float64(f2), np.float64(f3))
        for u in range(min(4, d_out - j0)):
            g[b_off + j0 + u] = sums[u]


def _softmax_loss_with(exp32):
    """``_softmax_loss`` with this float32 ``exp``."""

    @njit(**EXACT)
    def softmax_loss(work, z, c, lab, nb, dz, training, n_div):
        """Softmax of the logit rows (float32, as the book's), its clipped cross-entropy and
        argmax per sample; with ``training`` the combined gradient ``(p - onehot) / n`` in
        float32 into rows dz...  Returns (sum of losses, number correct)."""
        lo, hi = np.float32(1e-7), np.float32(1 - 1e-7)
        n32 = np.float32(n_div)
        total = 0.0
        correct = 0.0
        for s in range(nb):
            mx = np.float32(work[z, s])
            for k in range(1, c):
                v = np.float32(work[z + k, s])
                if v > mx:
                    mx = v
            ssum = np.float32(0)
            for k in range(c):
                e = exp32(np.float32(work[z + k, s]) - mx)
                work[z + k, s] = e
                ssum += e
            y = np.int64(work[lab, s])
            best = 0
            top = np.float32(-1)
            for k in range(c):
                p = np.float32(work[z + k, s]) / ssum
                work[z + k, s] = p
                if p > top:
                    top = p
                    best = k
            py = np.float32(work[z + y, s])
            py = lo if py < lo else (hi if py > hi else py)
            total -= np.log(np.float64(py))
            if best == y:
                correct += 1.0
            if training:
                for k in range(c):
                    p = np.float32(work[z + k, s])
                    if k == y:
                        p = p - np.float32(1)
                    work[dz + k, s] = p / n32
        return total, correct

    return softmax_loss


#: the softmax and loss with NumPy's float32 exp, and with libm's
SOFTMAX_LOSS = {"npexp": _softmax_loss_with(numpy_expf), "libm": _softmax_loss_with(libm_expf)}


def block_book(x, labels, perm, start, nb, pos0, n_div, params, sizes, layout, layer_off,
               work, keep, keys, given, goff, training, load, g):
    """The ``book`` family's block (``kernels/train.py``'s block signature, float64
    arrays): the blocks of a step run one after another into one gradient slot ``g``,
    which the first (``pos0 == 0``) clears; weight gradients stay unrounded float64 sums
    until ``gradient_step``."""
    prefer_vector_width()
    n_layers = sizes.shape[0] - 1
    sc = layout[n_layers + 3]
    lab = sc + _LABEL
    if load:
        for s in range(nb):
            r = perm[start + s]
            for i in range(x.shape[1]):
                work[i, s] = x[r, i]
            work[lab, s] = labels[r]
    if training and pos0 == 0:
        for q in range(g.shape[0]):
            g[q] = 0.0
    for layer in range(n_layers):
        d_in = sizes[layer]
        d_out = sizes[layer + 1]
        in_row = layout[layer]
        out_row = layout[layer + 1]
        off = layer_off[layer]
        b_off = off + d_in * d_out
        hidden = layer < n_layers - 1
        dropped = hidden and training and goff[layer] >= 0
        scale = 1.0 / keep[layer]
        for j in range(d_out):
            o = out_row + j
            for s in range(nb):
                work[o, s] = 0.0
            for i in range(d_in):
                _axpy(work, o, in_row + i, params[off + i * d_out + j], nb)
            b = np.float32(params[b_off + j])
            for s in range(nb):
                v = np.float32(work[o, s]) + b  # nnfs's dot rounded, + the bias in float32
                if hidden and not v > 0:
                    v = np.float32(0)
                work[o, s] = v
            if dropped:  # float64 output: h * (0 or 1 / keep)
                base = goff[layer] + pos0 * d_out + j
                for s in range(nb):
                    work[o, s] *= scale if given[base + s * d_out] != 0 else 0.0
    z = layout[n_layers]
    cur = layout[n_layers + 1]
    nxt = layout[n_layers + 2]
    total, correct = softmax_loss(work, z, sizes[n_layers], lab, nb, cur, training, n_div)
    if not training:
        return total, correct
    wide = False  # the top layer's gradient is float32
    for layer in range(n_layers - 1, -1, -1):
        d_in = sizes[layer]
        d_out = sizes[layer + 1]
        a_row = layout[layer]
        off = layer_off[layer]
        b_off = off + d_in * d_out
        for i in range(d_in):
            for j in range(d_out):
                g[off + i * d_out + j] += _dot(work, a_row + i, cur + j, nb)
        _bias_sums(g, b_off, work, cur, d_out, nb, wide)
        if layer == 0:
            break
        # the gradient of the layer below's output: nnfs's dot rounded to float32, then
        # through its dropout (float64 from here on) and its ReLU
        below = layer - 1
        wide = goff[below] >= 0
        scale = 1.0 / keep[below]
        for i in range(d_in):
            o = nxt + i
            for s in range(nb):
                work[o, s] = 0.0
            for j in range(d_out):
                _axpy(work, o, cur + j, params[off + i * d_out + j], nb)
            base = goff[below] + pos0 * d_in + i
            for s in range(nb):
                v = _r32(work[o, s])
                if wide:
                    v *= scale if given[base + s * d_in] != 0 else 0.0
                work[o, s] = v if work[a_row + i, s] > 0 else 0.0
        cur, nxt = nxt, cur
    return total, correct


@njit(**EXACT)
def gradient_step(g, w, sizes, layer_off, reg, goff):
    """Finish the step's gradient as the book's ``Layer_Dense.backward`` does: weight
    gradients rounded to float32 (nnfs's ``np.dot``), then the regularisation terms --
    computed in float32 (``2 * l2 * weights`` of a float32 array) and added in float32,
    or in float64 into a wide layer's bias gradient.  L1 then L2, weights then biases."""
    for layer in range(sizes.shape[0] - 1):
        off = layer_off[layer]
        b_off = off + sizes[layer] * sizes[layer + 1]
        end = b_off + sizes[layer + 1]
        for q in range(off, b_off):
            g[q] = _r32(g[q])
        wide = layer < sizes.shape[0] - 2 and goff[layer] >= 0
        for lo, hi, l1, l2, in64 in ((off, b_off, reg[layer, 0], reg[layer, 1], False),
                                     (b_off, end, reg[layer, 2], reg[layer, 3], wide)):
            if l1 > 0.0:
                pos, neg = np.float32(l1), np.float32(-l1)
                for q in range(lo, hi):
                    term = neg if w[q] < 0 else pos
                    g[q] = g[q] + term if in64 else np.float64(np.float32(g[q]) + term)
            if l2 > 0.0:
                two_l2 = np.float32(2.0 * l2)
                for q in range(lo, hi):
                    term = two_l2 * np.float32(w[q])
                    g[q] = g[q] + term if in64 else np.float64(np.float32(g[q]) + term)


@njit(**EXACT)
def update_step(kind, w, g, m, v, lr, h1, h2, eps, iterations, sizes, layer_off, goff):
    """The book's optimizer step: ``kernels/optim.py``'s ``update`` in float32 on every
    parameter, then again in float64 on the biases of wide layers (the new bias rounded
    to the layer's float32).  Their state turns float64 where the book assigns a new
    array (momentums, RMSprop's and Adam's caches); Adagrad's ``bias_cache += g**2``
    adds in place, so that cache stays float32."""
    n = w.shape[0]
    w32 = np.empty(n, np.float32)
    g32 = np.empty(n, np.float32)
    m32 = np.empty(m.shape[0], np.float32)
    v32 = np.empty(v.shape[0], np.float32)
    for q in range(n):
        w32[q] = w[q]
        g32[q] = g[q]
    for q in range(m.shape[0]):
        m32[q] = m[q]
    for q in range(v.shape[0]):
        v32[q] = v[q]
    update(kind, w32, g32, m32, v32, lr, h1, h2, eps, iterations)
    for layer in range(sizes.shape[0] - 1):
        off = layer_off[layer]
        b_off = off + sizes[layer] * sizes[layer + 1]
        end = b_off + sizes[layer + 1]
        wide = layer < sizes.shape[0] - 2 and goff[layer] >= 0
        narrow_end = b_off if wide else end
        for q in range(off, narrow_end):
            w[q] = w32[q]
        if m.shape[0]:
            for q in range(off, narrow_end):
                m[q] = m32[q]
        if v.shape[0]:
            for q in range(off, narrow_end):
                v[q] = v32[q]
        if wide and kind == ADAGRAD:  # the cache is added to in place: it stays float32
            e32 = np.float32(eps)
            for q in range(b_off, end):
                c = np.float32(np.float64(np.float32(v[q])) + g[q] * g[q])
                v[q] = c
                w[q] = _r32(w[q] + (-lr * g[q]) / np.float64(np.sqrt(c) + e32))
        elif wide:
            update(kind, w[b_off:end], g[b_off:end], m[b_off:end] if m.shape[0] else m,
                   v[b_off:end] if v.shape[0] else v, lr, h1, h2, eps, iterations)
            for q in range(b_off, end):
                w[q] = _r32(w[q])
