"""Every public function called from many Python threads at once (numbagg's
``test_multithreading.py``): results must equal the single-threaded ones bit for bit.

Kernels are ``nogil``, so these calls really overlap; the MLP keeps one scratch buffer
per thread, and the notebook classes allocate their outputs per call.  A shared buffer, a
cached output array or a kernel writing to module-level state would show up here as a
mismatch (or a crash).  Never calls ``nnfs.init()``.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastnn

WORKERS = 8
REPEATS = 12  # calls of each task per test, spread over the workers

DTYPES = (np.float32, np.float64)


@pytest.fixture(autouse=True)
def global_rng():
    """Dense_Layer draws from NumPy's global RNG: leave it as we found it."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


def assert_identical(actual, expected, what):
    """Same type, dtype, shape and bytes (floats compared bit for bit)."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), what
        for a, e in zip(actual, expected, strict=True):
            assert_identical(a, e, what)
        return
    assert type(actual) is type(expected), (what, type(actual), type(expected))
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.dtype == e.dtype and a.shape == e.shape, (what, a.dtype, e.dtype, a.shape, e.shape)
    assert a.tobytes() == e.tobytes(), f"{what}: threaded result differs from serial"


def run_threaded(tasks):
    """Run every task once serially, then REPEATS times each from WORKERS threads
    (interleaved, so different functions and shapes overlap); compare."""
    expected = {name: fn() for name, fn in tasks.items()}
    order = [name for _ in range(REPEATS) for name in tasks]
    np.random.default_rng(0).shuffle(order)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [(name, pool.submit(tasks[name])) for name in order]
        results = [(name, f.result()) for name, f in futures]
    assert len(results) == REPEATS * len(tasks)
    for name, result in results:
        assert_identical(result, expected[name], name)


def data(n, d, c, dtype, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.integers(0, c, n)
    return X, y


SHAPES = [([2, 3, 3], 300), ([2, 64, 3], 3000), ([20, 128, 64, 10], 1000), ([5, 7], 10_000)]


def mlp_tasks(model, X, y, tag):
    return {
        f"{tag} evaluate": lambda: model.evaluate(X, y),
        f"{tag} loss": lambda: model.loss(X, y),
        f"{tag} accuracy": lambda: model.accuracy(X, y),
        f"{tag} forward": lambda: model.forward(X),
        f"{tag} predict": lambda: model.predict(X),
        # a different batch size on the same model and thread-local buffer
        f"{tag} evaluate[:7]": lambda: model.evaluate(X[:7], y[:7]),
        f"{tag} forward[1::3]": lambda: model.forward(X[1::3]),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_mlp_shared_object(dtype):
    """One MLP per shape, every method, called from 8 threads on the same object."""
    tasks = {}
    for k, (sizes, n) in enumerate(SHAPES):
        model = fastnn.MLP(sizes, seed=k, dtype=dtype)
        model.params = model.params * 50  # logits of a useful size, not ~0
        X, y = data(n, sizes[0], sizes[-1], dtype, seed=k)
        tasks.update(mlp_tasks(model, X, y, f"{sizes}"))
    run_threaded(tasks)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_mlp_separate_objects(dtype):
    """A fresh MLP per call (new buffers every time), and copies used side by side."""
    sizes, n = [2, 64, 3], 3000
    base = fastnn.MLP(sizes, seed=3, dtype=dtype)
    base.params = base.params * 50
    X, y = data(n, 2, 3, dtype, seed=3)
    copies = [base.copy() for _ in range(WORKERS)]

    def fresh(method):
        def call():
            model = fastnn.MLP(sizes, seed=0, dtype=dtype)
            model.params = base.params
            return getattr(model, method)(X, y) if method == "evaluate" else getattr(
                model, method)(X)
        return call

    tasks = {f"fresh {m}": fresh(m) for m in ("evaluate", "forward", "predict")}
    for i, c in enumerate(copies):
        tasks[f"copy{i} evaluate"] = lambda c=c: c.evaluate(X, y)
        tasks[f"copy{i} forward"] = lambda c=c: c.forward(X)
    run_threaded(tasks)


def notebook_pipeline(X, y, W1, b1, W2, b2):
    """The seed notebook's cell with fresh objects: every intermediate result."""
    dense1, relu = fastnn.Dense_Layer(W1.shape[0], W1.shape[1]), fastnn.Activation_Relu()
    dense2, soft = fastnn.Layer_Dense(W2.shape[0], W2.shape[1]), fastnn.Activation_Softmax()
    dense1.weights, dense1.biases, dense2.weights, dense2.biases = W1, b1, W2, b2
    dense1.forward(X)
    relu.forward(dense1.output)
    dense2.forward(relu.output)
    soft.forward(dense2.output)
    loss = fastnn.Loss_CategoricalCrossentropy()
    return (dense1.output, relu.output, dense2.output, soft.output,
            loss.forward(soft.output, y), loss.calculate(soft.output, y),
            fastnn.accuracy(soft.output, y))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_notebook_classes(dtype):
    """The notebook API (fresh layer objects per call: they store .output), at a few
    shapes, with weights 0.01 N(0, 1)-sized and larger."""
    rng = np.random.default_rng(1)
    tasks = {}
    for n, d, h, c in [(300, 2, 3, 3), (3000, 2, 64, 3), (500, 64, 32, 10)]:
        X, y = data(n, d, c, dtype, seed=n)
        W1 = rng.standard_normal((d, h)).astype(dtype)
        b1 = rng.standard_normal((1, h)).astype(dtype)
        W2 = rng.standard_normal((h, c)).astype(dtype)
        b2 = np.zeros((1, c))  # float64 biases, as the notebook's np.zeros gives
        tasks[f"pipeline {n}x{d}-{h}-{c}"] = (
            lambda X=X, y=y, W1=W1, b1=b1, W2=W2, b2=b2: notebook_pipeline(X, y, W1, b1, W2, b2))
    run_threaded(tasks)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_shared_loss_object_and_accuracy(dtype):
    """The stateless pieces shared across threads: one Loss object, fastnn.accuracy."""
    loss = fastnn.Loss_CategoricalCrossentropy()
    tasks = {}
    for n, c in [(300, 3), (5000, 10), (2000, 100)]:
        rng = np.random.default_rng(n)
        z = rng.standard_normal((n, c)) * 5
        p = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype(dtype)
        y = rng.integers(0, c, n)
        onehot = np.eye(c)[y]
        tasks[f"loss {n}x{c}"] = lambda p=p, y=y: loss.forward(p, y)
        tasks[f"loss onehot {n}x{c}"] = lambda p=p, o=onehot: loss.calculate(p, o)
        tasks[f"accuracy {n}x{c}"] = lambda p=p, y=y: fastnn.accuracy(p, y)
    run_threaded(tasks)
