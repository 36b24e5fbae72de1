"""The notebook's classes, compiled: a drop-in for the nnfs notebook/book code.

Same constructors, attributes and ``forward`` semantics as the seed notebook
(``Dense_Layer``, ``Activation_Relu``, ``Activation_Softmax``,
``Loss_CategoricalCrossentropy``) and the book's spellings (``Layer_Dense``,
``Activation_ReLU``, ``Loss.calculate``).  Weights are drawn from NumPy's global RNG
with the notebook's own expression, so a seeded notebook gets the same weights, and
``np.random.randn``/``np.zeros`` are looked up at call time, so ``nnfs.init()`` works
whether it runs before or after ``import fastnn``.  Users may assign or mutate
``weights``/``biases`` freely: every ``forward`` reads them afresh.
"""

import numpy as np

from ._validation import (
    as_labels,
    as_matrix,
    as_numeric_array,
    as_positive_int,
    float_dtype,
)
from .kernels import layers as k


class Dense_Layer:
    """Fully connected layer: ``output = inputs @ weights + biases``."""

    def __init__(self, n_inputs, n_neurons):
        n_inputs = as_positive_int(n_inputs, "n_inputs")
        n_neurons = as_positive_int(n_neurons, "n_neurons")
        self.weights = 0.01 * np.random.randn(n_inputs, n_neurons)
        self.biases = np.zeros((1, n_neurons))

    def forward(self, inputs):
        self.inputs = inputs
        w = as_matrix(self.weights, "weights", what="n_neurons")
        n_in, n_out = w.shape
        b = _as_bias(self.biases, n_out)
        x = as_numeric_array(inputs, "inputs")
        dot_dtype = float_dtype(x.dtype, w.dtype)  # np.dot(x, w) + b: two roundings,
        out_dtype = float_dtype(dot_dtype, b.dtype)  # from x's own dtype
        x = as_matrix(x, "inputs", n_cols=n_in, what="n_inputs")
        out = np.empty((x.shape[0], n_out), dtype=out_dtype)
        k.dense_forward(x, w.astype(np.float64, copy=False), b.astype(out_dtype, copy=False),
                        np.empty(0, dot_dtype), np.empty(n_out), out)
        self.output = out

    def __repr__(self):
        w = np.shape(self.weights)
        return f"{type(self).__name__}(n_inputs={w[0]}, n_neurons={w[1]})"


def _as_bias(biases, n_out):
    b = np.asarray(biases)
    if b.shape not in ((1, n_out), (n_out,)):
        raise ValueError(f"biases must have shape (1, {n_out}), got {b.shape}")
    return as_matrix(b.reshape(1, n_out), "biases", what="n_neurons")[0]


class Activation_Relu:
    """``output = max(0, inputs)``."""

    def forward(self, inputs):
        self.inputs = inputs
        x = as_matrix(inputs, "inputs")
        out = np.empty_like(x)
        k.relu(x, out)
        self.output = out

    def __repr__(self):
        return f"{type(self).__name__}()"


class Activation_Softmax:
    """Row-wise softmax, computed stably (row max subtracted)."""

    def forward(self, inputs):
        self.inputs = inputs
        z = as_matrix(inputs, "inputs")
        out = np.empty_like(z)
        k.softmax(z, out)
        self.output = out

    def __repr__(self):
        return f"{type(self).__name__}()"


class Loss_CategoricalCrossentropy:
    """Mean of ``-log(clip(p[label], 1e-7, 1 - 1e-7))``.

    ``forward`` returns the mean, as in the notebook; ``calculate`` is the book's name
    for the same.  ``y_true`` is 1-D integer labels or 2-D one-hot rows."""

    def forward(self, y_pred, y_true):
        p = as_matrix(y_pred, "y_pred", what="n_classes")
        labels = as_labels(y_true, p.shape[0], p.shape[1], name="y_true")
        return p.dtype.type(k.crossentropy_sum(p, labels) / p.shape[0])

    def calculate(self, output, y):
        return self.forward(output, y)

    def __repr__(self):
        return f"{type(self).__name__}()"


def accuracy(y_pred, y_true):
    """Fraction of rows whose first maximum sits at the label (``np.argmax`` rule)."""
    p = as_matrix(y_pred, "y_pred", what="n_classes")
    labels = as_labels(y_true, p.shape[0], p.shape[1], name="y_true")
    return k.count_correct(p, labels) / p.shape[0]


# The nnfs book's spellings.
Layer_Dense = Dense_Layer
Activation_ReLU = Activation_Relu
