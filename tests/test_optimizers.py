"""The drop-in optimizers against the book's (``tests/book.py``).

* Updates bit for bit: the same arithmetic in the same order (``kernels/optim.py`` is
  compiled without FMA contraction), float32 and float64, every optimizer, several steps,
  weights, biases and every state array; mixed dtypes as the book's statements give them.
* Learning-rate decay printed digit for digit; defaults, attributes, state creation.
* Mixing: the book's optimizer on fastnn's layers and fastnn's on the book's.
* The issue's step-parity bar: from the same state (weights, biases, momentums, caches,
  iterations, NumPy's RNG state) one forward/backward/update with fastnn's classes
  matches the book's -- loss within 1e-5 relative, gradients, parameters and optimizer
  state within 1e-4 norm-relative -- for every optimizer, with L1 + L2 and dropout.
* ``optimizer_settings`` on these and the book's objects; bad hyperparameters and bad
  layers refused with a ValueError/TypeError naming them.

In process, plain NumPy; the ``nnfs.init()`` variants run in ``test_dropin_training.py``.
"""

import book
import numpy as np
import pytest

import fastnn
from fastnn.kernels import optim
from fastnn.optimizers import HYPERPARAMETERS, KINDS, OPTIMIZERS, optimizer_settings

F32, F64 = np.float32, np.float64
NAMES = ("Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam")
STATE = ("weight_momentums", "weight_cache", "bias_momentums", "bias_cache")

#: constructor arguments per optimizer: defaults, decay, every hyperparameter
ARGS = {
    "Optimizer_SGD": [{}, dict(learning_rate=0.5, decay=1e-3),
                      dict(learning_rate=0.1, decay=1e-2, momentum=0.9)],
    "Optimizer_Adagrad": [{}, dict(learning_rate=0.5, decay=1e-4, epsilon=1e-5)],
    "Optimizer_RMSprop": [{}, dict(learning_rate=0.02, decay=1e-5, rho=0.999, epsilon=1e-6)],
    "Optimizer_Adam": [{}, dict(learning_rate=0.05, decay=5e-7),
                       dict(learning_rate=0.02, decay=5e-5, beta_1=0.8, beta_2=0.99,
                            epsilon=1e-5)],
}
CASES = [(name, kw) for name in NAMES for kw in ARGS[name]]


def case_id(case):
    name, kw = case
    return name.split("_")[1] + "".join(f"-{k}={v}" for k, v in kw.items())


class Params:
    """A bare layer: the four arrays an optimizer reads (and the state it leaves)."""

    def __init__(self, rng, shape, w_dtype, g_dtype):
        self.weights = rng.standard_normal(shape).astype(w_dtype)
        self.biases = rng.standard_normal((1, shape[1])).astype(w_dtype)
        self.dweights = np.zeros(shape, g_dtype)
        self.dbiases = np.zeros((1, shape[1]), g_dtype)

    def copy(self):
        other = Params.__new__(Params)
        other.__dict__ = {k: v.copy() for k, v in self.__dict__.items()}
        return other


def new_gradients(rng, *layers):
    g = rng.standard_normal(layers[0].dweights.shape) * 0.1
    g[0, 0] = 0.0  # a zero gradient (Adam divides by sqrt(0) + eps there)
    b = rng.standard_normal(layers[0].dbiases.shape)
    for layer in layers:
        layer.dweights = g.astype(layer.dweights.dtype)
        layer.dbiases = b.astype(layer.dbiases.dtype)


def assert_layers_equal(fast, slow, exact, what="", rtol=2e-6):
    for attr in ("weights", "biases", *STATE):
        assert hasattr(fast, attr) == hasattr(slow, attr), (what, attr)
        if not hasattr(slow, attr):
            continue
        f, s = getattr(fast, attr), getattr(slow, attr)
        assert f.dtype == s.dtype and f.shape == s.shape, (what, attr, f.dtype, s.dtype)
        if exact:
            np.testing.assert_array_equal(f, s, err_msg=f"{what} {attr}")
        else:
            np.testing.assert_allclose(f, s, rtol=rtol, atol=1e-9, err_msg=f"{what} {attr}")


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_update_is_the_books_bit_for_bit(case, dtype):
    name, kw = case
    rng = np.random.default_rng(1)
    slow_layer = Params(rng, (64, 3), dtype, dtype)
    fast_layer = slow_layer.copy()
    fast, slow = getattr(fastnn, name)(**kw), getattr(book, name)(**kw)
    for step in range(6):
        new_gradients(rng, fast_layer, slow_layer)
        for opt, layer in ((fast, fast_layer), (slow, slow_layer)):
            opt.pre_update_params()
            opt.update_params(layer)
            opt.post_update_params()
        assert fast.current_learning_rate == slow.current_learning_rate
        assert fast.iterations == slow.iterations == step + 1
        assert_layers_equal(fast_layer, slow_layer, exact=True, what=f"step {step}")


@pytest.mark.parametrize("dtypes", [(F32, F64), (F64, F32)], ids=["f32w-f64g", "f64w-f32g"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_mixed_dtypes_as_the_books_statements_give_them(case, dtypes):
    """Parameters keep their dtype (updated in place, like ``+=``); the state takes the
    dtype of the book's expressions (Adagrad's ``cache +=`` keeps the cache's).  Values
    to float32 rounding: the update is computed in float64 throughout, where the book
    rounds some intermediates (Adagrad's float32 cache) to float32."""
    name, kw = case
    rng = np.random.default_rng(2)
    slow_layer = Params(rng, (5, 4), *dtypes)
    fast_layer = slow_layer.copy()
    fast, slow = getattr(fastnn, name)(**kw), getattr(book, name)(**kw)
    for _ in range(4):
        new_gradients(rng, fast_layer, slow_layer)
        for opt, layer in ((fast, fast_layer), (slow, slow_layer)):
            opt.pre_update_params()
            opt.update_params(layer)
            opt.post_update_params()
        assert_layers_equal(fast_layer, slow_layer, exact=False, rtol=2e-5)
    assert fast_layer.weights.dtype == dtypes[0]


@pytest.mark.parametrize("learning_rate", [1.0, 0.05, 0.001, 0.02, 1])
@pytest.mark.parametrize("decay", [0, 0.0, 5e-7, 5e-5, 1e-3, 0.1, 1.0, 3])
def test_printed_learning_rates_are_the_books_digit_for_digit(learning_rate, decay):
    for name in NAMES:
        fast = getattr(fastnn, name)(learning_rate=learning_rate, decay=decay)
        slow = getattr(book, name)(learning_rate=learning_rate, decay=decay)
        for _ in range(300):
            fast.pre_update_params()
            slow.pre_update_params()
            assert f"lr: {fast.current_learning_rate}" == f"lr: {slow.current_learning_rate}"
            assert type(fast.current_learning_rate) is type(slow.current_learning_rate)
            fast.post_update_params()
            slow.post_update_params()
        # iterations is a plain attribute: set, it moves the schedule as the book's does
        fast.iterations = slow.iterations = 10_001
        fast.pre_update_params()
        slow.pre_update_params()
        assert repr(fast.current_learning_rate) == repr(slow.current_learning_rate)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_attributes_are_the_books(name):
    fast, slow = getattr(fastnn, name)(), getattr(book, name)()
    assert vars(fast) == vars(slow)
    kw = {"learning_rate": 0.3, "decay": 0.01}
    kw.update({h: 0.5 for h in HYPERPARAMETERS[fast.kind]})
    fast, slow = getattr(fastnn, name)(**kw), getattr(book, name)(**kw)
    assert vars(fast) == vars(slow)
    assert repr(fast).startswith(f"{name}(learning_rate=0.3, decay=0.01")


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_state_is_created_when_the_book_creates_it(momentum):
    rng = np.random.default_rng(3)
    sgd = fastnn.Optimizer_SGD(momentum=momentum)
    layer = Params(rng, (3, 2), F32, F32)
    sgd.update_params(layer)
    created = {a for a in STATE if hasattr(layer, a)}
    assert created == ({"weight_momentums", "bias_momentums"} if momentum else set())
    # Adam creates all four when the layer has no weight_cache (momentums included)
    fastnn.Optimizer_Adam().update_params(layer)
    assert all(hasattr(layer, a) for a in STATE)
    assert all(getattr(layer, a).dtype == F32 for a in STATE)
    # Adagrad and RMSprop create only the caches
    for cls in (fastnn.Optimizer_Adagrad, fastnn.Optimizer_RMSprop):
        other = Params(rng, (3, 2), F64, F64)
        cls().update_params(other)
        assert {a for a in STATE if hasattr(other, a)} == {"weight_cache", "bias_cache"}


def test_optimizers_and_layers_mix_with_the_books():
    """The book's optimizer on fastnn's layers, fastnn's on the book's, and a layer
    handed from one optimizer to the other: the book's numbers bit for bit."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 2))
    y = rng.integers(0, 3, 50)
    runs = {}
    for combo in ("book", "fast layers", "fast optimizer", "fastnn"):
        np.random.seed(1)
        layers_from = fastnn if combo in ("fast layers", "fastnn") else book
        opt_from = fastnn if combo in ("fast optimizer", "fastnn") else book
        d1, d2 = layers_from.Layer_Dense(2, 8), layers_from.Layer_Dense(8, 3)
        relu = layers_from.Activation_ReLU()
        head = layers_from.Activation_Softmax_Loss_CategoricalCrossentropy()
        opt = opt_from.Optimizer_Adam(learning_rate=0.05, decay=1e-3)
        for step in range(5):
            if step == 3:  # hand the layers to the other library's SGD with momentum
                other = book if opt_from is fastnn else fastnn
                opt = other.Optimizer_SGD(learning_rate=0.1, momentum=0.5)
            d1.forward(X)
            relu.forward(d1.output)
            d2.forward(relu.output)
            head.forward(d2.output, y)
            head.backward(head.output, y)
            d2.backward(head.dinputs)
            relu.backward(d2.dinputs)
            d1.backward(relu.dinputs)
            opt.pre_update_params()
            opt.update_params(d1)
            opt.update_params(d2)
            opt.post_update_params()
        runs[combo] = [getattr(layer, a) for layer in (d1, d2) for a in ("weights", "biases",
                                                                         *STATE)]
    for combo, arrays in runs.items():
        for a, b in zip(arrays, runs["book"], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=combo)


COMPONENTS = ("dense1", "relu", "dropout", "dense2", "head", "optimizer")


def mixed_run(choice, steps=3):
    """The chapter 15 network, each component from the library ``choice`` names
    (``"fastnn"``/``"book"``; ``"head"`` also swaps the combined class's softmax and
    loss for the other library's), float64; every parameter and state array after
    ``steps`` updates."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((60, 2))
    y = rng.integers(0, 3, 60)
    lib = {c: (fastnn if choice[c] == "fastnn" else book) for c in COMPONENTS}
    np.random.seed(2)
    d1 = lib["dense1"].Layer_Dense(2, 16, weight_regularizer_l1=1e-3,
                                   weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)
    relu, drop = lib["relu"].Activation_ReLU(), lib["dropout"].Layer_Dropout(0.2)
    d2 = lib["dense2"].Layer_Dense(16, 3, weight_regularizer_l2=1e-3)
    head = lib["head"].Activation_Softmax_Loss_CategoricalCrossentropy()
    other = book if lib["head"] is fastnn else fastnn
    head.activation = other.Activation_Softmax()
    head.loss = other.Loss_CategoricalCrossentropy()
    opt = lib["optimizer"].Optimizer_Adam(learning_rate=0.05, decay=1e-3)
    for _ in range(steps):
        d1.forward(X)
        relu.forward(d1.output)
        drop.forward(relu.output)
        d2.forward(drop.output)
        loss = head.forward(d2.output, y) + head.loss.regularization_loss(d1) \
            + head.loss.regularization_loss(d2)
        head.backward(head.output, y)
        d2.backward(head.dinputs)
        drop.backward(d2.dinputs)
        relu.backward(drop.dinputs)
        d1.backward(relu.dinputs)
        opt.pre_update_params()
        opt.update_params(d1)
        opt.update_params(d2)
        opt.post_update_params()
    return float(loss), [getattr(layer, a) for layer in (d1, d2)
                         for a in ("weights", "biases", *STATE)]


def test_any_mix_of_fastnn_and_book_classes_trains_alike():
    """All 64 ways of taking each of the six components from fastnn or the book train
    like the book's classes alone (float64: the same numbers to rounding)."""
    want_loss, want = mixed_run(dict.fromkeys(COMPONENTS, "book"))
    for bits in range(2 ** len(COMPONENTS)):
        choice = {c: ("fastnn" if bits >> i & 1 else "book") for i, c in enumerate(COMPONENTS)}
        loss, arrays = mixed_run(choice)
        assert loss == pytest.approx(want_loss, rel=1e-12), choice
        for a, b in zip(arrays, want, strict=True):
            assert a.dtype == b.dtype, choice
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14, err_msg=str(choice))


# --- the step-parity bar ------------------------------------------------------------------


def norm_rel(a, b):
    a, b = np.asarray(a, F64), np.asarray(b, F64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def step_parity(name, kw, dtype, seed=5):
    """One training step of a 2-16-3 network with L1 + L2, dropout and a prepared
    optimizer state, with fastnn's classes and with the book's: {what: norm-relative
    difference} plus the relative loss difference."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((100, 2)).astype(dtype)
    y = rng.integers(0, 3, 100)
    params = [(rng.standard_normal((2, 16)) * 0.5, rng.standard_normal((1, 16)) * 0.1),
              (rng.standard_normal((16, 3)) * 0.5, rng.standard_normal((1, 3)) * 0.1)]
    state = [{a: np.abs(rng.standard_normal(w.shape if a.startswith("weight") else b.shape))
              * 0.01 for a in STATE} for w, b in params]
    rng_state = np.random.RandomState(seed).get_state()
    results = {}
    for lib in (fastnn, book):
        d1 = lib.Layer_Dense(2, 16, weight_regularizer_l1=1e-3, weight_regularizer_l2=5e-4,
                             bias_regularizer_l1=1e-3, bias_regularizer_l2=5e-4)
        d2 = lib.Layer_Dense(16, 3, weight_regularizer_l2=1e-3)
        for layer, (w, b), st in zip((d1, d2), params, state, strict=True):
            layer.weights, layer.biases = w.astype(dtype), b.astype(dtype)
            for a, v in st.items():
                setattr(layer, a, v.astype(dtype))
        relu, drop = lib.Activation_ReLU(), lib.Layer_Dropout(0.1)
        head = lib.Activation_Softmax_Loss_CategoricalCrossentropy()
        opt = getattr(lib, name)(**kw)
        opt.iterations = 7
        np.random.set_state(rng_state)
        d1.forward(X)
        relu.forward(d1.output)
        drop.forward(relu.output)
        d2.forward(drop.output)
        loss = head.forward(d2.output, y) + head.loss.regularization_loss(d1) \
            + head.loss.regularization_loss(d2)
        head.backward(head.output, y)
        d2.backward(head.dinputs)
        drop.backward(d2.dinputs)
        relu.backward(drop.dinputs)
        d1.backward(relu.dinputs)
        grads = {f"{n}.{a}": getattr(layer, a).copy() for n, layer in (("d1", d1), ("d2", d2))
                 for a in ("dweights", "dbiases", "dinputs")}
        opt.pre_update_params()
        opt.update_params(d1)
        opt.update_params(d2)
        opt.post_update_params()
        after = {f"{n}.{a}": getattr(layer, a) for n, layer in (("d1", d1), ("d2", d2))
                 for a in ("weights", "biases", *STATE) if hasattr(layer, a)}
        results[lib.__name__] = (float(loss), grads, after, drop.binary_mask.copy())
    (fl, fg, fa, fm), (bl, bg, ba, bm) = results["fastnn"], results["book"]
    np.testing.assert_array_equal(fm, bm)  # the same dropout mask
    assert fa.keys() == ba.keys()
    diffs = {k: norm_rel(fg[k], bg[k]) for k in bg}
    diffs.update({k: norm_rel(fa[k], ba[k]) for k in ba})
    return abs(fl - bl) / abs(bl), diffs


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", [(n, ARGS[n][-1]) for n in NAMES], ids=case_id)
def test_step_parity_bar(case, dtype):
    loss_diff, diffs = step_parity(*case, dtype)
    assert loss_diff <= 1e-5, loss_diff
    bad = {k: v for k, v in diffs.items() if not v <= 1e-4}
    assert not bad, bad
    # and far inside it: float64 agrees to rounding
    if dtype is F64:
        assert loss_diff < 1e-12 and max(diffs.values()) < 1e-10, (loss_diff, diffs)


# --- settings for the compiled trainer ------------------------------------------------------


def test_kinds_match_the_kernel_codes():
    assert KINDS == {"sgd": optim.SGD, "adagrad": optim.ADAGRAD, "rmsprop": optim.RMSPROP,
                     "adam": optim.ADAM}
    assert {cls.kind for cls in OPTIMIZERS.values()} == set(KINDS)
    assert fastnn.optimizer_settings is optimizer_settings


@pytest.mark.parametrize("lib", [fastnn, book], ids=["fastnn", "book"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_settings_of_these_and_the_books_optimizers(case, lib):
    name, kw = case
    opt = getattr(lib, name)(**kw)
    for _ in range(3):
        opt.pre_update_params()
        opt.post_update_params()
    opt.pre_update_params()
    settings = optimizer_settings(opt)
    kind = {"Optimizer_SGD": "sgd", "Optimizer_Adagrad": "adagrad",
            "Optimizer_RMSprop": "rmsprop", "Optimizer_Adam": "adam"}[name]
    expected = {"kind": kind, "learning_rate": opt.learning_rate, "decay": opt.decay,
                **{h: getattr(opt, h) for h in HYPERPARAMETERS[kind]},
                "iterations": 3, "current_learning_rate": opt.current_learning_rate}
    assert settings == expected
    assert list(settings) == list(expected)
    assert all(type(v) is float for k, v in settings.items() if k not in ("kind", "iterations"))
    assert type(settings["iterations"]) is int
    if lib is fastnn:
        assert opt.settings() == settings

    class Mine(getattr(lib, name)):  # a user's subclass keeps its kind
        pass

    assert optimizer_settings(Mine(**kw))["kind"] == kind


@pytest.mark.parametrize("attr, value, exc", [
    ("learning_rate", 0, ValueError), ("learning_rate", -0.1, ValueError),
    ("decay", -1e-3, ValueError), ("beta_1", 1.0, ValueError), ("beta_2", 0, ValueError),
    ("epsilon", 0.0, ValueError), ("iterations", -1, ValueError),
    ("iterations", 2.0, TypeError), ("current_learning_rate", np.nan, ValueError),
    ("learning_rate", "0.05", TypeError), ("beta_1", None, TypeError)])
def test_settings_refuse_a_books_optimizer_with_bad_attributes(attr, value, exc):
    opt = book.Optimizer_Adam()
    setattr(opt, attr, value)
    with pytest.raises(exc, match=rf"\b{attr}\b"):
        optimizer_settings(opt)


def test_settings_refuse_a_books_optimizer_without_an_attribute():
    opt = book.Optimizer_RMSprop()
    del opt.rho
    with pytest.raises(ValueError, match=r"\brho\b"):
        optimizer_settings(opt)


@pytest.mark.parametrize("obj", [object(), "adam", None, book.Layer_Dense(2, 3)],
                         ids=["object", "str", "None", "layer"])
def test_settings_refuse_what_is_not_an_optimizer(obj):
    with pytest.raises(TypeError, match=r"\boptimizer\b"):
        optimizer_settings(obj)


# --- bad input -----------------------------------------------------------------------------

BAD_VALUES = {
    "learning_rate": [(0, ValueError), (-0.1, ValueError), (np.nan, ValueError),
                      (np.inf, ValueError), ("0.1", TypeError), (None, TypeError),
                      (True, TypeError), (1j, TypeError)],
    "decay": [(-1e-7, ValueError), (np.nan, ValueError), (np.inf, ValueError),
              ("0", TypeError), (None, TypeError)],
    "momentum": [(-0.1, ValueError), (1.0, ValueError), (1.5, ValueError),
                 (np.nan, ValueError), ("0.9", TypeError)],
    "epsilon": [(0.0, ValueError), (-1e-7, ValueError), (np.inf, ValueError),
                (None, TypeError)],
    "rho": [(0.0, ValueError), (1.0, ValueError), (-0.5, ValueError), (np.nan, ValueError),
            ("0.9", TypeError)],
    "beta_1": [(0.0, ValueError), (1.0, ValueError), (1.1, ValueError), ([0.9], TypeError)],
    "beta_2": [(0.0, ValueError), (1.0, ValueError), (-0.999, ValueError),
               (np.nan, ValueError)],
}
CONSTRUCTOR_CASES = [(name, arg, value, exc) for name in NAMES
                     for arg in ("learning_rate", "decay",
                                 *HYPERPARAMETERS[{"Optimizer_SGD": "sgd",
                                                   "Optimizer_Adagrad": "adagrad",
                                                   "Optimizer_RMSprop": "rmsprop",
                                                   "Optimizer_Adam": "adam"}[name]])
                     for value, exc in BAD_VALUES[arg]]


@pytest.mark.parametrize("name, arg, value, exc", CONSTRUCTOR_CASES,
                         ids=[f"{c[0].split('_')[1]}-{c[1]}={c[2]!r}" for c in CONSTRUCTOR_CASES])
def test_bad_hyperparameters_are_refused_at_construction(name, arg, value, exc):
    with pytest.raises(exc, match=rf"\b{arg}\b") as info:
        getattr(fastnn, name)(**{arg: value})
    assert "numba" not in type(info.value).__module__


def _layer(**arrays):
    rng = np.random.default_rng(6)
    layer = Params(rng, (3, 2), F64, F64)
    new_gradients(rng, layer)
    for k, v in arrays.items():
        setattr(layer, k, v)
    return layer


def _readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


BAD_LAYERS = {
    "no gradients": (lambda: fastnn.Layer_Dense(3, 2), "dweights", ValueError),
    "dweights wrong shape": (lambda: _layer(dweights=np.ones((2, 3))), "dweights", ValueError),
    "dbiases wrong shape": (lambda: _layer(dbiases=np.ones((1, 3))), "dbiases", ValueError),
    "dweights NaN": (lambda: _layer(dweights=np.full((3, 2), np.nan)), "dweights", ValueError),
    "dbiases inf": (lambda: _layer(dbiases=np.full((1, 2), np.inf)), "dbiases", ValueError),
    "dweights float32 NaN": (lambda: _layer(dweights=np.full((3, 2), np.nan, F32)),
                             "dweights", ValueError),
    "dweights strings": (lambda: _layer(dweights=np.full((3, 2), "a")), "dweights", TypeError),
    "dweights list": (lambda: _layer(dweights=[[0.0] * 2] * 3), "dweights", TypeError),
    "weights read-only": (lambda: _layer(weights=_readonly(np.ones((3, 2)))), "weights",
                          ValueError),
    "weights int": (lambda: _layer(weights=np.ones((3, 2), int)), "weights", TypeError),
    "weights None": (lambda: _layer(weights=None), "weights", ValueError),
    "state wrong shape": (lambda: _layer(weight_cache=np.zeros((2, 2)),
                                         weight_momentums=np.zeros((3, 2))),
                          "weight_cache", ValueError),
    "state strings": (lambda: _layer(bias_cache=np.full((1, 2), "x"),
                                     weight_cache=np.zeros((3, 2)),
                                     weight_momentums=np.zeros((3, 2)),
                                     bias_momentums=np.zeros((1, 2))),
                      "bias_cache", TypeError),
}


@pytest.mark.parametrize("case", list(BAD_LAYERS))
def test_update_params_refuses_bad_layers(case):
    make, arg, exc = BAD_LAYERS[case]
    layer = make()
    before = np.array(layer.weights, copy=True) if layer.weights is not None else None
    with pytest.raises(exc, match=rf"\b{arg}\b") as info:
        fastnn.Optimizer_Adam().update_params(layer)
    assert "numba" not in type(info.value).__module__
    if before is not None and case != "weights read-only":
        np.testing.assert_array_equal(layer.weights, before)  # nothing half-written


def test_float32_read_only_gradients_and_strided_weights_work():
    """Gradients that are views or read-only, and weights that are strided views, are
    updated (in place) like the book's."""
    rng = np.random.default_rng(7)
    slow = Params(rng, (4, 3), F32, F32)
    new_gradients(rng, slow)
    big = np.zeros((8, 3), F32)
    big[::2] = slow.weights
    fast = slow.copy()
    fast.weights = big[::2]
    fast.dweights = _readonly(slow.dweights)
    fastnn.Optimizer_Adam(0.1).update_params(fast)
    book.Optimizer_Adam(0.1).update_params(slow)
    np.testing.assert_array_equal(big[::2], slow.weights)  # written through the view
    np.testing.assert_array_equal(fast.weight_cache, slow.weight_cache)
