"""``fastnn.train`` (issue 9): the compiled trainer against its promises.

* **Parity** with the book's classes (``tests/book.py``, plain NumPy): the same training
  written as the book's chapter 9-15 loop -- ``Layer_Dense``/``Activation_ReLU``/
  ``Layer_Dropout`` forward, ``Activation_Softmax_Loss_CategoricalCrossentropy``,
  backward, ``pre_update_params``/``update_params``/``post_update_params`` -- gives the
  same per-epoch losses, accuracies, learning rates and validation results, the same
  final parameters and the same optimizer state on the layers, for every optimizer, with
  L1+L2, dropout, full batch and mini-batches (in order, or in the trainer's shuffle),
  in every kernel family (``pair23``: d-H-C nets with d <= 2, C <= 3; ``deep_c3``/
  ``deep_cn``: any depth, up to 3 classes or more) and both dtypes.
* **Determinism**: bit-identical results across seeds reused, serial and parallel
  builds, thread counts (in-process and in subprocesses with ``NUMBA_NUM_THREADS`` 1
  and 2), chunk sizes, record-buffer sizes, resuming (from checkpoints written mid-run,
  mid-epoch, after SIGKILL and after Ctrl-C), and calls from Python threads.
* **Dropout** masks (counter-based), the **stop rules** (target_loss, patience,
  divergence, callback), the **models and optimizers** ``train`` accepts (and refuses),
  the write-back into the model and the optimizer object, a second call continuing the
  first, **bad input** refused by name before any kernel runs, and ``nnfs.init()`` in
  subprocesses.

The book's classes run with the trainer's own dropout masks and sample order, which
``dropout_keep_mask`` and ``shuffle_order`` re-derive in NumPy from the kernels'
documented counter-based hashes (a change of those hashes shows up here first).
Tolerances (``PARITY_TOL``) were measured on this machine; the comments say what was
measured and why each bound is what it is.

Time: the runs are short and use few kernel builds -- the float64 serial loop with the
three families' blocks (parity), the float32 serial and parallel loops with the
``pair23`` and ``deep_c3`` blocks (determinism, dropout, stop rules, subprocesses).
Subprocesses use this process's Numba cache (see ``proc_env``) and one configuration.

nnfs's data sets draw from NumPy's global RNG: ``dataset`` seeds and restores it.  Never
calls ``nnfs.init()`` in this process.
"""

import functools
import hashlib
import importlib
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import book
import numba
import numpy as np
import pytest
import reference as ref
from nnfs.datasets import spiral_data
from subproc import env, run_python

import fastnn
from fastnn.checkpoint import CheckpointError, load_checkpoint
from fastnn.kernels import train as kt
from fastnn.optimizers import Optimizer_Adagrad, Optimizer_Adam, Optimizer_RMSprop, Optimizer_SGD
from fastnn.train import TrainResult, train

TESTS = Path(__file__).resolve().parent
#: the module (``fastnn.train`` may be re-exported as the function by the package)
train_module = importlib.import_module("fastnn.train")
NT = numba.config.NUMBA_NUM_THREADS

BOOK_OPTIMIZERS = {"sgd": book.Optimizer_SGD, "adagrad": book.Optimizer_Adagrad,
                   "rmsprop": book.Optimizer_RMSprop, "adam": book.Optimizer_Adam}
FASTNN_OPTIMIZERS = {"sgd": Optimizer_SGD, "adagrad": Optimizer_Adagrad,
                     "rmsprop": Optimizer_RMSprop, "adam": Optimizer_Adam}
STATE_NAMES = ("weight_momentums", "weight_cache", "bias_momentums", "bias_cache")


@pytest.fixture(autouse=True)
def global_rng():
    """nnfs's data sets and the layer classes draw from NumPy's global RNG."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


# =============================================================================================
# Data, models, the reference training loop
# =============================================================================================


@functools.lru_cache
def _spiral(samples, classes, seed):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return spiral_data(samples=samples, classes=classes)
    finally:
        np.random.set_state(state)


def dataset(d=2, classes=3, samples=100, seed=0):
    """nnfs's ``spiral_data(samples, classes)`` after ``np.random.seed(seed)`` (float64 X,
    uint8 labels), with ``d`` features: the first ``d`` of (x0, x1, 2 x0 x1, x0^2 - x1^2,
    sin 3 x0, ...).  Copies: a test that mutates them cannot leak into another."""
    X, y = _spiral(samples, classes, seed)
    x0, x1 = X[:, 0], X[:, 1]
    cols = [x0, x1, 2 * x0 * x1, x0 ** 2 - x1 ** 2, np.sin(3 * x0), np.cos(3 * x1)]
    assert d <= len(cols)
    return np.ascontiguousarray(np.stack(cols[:d], axis=1)), y.copy()


def start_params(sizes, seed, init="wide"):
    """A flat float64 parameter vector.  ``wide``: weights N(0, 0.25 / fan_in), biases
    N(0, 0.01) -- gradients well away from zero, so that float64 runs of the trainer
    and of the book's classes stay within ~1e-13 of each other for dozens of epochs;
    ``book``: the book's 0.01 N(0, 1) weights and zero biases (see ``test_parity_from_
    the_books_initialisation`` for what that does to Adam)."""
    rng = np.random.default_rng(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        if init == "wide":
            layers.append((rng.standard_normal((a, b)) * 0.5 / np.sqrt(a),
                           rng.standard_normal(b) * 0.1))
        else:
            layers.append((0.01 * rng.standard_normal((a, b)), np.zeros(b)))
    return ref.mlp_params_join(layers)


def build_model(kind, sizes, params, dtype, regs=None):
    """(model to pass to ``train``, its dense layers) holding ``params`` in ``dtype``.

    ``kind``: "mlp"; "book" (``book.Layer_Dense`` objects, with the layer's
    regularisation ``regs``: one (wl1, wl2, bl1, bl2) per layer); "book+act" (the same
    with ``book.Activation_ReLU`` objects between them and a final
    ``book.Activation_Softmax``); "notebook" (the seed notebook's ``Dense_Layer``,
    ``tests/reference.py``); "fastnn" (``fastnn.Dense_Layer``)."""
    sizes = list(sizes)
    n = len(sizes) - 1
    regs = list(regs) if regs is not None else [(0, 0, 0, 0)] * n
    split = ref.mlp_params_split(sizes, np.asarray(params))
    if kind == "mlp":
        mlp = fastnn.MLP(sizes, seed=0, dtype=dtype)
        mlp.params = np.asarray(params).astype(dtype)
        return mlp, mlp.layers
    dense = []
    for (W, b), reg in zip(split, regs, strict=True):
        if kind in ("book", "book+act"):
            layer = book.Layer_Dense(*W.shape, *reg)
        elif kind == "notebook":
            layer = ref.Dense_Layer(*W.shape)
        elif kind == "fastnn":
            layer = fastnn.Dense_Layer(*W.shape)
        else:
            raise AssertionError(kind)
        layer.weights = W.astype(dtype)  # copies
        layer.biases = b.reshape(1, -1).astype(dtype)
        dense.append(layer)
    if kind != "book+act":
        return dense, dense
    model = []
    for i, layer in enumerate(dense):
        model.append(layer)
        model.append(book.Activation_ReLU() if i < n - 1 else book.Activation_Softmax())
    return model, dense


def flat_params(layers):
    return ref.mlp_params_join([(np.asarray(layer.weights), np.asarray(layer.biases))
                                for layer in layers])


# --- the trainer's counter-based streams, re-derived in NumPy ------------------------------
# ``kernels/noise.py``'s ``stream_key`` (splitmix64 folds) and ``kernels/train.py``'s
# dropout hash (``_uniform``: Wellons' lowbias32 of index * golden + key, top 24 bits) and
# shuffle (Fisher-Yates with Lemire's multiply-shift), written from their documentation.
# They let the book's classes run with the very masks and orders the trainer uses.

_M64 = (1 << 64) - 1


def _mix64(x):
    x &= _M64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def stream_key(seed, chain, step, cand):
    k = _mix64(seed + 0x6A09E667F3BCC909)
    k = _mix64(k ^ ((chain + 0xBB67AE8584CAA73B) & _M64))
    k = _mix64(k ^ ((step + 0x3C6EF372FE94F82B) & _M64))
    return _mix64(k ^ ((cand + 0xA54FF53A5F1D36F1) & _M64))


def dropout_keep_mask(seed, layer, iteration, batch, units, keep):
    """The trainer's dropout mask (True: kept) of hidden layer ``layer`` in the update
    number ``iteration`` for a batch of ``batch`` samples: unit j of the sample at
    position s of the batch is kept iff hash(key, s * units + j) < keep (float32)."""
    key = np.uint32(stream_key(seed, layer, iteration, 0xD0) & 0xFFFFFFFF)
    idx = (np.arange(batch, dtype=np.uint64)[:, None] * np.uint64(units)
           + np.arange(units, dtype=np.uint64)).astype(np.uint32)
    with np.errstate(over="ignore"):
        h = idx * np.uint32(0x9E3779B9) + key
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x21F0AAAD)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x735A2D97)
        h ^= h >> np.uint32(15)
    u = (h >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    return u < np.float32(keep)


def shuffle_order(seed, epoch, n):
    """The trainer's sample order in ``epoch`` (shuffle=True)."""
    perm = list(range(n))
    key = stream_key(seed, 1, epoch, 0x5F)
    for i in range(n - 1, 0, -1):
        h = stream_key(key, 0, i, 0) >> 32
        j = (h * (i + 1)) >> 32
        perm[i], perm[j] = perm[j], perm[i]
    return np.array(perm, dtype=np.int64)


class GivenDropout(book.Layer_Dropout):
    """The book's ``Layer_Dropout`` with its 0/1 draw replaced by ``mask`` (the book's
    own arithmetic otherwise: ``binary_mask = mask / rate``)."""

    mask = None

    def forward(self, inputs, training=None):
        self.inputs = inputs
        self.binary_mask = self.mask / self.rate
        self.output = inputs * self.binary_mask


def book_training(layers, X, y, optimizer, epochs, *, batch_size=None, dropout=None,
                  shuffle=False, seed=0, validation=None):
    """Train the book's ``layers`` (``Layer_Dense`` objects, regularisation on them) the
    book's way: per step forward (ReLU between layers; dropout after the ReLU of hidden
    layer l with the trainer's mask, when ``dropout[l]``), the combined softmax and
    cross-entropy, backward, ``pre_update_params``, ``update_params`` per layer,
    ``post_update_params``.  Batches in order, or in the trainer's shuffled order.

    Returns one dict per epoch: data loss (mean over the epoch's samples), the
    regularisation loss of the epoch's last step (before its update) and after the
    epoch, accuracy, the learning rate of the last update, validation loss/accuracy
    (no dropout)."""
    n_layers = len(layers)
    dtype = layers[0].weights.dtype
    X = np.asarray(X, dtype)
    relus = [book.Activation_ReLU() for _ in range(n_layers - 1)]
    rates = list(dropout) if dropout is not None else [0.0] * (n_layers - 1)
    drops = [GivenDropout(r) if r else None for r in rates]
    head = book.Activation_Softmax_Loss_CategoricalCrossentropy()
    n = len(X)
    bs = n if batch_size is None else min(batch_size, n)
    n_batches = -(-n // bs)

    def forward(xb, iteration, training):
        out = xb
        for i, layer in enumerate(layers):
            layer.forward(out)
            out = layer.output
            if i < n_layers - 1:
                relus[i].forward(out)
                out = relus[i].output
                if training and drops[i] is not None:
                    drops[i].mask = dropout_keep_mask(seed, i, iteration, len(xb),
                                                      out.shape[1], drops[i].rate)
                    drops[i].forward(out)
                    out = drops[i].output
        return out

    def regularization():
        return float(sum(head.loss.regularization_loss(layer) for layer in layers))

    history = []
    for epoch in range(epochs):
        order = shuffle_order(seed, epoch, n) if shuffle and bs < n else np.arange(n)
        loss_sum, correct = 0.0, 0
        for step in range(n_batches):
            rows = order[step * bs:(step + 1) * bs]
            xb, yb = X[rows], y[rows]
            out = forward(xb, optimizer.iterations, True)
            head.forward(out, yb)
            loss_sum += float(np.sum(head.loss.forward(head.output, yb), dtype=np.float64))
            correct += int(np.sum(np.argmax(head.output, axis=1) == yb))
            reg_before = regularization()
            head.backward(head.output, yb)
            grad = head.dinputs
            for i in range(n_layers - 1, -1, -1):
                if i < n_layers - 1:
                    if drops[i] is not None:
                        drops[i].backward(grad)
                        grad = drops[i].dinputs
                    relus[i].backward(grad)
                    grad = relus[i].dinputs
                layers[i].backward(grad)
                grad = layers[i].dinputs
            optimizer.pre_update_params()
            for layer in layers:
                optimizer.update_params(layer)
            optimizer.post_update_params()
        row = dict(data_loss=loss_sum / n, reg_before=reg_before, reg_after=regularization(),
                   accuracy=correct / n, lr=float(optimizer.current_learning_rate),
                   val_loss=math.nan, val_accuracy=math.nan)
        if validation is not None:
            Xv, yv = validation
            out = forward(np.asarray(Xv, dtype), 0, False)
            head.activation.forward(out)
            probs = head.activation.output
            row["val_loss"] = float(np.mean(head.loss.forward(probs, yv), dtype=np.float64))
            row["val_accuracy"] = float(np.mean(np.argmax(probs, axis=1) == yv))
        history.append(row)
    return history


# --- comparing results ------------------------------------------------------------------------


def result_digest(result):
    """sha256 of everything a run must reproduce bit for bit (not the timing, the mode or
    why it stopped).  Also used by the subprocesses."""
    h = hashlib.sha256()
    h.update(result.params.dtype.str.encode())
    h.update(np.ascontiguousarray(result.params).tobytes())
    for arr in result.history:
        h.update(np.ascontiguousarray(arr).tobytes() + b"|")
    h.update(repr((result.loss, result.accuracy, result.data_loss, result.regularization_loss,
                   result.val_loss, result.val_accuracy, result.epochs, result.steps,
                   result.learning_rate, result.seed)).encode())
    return h.hexdigest()


def state_digest(layers):
    """sha256 of the parameters and optimizer state the run left on ``layers``."""
    h = hashlib.sha256()
    for layer in layers:
        for name in ("weights", "biases", *STATE_NAMES):
            value = getattr(layer, name, None)
            h.update(name.encode())
            if value is not None:
                value = np.asarray(value)
                h.update(value.dtype.str.encode() + np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def assert_same_result(a, b):
    assert a.params.dtype == b.params.dtype
    assert a.params.tobytes() == b.params.tobytes(), "params differ"
    for name, x, z in zip(a.history._fields, a.history, b.history, strict=True):
        assert x.dtype == z.dtype and x.tobytes() == z.tobytes(), f"history.{name} differs"
    assert result_digest(a) == result_digest(b)


def kernel_reached(self, steps):
    """Stands in for ``Training._call`` where no kernel may run."""
    raise AssertionError("a kernel was called")


def norm_rel(actual, expected):
    """max |actual - expected| / max |expected| (0 for two all-zero arrays)."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = np.max(np.abs(expected)) if expected.size else 0.0
    diff = np.max(np.abs(actual - expected)) if expected.size else 0.0
    return diff / scale if scale else diff


# =============================================================================================
# 1. Parity with the book's classes
# =============================================================================================

#: Norm-relative bounds (max |diff| / max |reference|) for parameters and optimizer state,
#: elementwise relative bounds for the per-epoch losses.
#:
#: float64, measured over the cases below: losses <= 8e-16, parameters <= 4e-13, state
#: <= 9e-14 (the trainer sums in another order than NumPy; differences stay at rounding
#: level over these lengths).  They do grow where the dynamics amplify rounding: L1 keeps
#: weights oscillating around 0, where sign(w) flips on a last-bit difference, and
#: Adam/RMSprop divide by the gradient's own size -- e.g. 2-8-6-3, RMSprop, L1,
#: mini-batches: 4e-13 after 20 epochs, 2e-9 after 30, 7e-7 after 50.  Hence <= 12
#: epochs with mini-batches, <= 30 full-batch, and starting points whose gradients are
#: not tiny (``start_params``; the book's own start: ``test_parity_from_the_books_
#: initialisation``).
#: float32 (against the book's classes in float32), measured: losses <= 9e-8 relative,
#: parameters <= 7e-7, state <= 1.9e-5 (a momentum that is a cancelling sum) after 3-5
#: epochs.  The trainer accumulates in another order (partly in float64) than NumPy's
#: float32 BLAS, and adaptive optimizers turn a gradient close to 0 (L1's +-l1
#: cancelling the data term) into a full step: e.g. 2-8-6-3 Adagrad, full batch, L1:
#: 1e-7 on the parameters after one epoch, 6e-6 after five (losses 4e-7).  Bounds:
#: ~10-30x the worst measured.
PARITY_TOL = {
    "float64": dict(loss=1e-10, params=1e-10, state=1e-10),
    "float32": dict(loss=2e-6, params=2e-5, state=2e-4),
}

R1 = (1e-4, 5e-4, 2e-4, 5e-4)  # weight L1, weight L2, bias L1, bias L2


@dataclass(frozen=True)
class Case:
    """One training compared epoch by epoch with ``book_training``."""

    sizes: tuple
    optimizer: str
    hyper: dict = field(default_factory=dict, hash=False)
    epochs: int = 20
    batch_size: int | None = None
    reg: tuple = R1
    reg_via: str = "layers"  # on the book's layers, or as train's keywords
    dropout: tuple | None = None
    shuffle: bool = False
    model: str = "book"
    dtype: str = "float64"
    init: str = "wide"
    seed: int = 0
    validation: bool = True
    samples: int = 100  # per class
    threads: int | None = None

    def __str__(self):
        parts = ["-".join(map(str, self.sizes)), self.dtype, self.optimizer,
                 *(f"{k}={v}" for k, v in self.hyper.items()), f"e{self.epochs}",
                 f"bs{self.batch_size}", self.model]
        if any(self.reg):
            parts.append(f"reg-{self.reg_via}")
        if self.dropout:
            parts.append(f"drop{list(self.dropout)}")
        if self.shuffle:
            parts.append("shuffle")
        if self.init != "wide":
            parts.append(f"init-{self.init}")
        if self.samples != 100:
            parts.append(f"n{self.samples * self.sizes[-1]}")
        return "|".join(parts)

    @property
    def family(self):
        return kt.train_family(list(self.sizes), bool(self.dropout and any(self.dropout)))


SGD = dict(learning_rate=0.5)
SGD_M = dict(learning_rate=0.5, momentum=0.9, decay=1e-3)
ADAGRAD = dict(learning_rate=0.5, decay=1e-3)
RMSPROP = dict(learning_rate=0.01, decay=1e-4, rho=0.95)
ADAM = dict(learning_rate=0.02, decay=1e-3, beta_1=0.8, beta_2=0.99)

CASES64 = [
    # pair23: 2-16-3, 2-5-3 (hidden units not a multiple of 4), 1-6-2
    Case((2, 16, 3), "sgd", SGD, epochs=30),
    Case((2, 16, 3), "sgd", SGD_M, batch_size=64, epochs=12, model="mlp", reg_via="kwargs"),
    Case((2, 16, 3), "adagrad", ADAGRAD, epochs=30, model="book+act"),
    Case((2, 16, 3), "rmsprop", RMSPROP, batch_size=50, epochs=12),
    Case((2, 16, 3), "adam", ADAM, epochs=30, validation=False),
    Case((2, 16, 3), "adam", ADAM, batch_size=64, epochs=12, shuffle=True, seed=5),
    Case((2, 5, 3), "adam", dict(learning_rate=0.05), batch_size=128, epochs=12,
         reg=(0, 0, 0, 0)),
    Case((1, 6, 2), "sgd", dict(learning_rate=1.0, momentum=0.5), epochs=30, model="notebook",
         reg_via="kwargs"),
    # deep_c3: 2-8-6-3, 3-5-3 (3 inputs), 2-3 (no hidden layer), dropout
    Case((2, 8, 6, 3), "sgd", SGD, batch_size=64, epochs=12),
    Case((2, 8, 6, 3), "sgd", SGD_M, epochs=30, model="book+act"),
    Case((2, 8, 6, 3), "adagrad", ADAGRAD, batch_size=64, epochs=12, model="mlp",
         reg_via="kwargs"),
    Case((2, 8, 6, 3), "rmsprop", RMSPROP, epochs=30),
    Case((2, 8, 6, 3), "adam", ADAM, batch_size=100, epochs=12, shuffle=True, seed=9),
    Case((3, 5, 3), "adam", ADAM, epochs=30, model="fastnn", reg_via="kwargs"),
    Case((2, 3), "sgd", SGD_M, batch_size=64, epochs=12),
    Case((2, 16, 3), "adam", ADAM, epochs=20, dropout=(0.25,), seed=3),
    Case((2, 8, 6, 3), "sgd", SGD_M, batch_size=64, epochs=12, dropout=(0.2, 0.5), seed=4,
         shuffle=True),
    Case((2, 9, 7, 3), "rmsprop", RMSPROP, epochs=20, dropout=(0.0, 0.3), seed=6,
         model="mlp", reg_via="kwargs"),
    # deep_cn: 2-8-5, 4-12-10-8-4, 6-7-4 (6 inputs), dropout
    Case((2, 8, 5), "sgd", SGD, epochs=30, model="book+act"),
    Case((2, 8, 5), "adagrad", ADAGRAD, batch_size=64, epochs=12),
    Case((4, 12, 10, 8, 4), "adam", ADAM, epochs=30),
    Case((4, 12, 10, 8, 4), "rmsprop", RMSPROP, batch_size=80, epochs=12, model="mlp",
         reg_via="kwargs"),
    Case((6, 7, 4), "sgd", SGD_M, batch_size=60, epochs=12, shuffle=True, seed=2),
    Case((2, 10, 6, 5), "adam", ADAM, batch_size=100, epochs=12, dropout=(0.1, 0.2), seed=8),
    # batches of one sample, of 33 (not a whole vector), and 3000 samples: a full batch
    # of three blocks added in order, validation in two blocks (threads=1: the serial
    # build; the parallel one is the float32 determinism tests')
    Case((2, 5, 3), "adam", ADAM, batch_size=1, epochs=2),
    Case((2, 8, 6, 3), "sgd", SGD_M, batch_size=33, epochs=5, dropout=(0.3, 0.1), seed=1),
    Case((2, 16, 3), "sgd", SGD_M, epochs=10, samples=1000, threads=1),
    Case((2, 32, 16, 3), "adam", ADAM, epochs=10, samples=1000, threads=1, dropout=(0.1, 0.1)),
]

CASES32 = [
    Case((2, 16, 3), "sgd", SGD, epochs=5, batch_size=64, dtype="float32"),
    Case((2, 16, 3), "adam", ADAM, epochs=5, dtype="float32", model="mlp", reg_via="kwargs"),
    Case((2, 16, 3), "rmsprop", RMSPROP, epochs=3, dtype="float32", batch_size=50,
         shuffle=True, seed=1),
    Case((2, 8, 6, 3), "sgd", SGD_M, epochs=5, dtype="float32", model="book+act"),
    Case((2, 8, 6, 3), "adagrad", ADAGRAD, epochs=3, batch_size=64, dtype="float32"),
    Case((2, 8, 6, 3), "adam", ADAM, epochs=3, dtype="float32", dropout=(0.2, 0.1), seed=2,
         batch_size=100),
]


def parity_data(case):
    d, classes = case.sizes[0], case.sizes[-1]
    X, y = dataset(d, classes, samples=case.samples, seed=0)
    validation = (dataset(d, classes, samples=max(40, case.samples // 2), seed=1)
                  if case.validation else None)
    return X, y, validation


def run_parity_case(case):
    """(result, the trained model's dense layers, the book's layers after the same
    training, the book's history, the book's optimizer, the validation data)."""
    X, y, validation = parity_data(case)
    n_layers = len(case.sizes) - 1
    p0 = start_params(case.sizes, seed=len(case.sizes) * 7 + case.seed, init=case.init)
    regs = [case.reg] * n_layers
    book_layers, _ = build_model("book", case.sizes, p0, case.dtype, regs)
    optimizer = BOOK_OPTIMIZERS[case.optimizer](**case.hyper)
    expected = book_training(book_layers, X.astype(case.dtype), y, optimizer, case.epochs,
                             batch_size=case.batch_size, dropout=case.dropout,
                             shuffle=case.shuffle, seed=case.seed, validation=validation)
    kwargs = {}
    if case.reg_via == "kwargs":
        model, dense = build_model(case.model, case.sizes, p0, case.dtype)
        kwargs = dict(zip(("weight_regularizer_l1", "weight_regularizer_l2",
                           "bias_regularizer_l1", "bias_regularizer_l2"), case.reg, strict=True))
    else:
        model, dense = build_model(case.model, case.sizes, p0, case.dtype, regs)
    if case.dropout is not None:
        kwargs["dropout"] = list(case.dropout)
    result = train(model, X.astype(case.dtype), y, optimizer=case.optimizer,
                   epochs=case.epochs, batch_size=case.batch_size, shuffle=case.shuffle,
                   seed=case.seed, validation=validation, threads=case.threads, **case.hyper,
                   **kwargs)
    return result, dense, book_layers, expected, optimizer, validation


def check_parity(case, result, dense, book_layers, expected, optimizer, validation):
    tol = PARITY_TOL[case.dtype]
    what = str(case)
    n = len(parity_data(case)[1])
    bs = n if case.batch_size is None else min(case.batch_size, n)
    n_batches = -(-n // bs)
    h = result.history
    assert isinstance(result, TrainResult)
    np.testing.assert_array_equal(h.epoch, np.arange(case.epochs))
    reg = np.array([r["reg_before"] if n_batches == 1 else r["reg_after"] for r in expected])
    data_loss = np.array([r["data_loss"] for r in expected])
    for name, got, want in (("data_loss", h.data_loss, data_loss),
                            ("regularization_loss", h.regularization_loss, reg),
                            ("loss", h.loss, data_loss + reg)):
        np.testing.assert_allclose(got, want, rtol=tol["loss"], atol=1e-300,
                                   err_msg=f"{what}: history.{name}")
    accuracy = np.array([r["accuracy"] for r in expected])
    if case.dtype == "float64":
        np.testing.assert_array_equal(h.accuracy, accuracy, err_msg=f"{what}: accuracy")
    else:  # a sample whose two best float32 probabilities are within rounding may flip
        assert np.max(np.abs(h.accuracy - accuracy)) * n <= 1.0 + 1e-9, what
    # the learning rate: the book's expression, evaluated the same way: equal bits
    np.testing.assert_array_equal(h.learning_rate, [r["lr"] for r in expected],
                                  err_msg=f"{what}: learning_rate")
    if validation is None:
        assert np.all(np.isnan(h.val_loss)) and np.all(np.isnan(h.val_accuracy))
        assert result.val_loss is None and result.val_accuracy is None
    else:
        np.testing.assert_allclose(h.val_loss, [r["val_loss"] for r in expected],
                                   rtol=tol["loss"], err_msg=f"{what}: val_loss")
        val_acc = np.array([r["val_accuracy"] for r in expected])
        if case.dtype == "float64":
            np.testing.assert_array_equal(h.val_accuracy, val_acc, err_msg=what)
        else:
            assert np.max(np.abs(h.val_accuracy - val_acc)) * len(validation[1]) <= 1 + 1e-9
    # the result's scalars are the last epoch's
    assert (result.loss, result.accuracy, result.data_loss, result.regularization_loss) == (
        h.loss[-1], h.accuracy[-1], h.data_loss[-1], h.regularization_loss[-1])
    assert (result.epochs, result.steps, result.stopped, result.interrupted) == (
        case.epochs, case.epochs * n_batches, "epochs", False)
    assert result.learning_rate == optimizer.current_learning_rate == h.learning_rate[-1]
    # parameters: in the result, in the model, and the book's
    expected_params = flat_params(book_layers)
    assert result.params.dtype == np.dtype(case.dtype)
    got = flat_params(dense)
    assert got.tobytes() == result.params.tobytes(), f"{what}: model != result.params"
    assert norm_rel(result.params, expected_params) <= tol["params"], (
        what, norm_rel(result.params, expected_params))
    # the optimizer's state on the layers: the names the book's optimizer created
    for i, (mine, theirs) in enumerate(zip(dense, book_layers, strict=True)):
        for name in STATE_NAMES:
            want = getattr(theirs, name, None)
            have = getattr(mine, name, None)
            assert (have is None) == (want is None), f"{what}: layer {i} {name}"
            if want is not None:
                have = np.asarray(have)
                # the trainer keeps the state in the parameters' dtype; the book's float32
                # dropout mask is float64 (an int draw / a float), so its float32 runs
                # with dropout make float64 gradients and float64 momentums and caches
                assert have.shape == want.shape and have.dtype == np.dtype(case.dtype), (
                    what, name, have.dtype)
                assert want.dtype == have.dtype or case.dropout, (what, name, want.dtype)
                err = norm_rel(have, want)
                assert err <= tol["state"], (what, i, name, err)


@pytest.mark.parametrize("case", CASES64 + CASES32, ids=str)
def test_epochs_match_the_books_classes(case):
    check_parity(case, *run_parity_case(case))


def test_parity_cases_cover_the_matrix():
    """Every optimizer in every family in float64; full batch and mini-batches, shuffled
    or not, dropout, validation, every model kind, both ways of giving the
    regularisation; pair23 and deep_c3 in float32."""
    families = {(c.family, c.optimizer) for c in CASES64}
    assert families == {(f, o) for f in ("pair23", "deep_c3", "deep_cn")
                        for o in BOOK_OPTIMIZERS}
    assert {c.family for c in CASES32} == {"pair23", "deep_c3"}
    assert {o for c in CASES32 for o in [c.optimizer]} == set(BOOK_OPTIMIZERS)
    for cases in (CASES64, CASES32):
        assert {c.batch_size is None for c in cases} == {True, False}
        assert {c.shuffle for c in cases} == {True, False}
        assert any(c.dropout for c in cases)
    assert {c.model for c in CASES64} == {"book", "book+act", "mlp", "notebook", "fastnn"}
    assert {c.reg_via for c in CASES64} == {"layers", "kwargs"}
    assert {c.validation for c in CASES64} == {True, False}
    assert any("momentum" in c.hyper for c in CASES64 if c.optimizer == "sgd")
    assert any("momentum" not in c.hyper for c in CASES64 if c.optimizer == "sgd")


ODD_SHAPES = [(2, 1, 3), (2, 2, 2), (1, 3, 3), (2, 7, 3), (2, 1, 1, 3), (3, 2, 5, 2),
              (5, 9, 6), (1, 1, 4), (2, 6), (6, 5, 3, 7)]


@pytest.mark.parametrize("sizes", ODD_SHAPES, ids=lambda s: "-".join(map(str, s)))
def test_odd_widths_match_the_book(sizes):
    """Widths that are not multiples of the kernels' 4 x 4 and 2-unit tiles (1, 2, 3,
    5, 7, ...), in every family: a few epochs of SGD with momentum and L1+L2."""
    case = Case(sizes, "sgd", SGD_M, epochs=6, batch_size=128, validation=False)
    check_parity(case, *run_parity_case(case))


@pytest.mark.parametrize("sizes", [(2, 64, 3), (2, 8, 6, 3)], ids=["2-64-3", "2-8-6-3"])
def test_parity_from_the_books_initialisation(sizes):
    """The book's chapter 10 set-up in float64: 0.01 N(0, 1) weights, zero biases, Adam
    at 0.05 with decay 5e-7, 10 epochs.  Measured (norm-relative): 2-64-3 3e-14;
    2-8-6-3 1.3e-10 after one epoch, 6e-10 after 3 and 10.  There the output bias's
    gradient is a sum of (p - onehot) / N over samples whose probabilities are all ~1/3:
    ~6e-8, known to ~5e-17 absolute (summation order), and Adam's first step
    ``lr * g / (|g| + 1e-7)`` has slope ~2e5 in g there -- a last-bit difference
    becomes a visible part of the step (8.6e-12 absolute on a bias of 0.019).  Both
    sides are right to rounding; losses still agree to 2e-13."""
    case = Case(sizes, "adam", dict(learning_rate=0.05, decay=5e-7), epochs=10,
                reg=(0, 0, 0, 0), init="book")
    result, dense, book_layers, expected, optimizer, validation = run_parity_case(case)
    np.testing.assert_allclose(result.history.loss, [r["data_loss"] for r in expected],
                               rtol=1e-11)
    assert norm_rel(result.params, flat_params(book_layers)) < 1e-8
    np.testing.assert_array_equal(result.history.learning_rate, [r["lr"] for r in expected])


@pytest.mark.parametrize("case", [c for c in CASES64 if c.validation][:6] + [CASES32[0]],
                         ids=str)
def test_validation_equals_mlp_evaluate_after_training(case):
    """The last epoch's validation loss and accuracy are those of ``MLP.evaluate`` (no
    dropout) on the validation data with the trained parameters."""
    result, *_, validation = run_parity_case(case)
    mlp = fastnn.MLP(list(case.sizes), seed=0, dtype=case.dtype)
    mlp.params = result.params
    loss, accuracy = mlp.evaluate(*validation)
    t = ref.tol(case.dtype)
    assert accuracy == result.val_accuracy == result.history.val_accuracy[-1]
    assert abs(loss - result.val_loss) <= 4 * t["rtol"] * loss, (loss, result.val_loss)


# =============================================================================================
# 2. Determinism: seeds, builds, threads, chunks, resume, processes
# =============================================================================================

#: 3000 samples: a full batch is three blocks of 1024, a batch of 1500 two -- enough for
#: the parallel build (blocks in prange) with two threads.  float32 (the default dtype).
DET = {
    "pair23": ((2, 16, 3), dict(batch_size=1500, optimizer="adam", learning_rate=0.02,
                                decay=1e-3, weight_regularizer_l2=5e-4,
                                bias_regularizer_l1=1e-4, seed=7)),
    "dropout": ((2, 32, 16, 3), dict(batch_size=1500, optimizer="sgd", learning_rate=0.5,
                                     momentum=0.9, decay=1e-3, dropout=[0.2, 0.1],
                                     weight_regularizer_l1=1e-5, seed=8)),
}


def det_data():
    return dataset(samples=1000), dataset(samples=200, seed=1)


def det_run(name, epochs=30, model=None, **kwargs):
    """(result, model) of one of the ``DET`` runs (an MLP from seed 3, float32, with
    validation data), with ``kwargs`` overriding its arguments."""
    sizes, args = DET[name]
    (X, y), validation = det_data()
    model = fastnn.MLP(list(sizes), seed=3, dtype="float32") if model is None else model
    result = train(model, X, y, epochs=epochs, validation=validation, **{**args, **kwargs})
    return result, model


def det_digest(result, model):
    return result_digest(result) + state_digest(model.layers)


def parallel_mode():
    """The mode a several-block batch runs in on the main thread with all threads."""
    return "parallel" if NT >= 2 else "serial"


@pytest.mark.parametrize("name", list(DET))
@pytest.mark.parametrize("batch_size", [1500, None], ids=["batches", "full"])
def test_same_bits_serial_and_parallel_on_any_number_of_threads(name, batch_size):
    first, model = det_run(name, batch_size=batch_size, threads=1)
    assert first.mode == "serial"
    assert model.params.tobytes() == first.params.tobytes()
    expected = det_digest(first, model)
    for threads in (None, *range(1, NT + 1)):
        again, model = det_run(name, batch_size=batch_size, threads=threads)
        assert again.mode == ("serial" if threads == 1 else parallel_mode())
        assert_same_result(again, first)
        assert det_digest(again, model) == expected
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        again, model = det_run(name, batch_size=batch_size)
    finally:
        numba.set_num_threads(before)
    assert again.mode == "serial" and numba.get_num_threads() == before
    assert det_digest(again, model) == expected


def test_seed_drives_the_shuffle_and_the_masks_only():
    """Different seeds: a different shuffle (and different dropout masks), different
    results; with neither (full batch, no dropout) the seed changes nothing."""
    a, _ = det_run("pair23", epochs=5, seed=1)
    b, _ = det_run("pair23", epochs=5, seed=2)
    assert (a.seed, b.seed) == (1, 2) and a.params.tobytes() != b.params.tobytes()
    c, _ = det_run("dropout", epochs=5, seed=1, batch_size=None)
    d, _ = det_run("dropout", epochs=5, seed=2, batch_size=None)
    assert c.params.tobytes() != d.params.tobytes()
    e, _ = det_run("pair23", epochs=5, seed=1, batch_size=None)
    f, _ = det_run("pair23", epochs=5, seed=2, batch_size=None)
    assert_same_result(e, replace(f, seed=1))
    g, _ = det_run("pair23", epochs=5, seed=1, shuffle=False)
    h, _ = det_run("pair23", epochs=5, seed=2, shuffle=False)
    assert g.params.tobytes() == h.params.tobytes() != a.params.tobytes()


def test_seed_none_is_reported_and_reproduces_the_run():
    a, _ = det_run("pair23", epochs=3, seed=None)
    b, _ = det_run("pair23", epochs=3, seed=None)
    assert isinstance(a.seed, int) and 0 <= a.seed < 2 ** 64 and a.seed != b.seed
    again, _ = det_run("pair23", epochs=3, seed=a.seed)
    assert_same_result(again, a)


def test_the_shuffle_is_a_fresh_permutation_every_epoch(tmp_path):
    """The checkpoint's ``perm`` (the last epoch's order) is a permutation, the one the
    parity tests re-derive, and different from epoch to epoch."""
    (X, _), _ = det_data()
    perms = []
    for epochs in (1, 2, 3):
        path = tmp_path / f"{epochs}.npz"
        det_run("pair23", epochs=epochs, checkpoint=path)
        perm = load_checkpoint(path)[0]["perm"]
        np.testing.assert_array_equal(np.sort(perm), np.arange(len(X)))
        np.testing.assert_array_equal(perm, shuffle_order(7, epochs - 1, len(X)))
        perms.append(perm)
    assert not np.array_equal(perms[0], perms[1]) and not np.array_equal(perms[1], perms[2])


def small_chunks(monkeypatch, first=1):
    """Chunks of one step or a few (results must not depend on the chunking)."""
    monkeypatch.setattr(train_module, "_FIRST_CHUNK", first)
    monkeypatch.setattr(fastnn.driver, "CHUNK_SECONDS", 1e-6)


SMALL_RUNS = {  # one block, full batch, serial: the samples stay loaded between steps
    "pair23-f64": ((2, 16, 3), "float64", dict(optimizer="adam", learning_rate=0.02)),
    "deep-f64": ((2, 8, 6, 3), "float64", dict(optimizer="rmsprop", dropout=0.1)),
    "pair23-f32": ((2, 16, 3), "float32", dict(optimizer="sgd", momentum=0.5)),
}


def small_run(name, validation=True, **kwargs):
    sizes, dtype, args = SMALL_RUNS[name]
    X, y = dataset()
    model = fastnn.MLP(list(sizes), seed=1, dtype=dtype)
    val = dataset(samples=30, seed=2) if validation else None
    return train(model, X, y, epochs=40, seed=4, validation=val, **{**args, **kwargs}), model


@pytest.mark.parametrize("name", list(DET) + list(SMALL_RUNS))
def test_chunking_and_record_buffers_change_nothing(name, monkeypatch):
    run = det_run if name in DET else small_run
    normal = [run(name), run(name, validation=None)] if name in SMALL_RUNS else [run(name)]
    small_chunks(monkeypatch)
    calls = []
    chunked = [run(name, callback=lambda r: calls.append(r.steps))]
    if name in SMALL_RUNS:
        chunked.append(run(name, validation=None))
    assert len(calls) >= 30 and calls == sorted(calls)
    monkeypatch.setattr(train_module, "_RECORD_CAP", 3)  # a chunk ends when it is full
    capped = run(name)
    for a, b in zip(chunked, normal, strict=True):
        assert_same_result(a[0], b[0])
        assert state_digest(a[1].layers) == state_digest(b[1].layers)
    assert_same_result(capped[0], normal[0][0])


@pytest.mark.parametrize("name", list(DET))
def test_resume_from_checkpoints_written_mid_run_and_mid_epoch(name, tmp_path, monkeypatch):
    """Copies of the checkpoint taken between chunks of one step (from the callback),
    some in the middle of an epoch, each resume to the uninterrupted result (including
    the optimizer state left on the model)."""
    full, full_model = det_run(name, epochs=12)
    small_chunks(monkeypatch)
    path = tmp_path / "run.npz"
    copies = []

    def callback(result):
        if path.exists() and result.steps % 5 in (1, 4) and len(copies) < 5:
            copies.append(tmp_path / f"copy{len(copies)}.npz")
            shutil.copy(path, copies[-1])

    det_run(name, epochs=12, checkpoint=path, checkpoint_every=1e-9, callback=callback)
    states = [load_checkpoint(p)[0]["istate"] for p in copies]
    assert len(copies) == 5
    assert any(s[kt.STEP] != 0 for s in states), "no copy in the middle of an epoch"
    assert len({int(s[kt.EPOCH]) for s in states}) >= 3
    for p in copies:
        resumed, model = det_run(name, epochs=12, resume=p)
        assert_same_result(resumed, full)
        assert det_digest(resumed, model) == det_digest(full, full_model)


def test_resume_continues_a_finished_run_and_keeps_the_model_in_step(tmp_path):
    full, _ = det_run("dropout", epochs=20)
    path = tmp_path / "run.npz"
    part, model = det_run("dropout", epochs=7, checkpoint=path)
    assert part.epochs == 7 and part.steps == 14 and path.exists()
    # the same model object, which now holds the partial run's parameters
    mid, _ = det_run("dropout", model=model, epochs=13, resume=path, checkpoint=path)
    assert (mid.epochs, mid.steps) == (13, 26)
    done, model = det_run("dropout", model=model, epochs=20, resume=path)
    assert_same_result(done, full)
    assert model.params.tobytes() == full.params.tobytes()
    # resuming a finished run to the same length changes nothing
    again, _ = det_run("dropout", epochs=13, resume=path)
    assert_same_result(again, mid)
    fresh = fastnn.MLP([2, 32, 16, 3], seed=3, dtype="float32")
    snapshot = fresh.params.tobytes()
    with pytest.raises(ValueError, match="epochs") as info:
        det_run("dropout", model=fresh, epochs=12, resume=path)
    assert not isinstance(info.value, CheckpointError)
    assert fresh.params.tobytes() == snapshot  # the model is left alone


def small_checkpoint(tmp_path, **kwargs):
    X, y = dataset()
    path = tmp_path / "run.npz"
    args = dict(epochs=5, batch_size=64, seed=3, checkpoint=path, optimizer="adam",
                learning_rate=0.01)
    train(fastnn.MLP([2, 6, 3], seed=0), X, y, **{**args, **kwargs})
    return path, X, y, args


MISMATCHES = {
    "data": dict(X=lambda X: X + 1e-3),
    "labels": dict(y=lambda y: np.roll(y, 1)),
    "layer_sizes": dict(model=lambda: fastnn.MLP([2, 8, 3], seed=0)),
    "dtype": dict(model=lambda: fastnn.MLP([2, 6, 3], seed=0, dtype="float64")),
    "seed": dict(kwargs={"seed": 4}),
    "batch_size": dict(kwargs={"batch_size": 32}),
    "shuffle": dict(kwargs={"shuffle": False}),
    "optimizer": dict(kwargs={"learning_rate": 0.02}),
    "regularizers": dict(kwargs={"weight_regularizer_l2": 1e-3}),
    "keep": dict(kwargs={"dropout": 0.1}),
    "target_loss": dict(kwargs={"target_loss": 0.01}),
    "patience": dict(kwargs={"patience": 100}),
}


@pytest.mark.parametrize("what", list(MISMATCHES))
def test_resume_refuses_a_different_run(what, tmp_path):
    path, X, y, args = small_checkpoint(tmp_path)
    change = MISMATCHES[what]
    X = change.get("X", lambda X: X)(X)
    y = change.get("y", lambda y: y)(y)
    model = change.get("model", lambda: fastnn.MLP([2, 6, 3], seed=0))()
    before = model.params.tobytes()
    args = {**args, "epochs": 10, "checkpoint": None, "resume": path,
            **change.get("kwargs", {})}
    with pytest.raises(CheckpointError) as info:
        train(model, X, y, **args)
    assert str(path) in str(info.value)
    assert model.params.tobytes() == before


def test_resume_refuses_damaged_and_missing_files(tmp_path):
    path, X, y, args = small_checkpoint(tmp_path)
    args = {**args, "epochs": 10, "checkpoint": None}
    bad = tmp_path / "bad.npz"
    data = path.read_bytes()
    model = fastnn.MLP([2, 6, 3], seed=0)
    before = model.params.tobytes()
    for content in (data[:len(data) // 2], b"", b"garbage" * 20):
        bad.write_bytes(content)
        with pytest.raises(CheckpointError, match="bad.npz"):
            train(model, X, y, resume=bad, **args)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        train(model, X, y, resume=tmp_path / "missing.npz", **args)
    assert model.params.tobytes() == before


def test_checkpoint_holds_the_optimizer_state(tmp_path):
    """A resumed run needs the momentums and caches: resuming onto a model whose
    layers carry other (or no) state still gives the uninterrupted result."""
    full, full_model = det_run("pair23", epochs=6)
    path = tmp_path / "run.npz"
    det_run("pair23", epochs=3, checkpoint=path)
    stranger = fastnn.MLP([2, 16, 3], seed=99, dtype="float32")
    for layer in stranger.layers:  # state the resumed run must ignore
        layer.weight_cache = np.full(layer.weights.shape, 5.0, np.float32)
    resumed, model = det_run("pair23", model=stranger, epochs=6, resume=path)
    assert_same_result(resumed, full)
    assert det_digest(resumed, model) == det_digest(full, full_model)


# --- subprocesses: SIGKILL, Ctrl-C, NUMBA_NUM_THREADS, a warm cache -------------------------
# They run the "pair23" DET configuration (float32: the serial and parallel loop builds and
# one block build) with this process's Numba cache (``subproc.env()``), which the tests
# above have filled: a subprocess loads instead of compiling.


def proc_env(**extra):
    return env(**extra)


LONG_RUN = r"""
import json, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
sys.path.insert(0, {tests!r})
from test_train import det_run, det_digest

print("ready", flush=True)
r, model = det_run("pair23", epochs=10**7, checkpoint=sys.argv[1], checkpoint_every=0.05)
print(json.dumps(dict(digest=det_digest(r, model), interrupted=r.interrupted,
                      stopped=r.stopped, epochs=r.epochs, steps=r.steps, mode=r.mode,
                      written_back=model.params.tobytes() == r.params.tobytes())), flush=True)
"""


def start_long_run(path):
    proc = subprocess.Popen(
        [sys.executable, "-c", LONG_RUN.format(tests=str(TESTS)), str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=proc_env())
    assert proc.stdout.readline() == "ready\n", proc.stderr.read()
    deadline = time.monotonic() + 600  # a cold Numba cache compiles first
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)
    time.sleep(0.3)  # a few more chunks and checkpoints
    return proc


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    path = tmp_path / "run.npz"
    proc = start_long_run(path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = int(load_checkpoint(path)[0]["istate"][kt.EPOCH])
    assert done > 0
    resumed, model = det_run("pair23", epochs=done + 5, resume=path)
    full, full_model = det_run("pair23", epochs=done + 5)
    assert_same_result(resumed, full)
    assert det_digest(resumed, model) == det_digest(full, full_model)


@pytest.mark.slow
def test_ctrl_c_returns_what_was_reached_and_a_resumable_checkpoint(tmp_path):
    path = tmp_path / "run.npz"
    proc = start_long_run(path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    got = json.loads(out.strip().splitlines()[-1])
    assert got["interrupted"] is True and got["stopped"] == "interrupted"
    assert 0 < got["epochs"] < 10 ** 7 and got["written_back"]
    assert got["mode"] == parallel_mode()
    # the checkpoint holds exactly the state that was returned (mid-epoch or not) ...
    at_stop, model = det_run("pair23", epochs=got["epochs"], resume=path)
    assert at_stop.steps == got["steps"]
    assert det_digest(at_stop, model) == got["digest"]
    # ... which resumes to the uninterrupted run
    total = got["epochs"] + 5
    resumed, model = det_run("pair23", epochs=total, resume=path)
    full, full_model = det_run("pair23", epochs=total)
    assert_same_result(resumed, full)
    assert det_digest(resumed, model) == det_digest(full, full_model)


THREADS_PROBE = r"""
import json, sys
sys.path.insert(0, {tests!r})
import numba
from test_train import det_run, det_digest

out = {{"NUMBA_NUM_THREADS": numba.config.NUMBA_NUM_THREADS}}
for threads in (None, *range(1, numba.config.NUMBA_NUM_THREADS + 1)):
    for batch_size in (1500, None):
        r, model = det_run("pair23", epochs=10, batch_size=batch_size, threads=threads)
        out[f"threads={{threads}} batch_size={{batch_size}}"] = [det_digest(r, model), r.mode]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_bit_identical_across_processes_and_numba_thread_counts():
    """NUMBA_NUM_THREADS=1 and 2 (set before numba is imported), threads=, full batch and
    mini-batches: the digests of this process's serial runs everywhere."""
    expected = {}
    for batch_size in (1500, None):
        r, model = det_run("pair23", epochs=10, batch_size=batch_size, threads=1)
        expected[batch_size] = det_digest(r, model)
    modes = set()
    for n in (1, 2):
        proc = run_python(THREADS_PROBE.format(tests=str(TESTS)),
                          env=proc_env(NUMBA_NUM_THREADS=str(n)))
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out.pop("NUMBA_NUM_THREADS") == n
        for label, (digest, mode) in out.items():
            batch_size = None if label.endswith("None") else 1500
            assert digest == expected[batch_size], f"NUMBA_NUM_THREADS={n} {label} ({mode})"
            modes.add(mode)
    assert modes == {"serial", "parallel"}


CACHE_PROBE = r"""
import json, sys
sys.path.insert(0, {tests!r})
from test_train import det_run, det_digest
from fastnn import _config

r, model = det_run("pair23", epochs=3)  # the first kernel call of this process
hits = sum(sum(d.stats.cache_hits.values()) for k, d in _config.KERNELS.items()
           if "_train" in k and "parallel" in k)
print(json.dumps(dict(mode=r.mode, digest=det_digest(r, model), hits=hits)))
"""


@pytest.mark.slow
@pytest.mark.skipif(NT < 2, reason="the parallel build needs 2 Numba threads")
def test_a_fresh_process_loads_the_parallel_kernel_from_a_warm_cache(tmp_path):
    """numba 0.68 crashed loading a cached kernel that calls ``numba.get_thread_id``
    before Numba's threads were started; the trainer starts them first.  Two fresh
    processes in a row on one cache directory: the second (at least) loads the parallel
    loop from the disk cache, as the first thing it runs."""
    from fastnn import _config
    cache = {} if _config.CACHE else {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    r, model = det_run("pair23", epochs=3, threads=1)
    for attempt in range(2):
        proc = run_python(CACHE_PROBE.format(tests=str(TESTS)), env=proc_env(**cache))
        assert proc.returncode == 0, (attempt, proc.returncode, proc.stderr[-3000:])
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["mode"] == "parallel" and out["digest"] == det_digest(r, model)
    assert out["hits"] >= 1, "the second process compiled the parallel loop again"


# =============================================================================================
# 3. Dropout
# =============================================================================================


def one_sample_dropout_step(rate, seed, units=2048, dtype="float64"):
    """One SGD step (lr 1) on one sample through 2-units-3 with dropout ``rate``: every
    hidden unit is active (W1 >= 0, b1 = 1, x > 0) and its gradient non-zero, so a
    hidden bias stays unchanged exactly where its unit was dropped.  Returns the mask
    seen (True: kept), the result and the start parameters."""
    rng = np.random.default_rng(seed + 100)
    W1 = np.abs(rng.standard_normal((2, units))) * 0.1
    W2 = rng.standard_normal((units, 3)) * 0.1
    p0 = ref.mlp_params_join([(W1, np.ones(units)), (W2, np.zeros(3))]).astype(dtype)
    model, _ = build_model("mlp", (2, units, 3), p0, dtype)
    X, y = np.array([[0.5, 0.25]]), np.array([1])
    result = train(model, X, y, optimizer="sgd", learning_rate=1.0, epochs=1, seed=seed,
                   dropout=rate)
    b1_before = p0[2 * units:3 * units]
    b1_after = result.params[2 * units:3 * units]
    return b1_after != b1_before, result, p0


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_keeps_a_fraction_close_to_one_minus_rate(rate):
    """Measured through a training step: the fraction of hidden units that received a
    gradient is 1 - rate (binomial, 5 sigma), the mask is the counter-based one
    (``dropout_keep_mask``), and the step equals the book's with that mask."""
    kept, result, p0 = one_sample_dropout_step(rate, seed=11)
    units = kept.size
    sigma = math.sqrt(rate * (1 - rate) / units)
    assert abs(kept.mean() - (1 - rate)) < 5 * sigma, (kept.mean(), 1 - rate)
    np.testing.assert_array_equal(kept, dropout_keep_mask(11, 0, 0, 1, units, 1 - rate)[0])
    # the book's step with this mask: kept units scaled by 1 / (1 - rate)
    layers, _ = build_model("book", (2, units, 3), p0, "float64")
    book_training(layers, np.array([[0.5, 0.25]]), np.array([1]),
                  book.Optimizer_SGD(learning_rate=1.0), 1, dropout=(rate,), seed=11)
    assert norm_rel(result.params, flat_params(layers)) < 1e-14


def test_masks_differ_between_seeds_and_steps():
    a, *_ = one_sample_dropout_step(0.5, seed=1)
    b, *_ = one_sample_dropout_step(0.5, seed=2)
    assert 0.4 < np.mean(a == b) < 0.6  # independent masks agree on about half the units
    # the mask of update number 1 is another draw than that of update 0
    assert not np.array_equal(dropout_keep_mask(1, 0, 0, 1, 64, 0.5),
                              dropout_keep_mask(1, 0, 1, 1, 64, 0.5))


def test_dropout_zero_is_no_dropout_bit_for_bit():
    """dropout=0 (a number or a list of zeros) and no dropout at all: the same bits,
    whatever the seed; a zero rate also overrides a list's ``Layer_Dropout``."""
    plain, _ = det_run("dropout", epochs=4, dropout=None)
    for dropout in (0, 0.0, [0.0, 0.0], np.zeros(2)):
        again, _ = det_run("dropout", epochs=4, dropout=dropout)
        assert_same_result(again, plain)
    full, _ = det_run("dropout", epochs=4, dropout=None, batch_size=None)
    again, _ = det_run("dropout", epochs=4, dropout=0, batch_size=None, seed=99)
    assert again.params.tobytes() == full.params.tobytes()  # no shuffle, no masks: no seed
    with_drop, _ = det_run("dropout", epochs=4)
    assert with_drop.params.tobytes() != plain.params.tobytes()
    X, y = dataset()
    p0 = start_params((2, 8, 6, 3), 1)
    runs = []
    for dropout_layer, kwargs in ((None, {}), (0.3, {"dropout": 0}), (0.0, {})):
        model, dense = build_model("book", (2, 8, 6, 3), p0, "float64")
        stack = [dense[0], book.Activation_ReLU()]
        if dropout_layer is not None:
            stack.append(book.Layer_Dropout(dropout_layer))
        stack += [dense[1], book.Activation_ReLU(), dense[2], book.Activation_Softmax()]
        runs.append(train(stack, X, y, epochs=5, seed=1, **kwargs))
    for r in runs[1:]:
        assert_same_result(r, runs[0])


def test_validation_and_evaluation_use_no_dropout():
    """With dropout 0.5 the training loss is measured through the masks, the validation
    loss without: it equals ``MLP.evaluate`` on the validation data, and a run's
    validation of its training data equals ``evaluate`` on it, not the training loss."""
    X, y = dataset()
    model = fastnn.MLP([2, 32, 3], seed=2, dtype="float64")
    r = train(model, X, y, epochs=30, seed=3, dropout=0.5, validation=(X, y),
              optimizer="adam", learning_rate=0.02)
    loss, accuracy = model.evaluate(X, y)
    assert accuracy == r.val_accuracy
    assert abs(loss - r.val_loss) <= 1e-12 * loss
    assert abs(r.data_loss - r.val_loss) > 1e-3  # the training pass did drop units


# =============================================================================================
# 4. Stop rules
# =============================================================================================


def stop_run(epochs=3000, model=None, X=None, y=None, **kwargs):
    if X is None:
        X, y = dataset()
    model = fastnn.MLP([2, 32, 3], seed=1) if model is None else model
    args = dict(optimizer="adam", learning_rate=0.05, seed=0)
    return train(model, X, y, epochs=epochs, **{**args, **kwargs}), model


def test_target_loss_on_the_training_loss():
    r, model = stop_run(target_loss=0.5)
    h = r.history
    assert r.stopped == "target_loss" and not r.interrupted
    assert h.loss[-1] <= 0.5 < h.loss[:-1].min()  # stops right after the epoch that got there
    assert r.epochs == len(h.epoch) < 3000 and r.steps == r.epochs
    assert model.params.tobytes() == r.params.tobytes()
    again, _ = stop_run(epochs=r.epochs)
    assert again.stopped == "epochs"
    assert_same_result(again, r)


def test_target_loss_counts_the_regularization_loss():
    """With L2 the data loss goes below 1.0 while data + regularisation never does: the
    run goes on (the monitored training loss includes the regularisation)."""
    r, _ = stop_run(epochs=400, weight_regularizer_l2=1e-3, target_loss=1.0)
    assert r.history.data_loss.min() < 0.97
    assert r.history.loss.min() > 1.0
    assert r.stopped == "epochs" and r.epochs == 400


def test_target_loss_on_the_validation_loss():
    X, y = dataset()
    val = dataset(samples=50, seed=1)
    r, _ = stop_run(validation=val, target_loss=0.6)
    h = r.history
    assert r.stopped == "target_loss"
    assert h.val_loss[-1] <= 0.6 < h.val_loss[:-1].min()
    assert r.val_loss == h.val_loss[-1]


def test_target_loss_met_after_the_first_epoch():
    r, _ = stop_run(target_loss=10.0)
    assert (r.stopped, r.epochs, r.steps) == ("target_loss", 1, 1)


def test_patience_restores_the_parameters_of_the_best_epoch():
    """On validation data: stops ``patience`` epochs after the best validation loss; the
    model and the result hold the parameters after the best epoch (whose validation
    loss that was): the same bits as a run that ends there."""
    X, y = dataset(samples=20, seed=3)  # 60 samples, 64 units: validation turns up early
    val = dataset(samples=100, seed=1)
    model = fastnn.MLP([2, 64, 3], seed=1)
    start = model.params.copy()
    r, model = stop_run(model=model, X=X, y=y, validation=val, patience=30)
    monitored = r.history.val_loss
    best = int(np.argmin(monitored))
    assert r.stopped == "patience"
    assert r.epochs == best + 30 + 1 == len(monitored)
    assert np.all(monitored[best + 1:] >= monitored[best])
    assert r.loss == r.history.loss[-1]  # the last epoch's, as the book prints them
    assert model.params.tobytes() == r.params.tobytes()
    rerun_model = fastnn.MLP([2, 64, 3], seed=0)
    rerun_model.params = start
    rerun, _ = stop_run(model=rerun_model, X=X, y=y, validation=val, epochs=best + 1)
    assert r.params.tobytes() == rerun.params.tobytes()
    assert rerun.val_loss == monitored[best]
    assert model.evaluate(*val)[0] == pytest.approx(monitored[best], rel=1e-6)


def test_patience_on_the_training_loss_restores_the_parameters_that_had_it():
    """Full batch, no validation, SGD at lr 5 (it stalls and oscillates), patience 5:
    stops at epoch 33, the best training loss 1.085294 at epoch 27.  That loss was
    measured on the parameters after 27 updates; those are the best the run saw and
    the ones to restore.  The trainer restores the parameters after 28 updates, whose
    loss is 1.085932 (epoch 28's)."""
    X, y = dataset()
    model = fastnn.MLP([2, 32, 3], seed=1)
    start = model.params.copy()
    r, model = stop_run(model=model, X=X, y=y, optimizer="sgd", learning_rate=5.0, patience=5)
    best = int(np.argmin(r.history.loss))
    assert r.stopped == "patience" and r.epochs == best + 5 + 1
    rerun_model = fastnn.MLP([2, 32, 3], seed=0)
    rerun_model.params = start
    before_best_update, _ = stop_run(model=rerun_model, X=X, y=y, optimizer="sgd",
                                     learning_rate=5.0, epochs=best)
    assert model.evaluate(X, y)[0] == pytest.approx(r.history.loss[best], rel=1e-6)
    assert r.params.tobytes() == before_best_update.params.tobytes()


def test_divergence_stops_with_the_last_finite_parameters():
    """SGD at lr 1e20 in float32: the update of epoch 2 overflows.  The run stops with
    stopped="diverged" and a RuntimeWarning, the history holds the finite epochs, and
    the model gets the parameters before that update: those of a 2-epoch run."""
    X, y = dataset()
    model = fastnn.MLP([2, 16, 3], seed=1)
    with pytest.warns(RuntimeWarning, match="NaN or infinite"):
        r = train(model, X, y, optimizer="sgd", learning_rate=1e20, epochs=50, seed=0)
    assert r.stopped == "diverged" and not r.interrupted
    assert (r.epochs, r.steps) == (2, 2)
    assert np.all(np.isfinite(r.params)) and np.all(np.isfinite(r.history.loss))
    assert model.params.tobytes() == r.params.tobytes()
    again = train(fastnn.MLP([2, 16, 3], seed=1), X, y, optimizer="sgd", learning_rate=1e20,
                  epochs=2, seed=0)
    assert again.stopped == "epochs" and again.params.tobytes() == r.params.tobytes()


def test_divergence_in_the_first_update_keeps_the_start():
    """lr 1e100 is infinite in float32: the first update already leaves non-finite
    parameters; the model keeps its start, no epoch is recorded."""
    X, y = dataset()
    model = fastnn.MLP([2, 16, 3], seed=1)
    start = model.params.copy()
    with pytest.warns(RuntimeWarning, match="NaN or infinite"):
        r = train(model, X, y, optimizer="sgd", learning_rate=1e100, epochs=5, seed=0)
    assert (r.stopped, r.epochs, r.steps, len(r.history.epoch)) == ("diverged", 0, 0, 0)
    assert model.params.tobytes() == start.tobytes() == r.params.tobytes()
    # the result describes the parameters kept (the start), not a last epoch
    assert (r.data_loss, r.accuracy) == model.evaluate(X, y)


def test_divergence_never_returns_parameters_whose_outputs_are_nan():
    """float64 SGD at lr 1e160: after one update the logits overflow (inf - inf = NaN in
    the softmax).  The book's loss of those parameters is NaN, so the run must return
    the parameters before that update (the start), whose outputs are finite."""
    X, y = dataset()
    model = fastnn.MLP([2, 16, 3], seed=1, dtype="float64")
    start = model.params.copy()
    with pytest.warns(RuntimeWarning, match="NaN or infinite"):
        r = train(model, X, y, optimizer="sgd", learning_rate=1e160, epochs=5, seed=0)
    assert r.stopped == "diverged"
    with np.errstate(all="ignore"):
        assert np.all(np.isfinite(model.forward(X))), "the model's outputs are NaN"
    assert r.params.tobytes() == start.tobytes()


def test_divergence_leaves_the_state_of_the_parameters_it_returns():
    """SGD with momentum at lr 1e20 diverges; the layers get the parameters of the last
    step whose loss was finite *and* the momentums and iteration count that go with
    them: exactly the state of a run stopped after that many updates (the failed update's
    non-finite momentums are not written back)."""
    X, y = dataset()
    p0 = start_params((2, 16, 3), 1)
    layers, _ = build_model("book", (2, 16, 3), p0, "float32")
    opt = fastnn.Optimizer_SGD(learning_rate=1e20, momentum=0.5)
    with pytest.warns(RuntimeWarning, match="NaN or infinite"):
        r = train(layers, X, y, optimizer=opt, epochs=50, seed=0)
    assert r.stopped == "diverged" and np.all(np.isfinite(r.params))
    assert all(np.all(np.isfinite(layer.weight_momentums)) for layer in layers)
    assert opt.iterations == r.steps > 0
    again, _ = build_model("book", (2, 16, 3), p0, "float32")
    opt2 = fastnn.Optimizer_SGD(learning_rate=1e20, momentum=0.5)
    ref = train(again, X, y, optimizer=opt2, epochs=r.steps, seed=0)  # full batch
    assert ref.stopped == "epochs" and ref.steps == r.steps
    assert r.params.tobytes() == ref.params.tobytes()
    for mine, theirs in zip(layers, again, strict=True):
        for name in ("weights", "biases", "weight_momentums", "bias_momentums"):
            assert getattr(mine, name).tobytes() == getattr(theirs, name).tobytes(), name


def test_callback_sees_progress_and_can_stop_the_run(monkeypatch):
    small_chunks(monkeypatch, first=2)
    seen = []

    def callback(result):
        seen.append(result)
        return len(seen) == 3

    r, model = stop_run(epochs=10_000, callback=callback)
    assert len(seen) == 3 and all(isinstance(s, TrainResult) for s in seen)
    assert [s.steps for s in seen] == sorted({s.steps for s in seen})
    assert r.stopped == "callback" and not r.interrupted and r.epochs < 10_000
    assert_same_result(r, seen[-1])
    assert model.params.tobytes() == r.params.tobytes()
    full, _ = stop_run(epochs=r.epochs)
    assert_same_result(r, full)


def test_callback_returning_falsy_does_not_stop_and_an_exception_keeps_the_progress(
        monkeypatch):
    small_chunks(monkeypatch, first=2)
    calls = []
    r, _ = stop_run(epochs=30, callback=lambda result: calls.append(result.steps))
    assert calls and r.stopped == "epochs" and r.epochs == 30
    seen = []

    def failing(result):
        seen.append(result)
        if len(seen) == 2:
            raise KeyError("from the callback")

    model = fastnn.MLP([2, 32, 3], seed=1)
    with pytest.raises(KeyError, match="from the callback"):
        stop_run(model=model, epochs=10_000, callback=failing)
    assert model.params.tobytes() == seen[-1].params.tobytes()  # what was reached


# =============================================================================================
# 5. Models and optimizers
# =============================================================================================


def model_variants(sizes, p0, dtype):
    """(name, model, dense layers) for every way of giving ``train`` the same network."""
    out = []
    for kind in ("mlp", "book", "book+act", "notebook", "fastnn"):
        model, dense = build_model(kind, sizes, p0, dtype)
        out.append((kind, model, dense))
    # the book's model with its input layer and the combined final activation
    _, dense = build_model("book", sizes, p0, dtype)
    stack = [book.Layer_Input()]
    for i, layer in enumerate(dense):
        stack += [layer, book.Activation_ReLU()] if i < len(dense) - 1 else [layer]
    stack.append(book.Activation_Softmax_Loss_CategoricalCrossentropy())
    out.append(("book-input-combined", stack, dense))
    # fastnn's own book-style classes, where the package exports them
    names = ("Layer_Dense", "Activation_ReLU", "Activation_Softmax", "Layer_Input")
    if all(hasattr(fastnn, name) for name in names):
        dense = []
        stack = [fastnn.Layer_Input()]
        for i, (W, b) in enumerate(ref.mlp_params_split(sizes, p0)):
            layer = fastnn.Layer_Dense(*W.shape)
            layer.weights, layer.biases = W.astype(dtype), b.reshape(1, -1).astype(dtype)
            dense.append(layer)
            stack += [layer, fastnn.Activation_ReLU() if i < len(sizes) - 2
                      else fastnn.Activation_Softmax()]
        out.append(("fastnn-book", stack, dense))
    return out


@pytest.mark.parametrize(("sizes", "dtype"), [((2, 8, 6, 3), "float64"), ((2, 16, 3), "float32")])
def test_every_model_kind_trains_to_the_same_bits(sizes, dtype):
    X, y = dataset()
    p0 = start_params(sizes, 5)
    results = []
    for name, model, dense in model_variants(sizes, p0, dtype):
        r = train(model, X, y, epochs=8, batch_size=64, seed=2, optimizer="adam",
                  learning_rate=0.01, weight_regularizer_l2=1e-4)
        assert flat_params(dense).tobytes() == r.params.tobytes(), name
        results.append((name, r, [[np.asarray(getattr(layer, s)).tobytes()
                                   for s in STATE_NAMES if hasattr(layer, s)]
                                  for layer in dense]))
    assert len(results) >= 6
    for name, r, state in results[1:]:
        assert_same_result(r, results[0][1])
        assert state == results[0][2], f"{name}: optimizer state differs"


def test_a_list_with_layer_dropout_equals_the_dropout_argument():
    X, y = dataset()
    sizes = (2, 8, 6, 3)
    p0 = start_params(sizes, 6)
    _, dense = build_model("book", sizes, p0, "float64")
    stack = [dense[0], book.Activation_ReLU(), book.Layer_Dropout(0.25), dense[1],
             book.Activation_ReLU(), dense[2], book.Activation_Softmax()]
    with_layers = train(stack, X, y, epochs=6, seed=3)
    model, _ = build_model("mlp", sizes, p0, "float64")
    with_argument = train(model, X, y, epochs=6, seed=3, dropout=[0.25, 0.0])
    assert_same_result(with_layers, with_argument)
    # the argument overrides the layers' rates
    _, dense = build_model("book", sizes, p0, "float64")
    stack = [dense[0], book.Activation_ReLU(), book.Layer_Dropout(0.6), dense[1],
             book.Activation_ReLU(), dense[2]]
    overridden = train(stack, X, y, epochs=6, seed=3, dropout=[0.25, 0.0])
    assert_same_result(overridden, with_argument)


def test_regularizer_arguments_override_the_layers_own():
    """A number for every layer or one per layer; given, they replace the layers'
    ``weight_regularizer_l1`` ... attributes (which are the default)."""
    X, y = dataset()
    sizes = (2, 8, 6, 3)
    p0 = start_params(sizes, 2)
    regs = [(1e-3, 2e-3, 3e-3, 4e-3), (0, 0, 0, 0), (5e-4, 0, 0, 1e-3)]
    on_layers, _ = build_model("book", sizes, p0, "float64", regs)
    expected = train(on_layers, X, y, epochs=5, seed=1)
    plain, _ = build_model("mlp", sizes, p0, "float64")
    as_lists = train(plain, X, y, epochs=5, seed=1, **{
        name: [r[k] for r in regs] for k, name in enumerate(
            ("weight_regularizer_l1", "weight_regularizer_l2", "bias_regularizer_l1",
             "bias_regularizer_l2"))})
    assert_same_result(as_lists, expected)
    assert expected.regularization_loss > 0
    overridden, _ = build_model("book", sizes, p0, "float64", regs)
    none = train(overridden, X, y, epochs=5, seed=1, weight_regularizer_l1=0,
                 weight_regularizer_l2=0.0, bias_regularizer_l1=[0, 0, 0],
                 bias_regularizer_l2=np.zeros(3))
    plain, _ = build_model("mlp", sizes, p0, "float64")
    assert_same_result(none, train(plain, X, y, epochs=5, seed=1))
    assert overridden[0].weight_regularizer_l1 == 1e-3  # the layers' own are left alone


def test_progress_bar_changes_nothing(capsys):
    first, _ = det_run("pair23", epochs=5)
    again, _ = det_run("pair23", epochs=5, progress=True)
    assert_same_result(again, first)
    assert "train" in capsys.readouterr().err


class Activation_Sigmoid:
    """A user's sigmoid (chapter 16), which the trainer does not implement."""

    def forward(self, inputs, training=None):
        self.output = 1 / (1 + np.exp(-inputs))


def unsupported_stack(kind):
    p0 = start_params((2, 8, 3), 1)
    _, (d1, d2) = build_model("book", (2, 8, 3), p0, "float64")
    relu, drop, soft = book.Activation_ReLU(), book.Layer_Dropout(0.1), book.Activation_Softmax()
    return {
        "sigmoid between": [d1, Activation_Sigmoid(), d2],
        "sigmoid output": [d1, book.Activation_ReLU(), d2, Activation_Sigmoid()],
        "relu at the end": [d1, relu, d2, book.Activation_ReLU()],
        "dropout before relu": [d1, drop, relu, d2],
        "dropout after the last layer": [d1, relu, d2, drop],
        "two relus": [d1, relu, book.Activation_ReLU(), d2],
        "two dropouts": [d1, relu, drop, book.Layer_Dropout(0.2), d2],
        "softmax in the middle": [d1, soft, d2],
        "loss object": [d1, relu, d2, book.Loss_CategoricalCrossentropy()],
        "something else": [d1, relu, d2, object()],
    }[kind]


UNSUPPORTED = ["sigmoid between", "sigmoid output", "relu at the end", "dropout before relu",
               "dropout after the last layer", "two relus", "two dropouts",
               "softmax in the middle", "loss object", "something else"]


@pytest.mark.parametrize("kind", UNSUPPORTED)
def test_unsupported_stacks_name_what_is_supported(kind, monkeypatch):
    monkeypatch.setattr(train_module.Training, "_call", kernel_reached)
    stack = unsupported_stack(kind)
    before = [np.asarray(layer.weights).tobytes() for layer in stack
              if hasattr(layer, "weights")]
    X, y = dataset()
    with pytest.raises(NotImplementedError) as info:
        train(stack, X, y, epochs=2, seed=0)
    msg = str(info.value)
    assert "supported" in msg and "Activation_ReLU" in msg and "softmax" in msg, msg
    assert "model" in msg, msg
    assert before == [np.asarray(layer.weights).tobytes() for layer in stack
                      if hasattr(layer, "weights")]


OPTIMIZER_SETTINGS = {
    "sgd": dict(learning_rate=0.5, decay=1e-2, momentum=0.8),
    "adagrad": dict(learning_rate=0.5, decay=1e-2, epsilon=1e-6),
    "rmsprop": dict(learning_rate=0.01, decay=1e-2, epsilon=1e-6, rho=0.8),
    "adam": dict(learning_rate=0.02, decay=1e-2, epsilon=1e-6, beta_1=0.8, beta_2=0.95),
}


@pytest.mark.parametrize("kind", list(OPTIMIZER_SETTINGS))
def test_optimizer_objects_are_used_and_updated_like_the_books(kind):
    """A name with keywords, fastnn's optimizer object and the book's own: the same
    bits; the objects' ``iterations`` and ``current_learning_rate`` afterwards are the
    book loop's (equal floats: the same Python expression)."""
    X, y = dataset()
    sizes = (2, 16, 3)
    p0 = start_params(sizes, 4)
    settings = OPTIMIZER_SETTINGS[kind]
    layers, _ = build_model("book", sizes, p0, "float64")
    book_opt = BOOK_OPTIMIZERS[kind](**settings)
    book_training(layers, X, y, book_opt, 6, batch_size=64)
    results = []
    for optimizer in (kind, FASTNN_OPTIMIZERS[kind](**settings),
                      BOOK_OPTIMIZERS[kind](**settings)):
        model, dense = build_model("book", sizes, p0, "float64")
        kwargs = settings if isinstance(optimizer, str) else {}
        r = train(model, X, y, optimizer=optimizer, epochs=6, batch_size=64, shuffle=False,
                  seed=0, **kwargs)
        results.append(r)
        assert norm_rel(r.params, flat_params(layers)) < 1e-12
        if not isinstance(optimizer, str):
            assert optimizer.iterations == book_opt.iterations == 30
            assert optimizer.current_learning_rate == book_opt.current_learning_rate
            assert optimizer.learning_rate == settings["learning_rate"]  # not changed
    for r in results[1:]:
        assert_same_result(r, results[0])
    assert results[0].learning_rate == book_opt.current_learning_rate


def test_optimizer_without_decay_steps_with_its_current_learning_rate():
    """Without decay the book never recomputes ``current_learning_rate``: an object whose
    rate was changed by hand steps with it, and keeps it."""
    X, y = dataset()
    p0 = start_params((2, 16, 3), 4)
    for cls in (book.Optimizer_SGD, Optimizer_SGD):
        opt = cls(learning_rate=1.0)
        opt.current_learning_rate = 0.25
        layers, _ = build_model("book", (2, 16, 3), p0, "float64")
        book_opt = book.Optimizer_SGD(learning_rate=1.0)
        book_opt.current_learning_rate = 0.25
        book_training(layers, X, y, book_opt, 5)
        model, _ = build_model("book", (2, 16, 3), p0, "float64")
        r = train(model, X, y, optimizer=opt, epochs=5, seed=0)
        assert norm_rel(r.params, flat_params(layers)) < 1e-13
        assert opt.current_learning_rate == 0.25 and opt.iterations == 5
        assert np.all(r.history.learning_rate == 0.25) and r.learning_rate == 0.25


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_a_second_call_continues_like_a_second_book_loop(kind):
    """Two calls with the same optimizer object: one book loop of both lengths.  Two
    calls by name: the second starts a fresh optimizer (iterations 0: Adam's bias
    correction and the decay start over) on the state left on the layers, as a second
    book loop with a new optimizer object does."""
    X, y = dataset()
    sizes = (2, 8, 6, 3)
    p0 = start_params(sizes, 8)
    settings = OPTIMIZER_SETTINGS[kind]
    # the same object twice
    layers, _ = build_model("book", sizes, p0, "float64")
    book_opt = BOOK_OPTIMIZERS[kind](**settings)
    book_training(layers, X, y, book_opt, 9, batch_size=100)
    model, dense = build_model("book", sizes, p0, "float64")
    opt = BOOK_OPTIMIZERS[kind](**settings)
    train(model, X, y, optimizer=opt, epochs=4, batch_size=100, shuffle=False)
    assert opt.iterations == 12
    train(model, X, y, optimizer=opt, epochs=5, batch_size=100, shuffle=False)
    assert (opt.iterations, opt.current_learning_rate) == (27, book_opt.current_learning_rate)
    assert norm_rel(flat_params(dense), flat_params(layers)) < 1e-12
    for mine, theirs in zip(dense, layers, strict=True):
        for name in STATE_NAMES:
            if hasattr(theirs, name):
                assert norm_rel(getattr(mine, name), getattr(theirs, name)) < 1e-12, name
    # by name: a fresh optimizer each call
    layers, _ = build_model("book", sizes, p0, "float64")
    book_training(layers, X, y, BOOK_OPTIMIZERS[kind](**settings), 4, batch_size=100)
    book_training(layers, X, y, BOOK_OPTIMIZERS[kind](**settings), 5, batch_size=100)
    model, dense = build_model("book", sizes, p0, "float64")
    train(model, X, y, optimizer=kind, epochs=4, batch_size=100, shuffle=False, **settings)
    r = train(model, X, y, optimizer=kind, epochs=5, batch_size=100, shuffle=False, **settings)
    assert r.steps == 15
    assert norm_rel(flat_params(dense), flat_params(layers)) < 1e-12
    for mine, theirs in zip(dense, layers, strict=True):
        for name in STATE_NAMES:
            if hasattr(theirs, name):
                assert norm_rel(getattr(mine, name), getattr(theirs, name)) < 1e-12, name


def test_state_from_another_optimizer_is_used_as_the_books_optimizers_use_it():
    """RMSprop after Adagrad continues the cache (both use ``weight_cache``), SGD with
    momentum after Adam continues Adam's momentums: as the book's classes do."""
    X, y = dataset()
    sizes = (2, 16, 3)
    p0 = start_params(sizes, 9)
    for first, second in (("adagrad", "rmsprop"), ("adam", "sgd")):
        layers, _ = build_model("book", sizes, p0, "float64")
        model, dense = build_model("book", sizes, p0, "float64")
        for kind in (first, second):
            book_training(layers, X, y, BOOK_OPTIMIZERS[kind](**OPTIMIZER_SETTINGS[kind]), 4)
            train(model, X, y, optimizer=kind, epochs=4, seed=0, **OPTIMIZER_SETTINGS[kind])
        assert norm_rel(flat_params(dense), flat_params(layers)) < 1e-12, (first, second)


def test_adam_after_sgd_with_momentum_starts_from_zero_momentums():
    X, y = dataset()
    sizes = (2, 16, 3)
    p0 = start_params(sizes, 9)
    layers, _ = build_model("book", sizes, p0, "float64")
    model, dense = build_model("book", sizes, p0, "float64")
    for kind in ("sgd", "adam"):
        book_training(layers, X, y, BOOK_OPTIMIZERS[kind](**OPTIMIZER_SETTINGS[kind]), 4)
        train(model, X, y, optimizer=kind, epochs=4, seed=0, **OPTIMIZER_SETTINGS[kind])
    for mine, theirs in zip(dense, layers, strict=True):
        assert norm_rel(mine.weight_momentums, theirs.weight_momentums) < 1e-12
    assert norm_rel(flat_params(dense), flat_params(layers)) < 1e-12


def test_dtype_policy_and_write_back():
    """NumPy's promotion decides the dtype (the notebook's float32 weights with float64
    ``np.zeros`` biases train in float64); every array keeps its dtype and identity when
    written back (in place, as the book's ``+=``); ``dtype=`` overrides; an MLP keeps
    its dtype."""
    X, y = dataset()
    layers, _ = build_model("notebook", (2, 8, 3), start_params((2, 8, 3), 1), "float32")
    for layer in layers:
        layer.biases = np.zeros((1, layer.weights.shape[1]))  # float64, as the notebook
    arrays = [(layer.weights, layer.biases) for layer in layers]
    r = train(layers, X, y, epochs=3, seed=0)
    assert r.params.dtype == np.float64
    for layer, (w, b) in zip(layers, arrays, strict=True):
        assert layer.weights is w and layer.biases is b
        assert w.dtype == np.float32 and b.dtype == np.float64
        assert layer.weight_cache.dtype == np.float64  # Adam's state: the training dtype
    for layer, (W, b) in zip(layers, ref.mlp_params_split((2, 8, 3), r.params), strict=True):
        np.testing.assert_array_equal(layer.weights, W.astype(np.float32).reshape(2, -1)
                                      if W.shape[0] == 2 else W.astype(np.float32))
        np.testing.assert_array_equal(layer.biases, b.reshape(1, -1))
    r32 = train(layers, X, y, epochs=2, seed=0, dtype="float32")
    assert r32.params.dtype == np.float32
    mlp = fastnn.MLP([2, 8, 3], seed=1, dtype="float32")
    r64 = train(mlp, X, y, epochs=2, seed=0, dtype="float64")
    assert r64.params.dtype == np.float64 and mlp.dtype == np.float32
    np.testing.assert_array_equal(mlp.params, r64.params.astype(np.float32))
    # read-only parameters are replaced, not written through
    layers[0].weights = layers[0].weights.copy()
    layers[0].weights.setflags(write=False)
    r = train(layers, X, y, epochs=1, seed=0)
    assert layers[0].weights.flags.writeable and layers[0].weights.dtype == np.float32
    np.testing.assert_array_equal(layers[0].weights,
                                  ref.mlp_params_split((2, 8, 3), r.params)[0][0].astype(
                                      np.float32))


def test_labels_and_data_in_any_accepted_form_give_the_same_run():
    """uint8 (nnfs), int64, one-hot, a list; read-only and non-contiguous X; validation
    labels one-hot: one run."""
    X, y = dataset()
    val = dataset(samples=30, seed=1)
    runs = []
    readonly = X.copy()
    readonly.setflags(write=False)
    strided = np.asfortranarray(X)
    for X_, y_, v in ((X, y, val), (X, y.astype(np.int64), val), (X, np.eye(3)[y], val),
                      (X, list(y), (val[0], np.eye(3)[val[1]])), (readonly, y, val),
                      (strided, y, val)):
        runs.append(train(fastnn.MLP([2, 8, 3], seed=2), X_, y_, epochs=4, batch_size=64,
                          seed=1, validation=v))
    for r in runs[1:]:
        assert_same_result(r, runs[0])


def test_result_fields():
    X, y = dataset()
    val = dataset(samples=30, seed=1)
    X_before, y_before = X.copy(), y.copy()
    r = train(fastnn.MLP([2, 8, 3], seed=2), X, y, epochs=12, batch_size=64, seed=1,
              validation=val, optimizer="sgd", decay=0.1)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    h = r.history
    assert isinstance(h, train_module.TrainHistory)
    assert h.epoch.dtype == np.int64 and all(a.dtype == np.float64 for a in h[1:])
    assert all(a.shape == (12,) for a in h)
    np.testing.assert_array_equal(h.epoch, np.arange(12))
    np.testing.assert_array_equal(h.loss, h.data_loss + h.regularization_loss)
    assert np.all(h.regularization_loss == 0)
    assert np.all((h.accuracy >= 0) & (h.accuracy <= 1))
    np.testing.assert_array_equal(np.round(h.accuracy * 300) / 300, h.accuracy)
    np.testing.assert_array_equal(np.round(h.val_accuracy * 90) / 90, h.val_accuracy)
    steps = (np.arange(12) + 1) * 5 - 1  # the last update of each epoch
    np.testing.assert_array_equal(h.learning_rate, 1.0 * (1. / (1. + 0.1 * steps)))
    assert (r.epochs, r.steps, r.seed, r.stopped, r.interrupted) == (12, 60, 1, "epochs", False)
    assert r.learning_rate == h.learning_rate[-1]
    assert r.val_loss == h.val_loss[-1] and r.val_accuracy == h.val_accuracy[-1]
    assert r.mode == "serial" and r.seconds > 0
    assert r.seconds_per_epoch == r.seconds / 12
    text = repr(r)
    assert text.startswith("TrainResult(") and "val_loss=" in text and "epochs=12" in text


# =============================================================================================
# 6. Bad input: refused by name before any kernel runs
# =============================================================================================


class NotAnOptimizer:
    learning_rate = 0.1


def book_opt(kind, **attrs):
    opt = BOOK_OPTIMIZERS[kind]()
    for name, value in attrs.items():
        setattr(opt, name, value)
    return opt


def _bad(arg, values, exc, text=None, **context):
    return [(arg, v, exc, text or arg, context) for v in values]


NAN, INF = math.nan, math.inf
# (argument, value, exception, text the message must contain, other arguments)
BAD_ARGS = [
    # the optimizer's hyperparameters (the book's names)
    *_bad("learning_rate", (0, -0.1, NAN, INF, -INF), ValueError),
    *_bad("learning_rate", ("0.1", True, [0.1]), TypeError),
    *_bad("learning_rate", (0, NAN), ValueError, optimizer="sgd"),
    *_bad("decay", (-1e-3, NAN, INF), ValueError),
    *_bad("decay", ("x", False), TypeError),
    *_bad("momentum", (-0.1, 1.0, 1.5, NAN), ValueError, optimizer="sgd"),
    *_bad("momentum", ("0.9",), TypeError, optimizer="sgd"),
    *_bad("beta_1", (0, 1, -0.1, 1.5, NAN), ValueError),
    *_bad("beta_2", (0, 1, 2, NAN), ValueError),
    *_bad("beta_1", ("0.9",), TypeError),
    *_bad("epsilon", (0, -1e-7, NAN, INF), ValueError),
    *_bad("epsilon", (0,), ValueError, optimizer="rmsprop"),
    *_bad("epsilon", (-1,), ValueError, optimizer="adagrad"),
    *_bad("rho", (0, 1, 1.2, -0.5, NAN), ValueError, optimizer="rmsprop"),
    # keywords that do not apply to the optimizer
    *_bad("beta_1", (0.9,), TypeError, optimizer="sgd"),
    *_bad("momentum", (0.5,), TypeError, optimizer="adam"),
    *_bad("rho", (0.9,), TypeError, optimizer="adagrad"),
    *_bad("beta_2", (0.99,), TypeError, optimizer="rmsprop"),
    *_bad("epsilon", (1e-7,), TypeError, optimizer="sgd"),
    # the optimizer itself
    *_bad("optimizer", ("foo", "Adamw", ""), ValueError),
    *_bad("optimizer", (3, None, NotAnOptimizer(), book.Layer_Dense(2, 3)), TypeError),
    ("optimizer", book_opt("adam", learning_rate=-1.0), ValueError, "learning_rate", {}),
    ("optimizer", book_opt("sgd", momentum=1.5), ValueError, "momentum", {}),
    ("optimizer", book_opt("rmsprop", rho=1.0), ValueError, "rho", {}),
    ("optimizer", book_opt("adam", iterations=-1), ValueError, "iterations", {}),
    ("optimizer", book_opt("adam", iterations=2.5), TypeError, "iterations", {}),
    ("optimizer", book_opt("adagrad", epsilon=NAN), ValueError, "epsilon", {}),
    # keywords together with an optimizer object
    *_bad("learning_rate", (0.1,), TypeError, optimizer=Optimizer_Adam()),
    *_bad("decay", (0.1,), TypeError, optimizer=book.Optimizer_SGD()),
    # regularisation
    *[(name, v, ValueError, name, {}) for name in (
        "weight_regularizer_l1", "weight_regularizer_l2", "bias_regularizer_l1",
        "bias_regularizer_l2") for v in (-1e-4, NAN, INF, [1e-4], [1e-4, 1e-4, 1e-4],
                                           [1e-4, -1e-4])],
    *_bad("weight_regularizer_l2", ("0.1", True, [0.1, "x"]), TypeError),
    # dropout
    *_bad("dropout", (-0.1, 1.0, 1.5, NAN, INF, [0.1, 0.2], []), ValueError),
    *_bad("dropout", ("0.1", True, ["x"]), TypeError),
    # batches, epochs, shuffle
    *_bad("batch_size", (0, -1), ValueError),
    *_bad("batch_size", (1.5, "32", True, 64.0), TypeError),
    *_bad("epochs", (0, -1, 2 ** 63), ValueError),
    *_bad("epochs", (1.5, "10", None, True, 10.0), TypeError),
    *_bad("shuffle", ("yes", 1, None), TypeError),
    # stop rules
    *_bad("target_loss", (NAN, INF, -INF), ValueError),
    *_bad("target_loss", ("x", True), TypeError),
    *_bad("patience", (0, -3), ValueError),
    *_bad("patience", (2.5, "10", True), TypeError),
    # the run
    *_bad("seed", (-1, 2 ** 64), ValueError),
    *_bad("seed", (1.5, True, "1", np.float64(1)), TypeError),
    *_bad("threads", (0, -1, NT + 1), ValueError),
    *_bad("threads", (1.0, "2", True), TypeError),
    *_bad("callback", (3, "f"), TypeError),
    *_bad("checkpoint", (3, 2.5), TypeError),
    *_bad("checkpoint", ("<dir>", "<missing dir>"), ValueError),
    *_bad("checkpoint_every", (0, -1, NAN), ValueError),
    *_bad("checkpoint_every", ("x",), TypeError),
    *_bad("resume", (3,), TypeError),
    *_bad("progress", ("yes", None), TypeError),
    *_bad("dtype", ("int32", "float16", object), ValueError),
    *_bad("dtype", ("nonsense",), TypeError),
    # the model
    *_bad("model", ("x", [], None, 3, ()), TypeError),
    ("model", "mismatched", ValueError, "model[", {}),
    ("model", "bias shape", ValueError, "model[0].biases", {}),
    ("model", "nan weight", ValueError, "model parameters", {}),
    ("model", "no dense layer", ValueError, "dense", {}),
    ("model", "dropout without hidden layer", ValueError, "dropout", {}),
    ("model", "bad layer regularizer", ValueError, "model[0].weight_regularizer_l2", {}),
    ("model", "state of the wrong shape", ValueError, "weight_cache", {}),
    # the data
    *_bad("X", ("nan", "inf", "wrong columns", "1-D", "empty"), ValueError),
    *_bad("X", ("strings", None), TypeError),
    *_bad("y", ("out of range", "negative", "short", "bad one-hot", "2-D wrong width"),
          ValueError),
    *_bad("y", ("float", "strings", None), TypeError),
    # validation data
    *_bad("validation", ("X only", "triple", "dict", "array"), TypeError),
    ("validation", "wrong columns", ValueError, "X_val", {}),
    ("validation", "nan", ValueError, "X_val", {}),
    ("validation", "short labels", ValueError, "y_val", {}),
    ("validation", "label out of range", ValueError, "y_val", {}),
    ("validation", "float labels", TypeError, "y_val", {}),
    ("validation", "empty", ValueError, "X_val", {}),
]


def bad_call(arg, value, context, tmp_path):
    """(model, X, y, kwargs) for one BAD_ARGS row."""
    X, y = dataset()
    model = fastnn.MLP([2, 8, 3], seed=0)
    kwargs = dict(epochs=3, seed=0, **context)
    if arg == "model":
        p0 = start_params((2, 8, 3), 0)
        layers, _ = build_model("book", (2, 8, 3), p0, "float64")
        if value == "mismatched":
            layers[1].weights = np.zeros((4, 3))
        elif value == "bias shape":
            layers[0].biases = np.zeros((2, 8))
        elif value == "nan weight":
            layers[1].weights = np.full((8, 3), NAN)
        elif value == "no dense layer":
            layers = [book.Layer_Input()]
        elif value == "dropout without hidden layer":
            layers, kwargs["dropout"] = layers[:1], 0.1
            y = y % 3
            layers[0].weights = np.zeros((2, 3))
            layers[0].biases = np.zeros((1, 3))
        elif value == "bad layer regularizer":
            layers[0].weight_regularizer_l2 = -1.0
        elif value == "state of the wrong shape":
            layers[1].weight_cache = np.zeros(5)
        else:
            layers = value
        model = layers
    elif arg == "X":
        X = {"nan": np.where(np.arange(X.size).reshape(X.shape) == 17, NAN, X),
             "inf": np.where(np.arange(X.size).reshape(X.shape) == 5, INF, X),
             "wrong columns": np.zeros((len(y), 3)), "1-D": X[:, 0], "empty": np.zeros((0, 2)),
             "strings": X.astype(str), None: None}[value]
    elif arg == "y":
        y = {"out of range": np.where(np.arange(len(y)) == 7, 3, y),
             "negative": np.where(np.arange(len(y)) == 7, -1, y.astype(np.int64)),
             "short": y[:-1], "float": y.astype(np.float64), "strings": y.astype(str),
             "bad one-hot": np.eye(3)[y] * 2, "2-D wrong width": np.eye(4)[y], None: None}[value]
    elif arg == "validation":
        Xv, yv = dataset(samples=10, seed=1)
        kwargs[arg] = {
            "X only": (Xv,), "triple": (Xv, yv, yv), "dict": {"X": Xv, "y": yv},
            "array": Xv, "wrong columns": (Xv[:, :1], yv),
            "nan": (np.where(Xv > 0.5, NAN, Xv), yv), "short labels": (Xv, yv[:-1]),
            "label out of range": (Xv, yv + 1), "float labels": (Xv, yv.astype(float)),
            "empty": (Xv[:0], yv[:0])}[value]
    elif arg == "checkpoint" and value == "<dir>":
        kwargs[arg] = tmp_path
    elif arg == "checkpoint" and value == "<missing dir>":
        kwargs[arg] = tmp_path / "no" / "such" / "run.npz"
    else:
        kwargs[arg] = value
    return model, X, y, kwargs


def model_snapshot(model):
    if isinstance(model, fastnn.MLP):
        return [model.params.tobytes()]
    if isinstance(model, list):
        return [(id(getattr(m, "weights", None)), np.asarray(getattr(m, "weights", 0)).tobytes(),
                 sorted(vars(m))) for m in model]
    return None


#: what a Numba typing or lowering error says
NUMBA_WORDS = ("TypingError", "nopython", "Lowering", "lowering", "Failed in", "numba.core")


def _show(value):
    """repr without memory addresses: test ids must be the same in every process
    (pytest-xdist compares its workers' collections)."""
    return re.sub(r" object at 0x[0-9a-f]+", "", repr(value))


@pytest.mark.parametrize(("arg", "value", "exc", "text", "context"), BAD_ARGS,
                         ids=[f"{a}={_show(v)}"[:60] + (f"|{_show(c)}" if c else "")
                              for a, v, _, _, c in BAD_ARGS])
def test_bad_arguments_are_refused_by_name(arg, value, exc, text, context, tmp_path,
                                           monkeypatch):
    monkeypatch.setattr(train_module.Training, "_call", kernel_reached)
    model, X, y, kwargs = bad_call(arg, value, context, tmp_path)
    snapshot = model_snapshot(model)
    with pytest.raises(exc) as info:
        train(model, X, y, **kwargs)
    msg = str(info.value)
    assert text in msg, msg
    assert type(info.value).__module__.split(".")[0] in ("builtins", "fastnn"), info.value
    assert not any(word in msg for word in NUMBA_WORDS), msg
    tb = info.tb
    while tb is not None:
        assert "numba" not in (tb.tb_frame.f_code.co_filename or ""), "raised inside Numba"
        tb = tb.tb_next
    assert model_snapshot(model) == snapshot, "a refused call changed the model"


def test_bad_input_battery_covers_every_argument():
    import inspect
    missing = set(inspect.signature(train).parameters) - {a for a, *_ in BAD_ARGS}
    assert not missing


def test_good_edge_values_are_accepted():
    """The edges that are valid: momentum 0, decay 0, dropout 0, regularisation 0,
    batch_size 1 and larger than the data, epochs 1, seed 0 and 2**64 - 1, numpy
    scalars, a tuple of layers, threads=1."""
    X, y = dataset()
    for kwargs in (dict(optimizer="sgd", momentum=0.0, decay=0), dict(dropout=0.0),
                   dict(weight_regularizer_l1=0, bias_regularizer_l2=np.float32(0)),
                   dict(batch_size=1, epochs=1), dict(batch_size=10 ** 6),
                   dict(seed=2 ** 64 - 1, epochs=np.int64(2)), dict(seed=np.uint64(5)),
                   dict(learning_rate=np.float32(0.01), beta_1=np.float64(0.5)),
                   dict(threads=1, patience=np.int32(3), target_loss=np.float64(0.1)),
                   dict(optimizer="ADAM"), dict(epsilon=1e-300)):
        r = train(fastnn.MLP([2, 4, 3], seed=0), X, y, **{"epochs": 3, "seed": 1, **kwargs})
        assert r.stopped in ("epochs", "patience", "target_loss"), kwargs
    layers, _ = build_model("book", (2, 4, 3), start_params((2, 4, 3), 0), "float64")
    assert train(tuple(layers), X, y, epochs=2, seed=0).epochs == 2


# =============================================================================================
# 7. nnfs.init(), before and after importing fastnn (subprocesses only)
# =============================================================================================

NNFS_IMPORTS = {
    "before": "import numpy as np\nimport nnfs\nnnfs.init()\nimport fastnn\n",
    "after": "import numpy as np\nimport fastnn\nimport nnfs\nnnfs.init()\n",
}

NNFS_PROBE = r"""
import json, sys
sys.path.insert(0, {tests!r})
assert np.zeros(1).dtype == np.float32  # nnfs.init() is in force
from test_train import nnfs_task
print(json.dumps(nnfs_task(sys.argv[1])))
"""


def nnfs_task(path):
    """Train on the arrays in ``path`` (float32, as ``nnfs.init()`` makes them): an MLP
    with Adam and mini-batches, checkpointed and resumed; a list of fastnn's layers
    (created under whatever NumPy is patched to do, then given float32 parameters) with
    SGD, dropout and validation.  Returns digests and dtypes."""
    arrays = np.load(path)
    X, y, Xv, yv, p0 = (arrays[k] for k in ("X", "y", "Xv", "yv", "p0"))
    out = {}
    mlp = fastnn.MLP([2, 16, 3], seed=0, dtype="float32")
    mlp.params = p0
    ckpt = Path(path).with_suffix(".ckpt.npz")
    train(mlp, X, y, epochs=3, batch_size=128, seed=2, validation=(Xv, yv), checkpoint=ckpt,
          optimizer=Optimizer_Adam(learning_rate=0.02, decay=1e-3))
    r = train(mlp, X, y, epochs=6, batch_size=128, seed=2, validation=(Xv, yv), resume=ckpt,
              optimizer=Optimizer_Adam(learning_rate=0.02, decay=1e-3))
    out["mlp"] = result_digest(r) + state_digest(mlp.layers)
    layers = [fastnn.Dense_Layer(2, 16), fastnn.Dense_Layer(16, 3)]
    for layer, (W, b) in zip(layers, ref.mlp_params_split((2, 16, 3), p0), strict=True):
        layer.weights = W.astype(np.float32)
        layer.biases = b.reshape(1, -1).astype(np.float32)
    r = train(layers, X, y, epochs=4, seed=3, optimizer="sgd", momentum=0.5, dropout=0.2,
              validation=(Xv, yv), dtype="float32")
    out["layers"] = result_digest(r) + state_digest(layers)
    out["dtypes"] = [str(np.asarray(a).dtype) for layer in layers
                     for a in (layer.weights, layer.biases, layer.weight_momentums)]
    return out


@pytest.mark.parametrize("order", ["before", "after"])
def test_under_nnfs_init_the_same_bits(order, tmp_path):
    X, y = dataset()
    Xv, yv = dataset(samples=30, seed=1)
    p0 = start_params((2, 16, 3), 3).astype(np.float32)
    path = tmp_path / "arrays.npz"
    np.savez(path, X=X.astype(np.float32), y=y, Xv=Xv.astype(np.float32), yv=yv, p0=p0)
    expected = nnfs_task(str(path))
    (tmp_path / "arrays.ckpt.npz").unlink()
    proc = subprocess.run(
        [sys.executable, "-c", NNFS_IMPORTS[order] + NNFS_PROBE.format(tests=str(TESTS)),
         str(path)], capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env=proc_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["dtypes"] == ["float32"] * 6
    assert got == expected


# =============================================================================================
# 8. Python threads
# =============================================================================================


def thread_task(i):
    """Four different runs: the parallel-sized DET runs (serial off the main thread),
    and small float64 ones of the other families."""
    if i == 0:
        r, model = det_run("pair23", epochs=6)
        return r, state_digest(model.layers)
    if i == 1:
        r, model = det_run("dropout", epochs=6)
        return r, state_digest(model.layers)
    sizes = (2, 8, 5) if i == 2 else (2, 8, 6, 3)
    X, y = dataset(classes=sizes[-1])
    model, dense = build_model("book", sizes, start_params(sizes, i), "float64", [R1] * 2
                               if len(sizes) == 3 else [R1] * 3)
    r = train(model, X, y, epochs=10, batch_size=64, seed=i, dropout=0.1 if i == 3 else None,
              optimizer="rmsprop", validation=dataset(classes=sizes[-1], samples=20, seed=1))
    return r, state_digest(dense)


def test_python_threads_match_the_main_thread():
    """Off the main thread the serial build runs (mode "serial"), whatever the batch;
    results equal the main thread's bit for bit, eight calls overlapping on four
    threads."""
    expected = [thread_task(i) for i in range(4)]
    assert expected[0][0].mode == parallel_mode()
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(thread_task, i % 4) for i in range(8)]
        got = [f.result() for f in futures]
    for i, (result, state) in enumerate(got):
        want, want_state = expected[i % 4]
        assert result.mode == "serial"
        assert_same_result(result, want)
        assert state == want_state
