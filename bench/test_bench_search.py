"""Benchmarks of ``fastnn.search``: the book's random search, whole runs timed end to end.

Run from the repository root (not part of the default test run)::

    python -m pytest bench/test_bench_search.py --benchmark-json=bench-search.json
    python bench/report.py bench-search.json [--check-bars]

Groups (``search_<workload>|<network>|n=<samples>|<steps>_steps``), each timing whole
calls, one search per round, every round the same work (a fresh model, or the same
starting parameters, each round):

* ``search_book``: the book's chapter 6 workload: nnfs ``spiral_data(100, 3)``, 2-3-3,
  perturbation search, 10,000 steps, noise scale 0.05, one candidate per step.
  ``fastnn.search(MLP([2, 3, 3], seed=0), X, y, iterations=10_000, scale=0.05, seed=1)``
  against ``numpy-vectorised`` (``NumpySearch``: what a competent NumPy user writes --
  float32, buffers allocated once, one Generator draw for all parameters per step, the
  loss vectorised) and ``notebook`` (the book's loop around the seed notebook's own
  classes from ``tests/reference.py``, accuracy computed every step as the notebook
  does).  Issue #3's bar: >= 60x ``numpy-vectorised``.
* ``search_wide``: the same on a wider network and ten times the data (2-64-3,
  ``spiral_data(1000, 3)``, 300 steps) against ``numpy-vectorised``.
* ``search_chains2``: 2 chains on the book data, ``threads=1`` against ``threads=2``
  (same parallel kernel, equal work: the ratio is the speed-up in evaluations per
  second; issue #4's bar: >= 1.7x), plus the serial kernel (``parallel=False``).
* ``search_candidates64``: 64 candidates per step on the book data, serial
  (``parallel=False``) and the candidates-in-parallel kernel on 1 and on 2 threads.

The thread groups compare fastnn with itself (``extra_info`` ``role``/``scaling``, see
``bench/report.py``); ratios are against the fastest baseline present.  Every benchmark
records ``evaluations`` per round (network evaluations: steps x candidates x chains) for
the throughput table, and ``evaluations_per_second`` of its median round.  Compilation is
excluded: every fastnn configuration runs once before it is timed (``cold_start.py``
measures compile and cache-load times in fresh processes).  Under ``--benchmark-disable``
(CI's smoke run) the workloads shrink to a few steps so every body still runs, quickly.
"""

import importlib.util
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numba
import numpy as np
import pytest

import fastnn
from fastnn.cli import make_data

ROOT = Path(__file__).resolve().parents[1]
LO, HI = np.float32(1e-7), np.float32(1 - 1e-7)
RTOL = 1e-5  # float32 losses of fastnn and NumPy agree to this
SEED = 1  # fastnn.search's seed; the NumPy loops seed their own generators with it
SMOKE_STEPS = 20  # steps per search under --benchmark-disable


def rounds(n):
    """``n`` rounds, or fewer under ``FASTNN_BENCH_MAX_ROUNDS`` (CI's short timed runs,
    whose gate takes the median of three runs anyway)."""
    cap = int(os.environ.get("FASTNN_BENCH_MAX_ROUNDS", "0") or 0)
    return min(n, cap) if cap > 0 else n


def _load_reference():
    """``tests/reference.py`` (plain NumPy, holds the seed notebook's classes verbatim),
    loaded by path: ``tests`` is not a package."""
    spec = importlib.util.spec_from_file_location(
        "fastnn_tests_reference", ROOT / "tests" / "reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: ``tests/reference.py``: the seed notebook's classes (``Notebook.Dense_Layer`` etc.)
#: and the flat-parameter helpers.
Notebook = _load_reference()


@cache
def spiral(samples_per_class, classes=3):
    return make_data("spiral", samples_per_class, classes, 0, np.float32)


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple
    per_class: int
    iterations: int
    scale: float = 0.05

    def group(self, iterations, what=None):
        net = "-".join(map(str, self.sizes))
        return f"search_{what or self.name}|{net}|n={3 * self.per_class}|{iterations}_steps"


BOOK = Workload("book", (2, 3, 3), 100, 10_000)
WIDE = Workload("wide", (2, 64, 3), 1000, 300)
#: steps per round in the thread groups: long enough that the per-call set-up and the
#: first short chunk are lost in the noise (~25-75 ms per round)
CHAINS_STEPS, CANDIDATES_STEPS = 50_000, 2_000


@pytest.fixture(scope="module")
def smoke(request):
    """True under ``--benchmark-disable``: run every body once on a tiny workload."""
    return bool(request.config.getoption("benchmark_disable", default=False))


def setup(benchmark, group, impl, **info):
    """Name the benchmark; record the 1-minute load average when it starts (it counts
    this process too: above ~1 on a 2-CPU machine others were running, and the
    thread-scaling ratios mean little)."""
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["load_average"] = round(os.getloadavg()[0], 2)
    benchmark.extra_info.update(info)


def record_rate(benchmark):
    """``evaluations_per_second`` of the median round (nothing when not timed)."""
    stats = getattr(benchmark, "stats", None)
    median = getattr(getattr(stats, "stats", None), "median", 0)
    if median:
        benchmark.extra_info["evaluations_per_second"] = (
            benchmark.extra_info["evaluations"] / median)


def start_params(sizes):
    """The starting parameters of every implementation: ``MLP(sizes, seed=0)``'s."""
    return fastnn.MLP(list(sizes), seed=0).params.copy()


# -- the NumPy implementations ---------------------------------------------------------
class NumpySearch:
    """The book's perturbation search as a competent NumPy user writes it: float32
    throughout, every buffer allocated once (3x faster than fresh temporaries at
    2-64-3, n=3000; the same at 2-3-3), all parameters in one vector perturbed by one
    ``Generator.standard_normal`` draw per step, and the loss vectorised over the
    samples: ``X @ W + b``, ReLU, max-subtracted softmax (only the true class is
    normalised: the others are not needed), clip, ``-log``, mean."""

    def __init__(self, X, y, sizes):
        n = X.shape[0]
        self.X, self.y, self.rows = X, y, np.arange(n)
        n_params = Notebook.mlp_param_count(sizes)
        self.best = np.empty(n_params, np.float32)
        self.trial = np.empty(n_params, np.float32)
        self.noise = np.empty(n_params, np.float32)
        self.layers = Notebook.mlp_params_split(sizes, self.trial)  # views of trial
        self.acts = [np.empty((n, width), np.float32) for width in sizes[1:]]
        self.row_max = np.empty((n, 1), np.float32)
        self.row_sum = np.empty(n, np.float32)

    def loss(self):
        """Mean clipped cross-entropy of the parameters in ``self.trial``."""
        a = self.X
        for k, ((W, b), out) in enumerate(zip(self.layers, self.acts, strict=True)):
            np.matmul(a, W, out=out)
            out += b
            if k < len(self.acts) - 1:
                np.maximum(out, 0, out=out)
            a = out
        z = a
        np.max(z, axis=1, keepdims=True, out=self.row_max)
        z -= self.row_max
        np.exp(z, out=z)
        np.sum(z, axis=1, out=self.row_sum)
        p = z[self.rows, self.y]
        p /= self.row_sum
        np.clip(p, LO, HI, out=p)
        np.log(p, out=p)
        return -p.mean()

    def __call__(self, start, iterations, scale, seed):
        """Search from ``start``; returns (best loss, evaluations)."""
        rng = np.random.default_rng(seed)
        self.trial[:] = start
        self.best[:] = start
        best_loss = self.loss()
        scale = np.float32(scale)
        for _ in range(iterations):
            rng.standard_normal(dtype=np.float32, out=self.noise)
            np.multiply(self.noise, scale, out=self.trial)
            self.trial += self.best
            loss = self.loss()
            if loss < best_loss:
                best_loss = loss
                self.best[:] = self.trial
        return float(best_loss), iterations


def _notebook_layer(W, b):
    """The notebook's ``Dense_Layer`` holding float32 copies of W, b (as after
    ``nnfs.init()``); its constructor's draw from NumPy's global RNG is undone."""
    state = np.random.get_state()  # noqa: NPY002 - the notebook class uses the global RNG
    try:
        layer = Notebook.Dense_Layer(*W.shape)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    layer.weights = W.astype(np.float32).copy()
    layer.biases = np.asarray(b, np.float32).reshape(1, -1).copy()
    return layer


def notebook_loss(X, y, sizes, params):
    """The notebook classes' loss of a 2-layer network with these flat parameters."""
    (W1, b1), (W2, b2) = Notebook.mlp_params_split(sizes, params)
    layer1, activation1 = _notebook_layer(W1, b1), Notebook.Activation_Relu()
    layer2, activation2 = _notebook_layer(W2, b2), Notebook.Activation_Softmax()
    layer1.forward(X)
    activation1.forward(layer1.output)
    layer2.forward(activation1.output)
    activation2.forward(layer2.output)
    return float(Notebook.Loss_CategoricalCrossentropy().forward(activation2.output, y))


def notebook_search(X, y, sizes, start, iterations, scale, seed):
    """The book's loop (chapter 6) around the seed notebook's own classes, as in its
    cells: ``scale * randn`` added to each weight and bias array, forward chain, loss,
    accuracy (``argmax``, ``mean``), keep-or-restore with ``.copy()``.  Corrected as in
    the book: the comparison uses ``lowest_loss`` (the notebook misspelt it), biases
    get ``randn`` (not ``rand``), and no ``print`` per improvement.  2-layer networks;
    returns (lowest loss, evaluations)."""
    (W1, b1), (W2, b2) = Notebook.mlp_params_split(sizes, start)
    rs = np.random.RandomState(seed)  # np.random.randn's generator, not the global one
    layer1, activation1 = _notebook_layer(W1, b1), Notebook.Activation_Relu()
    layer2, activation2 = _notebook_layer(W2, b2), Notebook.Activation_Softmax()
    loss = Notebook.Loss_CategoricalCrossentropy()
    w1_shape, b1_shape = layer1.weights.shape, layer1.biases.shape
    w2_shape, b2_shape = layer2.weights.shape, layer2.biases.shape

    lowest_loss = 999999
    best_dense_weight1 = layer1.weights.copy()
    best_dense_bias1 = layer1.biases.copy()
    best_dense_weight2 = layer2.weights.copy()
    best_dense_bias2 = layer2.biases.copy()
    for _iteration in range(iterations):
        layer1.weights += scale * rs.randn(*w1_shape)
        layer1.biases += scale * rs.randn(*b1_shape)
        layer2.weights += scale * rs.randn(*w2_shape)
        layer2.biases += scale * rs.randn(*b2_shape)

        layer1.forward(X)
        activation1.forward(layer1.output)
        layer2.forward(activation1.output)
        activation2.forward(layer2.output)
        loss_value = loss.forward(activation2.output, y)

        prediction = np.argmax(activation2.output, axis=1)
        accuracy = np.mean(prediction == y)  # noqa: F841 - computed, as the notebook does

        if loss_value < lowest_loss:
            best_dense_weight1 = layer1.weights.copy()
            best_dense_bias1 = layer1.biases.copy()
            best_dense_weight2 = layer2.weights.copy()
            best_dense_bias2 = layer2.biases.copy()
            lowest_loss = loss_value
        else:
            layer1.weights = best_dense_weight1.copy()
            layer1.biases = best_dense_bias1.copy()
            layer2.weights = best_dense_weight2.copy()
            layer2.biases = best_dense_bias2.copy()
    return float(lowest_loss), iterations


# -- fastnn ----------------------------------------------------------------------------
def fastnn_rounds(benchmark, sizes, X, y, rounds, **kwargs):
    """Time ``fastnn.search`` on a fresh ``MLP(sizes, seed=0)`` per round (its set-up is
    not timed) after one untimed warm-up round; returns the last round's result."""
    def fresh():
        return (fastnn.MLP(list(sizes), seed=0), X, y), {}

    def run(model, X, y):
        return fastnn.search(model, X, y, seed=SEED, **kwargs)

    return benchmark.pedantic(run, setup=fresh, rounds=rounds, warmup_rounds=1)


def check_search_workload(work, X, y, iterations):
    """Compile, and check that fastnn and the NumPy references do the same work: the
    same number of evaluations, the same loss function (NumPy's loss of fastnn's best
    parameters is fastnn's loss), a loss that drops from the same start."""
    start = start_params(work.sizes)
    first = fastnn.MLP(list(work.sizes), seed=0).loss(X, y)
    result = fastnn.search(fastnn.MLP(list(work.sizes), seed=0), X, y,
                           iterations=iterations, scale=work.scale, seed=SEED)
    assert result.evaluations == iterations
    assert result.loss < first
    ref = NumpySearch(X, y, list(work.sizes))
    ref.trial[:] = start
    assert float(ref.loss()) == pytest.approx(first, rel=RTOL)
    ref.trial[:] = result.params
    assert float(ref.loss()) == pytest.approx(result.loss, rel=RTOL)
    loss, evaluations = ref(start, iterations, work.scale, SEED)
    assert evaluations == iterations and loss < first
    return start


# -- search_book / search_wide: fastnn against NumPy -----------------------------------
@cache
def prepared(work, smoke):
    X, y = spiral(work.per_class)
    iterations = SMOKE_STEPS if smoke else work.iterations
    start = check_search_workload(work, X, y, min(iterations, 200))
    return work, X, y, start, iterations


@pytest.fixture(scope="module", params=[BOOK, WIDE], ids=lambda w: w.name)
def workload(request, smoke):
    return prepared(request.param, smoke)


@pytest.fixture(scope="module")
def book(smoke):
    return prepared(BOOK, smoke)


def test_search_fastnn(benchmark, workload):
    work, X, y, _, iterations = workload
    info = {"bar": 60} if work is BOOK else {}
    setup(benchmark, work.group(iterations), "fastnn", evaluations=iterations, **info)
    result = fastnn_rounds(benchmark, work.sizes, X, y, rounds=rounds(15), iterations=iterations,
                           scale=work.scale)
    assert result.mode == "serial" and result.evaluations == iterations
    benchmark.extra_info["final_loss"] = result.loss
    benchmark.extra_info["search_evaluations_per_second"] = result.evaluations_per_second
    record_rate(benchmark)


def test_search_numpy_vectorised(benchmark, workload):
    work, X, y, start, iterations = workload
    setup(benchmark, work.group(iterations), "numpy-vectorised", evaluations=iterations)
    search = NumpySearch(X, y, list(work.sizes))
    loss, _ = benchmark.pedantic(search, args=(start, iterations, work.scale, SEED),
                                 rounds=rounds(7))
    benchmark.extra_info["final_loss"] = loss
    record_rate(benchmark)


def test_search_notebook(benchmark, book):
    """The notebook loop on the book's workload only (2-64-3 is not what it ran)."""
    work, X, y, start, iterations = book
    setup(benchmark, work.group(iterations), "notebook", evaluations=iterations)
    assert notebook_loss(X, y, list(work.sizes), start) == pytest.approx(
        fastnn.MLP(list(work.sizes), seed=0).loss(X, y), rel=RTOL)
    loss, _ = benchmark.pedantic(
        notebook_search, args=(X, y, list(work.sizes), start, iterations, work.scale, SEED),
        rounds=rounds(5))
    benchmark.extra_info["final_loss"] = loss
    record_rate(benchmark)


# -- search_chains2 / search_candidates64: fastnn on 1 and 2 threads -------------------
#: impl -> (search options, role).  The 1-thread and 2-thread runs use the same kernel
#: (``parallel`` is explicit), so their ratio is the speed-up from the second thread; the
#: serial kernel is a baseline too (the ratio is taken against the faster one).
CHAINS = {
    "fastnn-serial": (dict(parallel=False), "baseline"),
    "fastnn-1-thread": (dict(parallel="chains", threads=1), "baseline"),
    "fastnn-2-threads": (dict(parallel="chains", threads=2), "subject"),
}
CANDIDATES = {
    "fastnn-serial": (dict(parallel=False), "baseline"),
    "fastnn-1-thread": (dict(parallel="candidates", threads=1), "baseline"),
    "fastnn-2-threads": (dict(parallel="candidates", threads=2), "subject"),
}
THREAD_GROUPS = {
    "chains2": (CHAINS, dict(chains=2), CHAINS_STEPS, 1.7),
    "candidates64": (CANDIDATES, dict(candidates=64), CANDIDATES_STEPS, None),
}


@pytest.fixture(scope="module", params=list(THREAD_GROUPS))
def thread_group(request, smoke):
    """Compile every configuration and check they all find the same result (the seed,
    not the threads, decides it), so every round of every impl does identical work."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip(f"needs 2 Numba threads (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})")
    impls, common, steps, bar = THREAD_GROUPS[request.param]
    iterations = SMOKE_STEPS if smoke else steps
    X, y = spiral(BOOK.per_class)
    results = {}
    for impl, (opts, _) in impls.items():
        results[impl] = fastnn.search(fastnn.MLP(list(BOOK.sizes), seed=0), X, y,
                                      iterations=iterations, scale=BOOK.scale, seed=SEED,
                                      **common, **opts)
    expect = results["fastnn-serial"]
    for impl, r in results.items():
        assert r.loss == expect.loss, impl
        np.testing.assert_array_equal(r.params, expect.params, err_msg=impl)
    group = BOOK.group(iterations, request.param)
    evaluations = expect.evaluations
    return group, impls, common, iterations, bar, evaluations, X, y, numba.threading_layer()


@pytest.mark.parametrize("impl", ["fastnn-serial", "fastnn-1-thread", "fastnn-2-threads"])
def test_search_threads(benchmark, thread_group, impl):
    group, impls, common, iterations, bar, evaluations, X, y, layer = thread_group
    opts, role = impls[impl]
    info = {"bar": bar} if role == "subject" and bar is not None else {}
    setup(benchmark, group, impl, role=role, scaling=True, evaluations=evaluations,
          threading_layer=layer, threads=numba.config.NUMBA_NUM_THREADS, **info)
    result = fastnn_rounds(benchmark, BOOK.sizes, X, y, rounds=rounds(15), iterations=iterations,
                           scale=BOOK.scale, **common, **opts)
    assert result.evaluations == evaluations
    assert result.mode == ("serial" if opts["parallel"] is False else opts["parallel"])
    benchmark.extra_info["search_evaluations_per_second"] = result.evaluations_per_second
    record_rate(benchmark)
