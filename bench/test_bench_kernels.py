"""Benchmarks of each notebook kernel and of the fused loss, against plain NumPy, over sizes.

Run from the repository root (not part of the default test run)::

    python -m pytest bench/test_bench_kernels.py --benchmark-json=bench-kernels.json
    python bench/report.py bench-kernels.json

Groups are ``<op>|<shape>|n=<samples>`` for n = 300, 3,000 and 100,000 samples and a
width H = 3 and 64; ``extra_info["impl"]`` names each implementation (``fastnn``, and
the baselines ``numpy``, ``numpy-prealloc``, ``notebook``; the report's ratio is taken
against the fastest baseline):

* ``dense|2-H``: ``fastnn.Dense_Layer(2, H).forward(X)`` (float32 weights and biases,
  as after ``nnfs.init()``) against ``X @ W + b`` and ``np.matmul(X, W, out=)`` + ``b``.
  fastnn accumulates the product in float64 (what ``nnfs.init()``'s ``np.dot`` does),
  NumPy in float32.
* ``relu|H``: ``Activation_Relu().forward(Z)`` on the dense output against
  ``np.maximum(0, Z)`` and ``np.maximum(Z, 0, out=)``.
* ``softmax|H``: ``Activation_Softmax().forward(Z)`` on the dense output (H classes)
  against the max-subtracted NumPy softmax, fresh and preallocated.
* ``crossentropy|H``: ``Loss_CategoricalCrossentropy().calculate(P, y)`` on that
  softmax output against ``-log(clip(P[rows, y])).mean()`` (``numpy``: the true class
  picked first) and the notebook's class (``notebook``: clips the whole matrix first).
* ``fused_loss|2-H-3``: ``MLP.loss(X, y)`` against ``numpy_loss`` and ``NumpyPrealloc``
  from ``test_bench_loss.py`` (which already has n=3000; here are the other sizes).

Data: nnfs ``spiral_data`` (3 classes, float32, no ``nnfs.init()``), cut to n samples
(100,000 is not a multiple of 3); weights N(0, 1), biases 0.1 N(0, 1) (float32), fixed
seeds.  Each group first checks fastnn against NumPy with ``tests/reference.py``'s
tolerances (which also compiles fastnn, so compilation is never timed), then times.

Time budget: every benchmark runs for ``FASTNN_BENCH_MAX_TIME`` seconds (default 0.2,
at least 5 rounds; set through the ``benchmark`` mark, which takes precedence over
``--benchmark-max-time``), so the file takes well under a minute; under
``--benchmark-disable`` each body runs once.

Where fastnn loses, it is reported, not hidden (measured on 2 Zen 5 cores, numba
0.68): the notebook-API kernels favour fidelity over speed, and the fused loss is the
search's hot path.

* ``dense``: fastnn is slower than NumPy's float32 GEMM in 5 of the 6 groups (1.3x
  at 2-3, n=3000; 5-9x at 2-64), faster only at 2-3, n=100,000.  Per call it packs
  the weights into a float64 vector and zeroes a float64 scratch array (~8 us at
  H=64); the product itself (float64 accumulation, the fused kernel's block sweeps)
  is fast, but copying the units-x-samples block back to row-major ``output`` reads
  the scratch column-wise, with a row stride of exactly 4 KB at H=64, so its 64 rows
  fall into one L1 set: that copy is >90% of the time.
* ``softmax|64``: fastnn's row loop keeps the max and the sum as scalar reductions
  (no ``reassoc``, deliberately), so a 64-wide row is not vectorised; NumPy wins up to
  n=3000.  With 3 columns fastnn wins 4-5x.
* ``crossentropy|64``: fastnn scans all n x 64 probabilities for NaN/inf (a full pass
  over 25.6 MB at n=100,000) and takes a scalar libm ``log`` per sample; NumPy picks
  the n true-class values first and logs them with SIMD.
* ``relu|3|n=300``: the ~1 us fixed cost of a call (checks, a fresh output,
  dispatch) is more than NumPy's whole ReLU.
"""

import importlib.util
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn.cli import make_data

ROOT = Path(__file__).resolve().parents[1]
LO, HI = np.float32(1e-7), np.float32(1 - 1e-7)

SAMPLES = (300, 3000, 100_000)
WIDTHS = (3, 64)
MAX_TIME = float(os.environ.get("FASTNN_BENCH_MAX_TIME", "0.2"))

pytestmark = pytest.mark.benchmark(max_time=MAX_TIME, min_rounds=5, warmup=True,
                                   warmup_iterations=20)


def _load(name, path):
    """A module loaded by its path (``tests`` and ``bench`` are not packages)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: ``tests/reference.py``: the NumPy oracle (tolerances, notebook classes).
ref = _load("fastnn_tests_reference", ROOT / "tests" / "reference.py")
#: ``bench/test_bench_loss.py``: its NumPy losses and cases (its n=3000 groups are not
#: repeated here).
loss_bench = _load("fastnn_bench_loss", Path(__file__).with_name("test_bench_loss.py"))


def setup(benchmark, group, impl):
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["load_average"] = round(os.getloadavg()[0], 2)


@cache
def spiral_n(n):
    """``n`` samples of nnfs's 3-class spiral (float32 X, int64 y)."""
    X, y = make_data("spiral", -(-n // 3), 3, 0, np.float32)
    return np.ascontiguousarray(X[:n]), np.ascontiguousarray(y[:n])


def _fresh_dense(n_in, n_out):
    """``fastnn.Dense_Layer`` without disturbing NumPy's global RNG (its constructor
    draws from it, as the notebook's does)."""
    state = np.random.get_state()  # noqa: NPY002 - the notebook API uses the global RNG
    try:
        return fastnn.Dense_Layer(n_in, n_out)
    finally:
        np.random.set_state(state)  # noqa: NPY002


@cache
def layer_data(n, h):
    """Spiral X, labels, and a 2-h layer's weights; its output Z (the ReLU and softmax
    input) and softmax(Z) (the cross-entropy input), all float32."""
    X, y = spiral_n(n)
    rng = np.random.default_rng([n, h])
    W = rng.standard_normal((2, h)).astype(np.float32)
    b = (0.1 * rng.standard_normal((1, h))).astype(np.float32)
    Z = X @ W + b
    P = ref.softmax(Z.astype(np.float64)).astype(np.float32)
    return X, y, W, b, Z, P


def group_name(op, shape, n):
    return f"{op}|{shape}|n={n}"


CASES = [(n, h) for n in SAMPLES for h in WIDTHS]


def _ids(case):
    n, h = case
    return f"n{n}-H{h}"


# -- dense ------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=CASES, ids=_ids)
def dense_case(request):
    n, h = request.param
    X, _, W, b, _, _ = layer_data(n, h)
    layer = _fresh_dense(2, h)
    layer.weights, layer.biases = W.copy(), b.copy()
    out = np.empty((n, h), np.float32)

    def fast():
        layer.forward(X)
        return layer.output

    def prealloc():
        np.matmul(X, W, out=out)
        return np.add(out, b, out=out)

    expected = X @ W + b
    scale = ref.dense_scale(X, W, b)
    for name, fn in (("fastnn", fast), ("numpy-prealloc", prealloc)):
        got = fn()
        assert got.dtype == np.float32, name
        ref.assert_close(got, expected, np.float32, scale=scale, msg=name)
    return group_name("dense", f"2-{h}", n), fast, X, W, b, prealloc


def test_dense_fastnn(benchmark, dense_case):
    group, fast, *_ = dense_case
    setup(benchmark, group, "fastnn")
    benchmark(fast)


def test_dense_numpy(benchmark, dense_case):
    group, _, X, W, b, _ = dense_case
    setup(benchmark, group, "numpy")
    benchmark(lambda: X @ W + b)


def test_dense_numpy_prealloc(benchmark, dense_case):
    group, *_, prealloc = dense_case
    setup(benchmark, group, "numpy-prealloc")
    benchmark(prealloc)


# -- ReLU -------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=CASES, ids=_ids)
def relu_case(request):
    n, h = request.param
    Z = layer_data(n, h)[4]
    act = fastnn.Activation_Relu()
    out = np.empty_like(Z)

    def fast():
        act.forward(Z)
        return act.output

    def prealloc():
        return np.maximum(Z, 0, out=out)

    expected = np.maximum(0, Z)
    assert 0.2 < np.mean(Z > 0) < 0.8  # both branches taken
    for name, fn in (("fastnn", fast), ("numpy-prealloc", prealloc)):
        got = fn()
        assert got.dtype == np.float32, name
        np.testing.assert_array_equal(got, expected, err_msg=name)
    return group_name("relu", str(h), n), fast, Z, prealloc


def test_relu_fastnn(benchmark, relu_case):
    group, fast, _, _ = relu_case
    setup(benchmark, group, "fastnn")
    benchmark(fast)


def test_relu_numpy(benchmark, relu_case):
    group, _, Z, _ = relu_case
    setup(benchmark, group, "numpy")
    benchmark(np.maximum, 0, Z)


def test_relu_numpy_prealloc(benchmark, relu_case):
    group, _, _, prealloc = relu_case
    setup(benchmark, group, "numpy-prealloc")
    benchmark(prealloc)


# -- softmax ----------------------------------------------------------------------------
def numpy_softmax(z):
    """The notebook's softmax: row max subtracted, exp, divided by the row sum."""
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


class SoftmaxPrealloc:
    """The same with every buffer allocated once."""

    def __init__(self, z):
        self.z = z
        self.out = np.empty_like(z)
        self.m = np.empty((z.shape[0], 1), z.dtype)
        self.s = np.empty((z.shape[0], 1), z.dtype)

    def __call__(self):
        out = self.out
        np.max(self.z, axis=1, keepdims=True, out=self.m)
        np.subtract(self.z, self.m, out=out)
        np.exp(out, out=out)
        np.sum(out, axis=1, keepdims=True, out=self.s)
        out /= self.s
        return out


@pytest.fixture(scope="module", params=CASES, ids=_ids)
def softmax_case(request):
    n, h = request.param
    Z = layer_data(n, h)[4]
    act = fastnn.Activation_Softmax()
    prealloc = SoftmaxPrealloc(Z)

    def fast():
        act.forward(Z)
        return act.output

    expected = ref.softmax(Z.astype(np.float64))
    scale = ref.softmax_scale(Z)
    for name, fn in (("fastnn", fast), ("numpy", lambda: numpy_softmax(Z)),
                     ("numpy-prealloc", prealloc)):
        got = fn()
        assert got.dtype == np.float32, name
        ref.assert_probs_close(got, expected, np.float32, scale=scale, msg=name)
    return group_name("softmax", str(h), n), fast, Z, prealloc


def test_softmax_fastnn(benchmark, softmax_case):
    group, fast, _, _ = softmax_case
    setup(benchmark, group, "fastnn")
    benchmark(fast)


def test_softmax_numpy(benchmark, softmax_case):
    group, _, Z, _ = softmax_case
    setup(benchmark, group, "numpy")
    benchmark(numpy_softmax, Z)


def test_softmax_numpy_prealloc(benchmark, softmax_case):
    group, _, _, prealloc = softmax_case
    setup(benchmark, group, "numpy-prealloc")
    benchmark(prealloc)


# -- categorical cross-entropy ----------------------------------------------------------
def numpy_crossentropy(P, y, rows):
    """The clipped loss as a NumPy user tunes it: the true class picked first, so
    only n values are clipped and logged (float32 throughout)."""
    return -np.log(np.clip(P[rows, y], LO, HI)).mean()


@pytest.fixture(scope="module", params=CASES, ids=_ids)
def crossentropy_case(request):
    n, h = request.param
    _, y, _, _, _, P = layer_data(n, h)
    rows = np.arange(n)
    loss = fastnn.Loss_CategoricalCrossentropy()
    notebook = ref.Loss_CategoricalCrossentropy()
    expected = ref.crossentropy(P, y)
    for name, fn in (("fastnn", lambda: loss.calculate(P, y)),
                     ("numpy", lambda: numpy_crossentropy(P, y, rows)),
                     ("notebook", lambda: notebook.forward(P, y))):
        got = fn()
        assert np.asarray(got).dtype == np.float32, name
        ref.assert_close(got, expected, np.float32, msg=name)
    return group_name("crossentropy", str(h), n), loss, notebook, P, y, rows


def test_crossentropy_fastnn(benchmark, crossentropy_case):
    group, loss, _, P, y, _ = crossentropy_case
    setup(benchmark, group, "fastnn")
    benchmark(loss.calculate, P, y)


def test_crossentropy_numpy(benchmark, crossentropy_case):
    group, _, _, P, y, rows = crossentropy_case
    setup(benchmark, group, "numpy")
    benchmark(numpy_crossentropy, P, y, rows)


def test_crossentropy_notebook(benchmark, crossentropy_case):
    group, _, notebook, P, y, _ = crossentropy_case
    setup(benchmark, group, "notebook")
    benchmark(notebook.forward, P, y)


# -- the fused loss (MLP.loss) ----------------------------------------------------------
#: Parameter scale per hidden width, as in test_bench_loss.py's cases.
FUSED_SCALE = {tuple(sizes): scale for sizes, _, scale in loss_bench.LOSS_CASES}
#: Groups test_bench_loss.py already times (n = 3 x samples per class).
FUSED_EXISTING = {(tuple(sizes), 3 * per_class) for sizes, per_class, _ in loss_bench.LOSS_CASES}
FUSED_CASES = [(n, h) for n, h in CASES if ((2, h, 3), n) not in FUSED_EXISTING]


@pytest.fixture(scope="module", params=FUSED_CASES, ids=_ids)
def fused_case(request):
    n, h = request.param
    sizes = [2, h, 3]
    X, y = spiral_n(n)
    model = loss_bench.model_with_params(sizes, FUSED_SCALE.get(tuple(sizes), 0.5))
    (W1, b1), (W2, b2) = ((la.weights, la.biases) for la in model.layers)
    args = (W1, b1, W2, b2)
    prealloc = loss_bench.NumpyPrealloc(X, y, h, 3)
    expected = model.loss(X, y)
    assert abs(expected - np.log(3)) > 0.02  # a real loss, not the ~log(3) of tiny weights
    exact, _ = ref.mlp_loss(sizes, model.params, X, y)
    assert expected == pytest.approx(exact, rel=4e-6)
    for name, fn in (("numpy", lambda: loss_bench.numpy_loss(X, y, *args)),
                     ("numpy-prealloc", lambda: prealloc(*args))):
        got = fn()
        assert got.dtype == np.float32, name
        assert float(got) == pytest.approx(exact, rel=loss_bench.RTOL), name
    return group_name("fused_loss", f"2-{h}-3", n), model, X, y, args, prealloc


def test_fused_loss_fastnn(benchmark, fused_case):
    group, model, X, y, _, _ = fused_case
    setup(benchmark, group, "fastnn")
    benchmark(model.loss, X, y)


def test_fused_loss_numpy(benchmark, fused_case):
    group, _, X, y, args, _ = fused_case
    setup(benchmark, group, "numpy")
    benchmark(loss_bench.numpy_loss, X, y, *args)


def test_fused_loss_numpy_prealloc(benchmark, fused_case):
    group, *_, args, prealloc = fused_case
    setup(benchmark, group, "numpy-prealloc")
    benchmark(prealloc, *args)
