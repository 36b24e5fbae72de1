"""The baselines of the training benchmarks (``bench/test_bench_train.py``): the nnfs book's
chapter 10 run written the ways a user would write it instead of ``fastnn.train``.

The workload (``book_data``): nnfs ``spiral_data`` drawn after ``nnfs.init()``, a
2-H-3 network (dense, ReLU, dense, softmax), categorical cross-entropy with the
predictions clipped to [1e-7, 1 - 1e-7], full batch, the book's Adam (``ADAM``):
``lr_t = lr * (1 / (1 + decay * t))`` with t the updates done so far (from 0),
``m_hat = m / (1 - beta_1**(t+1))``, ``v_hat = v / (1 - beta_2**(t+1))``,
``w -= lr_t * m_hat / (sqrt(v_hat) + eps)``.  Gradients: ``dz = (softmax - onehot) / N``
(the clip does not enter them, as in the book's combined softmax + loss backward),
``dW2 = h.T @ dz``, ``db2 = sum(dz)``, ``dh = dz @ W2.T`` zeroed where the
pre-activation is <= 0, ``dW1 = X.T @ dh``, ``db1 = sum(dh)``.

Every ``make_<impl>(X, y, params0, opt=ADAM)`` returns a ``Trainer``: ``run(epochs)``
starts again from ``params0`` (float32 ``W1, b1, W2, b2``) with a fresh optimizer, trains
``epochs`` epochs and returns ``(loss, accuracy)`` of the last epoch's forward pass (what
the book prints for that epoch: before its update); ``params()`` is the parameters after
the last run as one float64 vector in fastnn's layout (``W1`` row-major, ``b1``, ``W2``,
``b2``).  All float32.  ``reference`` is the same algebra in float64, the oracle.

* ``numpy-vectorised``: what a competent NumPy user writes: float32, every buffer
  allocated once, the parameters and their gradients in one flat vector each so Adam
  is a handful of whole-vector operations.
* ``book``: the book's own classes (``Layer_Dense``, ``Activation_ReLU``,
  ``Activation_Softmax_Loss_CategoricalCrossentropy``, ``Optimizer_Adam``) from
  ``tests/book.py``, driven by the book's loop under ``nnfs.init()`` as the book runs
  it (``np.dot`` computed in float64, cast to float32), undone after each run
  (``nnfs_init``).  It reproduces the book's last line: epoch 10000, acc 0.967, loss
  0.074.
* ``jax``: ``jax.jit`` of a ``lax.fori_loop`` over the epochs, ``optax.adam(lambda t: lr /
  (1 + decay * t), eps=1e-7)``; optax computes the book's Adam: ``eps`` outside the square
  root of the bias-corrected second moment, ``eps_root`` 0 by default, the schedule's
  count starting at 0.  ``jax.nn.relu`` (gradient 0 at 0, like the book; ``jnp.maximum``
  would give 1/2 there, and the spiral's first point of each class is (0, 0), where the
  first epoch's pre-activations are exactly 0).  One core: see ``import_jax``.
* ``torch``: PyTorch eager, ``nn.Linear`` layers, ``F.cross_entropy``, ``torch.optim.Adam
  (eps=1e-7)`` (its default single-tensor path on CPU) with ``LambdaLR(lambda t: 1 / (1 +
  decay * t))``, ``torch.set_num_threads(1)`` during the run.
* ``sklearn``: ``MLPClassifier(solver="adam", batch_size=N, alpha=0, shuffle=False,
  epsilon=1e-7, ...)``, ``warm_start`` and its ``coefs_``/``intercepts_`` set to ``params0``
  in place, one ``fit`` of ``epochs`` iterations.  It has no learning-rate decay (at 5e-7
  the book's rate is 0.5% lower by epoch 10,000), adds ``eps`` to ``sqrt(v)`` before the
  bias correction (``lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)``: the same
  up to where eps matters) and clips at float32's machine epsilon, not 1e-7; it computes
  no accuracy while training, so its accuracy is that of the final parameters.

JAX and PyTorch report their own (unclipped) cross-entropy: equal to the book's clipped
loss until a probability leaves [1e-7, 1 - 1e-7], and their gradients are the book's.
"""

import os
import sys
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: the book's classes, the tests' NumPy reference
BOOK_PATH = ROOT / "tests" / "book.py"
CLIP_LO, CLIP_HI = 1e-7, 1 - 1e-7


@dataclass(frozen=True)
class Adam:
    learning_rate: float = 0.05
    decay: float = 5e-7
    epsilon: float = 1e-7
    beta_1: float = 0.9
    beta_2: float = 0.999

    def rate(self, t):
        """The book's decayed learning rate for update ``t`` (0 for the first)."""
        return self.learning_rate * (1.0 / (1.0 + self.decay * t))


#: the book's chapter 10 optimizer: ``Optimizer_Adam(learning_rate=0.05, decay=5e-7)``
ADAM = Adam()


class Trainer(NamedTuple):
    run: Callable  # run(epochs) -> (loss, accuracy) of the last epoch's forward pass
    params: Callable  # params() -> float64 vector (W1, b1, W2, b2) after the last run
    version: str  # what ran it ("numpy 2.4.6", "torch 2.13.0+cpu", ...)


@contextmanager
def nnfs_init():
    """``nnfs.init()`` for the duration, as the book's scripts start: ``np.zeros``,
    ``np.eye`` and ``np.random.randn`` return float32, ``np.dot`` computes in float64 and
    returns float32 (nnfs's workaround for dot results that differ between machines),
    ``np.random.seed(0)``.  On exit NumPy's functions and global random state are put
    back, so nothing leaks into the rest of the process (STYLE 11: it must not)."""
    import nnfs

    saved = np.zeros, np.eye, np.random.randn, np.dot
    state = np.random.get_state()  # noqa: NPY002 - nnfs and the book use the global RNG
    try:
        nnfs.init()
        yield
    finally:
        np.zeros, np.eye, np.random.randn, np.dot = saved
        np.random.set_state(state)  # noqa: NPY002


def book_data(samples_per_class, classes=3, hidden=64):
    """``(X float32, y int64, (W1, b1, W2, b2) float32)`` exactly as the book's chapter 10
    script makes them: ``nnfs.init()``, ``spiral_data``, then ``Layer_Dense(2, hidden)``
    and ``Layer_Dense(hidden, classes)`` drawing ``0.01 * randn`` from the same stream,
    biases 0.  (``nnfs.init`` matters: it rounds ``spiral_data``'s noise to float32, which
    moves 129 of the 600 coordinates of ``spiral_data(100, 3)`` by up to 9e-8, and the
    training is chaotic enough that the final accuracy then differs.)"""
    from nnfs.datasets import spiral_data

    with nnfs_init():
        X, y = spiral_data(samples=samples_per_class, classes=classes)
        W1 = 0.01 * np.random.randn(2, hidden)  # noqa: NPY002
        W2 = 0.01 * np.random.randn(hidden, classes)  # noqa: NPY002
    params0 = (W1, np.zeros((1, hidden), np.float32), W2, np.zeros((1, classes), np.float32))
    assert all(a.dtype == np.float32 for a in (X, *params0))
    return np.ascontiguousarray(X), y.astype(np.int64), params0


def flat(*arrays):
    """One float64 vector of the arrays, in order (fastnn's parameter layout)."""
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])


# -- the oracle --------------------------------------------------------------------------
def reference(X, y, params0, epochs, opt=ADAM, sklearn_adam=False):
    """The workload in float64, plainly: ``(losses, accuracies, params)`` with one loss and
    accuracy per epoch (its forward pass, before its update) and the parameters after
    ``epochs`` updates (``flat``).  ``sklearn_adam``: scikit-learn's form of Adam instead
    of the book's (no decay; ``eps`` added to ``sqrt(v)``, the bias corrections folded
    into the rate), to check ``make_sklearn`` against."""
    X = np.asarray(X, np.float64)
    params = [np.array(p, np.float64) for p in params0]
    moments = [np.zeros_like(p) for p in params]
    caches = [np.zeros_like(p) for p in params]
    rows, n = np.arange(len(y)), len(y)
    losses, accuracies = [], []
    for t in range(epochs):
        W1, b1, W2, b2 = params
        z1 = X @ W1 + b1
        h = np.maximum(z1, 0)
        z2 = h @ W2 + b2
        e = np.exp(z2 - z2.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        losses.append(float(-np.mean(np.log(np.clip(p[rows, y], CLIP_LO, CLIP_HI)))))
        accuracies.append(float(np.mean(np.argmax(p, axis=1) == y)))
        dz = p.copy()
        dz[rows, y] -= 1
        dz /= n
        dh = dz @ W2.T
        dh[z1 <= 0] = 0
        grads = (X.T @ dh, dh.sum(axis=0, keepdims=True), h.T @ dz,
                 dz.sum(axis=0, keepdims=True))
        correct_1, correct_2 = 1 - opt.beta_1 ** (t + 1), 1 - opt.beta_2 ** (t + 1)
        for w, g, m, v in zip(params, grads, moments, caches, strict=True):
            m[...] = opt.beta_1 * m + (1 - opt.beta_1) * g
            v[...] = opt.beta_2 * v + (1 - opt.beta_2) * g**2
            if sklearn_adam:
                rate = opt.learning_rate * np.sqrt(correct_2) / correct_1
                w -= rate * m / (np.sqrt(v) + opt.epsilon)
            else:
                w -= opt.rate(t) * (m / correct_1) / (np.sqrt(v / correct_2) + opt.epsilon)
    return losses, accuracies, flat(*params)


# -- plain NumPy ------------------------------------------------------------------------
class NumpyTrainer:
    """``numpy-vectorised``: float32, every buffer allocated once, the parameters (and
    their gradients) in one flat vector so Adam is a few whole-vector operations."""

    def __init__(self, X, y, params0, opt=ADAM):
        self.X, self.y, self.opt = np.ascontiguousarray(X, np.float32), y, opt
        n, hidden, classes = self.X.shape[0], params0[0].shape[1], params0[2].shape[1]
        self.rows, self.inv_n = np.arange(n), np.float32(1 / n)
        self.start = flat(*params0).astype(np.float32)
        self.theta = self.start.copy()  # W1, b1, W2, b2
        self.grad, self.m, self.v, self.tmp = (np.zeros_like(self.start) for _ in range(4))
        self.W1, self.b1, self.W2, self.b2 = self._views(self.theta, params0)
        self.dW1, self.db1, self.dW2, self.db2 = self._views(self.grad, params0)
        self.z1, self.h, self.dh = (np.empty((n, hidden), np.float32) for _ in range(3))
        self.active = np.empty((n, hidden), np.float32)  # 1 where z1 > 0, else 0
        self.p = np.empty((n, classes), np.float32)
        self.row_max, self.row_sum = (np.empty((n, 1), np.float32) for _ in range(2))

    @staticmethod
    def _views(vector, like):
        out, o = [], 0
        for a in like:
            out.append(vector[o:o + a.size].reshape(a.shape))
            o += a.size
        return out

    def epoch(self, t):
        """One epoch (update ``t``, from 0); the loss and accuracy of its forward pass."""
        X, y, opt, p = self.X, self.y, self.opt, self.p
        np.matmul(X, self.W1, out=self.z1)
        self.z1 += self.b1
        # ReLU as a product with its 0/1 mask, kept for the backward pass: 5x faster
        # than np.maximum + np.copyto(dh, 0, where=z1 <= 0) (or dh[z1 <= 0] = 0)
        np.greater(self.z1, 0, out=self.active)
        np.multiply(self.z1, self.active, out=self.h)
        np.matmul(self.h, self.W2, out=p)
        p += self.b2
        accuracy = np.mean(np.argmax(p, axis=1) == y)
        np.max(p, axis=1, keepdims=True, out=self.row_max)
        p -= self.row_max
        np.exp(p, out=p)
        np.sum(p, axis=1, keepdims=True, out=self.row_sum)
        p /= self.row_sum
        loss = -np.mean(np.log(np.clip(p[self.rows, y], CLIP_LO, CLIP_HI)))
        p[self.rows, y] -= 1
        p *= self.inv_n  # dz
        np.matmul(self.h.T, p, out=self.dW2)
        np.sum(p, axis=0, keepdims=True, out=self.db2)
        np.matmul(p, self.W2.T, out=self.dh)
        self.dh *= self.active
        np.matmul(X.T, self.dh, out=self.dW1)
        np.sum(self.dh, axis=0, keepdims=True, out=self.db1)
        # Adam, the book's formula, on all parameters at once
        m, v, tmp = self.m, self.v, self.tmp
        m *= opt.beta_1
        np.multiply(self.grad, 1 - opt.beta_1, out=tmp)
        m += tmp
        v *= opt.beta_2
        np.multiply(self.grad, self.grad, out=tmp)
        tmp *= 1 - opt.beta_2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp *= 1 / np.sqrt(1 - opt.beta_2 ** (t + 1))  # sqrt(v_hat)
        tmp += opt.epsilon
        np.divide(m, tmp, out=tmp)
        tmp *= opt.rate(t) / (1 - opt.beta_1 ** (t + 1))
        self.theta -= tmp
        return loss, accuracy

    def run(self, epochs):
        self.theta[:] = self.start
        self.m.fill(0)
        self.v.fill(0)
        loss = accuracy = np.nan
        for t in range(epochs):
            loss, accuracy = self.epoch(t)
        return float(loss), float(accuracy)


def make_numpy(X, y, params0, opt=ADAM):
    """``numpy-vectorised``: ``NumpyTrainer``."""
    trainer = NumpyTrainer(X, y, params0, opt)
    return Trainer(trainer.run, lambda: trainer.theta.astype(np.float64),
                   f"numpy {np.__version__}")


# -- the book's classes ---------------------------------------------------------------------
BOOK_CLASSES = ("Layer_Dense", "Activation_ReLU",
                "Activation_Softmax_Loss_CategoricalCrossentropy", "Optimizer_Adam")


def load_book():
    """``tests/book.py`` (the book's classes for chapters 9-22 as the tests' NumPy
    reference), loaded by path: ``tests`` is not a package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fastnn_tests_book", BOOK_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [name for name in BOOK_CLASSES if not hasattr(module, name)]
    if missing:
        raise ImportError(f"{BOOK_PATH} lacks {', '.join(missing)}")
    return module


def _without_drawing(make):
    """``make()`` with NumPy's global random state restored afterwards (the book's
    ``Layer_Dense`` draws its weights from it; they are replaced by ``params0``)."""
    state = np.random.get_state()  # noqa: NPY002
    try:
        return make()
    finally:
        np.random.set_state(state)  # noqa: NPY002


def make_book(X, y, params0, opt=ADAM):
    """``book``: the book's chapter 10 loop around its own classes (no printing)."""
    return make_script(X, y, params0, opt, load_book(),
                       f"the book's classes (tests/book.py), numpy {np.__version__}")


def make_swapped(X, y, params0, opt=ADAM):
    """The book's chapter 10 loop with its class definitions replaced by fastnn's
    drop-in classes (``from fastnn import Layer_Dense, ...``)."""
    import fastnn

    return make_script(X, y, params0, opt, fastnn,
                       f"the book's loop with fastnn {fastnn.__version__}'s classes")


def make_script(X, y, params0, opt, book, version):
    """The book's chapter 10 loop (no printing) around the classes of module ``book``,
    under ``nnfs.init()`` as the book's script runs."""
    X = np.ascontiguousarray(X, np.float32)
    (W1, b1, W2, b2), layers = params0, []

    def run(epochs):
        def build():
            return book.Layer_Dense(*W1.shape), book.Layer_Dense(*W2.shape)

        dense1, dense2 = _without_drawing(build)
        dense1.weights, dense1.biases = W1.copy(), b1.copy()
        dense2.weights, dense2.biases = W2.copy(), b2.copy()
        layers[:] = dense1, dense2
        activation1 = book.Activation_ReLU()
        loss_activation = book.Activation_Softmax_Loss_CategoricalCrossentropy()
        optimizer = book.Optimizer_Adam(learning_rate=opt.learning_rate, decay=opt.decay,
                                        epsilon=opt.epsilon, beta_1=opt.beta_1,
                                        beta_2=opt.beta_2)
        loss = accuracy = np.nan
        with nnfs_init():
            for _epoch in range(epochs):
                dense1.forward(X)
                activation1.forward(dense1.output)
                dense2.forward(activation1.output)
                loss = loss_activation.forward(dense2.output, y)
                predictions = np.argmax(loss_activation.output, axis=1)
                accuracy = np.mean(predictions == y)

                loss_activation.backward(loss_activation.output, y)
                dense2.backward(loss_activation.dinputs)
                activation1.backward(dense2.dinputs)
                dense1.backward(activation1.dinputs)

                optimizer.pre_update_params()
                optimizer.update_params(dense1)
                optimizer.update_params(dense2)
                optimizer.post_update_params()
        return float(loss), float(accuracy)

    def params():
        (d1, d2) = layers
        return flat(d1.weights, d1.biases, d2.weights, d2.biases)

    return Trainer(run, params, version)


# -- JAX ------------------------------------------------------------------------------------
def import_jax():
    """``(jax, one_core)``: ``jax``, its CPU backend created on one core if this is the
    first import of ``jax`` in the process (``one_core`` says whether it was).

    XLA sizes its CPU thread pool from the CPU affinity of the thread that creates the
    backend (the JAX maintainers' advice for limiting it, jax-ml/jax#1539), so the
    calling thread is pinned to one CPU while ``jax.devices()`` creates it, and restored
    (threads started later, Numba's included, get every CPU again).  The environment
    variable often quoted for this, ``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false
    intra_op_parallelism_threads=1"``, does not do it on JAX 0.10: a 2000x2000 product
    still kept 1.98 cores busy with it, 1.00 with the pinning (and the second word is
    not an XLA flag: XLA ignores it bare and aborts on ``--intra_op_...``).  If another
    module imported JAX first (``bench/test_bench_peers.py`` in the same session), its
    backend may exist already and this comes too late: ``cpu_per_wall`` in the
    benchmarks' ``extra_info`` shows how many cores each run kept busy."""
    saved = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    one_core = "jax" not in sys.modules and saved is not None
    if one_core:
        os.sched_setaffinity(0, {min(saved)})
    try:
        import jax

        jax.devices("cpu")
    finally:
        if one_core:
            os.sched_setaffinity(0, saved)
    return jax, one_core


def make_jax(X, y, params0, opt=ADAM):
    """``jax``: ``jit(lax.fori_loop)`` over epochs with ``optax.adam`` and the decay as its
    schedule.  Compiled on the first ``run`` (call it once before timing)."""
    jax, one_core = import_jax()
    import optax

    jnp = jax.numpy
    Xj = jnp.asarray(X, jnp.float32)
    yj = jnp.asarray(np.asarray(y, np.int32))
    start = tuple(jnp.asarray(p, jnp.float32) for p in params0)
    tx = optax.adam(lambda t: opt.learning_rate / (1 + opt.decay * t), b1=opt.beta_1,
                    b2=opt.beta_2, eps=opt.epsilon)

    def loss_fn(params):
        W1, b1, W2, b2 = params
        z = jax.nn.relu(Xj @ W1 + b1) @ W2 + b2
        logp = jax.nn.log_softmax(z, axis=1)
        loss = -jnp.mean(jnp.take_along_axis(logp, yj[:, None], axis=1))
        return loss, jnp.mean(jnp.argmax(z, axis=1) == yj)

    @jax.jit
    def train(params, epochs):
        def epoch(_, carry):
            params, state, _, _ = carry
            (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss, accuracy

        nan = jnp.float32(jnp.nan)
        return jax.lax.fori_loop(0, epochs, epoch, (params, tx.init(params), nan, nan))

    last = []

    def run(epochs):
        params, _, loss, accuracy = train(start, epochs)
        last[:] = [params]
        return float(loss.block_until_ready()), float(accuracy)

    def params():
        return flat(*(np.asarray(p) for p in last[0]))

    cores = "one core" if one_core else "backend created before make_jax: XLA's threads"
    return Trainer(run, params, f"jax {jax.__version__} ({jax.devices()[0].platform}, "
                                f"{cores}), optax {optax.__version__}")


# -- PyTorch ----------------------------------------------------------------------------------
@contextmanager
def torch_threads(torch, n):
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def make_torch(X, y, params0, opt=ADAM):
    """``torch``: eager PyTorch on one thread, ``Adam`` + ``LambdaLR`` for the decay."""
    import torch
    import torch.nn.functional as F

    Xt = torch.from_numpy(np.ascontiguousarray(X, np.float32))
    yt = torch.from_numpy(np.asarray(y, np.int64))
    W1, b1, W2, b2 = params0
    model = torch.nn.Sequential(torch.nn.Linear(*W1.shape), torch.nn.ReLU(),
                                torch.nn.Linear(*W2.shape))
    start = [torch.from_numpy(np.ascontiguousarray(a, np.float32))
             for a in (W1.T, b1.ravel(), W2.T, b2.ravel())]  # nn.Linear holds W.T

    def run(epochs):
        with torch_threads(torch, 1):
            with torch.no_grad():
                for p, s in zip(model.parameters(), start, strict=True):
                    p.copy_(s)
            optimizer = torch.optim.Adam(model.parameters(), lr=opt.learning_rate,
                                         betas=(opt.beta_1, opt.beta_2), eps=opt.epsilon)
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda t: 1 / (1 + opt.decay * t))
            loss = accuracy = torch.tensor(float("nan"))
            for _ in range(epochs):
                optimizer.zero_grad()
                z = model(Xt)
                loss = F.cross_entropy(z, yt)
                accuracy = (z.argmax(dim=1) == yt).float().mean()
                loss.backward()
                optimizer.step()
                scheduler.step()
        return loss.item(), accuracy.item()

    def params():
        W1, b1, W2, b2 = (p.detach().numpy() for p in model.parameters())
        return flat(W1.T, b1, W2.T, b2)

    return Trainer(run, params, f"torch {torch.__version__}")


# -- scikit-learn -------------------------------------------------------------------------------
def make_sklearn(X, y, params0, opt=ADAM):
    """``sklearn``: ``MLPClassifier``'s Adam, full batch, no decay (it has none for Adam)."""
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X = np.ascontiguousarray(X, np.float32)
    W1, b1, W2, b2 = params0
    clf = MLPClassifier(hidden_layer_sizes=(W1.shape[1],), activation="relu", solver="adam",
                        alpha=0.0, batch_size=X.shape[0], learning_rate_init=opt.learning_rate,
                        beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon,
                        shuffle=False, tol=0.0, n_iter_no_change=2**62, max_iter=1,
                        warm_start=True, random_state=0)

    def fit():
        with warnings.catch_warnings():  # max_iter reached: what we ask for
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)

    fit()  # creates coefs_/intercepts_ (float32, as X); each run overwrites them in place
    mine = clf.coefs_ + clf.intercepts_
    if [a.dtype for a in mine] != [np.float32] * 4:
        raise TypeError(f"MLPClassifier trains in {mine[0].dtype}, expected float32")

    def run(epochs):
        for a, s in zip(mine, (W1, W2, b1.ravel(), b2.ravel()), strict=True):
            a[...] = s
        clf.set_params(max_iter=epochs)
        fit()  # warm_start: from these parameters, with a fresh Adam
        return float(clf.loss_curve_[-1]), float(clf.score(X, y))

    def params():
        (A1, A2), (c1, c2) = clf.coefs_, clf.intercepts_
        return flat(A1, c1, A2, c2)

    return Trainer(run, params, f"scikit-learn {sklearn.__version__}")


#: impl name -> (maker, modules it needs beyond NumPy); the benchmarks skip an impl whose
#: modules are not importable
MAKERS = {
    "book": (make_book, ()),
    "numpy-vectorised": (make_numpy, ()),
    "jax": (make_jax, ("jax", "optax")),
    "torch": (make_torch, ("torch",)),
    "sklearn": (make_sklearn, ("sklearn",)),
}
