"""``fastnn.warmup`` and ``fastnn warmup``: compile every kernel once, so that later
processes compile nothing.

The slow tests run one float32 warmup into an empty ``NUMBA_CACHE_DIR`` (about 100 s on
2 vCPUs) and then a fresh process with a float32 workload over the public entry points,
which must load every kernel from that cache.  The others test the command line and the
driver with the compiling replaced, in a fraction of a second.
"""

import importlib
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from subproc import env

import fastnn
from fastnn.cli import main
from fastnn.kernels.network import EXAMPLE_SIZES
from fastnn.warmup import WarmupResult

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 900
#: the module (the package attribute ``fastnn.warmup`` is the function)
warmup_module = importlib.import_module("fastnn.warmup")
cli_warmup = importlib.import_module("fastnn.cli.warmup")

SUMMARY = re.compile(r"compiled (\d+) kernel signatures, loaded (\d+) from the disk cache "
                     r"in (\d+\.\d) s; cache: (.+)")

# A float32 user's first session: MLP on two shape families with nnfs's uint8 labels and
# int64 labels, a search with the default options, the notebook classes with float32
# weights (as after nnfs.init()) and with Dense_Layer's own float64 weights, then
# fastnn.warmup again.  Prints the cache statistics of every kernel made.
WORKLOAD = r"""
import json, sys
import numpy as np
import fastnn
from fastnn import (MLP, Activation_Relu, Activation_Softmax, Dense_Layer,
                    Loss_CategoricalCrossentropy)
from fastnn._config import KERNELS

rng = np.random.default_rng(1)
X = rng.standard_normal((150, 2)).astype(np.float32)  # not the warmup's sizes
y = (np.arange(150) % 3).astype(np.uint8)
for sizes in ([2, 8, 3], [2, 4, 4, 3]):
    m = MLP(sizes, seed=1)
    for labels in (y, y.astype(np.int64)):
        m.evaluate(X, labels)
    m.forward(X)
    m.predict(X)
    assert fastnn.search(m, X, y, iterations=50, seed=1).mode == "serial"
for weights in ("float32", "float64"):
    l1, l2 = Dense_Layer(2, 8), Dense_Layer(8, 3)
    for layer in (l1, l2):
        layer.weights = layer.weights.astype(weights)
        layer.biases = layer.biases.astype(weights)
    a1, a2, loss = Activation_Relu(), Activation_Softmax(), Loss_CategoricalCrossentropy()
    l1.forward(X); a1.forward(l1.output); l2.forward(a1.output); a2.forward(l2.output)
    for labels in (y, np.eye(3)[y]):
        loss.forward(a2.output, labels)
        fastnn.accuracy(a2.output, labels)
fastnn.gaussian_noise(1, 0, 0, 0, 21)

# training: fastnn.train (two families, mini-batches with dropout and validation, a batch
# of several blocks), the book's Model with dropout, the book's chapter 10 loop with the
# drop-in classes on float32 parameters (as under nnfs.init()); the Model under
# nnfs.init() itself after the second warmup below
fastnn.train(MLP([2, 8, 3], seed=1), X, y, epochs=2, validation=(X, y))
fastnn.train(MLP([2, 8, 4, 3], seed=1), X, y, epochs=2, batch_size=32, dropout=0.2)
big = rng.standard_normal((5000, 2)).astype(np.float32)
fastnn.train(MLP([2, 8, 3], seed=1), big, np.arange(5000) % 3, epochs=1)
import contextlib, io
model = fastnn.Model()
for layer in (fastnn.Layer_Dense(2, 8), fastnn.Activation_ReLU(), fastnn.Layer_Dropout(0.1),
              fastnn.Layer_Dense(8, 3), fastnn.Activation_Softmax()):
    if hasattr(layer, "weights"):
        layer.weights = layer.weights.astype(np.float32)
        layer.biases = layer.biases.astype(np.float32)
    model.add(layer)
model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
          accuracy=fastnn.Accuracy_Categorical())
model.finalize()
with contextlib.redirect_stdout(io.StringIO()):
    model.train(X, y, epochs=2, validation_data=(X, y))
    model.predict(X)
d1, d2 = fastnn.Layer_Dense(2, 8), fastnn.Layer_Dense(8, 3)
for layer in (d1, d2):
    layer.weights = layer.weights.astype(np.float32)
    layer.biases = layer.biases.astype(np.float32)
relu = fastnn.Activation_ReLU()
head = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
opt = fastnn.Optimizer_Adam(learning_rate=0.05, decay=5e-7)
d1.forward(X); relu.forward(d1.output); d2.forward(relu.output); head.forward(d2.output, y)
head.backward(head.output, y); d2.backward(head.dinputs); relu.backward(d2.dinputs)
d1.backward(relu.dinputs)
opt.pre_update_params(); opt.update_params(d1); opt.update_params(d2); opt.post_update_params()

def stats():
    return {name: {"misses": sum(d.stats.cache_misses.values()),
                   "hits": sum(d.stats.cache_hits.values())} for name, d in KERNELS.items()}

again = fastnn.warmup("float32")  # compiles nothing: all in the cache
# last (it patches NumPy for good): the book's Model under nnfs.init(), whose arithmetic
# (float64 products and dropout) is a build of its own
import nnfs
nnfs.init()
nnfs_model = fastnn.Model()
for layer in (fastnn.Layer_Dense(2, 8), fastnn.Activation_ReLU(), fastnn.Layer_Dropout(0.1),
              fastnn.Layer_Dense(8, 3), fastnn.Activation_Softmax()):
    nnfs_model.add(layer)
nnfs_model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
               accuracy=fastnn.Accuracy_Categorical())
nnfs_model.finalize()
with contextlib.redirect_stdout(io.StringIO()):
    nnfs_model.train(X, y, epochs=2, validation_data=(X, y))
workload = stats()
print("RESULT " + json.dumps({"workload": workload, "warmup": str(again),
                              "compiled": again.compiled, "loaded": again.loaded,
                              "cache_dir": again.cache_dir}))
"""


def run(argv, cache):
    proc = subprocess.run(argv, cwd=ROOT, env=env(NUMBA_CACHE_DIR=str(cache)),
                          capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc


@pytest.fixture(scope="module")
def warmed(background_warmup):
    """``python -m fastnn warmup --dtype float32`` into an empty cache directory, started
    in the background as the session started (``tests/conftest.py``): (the finished
    process, the cache directory)."""
    proc, cache = background_warmup.wait(TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc, cache


@pytest.mark.slow
def test_warmup_command_compiles_into_an_empty_cache(warmed):
    proc, cache = warmed
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    match = SUMMARY.fullmatch(lines[0])
    assert match, lines[0]
    compiled, loaded, _, path = match.groups()
    assert int(compiled) >= 3 * len(EXAMPLE_SIZES) and int(loaded) == 0
    assert Path(path) == cache or Path(path).parent == cache, path
    assert "warmup: 100%" in proc.stderr and "Traceback" not in proc.stderr  # the bar


@pytest.mark.slow
def test_warmup_covers_a_fresh_process(warmed):
    """After ``fastnn warmup --dtype float32`` a new process running a float32 workload
    compiles no kernel signature (all load from the disk cache), and warming up again
    compiles nothing either."""
    _, cache = warmed
    proc = run([sys.executable, "-c", WORKLOAD], cache)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout + proc.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT "):])
    compiled = {name: s["misses"] for name, s in out["workload"].items() if s["misses"]}
    assert compiled == {}, f"fastnn warmup did not cover: {compiled}"
    assert sum(s["hits"] for s in out["workload"].values()) >= 10
    assert out["compiled"] == 0 and out["loaded"] > 0, out["warmup"]
    assert out["cache_dir"].startswith(str(cache))


# -- the command line, with the compiling replaced --------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["warmup", "--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["warmup", "--dtype"], "argument --dtype: expected one argument"),
    (["warmup", "--quiet", "now"], "unrecognized arguments: now"),
    (["warmup", "--threads", "2"], "unrecognized arguments: --threads"),
])
def test_bad_arguments_exit_2(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(cli_warmup, "warmup", lambda *a, **k: pytest.fail("ran warmup"))
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    # argparse reports leftover arguments with the top-level usage line
    assert "usage: fastnn" in captured.err and message in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("argv, dtypes, progress", [
    ([], ("float32", "float64"), True),
    (["--dtype", "both"], ("float32", "float64"), True),
    (["--dtype", "float32", "--quiet"], ("float32",), False),
    (["--quiet", "--dtype", "float64"], ("float64",), False),
])
def test_command_prints_the_summary_line(argv, dtypes, progress, monkeypatch, capsys):
    calls = []

    def fake(dtypes, progress):
        calls.append((dtypes, progress))
        return WarmupResult(compiled=67, loaded=3, seconds=97.46, cache_dir="/c/kernels_ab",
                            steps=44)

    monkeypatch.setattr(cli_warmup, "warmup", fake)
    assert main(["warmup", *argv]) == 0
    assert calls == [(dtypes, progress)]
    captured = capsys.readouterr()
    assert captured.out == ("compiled 67 kernel signatures, loaded 3 from the disk cache in "
                            "97.5 s; cache: /c/kernels_ab\n")
    assert captured.err == ""


def test_command_reports_what_it_could_not_do(monkeypatch, capsys):
    result = WarmupResult(compiled=1, loaded=0, seconds=0.04, cache_dir=None, steps=2,
                          skipped=("float32 2-3-3: search, parallel='chains' ran as 'serial'",))
    monkeypatch.setattr(cli_warmup, "warmup", lambda dtypes, progress: result)
    assert main(["warmup", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ("compiled 1 kernel signatures, loaded 0 from the disk cache in "
                            "0.0 s; cache: none\n")
    assert "not reached: float32 2-3-3: search, parallel='chains' ran as 'serial'" in captured.err
    assert "set NUMBA_CACHE_DIR" in captured.err


# -- the driver and its plan ------------------------------------------------------------
def test_warmup_is_the_function():
    assert fastnn.warmup is warmup_module.warmup
    assert "warmup" in fastnn.__all__


@pytest.mark.parametrize("dtypes, error", [
    (("float16",), ValueError), (("float32", 3), TypeError), ((), ValueError),
    (3, TypeError), ("int64", ValueError),
])
def test_bad_dtypes_are_refused_before_anything_runs(dtypes, error, monkeypatch):
    monkeypatch.setattr(warmup_module, "_plan", lambda *a: pytest.fail("planned"))
    with pytest.raises(error, match="dtypes"):
        fastnn.warmup(dtypes)


def test_progress_bar_ticks_per_step_and_global_rng_is_restored(monkeypatch, capsys):
    ran = []

    def plan(dtypes, skipped):
        assert dtypes == ("float64",)
        return [(f"step {i}", lambda i=i: ran.append(np.random.randn())) for i in range(3)]

    monkeypatch.setattr(warmup_module, "_plan", plan)
    np.random.seed(7)
    expected = np.random.randn()
    np.random.seed(7)
    result = fastnn.warmup(["float64", np.float64], progress=True)
    assert np.random.randn() == expected  # the steps' draws did not move the global RNG
    assert len(ran) == 3 and result.steps == 3 and result.skipped == ()
    assert result.compiled == 0 and result.loaded == 0 and result.seconds >= 0
    err = capsys.readouterr().err
    assert "warmup" in err and "3/3" in err and "step 2" in err
    assert str(result) == result.summary() and result.summary().startswith("compiled 0 ")


def descriptions(dtypes, on_main=True):
    skipped, out = [], []

    def plan():
        out.extend(d for d, _ in warmup_module._plan(dtypes, skipped))

    if on_main:
        plan()
    else:
        t = threading.Thread(target=plan)
        t.start()
        t.join()
    return out, skipped


def test_plan_covers_every_family_label_dtype_and_search_mode():
    steps, skipped = descriptions(("float32", "float64"))
    assert skipped == [] and len(steps) == len(set(steps))
    for dtype in ("float32", "float64"):
        for sizes in EXAMPLE_SIZES.values():
            name = f"{dtype} {'-'.join(map(str, sizes))}"
            for what in ("evaluate, int64 labels", "evaluate, int32 labels",
                         "evaluate, uint8 labels", "forward", "predict", "search, serial",
                         "search, chains", "search, candidates"):
                assert f"{name}: {what}" in steps
        assert f"gaussian_noise, {dtype}" in steps
    notebook = [s for s in steps if s.startswith("notebook classes")]
    assert len(notebook) == 4  # every input dtype x weight dtype


def test_float32_plan_includes_the_float64_notebook_weights():
    """Dense_Layer draws float64 weights: a float32 notebook computes in float64 after its
    first layer, so a float32 warmup covers the mixed combinations too."""
    steps, _ = descriptions(("float32",))
    assert not any(s.startswith("float64") for s in steps)
    assert [s for s in steps if s.startswith("notebook classes")] == [
        "notebook classes, float32 inputs, float32 weights",
        "notebook classes, float32 inputs, float64 weights",
        "notebook classes, float64 inputs, float32 weights"]


def test_parallel_searches_are_skipped_off_the_main_thread():
    steps, skipped = descriptions(("float32",), on_main=False)
    assert not any("search, chains" in s or "search, candidates" in s for s in steps)
    assert sum("search, serial" in s for s in steps) == len(EXAMPLE_SIZES)
    # the parallel searches of every shape family, and the trainer's parallel step
    assert len(skipped) == 2 * len(EXAMPLE_SIZES) + 1
    assert all("main thread" in s for s in skipped)
