"""``search``: the nnfs book's random search, compiled whole and built for huge runs.

The loop itself (noise, candidates, loss, acceptance) runs in ``kernels/search.py``, a
chunk of steps per call.  This module checks the arguments, turns the model into one
flat parameter vector, picks serial or parallel execution, and between chunks shows
progress, calls the callback, honours Ctrl-C and writes checkpoints.  Results depend
only on the arguments and the seed, never on threads, chunking or timing.
"""

import math
import numbers
import time
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
    check_label_range,
    float_dtype,
    resolve_dtype,
)
from .checkpoint import CheckpointError, fingerprint
from .kernels import search as ks
from .kernels.network import loss_family, loss_kernel
from .network import MLP, make_work

STRATEGIES = ("perturb", "random")
PARALLEL_MODES = (None, False, "chains", "candidates")
_STOP_REASONS = {ks.TARGET_REACHED: "target_loss", ks.PATIENCE_EXHAUSTED: "patience"}
#: history entries per chain per chunk, and so the most steps a chunk may have: chains
#: then move in lockstep (a chain whose buffer filled up would fall behind the others)
#: and memory stays bounded (24 bytes per entry; fewer per chain when there are many)
_HISTORY_CAP = 1 << 16
_HISTORY_BYTES = 1 << 25
#: steps in the first timed chunk (``driver.drive`` sizes the next ones)
_FIRST_CHUNK = 64
#: a parallel region costs about this much (omp/tbb; Numba's workqueue layer ~100x
#: more): run a step's candidates in parallel only when they take many times longer
_REGION_SECONDS = {"omp": 5e-6, "tbb": 5e-6, "workqueue": 2e-4}


class _HistoryFields(NamedTuple):
    step: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray


class History(_HistoryFields):
    """Every improvement of one chain: the step it happened at, the new loss, accuracy;
    and ``val_loss``/``val_accuracy``, those parameters' loss and accuracy on the
    validation data (NaN without validation data, as in ``TrainHistory``).

    A three-field tuple, as before validation existed, so ``step, loss, accuracy =
    history`` and ``zip(*history)`` keep working; the validation arrays are attributes
    beside the fields (not part of the tuple: tuple equality and ``_asdict`` do not see
    them; ``_replace`` keeps or replaces them).  Rejected: two more NamedTuple fields,
    which would break every three-name unpacking of a history
    (``tests/test_search.py::test_history_unpacks_into_three_arrays``)."""

    def __new__(cls, step, loss, accuracy, val_loss=None, val_accuracy=None):
        self = super().__new__(cls, step, loss, accuracy)
        nan = np.full(np.shape(step), np.nan)
        self.val_loss = nan if val_loss is None else val_loss
        self.val_accuracy = nan.copy() if val_accuracy is None else val_accuracy
        return self

    @classmethod
    def _make(cls, iterable):
        return cls(*iterable)

    def _replace(self, **changes):
        vals = {name: changes.pop(name, getattr(self, name))
                for name in ("val_loss", "val_accuracy")}
        return History(*super()._replace(**changes), **vals)

    def __repr__(self):
        return (f"History(step={self.step!r}, loss={self.loss!r}, "
                f"accuracy={self.accuracy!r}, val_loss={self.val_loss!r}, "
                f"val_accuracy={self.val_accuracy!r})")


@dataclass
class SearchResult:
    """What ``search`` found: the best chain's loss, accuracy and parameters, and how.

    ``iteration`` is the step of the best chain's last improvement (``None`` if no step
    improved on the starting parameters); ``history`` its improvements; ``evaluations``
    the number of candidate networks evaluated (all chains); ``stopped`` why the search
    ended: "iterations", "target_loss", "patience", "callback" or "interrupted".
    ``val_loss``/``val_accuracy``: the best parameters on the validation data (None
    without validation data)."""

    loss: float
    accuracy: float
    iteration: int | None
    history: History
    evaluations: int
    seconds: float
    params: np.ndarray
    interrupted: bool
    stopped: str
    chain: int
    chain_losses: np.ndarray
    chain_histories: list = field(repr=False)
    steps: int
    seed: int
    mode: str
    val_loss: float | None = None
    val_accuracy: float | None = None
    #: what a model file records about this run (``fastnn.modelfile.provenance``)
    provenance: dict | None = field(default=None, repr=False)

    def plot(self, ax=None):
        """Loss and accuracy of this run (``fastnn.plot.history``; needs matplotlib)."""
        from .plot import history
        return history(self, ax)

    @property
    def evaluations_per_second(self):
        return self.evaluations / self.seconds if self.seconds > 0 else float("inf")

    def __repr__(self):
        it = "none" if self.iteration is None else self.iteration
        val = ("" if self.val_loss is None
               else f", val_loss={self.val_loss:.6g}, val_accuracy={self.val_accuracy:.4f}")
        return (f"SearchResult(loss={self.loss:.6g}, accuracy={self.accuracy:.4f}{val}, "
                f"iteration={it}, steps={self.steps}, evaluations={self.evaluations}, "
                f"seconds={self.seconds:.3g}, stopped={self.stopped!r}, mode={self.mode!r})")


def search(model, X, y, *, strategy="perturb", iterations=10_000, scale=0.05, candidates=1,
           chains=1, seed=None, adapt=False, target_loss=None, patience=None,
           parallel=None, threads=None, progress=False, callback=None, checkpoint=None,
           checkpoint_every=60.0, resume=None, dtype=None, validation=None):
    """Random search over the parameters of ``model`` (an ``MLP`` or a list of the
    notebook's ``Dense_Layer`` objects, ReLU between them and softmax at the end).

    Each of ``iterations`` steps evaluates ``candidates`` candidates per chain:
    ``strategy="perturb"`` (the book's chapter 6) adds ``scale * N(0, 1)`` noise to the
    chain's current parameters and moves to the best candidate only if it lowers the
    loss; ``"random"`` draws every candidate afresh as ``scale * N(0, 1)`` and keeps
    the best ever.  Both start from the model's own parameters, so the result is
    never worse than the model.  ``chains`` independent searches (own noise streams)
    run side by side and the best is reported.

    ``adapt=True`` adapts each chain's step by the 1/5th success rule (x2 on success,
    x2**-1/4 on failure); a chain stops early once its loss is ``<= target_loss`` or
    after ``patience`` steps without improvement.  ``parallel``: None picks (chains in
    parallel when there are several, a step's candidates in parallel when they are
    costly enough), False, "chains" or "candidates"; ``threads`` caps Numba's threads.
    None of these change the result: it depends only on the arguments and ``seed``
    (None draws one, reported as ``result.seed``).

    Between compiled chunks of about 0.2 s: a tqdm progress bar (``progress=True``),
    ``callback(result_so_far)`` (return True to stop), and every ``checkpoint_every``
    seconds an atomic write of ``checkpoint`` (.npz, no pickle).  Ctrl-C returns the
    best so far, marked ``interrupted``.  ``resume="run.npz"`` continues a checkpointed
    run, with the same data and arguments, to the same result as an uninterrupted run.

    ``validation=(X_val, y_val)`` (the book's chapter 11): every improvement a chain
    records is also evaluated on these samples, inside the compiled loop when it is
    accepted (``History.val_loss``/``val_accuracy``), and the result reports the best
    parameters' ``val_loss``/``val_accuracy``.  The search itself still follows the
    training loss: validation data never changes which steps are taken.

    On return the model holds the best parameters found.
    """
    opts = _check_options(strategy, iterations, scale, candidates, chains, seed, adapt,
                          target_loss, patience, parallel, threads, progress, callback,
                          checkpoint, checkpoint_every, resume)
    net = _Network.of(model, dtype)
    x = as_matrix(X, "X", n_cols=net.sizes[0], dtype=net.dtype, check=False)
    labels = as_labels(y, x.shape[0], net.sizes[-1], check=False)
    labels = np.ascontiguousarray(labels, dtype=np.int64)  # one kernel signature
    xv, lv = _validation_data(validation, net, x, labels)
    with driver.numba_threads(opts["threads"]):  # before the mode is picked from the count
        run = _Run(net, x, labels, opts, xv, lv)
        try:
            run.execute()
        except BaseException:
            net.store(run.result().params)  # a failing callback, say: keep the best so far
            raise
    result = run.result()
    net.store(result.params)
    if opts["checkpoint"] is not None:  # after the model holds the result: nothing lost
        driver.save(run, opts["checkpoint"])
    result.provenance = modelfile.provenance("search", run.arguments(), result, x, labels,
                                             xv)
    if isinstance(model, MLP):  # what model.save() records
        model.made_by = result.provenance
    return result


def _check_options(strategy, iterations, scale, candidates, chains, seed, adapt, target_loss,
                   patience, parallel, threads, progress, callback, checkpoint,
                   checkpoint_every, resume):
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    iterations = as_positive_int(iterations, "iterations")
    if iterations > 2 ** 62:
        raise ValueError(f"iterations must be <= 2**62, got {iterations}")
    scale = driver.positive_float(scale, "scale")
    candidates = as_positive_int(candidates, "candidates")
    chains = as_positive_int(chains, "chains")
    seed = driver.check_seed(seed)
    if not isinstance(adapt, (bool, np.bool_)):
        raise TypeError(f"adapt must be True or False, got {adapt!r}")
    if adapt and strategy != "perturb":
        raise ValueError("adapt=True applies to strategy='perturb' only")
    if target_loss is None:
        target_loss = -math.inf
    elif isinstance(target_loss, bool) or not isinstance(target_loss, numbers.Real):
        raise TypeError(f"target_loss must be a number or None, got {type(target_loss).__name__}")
    elif not math.isfinite(target_loss):
        raise ValueError(f"target_loss must be finite, got {target_loss}")
    patience = 0 if patience is None else as_positive_int(patience, "patience")
    if isinstance(parallel, str) or parallel is None:
        if parallel not in PARALLEL_MODES:
            raise ValueError(f"parallel must be one of {PARALLEL_MODES}, got {parallel!r}")
    elif isinstance(parallel, (bool, np.bool_, numbers.Real)) and parallel == 0:
        parallel = False
    else:
        raise ValueError(f"parallel must be one of {PARALLEL_MODES}, got {parallel!r}")
    threads = driver.check_threads(threads)
    callback = driver.check_callback(callback)
    checkpoint_every = driver.positive_float(checkpoint_every, "checkpoint_every")
    checkpoint = driver.writable_path(checkpoint, "checkpoint")
    resume = driver.check_resume(resume)
    return dict(strategy=strategy, iterations=iterations, scale=scale, candidates=candidates,
                chains=chains, seed=int(seed), adapt=bool(adapt),
                target_loss=float(target_loss), patience=patience, parallel=parallel,
                threads=threads, progress=bool(progress), callback=callback,
                checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)


def _validation_data(validation, net, x, labels):
    """``(X_val, y_val)`` as the kernels take them (the network's dtype, labels int64,
    C-contiguous; no samples without validation data).  Their values -- finite, labels
    in range -- are checked with the starting loss (``_Run``), as X and y are."""
    d = int(net.sizes[0])
    if validation is None:
        xv, lv = np.zeros((0, d), net.dtype), np.zeros(0, np.int64)
    else:
        if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
            raise TypeError("validation must be a pair (X_val, y_val), got "
                            f"{type(validation).__name__}"
                            + (f" of length {len(validation)}"
                               if isinstance(validation, (tuple, list)) else ""))
        xv = as_matrix(validation[0], "validation X_val", n_cols=d, dtype=net.dtype,
                       check=False)
        lv = as_labels(validation[1], xv.shape[0], int(net.sizes[-1]),
                       name="validation y_val", check=False)
        lv = np.ascontiguousarray(lv, dtype=np.int64)
    # the kernels are typed by writability too: match X and y's, or a read-only X
    # (say) and a writable X_val would compile another build of the search
    return _writable_like(xv, x), _writable_like(lv, labels)


def _writable_like(arr, like):
    if arr.flags.writeable == like.flags.writeable:
        return arr
    if like.flags.writeable:
        return arr.copy()
    arr = arr.view()
    arr.flags.writeable = False
    return arr


class _Network:
    """The searched model as sizes + one flat parameter vector, and how to write the
    best parameters back (into an ``MLP``'s vector, or each layer's arrays)."""

    def __init__(self, sizes, params, store):
        self.sizes = sizes
        self.params = params
        self.dtype = params.dtype
        self.store = store

    @classmethod
    def of(cls, model, dtype):
        if isinstance(model, MLP):
            dt = model.dtype if dtype is None else resolve_dtype(dtype)
            params = np.ascontiguousarray(model.params, dtype=dt)

            def store(best):
                model.params = best
            return cls(model.sizes.copy(), params, store)
        if isinstance(model, (list, tuple)) and model:
            return cls._of_layers(list(model), dtype)
        raise TypeError("model must be an fastnn.MLP or a non-empty list of Dense_Layer "
                        f"objects, got {type(model).__name__}")

    @classmethod
    def _of_layers(cls, layers, dtype):
        weights, biases, sizes = [], [], []
        for i, layer in enumerate(layers):
            if not (hasattr(layer, "weights") and hasattr(layer, "biases")):
                raise TypeError(f"model[{i}] must be a dense layer with weights and biases, "
                                f"got {type(layer).__name__}")
            w = as_matrix(layer.weights, f"model[{i}].weights", what="n_neurons", check=False)
            b = np.asarray(layer.biases)
            if b.shape not in ((1, w.shape[1]), (w.shape[1],)):
                raise ValueError(f"model[{i}].biases must have shape (1, {w.shape[1]}), "
                                 f"got {b.shape}")
            if sizes and w.shape[0] != sizes[-1]:
                raise ValueError(f"model[{i}] takes {w.shape[0]} inputs but model[{i - 1}] "
                                 f"has {sizes[-1]} neurons")
            if not sizes:
                sizes.append(w.shape[0])
            sizes.append(w.shape[1])
            weights.append(layer.weights)
            biases.append(b)
        dt = (float_dtype(*[np.asarray(a).dtype for a in weights + biases])
              if dtype is None else resolve_dtype(dtype))
        with np.errstate(over="ignore"):
            params = np.concatenate([
                np.concatenate([np.asarray(w, dtype=dt).ravel(), np.asarray(b, dtype=dt).ravel()])
                for w, b in zip(weights, biases, strict=True)])

        def store(best):
            off = 0
            for layer, w, b in zip(layers, weights, biases, strict=True):
                w, b = np.asarray(w), np.asarray(b)
                w_new = best[off:off + w.size].reshape(w.shape)
                off += w.size
                b_new = best[off:off + b.size].reshape(b.shape)
                off += b.size
                layer.weights = w_new.astype(float_dtype(w.dtype))
                layer.biases = b_new.astype(float_dtype(b.dtype))
        return cls(np.array(sizes, dtype=np.int64), params, store)


class _Run(driver.Run):
    """One search's state (one row per chain, updated in place by the kernels) and its
    compiled chunks, for ``driver.drive``: a unit is a step of every running chain."""

    name = "search"

    def __init__(self, net, x, labels, opts, xv, lv):
        self.net, self.x, self.labels, self.opts = net, x, labels, opts
        self.xv, self.lv = xv, lv
        r, p = opts["chains"], net.params.shape[0]
        self.cur = np.tile(net.params, (r, 1))
        self.family = loss_family(net.sizes.tolist())
        self.loss_kernel = loss_kernel(self.family)
        work = make_work(net.sizes, net.dtype, max_samples=x.shape[0])
        # the input check and the starting loss in one call (a bad label never reaches
        # the loss code: the check returns first)
        ok, total, correct = self.loss_kernel(x, labels, net.params, net.sizes, work,
                                              True, True, True)
        if not ok:
            check_finite(x, "X")
            check_finite(net.params, "model parameters")
            check_label_range(labels, net.sizes[-1], "y")
            raise RuntimeError("fastnn: the input check failed but no check names the cause")
        nv = xv.shape[0]
        # validation samples: their own work array, sized for them, in blocks of the
        # kernels' size (``execute``): the same sums as theirs
        self.vwork = make_work(net.sizes, net.dtype, max_samples=max(nv, 1))
        if nv:
            ok, _, _ = self.loss_kernel(xv, lv, net.params, net.sizes, self.vwork,
                                        True, True, True)
            if not ok:
                check_finite(xv, "validation X_val")
                check_label_range(lv, net.sizes[-1], "validation y_val")
                raise RuntimeError("fastnn: the input check failed but no check names the "
                                   "cause")
        self.t_eval = _time_eval(x, labels, net, work, self.loss_kernel)
        self.loss = np.full(r, total / x.shape[0])
        self.correct = np.full(r, correct, dtype=np.int64)
        self.sigma = np.full(r, opts["scale"])
        self.step = np.zeros(r, dtype=np.int64)
        self.last = np.full(r, -1, dtype=np.int64)
        self.status = np.zeros(r, dtype=np.int64)
        self.status[self.loss <= opts["target_loss"]] = ks.TARGET_REACHED
        self.evals = np.zeros(r, dtype=np.int64)
        # lists of (step, loss, correct, val loss, val correct) arrays (val: None
        # without validation data)
        self.histories = [[] for _ in range(r)]
        self.seconds_before = 0.0
        self.stopped = None
        # the data's fingerprint (a hash of all of X) only when a checkpoint needs it
        wants_meta = opts["checkpoint"] is not None or opts["resume"] is not None
        self.meta = self._meta() if wants_meta else None
        if opts["resume"] is not None:
            self._resume(opts["resume"])
        self.mode = self._pick_mode(p)

    # -- set-up ---------------------------------------------------------------------
    def arguments(self):
        """The search's arguments and layer sizes (without the data)."""
        o = self.opts
        return dict(layer_sizes=self.net.sizes.tolist(), dtype=self.net.dtype.name,
                    strategy=o["strategy"], iterations=o["iterations"], scale=o["scale"],
                    candidates=o["candidates"], chains=o["chains"], seed=o["seed"],
                    adapt=o["adapt"],
                    target_loss=None if o["target_loss"] == -math.inf else o["target_loss"],
                    patience=o["patience"] or None)

    def _meta(self):
        o = self.opts
        # validation data is part of the data (its history entries are in the
        # checkpoint); without it the fingerprint is as it always was
        data = ((self.x, self.labels, self.xv, self.lv) if self.xv.shape[0]
                else (self.x, self.labels))
        return dict(kind="fastnn.search", layer_sizes=self.net.sizes.tolist(),
                    dtype=self.net.dtype.name, data=fingerprint(*data),
                    strategy=o["strategy"], scale=o["scale"], candidates=o["candidates"],
                    chains=o["chains"], seed=o["seed"], adapt=o["adapt"],
                    target_loss=o["target_loss"], patience=o["patience"])

    _STATE = ("cur", "loss", "correct", "sigma", "step", "last", "status", "evals")

    def _resume(self, path):
        arrays = driver.restore(path, self.meta, {name: getattr(self, name)
                                                  for name in self._STATE})
        for name in self._STATE:
            getattr(self, name)[...] = arrays[name]
        if self.step.max() > self.opts["iterations"]:
            raise ValueError(f"iterations={self.opts['iterations']} is fewer than the "
                             f"{int(self.step.max())} steps already done in {str(path)!r}")
        chain = arrays["hist_chain"]
        validated = self.xv.shape[0] > 0
        if validated and not all(name in arrays and arrays[name].shape == chain.shape
                                 for name in ("hist_vloss", "hist_vcorrect")):
            raise CheckpointError(f"checkpoint {str(path)!r} is missing or has malformed "
                                  f"validation history arrays; start a new checkpoint")
        for c in range(self.cur.shape[0]):
            sel = chain == c
            self.histories[c].append((
                arrays["hist_step"][sel], arrays["hist_loss"][sel], arrays["hist_correct"][sel],
                arrays["hist_vloss"][sel] if validated else None,
                arrays["hist_vcorrect"][sel] if validated else None))
        self.seconds_before = float(arrays["seconds"])

    def _pick_mode(self, n_params):
        wanted = self.opts["parallel"]
        if wanted is False or not driver.on_main_thread():
            return "serial"  # the nogil serial kernel: safe from any Python thread
        if wanted is not None:
            return wanted
        if numba.get_num_threads() < 2:
            return "serial"
        if self.opts["chains"] > 1:
            return "chains"
        k = self.opts["candidates"]
        region = _REGION_SECONDS.get(driver.threading_layer(), 2e-4)
        if k >= 2 * numba.get_num_threads() and k * self.t_eval > 20 * region:
            return "candidates"
        return "serial"

    # -- the chunks -------------------------------------------------------------------
    def execute(self):
        """Set up the kernel and its buffers, compile (or load) it untimed, then
        ``driver.drive`` the chunks."""
        o = self.opts
        r, p, k = o["chains"], self.net.params.shape[0], o["candidates"]
        dt = self.net.dtype
        nv = self.xv.shape[0]
        entry = 40 if nv else 24  # bytes per history entry
        cap = min(_HISTORY_CAP, max(1024, _HISTORY_BYTES // (entry * r)), o["iterations"])
        self.hist = (np.zeros((r, cap), np.int64), np.zeros((r, cap)),
                     np.zeros((r, cap), np.int64), np.zeros(r, np.int64))
        vcap = cap if nv else 1  # written only when there are validation samples
        self.vhist = (np.zeros((r, vcap)), np.zeros((r, vcap), np.int64))
        # parameter rows padded to whole cache lines: no two threads write one line;
        # chains keep their current parameters in the second half of ``best``
        row = -(-2 * p * dt.itemsize // 64) * 64 // dt.itemsize
        if self.mode == "candidates":
            work = make_work(self.net.sizes, dt, self.x.shape[0],
                             count=numba.config.NUMBA_NUM_THREADS)
            trial, best = np.zeros((k, row), dt), np.zeros(k)
            self.fn = ks.candidates_kernel(self.family)
        else:
            work = make_work(self.net.sizes, dt, self.x.shape[0], count=r)
            trial, best = np.zeros((r, row), dt), np.zeros((r, row), dt)
            serial, parallel = ks.chain_kernels(self.family)
            self.fn = parallel if self.mode == "chains" else serial
        self.args = (self.x, self.labels, self.net.sizes, np.uint64(o["seed"]),
                     o["strategy"] == "random", np.int64(k))
        self.kopts = (o["adapt"], o["target_loss"], np.int64(o["patience"]), o["scale"])
        # one validation work array per chain (the candidates loop validates serially)
        vwork = make_work(self.net.sizes, dt, max(nv, 1),
                          count=1 if self.mode == "candidates" else r)
        self.kstate = (work, trial, best, self.cur, self.loss, self.correct, self.sigma,
                       self.step, self.last, self.status, self.evals, *self.hist,
                       self.xv, self.lv, vwork, *self.vhist)
        self.fn(*self.args, np.int64(0), self.kopts, *self.kstate)  # compile: no steps
        self.t0 = time.perf_counter()
        try:
            driver.drive(self, progress=o["progress"], callback=o["callback"],
                         checkpoint=o["checkpoint"], checkpoint_every=o["checkpoint_every"],
                         first_chunk=_FIRST_CHUNK, max_chunk=cap)
        finally:
            self.seconds = time.perf_counter() - self.t0

    def running(self):
        if self.stopped is not None:
            return False
        return bool(np.any((self.status == ks.RUNNING) & (self.step < self.opts["iterations"])))

    def advance(self, budget):
        lo = int(self.step[self.status == ks.RUNNING].min())
        step_end = min(self.opts["iterations"], lo + budget)
        self.fn(*self.args, np.int64(step_end), self.kopts, *self.kstate)
        self._collect()

    def progress(self):
        rate = self.evals.sum() / max(self._elapsed(), 1e-9)
        return (int(self.step.sum()), self.opts["iterations"] * self.opts["chains"],
                dict(loss=f"{self.loss.min():.6g}", evals_per_s=f"{rate:.3g}"))

    def _collect(self):
        steps, losses, correct, counts = self.hist
        vloss, vcorrect = self.vhist
        validated = self.xv.shape[0] > 0
        for c, h in enumerate(counts):
            if h:
                self.histories[c].append((
                    steps[c, :h].copy(), losses[c, :h].copy(), correct[c, :h].copy(),
                    vloss[c, :h].copy() if validated else None,
                    vcorrect[c, :h].copy() if validated else None))
        counts[:] = 0

    def _history(self, c):
        """Chain c's (step, loss, correct, val loss, val correct) arrays (the validation
        ones empty without validation data)."""
        parts = self.histories[c]
        empty = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(0),
                 np.zeros(0, np.int64))
        return tuple(np.concatenate([p[i] for p in parts if p[i] is not None] or [empty[i]])
                     for i in range(5))

    def state(self):
        arrays = {name: getattr(self, name) for name in self._STATE}
        hs = [self._history(c) for c in range(self.cur.shape[0])]
        arrays["hist_chain"] = np.concatenate(
            [np.full(h[0].shape[0], c, np.int64) for c, h in enumerate(hs)])
        names = ("hist_step", "hist_loss", "hist_correct", "hist_vloss", "hist_vcorrect")
        for i, name in enumerate(names[:5 if self.xv.shape[0] else 3]):
            arrays[name] = np.concatenate([h[i] for h in hs])
        arrays["seconds"] = np.float64(self.seconds_before + self._elapsed())
        return arrays, self.meta

    def _elapsed(self):
        t0 = getattr(self, "t0", None)
        return 0.0 if t0 is None else time.perf_counter() - t0

    # -- the result ----------------------------------------------------------------------
    def result(self):
        n, nv = self.x.shape[0], self.xv.shape[0]
        best = int(np.argmin(self.loss))  # the lowest chain index wins a tie
        histories = []
        for c in range(self.cur.shape[0]):
            step, loss, correct, vloss, vcorrect = self._history(c)
            histories.append(History(step, loss, correct / n, vloss if nv else None,
                                     vcorrect / nv if nv else None))
        val_loss = val_accuracy = None
        if nv and histories[best].step.size:  # the best parameters: its last improvement
            val_loss = float(histories[best].val_loss[-1])
            val_accuracy = float(histories[best].val_accuracy[-1])
        elif nv:  # no improvement: the starting parameters, evaluated as the kernels do
            _, total, right = self.loss_kernel(self.xv, self.lv, self.cur[best],
                                               self.net.sizes, self.vwork, True, True,
                                               False)
            val_loss, val_accuracy = total / nv, right / nv
        stopped = self.stopped
        if stopped is None:  # why the best chain stopped (all ran to the end otherwise)
            stopped = _STOP_REASONS.get(int(self.status[best]), "iterations")
        last = int(self.last[best])
        return SearchResult(
            loss=float(self.loss[best]), accuracy=float(self.correct[best]) / n,
            iteration=None if last < 0 else last, history=histories[best],
            evaluations=int(self.evals.sum()),
            seconds=self.seconds_before + (getattr(self, "seconds", None) or self._elapsed()),
            params=self.cur[best].copy(), interrupted=stopped == "interrupted",
            stopped=stopped, chain=best, chain_losses=self.loss.copy(),
            chain_histories=histories, steps=int(self.step.max()), seed=self.opts["seed"],
            mode=self.mode, val_loss=val_loss, val_accuracy=val_accuracy)


def _time_eval(x, labels, net, work, loss):
    """Seconds per loss evaluation (best of three; the kernel is already compiled)."""
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        loss(x, labels, net.params, net.sizes, work, False, True, False)
        best = min(best, time.perf_counter() - t)
    return best
