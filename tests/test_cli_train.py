"""``fastnn train`` (issue 9, item 5): the book's chapter 10 run by default, its options,
validation data (a fresh draw, a stratified split, a file), the summary (text and
``--json``), bad options (exit 2 naming the option), checkpoints and resume, Ctrl-C.

Runs are in-process (``fastnn.cli.main``) with few epochs: the kernels compile once
(2-64-3 float32, and one network with dropout) and every later run loads them.  Two
subprocesses: the real default run, and Ctrl-C.  Never calls ``nnfs.init()``.
"""

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

import fastnn
from fastnn import cli
from fastnn.checkpoint import save_checkpoint
from fastnn.cli import _common, main, make_data
from fastnn.cli.data import book_model

ROOT = Path(__file__).resolve().parents[1]
#: every field of the JSON summary
FIELDS = {
    "data", "samples", "samples_per_class", "classes", "features", "validation",
    "validation_samples", "layers", "parameters", "dtype", "dropout", "l1", "l2",
    "optimizer", "hyperparameters", "epochs", "batch_size", "target_loss", "patience",
    "loss", "accuracy", "data_loss", "regularization_loss", "val_loss", "val_accuracy",
    "epochs_done", "steps", "final_learning_rate", "seconds", "us_per_epoch", "mode", "seed",
    "stopped", "interrupted", "resumed", "resumed_from", "resumed_at_epoch", "checkpoint",
    "saved", "plot", "fastnn",
}
#: the rows of the text summary, always there
ROWS = ("loss", "accuracy", "epochs", "steps", "learning rate", "seconds", "us/epoch", "mode",
        "seed", "stopped", "resumed", "fastnn")
ADAM_CH10 = dict(learning_rate=0.05, decay=5e-7, epsilon=1e-7, beta_1=0.9, beta_2=0.999)


def train_json(argv, capsys):
    """``fastnn train ARGV --json --no-progress`` in-process: the parsed summary."""
    assert main(["train", *argv, "--json", "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)


def rows_of(out):
    rows = {}
    for line in out.splitlines():
        m = re.match(r"(\S+(?: \S+)*)\s{2,}(\S.*)$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def run_module(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# -- the defaults: the book's chapter 10 run ---------------------------------------------------


def test_defaults_are_the_books_chapter_10_run(capsys):
    args = cli.build_parser().parse_args(["train"])
    assert (args.epochs, args.optimizer, args.batch_size, args.seed, args.dtype) == (
        10_001, "adam", None, 0, "float32")
    assert args.learning_rate is args.decay is args.layers is None  # resolved per optimizer
    assert (args.dataset, args.data, args.samples, args.classes) == (None,) * 4
    assert args.dropout is args.l1 is args.l2 is args.validation_split is None
    assert not args.no_validation
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for words in ("default: 10001", "0.05 with adam", "5e-7", "FEATURES,64,CLASSES",
                  "seed --seed + 1", "(default: adam)"):
        assert words in " ".join(text.split()), words


def test_default_run_is_fastnn_train_with_the_books_settings(capsys):
    """``fastnn train`` with a short --epochs: the JSON summary says what ran, and the
    numbers are those of ``fastnn.train`` called with the chapter 10 settings, the
    book's data and initial weights and a fresh draw (seed 1) as validation data."""
    s = train_json(["--epochs", "300"], capsys)
    assert set(s) == FIELDS
    assert (s["data"], s["samples"], s["samples_per_class"], s["classes"], s["features"]) == (
        "spiral", 300, 100, 3, 2)
    assert s["layers"] == [2, 64, 3] and s["parameters"] == 2 * 64 + 64 + 64 * 3 + 3
    assert (s["optimizer"], s["hyperparameters"]) == ("adam", ADAM_CH10)
    assert (s["epochs"], s["epochs_done"], s["steps"], s["batch_size"]) == (300, 300, 300, None)
    assert s["validation"].startswith("a fresh draw of the spiral data with seed 1")
    assert s["validation_samples"] == 300
    assert (s["dtype"], s["seed"], s["mode"], s["stopped"], s["interrupted"]) == (
        "float32", 0, "serial", "epochs", False)
    assert s["dropout"] is s["l1"] is s["l2"] is s["target_loss"] is s["patience"] is None
    assert s["resumed"] is False and s["resumed_from"] is s["checkpoint"] is None
    assert s["fastnn"] == fastnn.__version__ and s["seconds"] > 0 and s["us_per_epoch"] > 0
    assert s["final_learning_rate"] == 0.05 * (1.0 / (1.0 + 5e-7 * 299))  # the book's rate
    assert s["regularization_loss"] == 0 and s["data_loss"] == s["loss"]
    # the same run, by hand
    X, y = make_data("spiral", 100, 3, 0, np.float32)
    Xv, yv = make_data("spiral", 100, 3, 1, np.float32)
    model = book_model([2, 64, 3], "float32", 0, "spiral", 100, 3)
    r = fastnn.train(model, X, y, optimizer="adam", learning_rate=0.05, decay=5e-7,
                     epochs=300, seed=0, validation=(Xv, yv))
    assert (s["loss"], s["accuracy"], s["val_loss"], s["val_accuracy"]) == (
        r.loss, r.accuracy, r.val_loss, r.val_accuracy)
    assert 0 < s["loss"] < 1.0986 and s["accuracy"] > 0.5


def test_initial_weights_are_the_books():
    """Drawn from NumPy's global RNG seeded as nnfs.init() seeds it, after the data, as
    the book's script draws them (to float32 rounding); the global state is kept."""
    from nnfs.datasets import spiral_data
    before = np.random.get_state()[1].copy()
    model = book_model([2, 64, 3], "float32", 0, "spiral", 100, 3)
    assert np.array_equal(np.random.get_state()[1], before)
    state = np.random.get_state()
    try:
        np.random.seed(0)
        spiral_data(samples=100, classes=3)
        w1, w2 = 0.01 * np.random.randn(2, 64), 0.01 * np.random.randn(64, 3)
    finally:
        np.random.set_state(state)
    np.testing.assert_allclose(model.layers[0].weights, w1, rtol=1e-6, atol=0)
    np.testing.assert_allclose(model.layers[1].weights, w2, rtol=1e-6, atol=0)
    assert not model.layers[0].biases.any() and not model.layers[1].biases.any()


@pytest.mark.slow
def test_default_subprocess_is_the_books_run():
    """``fastnn train`` alone: the whole chapter 10 run (10,001 epochs), the summary on
    stdout, the progress bar on stderr."""
    proc = run_module("train")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("fastnn train: spiral data (3 classes x 100 samples), network "
                          "2-64-3 (387 parameters, float32)\nadam (learning rate 0.05, "
                          "decay 5e-07, epsilon 1e-07, beta_1 0.9, beta_2 0.999), 10001 "
                          "epochs, full batch\nvalidation: a fresh draw of the spiral data "
                          "with seed 1 (300 samples)")
    rows = rows_of(out)
    assert set(ROWS) | {"validation loss", "validation accuracy"} <= set(rows)
    assert rows["epochs"] == rows["steps"] == "10001" and rows["stopped"] == "epochs"
    assert float(rows["accuracy"]) > 0.9 and float(rows["loss"]) < 0.2  # the book: 0.967
    assert "train:" in proc.stderr and "Traceback" not in proc.stderr


def test_text_summary_and_progress_bar(capsys):
    assert main(["train", "--epochs", "200", "--l2", "5e-4,0"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert out.startswith("fastnn train: spiral data")
    assert "regularisation: L2 0.0005,0\n" in out
    rows = rows_of(out)
    assert set(ROWS) | {"data loss", "regularization loss", "validation loss",
                        "validation accuracy"} <= set(rows)
    assert rows["epochs"] == "200" and rows["resumed"] == "no"
    assert float(rows["loss"]) == pytest.approx(
        float(rows["data loss"]) + float(rows["regularization loss"]), abs=2e-6)
    assert "train:" in captured.err and "200/200" in captured.err  # tqdm, on stderr


# -- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["--dataset", "vertical", "--samples", "40", "--classes", "3", "--layers", "2,16,3"],
     dict(data="vertical", samples=120, samples_per_class=40, layers=[2, 16, 3],
          parameters=99, validation_samples=120)),
    (["--dataset", "sine"], dict(data="sine", features=1, layers=[1, 64, 3])),
    (["--optimizer", "sgd", "--momentum", "0.9", "--decay", "1e-3"],
     dict(optimizer="sgd", hyperparameters=dict(learning_rate=1.0, decay=1e-3, momentum=0.9))),
    (["--optimizer", "adagrad", "--epsilon", "1e-6"],
     dict(hyperparameters=dict(learning_rate=1.0, decay=0.0, epsilon=1e-6))),
    (["--optimizer", "rmsprop", "--learning-rate", "0.02", "--decay", "1e-5", "--rho",
      "0.999"], dict(hyperparameters=dict(learning_rate=0.02, decay=1e-5, epsilon=1e-7,
                                          rho=0.999))),
    (["--optimizer", "adam", "--learning-rate", "0.001", "--decay", "0", "--beta-1", "0.8",
      "--beta-2", "0.99"], dict(hyperparameters=dict(learning_rate=0.001, decay=0.0,
                                                     epsilon=1e-7, beta_1=0.8, beta_2=0.99))),
    (["--batch-size", "64"], dict(batch_size=64, steps=5 * 20)),
    (["--l1", "1e-4", "--l2", "5e-4"], dict(l1=1e-4, l2=5e-4)),
    (["--dropout", "0.1", "--layers", "2,32,16,3", "--l2", "5e-4,0,0"],
     dict(dropout=0.1, layers=[2, 32, 16, 3], l2=[5e-4, 0.0, 0.0])),
    (["--dropout", "0.1,0", "--layers", "2,32,16,3"], dict(dropout=[0.1, 0.0])),
    (["--no-validation"], dict(validation=None, validation_samples=None, val_loss=None,
                               val_accuracy=None)),
    (["--threads", "1", "--seed", "7"], dict(seed=7, mode="serial")),
])
def test_options(argv, expected, capsys):
    s = train_json(["--epochs", "20", *argv], capsys)
    assert {k: s[k] for k in expected} == expected
    assert s["epochs_done"] == 20 and np.isfinite(s["loss"]) and s["stopped"] == "epochs"
    if "l1" in expected or "l2" in expected:
        assert s["regularization_loss"] > 0
        assert s["loss"] == pytest.approx(s["data_loss"] + s["regularization_loss"])


def test_early_stops(capsys):
    """--target-loss and --patience monitor the validation loss when there is one (on
    spiral data it is lowest after a few hundred epochs, then the network overfits)."""
    s = train_json(["--target-loss", "0.9"], capsys)
    assert s["stopped"] == "target_loss" and s["val_loss"] <= 0.9
    assert s["epochs_done"] < 10_001
    s = train_json(["--patience", "200"], capsys)
    assert s["stopped"] == "patience" and s["epochs_done"] < 10_001


def test_the_seed_changes_the_run_and_repeats_it(capsys):
    a = train_json(["--epochs", "50", "--seed", "3"], capsys)
    b = train_json(["--epochs", "50", "--seed", "3"], capsys)
    c = train_json(["--epochs", "50", "--seed", "4"], capsys)
    assert (a["loss"], a["val_loss"]) == (b["loss"], b["val_loss"])
    assert a["loss"] != c["loss"] and c["validation"].startswith(
        "a fresh draw of the spiral data with seed 5")


def test_diverging_run_says_so(capsys):
    assert main(["train", "--optimizer", "sgd", "--learning-rate", "1e30", "--epochs", "50",
                 "--json", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["stopped"] == "diverged"
    assert "fastnn train: warning: the loss became NaN or infinite" in captured.err
    assert "Traceback" not in captured.err and "RuntimeWarning" not in captured.err


def test_interrupt_before_training_exits_130(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "make_data", interrupted)
    assert main(["train", "--no-progress"]) == 130
    captured = capsys.readouterr()
    assert captured.out == "" and "interrupted" in captured.err


# -- validation data ----------------------------------------------------------------------------


def test_stratified_split_keeps_every_class_in_proportion():
    y = np.repeat(np.arange(4), [10, 20, 30, 41])
    X = np.arange(y.size, dtype=np.float64).reshape(-1, 1)
    Xt, yt, Xv, yv = _common.split(X, y, 0.25, seed=0)
    assert np.bincount(yv).tolist() == [3, 5, 8, 10]  # round(0.25 x count), halves up
    assert np.bincount(yt).tolist() == [7, 15, 22, 31]
    assert sorted(np.concatenate([Xt, Xv])[:, 0].tolist()) == X[:, 0].tolist()
    assert np.all(np.diff(Xt[:, 0]) > 0) and np.all(np.diff(Xv[:, 0]) > 0)  # order kept
    again = _common.split(X, y, 0.25, seed=0)
    other = _common.split(X, y, 0.25, seed=1)
    assert np.array_equal(again[2], Xv) and not np.array_equal(other[2], Xv)


def test_validation_split(capsys):
    s = train_json(["--epochs", "30", "--validation-split", "0.2"], capsys)
    assert (s["samples"], s["validation_samples"]) == (240, 60)
    assert s["validation"] == ("20% of the data held out (60 samples, stratified by class, "
                               "seed 0)")
    assert s["val_loss"] > 0 and 0 <= s["val_accuracy"] <= 1
    X, y = make_data("spiral", 100, 3, 0, np.float32)
    _, yt, _, yv = _common.split(X, y, 0.2, 0)
    assert np.bincount(yv).tolist() == [20, 20, 20] and np.bincount(yt).tolist() == [80] * 3


def test_validation_file_and_own_data(tmp_path, capsys):
    """--validation-data holding the default's fresh draw gives the default's numbers;
    --data alone has no validation data."""
    X, y = make_data("spiral", 100, 3, 0, np.float64)
    Xv, yv = make_data("spiral", 100, 3, 1, np.float64)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    with open(tmp_path / "val.csv", "w") as f:
        for row, label in zip(Xv, yv, strict=True):
            f.write(f"{float(row[0])!r},{float(row[1])!r},{label}\n")
    default = train_json(["--epochs", "40"], capsys)
    from_file = train_json(["--epochs", "40", "--validation-data", str(tmp_path / "val.csv")],
                           capsys)
    assert from_file["validation"] == f"{tmp_path / 'val.csv'} (300 samples)"
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert from_file[key] == default[key], key
    own = train_json(["--epochs", "40", "--data", str(tmp_path / "train.npz")], capsys)
    assert own["validation"] is own["val_loss"] is own["samples_per_class"] is None
    assert (own["samples"], own["layers"]) == (300, [2, 64, 3])
    both = train_json(["--epochs", "40", "--data", str(tmp_path / "train.npz"),
                       "--validation-data", str(tmp_path / "val.csv")], capsys)
    assert both["val_loss"] > 0 and both["loss"] == own["loss"]  # validation only measures
    assert own["loss"] != default["loss"]  # no data set drawn before the initial weights


# -- bad options --------------------------------------------------------------------------------


BAD_OPTIONS = [
    (["--samples", "0"], "argument --samples: must be >= 1"),
    (["--classes", "1"], "argument --classes: must be >= 2"),
    (["--dataset", "moons"], "argument --dataset: invalid choice"),
    (["--data", "{tmp}/data.csv", "--dataset", "spiral"], "argument --dataset: not allowed"),
    (["--data", "{tmp}/data.csv", "--samples", "10"], "argument --samples: applies to the nnfs"),
    (["--data", "{tmp}/missing.csv"], "argument --data: {tmp}/missing.csv: no such file"),
    (["--layers", "2"], "argument --layers: needs at least 2 sizes"),
    (["--layers", "3,64,3"], "argument --layers: the first size must be the number of features"),
    (["--layers", "2,64,4"], "argument --layers: the last size must be the number of classes"),
    (["--optimizer", "nadam"], "argument --optimizer: invalid choice"),
    (["--learning-rate", "0"], "argument --learning-rate: must be a finite number > 0"),
    (["--learning-rate", "-0.1"], "argument --learning-rate: must be a finite number > 0"),
    (["--learning-rate", "nan"], "argument --learning-rate: must be a finite number"),
    (["--learning-rate", "fast"], "argument --learning-rate: expected a number"),
    (["--decay=-1e-3"], "argument --decay: must be a finite number >= 0"),
    (["--optimizer", "sgd", "--momentum", "1"], "argument --momentum: must be in [0, 1)"),
    (["--optimizer", "sgd", "--momentum", "-0.1"], "argument --momentum: must be in [0, 1)"),
    (["--momentum", "0.9"], "argument --momentum: applies to --optimizer sgd, not adam"),
    (["--epsilon", "0"], "argument --epsilon: must be a finite number > 0"),
    (["--optimizer", "sgd", "--epsilon", "1e-7"],
     "argument --epsilon: applies to --optimizer adagrad or rmsprop or adam, not sgd"),
    (["--optimizer", "rmsprop", "--rho", "1"], "argument --rho: must be in (0, 1)"),
    (["--optimizer", "rmsprop", "--rho", "0"], "argument --rho: must be in (0, 1)"),
    (["--rho", "0.9"], "argument --rho: applies to --optimizer rmsprop, not adam"),
    (["--beta-1", "1"], "argument --beta-1: must be in (0, 1)"),
    (["--beta-2", "0"], "argument --beta-2: must be in (0, 1)"),
    (["--optimizer", "rmsprop", "--beta-1", "0.9"],
     "argument --beta-1: applies to --optimizer adam, not rmsprop"),
    (["--optimizer", "adagrad", "--beta-2", "0.99"],
     "argument --beta-2: applies to --optimizer adam, not adagrad"),
    (["--epochs", "0"], "argument --epochs: must be >= 1"),
    (["--epochs", "1e4"], "argument --epochs: expected an integer"),
    (["--epochs", str(2 ** 62 + 1)], "argument --epochs: must be <= 2**62"),
    (["--batch-size", "0"], "argument --batch-size: must be >= 1"),
    (["--l1", "-1"], "argument --l1: must be a finite number >= 0"),
    (["--l2", "inf"], "argument --l2: must be a finite number"),
    (["--l2", "1e-4,x"], "argument --l2: expected a number, got 'x' (in '1e-4,x')"),
    (["--l2", "1e-4,0,0"], "argument --l2: gives 3 values, but the network has 2 dense layers"),
    (["--dropout", "1"], "argument --dropout: must be in [0, 1)"),
    (["--dropout", "-0.5"], "argument --dropout: must be in [0, 1)"),
    (["--dropout", "0.1", "--layers", "2,3"], "argument --dropout: needs a hidden layer"),
    (["--dropout", "0.1,0.2"], "argument --dropout: gives 2 values, but the network has 1 "
                               "hidden layers"),
    (["--validation-split", "0"], "argument --validation-split: must be in (0, 1)"),
    (["--validation-split", "1"], "argument --validation-split: must be in (0, 1)"),
    (["--validation-split", "0.001"], "argument --validation-split: 0.001 of 300 samples "
                                      "leaves no validation samples"),
    (["--validation-split", "0.999"], "leaves no training samples"),
    (["--validation-split", "0.2", "--validation-data", "{tmp}/data.csv"],
     "argument --validation-data: not allowed with argument --validation-split"),
    (["--no-validation", "--validation-split", "0.2"],
     "argument --validation-split: not allowed with argument --no-validation"),
    (["--validation-data", "{tmp}/missing.csv"],
     "argument --validation-data: {tmp}/missing.csv: no such file"),
    (["--validation-data", "{tmp}/wide.csv"],
     "argument --validation-data: {tmp}/wide.csv: has 3 features, but the data has 2"),
    (["--validation-data", "{tmp}/data.csv", "--classes", "2", "--layers", "2,8,2"], None),
    (["--validation-data", "{tmp}/labels.csv"],
     "argument --validation-data: {tmp}/labels.csv: has label 5, but the data has 3 classes"),
    (["--target-loss", "inf"], "argument --target-loss: must be a finite number"),
    (["--patience", "0"], "argument --patience: must be >= 1"),
    (["--seed", "-1"], "argument --seed: must be >= 0"),
    (["--seed", str(2 ** 32)], "argument --seed: must be <= 2**32 - 1"),
    (["--dtype", "float16"], "argument --dtype: invalid choice"),
    (["--threads", "0"], "argument --threads: must be >= 1"),
    (["--threads", "100000"], "argument --threads: must be <="),
    (["--checkpoint-every", "10"], "argument --checkpoint-every: needs --checkpoint"),
    (["--checkpoint", "{tmp}/ck.npz", "--checkpoint-every", "0"],
     "argument --checkpoint-every: must be a finite number > 0"),
    (["--checkpoint", "{tmp}/no/such/dir/ck.npz"], "argument --checkpoint: directory"),
    (["--checkpoint", "{tmp}"], "argument --checkpoint: {tmp} is a directory"),
    (["--checkpoint", "{tmp}/data.csv"], "argument --checkpoint: {tmp}/data.csv already exists"),
    (["--resume", "{tmp}/missing.npz"], "argument --resume: {tmp}/missing.npz: no such file"),
    (["--resume", "{tmp}/data.csv"], "argument --resume: checkpoint"),
    (["--no-such-option"], "unrecognized arguments"),
]


@pytest.mark.parametrize("argv, message", BAD_OPTIONS,
                         ids=[" ".join(argv) for argv, _ in BAD_OPTIONS])
def test_bad_options_exit_2_naming_the_option(argv, message, tmp_path, capsys):
    (tmp_path / "data.csv").write_text("1,2,0\n3,4,1\n")
    (tmp_path / "wide.csv").write_text("1,2,3,0\n3,4,5,1\n")
    (tmp_path / "labels.csv").write_text("".join(f"1,2,{k}\n" for k in range(6)))
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    command = ["train", "--epochs", "5", *argv, "--no-progress"]  # the last --epochs wins
    if message is None:  # fine
        assert main(command) == 0
        return
    with pytest.raises(SystemExit) as exc:
        main(command)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert re.search(r"^fastnn( train)?: error: ", captured.err, re.M)
    assert message.replace("{tmp}", str(tmp_path)) in " ".join(captured.err.split())


# -- checkpoints, resume, Ctrl-C ----------------------------------------------------------------


def test_checkpoint_and_resume_match_an_uninterrupted_run(tmp_path, capsys):
    argv = ["--epochs", "700", "--batch-size", "128", "--dropout", "0.1"]
    whole = train_json(argv, capsys)
    ck = str(tmp_path / "run.npz")
    first = train_json(["--epochs", "300", *argv[2:], "--checkpoint", ck], capsys)
    assert first["epochs_done"] == 300 and first["checkpoint"] == ck and os.path.exists(ck)
    with pytest.raises(SystemExit):  # an existing checkpoint is never overwritten
        main(["train", *argv, "--checkpoint", ck, "--no-progress"])
    assert "already exists; add --resume" in capsys.readouterr().err
    rest = train_json([*argv, "--resume", ck], capsys)  # keeps checkpointing to ck
    assert (rest["resumed"], rest["resumed_from"], rest["resumed_at_epoch"]) == (True, ck, 300)
    assert rest["checkpoint"] == ck
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "epochs_done", "steps",
                "data_loss", "regularization_loss", "final_learning_rate"):
        assert rest[key] == whole[key], key
    again = train_json([*argv, "--resume", ck], capsys)  # nothing left to do
    assert again["loss"] == whole["loss"] and again["resumed_at_epoch"] == 700
    for other, message in [
        (["--learning-rate", "0.01"], "--optimizer or its hyperparameters is {"),
        (["--l2", "1e-3"], "--l1/--l2 is [["),
        (["--dropout", "0.2"], "--dropout is ["),
        (["--seed", "1"], "the data (--dataset, --samples, --classes, --seed or --data)"),
        (["--no-validation"], "the validation data (its options)"),
        (["--epochs", "100"], "argument --epochs: epochs=100 is fewer than the 700 epochs"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(["train", *argv, "--resume", ck, "--no-progress", *other])
        assert exc.value.code == 2
        assert message in " ".join(capsys.readouterr().err.split()), other


def test_another_kind_of_checkpoint_is_refused(tmp_path, capsys):
    """A checkpoint of another run (a search's, say) is not resumed: exit 2 on --resume."""
    ck = str(tmp_path / "search.npz")
    save_checkpoint(ck, {"step": np.zeros(1, np.int64)}, {"kind": "fastnn.search"})
    with pytest.raises(SystemExit) as exc:
        main(["train", "--resume", ck, "--no-progress"])
    assert exc.value.code == 2
    assert f"argument --resume: {ck} is not a checkpoint of fastnn.train (it is " \
           f"'fastnn.search''s)" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_exits_130_with_a_resumable_checkpoint(tmp_path, capsys):
    """SIGINT to a long run: exit 130, the summary of what was reached on stdout, the
    resume hint on stderr, a checkpoint; resuming it gives what an uninterrupted run of
    as many epochs gives."""
    ck = str(tmp_path / "run.npz")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastnn", "train", "--epochs", str(10 ** 12), "--checkpoint",
         ck, "--json"], cwd=ROOT, text=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = ""
    try:
        deadline = time.monotonic() + 120
        while not re.search(r"\| [1-9]\d*/", err):  # the bar shows epochs done: training
            assert proc.poll() is None and time.monotonic() < deadline, err
            err += os.read(proc.stderr.fileno(), 4096).decode()
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err += rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"interrupted: the summary is the training reached so far; continue with the " \
           f"same command and --resume {ck}" in err
    s = json.loads(out)
    assert s["stopped"] == "interrupted" and s["interrupted"] is True
    done = s["epochs_done"]
    assert 0 < done < 10 ** 12 and os.path.exists(ck)
    target = ["--epochs", str(done + 100)]
    resumed = train_json([*target, "--resume", ck], capsys)
    whole = train_json(target, capsys)
    assert resumed["resumed_at_epoch"] == done
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "epochs_done", "steps"):
        assert resumed[key] == whole[key], key
