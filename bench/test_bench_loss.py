"""Benchmarks: fastnn against plain NumPy and against the seed notebook's own classes.

Run from the repository root (not part of the default test run)::

    python -m pytest bench --benchmark-json=bench-results.json
    python bench/report.py bench-results.json        # ratios as a Markdown table

Each group (``benchmark.group = "<operation>|<network>|n=<samples>"``) holds every
implementation of one workload; ``benchmark.extra_info["impl"]`` names it
(``fastnn``, ``numpy``, ``numpy-prealloc``, ``notebook``).  Warm-up is on, so compile
time is excluded; ``test_bench_cold_start.py`` measures it separately, in fresh
processes.  Every group first checks that the implementations compute the same loss.
Data: ``nnfs`` ``spiral_data``, float32, without ``nnfs.init()`` (it would patch NumPy
for this whole process).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn.cli import make_data, numpy_loss_fn, perturbation_search

ROOT = Path(__file__).resolve().parents[1]
LO, HI = np.float32(1e-7), np.float32(1 - 1e-7)
RTOL = 1e-5  # float32 losses of fastnn and NumPy agree to this


def spiral(samples_per_class, classes=3):
    return make_data("spiral", samples_per_class, classes, 0, np.float32)


def model_with_params(sizes, scale):
    """An MLP whose parameters are scale * N(0, 1), so the loss is far from log(3)
    (the loss of the tiny initial weights) without every sample being clipped."""
    model = fastnn.MLP(sizes, seed=0, dtype=np.float32)
    model.params[:] = scale * np.random.default_rng(1).standard_normal(model.n_params)
    return model


def setup(benchmark, group, impl):
    benchmark.group = group
    benchmark.extra_info["impl"] = impl


# -- plain NumPy implementations of the fused loss ------------------------------------
def numpy_loss(X, y, W1, b1, W2, b2):
    """What a competent NumPy user writes: vectorised, float32 throughout."""
    h = np.maximum(X @ W1 + b1, 0)
    z = h @ W2 + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    p = np.clip(p[np.arange(len(y)), y], LO, HI)
    return -np.log(p).mean()


class NumpyPrealloc:
    """The same loss with every buffer allocated once and only the true-class
    probability normalised (what a NumPy user tuning the loop would do)."""

    def __init__(self, X, y, hidden, classes):
        n = X.shape[0]
        self.X, self.y, self.rows = X, y, np.arange(n)
        self.h = np.empty((n, hidden), np.float32)
        self.z = np.empty((n, classes), np.float32)
        self.m = np.empty((n, 1), np.float32)
        self.s = np.empty(n, np.float32)

    def __call__(self, W1, b1, W2, b2):
        h, z = self.h, self.z
        np.matmul(self.X, W1, out=h)
        h += b1
        np.maximum(h, 0, out=h)
        np.matmul(h, W2, out=z)
        z += b2
        np.max(z, axis=1, keepdims=True, out=self.m)
        z -= self.m
        np.exp(z, out=z)
        np.sum(z, axis=1, out=self.s)
        p = z[self.rows, self.y]
        p /= self.s
        np.clip(p, LO, HI, out=p)
        np.log(p, out=p)
        return -p.mean()


# (layer sizes, samples per class, parameter scale)
LOSS_CASES = [([2, 3, 3], 1000, 1.0), ([2, 64, 3], 1000, 0.5)]


@pytest.fixture(scope="module", params=LOSS_CASES, ids=lambda c: "-".join(map(str, c[0])))
def loss_case(request):
    sizes, per_class, scale = request.param
    X, y = spiral(per_class)
    model = model_with_params(sizes, scale)
    (W1, b1), (W2, b2) = ((la.weights, la.biases) for la in model.layers)
    args = (W1, b1, W2, b2)
    prealloc = NumpyPrealloc(X, y, sizes[1], sizes[2])
    expected = model.loss(X, y)
    assert abs(expected - np.log(3)) > 0.02  # a real loss, not the ~log(3) of tiny weights
    for name, fn in [("numpy", lambda: numpy_loss(X, y, *args)),
                     ("numpy-prealloc", lambda: prealloc(*args))]:
        got = fn()
        assert got.dtype == np.float32, name
        assert float(got) == pytest.approx(expected, rel=RTOL), name
    group = f"fused_loss|{'-'.join(map(str, sizes))}|n={X.shape[0]}"
    return group, model, X, y, args, prealloc


def test_fused_loss_fastnn(benchmark, loss_case):
    group, model, X, y, _, _ = loss_case
    setup(benchmark, group, "fastnn")
    benchmark(model.loss, X, y)


def test_fused_loss_numpy(benchmark, loss_case):
    group, _, X, y, args, _ = loss_case
    setup(benchmark, group, "numpy")
    benchmark(numpy_loss, X, y, *args)


def test_fused_loss_numpy_prealloc(benchmark, loss_case):
    group, _, _, _, args, prealloc = loss_case
    setup(benchmark, group, "numpy-prealloc")
    benchmark(prealloc, *args)


# -- the notebook API: the drop-in classes against the notebook's own ------------------
def _load_reference():
    """``tests/reference.py`` (plain NumPy, holds the seed notebook's classes verbatim),
    loaded by path: ``tests`` is not a package."""
    spec = importlib.util.spec_from_file_location(
        "fastnn_tests_reference", ROOT / "tests" / "reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The seed notebook's own classes (``Notebook.Dense_Layer`` etc.).
Notebook = _load_reference()


def notebook_chain(ns, params):
    """Build the notebook's 2-layer chain from namespace ``ns`` with float32 weights
    (as after ``nnfs.init()``); return a function running forward + loss."""
    (W1, b1), (W2, b2) = params
    layer1, act1 = ns.Dense_Layer(2, W1.shape[1]), ns.Activation_Relu()
    layer2, act2 = ns.Dense_Layer(W1.shape[1], W2.shape[1]), ns.Activation_Softmax()
    layer1.weights, layer1.biases = W1.copy(), b1.copy()
    layer2.weights, layer2.biases = W2.copy(), b2.copy()
    loss = ns.Loss_CategoricalCrossentropy()

    def step(X, y):
        layer1.forward(X)
        act1.forward(layer1.output)
        layer2.forward(act1.output)
        act2.forward(layer2.output)
        return loss.forward(act2.output, y), act2.output

    return step


NOTEBOOK_CASES = [([2, 3, 3], 100, 1.0), ([2, 64, 3], 1000, 0.5)]


@pytest.fixture(scope="module", params=NOTEBOOK_CASES, ids=lambda c: "-".join(map(str, c[0])))
def notebook_case(request):
    sizes, per_class, scale = request.param
    X, y = spiral(per_class)
    model = model_with_params(sizes, scale)
    params = [(la.weights, la.biases) for la in model.layers]
    fast, slow = notebook_chain(fastnn, params), notebook_chain(Notebook, params)
    (fast_loss, fast_out), (slow_loss, slow_out) = fast(X, y), slow(X, y)
    assert fast_out.dtype == slow_out.dtype == np.float32
    np.testing.assert_allclose(fast_out, slow_out, rtol=1e-5, atol=1e-7)
    assert float(fast_loss) == pytest.approx(float(slow_loss), rel=RTOL)
    group = f"notebook_forward_loss|{'-'.join(map(str, sizes))}|n={X.shape[0]}"
    return group, fast, slow, X, y


def test_notebook_api_fastnn(benchmark, notebook_case):
    group, fast, _, X, y = notebook_case
    setup(benchmark, group, "fastnn")
    benchmark(fast, X, y)


def test_notebook_api_notebook(benchmark, notebook_case):
    group, _, slow, X, y = notebook_case
    setup(benchmark, group, "notebook")
    benchmark(slow, X, y)


# -- the demo's search loop (Python loop, 100 steps per round) -------------------------
SEARCH_STEPS = 100


@pytest.fixture(scope="module")
def search_case():
    X, y = spiral(100)
    return X, y, fastnn.MLP([2, 3, 3], seed=0)


def search_rounds(loss_fn, params):
    """Every round restarts from the same parameters, so the workload stays the same
    however many rounds run (a search carried on for thousands of steps grows the
    weights until exp underflows, and NumPy's exp slows down on those inputs)."""
    start = params.copy()
    rng = np.random.default_rng(0)

    def run():
        params[...] = start
        return perturbation_search(loss_fn, params, SEARCH_STEPS, 0.05, rng)

    return run


def test_search_loop_fastnn(benchmark, search_case):
    X, y, model = search_case
    setup(benchmark, f"search_loop_{SEARCH_STEPS}_steps|2-3-3|n=300", "fastnn")
    benchmark(search_rounds(lambda: model.evaluate(X, y)[0], model.params))


def test_search_loop_numpy(benchmark, search_case):
    X, y, model = search_case
    setup(benchmark, f"search_loop_{SEARCH_STEPS}_steps|2-3-3|n=300", "numpy")
    params = model.params.copy()
    benchmark(search_rounds(numpy_loss_fn(X, y, params, [2, 3, 3]), params))

