"""The book's optimizers (chapter 10) and regularisation (chapter 14) as compiled passes
over flat parameter vectors: one source for the drop-in ``Optimizer_*`` classes and the
compiled trainer (``kernels/train.py``).

Following optax (``init(params) -> state``, ``update(grads, state)``), an optimizer here
is a few state vectors the caller owns -- ``m`` (momentums) and ``v`` (caches), both of
the parameters' shape -- and one update pass per step.  The drop-in classes keep the
book's attribute names on the layers (``weight_momentums``, ``weight_cache``, ...) and
hand their arrays to the same pass.

Arithmetic follows the book's NumPy expressions in the parameters' dtype: every scalar
(the learning rate, ``1 - beta_1``, the bias corrections ``1 - beta ** (t + 1)``) is
computed in float64 as Python computes it, then rounded to the array dtype, as NumPy
does with a Python float and a float32 array; the elementwise operations then run in
that dtype, in the book's order (e.g. Adam's ``w += -lr * m_hat / (sqrt(v_hat) + eps)``).
"""

import numpy as np
from numba import njit

from .._config import HELPER, kernel
from .target import prefer_vector_width

#: optimizer codes (``fastnn.optimizers.KINDS`` maps the book's names to them)
SGD, ADAGRAD, RMSPROP, ADAM = 0, 1, 2, 3


@njit(**dict(HELPER, fastmath=False))
def decayed_rate(learning_rate, decay, iterations):
    """The book's ``pre_update_params``: ``learning_rate * (1. / (1. + decay *
    iterations))`` when ``decay`` is non-zero, else ``learning_rate``.

    Compiled without fastmath: with FMA contraction ``1. + decay * iterations`` would be
    rounded once instead of twice, and printed rates must equal the book's digit for
    digit (``tests/test_optimizers.py``)."""
    if decay != 0.0:
        return learning_rate * (1.0 / (1.0 + decay * np.float64(iterations)))
    return learning_rate


@njit(**dict(HELPER, fastmath=False))
def bias_correction(beta, iterations):
    """``1 - beta ** (iterations + 1)`` in float64, as Python evaluates it (Adam)."""
    return 1.0 - beta ** np.float64(iterations + 1)


#: ``update`` and ``add_regularization`` are compiled without fastmath: FMA contraction
#: rounds ``b1 * m + c1 * g`` (and ``g + 2 * l2 * w``) once instead of twice, so float32
#: updates differed from the book's NumPy in the last bit (33 of 192 Adam weights after 5
#: steps) -- and Adam turns a last-bit difference in a tiny gradient into a whole step
#: (``tests/test_optimizers.py::test_update_is_the_books_bit_for_bit``).  Elementwise
#: loops vectorise without fastmath.
EXACT = dict(HELPER, fastmath=False)


@njit(**EXACT)
def update(kind, w, g, m, v, lr, h1, h2, eps, iterations):
    """One optimizer step on the 1-D arrays ``w`` (updated in place) with gradient ``g``
    and state ``m``, ``v`` (updated in place; unused ones may be empty).

    ``lr`` is the current (decayed) learning rate.  ``h1``, ``h2``: SGD: momentum (0:
    plain SGD, ``m`` unused), -; Adagrad: -, -; RMSprop: rho, -; Adam: beta_1, beta_2.
    ``iterations``: updates done before this one (Adam's bias correction)."""
    prefer_vector_width()
    t = w.dtype.type
    n = w.shape[0]
    neg_lr = t(-lr)
    if kind == SGD:
        if h1 != 0.0:  # momentum: m = momentum*m - lr*g; w += m
            mom = t(h1)
            lr_t = t(lr)
            for p in range(n):
                step = mom * m[p] - lr_t * g[p]
                m[p] = step
                w[p] += step
        else:
            for p in range(n):
                w[p] += neg_lr * g[p]
        return
    e = t(eps)
    if kind == ADAGRAD:  # v += g**2; w += -lr*g / (sqrt(v) + eps)
        for p in range(n):
            gp = g[p]
            c = v[p] + gp * gp
            v[p] = c
            w[p] += neg_lr * gp / (np.sqrt(c) + e)
        return
    if kind == RMSPROP:  # v = rho*v + (1-rho)*g**2
        rho = t(h1)
        one_minus = t(1.0 - h1)
        for p in range(n):
            gp = g[p]
            c = rho * v[p] + one_minus * (gp * gp)
            v[p] = c
            w[p] += neg_lr * gp / (np.sqrt(c) + e)
        return
    # Adam
    b1, b2 = t(h1), t(h2)
    c1 = t(1.0 - h1)
    c2 = t(1.0 - h2)
    k1 = t(bias_correction(h1, iterations))
    k2 = t(bias_correction(h2, iterations))
    for p in range(n):
        gp = g[p]
        mp = b1 * m[p] + c1 * gp
        vp = b2 * v[p] + c2 * (gp * gp)
        m[p] = mp
        v[p] = vp
        w[p] += neg_lr * (mp / k1) / (np.sqrt(vp / k2) + e)


@njit(**EXACT)
def add_regularization(g, w, l1, l2):
    """The book's chapter 14 gradient terms, in place: ``g += l1 * sign(w)`` (sign(0) =
    +1) when ``l1 > 0``, then ``g += 2 * l2 * w`` when ``l2 > 0`` (not divided by the
    batch size).  The terms are computed in ``w``'s dtype and added into ``g``'s, as the
    book's ``dweights += 2 * l2 * weights`` does when the two dtypes differ."""
    prefer_vector_width()
    t = w.dtype.type
    if l1 > 0.0:
        pos, neg = t(l1), t(-l1)
        for p in range(g.shape[0]):
            g[p] += neg if w[p] < 0 else pos
    if l2 > 0.0:
        two_l2 = t(2.0 * l2)
        for p in range(g.shape[0]):
            g[p] += two_l2 * w[p]


@njit(**HELPER)
def regularization_loss(w, l1, l2):
    """``l1 * sum|w| + l2 * sum(w * w)`` in float64, terms with a zero factor skipped."""
    prefer_vector_width()
    total = 0.0
    if l1 > 0.0:
        s = 0.0
        for p in range(w.shape[0]):
            s += abs(np.float64(w[p]))
        total += l1 * s
    if l2 > 0.0:
        s = 0.0
        for p in range(w.shape[0]):
            s += np.float64(w[p]) * np.float64(w[p])
        total += l2 * s
    return total


# -- entry points for the drop-in classes (``fastnn.optimizers``, ``fastnn.layers``) ----


@kernel
def optimizer_step(kind, w, g, m, v, lr, h1, h2, eps, iterations):
    """``update`` called from Python (one call per weights or biases array)."""
    update(kind, w, g, m, v, lr, h1, h2, eps, iterations)


@kernel
def regularize_gradient(g, w, l1, l2):
    """``add_regularization`` called from Python."""
    add_regularization(g, w, l1, l2)


@kernel
def penalty(w, l1, l2):
    """``regularization_loss`` called from Python."""
    return regularization_loss(w, l1, l2)
