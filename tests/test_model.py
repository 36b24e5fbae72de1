"""fastnn's ``Model`` (the book's chapters 18-19 on the compiled trainer) against the
book's ``Model`` classes in ``tests/book.py``.

Under ``nnfs.init()`` (run in a subprocess: it patches NumPy for the whole process) the
compiled trainer follows the book's arithmetic (``kernels/train_book.py``), so the
parameters, the optimizer state (values and dtypes), NumPy's generator and the printed
lines must be the book's bit for bit, whatever the optimizer, regularisation, dropout
rate or batch size.  Without nnfs, in float64, they agree to rounding.
"""

import json
import subprocess
import sys
import textwrap

import book
import book_scripts
import numpy as np
import pytest
import subproc
from nnfs.datasets import spiral_data

import fastnn
from fastnn.kernels import train_book

_PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    import numpy as np, nnfs
    from nnfs.datasets import spiral_data
    if sys.argv[1] == "before":
        nnfs.init()
    import book, fastnn
    if sys.argv[1] == "after":
        nnfs.init()
    CASES = json.loads(sys.argv[2])
    STATE = ("weights", "biases", "weight_momentums", "bias_momentums", "weight_cache",
             "bias_cache")

    def build(mod, model_cls, case):
        model = model_cls()
        reg = case.get("reg", {})
        model.add(mod.Layer_Dense(2, case["hidden"], **reg))
        model.add(mod.Activation_ReLU())
        if case["dropout"] is not None:
            model.add(mod.Layer_Dropout(case["dropout"]))
        model.add(mod.Layer_Dense(case["hidden"], 3))
        model.add(mod.Activation_Softmax())
        opt = getattr(mod, "Optimizer_" + case["optimizer"])(**case["opt_args"])
        model.set(loss=mod.Loss_CategoricalCrossentropy(), optimizer=opt,
                  accuracy=mod.Accuracy_Categorical())
        model.finalize()
        return model

    out = {}
    X, y = spiral_data(samples=100, classes=3)
    for name, case in CASES.items():
        start = np.random.get_state()
        batches = case.get("batch_size") is not None
        models = {}
        for which, mod, cls in (("book", book, book.Model if batches else book.Model18),
                                ("fastnn", fastnn, fastnn.Model)):
            np.random.set_state(start)
            model = build(mod, cls, case)
            lines = io.StringIO()
            with contextlib.redirect_stdout(lines):
                extra = dict(batch_size=case["batch_size"]) if batches else {}
                for epochs in case["calls"]:  # training goes on from call to call
                    model.train(X, y, epochs=epochs, print_every=1,
                                validation_data=(X[::7], y[::7]), **extra)
            rng = np.random.get_state()
            models[which] = dict(
                lines=lines.getvalue().splitlines(), rng=[int(rng[2]), rng[1].tolist()],
                opt=[float(model.optimizer.current_learning_rate),
                     int(model.optimizer.iterations)],
                arrays={f"{i}.{s}": [str(getattr(layer, s).dtype),
                                     getattr(layer, s).tobytes().hex()]
                        for i, layer in enumerate(model.trainable_layers) for s in STATE
                        if getattr(layer, s, None) is not None})
        out[name] = models
    print(json.dumps(out))
""")

_ADAM = dict(optimizer="Adam", opt_args=dict(learning_rate=0.05, decay=5e-4))
#: name -> network and training (hidden units, dropout rate or None, regularisers,
#: optimizer, train() calls' epochs, batch size)
CASES = {
    "adam-dropout-l2": dict(hidden=64, dropout=0.1, calls=[6, 4], **_ADAM,
                            reg=dict(weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)),
    "adam-dropout0-l1": dict(hidden=16, dropout=0.0, calls=[5], **_ADAM,
                             reg=dict(weight_regularizer_l1=1e-3, bias_regularizer_l1=1e-3)),
    "adam-plain": dict(hidden=32, dropout=None, calls=[8], **_ADAM),
    "sgd-momentum": dict(hidden=32, dropout=0.25, calls=[6], optimizer="SGD",
                         opt_args=dict(learning_rate=0.5, decay=1e-3, momentum=0.9),
                         reg=dict(bias_regularizer_l2=1e-3)),
    "sgd-plain": dict(hidden=16, dropout=0.1, calls=[4], optimizer="SGD", opt_args={}),
    "adagrad": dict(hidden=16, dropout=0.1, calls=[5], optimizer="Adagrad",
                    opt_args=dict(learning_rate=0.5, decay=1e-4)),
    "rmsprop": dict(hidden=16, dropout=0.1, calls=[5], optimizer="RMSprop",
                    opt_args=dict(learning_rate=0.01, decay=1e-4, rho=0.95)),
    "adam-batches": dict(hidden=32, dropout=0.1, calls=[2, 1], batch_size=64, **_ADAM,
                         reg=dict(weight_regularizer_l2=5e-4)),
}


def _probe(nnfs_init):
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, nnfs_init, json.dumps(CASES)], capture_output=True,
        text=True, timeout=600, env=subproc.env(PYTHONPATH=str(book_scripts.TESTS_DIR)),
        cwd=book_scripts.TESTS_DIR)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def probe():
    """nnfs.init() after fastnn's import (before, as the book's scripts do: the chapter 18
    and 19 script tests below)."""
    return "after", _probe("after")


@pytest.mark.parametrize("case", list(CASES))
def test_training_under_nnfs_is_the_books_bit_for_bit(probe, case):
    """Parameters, optimizer state (dtypes too: float64 bias state below a dropout
    layer, float32 elsewhere), NumPy's generator, the optimizer's rate and iterations,
    and every printed line."""
    _, out = probe
    ref, fast = out[case]["book"], out[case]["fastnn"]
    assert fast["arrays"].keys() == ref["arrays"].keys()
    for key, (dtype, hexbytes) in ref["arrays"].items():
        assert fast["arrays"][key][0] == dtype, key
        assert fast["arrays"][key][1] == hexbytes, key
    assert fast["rng"] == ref["rng"]
    assert fast["opt"] == ref["opt"]
    assert fast["lines"] == ref["lines"]
    assert len(ref["lines"]) > sum(CASES[case]["calls"])


def test_dropout_widens_the_bias_state_as_the_books_does(probe):
    _, out = probe
    arrays = out["adam-dropout-l2"]["fastnn"]["arrays"]
    assert arrays["0.bias_momentums"][0] == arrays["0.bias_cache"][0] == "float64"
    assert arrays["0.weight_momentums"][0] == arrays["1.bias_momentums"][0] == "float32"
    assert out["adam-plain"]["fastnn"]["arrays"]["0.bias_momentums"][0] == "float32"


@pytest.mark.parametrize("nnfs_init", ["before"])  # after: the probe's cases above
def test_chapter_18_script_prints_the_books_lines(nnfs_init):
    """The bar: the book's chapter 18 script (3,000 samples, Dense(2, 512) with L2,
    dropout 0.1, Adam(0.05, decay=5e-5)), every epoch printed: the same lines."""
    ref = book_scripts.run("ch18", classes="reference", nnfs_init=nnfs_init)
    fast = book_scripts.run("ch18", classes="fastnn", nnfs_init=nnfs_init)
    assert fast.info["classes"]["Model"] == "fastnn.model"
    assert len(ref.lines) == book_scripts.expected_line_count("ch18") == 21
    assert fast.lines == ref.lines


def test_chapter_19_script_prints_the_books_lines():
    ref = book_scripts.run("ch19", classes="reference")
    fast = book_scripts.run("ch19", classes="fastnn")
    assert len(ref.lines) == book_scripts.expected_line_count("ch19")
    assert fast.lines == ref.lines


# --- without nnfs: float64 ------------------------------------------------------------


def _pair(case, seed=3):
    np.random.seed(seed)
    models = []
    for mod, cls in ((book, book.Model18), (fastnn, fastnn.Model)):
        np.random.seed(seed)
        model = cls()
        model.add(mod.Layer_Dense(2, case["hidden"], weight_regularizer_l2=5e-4))
        model.add(mod.Activation_ReLU())
        model.add(mod.Layer_Dropout(0.1))
        model.add(mod.Layer_Dense(case["hidden"], 3))
        model.add(mod.Activation_Softmax())
        model.set(loss=mod.Loss_CategoricalCrossentropy(),
                  optimizer=mod.Optimizer_Adam(learning_rate=0.05, decay=5e-4),
                  accuracy=mod.Accuracy_Categorical())
        model.finalize()
        models.append(model)
    return models


def test_float64_training_matches_the_book_to_rounding(capsys):
    X, y = spiral_data(samples=60, classes=3)
    X = X.astype(np.float64)
    ref, fast = _pair(dict(hidden=24))
    state = np.random.get_state()
    ref.train(X, y, epochs=5, print_every=1)
    after_ref = np.random.get_state()
    np.random.set_state(state)
    fast.train(X, y, epochs=5, print_every=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == lines[5:]
    np.testing.assert_array_equal(np.random.get_state()[1], after_ref[1])
    for a, b in zip(ref.trainable_layers, fast.trainable_layers, strict=True):
        for name in ("weights", "biases", "weight_momentums", "bias_cache"):
            u, v = getattr(a, name), getattr(b, name)
            assert v.dtype == u.dtype == np.float64
            np.testing.assert_allclose(v, u, rtol=1e-9, atol=1e-15, err_msg=name)


def test_predict_and_evaluate_follow_the_trained_layers(capsys):
    X, y = spiral_data(samples=40, classes=3)
    _, fast = _pair(dict(hidden=8))
    fast.train(X, y, epochs=3, print_every=10)
    probs = fast.predict(X)
    out = X @ fast.layers[0].weights + fast.layers[0].biases
    out = np.maximum(out, 0) @ fast.layers[3].weights + fast.layers[3].biases
    expected = np.exp(out - out.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    capsys.readouterr()
    fast.evaluate(X, y)
    line = capsys.readouterr().out.strip()
    loss = -np.log(np.clip(expected[np.arange(len(y)), y], 1e-7, 1 - 1e-7)).mean()
    acc = np.mean(expected.argmax(axis=1) == y)
    assert line == f"validation, acc: {acc:.3f}, loss: {loss:.3f}"


# --- what it does not run --------------------------------------------------------------


def test_other_heads_are_not_implemented():
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(2, 4))
    model.add(fastnn.Activation_ReLU())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    X, y = spiral_data(samples=10, classes=2)
    with pytest.raises(NotImplementedError, match="supported: Layer_Dense"):
        model.train(X, y, epochs=1)


def test_train_before_finalize_is_a_clear_error():
    model = fastnn.Model()
    with pytest.raises(ValueError, match="no layers"):
        model.finalize()
    model.add(fastnn.Layer_Dense(2, 3))
    with pytest.raises(ValueError, match="model.set"):
        model.finalize()
    model.add(fastnn.Activation_Softmax())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
              accuracy=fastnn.Accuracy_Categorical())
    X, y = spiral_data(samples=10, classes=3)
    with pytest.raises(ValueError, match="finalize"):
        fastnn.Model().train(X, y)


# --- NumPy's float32 exp ---------------------------------------------------------------


def _numpy_has_simd_exp():
    features = getattr(np, "_core", np).__dict__.get("_multiarray_umath")
    cpu = getattr(features, "__cpu_features__", {})
    return bool(cpu.get("AVX512F") or (cpu.get("AVX2") and cpu.get("FMA3")))


def test_numpy_expf_is_numpys_float32_exp_where_numpy_has_its_own():
    """NumPy computes float32 exp with its own SIMD code on AVX2+FMA3 and AVX-512 CPUs:
    ``numpy_expf`` gives its bits there, on a dense sweep and at the edges (overflow,
    underflow, subnormal results, NaN)."""
    if not _numpy_has_simd_exp():
        pytest.skip("this NumPy uses libm's expf (no AVX2+FMA3 or AVX-512)")
    assert train_book.exp_matches_numpy()
    x = np.concatenate([np.linspace(-104.5, 89.5, 300001),
                        np.random.default_rng(7).uniform(-25, 0, 300000),
                        [np.nan, np.inf, -np.inf, -87.5, -88.0, -100.0]]).astype(np.float32)
    out = np.empty_like(x)
    train_book._exp_probe(x, out)
    with np.errstate(over="ignore", under="ignore"):
        expected = np.exp(x)
    np.testing.assert_array_equal(out, expected)
