"""The book's losses and accuracies, compiled where it pays (chapters 5, 9, 14, 18-19).

* ``Loss``: ``regularization_loss(layer)`` (chapter 14) or ``regularization_loss()`` over
  the layers given to ``remember_trainable_layers`` (chapter 18); ``calculate(output, y,
  *, include_regularization=False)`` with chapter 19's accumulation
  (``accumulated_sum``/``accumulated_count``, ``calculate_accumulated``, ``new_pass``).
* ``Loss_CategoricalCrossentropy``: ``forward(y_pred, y_true)`` returns the *mean* loss,
  as the seed notebook's class does (the notebook compares its return value); the book
  only sees per-sample losses through ``calculate``, which returns the book's mean and
  accumulates per sample.  ``backward(dvalues, y_true)``: ``-y_onehot / dvalues / N``.
* ``Activation_Softmax_Loss_CategoricalCrossentropy``: ``.activation``, ``.loss``,
  ``forward(inputs, y_true)`` (the mean loss; sets ``output``), ``backward(dvalues,
  y_true)``: ``(dvalues - onehot) / N``.
* ``Accuracy``, ``Accuracy_Categorical(*, binary=False)`` (chapters 18-19), and the
  notebook-era helper ``accuracy(y_pred, y_true)``.

Labels are 1-D class indices (any integer dtype; nnfs's are uint8) or 2-D one-hot rows.
Every class relies only on the book's attribute names, so each mixes with the book's own
classes (the book's layers in ``regularization_loss``, a book activation or loss put in
``.activation``/``.loss``).
"""

import numpy as np

from ._validation import as_labels, as_matrix
from .kernels import layers as k
from .kernels.optim import penalty
from .layers import diagnose, matrix, regularizer

_PARAMETERS = (("weights", "weight_regularizer_l1", "weight_regularizer_l2"),
               ("biases", "bias_regularizer_l1", "bias_regularizer_l2"))


def _labels(y_true, n, c):
    """``y_true`` as int64 class indices (range checked by the kernels).  int64 always,
    not nnfs's uint8 as it comes: one compiled signature per kernel instead of three (a
    copy of the labels costs ~1 µs per call, each signature ~0.5 s of compiling)."""
    labels = as_labels(y_true, n, c, name="y_true", check=False)
    return labels if labels.dtype is _INT64 else labels.astype(np.int64)


_INT64 = np.dtype(np.int64)


def _label_error(status, labels, n_classes, name):
    if status == k.BAD_LABEL:
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise ValueError(f"{name} labels must be in [0, {n_classes}) for {n_classes} "
                         f"classes, got {bad}")


class Loss:
    """The book's common loss: regularisation and batch accumulation.

    Subclasses give ``forward(y_pred, y_true)`` returning per-sample losses, as in the
    book (``Loss_CategoricalCrossentropy`` overrides the data-loss step instead: its
    ``forward`` returns the mean)."""

    def regularization_loss(self, layer=None):
        """``l1 * sum|w| + l2 * sum(w * w)`` for the weights and biases of ``layer``
        (chapter 14) or, without one, of every layer given to
        ``remember_trainable_layers`` (chapter 18).  Terms whose factor is 0 are
        skipped; the result is 0 (an int, as the book's) when there are none, else a
        scalar of the parameters' dtype."""
        if layer is not None:
            layers = (layer,)
        else:
            layers = getattr(self, "trainable_layers", None)
            if layers is None:
                raise ValueError("regularization_loss() needs a layer, or the layers "
                                 "given to remember_trainable_layers(layers) first")
        total = 0
        for lay in layers:
            for attr, l1_name, l2_name in _PARAMETERS:
                l1 = regularizer(getattr(lay, l1_name, 0), l1_name)
                l2 = regularizer(getattr(lay, l2_name, 0), l2_name)
                if l1 > 0 or l2 > 0:
                    p = as_matrix(np.atleast_2d(getattr(lay, attr)), attr)
                    total += p.dtype.type(penalty(p.reshape(-1), float(l1), float(l2)))
        return total

    def remember_trainable_layers(self, trainable_layers):
        """The layers ``regularization_loss()`` sums over (chapter 18)."""
        self.trainable_layers = trainable_layers

    def calculate(self, output, y, *, include_regularization=False):
        """The mean data loss over the batch (and ``regularization_loss()`` as a second
        value when ``include_regularization``); adds the batch's per-sample losses to
        ``accumulated_sum``/``accumulated_count`` (chapter 19)."""
        data_loss, total, count = self._data_loss(output, y)
        if not hasattr(self, "accumulated_count"):
            self.new_pass()
        self.accumulated_sum += total
        self.accumulated_count += count
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def _data_loss(self, output, y):
        """(mean, sum, count) of the per-sample losses ``forward`` returns (the book's
        ``np.mean``/``np.sum``/``len``)."""
        sample_losses = self.forward(output, y)
        return np.mean(sample_losses), np.sum(sample_losses), len(sample_losses)

    def calculate_accumulated(self, *, include_regularization=False):
        """The mean loss over the samples seen since ``new_pass()`` (chapter 19)."""
        count = getattr(self, "accumulated_count", 0)
        if not count:
            raise ValueError("calculate_accumulated() needs at least one calculate() "
                             "since new_pass()")
        data_loss = self.accumulated_sum / count
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def new_pass(self):
        """Start accumulating anew (chapter 19)."""
        self.accumulated_sum = 0
        self.accumulated_count = 0

    def __repr__(self):
        return f"{type(self).__name__}()"


class Loss_CategoricalCrossentropy(Loss):
    """Mean of ``-log(clip(p[label], 1e-7, 1 - 1e-7))``.

    ``forward`` returns the mean, as in the notebook; ``calculate`` is the book's name
    for the same (plus accumulation).  ``y_true`` is 1-D integer labels or 2-D one-hot
    rows."""

    def _total(self, y_pred, y_true):
        """(sum of the per-sample losses in float64, number of samples, p, labels as
        given)."""
        p = matrix(y_pred, "y_pred", what="n_classes")
        n, c = p.shape
        labels = _labels(y_true, n, c)
        total, status = k.crossentropy_sum(p, labels)
        if status != k.OK:
            _label_error(status, labels, c, "y_true")
            diagnose("Loss_CategoricalCrossentropy", {"y_pred": p})
        return total, n, p

    def forward(self, y_pred, y_true):
        total, n, p = self._total(y_pred, y_true)
        return p.dtype.type(total / n)  # the notebook's: argmax of one-hot rows

    def _data_loss(self, output, y):
        # in the predictions' dtype, as ``forward`` (and the notebook): with one-hot rows
        # of a wider dtype the book's own sum(p * y) is in that dtype, the value the same
        # to the predictions' rounding (``calculate == forward`` is pinned by
        # tests/test_kernels_parity.py)
        total, n, p = self._total(output, y)
        t = p.dtype.type
        return t(total / n), t(total), n

    def backward(self, dvalues, y_true):
        """``dinputs = -y_onehot / dvalues / n_samples`` (the book's chapter 9), in the
        dtype NumPy gives those arrays: with class indices the book builds the one-hot
        rows with ``np.eye`` (float64, float32 under ``nnfs.init()``), else ``y_true``'s
        own.  A zero probability at a label (an infinite gradient) is refused."""
        dv = matrix(dvalues, "dvalues", what="n_classes")
        n, c = dv.shape
        y = y_true if isinstance(y_true, np.ndarray) else np.asarray(y_true)
        onehot_dtype = y.dtype if y.ndim == 2 else np.eye(1).dtype
        labels = _labels(y_true, n, c)
        out_dtype = np.result_type(onehot_dtype, dv.dtype)
        if out_dtype.kind != "f" or out_dtype.itemsize > 8:
            out_dtype = np.dtype(np.float64)
        elif out_dtype.itemsize < 4:
            out_dtype = np.dtype(np.float32)
        out = np.empty((n, c), dtype=out_dtype)
        status = k.crossentropy_backward(dv, labels, out)
        if status != k.OK:
            _label_error(status, labels, c, "y_true")
            if status == k.ZERO_AT_LABEL:
                raise ValueError("dvalues is 0 at a sample's label: the cross-entropy "
                                 "gradient -1 / dvalues is infinite there (the forward "
                                 "pass clips probabilities to [1e-7, 1 - 1e-7], the "
                                 "backward pass does not)")
            diagnose("Loss_CategoricalCrossentropy.backward", {"dvalues": dv})
        self.dinputs = out


class Activation_Softmax_Loss_CategoricalCrossentropy:
    """Softmax and categorical cross-entropy together (chapter 9): ``forward(inputs,
    y_true)`` runs ``self.activation`` and ``self.loss.calculate`` and returns the mean
    loss (setting ``output``); ``backward(dvalues, y_true)`` sets ``dinputs = (dvalues -
    onehot) / n_samples``, the gradient of both at once (chapter 18's ``Model`` calls it
    on the softmax output without ``forward``)."""

    def __init__(self):
        from .layers import Activation_Softmax

        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()

    def forward(self, inputs, y_true):
        self.activation.forward(inputs)
        self.output = self.activation.output
        return self.loss.calculate(self.output, y_true)

    def backward(self, dvalues, y_true):
        dv = matrix(dvalues, "dvalues", what="n_classes")
        n, c = dv.shape
        labels = _labels(y_true, n, c)
        out = np.empty_like(dv)  # the book's dvalues.copy(), then / samples
        status = k.softmax_crossentropy_backward(dv, labels, out)
        if status != k.OK:
            _label_error(status, labels, c, "y_true")
            diagnose("Activation_Softmax_Loss_CategoricalCrossentropy.backward",
                     {"dvalues": dv})
        self.dinputs = out

    def __repr__(self):
        return f"{type(self).__name__}()"


# --- accuracy ---------------------------------------------------------------------------


class Accuracy:
    """The book's common accuracy (chapters 18-19): the mean of ``compare``'s booleans,
    accumulated over batches like ``Loss``."""

    def calculate(self, predictions, y):
        comparisons = self.compare(predictions, y)
        accuracy = np.mean(comparisons)
        if not hasattr(self, "accumulated_count"):
            self.new_pass()
        self.accumulated_sum += np.sum(comparisons)
        self.accumulated_count += len(comparisons)
        return accuracy

    def calculate_accumulated(self):
        count = getattr(self, "accumulated_count", 0)
        if not count:
            raise ValueError("calculate_accumulated() needs at least one calculate() "
                             "since new_pass()")
        return self.accumulated_sum / count

    def new_pass(self):
        self.accumulated_sum = 0
        self.accumulated_count = 0

    def __repr__(self):
        return f"{type(self).__name__}()"


class Accuracy_Categorical(Accuracy):
    """Classification accuracy: ``predictions == y``, with one-hot ``y`` turned into
    class indices first unless ``binary`` (chapter 16's 0/1 outputs, compared as they
    are)."""

    def __init__(self, *, binary=False):
        self.binary = binary

    def init(self, y):
        """Nothing to prepare for classification (the book's ``Model.train`` calls it)."""

    def compare(self, predictions, y):
        pred = np.asarray(predictions)
        y = np.asarray(y)
        for name, a in (("predictions", pred), ("y", y)):
            if a.dtype.kind not in "biuf":
                raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
        if not self.binary and y.ndim == 2:
            y = np.argmax(as_matrix(y, "y", what="n_classes"), axis=1)
        if pred.ndim == 0 or pred.shape != y.shape:
            raise ValueError(f"predictions and y must have the same shape (one prediction "
                             f"per label), got {pred.shape} and {y.shape}")
        return pred == y

    def __repr__(self):
        return f"{type(self).__name__}(binary={self.binary!r})"


def accuracy(y_pred, y_true):
    """Fraction of rows whose first maximum sits at the label (``np.argmax`` rule)."""
    p = as_matrix(y_pred, "y_pred", what="n_classes")
    labels = as_labels(y_true, p.shape[0], p.shape[1], name="y_true")
    return k.count_correct(p, labels) / p.shape[0]
