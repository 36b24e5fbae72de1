"""The notebook's and the book's layers, compiled: a drop-in for the nnfs code.

Same constructors, attributes and methods as the seed notebook (``Dense_Layer``,
``Activation_Relu``, ``Activation_Softmax``) and the nnfs book, chapters 9-22
(``Layer_Dense`` with L1/L2 regularisation, ``Activation_ReLU``, ``Layer_Dropout``,
``Layer_Input``; ``backward(dvalues)``; ``forward(inputs, training)`` from chapter 18 on;
``predictions(outputs)``).  The losses, the combined softmax + cross-entropy and the
accuracies are in ``fastnn.losses``, the optimizers in ``fastnn.optimizers``.

Everything the book stores is a plain attribute (``inputs``, ``output``, ``dweights``,
``dbiases``, ``dinputs``, ``binary_mask``, the regularisation factors): users may read,
assign or mutate them, and every call reads them afresh, so these classes mix with the
book's own in any combination.  Weights are drawn from NumPy's global RNG with the
book's expression and dropout masks with its ``np.random.binomial`` call, both looked up
at call time, so a seeded script gets the same numbers and ``nnfs.init()`` works whether
it runs before or after ``import fastnn``.

Dtypes follow NumPy's promotion of the book's expressions: ``np.dot(x, w) + b`` for the
forward pass, ``np.dot(inputs.T, dvalues)`` for ``dweights``, ``dvalues``' dtype for
``dbiases`` and the activations' gradients, ``np.dot(dvalues, weights.T)`` for
``dinputs``, float64 after dropout (the mask is an int64 draw divided by a float).
Integer inputs compute in float64 (the package's dtype policy).  Products are
accumulated in float64 and rounded to the result's dtype, as ``nnfs.init()``'s
``np.dot`` does.
"""

import math
import numbers

import numpy as np

from ._validation import (
    as_matrix,
    as_numeric_array,
    as_positive_int,
    check_finite,
    float_dtype,
)
from .kernels import layers as k
from .kernels.optim import regularize_gradient

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


# --- input handling shared by the layers (and fastnn.losses) --------------------------------


def matrix(value, name, *, n_cols=None, what="n_features"):
    """``value`` as a non-empty, C-contiguous 2-D float32/float64 array, *not* checked
    for finiteness (the kernels check what they read, ``kernels/layers.py``).

    Arrays that already qualify come back as they are, in well under a microsecond:
    the drop-in classes make about ten calls per training step."""
    if type(value) is np.ndarray:
        dt = value.dtype
        if ((dt is _F32 or dt is _F64) and value.ndim == 2 and value.flags.c_contiguous
                and value.flags.aligned and value.size
                and (n_cols is None or value.shape[1] == n_cols)):
            return value
    return as_matrix(value, name, n_cols=n_cols, what=what, check=False)


def same_shape(value, shape, name, expected_what):
    """ValueError naming ``name`` unless ``value.shape == shape``."""
    if value.shape != shape:
        raise ValueError(f"{name} must have shape {shape} ({expected_what}), "
                         f"got {value.shape}")


def diagnose(where, arrays, dtype=None):
    """Raise the error a failed kernel check means: a ValueError naming the first of
    ``arrays`` ({name: array}) that holds NaN or infinity, else an overflow of the
    result's ``dtype``."""
    for name, arr in arrays.items():
        a = np.asarray(arr)
        if a.dtype.kind in "fc":
            check_finite(np.ascontiguousarray(a), name)
    names = " and ".join(arrays)
    raise ValueError(f"{where}: the result is not finite although {names} are: it "
                     f"overflows {np.dtype(dtype or np.float64).name}")


def not_before(obj, attr, method, first):
    """The attribute ``attr`` that ``first`` sets, or a ValueError saying to call it."""
    value = getattr(obj, attr, None)
    if value is None:
        raise ValueError(f"{type(obj).__name__}.{method} needs {attr} from {first}: call "
                         f"{first} first")
    return value


def dot_result_dtype(a, b):
    """The dtype ``np.dot`` gives arrays of dtypes ``a`` and ``b`` -- as a float (integers
    give float64) -- whatever ``np.dot`` is at call time: NumPy's promotion, or, under
    ``nnfs.init()``, float32 whatever the inputs (nnfs wraps ``np.dot`` to compute in
    float64 and round to float32; the kernels do the same with this dtype).

    Why follow the wrapper: after a dropout layer (a float64 mask) the book's next dense
    layer is float32 under ``nnfs.init()``, and with Adam's first steps turning last-bit
    differences into whole steps, promoting to float64 there printed different
    accuracies within 20 epochs for half the seeds of chapter 15's network (20 of 40);
    following ``np.dot`` makes them the book's bit for bit (40 of 40, measured;
    ``tests/test_dropin_training.py``).  The dtype is asked of ``np.dot`` itself, on
    1x1 arrays, once per (np.dot, a, b): nnfs may be initialised before or after fastnn
    is imported, and with another ``default_dtype``."""
    key = (id(np.dot), np.dtype(a), np.dtype(b))
    dt = _DOT_DTYPES.get(key)
    if dt is None:
        probe = np.dot(np.ones((1, 1), dtype=a), np.ones((1, 1), dtype=b))
        dt = _DOT_DTYPES[key] = float_dtype(np.asarray(probe).dtype)
    return dt


#: (id of np.dot, dtype, dtype) -> the dtype of their product (``dot_result_dtype``)
_DOT_DTYPES = {}


def regularizer(value, name):
    """A regularisation factor: a real number >= 0 (TypeError/ValueError naming it)."""
    if type(value) is float or type(value) is int:
        if 0 <= value < math.inf:
            return value
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


# --- layers ---------------------------------------------------------------------------


class Dense_Layer:
    """Fully connected layer: ``output = inputs @ weights + biases``.

    ``Layer_Dense(n_inputs, n_neurons, weight_regularizer_l1=0, weight_regularizer_l2=0,
    bias_regularizer_l1=0, bias_regularizer_l2=0)`` (the book, chapter 14; the notebook's
    two-argument form is the same call).  ``backward(dvalues)`` sets ``dweights``,
    ``dbiases`` (with the L1/L2 terms of factors > 0) and ``dinputs``."""

    def __init__(self, n_inputs, n_neurons, weight_regularizer_l1=0, weight_regularizer_l2=0,
                 bias_regularizer_l1=0, bias_regularizer_l2=0):
        n_inputs = as_positive_int(n_inputs, "n_inputs")
        n_neurons = as_positive_int(n_neurons, "n_neurons")
        self.weight_regularizer_l1 = regularizer(weight_regularizer_l1, "weight_regularizer_l1")
        self.weight_regularizer_l2 = regularizer(weight_regularizer_l2, "weight_regularizer_l2")
        self.bias_regularizer_l1 = regularizer(bias_regularizer_l1, "bias_regularizer_l1")
        self.bias_regularizer_l2 = regularizer(bias_regularizer_l2, "bias_regularizer_l2")
        self.weights = 0.01 * np.random.randn(n_inputs, n_neurons)
        self.biases = np.zeros((1, n_neurons))

    def _parameters(self):
        """(weights as a 2-D float array, biases as a (1, n) float array), shapes checked."""
        w = matrix(self.weights, "weights", what="n_neurons")
        h = w.shape[1]
        b = self.biases
        if not (type(b) is np.ndarray and b.shape == (1, h) and (b.dtype is _F32
                                                                 or b.dtype is _F64)
                and b.flags.c_contiguous and b.flags.aligned):
            b = _as_bias(b, h)
        return w, b

    def forward(self, inputs, training=None):
        """``output = inputs @ weights + biases``; ``training`` (chapter 18's call) is
        accepted and ignored."""
        self.inputs = inputs
        w, b = self._parameters()
        n_in, n_out = w.shape
        x = inputs
        if type(x) is not np.ndarray or x.dtype.kind != "f":
            x = as_numeric_array(x, "inputs")
        # np.dot(x, w) + b: two roundings, the product's from x's own dtype
        if x.dtype is w.dtype and w.dtype is b.dtype:
            dot_dtype = out_dtype = w.dtype
        else:
            dot_dtype = dot_result_dtype(x.dtype, w.dtype)
            out_dtype = float_dtype(dot_dtype, b.dtype)
        x = matrix(x, "inputs", n_cols=n_in, what="n_inputs")
        out = np.empty((x.shape[0], n_out), dtype=out_dtype)
        w64 = w.astype(np.float64, copy=False)
        if not k.dense_forward(x, w64, b.astype(out_dtype, copy=False).reshape(n_out),
                               _EMPTY[dot_dtype], out, np.empty(n_in * n_out + n_in + n_out)):
            diagnose("Layer_Dense.forward", {"inputs": x, "weights": w, "biases": b},
                     out_dtype)
        self.output = out

    def backward(self, dvalues):
        """The book's backward pass: ``dweights = inputs.T @ dvalues``, ``dbiases = sum(
        dvalues, axis=0, keepdims=True)``, then the L1 (``l1 * sign(w)``, sign(0) = +1) and
        L2 (``2 * l2 * w``) terms of the factors > 0, and ``dinputs = dvalues @
        weights.T``."""
        x = matrix(not_before(self, "inputs", "backward", "forward"), "inputs")
        w, b = self._parameters()
        n, d = x.shape
        h = w.shape[1]
        if w.shape[0] != d:
            raise ValueError(f"weights must have {d} rows (the inputs given to forward have "
                             f"{d} columns), got shape {w.shape}")
        dv = matrix(dvalues, "dvalues", what="n_neurons")
        same_shape(dv, (n, h), "dvalues", "n_samples of forward's inputs, n_neurons")
        l1w = regularizer(self.weight_regularizer_l1, "weight_regularizer_l1")
        l2w = regularizer(self.weight_regularizer_l2, "weight_regularizer_l2")
        l1b = regularizer(self.bias_regularizer_l1, "bias_regularizer_l1")
        l2b = regularizer(self.bias_regularizer_l2, "bias_regularizer_l2")
        if x.dtype is dv.dtype and dv.dtype is w.dtype:
            dw_dtype = dx_dtype = dv.dtype
        else:
            dw_dtype = dot_result_dtype(x.dtype, dv.dtype)  # np.dot(inputs.T, dvalues)
            dx_dtype = dot_result_dtype(dv.dtype, w.dtype)  # np.dot(dvalues, weights.T)
        dw = np.empty((d, h), dtype=dw_dtype)
        db = np.empty((1, h), dtype=dv.dtype)  # np.sum keeps dvalues' dtype
        dx = np.empty((n, d), dtype=dx_dtype)
        if not k.dense_backward(x, dv, w.astype(np.float64, copy=False), dw, db, dx,
                                np.empty(2 * d * h + 2 * d + h)):
            diagnose("Layer_Dense.backward", {"dvalues": dv, "inputs": x, "weights": w},
                     dx_dtype)
        # the book's regularisation terms, in place and in its order, with the
        # parameters in their own dtype (``2 * l2 * w`` is rounded before it is added)
        if l1w > 0 or l2w > 0:
            regularize_gradient(dw.reshape(-1), w.reshape(-1), float(l1w), float(l2w))
        if l1b > 0 or l2b > 0:
            regularize_gradient(db.reshape(-1), b.reshape(-1), float(l1b), float(l2b))
        self.dweights = dw
        self.dbiases = db
        self.dinputs = dx

    def get_parameters(self):
        """``(weights, biases)`` (chapter 21)."""
        return self.weights, self.biases

    def set_parameters(self, weights, biases):
        """Assign ``weights`` and ``biases`` (chapter 21); checked at the next call."""
        self.weights = weights
        self.biases = biases

    def __repr__(self):
        w = np.shape(self.weights)
        extra = "".join(f", {name}={getattr(self, name)!r}" for name in _REGULARIZERS
                        if getattr(self, name, 0))
        return f"{type(self).__name__}(n_inputs={w[0]}, n_neurons={w[1]}{extra})"


_REGULARIZERS = ("weight_regularizer_l1", "weight_regularizer_l2",
                 "bias_regularizer_l1", "bias_regularizer_l2")
#: the 0-length arrays that tell ``dense_forward`` the product's dtype
_EMPTY = {_F32: np.empty(0, _F32), _F64: np.empty(0, _F64)}


def _as_bias(biases, n_out):
    b = as_numeric_array(biases, "biases")
    if b.shape not in ((1, n_out), (n_out,)):
        raise ValueError(f"biases must have shape (1, {n_out}), got {b.shape}")
    return matrix(b.reshape(1, n_out), "biases", what="n_neurons")


class Layer_Dropout:
    """The book's dropout (chapter 15): ``Layer_Dropout(rate)`` drops a fraction ``rate``
    of the units and, as the book does, stores the keep probability ``1 - rate`` as
    ``self.rate``.

    ``forward(inputs, training=None)`` draws ``binary_mask = np.random.binomial(1,
    self.rate, size=inputs.shape) / self.rate`` from NumPy's global RNG (the book's call:
    a seeded script gets the book's masks) and sets ``output = inputs * binary_mask``
    (float64: the mask is); with ``training`` False (chapter 18's evaluation) nothing is
    dropped and ``output`` is a copy of ``inputs``.  ``backward(dvalues)``: ``dinputs =
    dvalues * binary_mask``."""

    def __init__(self, rate):
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise TypeError(f"rate must be a number in [0, 1), got {type(rate).__name__}")
        if not 0 <= rate < 1:
            raise ValueError(f"rate must be in [0, 1) (the fraction of units dropped), "
                             f"got {rate!r}")
        self.rate = 1 - rate

    def _keep(self):
        keep = self.rate
        if (isinstance(keep, bool) or not isinstance(keep, numbers.Real)
                or not 0 < keep <= 1):
            raise ValueError(f"rate (the keep probability 1 - dropout rate, as the book "
                             f"stores it) must be in (0, 1], got {keep!r}")
        return keep

    def forward(self, inputs, training=None):
        self.inputs = inputs
        x = matrix(inputs, "inputs")
        check_finite(x, "inputs")
        if training is not None and not training:
            self.binary_mask = None  # nothing was dropped: no gradient mask either
            self.output = x.copy()
            return
        keep = self._keep()
        self.binary_mask = np.random.binomial(1, keep, size=x.shape) / keep
        self.output = x * self.binary_mask

    def backward(self, dvalues):
        mask = getattr(self, "binary_mask", None)
        if mask is None:
            raise ValueError("Layer_Dropout.backward needs binary_mask from a training "
                             "forward pass: call forward(inputs) (or forward(inputs, "
                             "training=True)) first")
        dv = matrix(dvalues, "dvalues")
        same_shape(dv, mask.shape, "dvalues", "the shape of forward's inputs")
        with np.errstate(invalid="ignore"):  # inf * 0: refused just below
            out = dv * mask
        check_finite(out, "dvalues")
        self.dinputs = out

    def __repr__(self):
        return f"{type(self).__name__}(rate={1 - self.rate!r})"


class Layer_Input:
    """The model's input "layer" (chapter 18): ``forward(inputs, training)`` sets
    ``output = inputs`` (the next layer checks them)."""

    def forward(self, inputs, training=None):
        self.output = inputs

    def __repr__(self):
        return f"{type(self).__name__}()"


class Activation_Relu:
    """``output = max(0, inputs)``; ``backward``: ``dvalues`` where ``inputs > 0``, else 0."""

    def forward(self, inputs, training=None):
        self.inputs = inputs
        x = matrix(inputs, "inputs")
        out = np.empty_like(x)
        if not k.relu(x, out):
            diagnose("Activation_ReLU.forward", {"inputs": x})
        self.output = out

    def backward(self, dvalues):
        x = matrix(not_before(self, "inputs", "backward", "forward"), "inputs")
        dv = matrix(dvalues, "dvalues")
        same_shape(dv, x.shape, "dvalues", "the shape of forward's inputs")
        out = np.empty_like(dv)  # the book's dvalues.copy()
        if not k.relu_backward(x, dv, out):
            diagnose("Activation_ReLU.backward", {"dvalues": dv, "inputs": x})
        self.dinputs = out

    def predictions(self, outputs):
        """The outputs themselves (chapter 18)."""
        return outputs

    def __repr__(self):
        return f"{type(self).__name__}()"


class Activation_Softmax:
    """Row-wise softmax, computed stably (row max subtracted); ``backward`` multiplies
    ``dvalues`` by each sample's Jacobian ``diag(s) - s s^T``."""

    def forward(self, inputs, training=None):
        self.inputs = inputs
        z = matrix(inputs, "inputs")
        out = np.empty_like(z)
        if not k.softmax_shift(z, out):
            diagnose("Activation_Softmax.forward", {"inputs": z})
        # then the book's own NumPy calls: its softmax bit for bit.  NumPy's float32 exp
        # is not correctly rounded (40% of results differ from the rounded float64
        # exp) and its row sums are pairwise; at the start of training, with
        # near-uniform outputs, a last-bit difference flips predictions and, through
        # Adam, whole steps (tests/test_dropin_training.py).  A compiled copy of
        # NumPy's pairwise sum cost 2 s of compiling for 1 us per call.
        np.exp(out, out=out)
        out /= np.sum(out, axis=1, keepdims=True)
        self.output = out

    def backward(self, dvalues):
        p = matrix(not_before(self, "output", "backward", "forward"), "output")
        dv = matrix(dvalues, "dvalues")
        same_shape(dv, p.shape, "dvalues", "n_samples, n_classes of the output")
        out = np.empty_like(dv)  # the book's np.empty_like(dvalues)
        if not k.softmax_backward(p, dv, out):
            diagnose("Activation_Softmax.backward", {"dvalues": dv, "output": p},
                     out.dtype)
        self.dinputs = out

    def predictions(self, outputs):
        """The class of each row's (first) largest output, as ``np.argmax(outputs,
        axis=1)`` (chapter 18)."""
        z = as_matrix(outputs, "outputs", what="n_classes")
        out = np.empty(z.shape[0], dtype=np.int64)
        k.argmax_rows(z, out)
        return out

    def __repr__(self):
        return f"{type(self).__name__}()"


# The nnfs book's spellings.
Layer_Dense = Dense_Layer
Activation_ReLU = Activation_Relu

def __getattr__(name):
    """The notebook's loss and ``accuracy`` helper live in ``fastnn.losses`` with the
    book's losses; they stay importable from here, where they used to be (imported
    lazily: ``fastnn.losses`` imports this module)."""
    if name in ("Loss_CategoricalCrossentropy", "accuracy"):
        from . import losses

        return getattr(losses, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
