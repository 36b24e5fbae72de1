"""The nnfs book's training scripts (chapters 10, 11, 14, 15, 18 and 19), in our own words,
and a harness that runs them in a subprocess with either set of classes.

Each script is what a reader of the book runs: ``import numpy as np``, ``import nnfs``,
``from nnfs.datasets import spiral_data``, ``nnfs.init()``, the chapter's classes, then the
workload, printing the book's lines character for character.  The CLASSES section is where
the reader's class definitions would be; the harness fills it with an import, either of
``tests/book.py`` (``classes="reference"``) or of fastnn (``classes="fastnn"``), of exactly
the names the workload uses -- nothing else in the script changes.  (The chapter 18 script
gets ``book.Model18`` as ``Model``; fastnn's single ``Model`` prints chapter 18's lines
when ``train`` has no ``batch_size``.)

Workloads (the book's, except where noted):

    ch10  spiral_data(100, 3); Dense(2, 64), ReLU, Dense(64, 3), softmax + cross-entropy;
          Adam(learning_rate=0.05, decay=5e-7); ``epoch, acc, loss, lr`` lines
    ch11  ch10, then a validation pass on a fresh spiral_data(100, 3)
    ch14  spiral_data(1000, 3); Dense(2, 64) with L2 5e-4 on weights and biases;
          Adam(0.02, decay=5e-7); lines with data_loss and reg_loss; validation
    ch15  ch14 with Dropout(0.1) after the ReLU, Adam(0.05, decay=5e-5); validation
          without dropout
    ch18  Model: Dense(2, 512, L2 5e-4), ReLU, Dropout(0.1), Dense(512, 3), Softmax;
          Adam(0.05, decay=5e-5); Accuracy_Categorical; validation data drawn before
          training; ``model.train(..., epochs, print_every)``
    ch19  ch18's network and chapter 19's Model with mini-batches on shuffled spiral data
          (the book uses Fashion-MNIST, not available here), ``model.evaluate`` at the end

Parameters: ``epochs`` (the book's ``range(10001)`` loop is ``epochs=10001``),
``print_every``, ``samples`` (per class, training data), ``batch_size`` (ch19), where
``nnfs.init()`` runs (``"before"`` the classes, ``"after"`` them, or ``None``: replaced by
``np.random.seed(0)`` so both sets of classes still draw the same numbers) and ``seed``
(``np.random.seed(seed)`` right after it: the same script with other random draws).
``DEFAULTS`` are small, for tests; ``BOOK`` are the book's.
"""

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

TESTS_DIR = Path(__file__).resolve().parent


def subprocess_env():
    """``subproc.env()`` (this process's Numba cache), loaded by path: ``tests`` is not a
    package and ``bench/`` loads this module by path too."""
    spec = importlib.util.spec_from_file_location("fastnn_tests_subproc",
                                                  TESTS_DIR / "subproc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.env()

#: Every class name fastnn exports for the book (``book.Model18`` is chapter 18's Model).
CLASS_NAMES = (
    "Layer_Dense", "Layer_Dropout", "Layer_Input", "Activation_ReLU", "Activation_Softmax",
    "Loss", "Loss_CategoricalCrossentropy", "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam",
    "Accuracy", "Accuracy_Categorical", "Model",
)

CLASSES_BEGIN = "# ---- CLASSES ----"
CLASSES_END = "# ---- END CLASSES ----"

# --- the workloads ----------------------------------------------------------------------

_SPIRAL_NET = """\
# Three interleaved spirals, SAMPLES points per class
X, y = spiral_data(samples=SAMPLES, classes=3)

# 2 inputs -> 64 ReLU units -> 3 classes, softmax output trained on cross-entropy
dense1 = Layer_Dense(2, 64{reg})
activation1 = Activation_ReLU()
{dropout_layer}dense2 = Layer_Dense(64, 3)
loss_activation = Activation_Softmax_Loss_CategoricalCrossentropy()

optimizer = Optimizer_Adam(learning_rate={lr}, decay={decay})

for epoch in range(EPOCHS):
    # Forward pass over the whole data set
    dense1.forward(X)
    activation1.forward(dense1.output)
{dropout_forward}    dense2.forward({dense2_input})
{loss_lines}
    # Share of samples whose most confident class is the label
    predictions = np.argmax(loss_activation.output, axis=1)
    if len(y.shape) == 2:
        y = np.argmax(y, axis=1)
    accuracy = np.mean(predictions == y)

    if not epoch % PRINT_EVERY:
{print_lines}
    # Backward pass, last layer first
    loss_activation.backward(loss_activation.output, y)
    dense2.backward(loss_activation.dinputs)
{dropout_backward}    activation1.backward({activation1_grad})
    dense1.backward(activation1.dinputs)

    # One optimizer step for both layers
    optimizer.pre_update_params()
    optimizer.update_params(dense1)
    optimizer.update_params(dense2)
    optimizer.post_update_params()
"""

_LOSS_PLAIN = """\
    loss = loss_activation.forward(dense2.output, y)
"""

_LOSS_REGULARISED = """\
    data_loss = loss_activation.forward(dense2.output, y)
    # L2 penalty of both layers (the second one has none)
    regularization_loss = \\
        loss_activation.loss.regularization_loss(dense1) + \\
        loss_activation.loss.regularization_loss(dense2)
    loss = data_loss + regularization_loss
"""

_PRINT_PLAIN = """\
        print(f'epoch: {epoch}, ' +
              f'acc: {accuracy:.3f}, ' +
              f'loss: {loss:.3f}, ' +
              f'lr: {optimizer.current_learning_rate}')
"""

_PRINT_REGULARISED = """\
        print(f'epoch: {epoch}, ' +
              f'acc: {accuracy:.3f}, ' +
              f'loss: {loss:.3f} (' +
              f'data_loss: {data_loss:.3f}, ' +
              f'reg_loss: {regularization_loss:.3f}), ' +
              f'lr: {optimizer.current_learning_rate}')
"""

_VALIDATE = """
# Validation on a fresh draw of the same data set: forward pass only, no dropout
X_test, y_test = spiral_data(samples=100, classes=3)

dense1.forward(X_test)
activation1.forward(dense1.output)
dense2.forward(activation1.output)
loss = loss_activation.forward(dense2.output, y_test)

predictions = np.argmax(loss_activation.output, axis=1)
if len(y_test.shape) == 2:
    y_test = np.argmax(y_test, axis=1)
accuracy = np.mean(predictions == y_test)

print(f'validation, acc: {accuracy:.3f}, loss: {loss:.3f}')
"""


def _spiral_script(*, lr, decay, regularised, dropout, validate):
    """A chapter 10-15 script: the hand-written training loop, with the chapter's
    options.  (str.replace, not str.format: the f-strings have braces.)"""
    parts = {
        "{reg}": ",\n                     weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4"
        if regularised else "",
        "{dropout_layer}": "dropout1 = Layer_Dropout(0.1)\n" if dropout else "",
        "{lr}": lr,
        "{decay}": decay,
        "{dropout_forward}": "    dropout1.forward(activation1.output)\n" if dropout else "",
        "{dense2_input}": "dropout1.output" if dropout else "activation1.output",
        "{loss_lines}": _LOSS_REGULARISED if regularised else _LOSS_PLAIN,
        "{print_lines}": _PRINT_REGULARISED if regularised else _PRINT_PLAIN,
        "{dropout_backward}": "    dropout1.backward(dense2.dinputs)\n" if dropout else "",
        "{activation1_grad}": "dropout1.dinputs" if dropout else "dense2.dinputs",
    }
    text = _SPIRAL_NET
    for key, value in parts.items():
        text = text.replace(key, value)
    return text + (_VALIDATE if validate else "")


_MODEL_NET = """\
# Network with L2 on the first layer and dropout after its ReLU
model = Model()
model.add(Layer_Dense(2, 512, weight_regularizer_l2=5e-4,
                      bias_regularizer_l2=5e-4))
model.add(Activation_ReLU())
model.add(Layer_Dropout(0.1))
model.add(Layer_Dense(512, 3))
model.add(Activation_Softmax())

model.set(
    loss=Loss_CategoricalCrossentropy(),
    optimizer=Optimizer_Adam(learning_rate=0.05, decay=5e-5),
    accuracy=Accuracy_Categorical()
)
model.finalize()
"""

_CH18 = """\
# Training data, then validation data (drawn before training starts)
X, y = spiral_data(samples=SAMPLES, classes=3)
X_test, y_test = spiral_data(samples=100, classes=3)

""" + _MODEL_NET + """
model.train(X, y, validation_data=(X_test, y_test),
            epochs=EPOCHS, print_every=PRINT_EVERY)
"""

_CH19 = """\
X, y = spiral_data(samples=SAMPLES, classes=3)
X_test, y_test = spiral_data(samples=100, classes=3)

# Mini-batches are taken in order: shuffle the (class-sorted) training samples first
keys = np.array(range(X.shape[0]))
np.random.shuffle(keys)
X = X[keys]
y = y[keys]

""" + _MODEL_NET + """
model.train(X, y, validation_data=(X_test, y_test),
            epochs=EPOCHS, batch_size=BATCH_SIZE, print_every=PRINT_EVERY)

# Evaluate the trained model once more on the validation data
model.evaluate(X_test, y_test, batch_size=BATCH_SIZE)
"""

_SPIRAL_NAMES = ("Layer_Dense", "Activation_ReLU",
                 "Activation_Softmax_Loss_CategoricalCrossentropy", "Optimizer_Adam")
_MODEL_NAMES = ("Layer_Dense", "Activation_ReLU", "Layer_Dropout", "Activation_Softmax",
                "Loss_CategoricalCrossentropy", "Optimizer_Adam", "Accuracy_Categorical",
                "Model")


class Script(NamedTuple):
    workload: str  # the code after the CLASSES section
    names: tuple  # the classes it uses
    parameters: tuple  # the module-level constants it reads


_PLAIN = ("EPOCHS", "PRINT_EVERY", "SAMPLES")

SCRIPTS = {
    "ch10": Script(_spiral_script(lr="0.05", decay="5e-7", regularised=False, dropout=False,
                                  validate=False), _SPIRAL_NAMES, _PLAIN),
    "ch11": Script(_spiral_script(lr="0.05", decay="5e-7", regularised=False, dropout=False,
                                  validate=True), _SPIRAL_NAMES, _PLAIN),
    "ch14": Script(_spiral_script(lr="0.02", decay="5e-7", regularised=True, dropout=False,
                                  validate=True), _SPIRAL_NAMES, _PLAIN),
    "ch15": Script(_spiral_script(lr="0.05", decay="5e-5", regularised=True, dropout=True,
                                  validate=True), (*_SPIRAL_NAMES, "Layer_Dropout"), _PLAIN),
    "ch18": Script(_CH18, _MODEL_NAMES, _PLAIN),
    "ch19": Script(_CH19, _MODEL_NAMES, (*_PLAIN, "BATCH_SIZE")),
}

#: Small runs for tests (21 epochs: the epoch-0 line and 20 updates, every one printed).
DEFAULTS = {
    "ch10": dict(epochs=21, print_every=1, samples=100),
    "ch11": dict(epochs=21, print_every=1, samples=100),
    "ch14": dict(epochs=21, print_every=1, samples=1000),
    "ch15": dict(epochs=21, print_every=1, samples=1000),
    "ch18": dict(epochs=20, print_every=1, samples=1000),
    "ch19": dict(epochs=2, print_every=10, samples=1000, batch_size=128),
}

#: The book's own runs (ch19: its epochs, batch size and print_every, on spiral data).
BOOK = {
    "ch10": dict(epochs=10001, print_every=100, samples=100),
    "ch11": dict(epochs=10001, print_every=100, samples=100),
    "ch14": dict(epochs=10001, print_every=100, samples=1000),
    "ch15": dict(epochs=10001, print_every=100, samples=1000),
    "ch18": dict(epochs=10000, print_every=100, samples=1000),
    "ch19": dict(epochs=10, print_every=100, samples=1000, batch_size=128),
}

NNFS_INIT = ("before", "after", None)

# Written to stderr, so it cannot disturb the compared stdout: which classes ran and
# whether NumPy was patched by nnfs.init().
_TRAILER = """
import json as _json, sys as _sys
_sys.stderr.write("HARNESS " + _json.dumps({{
    "classes": {{_n: globals()[_n].__module__ for _n in {names!r}}},
    "dot": getattr(np.dot, "__module__", None),
    "randn": getattr(np.random.randn, "__module__", None),
}}) + "\\n")
"""


def _parameters(name, params):
    """The script's parameters: ``DEFAULTS[name]`` overridden by the non-None ``params``."""
    if name not in SCRIPTS:
        raise ValueError(f"unknown script {name!r}; expected one of {sorted(SCRIPTS)}")
    values = dict(DEFAULTS[name])
    for key, value in params.items():
        if value is None:
            continue
        if key not in values:
            raise ValueError(f"script {name!r} has no parameter {key!r}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive int, got {value!r}")
        values[key] = value
    return values


def classes_section(name, classes):
    """The CLASSES section: an import of the names the script uses."""
    names = SCRIPTS[name].names
    if classes == "fastnn":
        return f"from fastnn import {', '.join(names)}"
    if classes == "reference":
        imported = ["Model18 as Model" if (n == "Model" and name == "ch18") else n
                    for n in names]
        return f"from book import {', '.join(imported)}"
    raise ValueError(f"classes must be 'reference' or 'fastnn', got {classes!r}")


def script_text(name, *, classes, epochs=None, print_every=None, samples=None,
                batch_size=None, nnfs_init="before", seed=None):
    """The source of script ``name`` (see the module docstring for the parameters)."""
    if nnfs_init not in NNFS_INIT:
        raise ValueError(f"nnfs_init must be one of {NNFS_INIT}, got {nnfs_init!r}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    values = _parameters(name, dict(epochs=epochs, print_every=print_every,
                                    samples=samples, batch_size=batch_size))
    script = SCRIPTS[name]
    init = "nnfs.init()\n" if nnfs_init is not None else "np.random.seed(0)\n"
    if seed is not None:
        init += f"np.random.seed({seed})\n"
    header = ("import numpy as np\n"
              "import nnfs\n"
              "from nnfs.datasets import spiral_data\n\n")
    if nnfs_init != "after":
        header += init + "\n"
    header += f"{CLASSES_BEGIN}\n{classes_section(name, classes)}\n{CLASSES_END}\n\n"
    if nnfs_init == "after":
        header += init + "\n"
    constants = "".join(f"{key} = {values[key.lower()]}\n" for key in script.parameters)
    return header + constants + "\n" + script.workload + _TRAILER.format(names=script.names)


class ScriptRun(NamedTuple):
    lines: list  # stdout, line by line
    info: dict  # classes' modules, whether np.dot / np.random.randn are nnfs's
    seconds: float
    source: str


def run(name, *, classes, epochs=None, print_every=None, samples=None, batch_size=None,
        nnfs_init="before", seed=None, timeout=600, env=None):
    """Run script ``name`` in a fresh ``sys.executable`` subprocess (``tests/`` on its
    path, this process's Numba cache, ``subproc.env()``); returns a ``ScriptRun``.
    Raises ``RuntimeError`` with the script's stderr if it fails."""
    source = script_text(name, classes=classes, epochs=epochs, print_every=print_every,
                         samples=samples, batch_size=batch_size, nnfs_init=nnfs_init,
                         seed=seed)
    run_env = dict(subprocess_env() if env is None else env)
    run_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(TESTS_DIR), run_env.get("PYTHONPATH", "")) if p)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=run_env,
                          cwd=TESTS_DIR)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"script {name} ({classes}, nnfs_init={nnfs_init}) failed, "
                           f"rc={proc.returncode}:\n{proc.stderr[-5000:]}")
    info = [ln for ln in proc.stderr.splitlines() if ln.startswith("HARNESS ")]
    if len(info) != 1:
        raise RuntimeError(f"script {name}: no harness report in stderr:\n{proc.stderr[-5000:]}")
    return ScriptRun(proc.stdout.splitlines(), json.loads(info[0][len("HARNESS "):]),
                     seconds, source)


def run_script(name, *, classes, epochs=None, print_every=None, samples=None,
               batch_size=None, nnfs_init="before", seed=None, timeout=600):
    """The lines script ``name`` prints (``run(...).lines``)."""
    return run(name, classes=classes, epochs=epochs, print_every=print_every,
               samples=samples, batch_size=batch_size, nnfs_init=nnfs_init, seed=seed,
               timeout=timeout).lines


def expected_line_count(name, *, epochs=None, print_every=None, samples=None,
                        batch_size=None):
    """How many lines script ``name`` prints with these parameters."""
    p = _parameters(name, dict(epochs=epochs, print_every=print_every, samples=samples,
                               batch_size=batch_size))
    e, every = p["epochs"], p["print_every"]
    if name in ("ch10", "ch11", "ch14", "ch15"):  # epochs 0 .. e-1, every `every`-th
        return (e - 1) // every + 1 + (name != "ch10")
    if name == "ch18":  # epochs 1 .. e, then validation
        return e // every + 1
    steps = math.ceil(3 * p["samples"] / p["batch_size"])
    printed = len({*range(0, steps, every), steps - 1})
    # per epoch: "epoch: N", the step lines, "training, ...", "validation, ..."; then
    # the final evaluate
    return e * (printed + 3) + 1


# --- parsing and comparing the printed lines --------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"
_FIELD = re.compile(rf"(\w+): ({_NUMBER})(?=,|\)| \(|$)")
_LABEL = re.compile(r"^(\w+)(?=[:,]|$)")
#: Fields compared as text: the learning rate is a Python float printed in full (repr).
EXACT_FIELDS = ("lr",)
#: Fields that are integers (compared as text).
INT_FIELDS = ("epoch", "step")


def _raw_fields(line):
    """(label, {field: text}, skeleton): the skeleton is the line with every value
    replaced by '#', so two lines with the same skeleton have the same format."""
    m = _LABEL.match(line)
    if not m:
        raise ValueError(f"not a training line: {line!r}")
    fields = {}
    for f in _FIELD.finditer(line):
        if f.group(1) in fields:
            raise ValueError(f"field {f.group(1)!r} twice in {line!r}")
        fields[f.group(1)] = f.group(2)
    skeleton = _FIELD.sub(lambda f: f"{f.group(1)}: #", line)
    rest = re.sub(r"\w+: #", "", skeleton)
    if rest.startswith(m.group(1)):  # a label without a value ("validation, ...")
        rest = rest[len(m.group(1)):]
    if re.sub(r"[,() ]", "", rest):
        raise ValueError(f"unparsed text {rest!r} in {line!r}")
    return m.group(1), fields, skeleton


def parse_line(line):
    """``'epoch: 3, acc: 0.360, loss: 1.099, lr: 0.05'`` ->
    ``('epoch', {'epoch': 3.0, 'acc': 0.36, 'loss': 1.099, 'lr': 0.05})``;
    ``'validation, acc: ..., loss: ...'`` -> ``('validation', {...})``.  Raises
    ``ValueError`` for a line that is not one of the book's training lines."""
    label, fields, _ = _raw_fields(line)
    return label, {k: float(v) for k, v in fields.items()}


def parse_lines(lines):
    return [parse_line(line) for line in lines]


def _decimals(text):
    return len(text.split(".")[1].split("e")[0].split("E")[0]) if "." in text else 0


def compare_lines(ref_lines, fast_lines, *, rtol=1e-4, where=""):
    """Mismatch descriptions (empty when the runs agree).

    Lines must have the same format (same label and fields, same punctuation); ``lr``,
    ``epoch`` and ``step`` must be equal strings; any other number may differ by
    ``rtol`` relative plus one unit in its last printed digit (each printed value is
    the true one rounded to that digit, so two true values within ``rtol`` can print
    one unit apart; an accuracy flipped by one sample of 300 is 11 units off)."""
    problems = []
    if len(ref_lines) != len(fast_lines):
        problems.append(f"{where}{len(ref_lines)} reference lines vs {len(fast_lines)}")
    for i, (r, f) in enumerate(zip(ref_lines, fast_lines, strict=False)):
        try:
            _, ref_fields, ref_skeleton = _raw_fields(r)
            _, fast_fields, fast_skeleton = _raw_fields(f)
        except ValueError as exc:
            if r != f:
                problems.append(f"{where}line {i}: {exc}\n  ref:  {r}\n  fast: {f}")
            continue
        if ref_skeleton != fast_skeleton:
            problems.append(f"{where}line {i}: format differs\n  ref:  {r}\n  fast: {f}")
            continue
        for key, tr in ref_fields.items():
            tf = fast_fields[key]
            if key in EXACT_FIELDS or key in INT_FIELDS:
                ok = tr == tf
            else:
                vr, vf = float(tr), float(tf)
                slack = 10.0 ** -max(_decimals(tr), _decimals(tf))
                ok = vr == vf or abs(vr - vf) <= rtol * max(abs(vr), abs(vf)) + slack
            if not ok:
                problems.append(f"{where}line {i}, {key}: {tr} vs {tf}\n"
                                f"  ref:  {r}\n  fast: {f}")
                break
    return problems
