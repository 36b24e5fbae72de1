"""``fastnn.warmup``: compile every kernel once, ahead of time.

Kernels compile on first use, a few seconds each, and Numba's disk cache
(``fastnn/_config.py``) lets later processes load the machine code instead.  A CI job, a
Docker image build or a cluster's start-up script calls ``fastnn.warmup()`` (or runs
``fastnn warmup``) once, so that every later process starts in well under a second, and
so that workers fanned out afterwards do not all compile at the same moment.

It goes through the public API only (``MLP``, ``search``, the notebook classes,
``accuracy``, ``gaussian_noise``), with every input kind that has its own compiled
signature, so it stays complete when the kernels behind them are restructured:

* per float dtype, every shape family of ``kernels.network.EXAMPLE_SIZES`` (each family
  is a separately compiled kernel variant): ``MLP.evaluate`` with int64, int32 and uint8
  labels (each label dtype is its own signature; uint8 is what nnfs's data sets return),
  ``.forward``, ``.predict``, and ``search`` serial, with chains in parallel and with
  candidates in parallel;
* the notebook classes for every combination of input and weight dtype that involves a
  requested dtype: ``Dense_Layer()`` draws float64 weights, so a float32 notebook
  (float32 data, no ``nnfs.init()``) computes in float64 after its first layer;
  ``Loss_CategoricalCrossentropy`` and ``accuracy`` with each label dtype and one-hot
  labels; ``gaussian_noise``;
* the book's training classes (``fastnn.layers``, ``fastnn.losses``,
  ``fastnn.optimizers``) for the same combinations, with and without dropout (its float64
  mask makes a float32 network mixed from there on, ``nnfs.init()`` or not): forward and
  backward passes with L1/L2, every optimizer, the losses with each label dtype;
* per float dtype, ``train`` on a network of every trainer family
  (``kernels.train.EXAMPLES``: each family is its own block kernel), serially and with a
  batch of several blocks on two threads, and the book's ``Model`` with dropout (its
  NumPy-exact masks), for float32 also as under ``nnfs.init()`` (the book's arithmetic,
  ``kernels/train_book.py``).

``tests/test_warmup.py::test_warmup_covers_a_fresh_process`` checks that a process started
after ``fastnn warmup --dtype float32`` compiles nothing.

Note: this module is ``fastnn.warmup`` but the package attribute of that name is the
function (``from .warmup import warmup`` in ``fastnn/__init__.py``), so reach the module's
other names with ``from fastnn.warmup import WarmupResult``.
"""

import collections
import threading
import time
from dataclasses import dataclass

import numba
import numpy as np

from ._validation import resolve_dtype

#: samples in the warm-up data: the size does not matter to the compiled code
_SAMPLES = 64
#: the search modes warmup runs, as keyword arguments of ``fastnn.search``
_SEARCH_MODES = {
    "serial": dict(parallel=False),
    "chains": dict(parallel="chains", chains=2),
    "candidates": dict(parallel="candidates", candidates=4),
}
_LABEL_DTYPES = ("int64", "int32", "uint8")


@dataclass(frozen=True)
class WarmupResult:
    """What ``warmup`` did.

    ``compiled``/``loaded``: kernel signatures compiled, and loaded from Numba's disk
    cache, during the call (signatures already in memory count as neither); ``seconds``:
    wall time; ``cache_dir``: where the disk cache is (None: no disk cache, every process
    compiles); ``steps``: steps run; ``skipped``: what could not be reached, and why."""

    compiled: int
    loaded: int
    seconds: float
    cache_dir: str | None
    steps: int
    skipped: tuple = ()

    def __str__(self):
        return self.summary()

    def summary(self):
        """One line: "compiled N kernel signatures, loaded M from the disk cache in S s;
        cache: PATH"."""
        return (f"compiled {self.compiled} kernel signatures, loaded {self.loaded} from the "
                f"disk cache in {self.seconds:.1f} s; cache: {self.cache_dir or 'none'}")


def warmup(dtypes=("float32", "float64"), progress=False):
    """Compile (or load from the disk cache) every kernel for the given float dtypes.

    Call it once before fanning out to threads or processes, so they do not all compile
    at the same time.  ``dtypes``: "float32", "float64" or a sequence of them.
    ``progress=True`` shows a tqdm bar with one tick per step.  Returns a
    ``WarmupResult``; ``str(result)`` is its one-line summary.

    The parallel search kernels can only be reached from the main thread (elsewhere the
    search runs serially); called from another thread, warmup skips them and says so
    in ``result.skipped``.  NumPy's global random state is left as it was."""
    dtypes = _check_dtypes(dtypes)
    skipped = []
    plan = _plan(dtypes, skipped)
    before = _cache_counts()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), unit="step", desc="warmup", dynamic_ncols=True)
    state = np.random.get_state()  # noqa: NPY002 - Dense_Layer draws from the global RNG
    t0 = time.perf_counter()
    try:
        for description, step in plan:
            if bar is not None:
                bar.set_postfix_str(description)
            step()
            if bar is not None:
                bar.update()
    finally:
        np.random.set_state(state)  # noqa: NPY002
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    after = _cache_counts()
    compiled = sum(m - before.get(name, (0, 0))[0] for name, (m, _) in after.items())
    loaded = sum(h - before.get(name, (0, 0))[1] for name, (_, h) in after.items())
    return WarmupResult(compiled=compiled, loaded=loaded, seconds=seconds,
                        cache_dir=_cache_dir(), steps=len(plan), skipped=tuple(skipped))


def _check_dtypes(dtypes):
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    try:
        names = [resolve_dtype(d, "dtypes entries").name for d in dtypes]
    except TypeError as exc:
        if not hasattr(dtypes, "__iter__"):
            raise TypeError(f"dtypes must be 'float32', 'float64' or a sequence of them, "
                            f"got {dtypes!r}") from None
        raise exc
    if not names:
        raise ValueError("dtypes must name at least one of float32, float64")
    return tuple(dict.fromkeys(names))  # in order, once each


def _plan(dtypes, skipped):
    """The steps, as (description, zero-argument callable)."""
    from .kernels.network import EXAMPLE_SIZES

    steps = []
    for dtype in dtypes:
        for sizes in EXAMPLE_SIZES.values():
            steps += _network_steps(dtype, tuple(sizes), skipped)
    combos = [(x, w) for x in ("float32", "float64") for w in ("float32", "float64")
              if x in dtypes or w in dtypes]
    for x_dtype, w_dtype in combos:
        steps.append((f"notebook classes, {x_dtype} inputs, {w_dtype} weights",
                      lambda x=x_dtype, w=w_dtype: _notebook(x, w)))
    for x_dtype, w_dtype in combos:
        for dropout in (False, True):
            steps.append((f"training classes, {x_dtype} inputs, {w_dtype} weights"
                           f"{', dropout' if dropout else ''}",
                           lambda x=x_dtype, w=w_dtype, d=dropout: _training(x, w, d)))
    for dtype in dtypes:
        steps += _train_steps(dtype, skipped)
    for dtype in dtypes:
        steps.append((f"gaussian_noise, {dtype}", lambda d=dtype: _noise(d)))
    return steps


def _train_steps(dtype, skipped):
    """``train`` for every trainer family, serial and parallel, and ``Model``."""
    from .kernels.train import EXAMPLES
    from .network import MLP
    from .train import train, work_layout

    steps = []
    for family, (sizes, dropout) in EXAMPLES.items():
        X, y = _data(sizes[0], sizes[-1], dtype)
        rate = 0.1 if dropout else None
        steps.append((f"{dtype} train, {family}",
                      lambda s=sizes, X=X, y=y, r=rate: train(
                          MLP(list(s), seed=0, dtype=dtype), X, y, epochs=2, dropout=r,
                          validation=(X, y), seed=0)))
    sizes, dropout = EXAMPLES["pair23"]
    if threading.current_thread() is not threading.main_thread():
        skipped.append(f"{dtype} train, several blocks in parallel (the parallel trainer "
                       f"runs on the main thread only)")
    else:
        block = work_layout(sizes, dtype, 1 << 20)[2]
        X, y = _data(sizes[0], sizes[-1], dtype, samples=2 * block + 1)
        threads = 2 if numba.config.NUMBA_NUM_THREADS >= 2 else None

        def parallel():
            result = train(MLP(list(sizes), seed=0, dtype=dtype), X, y, epochs=1,
                           threads=threads, seed=0)
            if result.mode != "parallel":
                skipped.append(f"{dtype} train, several blocks: ran as {result.mode!r}")

        steps.append((f"{dtype} train, several blocks in parallel", parallel))
    steps.append((f"{dtype} Model with dropout", lambda: _model(dtype)))
    if np.dtype(dtype) == np.float32:
        steps.append(("Model under nnfs.init() (the book's arithmetic)",
                      lambda: _model(dtype, nnfs_dot=True)))
    return steps


def _model(dtype, nnfs_dot=False):
    """The book's Model with dropout (quietly): its masks come from the compiled MT19937;
    ``nnfs_dot``: as under ``nnfs.init()`` (``kernels/train_book.py``)."""
    import contextlib
    import io

    from .layers import Activation_ReLU, Activation_Softmax, Layer_Dense, Layer_Dropout
    from .losses import Accuracy_Categorical, Loss_CategoricalCrossentropy
    from .model import Model
    from .optimizers import Optimizer_Adam

    X, y = _data(2, 3, dtype)
    model = Model()
    for layer in (Layer_Dense(2, 4), Activation_ReLU(), Layer_Dropout(0.1),
                  Layer_Dense(4, 3), Activation_Softmax()):
        if hasattr(layer, "weights"):
            layer.weights = layer.weights.astype(dtype)
            layer.biases = layer.biases.astype(dtype)
        model.add(layer)
    model.set(loss=Loss_CategoricalCrossentropy(), optimizer=Optimizer_Adam(),
              accuracy=Accuracy_Categorical())
    model.finalize()
    with contextlib.redirect_stdout(io.StringIO()):
        model._train(X, y, 1, None, 1, (X, y), nnfs_dot)


def _data(n_features, n_classes, dtype, samples=_SAMPLES):
    X = np.random.default_rng(0).standard_normal((samples, n_features)).astype(dtype)
    return X, np.arange(samples, dtype=np.int64) % n_classes


def _network_steps(dtype, sizes, skipped):
    from .network import MLP
    from .search import search

    name = f"{dtype} {'-'.join(map(str, sizes))}"
    X, y = _data(sizes[0], sizes[-1], dtype)
    model = MLP(sizes, seed=0, dtype=dtype)  # no kernel runs until a step calls one
    steps = [(f"{name}: evaluate, {labels} labels",
              lambda labels=labels: model.evaluate(X, y.astype(labels)))
             for labels in _LABEL_DTYPES]
    steps.append((f"{name}: forward", lambda: model.forward(X)))
    steps.append((f"{name}: predict", lambda: model.predict(X)))
    on_main = threading.current_thread() is threading.main_thread()
    # a second thread when Numba has one (NUMBA_NUM_THREADS=1 still runs the parallel
    # kernels, on one thread: the same compiled code)
    threads = 2 if numba.config.NUMBA_NUM_THREADS >= 2 else None

    for mode, options in _SEARCH_MODES.items():
        if mode != "serial" and not on_main:
            skipped.append(f"{name}: search, parallel={options['parallel']!r} (the "
                           f"parallel search runs on the main thread only)")
            continue
        if mode != "serial":
            options = dict(options, threads=threads)

        def run(mode=mode, options=options):
            result = search(model.copy(), X, y, iterations=2, seed=0, **options)
            if result.mode != mode:
                skipped.append(f"{name}: search, parallel={options['parallel']!r} ran as "
                               f"{result.mode!r}")

        steps.append((f"{name}: search, {mode}", run))
    return steps


def _notebook(x_dtype, w_dtype):
    """The notebook's forward pass, loss and accuracy: ``x_dtype`` inputs, ``w_dtype``
    weights and biases (what follows the first layer is in the dtype NumPy would give)."""
    from .layers import (
        Activation_Relu,
        Activation_Softmax,
        Dense_Layer,
        Loss_CategoricalCrossentropy,
        accuracy,
    )

    X, y = _data(2, 3, x_dtype)
    layer1, layer2 = Dense_Layer(2, 4), Dense_Layer(4, 3)
    for layer in (layer1, layer2):
        layer.weights = layer.weights.astype(w_dtype)
        layer.biases = layer.biases.astype(w_dtype)
    relu, softmax, loss = Activation_Relu(), Activation_Softmax(), Loss_CategoricalCrossentropy()
    layer1.forward(X)
    relu.forward(layer1.output)
    layer2.forward(relu.output)
    softmax.forward(layer2.output)
    for labels in [*(y.astype(d) for d in _LABEL_DTYPES), np.eye(3)[y]]:  # and one-hot
        loss.forward(softmax.output, labels)
        accuracy(softmax.output, labels)


def _training(x_dtype, w_dtype, dropout):
    """One training step of the book's classes on every optimizer, then the losses,
    the chapter 9 softmax backward and the predictions with each label dtype:
    ``x_dtype`` inputs, ``w_dtype`` parameters (what follows has the dtypes NumPy's
    promotion gives the book's expressions)."""
    from .layers import Activation_ReLU, Activation_Softmax, Layer_Dense, Layer_Dropout
    from .losses import (
        Accuracy_Categorical,
        Activation_Softmax_Loss_CategoricalCrossentropy,
        Loss_CategoricalCrossentropy,
    )
    from .optimizers import OPTIMIZERS

    X, y = _data(2, 3, x_dtype)
    reg = dict(weight_regularizer_l1=1e-4, weight_regularizer_l2=1e-4,
               bias_regularizer_l1=1e-4, bias_regularizer_l2=1e-4)
    layer1, layer2 = Layer_Dense(2, 4, **reg), Layer_Dense(4, 3, **reg)
    for layer in (layer1, layer2):
        layer.weights = layer.weights.astype(w_dtype)
        layer.biases = layer.biases.astype(w_dtype)
    relu, drop = Activation_ReLU(), Layer_Dropout(0.1)
    head = Activation_Softmax_Loss_CategoricalCrossentropy()
    for kind, cls in OPTIMIZERS.items():
        optimizer = cls(momentum=0.5) if kind == "sgd" else cls()
        layer1.forward(X, True)
        relu.forward(layer1.output, True)
        hidden = relu.output
        if dropout:
            drop.forward(hidden, True)
            hidden = drop.output
        layer2.forward(hidden, True)
        head.forward(layer2.output, y)
        head.loss.regularization_loss(layer1)
        head.backward(head.output, y)
        layer2.backward(head.dinputs)
        grad = layer2.dinputs
        if dropout:
            drop.backward(grad)
            grad = drop.dinputs
        relu.backward(grad)
        layer1.backward(relu.dinputs)
        optimizer.pre_update_params()
        optimizer.update_params(layer1)
        optimizer.update_params(layer2)
        optimizer.post_update_params()
    softmax, loss, accuracy = Activation_Softmax(), Loss_CategoricalCrossentropy(), \
        Accuracy_Categorical()
    softmax.forward(layer2.output)
    # one-hot rows: float64 as NumPy's np.eye makes them, and in the probabilities' dtype
    # (nnfs.init()'s np.eye): the cross-entropy gradient takes their dtype
    onehots = [np.eye(3)[y], np.eye(3, dtype=softmax.output.dtype)[y]]
    for labels in [*(y.astype(d) for d in _LABEL_DTYPES), *onehots]:
        head.forward(layer2.output, labels)
        head.backward(head.output, labels)
        loss.calculate(softmax.output, labels)
        loss.backward(softmax.output, labels)
        softmax.backward(loss.dinputs)
        accuracy.calculate(softmax.predictions(softmax.output), labels)


def _noise(dtype):
    from .noise import gaussian_noise

    gaussian_noise(0, 0, 0, 0, 8, dtype=dtype)


def _cache_counts():
    """{kernel name: (signatures compiled, signatures loaded from the disk cache)} of
    every kernel dispatcher made so far."""
    from ._config import KERNELS

    counts = {}
    for name, dispatcher in list(KERNELS.items()):
        stats = getattr(dispatcher, "stats", None)  # None: NUMBA_DISABLE_JIT=1
        if stats is not None:
            counts[name] = (sum(stats.cache_misses.values()), sum(stats.cache_hits.values()))
    return counts


def _cache_dir():
    """The disk cache directory of the kernels (the most common one, should they differ),
    or None without a disk cache."""
    from ._config import KERNELS

    paths = collections.Counter(getattr(getattr(d, "stats", None), "cache_path", None)
                                for d in list(KERNELS.values()))
    paths.pop(None, None)
    return paths.most_common(1)[0][0] if paths else None
