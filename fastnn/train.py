"""``train``: the book's gradient training (chapters 9-15), compiled whole.

The loop itself -- forward, softmax and cross-entropy, backward, L1/L2, dropout, the
optimizer update, accuracy, validation -- runs in ``kernels/train.py``, a chunk of steps
per call; ``fastnn.driver`` runs the chunks (progress bar, callback, Ctrl-C,
checkpoints).  This module checks the arguments, turns the model into one flat parameter
vector (``Stack``), reads and writes the optimizer's state on the layers under the
book's names, and assembles the ``TrainResult``.  Results depend only on the arguments
and the seed: not on threads, chunk sizes or resuming.
"""

import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numba
import numpy as np

from . import driver, modelfile
from ._validation import (
    as_labels,
    as_matrix,
    as_positive_int,
    check_finite,
    float_dtype,
    resolve_dtype,
)
from .checkpoint import fingerprint
from .kernels import mt19937
from .kernels import train as kt
from .network import MLP, aligned_zeros
from .optimizers import HYPERPARAMETERS, KINDS, OPTIMIZERS, optimizer_settings

# Every array here gets an explicit dtype: nnfs.init() makes np.zeros return float32.

#: scratch bytes per block: the block's activations stay in L2
_WORK_BYTES = 1 << 20
_MAX_BLOCK = 1024
_MIN_BLOCK = 32
#: epochs (and steps, when recorded) one chunk may record; a chunk ends when full
_RECORD_CAP = 1 << 16
#: bytes of NumPy-drawn dropout masks one chunk may hold (``masks="numpy"``)
_MASK_BYTES = 1 << 26
#: steps in the first timed chunk (``driver.drive`` sizes the next ones)
_FIRST_CHUNK = 8
_STOPPED = {kt.TARGET_REACHED: "target_loss", kt.PATIENCE_EXHAUSTED: "patience",
            kt.DIVERGED: "diverged"}
#: the class names a layer list may hold besides dense layers (the book's and the
#: notebook's spellings)
_RELU = ("Activation_ReLU", "Activation_Relu")
_SOFTMAX = ("Activation_Softmax", "Activation_Softmax_Loss_CategoricalCrossentropy")
_SKIP = ("Layer_Input",)
_DROPOUT = ("Layer_Dropout",)
SUPPORTED = ("dense layers with ReLU between them (Layer_Dense/Dense_Layer, "
             "Activation_ReLU, optionally Layer_Dropout after a ReLU) ending in softmax "
             "with categorical cross-entropy")


class TrainHistory(NamedTuple):
    """Per epoch: its number (from 0), loss (data + regularisation), accuracy and
    learning rate (of its last update), validation loss and accuracy (NaN without
    validation data), and the data and regularisation parts of the loss."""

    epoch: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    learning_rate: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray
    data_loss: np.ndarray
    regularization_loss: np.ndarray


@dataclass
class TrainResult:
    """What ``train`` did.

    ``loss``/``accuracy`` are the last epoch's, as the book prints them: the mean over
    the epoch's batches, each measured before its update (training mode: with dropout),
    plus the regularisation loss (full batch: before the update, as chapter 18 prints;
    mini-batches: after the epoch, as chapter 19).  ``val_loss``/``val_accuracy``: the
    validation data after the last epoch (None without).  ``epochs``: epochs done;
    ``steps``: optimizer updates in all (the optimizer's ``iterations``); ``stopped``:
    "epochs", "target_loss", "patience", "diverged", "callback" or "interrupted"."""

    loss: float
    accuracy: float
    data_loss: float
    regularization_loss: float
    val_loss: float | None
    val_accuracy: float | None
    epochs: int
    steps: int
    learning_rate: float
    history: TrainHistory = field(repr=False)
    seconds: float
    params: np.ndarray = field(repr=False)
    interrupted: bool
    stopped: str
    seed: int
    mode: str
    #: what a model file records about this run (``fastnn.modelfile.provenance``)
    provenance: dict | None = field(default=None, repr=False)

    def plot(self, ax=None):
        """Loss and accuracy of this run (``fastnn.plot.history``; needs matplotlib)."""
        from .plot import history
        return history(self, ax)

    @property
    def seconds_per_epoch(self):
        return self.seconds / self.epochs if self.epochs else float("nan")

    def __repr__(self):
        val = ("" if self.val_loss is None
               else f", val_loss={self.val_loss:.6g}, val_accuracy={self.val_accuracy:.4f}")
        return (f"TrainResult(loss={self.loss:.6g}, accuracy={self.accuracy:.4f}{val}, "
                f"epochs={self.epochs}, steps={self.steps}, seconds={self.seconds:.3g}, "
                f"stopped={self.stopped!r}, mode={self.mode!r})")


def train(model, X, y, *, optimizer="adam", epochs=1000, batch_size=None, shuffle=True,
          learning_rate=None, decay=None, momentum=None, epsilon=None, rho=None,
          beta_1=None, beta_2=None, weight_regularizer_l1=None, weight_regularizer_l2=None,
          bias_regularizer_l1=None, bias_regularizer_l2=None, dropout=None, validation=None,
          target_loss=None, patience=None, seed=None, progress=False, callback=None,
          checkpoint=None, checkpoint_every=60.0, resume=None, threads=None, dtype=None):
    """Train ``model`` on (X, y) by gradient descent, the book's way, compiled whole.

    ``model``: an ``MLP``, or a list of layers -- dense layers (``Layer_Dense``, the
    notebook's ``Dense_Layer`` or the book's own), with ``Activation_ReLU`` between them
    (implied when absent), optionally ``Layer_Dropout`` after a ReLU, and optionally a
    final ``Activation_Softmax``: ReLU between layers, softmax and categorical
    cross-entropy at the end.  On return the model holds the trained parameters (the
    best ones for ``patience``, the last finite ones if the loss diverged) and its
    layers the optimizer's state under the book's names (``weight_momentums``,
    ``weight_cache``, ``bias_momentums``, ``bias_cache``); an existing state on the
    layers is continued, as the book's optimizers do.

    ``optimizer``: "sgd", "adagrad", "rmsprop" or "adam" with the book's hyperparameters
    as keywords (``learning_rate``, ``decay``, ``momentum``, ``epsilon``, ``rho``,
    ``beta_1``, ``beta_2``; the book's defaults), or an optimizer object (fastnn's or the
    book's own): its settings and ``iterations`` are used, and its ``iterations`` and
    ``current_learning_rate`` are updated.

    ``epochs``: epochs in all (a resumed run continues to it).  ``batch_size``: None for
    full-batch steps (the book's chapters 10-18), else mini-batches, reshuffled every
    epoch (``shuffle``) deterministically from ``seed``.  Regularisation: the book's
    ``weight_regularizer_l1`` ... ``bias_regularizer_l2``, a number for every layer or one
    per layer (default: the layers' own attributes, 0 for an ``MLP``).  ``dropout``: the
    rate of every hidden layer, or one per hidden layer (default: the list's
    ``Layer_Dropout``s).  ``validation=(X_val, y_val)``: evaluated after every epoch.

    Stopping: ``target_loss`` (the monitored loss -- validation loss if given, else the
    training loss -- at or below it) and ``patience`` (epochs without improvement of the
    monitored loss; the best parameters are restored); a loss that becomes NaN or
    infinite stops the run with the last parameters whose loss was finite and a
    warning.  Between chunks of about 0.2 s: a progress bar, ``callback(result_so_far)``
    (return True to stop), Ctrl-C (returns what was reached, ``interrupted``) and every
    ``checkpoint_every`` seconds an atomic write of ``checkpoint`` (.npz, no pickle,
    optimizer state included); ``resume`` continues one.  ``threads`` caps Numba's
    threads: batches of several blocks of samples run on all of them.  ``seed``: None
    draws one (``result.seed``).  The result depends only on the arguments and ``seed``.
    """
    opts = _check_options(optimizer, epochs, batch_size, shuffle, dict(
        learning_rate=learning_rate, decay=decay, momentum=momentum, epsilon=epsilon,
        rho=rho, beta_1=beta_1, beta_2=beta_2), target_loss, patience, seed, progress,
        callback, checkpoint, checkpoint_every, resume, threads)
    stack = Stack.of(model, dtype)
    stack.configure(dict(weight_regularizer_l1=weight_regularizer_l1,
                         weight_regularizer_l2=weight_regularizer_l2,
                         bias_regularizer_l1=bias_regularizer_l1,
                         bias_regularizer_l2=bias_regularizer_l2), dropout)
    data = Data.of(stack, X, y, validation)
    with driver.numba_threads(opts["threads"]):
        run = Training(stack, data, opts)
        try:
            run.execute()
        except BaseException:
            run.finish()  # a failing callback, say: the model keeps what was reached
            raise
    result = run.finish()
    if opts["checkpoint"] is not None:  # after the model holds the result: nothing lost
        driver.save(run, opts["checkpoint"])
    result.provenance = modelfile.provenance("train", run.arguments(), result, data.x,
                                             data.labels, data.xv)
    if isinstance(model, MLP):  # what model.save() records
        model.made_by = result.provenance
    return result


# -- arguments ---------------------------------------------------------------------------


def _check_options(optimizer, epochs, batch_size, shuffle, hyper, target_loss, patience,
                   seed, progress, callback, checkpoint, checkpoint_every, resume, threads):
    given = {name: value for name, value in hyper.items() if value is not None}
    if isinstance(optimizer, str):
        kind = optimizer.lower()
        if kind not in KINDS:
            raise ValueError(f"optimizer must be one of {tuple(KINDS)} or an optimizer "
                             f"object, got {optimizer!r}")
        allowed = ("learning_rate", "decay", *HYPERPARAMETERS[kind])
        wrong = [name for name in given if name not in allowed]
        if wrong:
            raise TypeError(f"{wrong[0]} does not apply to optimizer={kind!r} (its "
                            f"hyperparameters: {', '.join(allowed)})")
        settings = optimizer_settings(OPTIMIZERS[kind](**given))  # the classes' checks
        optimizer = None
    else:
        if given:
            raise TypeError(f"{next(iter(given))}: set the hyperparameters on the optimizer "
                            f"object ({type(optimizer).__name__}), not as keywords")
        settings = optimizer_settings(optimizer)  # TypeError for anything else
    epochs = as_positive_int(epochs, "epochs")
    if epochs > 2 ** 62:
        raise ValueError(f"epochs must be <= 2**62, got {epochs}")
    if batch_size is not None:
        batch_size = as_positive_int(batch_size, "batch_size")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    if target_loss is None:
        target_loss = -math.inf
    elif isinstance(target_loss, bool) or not isinstance(target_loss, numbers.Real):
        raise TypeError(f"target_loss must be a number or None, got {type(target_loss).__name__}")
    elif not math.isfinite(target_loss):
        raise ValueError(f"target_loss must be finite, got {target_loss}")
    patience = 0 if patience is None else as_positive_int(patience, "patience")
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    return dict(settings=settings, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                shuffle=bool(shuffle), target_loss=float(target_loss), patience=patience,
                seed=driver.check_seed(seed), progress=bool(progress),
                callback=driver.check_callback(callback),
                checkpoint=driver.writable_path(checkpoint, "checkpoint"),
                checkpoint_every=driver.positive_float(checkpoint_every, "checkpoint_every"),
                resume=driver.check_resume(resume), threads=driver.check_threads(threads),
                masks="hash", record_steps=False)


def _per_layer(value, count, name, check):
    """A number for every one of ``count`` layers, or a sequence of ``count`` numbers,
    each passed through ``check``; returns a list of floats."""
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(value)
        if len(values) != count:
            raise ValueError(f"{name} must be a number or a sequence of {count} numbers "
                             f"(one per layer), got {len(values)}")
    else:
        values = [value] * count
    return [check(v, name) for v in values]


def _regularizer(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return float(value)


def _dropout_rate(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and 0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


_REGULARIZERS = ("weight_regularizer_l1", "weight_regularizer_l2", "bias_regularizer_l1",
                 "bias_regularizer_l2")
_STATE_NAMES = ("weight_momentums", "weight_cache", "bias_momentums", "bias_cache")


class Stack:
    """The trained network: layer sizes, one flat parameter vector (the kernels'
    layout), the regularisation factors and dropout keep probabilities per layer, and
    the model's layers, to read and write parameters and optimizer state."""

    def __init__(self, sizes, dtype, layers, regs, keeps, owner, dropout_layers=()):
        self.sizes = np.array(sizes, dtype=np.int64)
        #: hidden layers followed by a ``Layer_Dropout`` object (the book's Model draws
        #: masks for those, even at rate 0)
        self.dropout_layers = tuple(dropout_layers)
        self.dtype = np.dtype(dtype)
        self.layers = layers  # objects with weights, biases (2-D / (1, n) arrays)
        self.reg = np.array(regs, dtype=np.float64).reshape(len(layers), 4)
        self.keep = np.array([*keeps, 1.0], dtype=np.float64)  # the last layer: none
        self.owner = owner  # the MLP, or None
        offs, off = [], 0
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            offs.append(off)
            off += a * b + b
        self.layer_off = np.array(offs, dtype=np.int64)
        self.n_params = off

    @classmethod
    def of(cls, model, dtype):
        if isinstance(model, MLP):
            dt = model.dtype if dtype is None else resolve_dtype(dtype)
            n = len(model.layers)
            return cls(model.sizes.tolist(), dt, list(model.layers), [[0.0] * 4] * n,
                       [1.0] * (n - 1), model)
        if isinstance(model, (list, tuple)) and model:
            return cls._of_layers(list(model), dtype)
        raise TypeError("model must be a fastnn.MLP or a non-empty list of layers, got "
                        f"{type(model).__name__}")

    @classmethod
    def _of_layers(cls, items, dtype):
        dense, keeps, sizes, regs, dropouts = [], [], [], [], []
        after_relu = False
        for i, item in enumerate(items):
            kind = type(item).__name__
            if hasattr(item, "weights") and hasattr(item, "biases"):
                w = as_matrix(item.weights, f"model[{i}].weights", what="n_neurons",
                              check=False)
                b = np.asarray(item.biases)
                if b.shape not in ((1, w.shape[1]), (w.shape[1],)):
                    raise ValueError(f"model[{i}].biases must have shape (1, {w.shape[1]}), "
                                     f"got {b.shape}")
                if sizes and w.shape[0] != sizes[-1]:
                    raise ValueError(f"model[{i}] takes {w.shape[0]} inputs but the layer "
                                     f"before has {sizes[-1]} neurons")
                if dense and len(keeps) < len(dense):
                    keeps.append(1.0)
                if not sizes:
                    sizes.append(w.shape[0])
                sizes.append(w.shape[1])
                dense.append(item)
                regs.append([_regularizer(getattr(item, name, 0), f"model[{i}].{name}")
                             for name in _REGULARIZERS])
                after_relu = False
            elif kind in _RELU and dense and not after_relu:
                after_relu = True
            elif kind in _DROPOUT and after_relu and len(keeps) < len(dense):
                keep = getattr(item, "rate", None)  # the book stores 1 - rate as rate
                if isinstance(keep, bool) or not isinstance(keep, numbers.Real) \
                        or not 0 < keep <= 1:
                    raise ValueError(f"model[{i}] ({kind}) must have a keep probability "
                                     f".rate in (0, 1] (the book's 1 - dropout rate), "
                                     f"got {keep!r}")
                keeps.append(float(keep))
                dropouts.append(len(dense) - 1)
            elif kind in _SOFTMAX and i == len(items) - 1 and dense:
                pass
            elif kind in _SKIP:
                pass
            else:
                raise NotImplementedError(
                    f"model[{i}] ({kind}) at this position is not supported by fastnn's "
                    f"compiled trainer; supported: {SUPPORTED}")
        if not dense:
            raise ValueError("model has no dense layer (objects with weights and biases)")
        if after_relu:
            raise NotImplementedError(f"model ends with a ReLU after its last dense layer; "
                                      f"supported: {SUPPORTED}")
        keeps = keeps[:len(dense) - 1] + [1.0] * (len(dense) - 1 - len(keeps))
        arrays = [np.asarray(a) for layer in dense for a in (layer.weights, layer.biases)]
        dt = (float_dtype(*[a.dtype for a in arrays]) if dtype is None
              else resolve_dtype(dtype))
        return cls(sizes, dt, dense, regs, keeps, None, dropouts)

    def configure(self, regularizers, dropout):
        """Apply ``train``'s regularisation and dropout arguments (None: keep the
        layers' own)."""
        n = len(self.layers)
        for col, name in enumerate(_REGULARIZERS):
            if regularizers[name] is not None:
                self.reg[:, col] = _per_layer(regularizers[name], n, name, _regularizer)
        if dropout is not None:
            if n < 2:
                raise ValueError("dropout needs a hidden layer; this network has none")
            rates = _per_layer(dropout, n - 1, "dropout", _dropout_rate)
            self.keep[:-1] = [1.0 - r for r in rates]

    @property
    def has_dropout(self):
        return bool(np.any(self.keep < 1.0))

    def drawn_layers(self):
        """(hidden layer, keep probability) of every layer whose dropout masks the
        book's Model draws: its ``Layer_Dropout`` objects, and layers given a rate."""
        layers = set(self.dropout_layers) | {i for i, k in enumerate(self.keep) if k < 1.0}
        return [(i, float(self.keep[i])) for i in sorted(layers)]

    # -- parameters and optimizer state, in the kernels' flat layout --------------------
    def flat(self, names=("weights", "biases")):
        """The layers' ``names`` arrays (absent ones as zeros) as one flat vector."""
        out = np.zeros(self.n_params, dtype=self.dtype)
        for layer, off, a, b in zip(self.layers, self.layer_off, self.sizes[:-1],
                                    self.sizes[1:], strict=True):
            for name, lo, shape in ((names[0], off, (a, b)), (names[1], off + a * b, (1, b))):
                value = getattr(layer, name, None)
                if value is None:
                    continue
                value = np.asarray(value)
                if value.size != shape[0] * shape[1]:
                    raise ValueError(f"{name} of a layer has shape {value.shape}, but the "
                                     f"layer's parameters are {shape}")
                with np.errstate(over="ignore"):
                    out[lo:lo + value.size] = value.reshape(-1)
        return out

    def optimizer_state(self, kind, uses_m, uses_v):
        """(m, v): the optimizer state the book's optimizer of this kind would continue
        from, layer by layer, in the flat layout.  The book checks for one attribute per
        layer -- ``weight_momentums`` (SGD with momentum), ``weight_cache`` (Adagrad,
        RMSprop, Adam) -- and creates zeros (Adam: all four arrays) where it is absent;
        so Adam after SGD with momentum starts from zero momentums, as the book's does."""
        m = np.zeros(self.n_params, dtype=self.dtype)
        v = np.zeros(self.n_params, dtype=self.dtype)
        marker = "weight_momentums" if kind == "sgd" else "weight_cache"
        for layer, off, a, b in zip(self.layers, self.layer_off, self.sizes[:-1],
                                    self.sizes[1:], strict=True):
            if getattr(layer, marker, None) is None:
                continue
            end = off + a * b + b
            view = Stack([a, b], self.dtype, [layer], [[0.0] * 4], [], None)
            if uses_m:
                m[off:end] = view.flat(("weight_momentums", "bias_momentums"))
            if uses_v:
                v[off:end] = view.flat(("weight_cache", "bias_cache"))
        return m, v

    def store(self, params, names=("weights", "biases"), create=False):
        """Write a flat vector into the layers' ``names`` arrays: in place when the
        array is there with the right shape (a caller holding it sees the change, as
        with the book's ``+=``), else as a new array (``create``: the optimizer state)."""
        if self.owner is not None and names == ("weights", "biases"):
            self.owner.params = params
            return
        for layer, off, a, b in zip(self.layers, self.layer_off, self.sizes[:-1],
                                    self.sizes[1:], strict=True):
            for name, lo, shape in ((names[0], off, (a, b)), (names[1], off + a * b, (1, b))):
                new = params[lo:lo + shape[0] * shape[1]].reshape(shape)
                old = getattr(layer, name, None)
                if isinstance(old, np.ndarray) and old.size == new.size and \
                        old.dtype.kind == "f" and old.flags.writeable:
                    with np.errstate(over="ignore"):
                        old[...] = new.reshape(old.shape)
                elif create or old is not None:
                    dt = (old.dtype if isinstance(old, np.ndarray) and old.dtype.kind == "f"
                          else self.dtype)
                    setattr(layer, name, new.astype(dt))

    def meta(self):
        return dict(layer_sizes=self.sizes.tolist(), dtype=self.dtype.name,
                    regularizers=self.reg.tolist(), keep=self.keep.tolist())


class Data:
    """Training and validation samples as the kernels take them: X in the network's
    dtype, labels int64, all checked (finite, labels in range) before any kernel."""

    def __init__(self, x, labels, xv, lv):
        self.x, self.labels, self.xv, self.lv = x, labels, xv, lv

    @classmethod
    def of(cls, stack, X, y, validation):
        d, c = int(stack.sizes[0]), int(stack.sizes[-1])
        x = _kernel_ready(as_matrix(X, "X", n_cols=d, dtype=stack.dtype))
        labels = _kernel_ready(np.ascontiguousarray(as_labels(y, x.shape[0], c),
                                                    dtype=np.int64))
        if validation is None:
            xv, lv = np.zeros((0, d), stack.dtype), np.zeros(0, np.int64)
        else:
            if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
                raise TypeError("validation must be a pair (X_val, y_val), got "
                                f"{type(validation).__name__}")
            xv = _kernel_ready(as_matrix(validation[0], "validation X_val", n_cols=d,
                                         dtype=stack.dtype))
            lv = _kernel_ready(np.ascontiguousarray(
                as_labels(validation[1], xv.shape[0], c, name="validation y_val"),
                dtype=np.int64))
        return cls(x, labels, xv, lv)

    def fingerprint(self):
        return fingerprint(self.x, self.labels, self.xv, self.lv)


def _kernel_ready(arr):
    """``arr`` as the kernels' one signature types it (writable and aligned): a
    read-only or unaligned array (a frozen or memory-mapped file's) is copied."""
    return arr if arr.flags.writeable and arr.flags.aligned else arr.copy()


def work_layout(sizes, dtype, batch):
    """(layout, rows, block) of the kernels' scratch for a network with these layer
    sizes (``kernels/train.py``): the block is the largest power of two up to 1024
    whose scratch fits in about 1 MB (L2), and no larger than needed for ``batch``."""
    def round4(k):
        return (int(k) + 3) // 4 * 4

    layout, row = [], 0
    for size in sizes:
        layout.append(row)
        row += round4(size)
    widest = round4(max(sizes[1:]))
    layout += [row, row + widest, row + 2 * widest]
    rows = row + 2 * widest + kt.SCRATCH_ROWS
    block = _MAX_BLOCK
    while block > _MIN_BLOCK and rows * block * np.dtype(dtype).itemsize > _WORK_BYTES:
        block //= 2
    while block > _MIN_BLOCK and block // 2 >= batch:
        block //= 2
    return np.array(layout, dtype=np.int64), rows, block


class Training(driver.Run):
    """One training run: its state (checkpointed), the kernels' buffers, the chunk
    calls (``driver.drive``) and the result.  A unit of work is one step (one batch);
    progress is shown in epochs."""

    name = "train"
    unit = "epoch"

    def __init__(self, stack, data, opts):
        self.stack, self.data, self.opts = stack, data, opts
        st = opts["settings"]
        n, p, dt = data.x.shape[0], stack.n_params, stack.dtype
        self.batch = n if opts["batch_size"] is None else min(opts["batch_size"], n)
        self.n_batches = -(-n // self.batch)
        self.shuffle = opts["shuffle"] and self.batch < n
        self.book = opts.get("arithmetic") == "book"
        self.family = ("book" if self.book
                       else kt.train_family(stack.sizes.tolist(), stack.has_dropout))
        self.layout, rows, block = work_layout(stack.sizes.tolist(), dt, self.batch)
        self.blocks = -(-self.batch // block)
        self.mode = self._pick_mode()
        threads = numba.config.NUMBA_NUM_THREADS if self.mode == "parallel" else 1
        self.work = aligned_zeros((threads, rows, block), dt)
        self.gslots = aligned_zeros((self.blocks, p), dt)
        self.lslots = np.zeros((self.blocks, 2), np.float64)
        # the run's state, checkpointed
        self.params = stack.flat()
        check_finite(self.params, "model parameters")
        kind = st["kind"]
        uses_m = kind == "adam" or (kind == "sgd" and st["momentum"] != 0)
        uses_v = kind in ("adagrad", "rmsprop", "adam")
        self.state_names = (("weight_momentums", "bias_momentums") if uses_m else None,
                            ("weight_cache", "bias_cache") if uses_v else None)
        self.m, self.v = stack.optimizer_state(kind, uses_m, uses_v)
        self.good = self.params.copy()
        self.good_m, self.good_v = self.m.copy(), self.v.copy()
        self.best = self.params.copy()
        self.perm = np.arange(n, dtype=np.int64)
        self.vperm = np.arange(data.xv.shape[0], dtype=np.int64)
        self.istate = np.zeros(kt.ISTATE_SIZE, np.int64)
        self.istate[kt.ITER] = st["iterations"]
        self.istate[kt.BEST_EPOCH] = -1
        self.fstate = np.zeros(kt.FSTATE_SIZE, np.float64)
        self.fstate[kt.BEST_LOSS] = np.inf
        self.records = []  # epoch records (rows of kt.EPOCH_COLUMNS), chunk by chunk
        self.step_records = []
        self.seconds_before = 0.0
        self.start_iterations = st["iterations"]
        self._kernel_args()
        wants_meta = opts["checkpoint"] is not None or opts["resume"] is not None
        self._meta = self.meta() if wants_meta else None
        if opts["resume"] is not None:
            self._resume(opts["resume"])

    def _pick_mode(self):
        if (self.book or self.blocks < 2 or not driver.on_main_thread()
                or numba.get_num_threads() < 2):
            return "serial"
        driver.threading_layer()  # start Numba's threads before the parallel kernel loads
        return "parallel"

    def _kernel_args(self):
        o, st, stack, data = self.opts, self.opts["settings"], self.stack, self.data
        n_layers = len(stack.layers)
        self.config = np.zeros(kt.CONFIG_SIZE, np.int64)
        self.config[[kt.C_EPOCHS, kt.C_BATCH, kt.C_SHUFFLE, kt.C_PATIENCE, kt.C_RECORD_STEPS,
                     kt.C_HAS_VAL, kt.C_GIVEN_MASKS, kt.C_PARALLEL, kt.C_KIND, kt.C_BOOK]] = (
            o["epochs"], self.batch, self.shuffle, o["patience"], o["record_steps"],
            data.xv.shape[0] > 0, o["masks"] == "numpy" and bool(stack.drawn_layers()),
            self.mode == "parallel", KINDS[st["kind"]], self.book)
        self.hyper = np.zeros(kt.HYPER_SIZE, np.float64)
        h1 = {"sgd": "momentum", "rmsprop": "rho", "adam": "beta_1"}.get(st["kind"])
        # without decay the book's optimizers never recompute current_learning_rate:
        # they step with whatever it holds (the learning rate, unless changed)
        lr = st["learning_rate"] if st["decay"] else st["current_learning_rate"]
        self.hyper[[kt.H_LR, kt.H_DECAY, kt.H_1, kt.H_2, kt.H_EPS, kt.H_TARGET]] = (
            lr, st["decay"], st.get(h1, 0.0), st.get("beta_2", 0.0), st.get("epsilon", 0.0),
            o["target_loss"])
        cap = min(_RECORD_CAP, o["epochs"])
        self.epoch_rec = np.zeros((cap, len(kt.EPOCH_COLUMNS)), np.float64)
        self.step_rec = np.zeros((_RECORD_CAP if o["record_steps"] else 1,
                                  len(kt.STEP_COLUMNS)), np.float64)
        self.keys = np.zeros(n_layers, np.uint64)
        self.given = np.zeros(1, np.uint8)
        self.goff = np.full((1, n_layers), -1, np.int64)
        self.kernels = (kt.block_kernel(self.family, self.stack.dtype),
                        kt.train_kernel(self.stack.dtype, self.mode == "parallel", self.book))

    # -- checkpoints ------------------------------------------------------------------
    _STATE = ("params", "m", "v", "good", "good_m", "good_v", "best", "perm", "istate",
              "fstate")

    def arguments(self):
        """The run's arguments and network (without the data), for model files."""
        meta = self.meta()
        del meta["kind"], meta["data"]
        meta.update(epochs=self.opts["epochs"], target_loss=None if math.isinf(
            meta["target_loss"]) else meta["target_loss"], patience=meta["patience"] or None)
        return meta

    def meta(self):
        o = self.opts
        return dict(kind="fastnn.train", **self.stack.meta(), data=self.data.fingerprint(),
                    optimizer={k: v for k, v in o["settings"].items()
                               if k not in ("iterations", "current_learning_rate")},
                    batch_size=o["batch_size"], shuffle=o["shuffle"], seed=o["seed"],
                    target_loss=o["target_loss"], patience=o["patience"], masks=o["masks"])

    def state(self):
        arrays = {name: getattr(self, name) for name in self._STATE}
        arrays["history"] = self._records()
        arrays["start_iterations"] = np.int64(self.start_iterations)
        arrays["seconds"] = np.float64(self.seconds_before + self._elapsed())
        return arrays, self._meta

    def _resume(self, path):
        arrays = driver.restore(path, self._meta, {name: getattr(self, name)
                                                   for name in self._STATE})
        for name in self._STATE:
            getattr(self, name)[...] = arrays[name]
        if self.istate[kt.EPOCH] > self.opts["epochs"]:
            raise ValueError(f"epochs={self.opts['epochs']} is fewer than the "
                             f"{int(self.istate[kt.EPOCH])} epochs already done in "
                             f"{str(path)!r}")
        history = arrays.get("history")
        if history is not None and history.ndim == 2 and history.shape[0]:
            self.records.append(history)
        self.start_iterations = int(arrays.get("start_iterations", self.start_iterations))
        self.seconds_before = float(arrays.get("seconds", 0.0))

    # -- the chunks -----------------------------------------------------------------------
    def execute(self):
        # the kernels were compiled (or loaded) for their one signature when they were
        # looked up (``_kernel_args``): nothing here is compile time
        self.t0 = time.perf_counter()
        try:
            driver.drive(self, progress=self.opts["progress"], callback=self.opts["callback"],
                         checkpoint=self.opts["checkpoint"],
                         checkpoint_every=self.opts["checkpoint_every"],
                         first_chunk=_FIRST_CHUNK)
        finally:
            self.seconds = time.perf_counter() - self.t0

    def _call(self, steps):
        self.config[kt.C_MAX_STEPS] = steps
        if steps and self.config[kt.C_GIVEN_MASKS]:
            steps = self._draw_masks(steps)
            self.config[kt.C_MAX_STEPS] = steps
        d = self.data
        block, loop = self.kernels
        # the parallel loop hands out blocks one at a time, not in equal shares: on a
        # shared machine a thread that falls behind then does fewer (5-15% faster on 2
        # threads, measured); each block still writes its own slot
        chunk = numba.set_parallel_chunksize(1) if self.mode == "parallel" else None
        try:
            loop(block, d.x, d.labels, d.xv, d.lv, self.stack.sizes, self.layout,
                 self.stack.layer_off, self.params, self.m, self.v, self.good, self.good_m,
                 self.good_v, self.best, self.gslots, self.lslots, self.work, self.perm,
                 self.vperm, self.keys, self.given, self.goff, self.config, self.hyper,
                 self.stack.reg, self.stack.keep, np.uint64(self.opts["seed"]), self.istate,
                 self.fstate, self.step_rec, self.epoch_rec)
        finally:
            if chunk is not None:
                numba.set_parallel_chunksize(chunk)
        self._collect()

    def _draw_masks(self, steps):
        """The dropout masks of the next ``steps`` steps, the draws of NumPy's global
        generator exactly as the book's ``Layer_Dropout`` makes them (per step, per
        dropout layer in order, ``np.random.binomial(1, keep, size=(batch, units))``),
        so a seeded script gets the book's masks and leaves the generator where the book
        would.  Drawn by ``kernels/mt19937.py`` from the generator's state (7x faster
        than NumPy's binomial, the same bits), which is then put back.  Returns how
        many steps' masks fit the buffer (``_MASK_BYTES``)."""
        stack = self.stack
        epoch, step = int(self.istate[kt.EPOCH]), int(self.istate[kt.STEP])
        n = self.data.x.shape[0]
        left = (self.opts["epochs"] - epoch) * self.n_batches - step
        drawn = stack.drawn_layers()
        per_step = self.batch * sum(int(stack.sizes[i + 1]) for i, _ in drawn)
        steps = max(1, min(steps, left, _MASK_BYTES // max(per_step, 1)))
        offsets = np.full((steps, len(stack.layers)), -1, np.int64)
        self.given = np.zeros(max(steps * per_step, 1), np.uint8)
        state = np.random.get_state()  # noqa: NPY002 - the book's generator
        key, pos = np.array(state[1], dtype=np.uint32), int(state[2])
        words = np.empty(mt19937.N, np.uint32)
        off = 0
        for k in range(steps):
            s = (step + k) % self.n_batches
            bn = min(self.batch, n - s * self.batch)
            for layer, keep in drawn:
                size = bn * int(stack.sizes[layer + 1])
                pos = mt19937.binomial1(key, pos, *mt19937.binomial_parameters(keep), words,
                                        self.given[off:off + size])
                # a rate-0 layer's draws are all 1: consumed, not used -- but in the
                # book's arithmetic its float64 mask (of ones) still widens what it
                # passes on, so that family is told of it
                if keep < 1.0 or self.book:
                    offsets[k, layer] = off
                off += size
        np.random.set_state((state[0], key, pos, *state[3:]))  # noqa: NPY002
        self.goff = offsets
        return steps

    def _collect(self):
        r = int(self.istate[kt.N_EPOCH_REC])
        if r:
            self.records.append(self.epoch_rec[:r].copy())
        self.istate[kt.N_EPOCH_REC] = 0
        s = int(self.istate[kt.N_STEP_REC])
        if s:
            self.step_records.append(self.step_rec[:s].copy())
        self.istate[kt.N_STEP_REC] = 0

    def running(self):
        return (self.stopped is None and self.istate[kt.STATUS] == kt.RUNNING
                and self.istate[kt.EPOCH] < self.opts["epochs"])

    def advance(self, budget):
        self._call(budget)

    def progress(self):
        postfix = {}
        if self.records:
            last = self.records[-1][-1]
            count = max(last[5], 1)
            postfix = dict(loss=f"{last[1] + self._reg(last):.4g}",
                           acc=f"{last[4] / count:.4f}")
            if self.data.xv.shape[0]:
                postfix["val_loss"] = f"{last[7]:.4g}"
        return int(self.istate[kt.EPOCH]), self.opts["epochs"], postfix

    def _reg(self, row):
        """The regularisation loss the book prints with an epoch: chapter 18's (before
        the update) for full-batch steps, chapter 19's (after the epoch) for batches."""
        return row[2] if self.n_batches == 1 else row[3]

    def _records(self):
        if not self.records:
            return np.zeros((0, len(kt.EPOCH_COLUMNS)), np.float64)
        return np.concatenate(self.records)

    def _elapsed(self):
        t0 = getattr(self, "t0", None)
        return 0.0 if t0 is None else time.perf_counter() - t0

    def take_steps(self):
        """The step records collected since the last call (``record_steps``)."""
        steps = (np.concatenate(self.step_records) if self.step_records
                 else np.zeros((0, len(kt.STEP_COLUMNS)), np.float64))
        self.step_records = []
        return steps

    # -- the end ----------------------------------------------------------------------------
    def history(self):
        rec = self._records()
        count = np.maximum(rec[:, 5], 1)
        reg = rec[:, 2] if self.n_batches == 1 else rec[:, 3]
        nv = max(self.data.xv.shape[0], 1)
        has_val = self.data.xv.shape[0] > 0
        nan = np.full(rec.shape[0], np.nan)
        return TrainHistory(
            epoch=rec[:, 0].astype(np.int64), loss=rec[:, 1] + reg, accuracy=rec[:, 4] / count,
            learning_rate=rec[:, 6], val_loss=rec[:, 7] if has_val else nan,
            val_accuracy=rec[:, 8] / nv if has_val else nan, data_loss=rec[:, 1],
            regularization_loss=reg)

    def stopped_reason(self):
        if self.stopped is not None:
            return self.stopped
        return _STOPPED.get(int(self.istate[kt.STATUS]), "epochs")

    def result(self):
        h = self.history()
        last = len(h.epoch) - 1
        has_val = self.data.xv.shape[0] > 0 and last >= 0

        def at(values):
            return float(values[last]) if last >= 0 else float("nan")

        stopped = self.stopped_reason()
        loss, accuracy, data_loss, reg_loss = (at(h.loss), at(h.accuracy), at(h.data_loss),
                                               at(h.regularization_loss))
        val_loss = at(h.val_loss) if has_val else None
        val_accuracy = at(h.val_accuracy) if has_val else None
        if stopped == "diverged":  # the kept parameters are not those of the last epoch
            data_loss, accuracy, val_loss, val_accuracy, reg_loss = self._measure()
            loss = data_loss + reg_loss
        seconds = self.seconds_before + (getattr(self, "seconds", None) or self._elapsed())
        st = self.opts["settings"]
        its = int(self.istate[kt.ITER])
        if st["decay"] and its > 0:  # the book's pre_update_params, for the last update
            lr = st["learning_rate"] * (1. / (1. + st["decay"] * (its - 1)))
        else:
            lr = st["current_learning_rate"]
        return TrainResult(
            loss=loss, accuracy=accuracy, data_loss=data_loss,
            regularization_loss=reg_loss, val_loss=val_loss, val_accuracy=val_accuracy,
            epochs=int(self.istate[kt.EPOCH]), steps=its, learning_rate=lr, history=h,
            seconds=seconds, params=self.final_params().copy(),
            interrupted=stopped == "interrupted", stopped=stopped, seed=self.opts["seed"],
            mode=self.mode)

    def _measure(self):
        """(data loss, accuracy, validation loss and accuracy or None, regularisation
        loss) of the parameters the run returns, dropout off (after a divergence they
        are not the last epoch's)."""
        stack, data = self.stack, self.data
        params = self.final_params()
        net = MLP(stack.sizes.tolist(), seed=0, dtype=stack.dtype)
        net.params = params
        loss, accuracy = net.evaluate(data.x, data.labels)
        val_loss = val_accuracy = None
        if data.xv.shape[0]:
            val_loss, val_accuracy = net.evaluate(data.xv, data.lv)
        reg = 0.0
        for (l1w, l2w, l1b, l2b), layer in zip(stack.reg, net.layers, strict=True):
            for l1, l2, a in ((l1w, l2w, layer.weights), (l1b, l2b, layer.biases)):
                a = a.astype(np.float64)
                reg += l1 * np.abs(a).sum() + l2 * (a * a).sum()
        return float(loss), float(accuracy), val_loss, val_accuracy, float(reg)

    def _store_book_state(self, vec, names):
        """The optimizer state as the book's optimizer leaves it under ``nnfs.init()``
        (``kernels/train_book.py``): new float32 arrays, but float64 for the biases of
        layers whose output goes through dropout (except Adagrad's cache: added to in
        place, it keeps its float32)."""
        stack = self.stack
        in_place = self.opts["settings"]["kind"] == "adagrad"
        wide = set() if in_place else {layer for layer, _ in stack.drawn_layers()}
        for i, (layer, off, a, b) in enumerate(zip(stack.layers, stack.layer_off,
                                                   stack.sizes[:-1], stack.sizes[1:],
                                                   strict=True)):
            setattr(layer, names[0], vec[off:off + a * b].reshape(a, b).astype(np.float32))
            bias_dtype = np.float64 if i in wide else np.float32
            setattr(layer, names[1], vec[off + a * b:off + a * b + b].reshape(1, b)
                    .astype(bias_dtype))

    def final_params(self):
        if self.istate[kt.STATUS] == kt.PATIENCE_EXHAUSTED:
            return self.best
        return self.params

    def finish(self):
        """Write the parameters, the optimizer's state and iterations back; warn if
        the run diverged; return the result."""
        result = self.result()
        stack = self.stack
        stack.store(self.final_params())
        for names, vec in zip(self.state_names, (self.m, self.v), strict=True):
            if names is None:
                continue
            if self.book:
                self._store_book_state(vec, names)
            else:
                stack.store(vec, names, create=True)
        optimizer = self.opts["optimizer"]
        if optimizer is not None:
            optimizer.iterations = result.steps
            if self.opts["settings"]["decay"] and result.steps > self.start_iterations:
                optimizer.current_learning_rate = result.learning_rate
        if result.stopped == "diverged":
            warnings.warn(f"fastnn.train: the loss became NaN or infinite in epoch "
                          f"{result.epochs}; stopped, keeping the last parameters whose "
                          f"loss was finite (try a smaller learning rate)",
                          RuntimeWarning, stacklevel=3)
        return result

