"""Parity of every public operation with the NumPy oracle (``tests/reference.py``).

* Network API (``MLP.evaluate/loss/accuracy/forward/predict``) against the float64
  reference run on the same flat parameters, over random networks (hypothesis) and a few
  big explicit shapes.
* Notebook API (``Dense_Layer``, ``Activation_Relu``, ``Activation_Softmax``,
  ``Loss_CategoricalCrossentropy``, ``accuracy``) against the notebook's own classes,
  including mixed dtypes and weights changed between calls.
* The registry in ``tests/cases.py`` (also used by ``bench/``).
* Extreme logits, exact ties, MLP initialisation and the dtype policy.

Tolerances come from ``reference.TOL`` only.  Never calls ``nnfs.init()``.
"""

import cases
import numpy as np
import pytest
import reference as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn

DTYPES = (np.float32, np.float64)

#: Modest example counts: the whole file runs in well under a minute once compiled.
SETTINGS = settings(
    deadline=None,  # first calls compile
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],  # global_rng: per test
)


def bound_for(dtype, scale):
    """Rounding bound on logits computed in ``dtype`` (see ``reference.TOL``)."""
    t = ref.tol(dtype)
    return t["ulps"] * t["eps"] * np.asarray(scale)


@pytest.fixture(autouse=True)
def global_rng():
    """Save NumPy's global RNG state and restore it after every test: Dense_Layer and
    MLP(seed=None) draw from it, like the notebook."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


# --- data makers -----------------------------------------------------------------------


def make_model(sizes, dtype, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    params = cases.random_params(sizes, dtype, rng, scale=scale)
    model = fastnn.MLP(sizes, dtype=dtype)
    model.params = params
    assert model.params.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(model.params, params)
    return model


def make_X(rng, n, d, kind):
    """X of shape (n, d) in one of several memory layouts / dtypes (all must work)."""
    base = rng.standard_normal((n, d)) * 2
    if kind == "c64":
        return base
    if kind == "c32":
        return base.astype(np.float32)
    if kind == "fortran":
        return np.asfortranarray(base)
    if kind == "strided":  # every other row and column of a bigger array
        big = np.zeros((2 * n, 2 * d))
        big[::2, ::2] = base
        X = big[::2, ::2]
        assert not X.flags.c_contiguous or min(n, d) == 1
        return X
    if kind == "transposed":
        return np.ascontiguousarray(base.T).T
    if kind in ("int8", "int32", "int64"):
        return rng.integers(-5, 6, (n, d)).astype(kind)
    raise ValueError(kind)


X_KINDS = ["c64", "c32", "fortran", "strided", "transposed", "int8", "int32", "int64"]


def make_labels(rng, n, n_classes, kind):
    y = rng.integers(0, n_classes, n)
    if kind == "int64":
        return y
    if kind == "int32":
        return y.astype(np.int32)
    if kind == "uint8":
        return y.astype(np.uint8)
    onehot = np.eye(n_classes)[y]
    if kind == "onehot_f64":
        return onehot
    if kind == "onehot_f32":
        return onehot.astype(np.float32)
    if kind == "onehot_int":
        return onehot.astype(np.int64)
    raise ValueError(kind)


LABEL_KINDS = ["int64", "int32", "uint8", "onehot_f64", "onehot_f32", "onehot_int"]


# --- the network API vs the reference ------------------------------------------------------


def check_mlp(model, X, y):
    """Compare every MLP method on (X, y) with the reference on ``model.params``."""
    sizes = model.sizes.tolist()
    params = model.params.copy()
    dtype = model.dtype.type
    scale = ref.logit_scale(sizes, params, X)
    bound = bound_for(dtype, scale)
    logits = ref.mlp_logits(sizes, params, X)

    p = model.forward(X)
    assert p.dtype == model.dtype and p.shape == (X.shape[0], sizes[-1])
    ref.assert_probs_close(p, ref.softmax(logits), dtype, scale=scale, msg="MLP.forward")

    pred = model.predict(X)
    assert pred.dtype == np.int64
    ref.assert_argmax_consistent(pred, logits, bound, msg="MLP.predict")

    loss, acc = model.evaluate(X, y)
    ref_loss, ref_acc = ref.mlp_loss(sizes, params, X, y)
    assert np.isfinite(loss)
    ref.assert_close(loss, ref_loss, dtype, scale=np.mean(scale), msg="MLP.evaluate loss")
    lo, hi = ref.correct_count_window(logits, y, bound)
    n = X.shape[0]
    assert lo / n <= acc <= hi / n, f"accuracy {acc} outside [{lo / n}, {hi / n}] (ref {ref_acc})"
    # No exact ties in this data: accuracy must agree with predict exactly.
    assert acc == np.mean(pred == ref.labels_of(y)), (acc, np.mean(pred == ref.labels_of(y)))

    # The convenience methods are the same numbers.
    assert model.loss(X, y) == loss
    assert model.accuracy(X, y) == acc
    # Nothing above changed the parameters.
    np.testing.assert_array_equal(model.params, params)
    return p, pred, (loss, acc)


@st.composite
def networks(draw, max_hidden=512):
    dtype = draw(st.sampled_from(DTYPES))
    n_layers = draw(st.integers(1, 5))
    sizes = [draw(st.integers(1, 16))]
    sizes += [draw(st.integers(1, max_hidden)) for _ in range(n_layers - 1)]
    sizes += [draw(st.integers(2, 100))]
    scale = draw(st.sampled_from([0.01, 0.5, 1.0, 3.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    return make_model(sizes, dtype, seed, scale=scale)


#: samples x parameters per hypothesis example (wide nets get fewer samples; the big
#: explicit cases below cover wide nets with many samples).
WORK_BUDGET = 5_000_000


@SETTINGS
@given(
    model=networks(),
    n=st.integers(1, 300),
    x_kind=st.sampled_from(X_KINDS),
    y_kind=st.sampled_from(LABEL_KINDS),
    seed=st.integers(0, 2**32 - 1),
)
def test_mlp_matches_reference(model, n, x_kind, y_kind, seed):
    n = min(n, max(1, WORK_BUDGET // model.n_params))  # wide nets: fewer samples
    rng = np.random.default_rng(seed)
    X = make_X(rng, n, model.n_inputs, x_kind)
    y = make_labels(rng, n, model.n_classes, y_kind)
    if y_kind == "uint8" and model.n_classes > 255:
        y = y.astype(np.int64)
    p, pred, (loss, acc) = check_mlp(model, X, y)

    # Layout, integer X and label encodings are conversions only: bit-identical results
    # to a C-contiguous array in the model's dtype and int64 labels.
    Xc = np.ascontiguousarray(X, dtype=model.dtype)
    np.testing.assert_array_equal(model.forward(Xc), p)
    np.testing.assert_array_equal(model.predict(Xc), pred)
    assert model.evaluate(Xc, ref.labels_of(y)) == (loss, acc)


BIG = [
    ([2, 64, 3], 100_000),  # many samples (many blocks), the seed's shape widened
    ([5, 10], 100_000),  # a single layer
    ([784, 512, 10], 3000),  # wide input and hidden layer
    ([16, 512, 512, 512, 512, 100], 600),  # 5 layers at the maximum width, 100 classes
    ([3, 4, 1], 1000),  # one class: probability 1, loss at the lower clip
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("sizes,n", BIG, ids=lambda v: "-".join(map(str, v)) if
                         isinstance(v, list) else str(v))
def test_mlp_big_shapes(sizes, n, dtype):
    model = make_model(sizes, dtype, seed=[len(sizes), n])
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    check_mlp(model, X, y)


# --- extreme logits ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("sizes", [[4, 10], [4, 32, 5], [8, 64, 64, 100]],
                         ids=lambda s: "-".join(map(str, s)))
def test_extreme_logits(sizes, dtype):
    """Weights scaled so logits are ~1e4: no overflow, no NaN; the loss is the clipped
    value the reference gives."""
    rng = np.random.default_rng(len(sizes))
    n = 2000
    X = rng.standard_normal((n, sizes[0]))
    base = make_model(sizes, np.float64, seed=7)
    z = ref.mlp_logits(sizes, base.params, X)
    # ReLU nets are positively homogeneous in (W, b) per layer: scaling the last layer
    # scales the logits.
    layers = ref.mlp_params_split(sizes, base.params.copy())
    k = 1e4 / np.median(np.abs(z))
    layers[-1] = (layers[-1][0] * k, layers[-1][1] * k)
    model = fastnn.MLP(sizes, dtype=dtype)
    model.params = ref.mlp_params_join(layers)
    y = rng.integers(0, sizes[-1], n)

    logits = ref.mlp_logits(sizes, model.params, X)
    assert 3e3 < np.median(np.abs(logits)) < 3e4
    p_ref = ref.softmax(logits)
    p_true = p_ref[np.arange(n), y]
    clipped = (p_true < 1e-7) | (p_true > 1 - 1e-7)
    assert clipped.mean() > 0.9, "test data should put most samples on a clip bound"
    assert (p_true < 1e-7).any() and (p_true > 1 - 1e-7).any()

    p = model.forward(X)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=0, atol=1e-6)
    loss, acc = model.evaluate(X, y)
    assert np.isfinite(loss)
    check_mlp(model, X, y)

    # Per sample, on a clip bound the loss is exactly that bound (in the model's dtype).
    lo = -np.log(np.float64(dtype(1 - 1e-7)))
    hi = -np.log(np.float64(dtype(1e-7)))
    for mask, value in [(p_true > 1 - 1e-7, lo), (p_true < 1e-7, hi)]:
        sub_loss, _ = model.evaluate(X[mask], y[mask])
        ref_loss, _ = ref.mlp_loss(sizes, model.params, X[mask], y[mask])
        np.testing.assert_allclose(ref_loss, value, rtol=1e-12)
        ref.assert_close(sub_loss, value, dtype, msg="loss on a clip bound")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_loss_clip_bounds_exact(dtype):
    """A 2-class net with logits +-1e4: every sample is certainly right or certainly
    wrong, so the mean loss is a known mix of -log(1 - 1e-7) and -log(1e-7) (bounds
    rounded to the model's dtype, as np.clip does)."""
    model = fastnn.MLP([2, 2], dtype=dtype)
    W = np.array([[1e4, -1e4], [-1e4, 1e4]])
    model.params = ref.mlp_params_join([(W, np.zeros(2))])
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    lo = -np.log(np.float64(dtype(1 - 1e-7)))
    hi = -np.log(np.float64(dtype(1e-7)))
    for y, expected in [([0, 1, 0, 1], lo), ([1, 0, 1, 0], hi), ([0, 0, 1, 1], (lo + hi) / 2)]:
        y = np.array(y)
        loss, acc = model.evaluate(X, y)
        ref.assert_close(loss, expected, dtype, msg="loss on the clip bounds")
        np.testing.assert_allclose(ref.mlp_loss([2, 2], model.params, X, y)[0], expected,
                                   rtol=1e-12)
        assert acc == np.mean(y == [0, 1, 0, 1])
    p = model.forward(X)
    np.testing.assert_array_equal(p, [[1, 0], [0, 1], [1, 0], [0, 1]])


# --- exact ties: np.argmax picks the first maximum ----------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_ties_resolve_to_first_index(dtype):
    """All-zero parameters make every logit 0: np.argmax (the notebook's accuracy rule)
    predicts class 0 for every sample, so exactly the samples labelled 0 are correct.
    predict, evaluate's accuracy and fastnn.accuracy must all follow that rule."""
    model = fastnn.MLP([2, 5, 3], dtype=dtype)
    model.params = np.zeros(model.n_params)
    X = np.random.default_rng(0).standard_normal((6, 2))
    y = np.array([0, 0, 1, 2, 2, 2])
    p = model.forward(X)
    expected = ref.accuracy(p, y)
    assert expected == 2 / 6
    np.testing.assert_array_equal(model.predict(X), np.zeros(6, dtype=np.int64))
    assert fastnn.accuracy(p, y) == expected
    assert model.evaluate(X, y)[1] == expected
    assert model.accuracy(X, y) == expected


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_partial_ties_resolve_to_first_index(dtype):
    """Classes 1 and 3 have identical weights and biases (so bit-identical logits) and
    are the maximum; class 1 wins like np.argmax.  Class 0 is always below."""
    rng = np.random.default_rng(1)
    W = rng.standard_normal((3, 4))
    W[:, 0] = -10
    W[:, 3] = W[:, 1]
    W[:, 2] = W[:, 1] - 1
    b = np.array([0.0, 0.5, 0.5, 0.5])
    model = fastnn.MLP([3, 4], dtype=dtype)
    model.params = ref.mlp_params_join([(W, b)])
    X = np.abs(rng.standard_normal((8, 3)))
    y = np.array([1, 3, 1, 3, 0, 2, 1, 1])  # last-index ties would give 2/8
    np.testing.assert_array_equal(model.predict(X), np.ones(8, dtype=np.int64))
    p = model.forward(X)
    np.testing.assert_array_equal(p[:, 1], p[:, 3])
    expected = ref.accuracy(p, y)
    assert expected == 4 / 8
    assert fastnn.accuracy(p, y) == expected
    assert model.evaluate(X, y)[1] == expected


# --- the notebook API vs the notebook's classes ----------------------------------------------

FLOAT_OR_INT = [np.float32, np.float64, np.int8, np.int32, np.int64]


def run_layer(layer, x):
    layer.forward(x)
    return layer.output


def set_params(layers, W, b):
    for layer in layers:
        layer.weights = W.copy()
        layer.biases = b.copy()


def check_dense(fast, slow, x):
    out, expected = run_layer(fast, x), run_layer(slow, x)
    assert out.dtype == expected.dtype, (out.dtype, expected.dtype, x.dtype,
                                         np.asarray(fast.weights).dtype,
                                         np.asarray(fast.biases).dtype)
    ref.assert_close(out, expected, ref.dot_dtype(x, slow.weights),
                     scale=ref.dense_scale(x, slow.weights, slow.biases), msg="Dense_Layer")
    return expected


@settings(SETTINGS, max_examples=200)
@given(
    n=st.integers(1, 200),
    d=st.integers(1, 64),
    h=st.integers(1, 64),
    c=st.integers(2, 20),
    x_dtype=st.sampled_from(FLOAT_OR_INT),
    w_dtypes=st.tuples(*[st.sampled_from(DTYPES)] * 4),
    layout=st.sampled_from(["C", "F", "strided"]),
    bias_1d=st.booleans(),
    magnitude=st.sampled_from([0.01, 1.0, 100.0, 1e4]),
    onehot=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_notebook_classes_match_reference(n, d, h, c, x_dtype, w_dtypes, layout, bias_1d,
                                          magnitude, onehot, seed):
    """The notebook's pipeline, stage by stage, each fastnn class fed the same input as
    the notebook's class: same dtype (NumPy promotion of np.dot(x, w) + b, including mixed
    float32/float64 weights and biases), values within tolerance."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * 3
    if np.dtype(x_dtype).kind == "i":
        x = np.round(x)
    x = x.astype(x_dtype)
    if layout == "F":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = np.repeat(np.repeat(x, 2, axis=0), 3, axis=1)[::2, ::3]

    def params(a, b, wdt, bdt, scale):
        W = (rng.standard_normal((a, b)) * scale / np.sqrt(a)).astype(wdt)
        bias = (rng.standard_normal((1, b)) * 0.1 * scale).astype(bdt)
        return W, (bias.reshape(b) if bias_1d else bias)

    dense1, dense1_ref = fastnn.Dense_Layer(d, h), ref.Dense_Layer(d, h)
    set_params([dense1, dense1_ref], *params(d, h, w_dtypes[0], w_dtypes[1], 1.0))
    dense2, dense2_ref = fastnn.Dense_Layer(h, c), ref.Dense_Layer(h, c)
    set_params([dense2, dense2_ref], *params(h, c, w_dtypes[2], w_dtypes[3], magnitude))

    a1 = check_dense(dense1, dense1_ref, x)

    relu, relu_ref = fastnn.Activation_Relu(), ref.Activation_Relu()
    r, r_ref = run_layer(relu, a1), run_layer(relu_ref, a1)
    assert r.dtype == r_ref.dtype
    np.testing.assert_array_equal(r, r_ref)

    z = check_dense(dense2, dense2_ref, r_ref)

    soft, soft_ref = fastnn.Activation_Softmax(), ref.Activation_Softmax()
    p, p_ref = run_layer(soft, z), run_layer(soft_ref, z)
    assert p.dtype == p_ref.dtype
    ref.assert_probs_close(p, p_ref, p.dtype, scale=ref.softmax_scale(z),
                           msg="Activation_Softmax")

    y = rng.integers(0, c, n)
    y_in = np.eye(c, dtype=np.int64)[y] if onehot else y
    loss, loss_ref = fastnn.Loss_CategoricalCrossentropy(), ref.Loss_CategoricalCrossentropy()
    value, expected = loss.forward(p_ref, y_in), loss_ref.forward(p_ref, y_in)
    assert type(value) is type(expected), (type(value), type(expected))
    ref.assert_close(value, expected, p_ref.dtype, msg="Loss_CategoricalCrossentropy")
    assert loss.calculate(p_ref, y_in) == value
    ref.assert_close(value, ref.crossentropy(p_ref, y), p_ref.dtype, msg="crossentropy helper")

    # Same probabilities, same argmax rule: identical, ties included.
    assert fastnn.accuracy(p_ref, y_in) == ref.accuracy(p_ref, y)


@pytest.mark.parametrize("x_dt", [np.float32, np.float64, np.int8, np.int32, np.int64])
@pytest.mark.parametrize("w_dt", DTYPES)
@pytest.mark.parametrize("b_dt", DTYPES)
def test_dense_mixed_dtypes_follow_numpy(x_dt, w_dt, b_dt):
    """Output dtype is NumPy's for np.dot(x, w) + b; the values match the notebook's."""
    rng = np.random.default_rng(0)
    x = rng.integers(-4, 5, (7, 5)).astype(x_dt)
    fast, slow = fastnn.Dense_Layer(5, 3), ref.Dense_Layer(5, 3)
    set_params([fast, slow], rng.standard_normal((5, 3)).astype(w_dt),
               rng.standard_normal((1, 3)).astype(b_dt))
    out = check_dense(fast, slow, x)
    assert out.dtype == np.result_type(np.dot(x[:1], slow.weights), slow.biases)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_dense_reads_weights_afresh(dtype):
    """Users reassign and mutate weights/biases between forward calls (the notebook's
    search does both): every forward uses the current values, and earlier outputs are
    not overwritten."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 4)).astype(dtype)
    fast, slow = fastnn.Dense_Layer(4, 3), ref.Dense_Layer(4, 3)
    set_params([fast, slow], fast.weights.astype(dtype), fast.biases.astype(dtype))
    first = check_dense(fast, slow, x)
    first_fast = fast.output.copy()
    kept = fast.output

    steps = [
        # the notebook's in-place perturbation
        lambda L: L.weights.__iadd__((0.5 * rng.standard_normal((4, 3))).astype(dtype)),
        lambda L: L.biases.__iadd__((0.5 * rng.random((1, 3))).astype(dtype)),
        # element writes
        lambda L: L.weights.__setitem__((1, 2), dtype(7.0)),
        lambda L: L.biases.__setitem__((0, 0), dtype(-3.0)),
        # reassignment, including a dtype change and other layouts / shapes
        lambda L: setattr(L, "weights", np.asfortranarray(rng.standard_normal((4, 3)))),
        lambda L: setattr(L, "biases", rng.standard_normal(3).astype(np.float32)),
        lambda L: setattr(L, "weights", rng.standard_normal((3, 4)).astype(dtype).T),
        lambda L: setattr(L, "biases", rng.standard_normal((1, 3)).astype(dtype)),
    ]
    for step in steps:
        state = rng.bit_generator.state
        step(fast)
        rng.bit_generator.state = state  # the same random draws for both
        step(slow)
        np.testing.assert_array_equal(fast.weights, slow.weights)
        out = check_dense(fast, slow, x)
        assert not np.array_equal(out, first)  # the change is visible
    np.testing.assert_array_equal(kept, first_fast)  # an old output is never reused


def test_notebook_pipeline_end_to_end():
    """The seed notebook's cell, both ways, with the notebook's weights."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 2)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    fast = [fastnn.Dense_Layer(2, 3), fastnn.Activation_Relu(), fastnn.Dense_Layer(3, 3),
            fastnn.Activation_Softmax()]
    slow = [ref.Dense_Layer(2, 3), ref.Activation_Relu(), ref.Dense_Layer(3, 3),
            ref.Activation_Softmax()]
    for i in (0, 2):
        W = (0.5 * rng.standard_normal(fast[i].weights.shape)).astype(np.float32)
        b = (0.5 * rng.random((1, 3))).astype(np.float32)
        set_params([fast[i], slow[i]], W, b)
    a, a_ref = X, X
    for f, s in zip(fast, slow, strict=True):
        a, a_ref = run_layer(f, a), run_layer(s, a_ref)
        assert a.dtype == a_ref.dtype == np.float32
    scale = 2 * np.max(np.abs(slow[2].output), axis=1) + 1
    ref.assert_probs_close(a, a_ref, np.float32, scale=scale)
    loss = fastnn.Loss_CategoricalCrossentropy().forward(a, y)
    ref.assert_close(loss, ref.Loss_CategoricalCrossentropy().forward(a_ref, y), np.float32,
                     scale=np.mean(scale))
    assert fastnn.accuracy(a, y) == pytest.approx(ref.accuracy(a_ref, y), abs=2 / 300)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_softmax_extreme_inputs(dtype):
    """|z| ~ 1e4 (and a row of equal values): finite, rows sum to 1, matches NumPy."""
    rng = np.random.default_rng(11)
    z = (rng.standard_normal((200, 10)) * 1e4).astype(dtype)
    z[0] = dtype(3e4)
    z[1, :] = -dtype(3e4)
    soft, soft_ref = fastnn.Activation_Softmax(), ref.Activation_Softmax()
    p, p_ref = run_layer(soft, z), run_layer(soft_ref, z)
    assert p.dtype == p_ref.dtype == dtype
    ref.assert_probs_close(p, p_ref, dtype, scale=ref.softmax_scale(z))
    np.testing.assert_array_equal(p[0], np.full(10, dtype(0.1)))
    loss = fastnn.Loss_CategoricalCrossentropy().forward(p, rng.integers(0, 10, 200))
    assert np.isfinite(loss)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_loss_layer_clips_like_numpy(dtype):
    """Probabilities of exactly 0 and 1 hit the clip bounds, rounded to p's dtype."""
    p = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=dtype)
    for y in ([0, 1, 0], [1, 0, 1], [0, 0, 0]):
        y = np.array(y)
        value = fastnn.Loss_CategoricalCrossentropy().forward(p, y)
        expected = ref.Loss_CategoricalCrossentropy().forward(p, y)
        assert type(value) is type(expected) is dtype
        ref.assert_close(value, expected, dtype)
        ref.assert_close(value, ref.crossentropy(p, y), dtype)


# --- the shared registry ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(cases.CASES))
def test_registry_case(name):
    case = cases.CASES[name]
    case.check(case.fastnn(), case.reference())


def test_registry_covers_every_operation():
    ops = {c.op for c in cases.CASES.values()}
    assert ops == {"dense", "relu", "softmax", "crossentropy", "accuracy", "loss", "forward",
                   "predict"}
    for op in ops:
        assert {c.dtype for c in cases.CASES.values() if c.op == op} == set(DTYPES)


# --- the comparison helpers can fail ------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_checks_catch_small_errors(dtype):
    """The tolerances are tight enough to see a small real error: a logit off by
    1e-3 (float32) / 1e-9 (float64), a loss off by 1e-4 / 1e-10 relative, one confident
    prediction flipped, a bias forgotten in a dense layer."""
    case = cases.CASES[f"forward|{np.dtype(dtype).name}|3000x2-64-3"]
    d = case.data()
    logits = ref.mlp_logits(d["sizes"], d["params"], d["X"])
    p = case.fastnn()
    case.check(p, case.reference())
    delta = 1e-3 if dtype is np.float32 else 1e-9
    wrong = logits.copy()
    wrong[5, 1] += delta
    with pytest.raises(AssertionError):
        case.check(ref.softmax(wrong).astype(dtype), case.reference())

    loss_case = cases.CASES[f"loss|{np.dtype(dtype).name}|3000x2-64-3"]
    loss, acc = loss_case.fastnn()
    rel = 1e-4 if dtype is np.float32 else 1e-10
    with pytest.raises(AssertionError):
        loss_case.check((loss * (1 + rel), acc), loss_case.reference())
    with pytest.raises(AssertionError):
        loss_case.check((loss, acc + 1 / 3000), loss_case.reference())

    pred_case = cases.CASES[f"predict|{np.dtype(dtype).name}|3000x2-64-3"]
    pred = pred_case.fastnn()
    margins = ref.top2_margin(logits)
    i = int(np.argmax(margins))
    pred[i] = (pred[i] + 1) % logits.shape[1]
    with pytest.raises(AssertionError):
        pred_case.check(pred, pred_case.reference())

    dense_case = cases.CASES[f"dense|{np.dtype(dtype).name}|3000x64->64"]
    dd = dense_case.data()
    no_bias = np.dot(dd["X"], dd["W"]).astype(dtype)
    with pytest.raises(AssertionError):
        dense_case.check(no_bias, dense_case.reference())


# --- MLP initialisation and parameter layout ---------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_mlp_init_matches_notebook_layers(global_rng, seed, dtype):
    """np.random.seed(s); MLP([2, 3, 3]) has the weights of Dense_Layer(2, 3) and
    Dense_Layer(3, 3) drawn after the same seed, zero biases, and leaves the global RNG
    where the notebook's two layers leave it."""
    np.random.seed(seed)
    l1, l2 = ref.Dense_Layer(2, 3), ref.Dense_Layer(3, 3)
    after_layers = np.random.get_state()[1].copy()
    np.random.seed(seed)
    model = fastnn.MLP([2, 3, 3], dtype=dtype)
    after_model = np.random.get_state()[1].copy()
    np.testing.assert_array_equal(after_model, after_layers)
    for layer, expected in zip(model.layers, (l1, l2), strict=True):
        np.testing.assert_array_equal(layer.weights, expected.weights.astype(dtype))
        np.testing.assert_array_equal(layer.biases, np.zeros((1, 3), dtype=dtype))
    # fastnn's own Dense_Layer draws the same numbers too.
    np.random.seed(seed)
    f1, f2 = fastnn.Dense_Layer(2, 3), fastnn.Dense_Layer(3, 3)
    np.testing.assert_array_equal(f1.weights, l1.weights)
    np.testing.assert_array_equal(f2.weights, l2.weights)
    np.testing.assert_array_equal(f1.biases, l1.biases)


def test_mlp_int_seed_is_reproducible_and_leaves_global_rng_alone(global_rng):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = fastnn.MLP([4, 8, 3], seed=5)
    b = fastnn.MLP([4, 8, 3], seed=5)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, fastnn.MLP([4, 8, 3], seed=6).params)
    assert np.all(np.abs(a.layers[0].weights) < 0.1)  # 0.01 * N(0, 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_mlp_params_layout(dtype):
    """params is the flat vector of the reference's layout, shared with the layer views,
    and copy() is independent."""
    sizes = [3, 5, 4, 2]
    model = make_model(sizes, dtype, seed=9)
    assert model.n_params == ref.mlp_param_count(sizes) == model.params.shape[0]
    for layer, (W, b) in zip(model.layers, ref.mlp_params_split(sizes, model.params),
                             strict=True):
        np.testing.assert_array_equal(layer.weights, W)
        np.testing.assert_array_equal(layer.biases, b.reshape(1, -1))
    X = np.random.default_rng(0).standard_normal((10, 3))
    before = model.forward(X)
    twin = model.copy()
    model.layers[1].biases = np.full(4, 100.0)
    assert model.params[ref.mlp_param_count(sizes[:3]) - 1] == 100.0
    np.testing.assert_array_equal(twin.forward(X), before)
    check_mlp(model, X, np.zeros(10, dtype=np.int64))
    model.params = twin.params
    np.testing.assert_array_equal(model.forward(X), before)


# --- dtype policy: one test per public function ------------------------------------------

# input dtype -> the float dtype a single array is computed in (fastnn._validation):
# float32/float64 kept, float16 -> float32, integers and bools -> float64.
CAST = {np.float32: np.float32, np.float64: np.float64, np.float16: np.float32,
        np.int8: np.float64, np.uint8: np.float64, np.int16: np.float64, np.bool_: np.float64,
        np.int32: np.float64, np.int64: np.float64}


@pytest.mark.parametrize("x_dt", list(CAST), ids=lambda d: d.__name__)
def test_dtype_policy_activation_relu(x_dt):
    layer = fastnn.Activation_Relu()
    layer.forward(np.ones((2, 3), dtype=x_dt))
    assert layer.output.dtype == CAST[x_dt]


@pytest.mark.parametrize("x_dt", list(CAST), ids=lambda d: d.__name__)
def test_dtype_policy_activation_softmax(x_dt):
    layer = fastnn.Activation_Softmax()
    layer.forward(np.ones((2, 3), dtype=x_dt))
    assert layer.output.dtype == CAST[x_dt]


@pytest.mark.parametrize("x_dt,w_dt,b_dt,out_dt", [
    (np.float32, np.float32, np.float32, np.float32),
    (np.float32, np.float32, np.float64, np.float64),  # the notebook's zeros() biases
    (np.float32, np.float64, np.float32, np.float64),
    (np.float64, np.float32, np.float32, np.float64),
    (np.float64, np.float64, np.float64, np.float64),
    (np.int64, np.float32, np.float32, np.float64),  # NumPy: int64 with float32 -> float64
    (np.int8, np.float32, np.float32, np.float32),  # NumPy: int8 with float32 -> float32
    (np.int8, np.float64, np.float32, np.float64),
    (np.float16, np.float16, np.float16, np.float32),  # never below float32
])
def test_dtype_policy_dense_layer(x_dt, w_dt, b_dt, out_dt):
    """NumPy's promotion of np.dot(x, w) + b (the notebook's expression), except that
    results are never below float32."""
    layer = fastnn.Dense_Layer(3, 2)
    layer.weights = layer.weights.astype(w_dt)
    layer.biases = layer.biases.astype(b_dt)
    layer.forward(np.ones((4, 3), dtype=x_dt))
    assert layer.output.dtype == out_dt


@pytest.mark.parametrize("p_dt", [np.float32, np.float64, np.int64],
                         ids=lambda d: d.__name__)
def test_dtype_policy_loss(p_dt):
    p = np.eye(3, dtype=p_dt)
    value = fastnn.Loss_CategoricalCrossentropy().forward(p, np.arange(3))
    assert type(value) is CAST[p_dt]


@pytest.mark.parametrize("p_dt", [np.float32, np.float64, np.int64],
                         ids=lambda d: d.__name__)
def test_dtype_policy_accuracy(p_dt):
    value = fastnn.accuracy(np.eye(3, dtype=p_dt), np.arange(3))
    assert type(value) is float and value == 1.0


MLP_X_DTYPES = [np.float32, np.float64, np.int64, np.int8]


def small_mlp(dtype):
    return fastnn.MLP([3, 4, 2], seed=0, dtype=dtype), np.array([0, 1, 0, 1, 1])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("x_dt", MLP_X_DTYPES, ids=lambda d: d.__name__)
def test_dtype_policy_mlp_forward(dtype, x_dt):
    """Whatever X is, the model computes in its own dtype."""
    model, _ = small_mlp(dtype)
    assert model.forward(np.ones((5, 3), dtype=x_dt)).dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("x_dt", MLP_X_DTYPES, ids=lambda d: d.__name__)
def test_dtype_policy_mlp_predict(dtype, x_dt):
    model, _ = small_mlp(dtype)
    assert model.predict(np.ones((5, 3), dtype=x_dt)).dtype == np.int64


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("x_dt", MLP_X_DTYPES, ids=lambda d: d.__name__)
def test_dtype_policy_mlp_evaluate_loss_accuracy(dtype, x_dt):
    """Python floats, as the notebook's float(np.mean(...)) would print."""
    model, y = small_mlp(dtype)
    X = np.ones((5, 3), dtype=x_dt)
    loss, acc = model.evaluate(X, y)
    assert type(loss) is float and type(acc) is float
    assert type(model.loss(X, y)) is float and type(model.accuracy(X, y)) is float


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_dtype_policy_mlp_params(dtype):
    """params keep the model's dtype, whatever is assigned."""
    model, _ = small_mlp(dtype)
    assert model.params.dtype == dtype
    model.params = np.arange(model.n_params, dtype=np.float64) / 7
    assert model.params.dtype == dtype
    np.testing.assert_array_equal(model.params, (np.arange(model.n_params) / 7).astype(dtype))
