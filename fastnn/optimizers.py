"""The book's optimizers (chapter 10): ``Optimizer_SGD``, ``Optimizer_Adagrad``,
``Optimizer_RMSprop``, ``Optimizer_Adam``.

Same constructor arguments and defaults, attributes (``learning_rate``,
``current_learning_rate``, ``decay``, ``iterations``, ``momentum``/``epsilon``/``rho``/
``beta_1``/``beta_2``) and methods (``pre_update_params``, ``update_params(layer)``,
``post_update_params``) as the book's classes.  The learning-rate decay is evaluated in
Python with the book's expression, so printed rates are the book's digit for digit.  The
optimizer state lives on the layer under the book's names (``weight_momentums``,
``weight_cache``, ``bias_momentums``, ``bias_cache``), created with ``np.zeros_like`` the
first time a layer is updated, exactly when the book creates it -- so a layer can be
handed between these optimizers and the book's.  The update itself is one compiled pass
per weights or biases array (``fastnn.kernels.optim.optimizer_step``, shared with the
compiled trainer), in place like the book's ``+=``.

Dtypes: the update is computed in NumPy's promotion of the arrays involved (parameters,
gradients, state); parameters keep their dtype (updated in place, as ``+=`` does), and
state arrays take the computed dtype, as the book's reassignments do (Adagrad's
``cache +=`` keeps the cache's).

``KINDS`` maps the optimizer names to the kernel's codes, ``OPTIMIZERS`` to the classes,
and ``optimizer_settings(optimizer)`` reads the settings of any of these optimizers or
of the book's own (duck-typed by class name and attributes) for the compiled trainer.
"""

import math
import numbers

import numpy as np

from ._validation import float_dtype
from .kernels import optim
from .kernels.checks import all_finite

#: optimizer name -> the kernel's code (``fastnn.kernels.optim``)
KINDS = {"sgd": optim.SGD, "adagrad": optim.ADAGRAD, "rmsprop": optim.RMSPROP,
         "adam": optim.ADAM}

#: the settings each kind has besides learning_rate and decay, in the book's order
HYPERPARAMETERS = {"sgd": ("momentum",), "adagrad": ("epsilon",),
                   "rmsprop": ("epsilon", "rho"), "adam": ("epsilon", "beta_1", "beta_2")}


# --- checks ---------------------------------------------------------------------------


def _real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _positive(value, name):
    if not _real(value, name) > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _non_negative(value, name):
    if not _real(value, name) >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _unit_open(value, name):
    if not 0 < _real(value, name) < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return value


def _momentum(value, name):
    if not 0 <= _real(value, name) < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def _iterations(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


#: setting -> its check (the same rules for these classes and the book's objects)
CHECKS = {
    "learning_rate": _positive,
    "current_learning_rate": _positive,
    "decay": _non_negative,
    "momentum": _momentum,
    "epsilon": _positive,
    "rho": _unit_open,
    "beta_1": _unit_open,
    "beta_2": _unit_open,
    "iterations": _iterations,
}


# --- the optimizers -------------------------------------------------------------------


class _Optimizer:
    """What the book's optimizers share: decay, iteration count and the update loop."""

    #: the optimizer's name in ``KINDS``
    kind = None
    #: (state attribute for m, state attribute for v) per parameter, None: unused
    _STATE = None

    def __init__(self, learning_rate, decay, **hyper):
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.current_learning_rate = learning_rate
        self.decay = _non_negative(decay, "decay")
        self.iterations = 0
        for name, value in hyper.items():
            setattr(self, name, CHECKS[name](value, name))

    def pre_update_params(self):
        """Call once before any parameter updates: the book's learning-rate decay."""
        if self.decay:
            self.current_learning_rate = self.learning_rate * \
                (1. / (1. + self.decay * self.iterations))

    def post_update_params(self):
        """Call once after all parameter updates."""
        self.iterations += 1

    def update_params(self, layer):
        """One update of ``layer.weights`` and ``layer.biases`` from ``layer.dweights``
        and ``layer.dbiases`` (set by ``backward``), in place.  Everything is checked
        before anything is written."""
        self._create_state(layer)
        h1, h2, eps = self._hyper()
        lr = float(self.current_learning_rate)
        it = int(self.iterations)
        code = KINDS[self.kind]
        steps = [_prepare(layer, param, grad, *self._state_names(prefix))
                 for prefix, param, grad in (("weight", "weights", "dweights"),
                                             ("bias", "biases", "dbiases"))]
        for step in steps:
            _apply(code, layer, step, lr, h1, h2, eps, it)

    def settings(self):
        """This optimizer's settings as a dict (``optimizer_settings``)."""
        return optimizer_settings(self)

    # the parts that differ between the optimizers
    def _create_state(self, layer):
        if not hasattr(layer, "weight_cache"):  # Adagrad, RMSprop (Adam: all four)
            _check_parameters(layer)
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_cache = np.zeros_like(layer.biases)

    def _state_names(self, prefix):
        return None, f"{prefix}_cache"

    def _hyper(self):
        return 0.0, 0.0, float(self.epsilon)

    def __repr__(self):
        args = ", ".join(f"{name}={getattr(self, name)!r}"
                         for name in ("learning_rate", "decay", *HYPERPARAMETERS[self.kind]))
        return f"{type(self).__name__}({args})"


class Optimizer_SGD(_Optimizer):
    """SGD with optional momentum: ``m = momentum * m - lr * g; w += m``, or ``w += -lr *
    g`` without momentum; ``weight_momentums``/``bias_momentums`` are created on the
    layer the first time it is updated with momentum."""

    kind = "sgd"

    def __init__(self, learning_rate=1., decay=0., momentum=0.):
        super().__init__(learning_rate, decay, momentum=momentum)

    def _create_state(self, layer):
        if self.momentum and not hasattr(layer, "weight_momentums"):
            _check_parameters(layer)
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)

    def _state_names(self, prefix):
        return (f"{prefix}_momentums" if self.momentum else None), None

    def _hyper(self):
        return float(self.momentum), 0.0, 0.0


class Optimizer_Adagrad(_Optimizer):
    """Adagrad: ``cache += g**2; w += -lr * g / (sqrt(cache) + epsilon)``."""

    kind = "adagrad"

    def __init__(self, learning_rate=1., decay=0., epsilon=1e-7):
        super().__init__(learning_rate, decay, epsilon=epsilon)


class Optimizer_RMSprop(_Optimizer):
    """RMSprop: ``cache = rho * cache + (1 - rho) * g**2``, then as Adagrad."""

    kind = "rmsprop"

    def __init__(self, learning_rate=0.001, decay=0., epsilon=1e-7, rho=0.9):
        super().__init__(learning_rate, decay, epsilon=epsilon, rho=rho)

    def _hyper(self):
        return float(self.rho), 0.0, float(self.epsilon)


class Optimizer_Adam(_Optimizer):
    """Adam with the book's bias correction ``1 - beta ** (iterations + 1)``: ``m =
    beta_1 * m + (1 - beta_1) * g``, ``cache = beta_2 * cache + (1 - beta_2) * g**2``,
    ``w += -lr * m_hat / (sqrt(cache_hat) + epsilon)``.  All four state arrays are
    created together when the layer has no ``weight_cache`` yet."""

    kind = "adam"

    def __init__(self, learning_rate=0.001, decay=0., epsilon=1e-7, beta_1=0.9,
                 beta_2=0.999):
        super().__init__(learning_rate, decay, epsilon=epsilon, beta_1=beta_1,
                         beta_2=beta_2)

    def _create_state(self, layer):
        if not hasattr(layer, "weight_cache"):
            _check_parameters(layer)
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
            layer.bias_cache = np.zeros_like(layer.biases)

    def _state_names(self, prefix):
        return f"{prefix}_momentums", f"{prefix}_cache"

    def _hyper(self):
        return float(self.beta_1), float(self.beta_2), float(self.epsilon)


#: optimizer name -> class
OPTIMIZERS = {cls.kind: cls for cls in (Optimizer_SGD, Optimizer_Adagrad, Optimizer_RMSprop,
                                        Optimizer_Adam)}

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_EMPTY = {_F32: np.empty(0, _F32), _F64: np.empty(0, _F64)}


def _float_array(value, name):
    """A float32/float64 ndarray attribute of a layer, or an error naming it."""
    if type(value) is np.ndarray and (value.dtype is _F32 or value.dtype is _F64):
        return value
    if value is None:
        raise ValueError(f"the layer has no {name}: call its forward and backward before "
                         f"update_params")
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f" \
            or value.dtype.itemsize not in (4, 8):
        got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise TypeError(f"{name} must be a float32 or float64 ndarray, got {got}")
    return value


def _prepare(layer, param, grad, m_name, v_name):
    """Check ``layer.<param>``, its gradient ``layer.<grad>`` and the state
    ``layer.<m_name>``/``layer.<v_name>`` (None: unused), and flatten them for one
    ``optimizer_step``: a tuple for ``_apply``.

    The common case -- every array C-contiguous, writeable and of one dtype -- gives
    flat views, updated in place; anything else goes through copies in the computed
    dtype, written back as the book's statements would (``_apply``)."""
    w = _float_array(getattr(layer, param, None), param)
    g = _float_array(getattr(layer, grad, None), grad)
    shape = w.shape
    if g.shape != shape:
        raise ValueError(f"{grad} must have the shape of {param}, {shape}, got {g.shape}")
    m = v = None
    dt = w.dtype
    same = g.dtype is dt
    if m_name is not None:
        m = _float_array(getattr(layer, m_name, None), m_name)
        if m.shape != shape:
            raise ValueError(f"{m_name} must have the shape of {param}, {shape}, got "
                             f"{m.shape}")
        same = same and m.dtype is dt
    if v_name is not None:
        v = _float_array(getattr(layer, v_name, None), v_name)
        if v.shape != shape:
            raise ValueError(f"{v_name} must have the shape of {param}, {shape}, got "
                             f"{v.shape}")
        same = same and v.dtype is dt
    if not same:
        dt = float_dtype(*(a.dtype for a in (w, g, m, v) if a is not None))
    if not w.flags.writeable:
        raise ValueError(f"{param} is read-only: the update writes it in place")
    gf = g.reshape(-1) if g.dtype is dt and g.flags.c_contiguous and g.flags.aligned \
        else np.ascontiguousarray(g, dtype=dt).reshape(-1)
    if not all_finite(gf):
        raise ValueError(f"{grad} must be finite, but it contains NaN or infinity")
    wf, w_copy = _flat(w, dt)
    mf, m_copy = _flat(m, dt) if m is not None else (_EMPTY[dt], False)
    vf, v_copy = _flat(v, dt) if v is not None else (_EMPTY[dt], False)
    return (w, wf, w_copy, gf, m_name, m, mf, m_copy, v_name, v, vf, v_copy)


def _apply(code, layer, prepared, lr, h1, h2, eps, it):
    """The ``optimizer_step`` of a ``_prepare``d parameter, and the write-backs."""
    w, wf, w_copy, gf, m_name, m, mf, m_copy, v_name, v, vf, v_copy = prepared
    optim.optimizer_step(code, wf, gf, mf, vf, lr, h1, h2, eps, it)
    if w_copy:
        w[...] = wf.reshape(w.shape)  # in place, like the book's +=
    if m_copy:
        _write_back(code, layer, m_name, m, mf)
    if v_copy:
        _write_back(code, layer, v_name, v, vf)


def _check_parameters(layer):
    """Before state is made from them (``np.zeros_like``): float arrays."""
    for name in ("weights", "biases"):
        _float_array(getattr(layer, name, None), name)


def _write_back(code, layer, name, old, new):
    """Store an updated state array computed in a copy: in place for Adagrad (the book's
    ``cache +=`` keeps the cache's dtype), else as a new array of the computed dtype (the
    book's ``layer.<name> = ...``)."""
    if code == optim.ADAGRAD:
        old[...] = new.reshape(old.shape)
    else:
        setattr(layer, name, new.reshape(old.shape))


def _flat(a, dt):
    """(``a`` as a 1-D C-contiguous writeable array of ``dt``, whether that is a copy): a
    view when ``a`` already is one."""
    if a.dtype is dt and a.flags.carray:  # C-contiguous, aligned and writeable
        return a.reshape(-1), False
    return np.array(a, dtype=dt, order="C").reshape(-1), True


# --- settings for the compiled trainer ---------------------------------------------------

_CLASS_KINDS = {"Optimizer_SGD": "sgd", "Optimizer_Adagrad": "adagrad",
                "Optimizer_RMSprop": "rmsprop", "Optimizer_Adam": "adam"}


def optimizer_kind(optimizer):
    """"sgd", "adagrad", "rmsprop" or "adam" for one of these optimizers or the book's
    (by class name, subclasses included); TypeError otherwise."""
    for cls in type(optimizer).__mro__:
        kind = _CLASS_KINDS.get(cls.__name__)
        if kind is not None:
            return kind
    raise TypeError(f"optimizer must be one of the book's optimizers ({', '.join(_CLASS_KINDS)}"
                    f") or a name ({', '.join(KINDS)}), got {type(optimizer).__name__}")


def optimizer_settings(optimizer):
    """The settings of ``optimizer`` -- one of these classes or the book's own, recognised
    by class name -- as a dict: ``kind`` ("sgd", "adagrad", "rmsprop", "adam"),
    ``learning_rate``, ``decay``, the kind's hyperparameters (``momentum``; ``epsilon``;
    ``epsilon``, ``rho``; ``epsilon``, ``beta_1``, ``beta_2``), ``iterations`` and
    ``current_learning_rate``: floats (an int for ``iterations``), each checked with the
    constructors' rules (TypeError/ValueError naming the attribute)."""
    kind = optimizer_kind(optimizer)
    out = {"kind": kind}
    for name in ("learning_rate", "decay", *HYPERPARAMETERS[kind], "iterations",
                 "current_learning_rate"):
        if not hasattr(optimizer, name):
            raise ValueError(f"optimizer ({type(optimizer).__name__}) has no attribute "
                             f"{name!r}")
        value = CHECKS[name](getattr(optimizer, name), name)
        out[name] = int(value) if name == "iterations" else float(value)
    return out
