"""The drop-in layers, activations, losses and accuracies against the book's classes
(``tests/book.py``), call by call: backward passes, losses, dropout, predictions.

* Parity over many shapes, float32/float64 and mixed dtypes: same result dtype as the
  book's NumPy expressions, values within ``reference.TOL`` (scaled by the size of the
  terms summed).  Where fastnn does the book's arithmetic operation for operation -- the
  softmax, ReLU's and the combined softmax + cross-entropy gradients, the bias gradient,
  dropout -- the results are compared bit for bit.
* Finite differences in float64 for every backward pass (L1/L2 and a fixed dropout mask
  included) and for a whole network.
* A bad-input battery: every new argument and method refuses bad input with a
  ValueError/TypeError naming it (never a Numba error, a crash or a silent NaN).

In process, plain NumPy (no ``nnfs.init()``: ``test_dropin_training.py`` runs the
nnfs variants in subprocesses).  A few seconds once the kernels are compiled.
"""

import book
import numpy as np
import pytest
import reference as ref

import fastnn
from fastnn import (
    Accuracy_Categorical,
    Activation_ReLU,
    Activation_Softmax,
    Activation_Softmax_Loss_CategoricalCrossentropy,
    Layer_Dense,
    Layer_Dropout,
    Layer_Input,
    Loss,
    Loss_CategoricalCrossentropy,
)

F32, F64 = np.float32, np.float64

#: (n_samples, n_inputs, n_neurons): both loop orders of every product (``_DOT_MIN``),
#: single rows and columns, the book's 2-64-3 and chapter 18's 512 units
SHAPES = [(1, 1, 1), (7, 2, 3), (300, 2, 64), (300, 64, 3), (33, 17, 16), (40, 15, 40),
          (12, 64, 64), (5, 1, 9), (50, 512, 3), (20, 3, 512)]
#: (inputs, weights, dvalues) dtypes
DTYPE_MIXES = [(F32, F32, F32), (F64, F64, F64), (F32, F64, F32), (F64, F32, F64),
               (F32, F32, F64), (F64, F32, F32)]


@pytest.fixture(autouse=True)
def global_rng():
    """Restore NumPy's global RNG after each test (layers and dropout draw from it)."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


def pair(name, *args, **kwargs):
    """(fastnn's, the book's) instance of class ``name``, built from the same random
    draws."""
    state = np.random.get_state()
    fast = getattr(fastnn, name)(*args, **kwargs)
    np.random.set_state(state)
    return fast, getattr(book, name)(*args, **kwargs)


def dense_pair(d, h, w_dtype, rng, **reg):
    fast, slow = pair("Layer_Dense", d, h, **reg)
    w = (rng.standard_normal((d, h)) / np.sqrt(d)).astype(w_dtype)
    b = (0.1 * rng.standard_normal((1, h))).astype(w_dtype)
    for layer in (fast, slow):
        layer.weights, layer.biases = w.copy(), b.copy()
    return fast, slow


def assert_same_dtype_and_close(fast, slow, scale, what):
    assert fast.dtype == slow.dtype, (what, fast.dtype, slow.dtype)
    assert fast.shape == slow.shape, (what, fast.shape, slow.shape)
    ref.assert_close(fast, slow, fast.dtype, scale=scale, msg=what)


# --- dense ------------------------------------------------------------------------------


@pytest.mark.parametrize("reg", [False, True], ids=["plain", "l1l2"])
@pytest.mark.parametrize("dtypes", DTYPE_MIXES, ids=lambda t: "-".join(d.__name__ for d in t))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_dense_backward_matches_the_book(shape, dtypes, reg):
    n, d, h = shape
    x_dt, w_dt, dv_dt = dtypes
    rng = np.random.default_rng(n * 1000 + d * 10 + h)
    kw = dict(weight_regularizer_l1=1e-3, weight_regularizer_l2=5e-4,
              bias_regularizer_l1=2e-3, bias_regularizer_l2=1e-2) if reg else {}
    fast, slow = dense_pair(d, h, w_dt, rng, **kw)
    x = rng.standard_normal((n, d)).astype(x_dt)
    dv = rng.standard_normal((n, h)).astype(dv_dt)
    for layer in (fast, slow):
        layer.forward(x)
        layer.backward(dv)
    assert_same_dtype_and_close(fast.output, slow.output,
                                ref.dense_scale(x, slow.weights, slow.biases), "output")
    ax, adv, aw = np.abs(x.astype(F64)), np.abs(dv.astype(F64)), np.abs(slow.weights)
    reg_scale = np.abs(slow.weights) * 2 * kw.get("weight_regularizer_l2", 0) + 1e-3
    assert_same_dtype_and_close(fast.dweights, slow.dweights, ax.T @ adv + reg_scale,
                                "dweights")
    # the bias gradient is summed in dvalues' dtype, sample after sample, as NumPy sums
    # along axis 0, and regularised in the book's order: the book's bit for bit (mixed
    # dtypes round the regularisation factor to dvalues' dtype first)
    assert fast.dbiases.dtype == slow.dbiases.dtype
    if len(set(dtypes)) == 1 or not reg:
        np.testing.assert_array_equal(fast.dbiases, slow.dbiases)
    else:
        ref.assert_close(fast.dbiases, slow.dbiases, fast.dbiases.dtype,
                         scale=np.sum(adv, axis=0) + 1e-2, msg="dbiases")
    assert_same_dtype_and_close(fast.dinputs, slow.dinputs, adv @ aw.T, "dinputs")


@pytest.mark.parametrize("dtype", [F32, F64])
def test_dense_two_call_forms_and_parameters(dtype):
    """``forward(inputs)`` and ``forward(inputs, training)`` (chapter 18) give the same;
    ``get_parameters``/``set_parameters`` (chapter 21); the regularisation factors are
    plain attributes read at every call."""
    rng = np.random.default_rng(3)
    layer, _ = dense_pair(4, 5, dtype, rng)
    x = rng.standard_normal((6, 4)).astype(dtype)
    layer.forward(x)
    a = layer.output
    layer.forward(x, True)
    np.testing.assert_array_equal(layer.output, a)
    layer.forward(x, training=False)
    np.testing.assert_array_equal(layer.output, a)
    w, b = layer.get_parameters()
    assert w is layer.weights and b is layer.biases
    layer.set_parameters(2 * w, b + 1)
    layer.forward(x)
    np.testing.assert_allclose(layer.output, 2 * (a - b) + b + 1, rtol=1e-5, atol=1e-5)
    dv = np.ones_like(layer.output)
    layer.backward(dv)
    plain = layer.dweights.copy()
    layer.weight_regularizer_l2 = 0.5  # changed after construction: used by the next call
    layer.backward(dv)
    np.testing.assert_allclose(layer.dweights, plain + layer.weights, rtol=1e-6)


def test_dense_notebook_and_book_spellings():
    assert fastnn.Dense_Layer is fastnn.Layer_Dense
    layer = Layer_Dense(2, 3)
    assert (layer.weight_regularizer_l1, layer.weight_regularizer_l2,
            layer.bias_regularizer_l1, layer.bias_regularizer_l2) == (0, 0, 0, 0)
    assert repr(Layer_Dense(2, 3, weight_regularizer_l2=5e-4)) == \
        "Dense_Layer(n_inputs=2, n_neurons=3, weight_regularizer_l2=0.0005)"


# --- activations ------------------------------------------------------------------------


@pytest.mark.parametrize("dtypes", [(F32, F32), (F64, F64), (F32, F64), (F64, F32)],
                         ids=lambda t: "-".join(d.__name__ for d in t))
@pytest.mark.parametrize("shape", [(1, 1), (300, 64), (17, 5)])
def test_relu_matches_the_book_bit_for_bit(shape, dtypes):
    x_dt, dv_dt = dtypes
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(x_dt)
    x[0, 0] = 0.0  # inputs <= 0 are zeroed, 0 included
    dv = rng.standard_normal(shape).astype(dv_dt)
    fast, slow = pair("Activation_ReLU")
    for a in (fast, slow):
        a.forward(x)
        a.backward(dv)
    for attr in ("output", "dinputs"):
        f, s = getattr(fast, attr), getattr(slow, attr)
        assert f.dtype == s.dtype
        np.testing.assert_array_equal(f, s)
    assert fast.predictions(x) is x


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("c", [1, 2, 3, 8, 10, 130, 300])
def test_softmax_is_the_books_bit_for_bit(c, dtype):
    """The same arithmetic as the book's NumPy -- max, subtract, then NumPy's own exp,
    row sums and division -- so the same bits (with near-uniform outputs at the start of
    training a last-bit difference flips predictions; ``test_dropin_training.py``)."""
    rng = np.random.default_rng(c)
    z = (rng.standard_normal((64, c)) * rng.uniform(0.01, 30, (64, 1))).astype(dtype)
    fast, slow = pair("Activation_Softmax")
    fast.forward(z)
    slow.forward(z)
    assert fast.output.dtype == slow.output.dtype
    np.testing.assert_array_equal(fast.output, slow.output)


@pytest.mark.parametrize("dtypes", [(F32, F32), (F64, F64), (F32, F64), (F64, F32)],
                         ids=lambda t: "-".join(d.__name__ for d in t))
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (300, 3), (20, 40)])
def test_softmax_backward_matches_the_book(shape, dtypes):
    z_dt, dv_dt = dtypes
    rng = np.random.default_rng(7)
    z = (2 * rng.standard_normal(shape)).astype(z_dt)
    dv = rng.standard_normal(shape).astype(dv_dt)
    fast, slow = pair("Activation_Softmax")
    for a in (fast, slow):
        a.forward(z)
        a.backward(dv)
    p = slow.output.astype(F64)
    scale = p * (np.abs(dv) + np.sum(p * np.abs(dv), axis=1, keepdims=True)) + 1e-30
    assert fast.dinputs.dtype == slow.dinputs.dtype
    # the book's Jacobian is in the output's dtype: known to the coarser of the two
    coarse = F32 if F32 in dtypes else F64
    ref.assert_close(fast.dinputs, slow.dinputs, coarse, scale=scale, msg="softmax dinputs")


def test_softmax_predictions_are_argmax_with_first_maximum():
    z = np.array([[0.1, 0.5, 0.5], [2.0, 1.0, 2.0], [-1.0, -1.0, -1.0], [0.0, 3.0, 1.0]])
    pred = Activation_Softmax().predictions(z)
    np.testing.assert_array_equal(pred, np.argmax(z, axis=1))
    assert pred.dtype == np.argmax(z, axis=1).dtype
    np.testing.assert_array_equal(Activation_Softmax().predictions(z.astype(F32)),
                                  book.Activation_Softmax().predictions(z.astype(F32)))


# --- losses -----------------------------------------------------------------------------


def probabilities(rng, n, c, dtype):
    p = rng.random((n, c)) + 0.05
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


LABEL_KINDS = ["int64", "uint8", "int32", "onehot_f64", "onehot_int", "onehot_f32"]


def labels(rng, n, c, kind):
    y = rng.integers(0, c, n)
    if kind.startswith("onehot"):
        return np.eye(c, dtype={"onehot_f64": F64, "onehot_f32": F32,
                                "onehot_int": np.int64}[kind])[y]
    return y.astype(kind)


@pytest.mark.parametrize("kind", LABEL_KINDS)
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("n, c", [(1, 2), (300, 3), (64, 10)])
def test_crossentropy_matches_the_book(n, c, dtype, kind):
    rng = np.random.default_rng(n + c)
    p = probabilities(rng, n, c, dtype)
    y = labels(rng, n, c, kind)
    fast, slow = pair("Loss_CategoricalCrossentropy")
    # calculate: the book's mean, accumulated per sample over batches (chapter 19)
    for _ in range(2):
        value, expected = fast.calculate(p, y), slow.calculate(p, y)
        # the predictions' dtype (the notebook's; the book's sum(p * onehot) promotes)
        assert type(value) is dtype
        if y.ndim == 1 or np.result_type(y, p) == dtype:
            assert type(expected) is dtype
        ref.assert_close(value, expected, dtype, msg="calculate")
    assert fast.accumulated_count == slow.accumulated_count == 2 * n
    ref.assert_close(fast.calculate_accumulated(), slow.calculate_accumulated(), dtype,
                     msg="calculate_accumulated")
    # forward keeps returning the notebook's mean
    assert fast.forward(p, y) == fast.calculate(p, y)
    # backward: -onehot / dvalues / n, in the dtype NumPy gives the book's expression
    fast.backward(p, y)
    slow.backward(p, y)
    assert fast.dinputs.dtype == slow.dinputs.dtype, (fast.dinputs.dtype, slow.dinputs.dtype)
    np.testing.assert_array_equal(fast.dinputs, slow.dinputs)
    fast.new_pass()
    assert fast.accumulated_sum == 0 and fast.accumulated_count == 0


@pytest.mark.parametrize("kind", LABEL_KINDS)
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("n, c", [(1, 2), (300, 3), (40, 130)])
def test_softmax_crossentropy_matches_the_book(n, c, dtype, kind):
    """Forward (softmax output, mean loss) and the combined gradient (dvalues - onehot)
    / n: the same operations as the book, so the same bits."""
    rng = np.random.default_rng(n * c)
    z = (3 * rng.standard_normal((n, c))).astype(dtype)
    y = labels(rng, n, c, kind)
    fast, slow = pair("Activation_Softmax_Loss_CategoricalCrossentropy")
    value, expected = fast.forward(z, y), slow.forward(z, y)
    assert type(value) is dtype  # see test_crossentropy_matches_the_book
    ref.assert_close(value, expected, dtype, msg="loss")
    np.testing.assert_array_equal(fast.output, slow.output)
    assert isinstance(fast.activation, Activation_Softmax)
    assert isinstance(fast.loss, Loss_CategoricalCrossentropy)
    assert fast.loss.accumulated_count == n
    fast.backward(fast.output, y)
    slow.backward(slow.output, y)
    assert fast.dinputs.dtype == slow.dinputs.dtype
    np.testing.assert_array_equal(fast.dinputs, slow.dinputs)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_regularization_loss_both_forms(dtype):
    """Chapter 14's ``regularization_loss(layer)`` and chapter 18's
    ``regularization_loss()`` over ``remember_trainable_layers``; on fastnn's and the
    book's layers alike; 0 (an int) without any factor."""
    rng = np.random.default_rng(11)
    f1, b1 = dense_pair(3, 5, dtype, rng, weight_regularizer_l1=1e-3,
                        weight_regularizer_l2=5e-4, bias_regularizer_l1=2e-3,
                        bias_regularizer_l2=3e-3)
    f2, b2 = dense_pair(5, 2, dtype, rng)
    fast, slow = Loss_CategoricalCrossentropy(), book.Loss_CategoricalCrossentropy()
    for layer in (f1, b1):
        value, expected = fast.regularization_loss(layer), slow.regularization_loss(b1)
        assert type(value) is type(expected)
        ref.assert_close(value, expected, dtype, msg="regularization_loss(layer)")
    assert fast.regularization_loss(f2) == 0 and type(fast.regularization_loss(f2)) is int
    fast.remember_trainable_layers([f1, b2])
    slow.remember_trainable_layers([b1, b2])
    ref.assert_close(fast.regularization_loss(), slow.regularization_loss(), dtype,
                     msg="regularization_loss()")
    p = probabilities(rng, 4, 2, dtype)
    y = np.array([0, 1, 1, 0])
    data, regl = fast.calculate(p, y, include_regularization=True)
    ref.assert_close(regl, slow.regularization_loss(), dtype)
    d2, r2 = fast.calculate_accumulated(include_regularization=True)
    ref.assert_close(d2, data, dtype)
    assert r2 == regl


def test_loss_base_class_for_the_users_own_losses():
    """A loss written the book's way (``forward`` returning per-sample losses) gets
    ``calculate``, accumulation and regularisation from ``fastnn.Loss``."""
    class Loss_MeanSquaredError(Loss):
        def forward(self, y_pred, y_true):
            return np.mean((y_true - y_pred) ** 2, axis=-1)

    loss = Loss_MeanSquaredError()
    a, b = np.array([[1.0], [2.0]]), np.array([[0.0], [0.0]])
    assert loss.calculate(a, b) == 2.5
    assert loss.calculate(a, a) == 0.0
    assert loss.calculate_accumulated() == 1.25 and loss.accumulated_count == 4


@pytest.mark.parametrize("binary", [False, True])
def test_accuracy_matches_the_book(binary):
    rng = np.random.default_rng(13)
    fast, slow = Accuracy_Categorical(binary=binary), book.Accuracy_Categorical(binary=binary)
    for a in (fast, slow):
        a.init(None)
        a.new_pass()
    for _ in range(3):
        if binary:
            pred = rng.integers(0, 2, (50, 1))
            y = rng.integers(0, 2, (50, 1))
        else:
            pred = rng.integers(0, 4, 50)
            y = np.eye(4)[rng.integers(0, 4, 50)] if _ else rng.integers(0, 4, 50)
        assert fast.calculate(pred, y) == slow.calculate(pred, y)
    assert fast.calculate_accumulated() == slow.calculate_accumulated()
    assert fast.accumulated_count == slow.accumulated_count == 150
    # the notebook's helper is still there
    assert fastnn.accuracy(np.eye(3), np.arange(3)) == 1.0


# --- dropout and the input layer ----------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_dropout_draws_the_books_masks(rate, dtype):
    """The book's ``np.random.binomial`` call on NumPy's global RNG: the same seed gives
    the same mask, output and gradient, bit for bit (float64: the mask is)."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((300, 64)).astype(dtype)
    dv = rng.standard_normal((300, 64)).astype(dtype)
    fast, slow = Layer_Dropout(rate), book.Layer_Dropout(rate)
    assert fast.rate == slow.rate == 1 - rate
    for step in range(3):
        for layer in (fast, slow):
            np.random.seed(100 + step)
            if step:  # chapter 18's call
                layer.forward(x, training=True)
            else:
                layer.forward(x)
            layer.backward(dv)
        for attr in ("binary_mask", "output", "dinputs"):
            f, s = getattr(fast, attr), getattr(slow, attr)
            assert f.dtype == s.dtype == F64
            np.testing.assert_array_equal(f, s)
    # evaluation (chapter 18): nothing dropped, the inputs copied
    state = np.random.get_state()
    fast.forward(x, training=False)
    assert np.random.get_state()[2] == state[2]  # no draws
    assert fast.output is not x and fast.output.dtype == x.dtype
    np.testing.assert_array_equal(fast.output, x)


def test_dropout_mixes_with_float32_activations_like_the_book():
    """float32 activations times the float64 mask are float64, as in the book, and the
    next fastnn layer follows NumPy's promotion from there."""
    rng = np.random.default_rng(19)
    x = rng.standard_normal((10, 4)).astype(F32)
    drop = Layer_Dropout(0.25)
    drop.forward(x)
    assert drop.output.dtype == F64
    dense, _ = dense_pair(4, 3, F32, rng)
    dense.forward(drop.output)
    assert dense.output.dtype == F64
    dense.backward(np.ones((10, 3), F32))
    drop.backward(dense.dinputs)
    assert drop.dinputs.dtype == F64


def test_input_layer():
    layer = Layer_Input()
    x = np.ones((2, 3))
    layer.forward(x, True)
    assert layer.output is x


# --- finite differences (float64) ---------------------------------------------------------


def numeric_gradient(f, a, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to every element of ``a``
    (changed in place and restored)."""
    g = np.zeros_like(a, dtype=F64)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


def assert_gradient(analytic, numeric, what, rtol=1e-6):
    err = np.max(np.abs(analytic - numeric))
    size = max(np.max(np.abs(numeric)), 1e-3)
    assert err <= rtol * size, f"{what}: max error {err:.3g} vs gradient size {size:.3g}"


def away_from_zero(a, margin=1e-3):
    """Move entries within ``margin`` of 0 away from it (|x| and ReLU have a kink there)."""
    return np.where(np.abs(a) < margin, np.copysign(margin * 5, a), a)


@pytest.mark.parametrize("shape", [(5, 3, 4), (20, 17, 3), (6, 2, 20)])
@pytest.mark.parametrize("reg", [False, True], ids=["plain", "l1l2"])
def test_dense_gradients_by_finite_differences(shape, reg):
    n, d, h = shape
    rng = np.random.default_rng(23)
    kw = dict(weight_regularizer_l1=0.03, weight_regularizer_l2=0.02,
              bias_regularizer_l1=0.01, bias_regularizer_l2=0.05) if reg else {}
    layer = Layer_Dense(d, h, **kw)
    layer.weights = away_from_zero(rng.standard_normal((d, h)))
    layer.biases = away_from_zero(rng.standard_normal((1, h)))
    x = rng.standard_normal((n, d))
    r = rng.standard_normal((n, h))
    penalty = Loss_CategoricalCrossentropy()

    def total():  # sum(output * r) + the layer's penalty: dL/doutput = r
        layer.forward(x)
        return float(np.sum(layer.output * r)) + float(penalty.regularization_loss(layer))

    layer.forward(x)
    layer.backward(r)
    assert_gradient(layer.dweights, numeric_gradient(total, layer.weights), "dweights")
    assert_gradient(layer.dbiases, numeric_gradient(total, layer.biases), "dbiases")
    assert_gradient(layer.dinputs, numeric_gradient(total, x), "dinputs")


def test_activation_gradients_by_finite_differences():
    rng = np.random.default_rng(29)
    z = away_from_zero(rng.standard_normal((6, 5)))
    r = rng.standard_normal((6, 5))
    for act in (Activation_ReLU(), Activation_Softmax()):
        def total(act=act):
            act.forward(z)
            return float(np.sum(act.output * r))

        act.forward(z)
        act.backward(r)
        assert_gradient(act.dinputs, numeric_gradient(total, z), type(act).__name__)


@pytest.mark.parametrize("onehot", [False, True])
def test_loss_gradients_by_finite_differences(onehot):
    rng = np.random.default_rng(31)
    n, c = 8, 4
    y = rng.integers(0, c, n)
    y_in = np.eye(c)[y] if onehot else y
    # cross-entropy on probabilities (inside the clip range)
    p = probabilities(rng, n, c, F64)
    loss = Loss_CategoricalCrossentropy()
    loss.backward(p, y_in)
    assert_gradient(loss.dinputs, numeric_gradient(lambda: float(loss.forward(p, y_in)), p,
                                                   eps=1e-7), "cross-entropy")
    # softmax + cross-entropy on logits
    z = 2 * rng.standard_normal((n, c))
    both = Activation_Softmax_Loss_CategoricalCrossentropy()
    both.forward(z, y_in)
    both.backward(both.output, y_in)
    assert_gradient(both.dinputs, numeric_gradient(lambda: float(both.forward(z, y_in)), z),
                    "softmax + cross-entropy")


def test_dropout_gradient_by_finite_differences():
    """With the mask fixed (the same seed before every forward pass)."""
    rng = np.random.default_rng(37)
    x = rng.standard_normal((7, 6))
    r = rng.standard_normal((7, 6))
    drop = Layer_Dropout(0.3)

    def total():
        np.random.seed(5)
        drop.forward(x)
        return float(np.sum(drop.output * r))

    total()
    drop.backward(r)
    assert np.any(drop.binary_mask == 0) and np.any(drop.binary_mask > 1)
    assert_gradient(drop.dinputs, numeric_gradient(total, x), "dropout")


def test_network_gradients_by_finite_differences():
    """Dense (L1 + L2) -> ReLU -> Dropout (fixed mask) -> Dense (L2) -> softmax +
    cross-entropy: the chain of backward passes gives the gradient of the total loss
    (data + regularisation) with respect to every parameter."""
    rng = np.random.default_rng(41)
    X = rng.standard_normal((12, 3))
    y = rng.integers(0, 3, 12)
    d1 = Layer_Dense(3, 8, weight_regularizer_l1=0.01, weight_regularizer_l2=0.02,
                     bias_regularizer_l1=0.005, bias_regularizer_l2=0.01)
    d2 = Layer_Dense(8, 3, weight_regularizer_l2=0.03)
    for layer in (d1, d2):
        layer.weights = away_from_zero(rng.standard_normal(layer.weights.shape))
        layer.biases = away_from_zero(0.5 * rng.standard_normal(layer.biases.shape))
    relu, drop = Activation_ReLU(), Layer_Dropout(0.25)
    head = Activation_Softmax_Loss_CategoricalCrossentropy()

    def total():
        np.random.seed(9)
        d1.forward(X)
        relu.forward(d1.output)
        drop.forward(relu.output)
        d2.forward(drop.output)
        data = head.forward(d2.output, y)
        return float(data + head.loss.regularization_loss(d1)
                     + head.loss.regularization_loss(d2))

    total()
    # no pre-activation within the finite-difference step of ReLU's kink
    assert np.min(np.abs(d1.output)) > 1e-4
    head.backward(head.output, y)
    d2.backward(head.dinputs)
    drop.backward(d2.dinputs)
    relu.backward(drop.dinputs)
    d1.backward(relu.dinputs)
    for layer, name in ((d1, "dense1"), (d2, "dense2")):
        grads = (layer.dweights.copy(), layer.dbiases.copy())
        assert_gradient(grads[0], numeric_gradient(total, layer.weights), f"{name} dweights",
                        rtol=1e-5)
        assert_gradient(grads[1], numeric_gradient(total, layer.biases), f"{name} dbiases",
                        rtol=1e-5)


# --- bad input ---------------------------------------------------------------------------


def _raises(call, arg, exc=(ValueError, TypeError)):
    with pytest.raises(exc, match=rf"\b{arg}\b") as info:
        call()
    assert "numba" not in type(info.value).__module__
    return info.value


def _with(a, index, value):
    out = np.array(a, dtype=F64)
    out[index] = value
    return out


N, D, H = 6, 3, 4
_rng = np.random.default_rng(43)
X_OK = _rng.standard_normal((N, D))
DV_OK = _rng.standard_normal((N, H))
P_OK = probabilities(_rng, N, 3, F64)
Y_OK = np.array([0, 1, 2, 1, 0, 2])

#: bad dvalues for a layer whose forward pass had (N, D) inputs and (N, H) outputs
BAD_DVALUES = {
    "too few rows": (DV_OK[:-1], ValueError),
    "too many rows": (np.vstack([DV_OK, DV_OK]), ValueError),
    "too few columns": (DV_OK[:, :-1], ValueError),
    "1-D": (DV_OK[0], ValueError),
    "3-D": (DV_OK[None], ValueError),
    "empty": (DV_OK[:0], ValueError),
    "NaN": (_with(DV_OK, (2, 1), np.nan), ValueError),
    "inf": (_with(DV_OK, (0, 3), np.inf), ValueError),
    "-inf float32": (_with(DV_OK, (5, 0), -np.inf).astype(F32), ValueError),
    "strings": (DV_OK.astype(str), TypeError),
    "complex": (DV_OK.astype(complex), TypeError),
    "None": (None, TypeError),
    "object": (DV_OK.astype(object), TypeError),
}


def _dense():
    layer = Layer_Dense(D, H)
    layer.forward(X_OK)
    return layer


def _relu():
    a = Activation_ReLU()
    a.forward(DV_OK)
    return a


def _softmax():
    a = Activation_Softmax()
    a.forward(DV_OK)
    return a


def _dropout():
    a = Layer_Dropout(0.5)
    a.forward(DV_OK)
    return a


BACKWARDS = {
    "Layer_Dense": _dense,
    "Activation_ReLU": _relu,
    "Activation_Softmax": _softmax,
    "Layer_Dropout": _dropout,
}


@pytest.mark.parametrize("case", list(BAD_DVALUES))
@pytest.mark.parametrize("layer", list(BACKWARDS))
def test_bad_dvalues(layer, case):
    bad, exc = BAD_DVALUES[case]
    obj = BACKWARDS[layer]()
    _raises(lambda: obj.backward(bad), "dvalues", exc)


@pytest.mark.parametrize("layer", list(BACKWARDS))
def test_backward_before_forward(layer):
    obj = {"Layer_Dense": lambda: Layer_Dense(D, H), "Activation_ReLU": Activation_ReLU,
           "Activation_Softmax": Activation_Softmax,
           "Layer_Dropout": lambda: Layer_Dropout(0.5)}[layer]()
    err = _raises(lambda: obj.backward(DV_OK), "forward", ValueError)
    assert type(obj).__name__ in str(err) and "backward" in str(err)


def test_dropout_backward_after_an_evaluation_pass():
    drop = _dropout()
    drop.forward(DV_OK, training=False)
    _raises(lambda: drop.backward(DV_OK), "forward", ValueError)


def test_dense_backward_after_the_weights_changed_shape():
    layer = _dense()
    layer.weights = np.ones((D + 1, H))
    _raises(lambda: layer.backward(DV_OK), "weights", ValueError)
    layer = _dense()
    layer.weights = np.ones((D, H + 1))
    _raises(lambda: layer.backward(DV_OK), "biases", ValueError)
    layer.biases = np.zeros((1, H + 1))
    _raises(lambda: layer.backward(DV_OK), "dvalues", ValueError)
    layer = _dense()
    layer.weights[1, 2] = np.nan
    _raises(lambda: layer.backward(DV_OK), "weights", ValueError)


@pytest.mark.parametrize("value, exc", [(-1e-4, ValueError), (np.nan, ValueError),
                                        (np.inf, ValueError), ("0.1", TypeError),
                                        (None, TypeError), (True, TypeError),
                                        (1j, TypeError), ([0.1], TypeError)], ids=repr)
@pytest.mark.parametrize("name", ["weight_regularizer_l1", "weight_regularizer_l2",
                                  "bias_regularizer_l1", "bias_regularizer_l2"])
def test_bad_regularizers(name, value, exc):
    _raises(lambda: Layer_Dense(D, H, **{name: value}), name, exc)
    # assigned later: refused by the next backward pass and by the loss's penalty
    layer = _dense()
    setattr(layer, name, value)
    _raises(lambda: layer.backward(DV_OK), name, exc)
    _raises(lambda: Loss().regularization_loss(layer), name, exc)


@pytest.mark.parametrize("rate, exc", [(1, ValueError), (1.5, ValueError), (-0.1, ValueError),
                                       (np.nan, ValueError), ("0.1", TypeError),
                                       (None, TypeError), (True, TypeError)], ids=repr)
def test_bad_dropout_rate(rate, exc):
    _raises(lambda: Layer_Dropout(rate), "rate", exc)


def test_dropout_keep_probability_changed_to_garbage():
    drop = Layer_Dropout(0.1)
    drop.rate = 0.0  # the keep probability, as the book stores it
    _raises(lambda: drop.forward(X_OK), "rate", ValueError)


@pytest.mark.parametrize("bad, exc", [(_with(X_OK, (1, 1), np.nan), ValueError),
                                      (X_OK[0], ValueError), (X_OK.astype(str), TypeError),
                                      (None, TypeError)], ids=["NaN", "1-D", "str", "None"])
@pytest.mark.parametrize("call", ["Layer_Dropout", "Activation_ReLU", "Activation_Softmax",
                                  "Layer_Dense"])
def test_bad_forward_inputs_in_both_call_forms(call, bad, exc):
    obj = {"Layer_Dropout": lambda: Layer_Dropout(0.2), "Activation_ReLU": Activation_ReLU,
           "Activation_Softmax": Activation_Softmax,
           "Layer_Dense": lambda: Layer_Dense(D, H)}[call]()
    _raises(lambda: obj.forward(bad), "inputs", exc)
    _raises(lambda: obj.forward(bad, True), "inputs", exc)


@pytest.mark.parametrize("bad", ["NaN", "1-D", "str"])
def test_bad_predictions_input(bad):
    value = {"NaN": _with(P_OK, (0, 0), np.nan), "1-D": P_OK[0], "str": P_OK.astype(str)}[bad]
    _raises(lambda: Activation_Softmax().predictions(value), "outputs")


BAD_LABELS = {
    "negative": (np.array([0, 1, -1, 1, 0, 2]), ValueError),
    "== n_classes": (np.array([0, 1, 3, 1, 0, 2]), ValueError),
    "uint8 255": (np.array([0, 1, 255, 1, 0, 2], dtype=np.uint8), ValueError),
    "float": (Y_OK.astype(F64), TypeError),
    "too short": (Y_OK[:-1], ValueError),
    "2-D wrong width": (np.eye(4)[Y_OK], ValueError),
    "one-hot soft": (np.full((N, 3), 1 / 3), ValueError),
    "None": (None, TypeError),
}


def _loss_backward(y):
    Loss_CategoricalCrossentropy().backward(P_OK, y)


def _loss_calculate(y):
    Loss_CategoricalCrossentropy().calculate(P_OK, y)


def _both_forward(y):
    Activation_Softmax_Loss_CategoricalCrossentropy().forward(P_OK, y)


def _both_backward(y):
    Activation_Softmax_Loss_CategoricalCrossentropy().backward(P_OK, y)


LABEL_CALLS = {"Loss.backward": _loss_backward, "Loss.calculate": _loss_calculate,
               "combined.forward": _both_forward, "combined.backward": _both_backward}


@pytest.mark.parametrize("case", list(BAD_LABELS))
@pytest.mark.parametrize("call", list(LABEL_CALLS))
def test_bad_labels(call, case):
    bad, exc = BAD_LABELS[case]
    err = _raises(lambda: LABEL_CALLS[call](bad), "y_true", exc)
    if case == "negative":
        assert "-1" in str(err)


@pytest.mark.parametrize("case", ["NaN", "1-D", "empty", "str", "None"])
@pytest.mark.parametrize("call", ["Loss.backward", "combined.backward"])
def test_bad_loss_dvalues(call, case):
    value = {"NaN": _with(P_OK, (3, 2), np.nan), "1-D": P_OK[0], "empty": P_OK[:0],
             "str": P_OK.astype(str), "None": None}[case]
    obj = (Loss_CategoricalCrossentropy() if call == "Loss.backward"
           else Activation_Softmax_Loss_CategoricalCrossentropy())
    _raises(lambda: obj.backward(value, Y_OK), "dvalues")


def test_crossentropy_backward_refuses_a_zero_probability_at_the_label():
    """The book divides by it (-inf, or NaN in the other columns); fastnn says why."""
    p = P_OK.copy()
    p[1, Y_OK[1]] = 0.0
    _raises(lambda: Loss_CategoricalCrossentropy().backward(p, Y_OK), "dvalues", ValueError)
    p = P_OK.copy()
    p[1, (Y_OK[1] + 1) % 3] = 0.0  # elsewhere the gradient is 0, not the book's NaN
    loss = Loss_CategoricalCrossentropy()
    loss.backward(p, Y_OK)
    assert np.all(np.isfinite(loss.dinputs)) and loss.dinputs[1, (Y_OK[1] + 1) % 3] == 0


def test_loss_accumulation_and_penalty_misuse():
    loss = Loss_CategoricalCrossentropy()
    _raises(loss.calculate_accumulated, "calculate", ValueError)
    _raises(loss.regularization_loss, "remember_trainable_layers", ValueError)
    acc = Accuracy_Categorical()
    _raises(acc.calculate_accumulated, "calculate", ValueError)
    _raises(lambda: loss.calculate(P_OK, Y_OK, include_regularization=True),
            "remember_trainable_layers", ValueError)


@pytest.mark.parametrize("pred, y, exc", [
    (np.zeros(5, int), Y_OK, ValueError),  # fewer predictions than labels
    (np.zeros((N, 1), int), Y_OK, ValueError),  # (n, 1) against (n,): NumPy would broadcast
    (np.zeros(N, int), Y_OK.astype(str), TypeError),
    (np.zeros(N).astype(str), Y_OK, TypeError),
    (0, Y_OK, ValueError),
], ids=["short", "column", "str labels", "str predictions", "scalar"])
def test_bad_accuracy_input(pred, y, exc):
    _raises(lambda: Accuracy_Categorical().calculate(pred, y), "predictions|y", exc)


def test_training_steps_in_threads_match_serial():
    """Independent networks trained from several Python threads at once (the kernels
    release the GIL and own no shared buffers) give the serial results bit for bit."""
    from concurrent.futures import ThreadPoolExecutor

    def train(seed):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((200, 3)).astype(F32)
        y = rng.integers(0, 3, 200)
        d1, d2 = Layer_Dense(3, 32, weight_regularizer_l2=1e-3), Layer_Dense(32, 3)
        for layer in (d1, d2):  # no global RNG: threads would race for it
            layer.weights = (0.1 * rng.standard_normal(layer.weights.shape)).astype(F32)
            layer.biases = np.zeros((1, layer.biases.shape[1]), F32)
        relu, head = Activation_ReLU(), Activation_Softmax_Loss_CategoricalCrossentropy()
        opt = fastnn.Optimizer_Adam(learning_rate=0.02)
        for _ in range(20):
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
        return [d1.weights, d1.biases, d2.weights, d2.biases, head.output]

    serial = [train(seed) for seed in range(4)]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(train, range(4)))
    for a, b in zip(threaded, serial, strict=True):
        for x, z in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, z)
