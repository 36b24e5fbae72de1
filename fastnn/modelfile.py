"""Model files: a trained or searched network in one ``.npz``, without pickle.

``save(model, path)`` writes an ``MLP``, the book's ``Model`` (its layers, loss,
accuracy, optimizer settings and the optimizer state on the layers, so training can go
on), a list of dense layers (the notebook's ``Dense_Layer``/the book's ``Layer_Dense``),
or a ``Model``'s parameters alone (``Model.save_parameters``).  ``load(path)`` gives back
the same kind of object; its predictions are bit for bit those of the saved one.

The file is fastnn's ``.npz`` container (``_archive``: no pickle, a format name and
version, a SHA-256 digest over every entry, atomic writes) holding the flat parameter
vector (``params``, in the model's dtype; the layout of ``MLP.params``) and metadata:
the kind, the layer sizes and dtype, the layers, how the network was made (search or
train, their arguments and seed), a fingerprint of the data it was made on, the final
metrics, and the versions that wrote it.  The book's ``Model.save`` pickles the whole
object instead; loading a pickle runs whatever code the file holds.

Loading checks the container (damaged, truncated, tampered, foreign or newer files) and
then every field against every other (sizes against the parameter count, dtype, finite
parameters, the layer list), so a file fastnn did not write -- digest recomputed or
not -- is refused with a ``ModelFileError`` naming what is wrong, never turned into a
network that computes garbage.
"""

import datetime
import math
import numbers

import numpy as np

from . import _archive

FORMAT = "fastnn-model"
VERSION = 1
KINDS = ("mlp", "model", "layers", "parameters")
_DTYPES = ("float32", "float64")
_REGULARIZERS = ("weight_regularizer_l1", "weight_regularizer_l2", "bias_regularizer_l1",
                 "bias_regularizer_l2")
_STATE_NAMES = ("weight_momentums", "weight_cache", "bias_momentums", "bias_cache")
#: the layer entries of a ``model`` file -> the fastnn class that rebuilds them
_LAYER_CLASSES = {"dense": "Layer_Dense", "relu": "Activation_ReLU",
                  "dropout": "Layer_Dropout", "softmax": "Activation_Softmax"}


_KIND_NAMES = {"mlp": "fastnn.MLP", "model": "Model", "layers": "list of dense layers",
               "parameters": "list of (weights, biases) pairs"}


class ModelFileError(ValueError):
    """A model file is damaged, foreign, from a newer fastnn, or inconsistent."""


def _kind():
    return _archive.Kind(
        FORMAT, VERSION, "model file", ModelFileError,
        todo="Restore a good copy or save the model again.",
        foreign="Pass a file written by fastnn's save (model.save, fastnn.save or "
                "--save).",
        newer="It was written by a newer fastnn: upgrade fastnn to load it.")


# --- saving ---------------------------------------------------------------------------


def save(model, path, *, result=None, metadata=None):
    """Write ``model`` -- an ``MLP``, the book's ``Model``, or a list of dense layers
    (the notebook's) -- to ``path`` (used as given; ``.npz`` is the convention).

    ``result``: the ``SearchResult``/``TrainResult`` that made it, recorded as how it was
    made with its final metrics (default: what the last ``fastnn.search``/``train`` of an
    ``MLP`` recorded on it); ``metadata``: a JSON-able dict of your own, stored as is.
    Returns ``path``."""
    from .model import Model
    from .network import MLP

    if isinstance(model, MLP):
        kind, layers = "mlp", None
    elif isinstance(model, Model):
        kind, layers = "model", model.layers
    elif isinstance(model, (list, tuple)):
        kind, layers = "layers", list(model)
    else:
        raise TypeError("model must be a fastnn.MLP, a fastnn.Model or a list of dense "
                        f"layers, got {type(model).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    stack = _stack(model if kind == "mlp" else layers, kind)
    params = stack.flat()
    if not np.isfinite(params).all():
        raise ValueError("the model's parameters hold NaN or inf; refusing to save them")
    arrays = {"params": params}
    meta = {"kind": kind, "sizes": stack.sizes.tolist(), "dtype": stack.dtype.name}
    if kind == "model":
        meta.update(_model_meta(model, stack))
        arrays.update(_model_state(stack))
    elif kind == "layers":
        meta["layers"] = [_dense_entry(layer) for layer in stack.layers]
    made = result.provenance if result is not None else getattr(model, "made_by", None)
    meta.update(_provenance(made), metadata=metadata, **_versions())
    for name, values in ((made or {}).get("history") or {}).items():
        arrays[f"history.{name}"] = values
    _archive.write(path, arrays, meta, _kind())
    return path


def save_parameters(parameters, path):
    """Write a list of ``(weights, biases)`` pairs (``Model.get_parameters()``)."""
    if not isinstance(parameters, (list, tuple)) or not parameters:
        raise TypeError("parameters must be a non-empty list of (weights, biases) pairs")
    layers = []
    for i, pair in enumerate(parameters):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"parameters[{i}] must be a (weights, biases) pair")
        layers.append(_Pair(*pair))
    stack = _stack(layers, "parameters")
    meta = {"kind": "parameters", "sizes": stack.sizes.tolist(), "dtype": stack.dtype.name,
            **_provenance(None), "metadata": None, **_versions()}
    _archive.write(path, {"params": stack.flat()}, meta, _kind())
    return path


class _Pair:
    def __init__(self, weights, biases):
        self.weights, self.biases = weights, biases


def _stack(model, kind):
    from .train import Stack

    try:
        stack = Stack.of(model, None)
    except NotImplementedError as exc:
        raise NotImplementedError(f"cannot save this {kind}: {exc}") from None
    if kind in ("layers", "parameters") and len(stack.layers) != len(model):
        raise ValueError(f"a {kind} list must hold dense layers only (weights and biases); "
                         "save a Model for activations and dropout")
    return stack


def _dense_entry(layer):
    # the notebook's spelling, or the book's (a user's own dense class loads as the book's)
    name = "Dense_Layer" if type(layer).__name__ == "Dense_Layer" else "Layer_Dense"
    entry = {"type": "dense", "class": name}
    for name in _REGULARIZERS:
        entry[name] = float(getattr(layer, name, 0) or 0)
    return entry


def _model_meta(model, stack):
    from .optimizers import optimizer_settings

    if not hasattr(model, "trainable_layers"):
        raise ValueError("call model.finalize() before model.save()")
    model._check()  # the stacks fastnn's Model supports, and nothing else
    entries = []
    for layer in model.layers:
        name = type(layer).__name__
        if hasattr(layer, "weights"):
            entries.append(_dense_entry(layer))
        elif "Dropout" in name:
            entries.append({"type": "dropout", "class": name, "rate": 1.0 - float(layer.rate)})
        elif "Softmax" in name:
            entries.append({"type": "softmax", "class": name})
        elif "Input" not in name:
            entries.append({"type": "relu", "class": name})
    optimizer = getattr(model, "optimizer", None)
    return {"layers": entries, "loss": "Loss_CategoricalCrossentropy",
            "accuracy": "Accuracy_Categorical",
            "optimizer": None if optimizer is None else optimizer_settings(optimizer)}


def _model_state(stack):
    """The optimizer state on the dense layers, in its own dtypes (the book's Model
    under nnfs.init() keeps some of it in float64)."""
    arrays = {}
    for i, layer in enumerate(stack.layers):
        for name in _STATE_NAMES:
            value = getattr(layer, name, None)
            if value is not None:
                arrays[f"state.{i}.{name}"] = np.asarray(value)
    return arrays


def provenance(how, arguments, result, x, labels, xv):
    """What a model file records about the run that made a network: ``made_by`` (``how``:
    "search" or "train", the run's ``arguments``, seed, steps, why it stopped, seconds),
    ``data`` (a fingerprint of the samples and labels, their counts) and ``metrics``
    (final loss and accuracy, on the validation data too when there was some)."""
    from ._archive import fingerprint

    h = result.history
    if how == "search":
        history = {"step": h.step, "loss": h.loss, "accuracy": h.accuracy,
                   "val_loss": h.val_loss, "val_accuracy": h.val_accuracy}
    else:
        history = {"epoch": h.epoch, "loss": h.loss, "accuracy": h.accuracy,
                   "val_loss": h.val_loss, "val_accuracy": h.val_accuracy,
                   "learning_rate": h.learning_rate}
    return {
        "history": {k: np.array(v, dtype=np.int64 if k in ("step", "epoch") else np.float64)
                    for k, v in history.items()},
        "made_by": {"how": how, "arguments": arguments, "seed": int(result.seed),
                    "steps": int(result.steps), "stopped": result.stopped,
                    "seconds": float(result.seconds)},
        "data": {"fingerprint": fingerprint(x, labels), "samples": int(x.shape[0]),
                 "features": int(x.shape[1]), "validation_samples": int(xv.shape[0])},
        "metrics": {"loss": float(result.loss), "accuracy": float(result.accuracy),
                    "val_loss": result.val_loss, "val_accuracy": result.val_accuracy},
    }


def _provenance(made):
    made = dict(made or {})
    return {"made_by": made.get("made_by"), "data": made.get("data"),
            "metrics": made.get("metrics")}


def _versions():
    import numba

    from . import __version__
    return {"fastnn_version": __version__, "numpy_version": np.__version__,
            "numba_version": numba.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")}


# --- loading --------------------------------------------------------------------------


class ModelInfo(dict):
    """A model file's metadata (a dict): ``kind``, ``sizes``, ``dtype``, ``made_by``,
    ``data``, ``metrics``, ``metadata``, ``fastnn_version``, ``created``, ..."""


def read(path):
    """``(params, meta, state)`` of a model file, every field checked."""
    arrays, meta = _archive.read(path, _kind())
    return _check(path, arrays, meta)


def load(path, *, expect=None):
    """The network in model file ``path``: an ``MLP``, a ``Model`` (finalized, its
    optimizer rebuilt with the saved settings and state), a list of dense layers, or a
    list of ``(weights, biases)`` pairs, as it was saved.  ``MLP``s and ``Model``s have
    the file's metadata in ``file_info``.  ``expect``: the kind required (``MLP.load``
    wants an ``mlp``; ``ModelFileError`` otherwise)."""
    params, meta, state = read(path)
    kind, sizes, dtype = meta["kind"], meta["sizes"], np.dtype(meta["dtype"])
    if expect is not None and kind not in ((expect,) if isinstance(expect, str) else expect):
        raise ModelFileError(f"model file {str(path)!r} holds a {_KIND_NAMES[kind]}, not a "
                             f"{_KIND_NAMES[expect if isinstance(expect, str) else expect[0]]}"
                             f"; load it with fastnn.load")
    if kind == "mlp":
        from .network import MLP

        model = MLP(sizes, seed=0, dtype=dtype)
        model.params = params
        model.made_by = {k: meta[k] for k in ("made_by", "data", "metrics", "history")}
    elif kind == "parameters":
        return [(w, b) for w, b in _split(params, sizes)]
    elif kind == "layers":
        model = [_dense_layer(entry, w, b)
                 for entry, (w, b) in zip(meta["layers"], _split(params, sizes), strict=True)]
        return model
    else:
        model = _build_model(meta, params, sizes, state)
    model.file_info = ModelInfo(meta)
    return model


def load_network(path):
    """``(MLP, meta)``: the network of any model file as an ``MLP`` (dense layers, ReLU
    between, softmax at the end; dropout is off at inference), for predictions."""
    from .network import MLP

    params, meta, _ = read(path)
    net = MLP(meta["sizes"], seed=0, dtype=meta["dtype"])
    net.params = params
    return net, ModelInfo(meta)


def _split(params, sizes):
    off = 0
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        w = params[off:off + a * b].reshape(a, b).copy()
        bias = params[off + a * b:off + a * b + b].reshape(1, b).copy()
        off += a * b + b
        yield w, bias


def _quietly(make):
    """``make()`` without touching NumPy's global generator (a new ``Layer_Dense`` draws
    its initial weights from it, and a loaded model must not change a seeded script)."""
    state = np.random.get_state()  # noqa: NPY002  (the global generator on purpose)
    try:
        return make()
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _dense_layer(entry, weights, biases):
    from . import layers

    cls = layers.Dense_Layer if entry["class"] == "Dense_Layer" else layers.Layer_Dense
    regs = {name: entry[name] for name in _REGULARIZERS}
    layer = _quietly(lambda: cls(weights.shape[0], weights.shape[1], **regs))
    layer.weights, layer.biases = weights, biases
    return layer


def _build_model(meta, params, sizes, state):
    from . import layers, losses, optimizers
    from .model import Model

    model = Model()
    pairs = iter(_split(params, sizes))
    dense = []
    for entry in meta["layers"]:
        if entry["type"] == "dense":
            layer = _dense_layer(entry, *next(pairs))
            dense.append(layer)
        elif entry["type"] == "dropout":
            layer = layers.Layer_Dropout(entry["rate"])
        else:
            layer = getattr(layers, _LAYER_CLASSES[entry["type"]])()
        model.add(layer)
    for (i, name), value in state.items():
        setattr(dense[i], name, value)
    settings = meta["optimizer"]
    optimizer = None
    if settings is not None:
        cls = optimizers.OPTIMIZERS[settings["kind"]]
        hyper = {k: v for k, v in settings.items()
                 if k not in ("kind", "iterations", "current_learning_rate")}
        optimizer = cls(**hyper)
        optimizer.iterations = settings["iterations"]
        optimizer.current_learning_rate = settings["current_learning_rate"]
    model.set(loss=losses.Loss_CategoricalCrossentropy(), optimizer=optimizer,
              accuracy=losses.Accuracy_Categorical())
    model.finalize()
    return model


# --- checking what was read -----------------------------------------------------------


def _check(path, arrays, meta):
    def bad(what):
        raise ModelFileError(f"model file {str(path)!r} is not a valid fastnn model: {what}. "
                             "Restore a good copy or save the model again.")

    kind = meta.get("kind")
    if kind not in KINDS:
        bad(f"kind {kind!r} is not one of {KINDS}")
    sizes = meta.get("sizes")
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s < 2**31
                       for s in sizes)):
        bad(f"sizes {sizes!r} is not a list of at least 2 positive layer sizes")
    if meta.get("dtype") not in _DTYPES:
        bad(f"dtype {meta.get('dtype')!r} is not one of {_DTYPES}")
    n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    params = arrays.pop("params", None)
    if params is None:
        bad("it has no params array")
    if params.dtype != np.dtype(meta["dtype"]) or params.shape != (n,):
        bad(f"params is {params.dtype} {params.shape}, but sizes {sizes} in "
            f"{meta['dtype']} need {meta['dtype']} ({n},)")
    if not np.isfinite(params).all():
        bad("params holds NaN or inf")
    for key in ("made_by", "data", "metrics", "metadata"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            bad(f"{key} must be a dict or null, got {type(meta[key]).__name__}")
    meta["history"] = _check_history(arrays, meta, bad)
    state = {}
    if kind in ("model", "layers"):
        _check_layers(meta, sizes, kind, bad)
    if kind == "model":
        state = _check_state(arrays, sizes, bad)
        _check_optimizer(meta.get("optimizer"), bad)
    if arrays:
        bad(f"unexpected arrays {sorted(arrays)}")
    return params, meta, state


_HISTORY = {"search": ("step", "loss", "accuracy", "val_loss", "val_accuracy"),
            "train": ("epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                      "learning_rate")}


def _check_history(arrays, meta, bad):
    """The run's history arrays (``history.<name>``), or None: the names of the run's
    kind, 1-D, one length, integer steps or epochs."""
    found = {key[len("history."):]: arrays.pop(key) for key in list(arrays)
             if key.startswith("history.")}
    if not found:
        return None
    how = (meta.get("made_by") or {}).get("how") if isinstance(meta.get("made_by"),
                                                               dict) else None
    names = _HISTORY.get(how)
    if names is None or set(found) != set(names):
        bad(f"history arrays {sorted(found)} do not match a {how!r} run")
    length = found[names[0]].shape
    for name, values in found.items():
        if values.ndim != 1 or values.shape != length:
            bad(f"history.{name} has shape {values.shape}, expected {length}")
        want = "i" if name in ("step", "epoch") else "f"
        if values.dtype.kind != want:
            bad(f"history.{name} is {values.dtype}")
    return found


def _nonneg(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def _check_layers(meta, sizes, kind, bad):
    entries = meta.get("layers")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        bad("layers is not a list of layer entries")
    types = [e.get("type") for e in entries]
    for i, e in enumerate(entries):
        if e.get("type") not in _LAYER_CLASSES:
            bad(f"layers[{i}] has unknown type {e.get('type')!r}")
        if e["type"] == "dense":
            if e.get("class") not in ("Dense_Layer", "Layer_Dense"):
                bad(f"layers[{i}] has class {e.get('class')!r}")
            for name in _REGULARIZERS:
                if not _nonneg(e.get(name)):
                    bad(f"layers[{i}].{name} is {e.get(name)!r}, not a number >= 0")
        if e["type"] == "dropout" and not (_nonneg(e.get("rate")) and e["rate"] < 1):
            bad(f"layers[{i}].rate is {e.get('rate')!r}, not in [0, 1)")
    if kind == "layers" and set(types) != {"dense"}:
        bad("a layers file holds dense layers only")
    if types.count("dense") != len(sizes) - 1:
        bad(f"{types.count('dense')} dense layers for sizes {sizes}")
    if kind == "model":
        # what fastnn's Model trains: dense, ReLU between (dropout after it), softmax
        expect_dense = True
        for i, t in enumerate(types[:-1]):
            ok = (t == "dense") if expect_dense else (t == "relu" or (
                t == "dropout" and types[i - 1] == "relu"))
            if not ok:
                bad(f"layers[{i}] ({t}) at this position is not a layer order fastnn's "
                    "Model runs")
            expect_dense = (t in ("relu", "dropout") and types[i + 1] == "dense") \
                if t != "dense" else False
        if types[-1] != "softmax" or len(types) < 2 or types[-2] != "dense":
            bad("a model must end with a dense layer and a softmax")


def _check_state(arrays, sizes, bad):
    state = {}
    for key in [k for k in arrays if k.startswith("state.")]:
        parts = key.split(".")
        value = arrays.pop(key)
        if (len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(sizes) - 1
                or parts[2] not in _STATE_NAMES):
            bad(f"unexpected array {key!r}")
        i, name = int(parts[1]), parts[2]
        shape = (sizes[i], sizes[i + 1]) if name.startswith("weight") else (1, sizes[i + 1])
        if value.shape != shape or value.dtype.name not in _DTYPES:
            bad(f"{key} is {value.dtype} {value.shape}, expected a float array {shape}")
        if not np.isfinite(value).all():
            bad(f"{key} holds NaN or inf")
        state[(i, name)] = value
    return state


def _check_optimizer(settings, bad):
    from .optimizers import HYPERPARAMETERS

    if settings is None:
        return
    if not isinstance(settings, dict) or settings.get("kind") not in HYPERPARAMETERS:
        bad(f"optimizer {settings!r} is not an optimizer's settings")
    need = {"kind", "learning_rate", "decay", "iterations", "current_learning_rate",
            *HYPERPARAMETERS[settings["kind"]]}
    if set(settings) != need:
        bad(f"optimizer settings have keys {sorted(settings)}, expected {sorted(need)}")
    for key in need - {"kind"}:
        value = settings[key]
        if key == "iterations":
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                bad(f"optimizer iterations is {value!r}")
        elif not _nonneg(value):
            bad(f"optimizer {key} is {value!r}, not a number >= 0")
