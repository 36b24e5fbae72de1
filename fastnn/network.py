"""``MLP``: a dense ReLU network of any depth whose parameters live in one flat vector.

Layer ``l`` owns ``W`` (``sizes[l] x sizes[l+1]``) and then ``b`` (``sizes[l+1]``)
inside ``params``; ``layers[l].weights``/``.biases`` are views into it, so the search
can perturb the whole network with one vector operation and a future backward pass can
write gradients in the same layout.
"""

import threading

import numpy as np

from ._validation import (
    as_labels,
    as_matrix,
    as_numeric_array,
    as_positive_int,
    check_finite,
    check_label_range,
    resolve_dtype,
)
from .kernels import network as k

#: Target bytes of one scratch block: small enough to stay in L2 with wide layers.
_WORK_BYTES = 1024 * 1024
_MAX_BLOCK = 1024
_MIN_BLOCK = 32  # the loss kernel pads blocks to a multiple of 32


def param_count(sizes):
    """Number of parameters (weights and biases) of a network with these layer sizes."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def make_work(sizes, dtype, max_samples=None, count=None):
    """A zeroed, 64-byte aligned scratch array for ``kernels.network`` (rows x block),
    or ``count`` of them stacked (count x rows x block, each one aligned).

    The block (samples per sweep) is the largest power of two up to 1024 whose scratch
    fits in about 1 MB (L2): long sweeps amortise loop set-up, which dominates short
    ones (measured in ``bench/``).  ``max_samples`` caps it for one-off calls."""
    dtype = np.dtype(dtype)
    rows = k.work_rows(sizes)
    block = _MAX_BLOCK
    while block > _MIN_BLOCK and rows * block * dtype.itemsize > _WORK_BYTES:
        block //= 2
    if max_samples is not None:
        while block > _MIN_BLOCK and block // 2 >= max_samples:
            block //= 2
    shape = (rows, block) if count is None else (count, rows, block)
    return aligned_zeros(shape, dtype)  # block * itemsize is a multiple of 64: every slab


def aligned_zeros(shape, dtype):
    """A zeroed C-contiguous array whose data starts on a 64-byte boundary (a cache line,
    and the widest vector load)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    pad = 64 // dtype.itemsize
    raw = np.zeros(n + pad, dtype=dtype)
    start = (-raw.ctypes.data % 64) // dtype.itemsize
    return raw[start:start + n].reshape(shape)


class Dense:
    """One layer of an ``MLP``: ``weights`` and ``biases`` are views into ``MLP.params``.

    Assigning to them copies into the shared vector (the shape must match)."""

    def __init__(self, params, offset, n_inputs, n_neurons):
        end = offset + n_inputs * n_neurons
        self._w = params[offset:end].reshape(n_inputs, n_neurons)
        self._b = params[end:end + n_neurons].reshape(1, n_neurons)

    @property
    def weights(self):
        return self._w

    @weights.setter
    def weights(self, value):
        _assign(self._w, value, "weights")

    @property
    def biases(self):
        return self._b

    @biases.setter
    def biases(self, value):
        value = as_numeric_array(value, "biases")
        if value.shape == (self._b.shape[1],):
            value = value.reshape(self._b.shape)
        _assign(self._b, value, "biases")

    def __repr__(self):
        return f"Dense(n_inputs={self._w.shape[0]}, n_neurons={self._w.shape[1]})"


def _assign(target, value, name):
    """Copy ``value`` into the parameter view ``target``, refusing anything that is not
    a finite real array of the same shape (the network is left unchanged)."""
    value = as_numeric_array(value, name)
    if value.shape != target.shape:
        raise ValueError(f"{name} must have shape {target.shape}, got {value.shape}")
    with np.errstate(over="ignore"):
        value = np.asarray(value, dtype=target.dtype)
    check_finite(np.ascontiguousarray(value), name)
    target[...] = value


class MLP:
    """Dense network ``layer_sizes[0] -> ... -> layer_sizes[-1]``, ReLU between layers,
    softmax at the end, clipped categorical cross-entropy as the loss.

    Weights start as ``0.01 * N(0, 1)`` and biases as 0, like the notebook.  With
    ``seed=None`` the normals come from NumPy's global RNG, drawn layer by layer exactly
    as ``Dense_Layer`` draws them (so ``np.random.seed(0)`` gives the notebook's
    weights); with an int seed, from ``np.random.default_rng(seed)``.
    """

    def __init__(self, layer_sizes, seed=None, dtype="float32"):
        try:
            sizes = [as_positive_int(s, "layer_sizes entries") for s in layer_sizes]
        except TypeError as exc:
            if not hasattr(layer_sizes, "__iter__"):
                raise TypeError("layer_sizes must be a sequence of ints, e.g. [2, 64, 3]") from None
            raise exc
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least 2 entries (inputs, outputs), got {sizes}")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
            if seed < 0:
                raise ValueError(f"seed must be >= 0, got {seed}")
        self.dtype = resolve_dtype(dtype)
        self.sizes = np.array(sizes, dtype=np.int64)
        # this shape's kernels (made on first use of the family; compiled on first call)
        self._loss_kernel = k.loss_kernel(k.loss_family(sizes))
        family = k.forward_family(sizes)
        self._forward_kernel = k.forward_kernel(family)
        self._predict_kernel = k.predict_kernel(family)
        self._n_in, self._n_out = sizes[0], sizes[-1]  # plain ints: cheap per call
        self.params = np.zeros(param_count(sizes), dtype=self.dtype)
        self.layers = []
        offset = 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False):
            self.layers.append(Dense(self._params, offset, n_in, n_out))
            offset += n_in * n_out + n_out
        rng = np.random.default_rng(seed) if seed is not None else None
        for layer in self.layers:
            shape = layer.weights.shape
            normals = rng.standard_normal(shape) if rng is not None else np.random.randn(*shape)
            layer.weights[...] = 0.01 * normals
        self._local = threading.local()
        #: how the parameters were made, recorded by ``fastnn.search``/``fastnn.train``
        #: and written by ``save`` (``fastnn.modelfile.provenance``)
        self.made_by = None

    # -- model files ----------------------------------------------------------------------
    def save(self, path, *, metadata=None):
        """Write the network to ``path`` (a ``.npz`` model file, no pickle): sizes, dtype,
        parameters, how the last ``fastnn.search``/``train`` made them, the data's
        fingerprint and the final metrics, and ``metadata`` (a JSON-able dict of yours).
        ``fastnn.load(path)`` or ``MLP.load(path)`` gives it back."""
        from . import modelfile
        return modelfile.save(self, path, metadata=metadata)

    @classmethod
    def load(cls, path):
        """The ``MLP`` saved in ``path`` (``ModelFileError`` if it is not a valid model
        file of an ``MLP``)."""
        from . import modelfile
        return modelfile.load(path, expect="mlp")

    # -- parameters -----------------------------------------------------------------
    @property
    def params(self):
        """The flat parameter vector (a live view: writing to it changes the network)."""
        return self._params

    @params.setter
    def params(self, value):
        if not hasattr(self, "_params"):
            self._params = value
            return
        _assign(self._params, value, "params")

    @property
    def n_params(self):
        return self._params.shape[0]

    @property
    def n_inputs(self):
        return self._n_in

    @property
    def n_classes(self):
        return self._n_out

    # -- evaluation -------------------------------------------------------------------
    def _work(self):
        """This thread's scratch array (kernels write to it, so threads must not share)."""
        work = getattr(self._local, "work", None)
        if work is None:
            work = self._local.work = make_work(self.sizes, self.dtype)
        return work

    def _inputs(self, X):
        check_finite(self._params, "params")
        return as_matrix(X, "X", n_cols=self._n_in, dtype=self.dtype)

    def forward(self, X):
        """Softmax probabilities, shape (n_samples, n_classes)."""
        x = self._inputs(X)
        out = np.empty((x.shape[0], self.n_classes), dtype=self.dtype)
        self._forward_kernel(x, self._params, self.sizes, self._work(), out)
        return out

    def predict(self, X):
        """Predicted class per sample (int64), the first maximal logit."""
        x = self._inputs(X)
        out = np.empty(x.shape[0], dtype=np.int64)
        self._predict_kernel(x, self._params, self.sizes, self._work(), out)
        return out

    def evaluate(self, X, y):
        """(mean loss, accuracy) in one fused pass; ``y`` is labels or one-hot rows."""
        n_out = self._n_out
        x = as_matrix(X, "X", n_cols=self._n_in, dtype=self.dtype, check=False)
        labels = as_labels(y, x.shape[0], n_out, check=False)
        ok, total, correct = self._loss_kernel(x, labels, self._params, self.sizes,
                                               self._work(), True, True, True)
        if not ok:  # slow path, only to say what is wrong
            check_finite(x, "X")
            check_finite(self._params, "params")
            check_label_range(labels, n_out, "y")
            raise RuntimeError("fastnn: the input check failed but no check names the cause")
        n = x.shape[0]
        return total / n, correct / n

    def loss(self, X, y):
        """Mean clipped categorical cross-entropy (the notebook's loss), as a float."""
        return self.evaluate(X, y)[0]

    def accuracy(self, X, y):
        """Fraction of samples whose predicted class equals the label."""
        return self.evaluate(X, y)[1]

    def copy(self):
        """An independent network with the same sizes, dtype and parameters."""
        other = MLP(self.sizes.tolist(), seed=0, dtype=self.dtype)
        other.params = self._params
        other.made_by = self.made_by
        return other

    def __repr__(self):
        sizes = "-".join(str(s) for s in self.sizes)
        return f"MLP({sizes}, dtype={self.dtype.name}, params={self.n_params})"
