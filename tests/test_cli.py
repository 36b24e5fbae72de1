"""The command line: ``python -m fastnn`` / ``fastnn``: the ``search`` command (the
default) and the ``demo`` with its search loop."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from subproc import run_python

import fastnn
from fastnn import cli
from fastnn.cli import load_data, main, make_data, numpy_loss_fn, perturbation_search

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


def test_demo_runs_without_the_numpy_loop(capsys):
    assert main(["demo", "--iterations", "20", "--numpy-iterations", "0"]) == 0
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
    argv = ["demo", "--iterations", "50", "--numpy-iterations", "0", "--seed", "7"]

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
    (["demo", "--seed", str(2 ** 32)], "--seed"),
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


# -- search ---------------------------------------------------------------------------
SUMMARY_FIELDS = ("loss", "accuracy", "best iteration", "steps", "evaluations", "seconds",
                  "evaluations/s", "mode", "seed", "stopped", "resumed")


def search_json(argv, capsys):
    """Run ``fastnn search ARGV --json --no-progress`` in-process; the parsed summary."""
    assert main(["search", *argv, "--json", "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)


def summary_fields(out):
    """The ``name  value`` rows of the text summary, as a dict."""
    rows = {}
    for line in out.splitlines():
        for name in SUMMARY_FIELDS:
            if re.match(rf"{re.escape(name)}\s{{2,}}\S", line):
                rows[name] = line[len(name):].strip()
    return rows


@pytest.mark.slow
def test_search_default_subprocess():
    """``python -m fastnn`` alone runs the search on nnfs's spiral data and prints the
    summary on stdout; the progress bar goes to stderr."""
    proc = run_module()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("fastnn search: spiral data (3 classes x 100 samples), "
                          "network 2-3-3 (21 parameters, float32)")
    rows = summary_fields(out)
    assert set(rows) == set(SUMMARY_FIELDS)
    assert rows["steps"] == rows["evaluations"] == "10000"
    assert rows["seed"] == "0" and rows["stopped"] == "iterations" and rows["resumed"] == "no"
    assert 0 < float(rows["loss"]) < 1.0986  # below the uniform guess's log(3)
    assert "search:" in proc.stderr and "Traceback" not in proc.stderr  # the tqdm bar


def test_search_is_the_default_command(capsys):
    assert main(["--iterations", "500", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("fastnn search: spiral data")
    rows = summary_fields(captured.out)
    assert set(rows) == set(SUMMARY_FIELDS)
    assert rows["steps"] == "500" and rows["mode"] == "serial"
    assert captured.err == ""  # --no-progress: nothing on stderr


def test_search_json(capsys):
    s = search_json(["--iterations", "300", "--chains", "2", "--candidates", "3"], capsys)
    assert s["data"] == "spiral" and s["classes"] == 3
    assert s["samples"] == 300 and s["samples_per_class"] == 100 and s["features"] == 2
    assert s["layers"] == [2, 3, 3] and s["parameters"] == 21 and s["dtype"] == "float32"
    assert s["steps"] == 300 and s["evaluations"] == 300 * 2 * 3
    assert s["seed"] == 0 and s["stopped"] == "iterations" and s["interrupted"] is False
    assert s["resumed"] is False and s["resumed_from"] is None
    assert s["mode"] in ("serial", "chains") and s["chain"] in (0, 1)
    assert 0 < s["loss"] < 1.0986 and 0 <= s["accuracy"] <= 1
    assert s["iteration"] is None or 0 <= s["iteration"] < 300
    assert s["seconds"] > 0 and s["evaluations_per_second"] > 0


def test_search_progress_bar_goes_to_stderr(capsys):
    assert main(["search", "--iterations", "300", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["steps"] == 300  # stdout: only the summary
    assert "search:" in captured.err and "300/300" in captured.err


def test_search_vertical_defaults_reach_low_loss(capsys):
    s = search_json(["--dataset", "vertical"], capsys)
    assert s["layers"] == [2, 3, 3] and s["steps"] == 10_000
    assert s["loss"] < 0.2
    assert s["accuracy"] > 0.9


def test_search_is_reproducible_whatever_the_execution(capsys):
    """The same seed gives the same result, serial or parallel, with 1 or more threads."""
    argv = ["--iterations", "400", "--chains", "2", "--candidates", "2", "--seed", "5"]
    results = [search_json(argv + extra, capsys) for extra in (
        ["--parallel", "off"], ["--parallel", "chains"], ["--parallel", "chains", "--threads",
                                                          "1"], ["--parallel", "candidates"])]
    assert [r["mode"] for r in results] == ["serial", "chains", "chains", "candidates"]
    keys = ("loss", "accuracy", "iteration", "chain", "evaluations")
    assert all({k: r[k] for k in keys} == {k: results[0][k] for k in keys} for r in results)
    other = search_json(["--iterations", "400", "--chains", "2", "--candidates", "2",
                         "--seed", "6"], capsys)
    assert other["loss"] != results[0]["loss"]


@pytest.mark.parametrize("argv, expected", [
    (["--dataset", "sine"], dict(data="sine", layers=[1, 3, 3], samples_per_class=100, classes=3)),
    (["--dataset", "spiral", "--samples", "30", "--classes", "4", "--layers", "2,8,4",
      "--dtype", "float64"], dict(layers=[2, 8, 4], samples=120, samples_per_class=30,
                                  classes=4, parameters=60,
                                  dtype="float64")),
    (["--strategy", "random", "--scale", "1"], dict(strategy="random", scale=1.0)),
    (["--adapt", "--target-loss", "0.01", "--patience", "100"],
     dict(adapt=True, target_loss=0.01, patience=100)),
])
def test_search_options(argv, expected, capsys):
    s = search_json(["--iterations", "300", *argv], capsys)
    assert {k: s[k] for k in expected} == expected
    assert 0 < s["loss"] < 1.5


@pytest.mark.parametrize("argv, stopped", [(["--target-loss", "0.5"], "target_loss"),
                                           (["--patience", "20"], "patience")])
def test_search_stops_early(argv, stopped, capsys):
    s = search_json(["--dataset", "vertical", *argv], capsys)
    assert s["stopped"] == stopped and s["steps"] < 10_000
    if stopped == "target_loss":
        assert s["loss"] <= 0.5
    else:
        assert s["steps"] - 1 - s["iteration"] == 20  # steps after the last improvement


def test_sine_is_cut_into_classes_by_quantile():
    X, y = make_data("sine", 50, 4, 0, np.float64)
    assert X.shape == (200, 1) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [50] * 4
    values = np.sin(2 * np.pi * X[:, 0])
    for k in range(3):  # every value of class k is below every value of class k + 1
        assert values[y == k].max() <= values[y == k + 1].min()


def test_search_validation_options(tmp_path, capsys):
    """--validation-split holds out a stratified part of the data; --validation-data reads
    a file; without either, a fresh draw of the nnfs data set with seed + 1 (as the book's
    chapter 11; issue 10), and --no-validation turns it off."""
    plain = search_json(["--iterations", "500", "--no-validation"], capsys)
    assert plain["validation"] is plain["val_loss"] is plain["val_accuracy"] is None
    drawn = search_json(["--iterations", "500"], capsys)
    assert drawn["validation"] == ("a fresh draw of the spiral data with seed 1 (300 "
                                   "samples), as the book's chapter 11")
    Xd, yd = make_data("spiral", 100, 3, 1, np.float32)
    model = fastnn.MLP([2, 3, 3], seed=0)
    X, y = make_data("spiral", 100, 3, 0, np.float32)
    r = fastnn.search(model, X, y, iterations=500, seed=0, validation=(Xd, yd))
    assert (drawn["val_loss"], drawn["val_accuracy"]) == (r.val_loss, r.val_accuracy)
    for key in ("loss", "accuracy", "iteration", "evaluations"):  # validation only measures
        assert drawn[key] == plain[key], key
    split = search_json(["--iterations", "500", "--validation-split", "0.2"], capsys)
    assert (split["samples"], split["validation_samples"]) == (240, 60)
    assert split["validation"] == ("20% of the data held out (60 samples, stratified by "
                                   "class, seed 0)")
    assert 0 < split["val_loss"] < 2 and 0 <= split["val_accuracy"] <= 1
    Xv, yv = make_data("spiral", 100, 3, 1, np.float32)
    np.savez(tmp_path / "val.npz", X=Xv, y=yv)
    own = search_json(["--iterations", "500", "--validation-data", str(tmp_path / "val.npz")],
                      capsys)
    assert own["validation"] == f"{tmp_path / 'val.npz'} (300 samples)"
    for key in ("loss", "accuracy", "iteration", "evaluations"):  # validation only measures
        assert own[key] == plain[key], key
    model = fastnn.MLP([2, 3, 3], seed=0)
    X, y = make_data("spiral", 100, 3, 0, np.float32)
    r = fastnn.search(model, X, y, iterations=500, seed=0, validation=(Xv, yv))
    assert (own["val_loss"], own["val_accuracy"]) == (r.val_loss, r.val_accuracy)
    assert main(["search", "--iterations", "300", "--validation-split", "0.2",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "\nvalidation: 20% of the data held out" in out
    rows = {line.split("  ")[0] for line in out.splitlines() if "  " in line}
    assert {"validation loss", "validation accuracy"} <= rows


# -- own data files -------------------------------------------------------------------
@pytest.fixture(scope="module")
def vertical():
    """nnfs's vertical data as ``search --dataset vertical`` makes it (float64, seed 0)."""
    return make_data("vertical", 100, 3, 0, np.float64)


def write_csv(path, X, y, header=True):
    with open(path, "w") as f:
        if header:
            f.write(",".join(f"x{j}" for j in range(X.shape[1])) + ",label\n")
        for row, label in zip(X, y, strict=True):
            f.write(",".join(repr(float(v)) for v in row) + f",{label}\n")


@pytest.mark.parametrize("fmt", ["npz", "npz-positional", "npz-lowercase-float-labels",
                                 "npz-one-hot", "npz-column", "csv", "csv-no-header"])
def test_own_data_gives_the_same_search_as_the_data_set(fmt, vertical, tmp_path, capsys):
    X, y = vertical
    path = tmp_path / ("data.csv" if fmt.startswith("csv") else "data.npz")
    if fmt == "npz":
        np.savez(path, X=X, y=y)
    elif fmt == "npz-positional":
        np.savez(path, X, y)
    elif fmt == "npz-lowercase-float-labels":
        np.savez(path, x=X, Y=y.astype(np.float64))
    elif fmt == "npz-one-hot":
        np.savez(path, X=X, y=np.eye(3)[y])
    elif fmt == "npz-column":
        np.savez(path, X=X, y=y.reshape(-1, 1).astype(np.uint8))
    else:
        write_csv(path, X, y, header=fmt == "csv")
    argv = ["--iterations", "2000"]
    own = search_json([*argv, "--data", str(path)], capsys)
    builtin = search_json([*argv, "--dataset", "vertical"], capsys)
    assert own["data"] == str(path) and own["samples"] == 300 and own["classes"] == 3
    assert own["samples_per_class"] is None
    assert own["layers"] == [2, 3, 3]
    assert own["loss"] == builtin["loss"] and own["iteration"] == builtin["iteration"]


def test_own_data_csv_features_and_classes(tmp_path, capsys):
    """A wider CSV: 4 features, 5 classes, blank lines; the default network follows."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = np.arange(60) % 5
    path = tmp_path / "wide.csv"
    write_csv(path, X, y)
    path.write_text(path.read_text().replace("\n", "\n\n", 3))
    assert load_data(path)[0].shape == (60, 4)
    s = search_json(["--data", str(path), "--iterations", "200"], capsys)
    assert s["layers"] == [4, 3, 5] and s["features"] == 4 and s["classes"] == 5
    s = search_json(["--data", str(path), "--iterations", "200", "--layers", "4,16,8,5"],
                    capsys)
    assert s["parameters"] == 4 * 16 + 16 + 16 * 8 + 8 + 8 * 5 + 5


BAD_DATA = [
    ("x.npz", dict(a=[[1.0]], b=[0]), "expected arrays named X and y"),
    ("x.npz", dict(X=[[1.0], [np.nan]], y=[0, 1]), "X row 1 has a NaN"),
    ("x.npz", dict(X=[[1.0], [2.0]], y=[0.5, 1]), "integer class labels"),
    ("x.npz", dict(X=[[1.0], [2.0]], y=[-1, 1]), "must be >= 0"),
    ("x.npz", dict(X=[[1.0], [2.0]], y=[0, 0]), "single class"),
    ("x.npz", dict(X=[[1.0], [2.0]], y=[0, 1, 1]), "2 samples (rows) but y has 3 labels"),
    ("x.npz", dict(X=[1.0, 2.0], y=[0, 1]), "X must be 2-D"),
    ("x.npz", dict(X=[["a"], ["b"]], y=[0, 1]), "X must hold numbers"),
    ("x.npz", dict(X=[[1.0], [2.0]], y=[[1, 1], [0, 1]]), "not one-hot"),
    ("x.npz", b"not a zip file", "is not a .npz file"),
    ("x.csv", "a,b,label\n1,2,0\n1,x,1\n", "line 3, column 2: 'x' is not a number"),
    ("x.csv", "a,b,label\n1,2,0\n1,1\n", "line 3 has 2 columns, but the header has 3"),
    ("x.csv", "1,2,0\n1,1,1.5\n", "line 2: the label (last column) must be an integer"),
    ("x.csv", "1,2,0\n1,inf,1\n", "line 2 has a NaN or infinite value"),
    ("x.csv", "a,b,label\n", "has no data rows"),
    ("x.csv", "0\n1\n", "needs at least 2 columns"),
    ("x.txt", "1,2,0\n", "expected a .npz or .csv file"),
    ("missing.csv", None, "no such file"),
]


@pytest.mark.parametrize("name, content, message", BAD_DATA)
def test_bad_data_exits_2(name, content, message, tmp_path, capsys):
    path = tmp_path / name
    if isinstance(content, dict):
        with open(path, "wb") as f:  # np.savez would append .npz to other names
            np.savez(f, **{k: np.asarray(v) for k, v in content.items()})
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["search", "--data", str(path), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument --data: {path}: " in err and message in err


# -- bad options ----------------------------------------------------------------------
BAD_SEARCH_OPTIONS = [
    (["--samples", "0"], "argument --samples: must be >= 1"),
    (["--classes", "1"], "argument --classes: must be >= 2"),
    (["--dataset", "moons"], "argument --dataset: invalid choice"),
    (["--layers", "2"], "argument --layers: needs at least 2 sizes"),
    (["--layers", "2,x,3"], "argument --layers: expected comma-separated integers"),
    (["--layers", "3,3,3"], "argument --layers: the first size must be the number of features"),
    (["--layers", "2,3,4"], "argument --layers: the last size must be the number of classes"),
    (["--dataset", "sine", "--layers", "2,3,3"], "argument --layers: the first size"),
    (["--classes", "4"], None),  # fine: the default network follows the classes
    (["--classes", "4", "--layers", "2,3,3"], "argument --layers: the last size"),
    (["--strategy", "anneal"], "argument --strategy: invalid choice"),
    (["--iterations", "0"], "argument --iterations: must be >= 1"),
    (["--iterations", str(2 ** 62 + 1)], "argument --iterations: must be <= 2**62"),
    (["--iterations", "1e4"], "argument --iterations: expected an integer"),
    (["--candidates", "0"], "argument --candidates: must be >= 1"),
    (["--chains", "-2"], "argument --chains: must be >= 1"),
    (["--scale", "0"], "argument --scale: must be a finite number > 0"),
    (["--scale", "nan"], "argument --scale: must be a finite number"),
    (["--adapt", "--strategy", "random"], "argument --adapt: applies to --strategy perturb"),
    (["--target-loss", "inf"], "argument --target-loss: must be a finite number"),
    (["--target-loss", "low"], "argument --target-loss: expected a number"),
    (["--patience", "0"], "argument --patience: must be >= 1"),
    (["--seed", "-1"], "argument --seed: must be >= 0"),
    (["--seed", str(2 ** 32)], "argument --seed: must be <= 2**32 - 1"),
    (["--threads", "0"], "argument --threads: must be >= 1"),
    (["--threads", "100000"], "argument --threads: must be <="),
    (["--parallel", "yes"], "argument --parallel: invalid choice"),
    (["--dtype", "float16"], "argument --dtype: invalid choice"),
    (["--checkpoint-every", "10"], "argument --checkpoint-every: needs --checkpoint"),
    (["--checkpoint", "{tmp}/ck.npz", "--checkpoint-every", "0"],
     "argument --checkpoint-every: must be a finite number > 0"),
    (["--checkpoint", "{tmp}/no/such/dir/ck.npz"], "argument --checkpoint: directory"),
    (["--checkpoint", "{tmp}"], "argument --checkpoint: "),
    (["--checkpoint", "{tmp}/data.csv"], "argument --checkpoint: {tmp}/data.csv already exists"),
    (["--resume", "{tmp}/missing.npz"], "argument --resume: {tmp}/missing.npz: no such file"),
    (["--resume", "{tmp}/data.csv"], "argument --resume: checkpoint"),
    (["--data", "{tmp}/data.csv", "--dataset", "spiral"],
     "argument --dataset: not allowed with argument --data"),
    (["--data", "{tmp}/data.csv", "--samples", "10"], "argument --samples: applies to the nnfs"),
    (["--data", "{tmp}/data.csv", "--classes", "3"], "argument --classes: applies to the nnfs"),
    (["--validation-split", "1"], "argument --validation-split: must be in (0, 1)"),
    (["--validation-split", "0.001"], "argument --validation-split: 0.001 of 300 samples "
                                      "leaves no validation samples"),
    (["--validation-data", "{tmp}/missing.csv"],
     "argument --validation-data: {tmp}/missing.csv: no such file"),
    (["--validation-data", "{tmp}/data.csv", "--validation-split", "0.5"],
     "argument --validation-split: not allowed with argument --validation-data"),
    (["--validation-data", "{tmp}/wide.csv"],
     "argument --validation-data: {tmp}/wide.csv: has 3 features, but the data has 2"),
    (["--no-validation", "--validation-split", "0.2"], "not allowed with argument"),
    (["--no-such-option"], "unrecognized arguments"),
]


@pytest.mark.parametrize("argv, message", BAD_SEARCH_OPTIONS)
def test_bad_search_options_exit_2(argv, message, tmp_path, capsys):
    (tmp_path / "data.csv").write_text("1,2,0\n3,4,1\n")
    (tmp_path / "wide.csv").write_text("1,2,3,0\n3,4,5,1\n")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    if message is None:
        assert main(["search", *argv, "--iterations", "10", "--no-progress"]) == 0
        return
    with pytest.raises(SystemExit) as exc:
        main(["search", *argv, "--iterations", "10", "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and "Traceback" not in err
    assert message.replace("{tmp}", str(tmp_path)) in err


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", [
    (["--iterations", "ten"], "argument --iterations: expected an integer"),
    (["--threads", "100000"], "argument --threads: must be <="),
    (["--layers", "3,3,3"], "argument --layers: the first size"),
    (["--data", "missing.csv"], "argument --data: missing.csv: no such file"),
    (["--resume", "missing.npz"], "argument --resume: missing.npz: no such file"),
])
def test_bad_search_options_subprocess(argv, message):
    proc = run_module("search", *argv)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_resume_with_other_options_names_them(tmp_path, capsys):
    ck = str(tmp_path / "run.npz")
    search_json(["--iterations", "200", "--checkpoint", ck], capsys)
    for argv, message in [
        (["--seed", "1"], "--seed is 0 in the checkpoint but 1 now"),
        (["--scale", "0.1", "--layers", "2,4,3"], "--layers is [2, 3, 3] in the checkpoint"),
        (["--samples", "50"], "the data (--dataset, --samples, --classes, --seed or --data)"),
        (["--iterations", "100"], "argument --iterations: iterations=100 is fewer than the "
                                  "200 steps"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(["search", "--resume", ck, "--no-progress", *argv])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err


def test_interrupt_before_the_search_exits_130(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "make_data", interrupted)
    assert main(["search", "--no-progress"]) == 130
    captured = capsys.readouterr()
    assert captured.out == "" and "interrupted" in captured.err


# -- checkpoints, Ctrl-C, start-up time -------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--adapt", "--chains", "2", "--candidates", "2"]])
def test_checkpoint_and_resume_match_an_uninterrupted_run(extra, tmp_path, capsys):
    argv = ["--iterations", "6000", *extra]
    whole = search_json(argv, capsys)
    ck = str(tmp_path / "run.npz")
    first = search_json(["--iterations", "2500", *extra, "--checkpoint", ck], capsys)
    assert first["steps"] == 2500 and first["checkpoint"] == ck and os.path.exists(ck)
    with pytest.raises(SystemExit):  # the checkpoint is never overwritten by accident
        main(["search", *argv, "--checkpoint", ck, "--no-progress"])
    assert "already exists; add --resume" in capsys.readouterr().err
    rest = search_json([*argv, "--resume", ck], capsys)  # keeps checkpointing to ck
    assert rest["resumed"] is True and rest["resumed_from"] == ck
    assert rest["resumed_at_step"] == 2500 and rest["checkpoint"] == ck
    for key in ("loss", "accuracy", "iteration", "steps", "evaluations", "chain"):
        assert rest[key] == whole[key], key
    again = search_json([*argv, "--resume", ck], capsys)  # nothing left to do
    assert again["loss"] == whole["loss"] and again["resumed_at_step"] == 6000


def start_search(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "fastnn", "search", *args], cwd=ROOT, text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_ctrl_c_exits_130_with_the_best_so_far_and_resumes(tmp_path, capsys):
    """SIGINT to a long run: exit 130, the summary of the best so far on stdout, a
    checkpoint; resuming it gives what an uninterrupted run of as many steps gives."""
    ck = str(tmp_path / "run.npz")
    proc = start_search("--iterations", str(10 ** 12), "--checkpoint", ck, "--json")
    err = ""
    try:
        deadline = time.monotonic() + 120
        while not re.search(r"\| [1-9]\d*/", err):  # the bar shows steps done: computing
            assert proc.poll() is None and time.monotonic() < deadline, err
            err += os.read(proc.stderr.fileno(), 4096).decode()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err += rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted: the summary is the best found so far" in err
    s = json.loads(out)
    assert s["stopped"] == "interrupted" and s["interrupted"] is True
    assert 0 < s["steps"] < 10 ** 12 and s["loss"] < 1.0986
    target = s["steps"] + 20_000
    resumed = search_json(["--iterations", str(target), "--resume", ck], capsys)
    whole = search_json(["--iterations", str(target)], capsys)
    assert resumed["resumed_at_step"] == s["steps"]
    for key in ("loss", "accuracy", "iteration", "steps", "evaluations"):
        assert resumed[key] == whole[key], key


@pytest.mark.slow
def test_second_run_compiles_nothing():
    """Issue 3's bar was a second run within 1.5 s: once the kernels are in Numba's disk
    cache, a new process compiles nothing.  Checked as that (a count of compiled kernel
    signatures), not as a time: a timed assertion fails on a busy shared machine."""
    code = ("from fastnn.cli import main\n"
            "code = main(['search', '--iterations', '1000', '--no-progress'])\n"
            "from fastnn._config import KERNELS\n"
            "print('MISSES', code, sum(sum(d.stats.cache_misses.values()) "
            "for d in KERNELS.values()))\n")
    first = run_python(code)  # fills the cache if it is cold
    assert first.returncode == 0, first.stderr
    second = run_python(code)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == "MISSES 0 0", second.stdout


