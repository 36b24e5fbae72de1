"""One registry of cases, shared by the parity tests and the benchmarks (numbagg's
``COMPARISONS`` idea).

``CASES`` maps a name ``"{op}|{dtype}|{shape}"`` to a ``Case`` holding two zero-argument
callables, ``fastnn`` and ``reference``, that run one operation on the same data, and a
``check(fast_result, reference_result)`` that raises ``AssertionError`` if they disagree
beyond ``reference.TOL``.  Data is built on first use (``case.data()``, cached), so
importing this module is cheap; call ``case.data()`` before timing to keep data
construction out of a benchmark.

Plain Python and NumPy: importable without pytest, as ``tests.cases`` (from the
repository root), as ``cases`` (with ``tests/`` on ``sys.path``, as pytest does) or from
its file path with ``importlib``.

Operations: dense, relu, softmax, crossentropy, accuracy (the notebook API against the
notebook's own classes), and loss (the fused ``MLP.evaluate``), forward, predict (the
network API against the float64 reference).
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import fastnn

try:
    from . import reference as ref  # imported as tests.cases
except ImportError:
    try:
        import reference as ref  # tests/ on sys.path (pytest)
    except ImportError:  # loaded from its file path by importlib (e.g. bench/)
        import importlib.util
        import pathlib

        _spec = importlib.util.spec_from_file_location(
            "fastnn_tests_reference", pathlib.Path(__file__).with_name("reference.py"))
        ref = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(ref)

DTYPES = (np.float32, np.float64)


@dataclass(frozen=True)
class Case:
    name: str
    op: str
    shape: str
    dtype: type
    build: Callable[[], dict] = field(repr=False)
    run_fastnn: Callable[[dict], Any] = field(repr=False)
    run_reference: Callable[[dict], Any] = field(repr=False)
    compare: Callable[[dict, Any, Any], None] = field(repr=False)

    def data(self):
        return _data(self.build)

    def fastnn(self):
        return self.run_fastnn(self.data())

    def reference(self):
        return self.run_reference(self.data())

    def check(self, fast_result, reference_result):
        self.compare(self.data(), fast_result, reference_result)


CASES: dict[str, Case] = {}


@functools.cache
def _data(build):
    # Keyed by the builder, so the ops of one shape (dense, relu, ...) share their data.
    return build()


def _register(op, dtype, shape, build, run_fastnn, run_reference, compare):
    name = f"{op}|{np.dtype(dtype).name}|{shape}"
    assert name not in CASES, name
    CASES[name] = Case(name, op, shape, dtype, build, run_fastnn, run_reference, compare)


# --- data builders -----------------------------------------------------------------------


def random_params(sizes, dtype, rng, scale=1.0):
    """Flat parameters with weights ~ scale * N(0, 1/fan_in) and biases ~ 0.1 * scale * N(0,
    1): activations stay O(1) whatever the depth, so float32 stays meaningful."""
    parts = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        parts.append(rng.standard_normal(a * b) * (scale / np.sqrt(a)))
        parts.append(rng.standard_normal(b) * (0.1 * scale))
    return np.concatenate(parts).astype(dtype)


def _network_data(sizes, n, dtype, seed):
    rng = np.random.default_rng(seed)
    params = random_params(sizes, dtype, rng)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    model = fastnn.MLP(sizes, dtype=dtype)
    model.params = params
    return {"sizes": sizes, "params": params, "X": X, "y": y, "model": model}


def _layer_data(n, d, h, dtype, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    W = (rng.standard_normal((d, h)) / np.sqrt(d)).astype(dtype)
    b = (0.1 * rng.standard_normal((1, h))).astype(dtype)
    Z = (3 * rng.standard_normal((n, h))).astype(dtype)
    P = ref.softmax(Z.astype(np.float64)).astype(dtype)
    y = rng.integers(0, h, n)
    fast_dense, ref_dense = fastnn.Dense_Layer(d, h), ref.Dense_Layer(d, h)
    for layer in (fast_dense, ref_dense):
        layer.weights, layer.biases = W.copy(), b.copy()
    return {"X": X, "W": W, "b": b, "Z": Z, "P": P, "y": y,
            "fast_dense": fast_dense, "ref_dense": ref_dense,
            "fast_relu": fastnn.Activation_Relu(), "ref_relu": ref.Activation_Relu(),
            "fast_softmax": fastnn.Activation_Softmax(), "ref_softmax": ref.Activation_Softmax(),
            "fast_loss": fastnn.Loss_CategoricalCrossentropy(),
            "ref_loss": ref.Loss_CategoricalCrossentropy()}


# --- per-op runners and checks -------------------------------------------------------------


def _forward_layer(layer, x):
    layer.forward(x)
    return layer.output


def _check_dtype(fast, expected):
    assert np.asarray(fast).dtype == np.asarray(expected).dtype, (
        f"dtype {np.asarray(fast).dtype} != reference {np.asarray(expected).dtype}")


def _check_dense(d, fast, expected):
    _check_dtype(fast, expected)
    ref.assert_close(fast, expected, ref.dot_dtype(d["X"], d["W"]),
                     scale=ref.dense_scale(d["X"], d["W"], d["b"]), msg="Dense_Layer.forward")


def _check_relu(d, fast, expected):
    _check_dtype(fast, expected)
    np.testing.assert_array_equal(fast, expected)


def _check_softmax(d, fast, expected):
    _check_dtype(fast, expected)
    ref.assert_probs_close(fast, expected, fast.dtype, scale=ref.softmax_scale(d["Z"]),
                           msg="Activation_Softmax.forward")


def _check_crossentropy(d, fast, expected):
    assert type(fast) is type(expected), f"{type(fast)} != {type(expected)}"
    ref.assert_close(fast, expected, d["P"].dtype, msg="Loss_CategoricalCrossentropy")


def _check_accuracy(d, fast, expected):
    assert isinstance(fast, float), type(fast)
    assert fast == expected, (fast, expected)


def _check_loss(d, fast, expected):
    dtype = d["params"].dtype
    assert isinstance(fast[0], float) and isinstance(fast[1], float), fast
    scale = ref.logit_scale(d["sizes"], d["params"], d["X"])
    ref.assert_close(fast[0], expected[0], dtype, scale=np.mean(scale), msg="MLP loss")
    logits = ref.mlp_logits(d["sizes"], d["params"], d["X"])
    bound = ref.tol(dtype)["ulps"] * ref.tol(dtype)["eps"] * scale
    lo, hi = ref.correct_count_window(logits, d["y"], bound)
    n = len(d["y"])
    assert lo / n <= fast[1] <= hi / n, (fast[1], lo / n, hi / n)


def _check_forward(d, fast, expected):
    assert fast.dtype == d["params"].dtype, fast.dtype
    scale = ref.logit_scale(d["sizes"], d["params"], d["X"])
    ref.assert_probs_close(fast, expected, fast.dtype, scale=scale, msg="MLP.forward")


def _check_predict(d, fast, logits):
    assert fast.dtype == np.int64, fast.dtype
    dtype = d["params"].dtype
    scale = ref.logit_scale(d["sizes"], d["params"], d["X"])
    bound = ref.tol(dtype)["ulps"] * ref.tol(dtype)["eps"] * scale
    ref.assert_argmax_consistent(fast, logits, bound, msg="MLP.predict")


# --- the registry --------------------------------------------------------------------------

#: (n_samples, n_inputs, n_neurons) for the layer-level cases.
LAYER_SHAPES = [(300, 2, 3), (3000, 64, 64), (1000, 784, 10)]

#: (layer sizes, n_samples) for the network cases: the seed workload, a wider and a
#: deeper net, and a long batch.
NETWORK_SHAPES = [
    ([2, 3, 3], 300),
    ([2, 64, 3], 3000),
    ([784, 128, 64, 10], 1000),
    ([2, 16, 3], 30000),
]


def _populate():
    for dtype in DTYPES:
        for n, d, h in LAYER_SHAPES:
            shape = f"{n}x{d}->{h}"

            def build(n=n, d=d, h=h, dtype=dtype):
                return _layer_data(n, d, h, dtype, seed=[n, d, h, np.dtype(dtype).itemsize])

            _register("dense", dtype, shape, build,
                      lambda d: _forward_layer(d["fast_dense"], d["X"]),
                      lambda d: _forward_layer(d["ref_dense"], d["X"]), _check_dense)
            _register("relu", dtype, f"{n}x{h}", build,
                      lambda d: _forward_layer(d["fast_relu"], d["Z"]),
                      lambda d: _forward_layer(d["ref_relu"], d["Z"]), _check_relu)
            _register("softmax", dtype, f"{n}x{h}", build,
                      lambda d: _forward_layer(d["fast_softmax"], d["Z"]),
                      lambda d: _forward_layer(d["ref_softmax"], d["Z"]), _check_softmax)
            _register("crossentropy", dtype, f"{n}x{h}", build,
                      lambda d: d["fast_loss"].forward(d["P"], d["y"]),
                      lambda d: d["ref_loss"].forward(d["P"], d["y"]), _check_crossentropy)
            _register("accuracy", dtype, f"{n}x{h}", build,
                      lambda d: fastnn.accuracy(d["P"], d["y"]),
                      lambda d: ref.accuracy(d["P"], d["y"]), _check_accuracy)
        for sizes, n in NETWORK_SHAPES:
            shape = f"{n}x{'-'.join(map(str, sizes))}"

            def build(sizes=sizes, n=n, dtype=dtype):
                return _network_data(sizes, n, dtype, seed=[*sizes, n, np.dtype(dtype).itemsize])

            _register("loss", dtype, shape, build,
                      lambda d: d["model"].evaluate(d["X"], d["y"]),
                      lambda d: ref.mlp_loss(d["sizes"], d["params"], d["X"], d["y"]),
                      _check_loss)
            _register("forward", dtype, shape, build,
                      lambda d: d["model"].forward(d["X"]),
                      lambda d: ref.mlp_forward(d["sizes"], d["params"], d["X"]),
                      _check_forward)
            _register("predict", dtype, shape, build,
                      lambda d: d["model"].predict(d["X"]),
                      lambda d: ref.mlp_logits(d["sizes"], d["params"], d["X"]),
                      _check_predict)


_populate()
