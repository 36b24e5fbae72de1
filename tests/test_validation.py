"""Bad input to every public entry point raises ValueError/TypeError naming the argument.

Never a Numba typing error (``numba.core.errors.NumbaError`` is neither, so
``pytest.raises`` lets it through and the test errors), never a crash, never a silent
NaN or a wrapped-around label.  And the inputs that are merely unusual -- views, Fortran
order, integers, lists, nnfs's uint8 labels, read-only or byte-swapped arrays -- work
and give exactly what the clean input gives.

Entry points are registered once (``X_ENTRIES`` take the data matrix, ``Y_ENTRIES`` the
labels) and every case runs against every entry point it applies to.
"""

import re
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import (
    MLP,
    Activation_Relu,
    Activation_Softmax,
    Dense_Layer,
    Loss_CategoricalCrossentropy,
)

N, D, C = 6, 2, 3
_rng = np.random.default_rng(12345)
X_GOOD = _rng.standard_normal((N, D))
Z_GOOD = 3 * _rng.standard_normal((N, C))  # logits, for the activations
P_GOOD = np.exp(Z_GOOD) / np.exp(Z_GOOD).sum(axis=1, keepdims=True)
Y_GOOD = np.array([0, 1, 2, 1, 0, 2])
W1 = 0.5 * _rng.standard_normal((D, C))
B1 = 0.5 * _rng.standard_normal((1, C))


def net(dtype="float32"):
    """A fresh 2-4-3 network with non-trivial, deterministic parameters."""
    m = MLP([D, 4, C], seed=0, dtype=dtype)
    m.params = np.random.default_rng(7).standard_normal(m.n_params)
    return m


def dense(weights=W1, biases=B1):
    layer = Dense_Layer(D, C)
    layer.weights = weights.copy()
    layer.biases = biases.copy()
    return layer


def _output(obj, x):
    obj.forward(x)
    return obj.output


# name -> (call(x), the argument's name in messages, base input, fixed n_features)
X_ENTRIES = {
    "MLP.evaluate": (lambda x: net().evaluate(x, Y_GOOD), "X", X_GOOD, D),
    "MLP.loss": (lambda x: net().loss(x, Y_GOOD), "X", X_GOOD, D),
    "MLP.accuracy": (lambda x: net().accuracy(x, Y_GOOD), "X", X_GOOD, D),
    "MLP.forward": (lambda x: net().forward(x), "X", X_GOOD, D),
    "MLP.predict": (lambda x: net().predict(x), "X", X_GOOD, D),
    "MLP64.evaluate": (lambda x: net("float64").evaluate(x, Y_GOOD), "X", X_GOOD, D),
    "Dense_Layer.forward": (lambda x: _output(dense(), x), "inputs", X_GOOD, D),
    "Activation_Relu.forward": (lambda x: _output(Activation_Relu(), x), "inputs", Z_GOOD, None),
    "Activation_Softmax.forward": (
        lambda x: _output(Activation_Softmax(), x), "inputs", Z_GOOD, None),
    "Loss.forward": (
        lambda p: Loss_CategoricalCrossentropy().forward(p, Y_GOOD), "y_pred", P_GOOD, None),
    # the book's calculate(output, y): messages use forward's names
    "Loss.calculate": (
        lambda p: Loss_CategoricalCrossentropy().calculate(p, Y_GOOD), "y_pred", P_GOOD, None),
    "accuracy": (lambda p: fastnn.accuracy(p, Y_GOOD), "y_pred", P_GOOD, None),
}

# name -> (call(y), the argument's name in messages)
Y_ENTRIES = {
    "MLP.evaluate": (lambda y: net().evaluate(X_GOOD, y), "y"),
    "MLP.loss": (lambda y: net().loss(X_GOOD, y), "y"),
    "MLP.accuracy": (lambda y: net().accuracy(X_GOOD, y), "y"),
    "Loss.forward": (lambda y: Loss_CategoricalCrossentropy().forward(P_GOOD, y), "y_true"),
    "Loss.calculate": (lambda y: Loss_CategoricalCrossentropy().calculate(P_GOOD, y), "y_true"),
    "accuracy": (lambda y: fastnn.accuracy(P_GOOD, y), "y_true"),
}


def _with(base, index, value):
    out = np.array(base, dtype=np.float64)
    out[index] = value
    return out


def _raises(call, arg, value, exc=(ValueError, TypeError)):
    with pytest.raises(exc, match=rf"\b{arg}\b") as info:
        call(value)
    assert "numba" not in type(info.value).__module__
    return info.value


# --- the data matrix ------------------------------------------------------------------

# name -> (make(base) -> bad input, expected exception types)
BAD_X = {
    "1-D": (lambda b: b[0], ValueError),
    "3-D": (lambda b: b[None], ValueError),
    "0-D": (lambda b: b[0, 0], ValueError),
    "python scalar": (lambda b: 1.0, ValueError),
    "empty rows": (lambda b: b[:0], ValueError),
    "empty columns": (lambda b: b[:, :0], ValueError),
    "empty list": (lambda b: [], ValueError),
    "NaN": (lambda b: _with(b, (1, 1), np.nan), ValueError),
    "+inf": (lambda b: _with(b, (N - 1, 0), np.inf), ValueError),
    "-inf": (lambda b: _with(b, (0, 0), -np.inf), ValueError),
    "NaN float32": (lambda b: _with(b, (2, 0), np.nan).astype(np.float32), ValueError),
    "inf in a non-contiguous view": (
        lambda b: np.repeat(_with(b, (3, 1), np.inf), 2, axis=1)[:, ::2], ValueError),
    "complex": (lambda b: b.astype(np.complex128), TypeError),
    "object": (lambda b: b.astype(object), TypeError),
    "strings": (lambda b: b.astype(str), TypeError),
    "bytes": (lambda b: b.astype("S8"), TypeError),
    "datetime": (lambda b: np.zeros(b.shape, dtype="datetime64[s]"), TypeError),
    "None": (lambda b: None, TypeError),
    "ragged list": (lambda b: [[1.0, 2.0], [3.0]], (TypeError, ValueError)),
    "dict": (lambda b: {"a": 1}, TypeError),
}


@pytest.mark.parametrize("case", list(BAD_X))
@pytest.mark.parametrize("entry", list(X_ENTRIES))
def test_bad_x(entry, case):
    call, arg, base, _ = X_ENTRIES[entry]
    make, exc = BAD_X[case]
    _raises(call, arg, make(base), exc)


@pytest.mark.parametrize("entry", [e for e, v in X_ENTRIES.items() if v[3] is not None])
@pytest.mark.parametrize("n_features", [1, D + 1, 10])
def test_wrong_number_of_features(entry, n_features):
    call, arg, _, _ = X_ENTRIES[entry]
    err = _raises(call, arg, np.ones((N, n_features)), ValueError)
    assert str(D) in str(err)


@pytest.mark.parametrize("value", [1e39, -1e39, np.finfo(np.float64).max])
@pytest.mark.parametrize("entry", ["MLP.evaluate", "MLP.forward", "MLP.predict"])
def test_float64_overflowing_float32_network(entry, value):
    """A float32 network casts X to float32: values beyond float32's range become inf
    and must be refused, not propagated."""
    call, arg, base, _ = X_ENTRIES[entry]
    with np.errstate(over="raise"):  # the check may not rely on a warning being ignored
        _raises(call, arg, _with(base, (2, 1), value), ValueError)


def test_float64_overflowing_float32_is_fine_in_a_float64_network():
    x = _with(X_GOOD, (2, 1), 1e39)
    loss, acc = net("float64").evaluate(x, Y_GOOD)
    assert np.isfinite(loss) and 0 <= acc <= 1


def _noncontiguous_rows(b):
    return np.repeat(b, 2, axis=0)[::2]


def _noncontiguous_cols(b):
    return np.repeat(b, 2, axis=1)[:, ::2]


def _readonly(b):
    out = np.array(b)
    out.flags.writeable = False
    return out


# name -> make(base) -> (unusual input, clean equivalent)
GOOD_X = {
    "non-contiguous rows": lambda b: (_noncontiguous_rows(b), b),
    "non-contiguous columns": lambda b: (_noncontiguous_cols(b), b),
    "negative strides": lambda b: (b[::-1, ::-1], np.ascontiguousarray(b[::-1, ::-1])),
    "Fortran order": lambda b: (np.asfortranarray(b), b),
    "list": lambda b: (b.tolist(), b),
    "tuple of tuples": lambda b: (tuple(map(tuple, b.tolist())), b),
    "int64": lambda b: (np.round(3 * b).astype(np.int64), np.round(3 * b)),
    "int32 Fortran": lambda b: (np.asfortranarray(np.round(3 * b).astype(np.int32)),
                                np.round(3 * b)),
    "integer list": lambda b: (np.round(3 * b).astype(int).tolist(), np.round(3 * b)),
    "read-only": lambda b: (_readonly(b), b),
    "big-endian": lambda b: (b.astype(">f8"), b),
    "broadcast row": lambda b: (np.broadcast_to(b[:1], b.shape), np.repeat(b[:1], len(b), 0)),
    "unaligned": lambda b: (_unaligned(b), b),
    "unaligned float32": lambda b: (_unaligned(b.astype(np.float32)), b.astype(np.float32)),
    "float32 view": lambda b: (_noncontiguous_cols(b.astype(np.float32)), b.astype(np.float32)),
}


def _unaligned(a):
    """A C-contiguous copy of ``a`` whose data pointer is not aligned to its itemsize."""
    a = np.ascontiguousarray(a)
    raw = np.frombuffer(b"\0" + a.tobytes(), dtype=a.dtype, offset=1).reshape(a.shape)
    assert not raw.flags.aligned
    return raw


def _assert_same(got, want):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _assert_same(g, w)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", list(GOOD_X))
@pytest.mark.parametrize("entry", list(X_ENTRIES))
def test_unusual_x_works_like_the_clean_input(entry, case):
    call, _, base, _ = X_ENTRIES[entry]
    unusual, clean = GOOD_X[case](base)
    want = call(np.ascontiguousarray(clean))
    got = call(unusual)
    _assert_same(got, want)


# The dtype policy (fastnn/_validation.py): "float32 stays float32, float64 stays
# float64, other numeric inputs are cast (integers and bools to float64, float16 to
# float32 ...)".  Entry points without a dtype of their own (the notebook classes and
# fastnn.accuracy) must follow it for every integer width, not only int32/int64.
POLICY_ENTRIES = ["Activation_Relu.forward", "Activation_Softmax.forward", "Loss.forward",
                  "Loss.calculate"]


@pytest.mark.parametrize(
    "dtype, expected",
    [("bool", "float64"), ("int8", "float64"), ("uint8", "float64"), ("int16", "float64"),
     ("uint16", "float64"), ("int32", "float64"), ("int64", "float64"),
     ("uint64", "float64"), ("float16", "float32"), ("float32", "float32"),
     ("float64", "float64")],
)
def test_dtype_policy_for_unusual_x(dtype, expected):
    x = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0], [1, 1, 1]], dtype=dtype)
    wrong = {}
    for entry in POLICY_ENTRIES:
        call = X_ENTRIES[entry][0]
        got = call(x)
        if np.asarray(got).dtype != expected:
            wrong[entry] = np.asarray(got).dtype.name
        else:
            _assert_same(got, call(x.astype(expected)))
    assert not wrong, f"{dtype} input should compute in {expected}, got {wrong}"
    # accuracy returns a Python float whatever the dtype: only the value is checked
    assert fastnn.accuracy(x, Y_GOOD) == fastnn.accuracy(x.astype(expected), Y_GOOD)


def test_unusual_x_results_are_not_all_trivial():
    """The clean results above are real numbers (not NaN), or the comparisons are moot."""
    for entry, (call, _, base, _) in X_ENTRIES.items():
        result = call(base)
        flat = np.concatenate([np.ravel(r) for r in np.atleast_1d(result)]) \
            if isinstance(result, tuple) else np.ravel(result)
        assert np.all(np.isfinite(flat)), entry


# --- labels -----------------------------------------------------------------------------

_ONEHOT = np.eye(C)[Y_GOOD]

# name -> (bad labels, expected exception types)
BAD_Y = {
    "negative": (np.array([0, 1, -1, 1, 0, 2]), ValueError),
    "negative int8": (np.array([0, 1, -1, 1, 0, 2], dtype=np.int8), ValueError),
    "most negative int64": (np.array([0, 1, np.iinfo(np.int64).min, 1, 0, 2]), ValueError),
    "negative list": ([0, 1, 2, 1, 0, -3], ValueError),
    "== n_classes": (np.array([0, 1, C, 1, 0, 2]), ValueError),
    "uint8 255": (np.array([0, 1, 255, 1, 0, 2], dtype=np.uint8), ValueError),
    "huge uint64": (np.array([0, 1, 2**64 - 1, 1, 0, 2], dtype=np.uint64), ValueError),
    "huge int64": (np.array([0, 1, 2**62, 1, 0, 2]), ValueError),
    "float": (Y_GOOD.astype(np.float64), TypeError),
    "float list": (Y_GOOD.astype(float).tolist(), TypeError),
    "float32 with NaN": (_with(Y_GOOD, 0, np.nan).astype(np.float32), TypeError),
    "bool": (Y_GOOD > 0, TypeError),
    "complex": (Y_GOOD.astype(complex), TypeError),
    "object": (Y_GOOD.astype(object), TypeError),
    "strings": (Y_GOOD.astype(str), TypeError),
    "None": (None, TypeError),
    "too short": (Y_GOOD[:-1], ValueError),
    "too long": (np.append(Y_GOOD, 0), ValueError),
    "empty": (np.array([], dtype=np.int64), ValueError),
    "0-D": (np.int64(1), ValueError),
    "3-D": (_ONEHOT[None], ValueError),
    "column vector": (Y_GOOD[:, None], ValueError),
    "one-hot too narrow": (np.eye(C - 1)[Y_GOOD % (C - 1)], ValueError),
    "one-hot too wide": (np.eye(C + 1)[Y_GOOD], ValueError),
    "one-hot too few rows": (_ONEHOT[:-1], ValueError),
    "one-hot two ones": (_with(_ONEHOT, (2, 0), 1), ValueError),
    "one-hot all zeros": (_with(_ONEHOT, (3, Y_GOOD[3]), 0), ValueError),
    "one-hot soft": (np.full((N, C), 1 / C), ValueError),
    "one-hot 2": (2 * _ONEHOT, ValueError),
    "one-hot -1": (-_ONEHOT, ValueError),
    "one-hot NaN": (_with(_ONEHOT, (4, 1), np.nan), ValueError),
    "one-hot inf": (_with(_ONEHOT, (5, 2), np.inf), ValueError),
    "one-hot complex": (_ONEHOT.astype(complex), TypeError),
}


@pytest.mark.parametrize("case", list(BAD_Y))
@pytest.mark.parametrize("entry", list(Y_ENTRIES))
def test_bad_labels(entry, case):
    call, arg = Y_ENTRIES[entry]
    bad, exc = BAD_Y[case]
    _raises(call, arg, bad, exc)


@pytest.mark.parametrize("entry", list(Y_ENTRIES))
def test_negative_label_does_not_wrap_around(entry):
    """-1 would index the last class if it reached a kernel (Numba does not bounds
    check): the wrapped labels give a perfectly valid-looking result, so only an
    exception is acceptable."""
    call, arg = Y_ENTRIES[entry]
    wrapped = Y_GOOD.copy()
    wrapped[Y_GOOD == C - 1] = -1
    assert call(wrapped % C) is not None  # -1 % 3 == 2: the labels it would wrap to
    err = _raises(call, arg, wrapped, ValueError)
    assert "-1" in str(err)


# name -> make() -> (unusual labels, clean int64 equivalent)
GOOD_Y = {
    "uint8 (nnfs)": (Y_GOOD.astype(np.uint8), Y_GOOD),
    "int8": (Y_GOOD.astype(np.int8), Y_GOOD),
    "int16": (Y_GOOD.astype(np.int16), Y_GOOD),
    "int32": (Y_GOOD.astype(np.int32), Y_GOOD),
    "uint64": (Y_GOOD.astype(np.uint64), Y_GOOD),
    "big-endian int64": (Y_GOOD.astype(">i8"), Y_GOOD),
    "list": (Y_GOOD.tolist(), Y_GOOD),
    "tuple": (tuple(Y_GOOD.tolist()), Y_GOOD),
    "non-contiguous": (np.repeat(Y_GOOD, 2)[::2], Y_GOOD),
    "reversed view": (Y_GOOD[::-1][::-1], Y_GOOD),
    "read-only": (_readonly(Y_GOOD), Y_GOOD),
    "unaligned int64": (_unaligned(Y_GOOD), Y_GOOD),
    "one-hot float64": (_ONEHOT, Y_GOOD),
    "one-hot float32": (_ONEHOT.astype(np.float32), Y_GOOD),
    "one-hot int": (_ONEHOT.astype(int), Y_GOOD),
    "one-hot uint8": (_ONEHOT.astype(np.uint8), Y_GOOD),
    "one-hot bool": (_ONEHOT.astype(bool), Y_GOOD),
    "one-hot Fortran": (np.asfortranarray(_ONEHOT), Y_GOOD),
    "one-hot list": (_ONEHOT.tolist(), Y_GOOD),
    "one-hot -0.0": (np.where(_ONEHOT == 0, -0.0, 1.0), Y_GOOD),
}


@pytest.mark.parametrize("case", list(GOOD_Y))
@pytest.mark.parametrize("entry", list(Y_ENTRIES))
def test_unusual_labels_work_like_int64(entry, case):
    call, _ = Y_ENTRIES[entry]
    unusual, clean = GOOD_Y[case]
    _assert_same(call(unusual), call(np.asarray(clean, dtype=np.int64)))


def test_labels_are_used():
    """The label comparisons above are not vacuous: other labels change the result."""
    others = [(Y_GOOD + 1) % C, (Y_GOOD + 2) % C, np.zeros(N, dtype=int), Y_GOOD[::-1]]
    for entry, (call, _) in Y_ENTRIES.items():
        want = np.ravel(call(Y_GOOD)).tolist()
        assert any(np.ravel(call(o)).tolist() != want for o in others), entry


# --- parameters -------------------------------------------------------------------------

MLP_CALLS = {
    "evaluate": lambda m: m.evaluate(X_GOOD, Y_GOOD),
    "loss": lambda m: m.loss(X_GOOD, Y_GOOD),
    "accuracy": lambda m: m.accuracy(X_GOOD, Y_GOOD),
    "forward": lambda m: m.forward(X_GOOD),
    "predict": lambda m: m.predict(X_GOOD),
}


def _set_param(where, value):
    def corrupt(m):
        if where == "params":
            m.params[3] = value
        elif where == "weights":
            m.layers[1].weights[2, 1] = value
        else:
            m.layers[0].biases[0, 3] = value
    return corrupt


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["params", "weights", "biases"])
@pytest.mark.parametrize("call", list(MLP_CALLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_non_finite_parameters(dtype, call, where, value):
    m = net(dtype)
    _set_param(where, value)(m)
    with pytest.raises(ValueError, match=r"\bparams\b"):
        MLP_CALLS[call](m)


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39], ids=["nan", "inf", "1e39"])
@pytest.mark.parametrize("attr", ["params", "weights", "biases"])
@pytest.mark.parametrize("call", list(MLP_CALLS))
def test_mlp_assigned_non_finite_values(call, attr, value):
    """Assigning NaN/inf (or float64 beyond float32's range, into a float32 network) is
    refused either at the assignment or at the next call, naming the parameter."""
    m = net()
    with pytest.raises(ValueError, match=rf"\b({attr}|params)\b"):
        with np.errstate(over="ignore"):
            if attr == "params":
                m.params = np.full(m.n_params, value)
            else:
                shape = getattr(m.layers[1], attr).shape
                setattr(m.layers[1], attr, np.full(shape, value))
        MLP_CALLS[call](m)


@pytest.mark.parametrize(
    "attr, value",
    [
        ("weights", np.ones((D, 5))),
        ("weights", np.ones((4, D))),
        ("weights", np.ones(D * 4)),
        ("weights", np.ones((1, D, 4))),
        ("weights", 0.5),
        ("weights", [[1.0, 2.0]]),
        ("biases", np.ones((1, 5))),
        ("biases", np.ones(3)),
        ("biases", np.ones((4, 1))),
        ("biases", np.ones((2, 4))),
        ("biases", 0.0),
    ],
)
def test_mlp_layer_assignment_of_wrong_shape(attr, value):
    m = net()
    before = m.params.copy()
    with pytest.raises(ValueError, match=rf"\b{attr}\b"):
        setattr(m.layers[0], attr, value)
    np.testing.assert_array_equal(m.params, before)  # nothing half-written


@pytest.mark.parametrize(
    "value", [np.ones(3), np.ones((1, 100)), np.ones(100), [1.0, 2.0], 0.0],
)
def test_mlp_params_assignment_of_wrong_shape(value):
    m = net()
    with pytest.raises(ValueError, match=r"\bparams\b"):
        m.params = value


@pytest.mark.parametrize("attr", ["weights", "biases", "params"])
def test_mlp_assignment_of_non_numbers(attr):
    """Strings, complex numbers, None or objects cannot become parameters: a clear error
    naming the attribute, rather than NumPy's 'could not convert string to float' or a
    ComplexWarning while the imaginary part is silently dropped."""
    problems = {}
    for kind in ("strings", "complex", "object", "None"):
        m = net()
        target = m.params if attr == "params" else getattr(m.layers[0], attr)
        value = {
            "strings": np.full(target.shape, "a"),
            "complex": np.ones(target.shape, dtype=complex) * 1j,
            "object": np.full(target.shape, None, dtype=object),
            "None": None,
        }[kind]
        before = m.params.copy()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
                if attr == "params":
                    m.params = value
                else:
                    setattr(m.layers[0], attr, value)
        except (ValueError, TypeError) as exc:
            if not re.search(rf"\b{attr}\b", str(exc)):
                problems[kind] = f"{type(exc).__name__}: {exc}"
        else:
            problems[kind] = "accepted"
        if not np.array_equal(m.params, before):
            problems[kind] = problems.get(kind, "") + " (params changed)"
    assert not problems, problems


def test_mlp_layer_assignment_of_right_shape_works():
    m = net()
    w = np.arange(D * 4, dtype=np.float64).reshape(D, 4) / 10
    m.layers[0].weights = w
    m.layers[0].biases = np.arange(4) / 10  # 1-D biases are accepted
    np.testing.assert_array_equal(m.layers[0].weights, w.astype(np.float32))
    np.testing.assert_array_equal(m.params[: D * 4], w.ravel().astype(np.float32))
    np.testing.assert_array_equal(m.params[D * 4: D * 4 + 4], np.arange(4, dtype=np.float32) / 10)


@pytest.mark.parametrize(
    "attr, index",
    [("weights", (1, 2)), ("biases", (0, 1))],
)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_dense_layer_non_finite_parameters(attr, index, value):
    layer = dense()
    getattr(layer, attr)[index] = value
    with pytest.raises(ValueError, match=rf"\b{attr}\b"):
        layer.forward(X_GOOD)


@pytest.mark.parametrize("attr", ["weights", "biases"])
def test_dense_layer_parameters_overflowing_float32_inputs(attr):
    """Float32 inputs with float64 parameters compute in float64: 1e39 is finite there,
    so this works (and gives finite numbers) rather than overflowing."""
    layer = dense()
    getattr(layer, attr)[0, 0] = 1e39
    layer.forward(X_GOOD.astype(np.float32))
    assert layer.output.dtype == np.float64 and np.all(np.isfinite(layer.output))


@pytest.mark.parametrize(
    "attr, value, exc",
    [
        ("weights", np.ones(C), ValueError),
        ("weights", np.ones((1, D, C)), ValueError),
        ("weights", np.ones((D, C), dtype=complex), TypeError),
        ("weights", np.full((D, C), "x"), TypeError),
        ("weights", None, TypeError),
        ("weights", np.ones((D, 0)), ValueError),
        ("biases", np.ones((1, C + 1)), ValueError),
        ("biases", np.ones((C, 1)), ValueError),
        ("biases", np.ones((2, C)), ValueError),
        ("biases", np.ones((1, C), dtype=complex), TypeError),
        ("biases", np.full((1, C), "x"), (TypeError, ValueError)),
        ("biases", None, (TypeError, ValueError)),
    ],
)
def test_dense_layer_bad_parameters(attr, value, exc):
    layer = dense()
    setattr(layer, attr, value)
    with pytest.raises(exc, match=rf"\b{attr}\b"):
        layer.forward(X_GOOD)


def test_dense_layer_weights_not_matching_inputs():
    layer = dense()
    layer.weights = np.ones((D + 1, C))
    with pytest.raises(ValueError, match=r"\binputs\b") as info:
        layer.forward(X_GOOD)
    assert str(D + 1) in str(info.value)


def test_dense_layer_1d_biases_work():
    a, b = dense(), dense(biases=B1.ravel())
    a.forward(X_GOOD)
    b.forward(X_GOOD)
    _assert_same(b.output, a.output)


# --- constructors -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "sizes, exc",
    [
        ([], ValueError),
        ((), ValueError),
        ([3], ValueError),
        ([2, 0, 3], ValueError),
        ([2, 3, 0], ValueError),
        ([0, 3], ValueError),
        ([2, -1, 3], ValueError),
        ([-2, 3], ValueError),
        ([2, 3.0, 3], TypeError),
        ([2, 3.5, 3], TypeError),
        ([2, "3", 3], TypeError),
        ("23", TypeError),
        ("2-3-3", TypeError),
        ([2, None, 3], TypeError),
        ([2, True, 3], TypeError),
        ([2, [3], 3], TypeError),
        ([2, 3 + 0j, 3], TypeError),
        (np.array([2.0, 3.0]), TypeError),
        (5, TypeError),
        (None, TypeError),
        (3.5, TypeError),
    ],
    ids=repr,
)
def test_mlp_bad_layer_sizes(sizes, exc):
    with pytest.raises(exc, match=r"\blayer_sizes\b"):
        MLP(sizes)


@pytest.mark.parametrize(
    "sizes",
    [[2, 3], (2, 4, 3), np.array([2, 4, 3]), [np.int32(2), np.uint8(4), 3], range(2, 5)],
    ids=repr,
)
def test_mlp_good_layer_sizes(sizes):
    m = MLP(sizes, seed=0)
    assert m.sizes.tolist() == [int(s) for s in sizes]
    assert m.forward(np.ones((N, 2))).shape == (N, int(list(sizes)[-1]))


@pytest.mark.parametrize(
    "dtype, exc",
    [
        ("int32", ValueError),
        ("int64", ValueError),
        (int, ValueError),
        ("float16", ValueError),
        (np.float16, ValueError),
        ("complex128", ValueError),
        ("longdouble", ValueError),
        ("bool", ValueError),
        ("U8", ValueError),
        ("object", ValueError),
        ("garbage", TypeError),
        ("float 32", TypeError),
        (3.5, TypeError),
        ([np.float32], TypeError),
    ],
    ids=repr,
)
def test_mlp_bad_dtype(dtype, exc):
    with pytest.raises(exc, match=r"\bdtype\b"):
        MLP([2, 3], dtype=dtype)


@pytest.mark.parametrize(
    "dtype, expected",
    [("float32", np.float32), ("float64", np.float64), (np.float32, np.float32),
     (float, np.float64), ("f4", np.float32), (np.dtype("float64"), np.float64)],
    ids=repr,
)
def test_mlp_good_dtype(dtype, expected):
    m = MLP([2, 3], seed=0, dtype=dtype)
    assert m.dtype == expected and m.params.dtype == expected
    assert m.forward(np.ones((N, 2))).dtype == expected


@pytest.mark.parametrize(
    "seed, exc",
    [(1.5, TypeError), (0.0, TypeError), ("0", TypeError), (True, TypeError),
     ([0], TypeError), (-1, ValueError), (np.float64(2), TypeError)],
    ids=repr,
)
def test_mlp_bad_seed(seed, exc):
    with pytest.raises(exc, match=r"\bseed\b"):
        MLP([2, 3], seed=seed)


@pytest.mark.parametrize("seed", [0, 2**63, np.int32(5), np.uint64(7)], ids=repr)
def test_mlp_good_seed(seed):
    a, b = MLP([2, 3], seed=seed), MLP([2, 3], seed=int(seed))
    np.testing.assert_array_equal(a.params, b.params)


@pytest.mark.parametrize("arg", ["n_inputs", "n_neurons"])
@pytest.mark.parametrize(
    "value, exc",
    [(0, ValueError), (-1, ValueError), (2.0, TypeError), ("2", TypeError),
     (None, TypeError), (True, TypeError), ([2], TypeError)],
    ids=repr,
)
def test_dense_layer_bad_sizes(arg, value, exc):
    kwargs = {"n_inputs": 2, "n_neurons": 3, arg: value}
    with pytest.raises(exc, match=rf"\b{arg}\b"):
        Dense_Layer(**kwargs)


def test_bad_input_leaves_objects_usable():
    """A refused call does not poison the object: the next good call gives the same
    result as on a fresh object (no half-updated scratch buffers or outputs)."""
    m = net()
    want = m.evaluate(X_GOOD, Y_GOOD)
    for bad in (_with(X_GOOD, (0, 0), np.nan), np.ones((N, 5))):
        with pytest.raises(ValueError):
            m.evaluate(bad, Y_GOOD)
    with pytest.raises(ValueError):
        m.evaluate(X_GOOD, -Y_GOOD - 1)
    assert m.evaluate(X_GOOD, Y_GOOD) == want
