"""The command line: ``python -m fastnn`` / ``fastnn`` and the demo's search loop."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn.cli import main, make_data, numpy_loss_fn, perturbation_search

ROOT = Path(__file__).resolve().parents[1]


def run_module(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "fastnn", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_demo_subprocess():
    proc = run_module("demo", "--iterations", "200")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "network 2-3-3 (21 parameters, float32)" in out
    assert "iteration 200" in out
    assert "final: loss" in out
    assert "fastnn: 200 iterations" in out and "it/s" in out
    assert "numpy:  200 iterations" in out
    assert "speed-up of the loop" in out


@pytest.mark.slow
def test_bad_argument_subprocess_exits_2():
    proc = run_module("demo", "--samples", "0")
    assert proc.returncode == 2
    assert "--samples" in proc.stderr and "must be >= 1" in proc.stderr
    assert proc.stdout == ""


def test_demo_is_the_default_command(capsys):
    assert main(["--iterations", "20", "--numpy-iterations", "0"]) == 0
    out = capsys.readouterr().out
    assert "demo: spiral data" in out
    assert "numpy:" not in out


def test_demo_options(capsys):
    argv = ["demo", "--dataset", "vertical", "--samples", "20", "--classes", "4",
            "--layers", "2,5,4", "--iterations", "30", "--scale", "0.2", "--seed", "3",
            "--dtype", "float64", "--numpy-iterations", "10"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "vertical data, 4 classes x 20 samples, network 2-5-4 (39 parameters, float64)" in out
    assert "numpy:  10 iterations" in out


def test_demo_is_reproducible(capsys):
    argv = ["--iterations", "50", "--numpy-iterations", "0", "--seed", "7"]

    def final_line():
        assert main(argv) == 0
        return [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("final:")]

    assert final_line() == final_line()


@pytest.mark.parametrize("argv, message", [
    (["demo", "--samples", "0"], "--samples"),
    (["demo", "--classes", "1"], "--classes"),
    (["demo", "--iterations", "0"], "--iterations"),
    (["demo", "--iterations", "ten"], "expected an integer"),
    (["demo", "--scale", "0"], "--scale"),
    (["demo", "--scale", "inf"], "--scale"),
    (["demo", "--seed", "-1"], "--seed"),
    (["demo", "--dataset", "moons"], "invalid choice"),
    (["demo", "--layers", "2"], "at least 2 sizes"),
    (["demo", "--layers", "2,0,3"], "must be >= 1"),
    (["demo", "--layers", "2,a,3"], "comma-separated"),
    (["demo", "--layers", "3,3,3"], "must start with 2"),
    (["demo", "--layers", "2,3,4"], "must end with the number of classes"),
    (["demo", "--dtype", "float16"], "invalid choice"),
    (["demo", "--no-such-option"], "unrecognized arguments"),
    (["nosuchcommand"], "invalid choice"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert fastnn.__version__ in capsys.readouterr().out


def test_perturbation_search_keeps_only_improvements():
    target = np.array([1.0, -2.0, 0.5])
    params = np.zeros(3)
    seen = []

    def loss_fn():
        value = float(((params - target) ** 2).sum())
        seen.append(value)
        return value

    best, accepted, done = perturbation_search(
        loss_fn, params, 500, 0.1, np.random.default_rng(0)
    )
    assert done == 500
    assert 0 < accepted < 500
    assert best == min(seen)  # the best loss ever evaluated is kept ...
    assert float(((params - target) ** 2).sum()) == best  # ... and params hold it
    assert best < seen[0]


def test_perturbation_search_progress_calls():
    params = np.zeros(2, dtype=np.float32)
    calls = []
    perturbation_search(lambda: float(params.sum()), params, 10, 1.0,
                        np.random.default_rng(1), lambda i, loss: calls.append(i), 4)
    assert calls == [4, 8, 10]
    assert params.dtype == np.float32


@pytest.mark.parametrize("sizes", [[2, 3, 3], [2, 16, 3], [2, 4, 5, 3]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_loss_matches_mlp(sizes, dtype):
    X, y = make_data("spiral", 50, 3, 0, dtype)
    model = fastnn.MLP(sizes, seed=1, dtype=dtype)
    model.params[:] = np.random.default_rng(2).standard_normal(model.n_params)
    expected = numpy_loss_fn(X, y, model.params, sizes)()
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert model.loss(X, y) == pytest.approx(expected, rel=rtol)


def test_make_data_leaves_global_rng_alone():
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    X, y = make_data("vertical", 10, 3, 5, np.float32)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    assert X.shape == (30, 2) and X.dtype == np.float32
    assert y.dtype == np.int64 and set(y.tolist()) == {0, 1, 2}
    X2, _ = make_data("vertical", 10, 3, 5, np.float32)
    assert np.array_equal(X, X2)
