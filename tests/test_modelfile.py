"""Model files (issue 10, items 1 and 3): ``fastnn.save``/``fastnn.load``, ``MLP.save``,
the book's ``Model.save``/``load``/``*_parameters``; ``--save`` and ``fastnn predict``.

Round trips in both dtypes and for every kind of model give bit-identical predictions,
in this process and in a new one; every damaged, truncated, tampered, foreign or
inconsistent file is refused with a ``ModelFileError`` naming what is wrong; nothing is
pickled.  Networks are small and runs short: the kernels compile once per shape.
"""

import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from nnfs.datasets import spiral_data
from subproc import env

import fastnn
from fastnn import _archive, modelfile
from fastnn.cli import main
from fastnn.modelfile import ModelFileError

DTYPES = ("float32", "float64")


@pytest.fixture(scope="module")
def data():
    np.random.seed(3)
    X, y = spiral_data(samples=60, classes=3)
    Xv, yv = spiral_data(samples=30, classes=3)
    return X, y, Xv, yv


def digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def searched_mlp(data, dtype):
    X, y, Xv, yv = data
    model = fastnn.MLP([2, 8, 3], seed=1, dtype=dtype)
    result = fastnn.search(model, X, y, iterations=300, seed=2, validation=(Xv, yv))
    return model, result


def book_model(dropout=0.1):
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(2, 16, weight_regularizer_l2=5e-4, bias_regularizer_l1=1e-4))
    model.add(fastnn.Activation_ReLU())
    if dropout is not None:
        model.add(fastnn.Layer_Dropout(dropout))
    model.add(fastnn.Layer_Dense(16, 3))
    model.add(fastnn.Activation_Softmax())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(),
              optimizer=fastnn.Optimizer_Adam(learning_rate=0.02, decay=1e-3),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    return model


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_round_trip_is_bit_identical_and_records_how_it_was_made(data, dtype, tmp_path):
    X, y, Xv, yv = data
    model, result = searched_mlp(data, dtype)
    path = tmp_path / "m.npz"
    assert model.save(path, metadata={"note": "ünïcode", "n": 1}) == path
    loaded = fastnn.load(path)
    assert isinstance(loaded, fastnn.MLP) and loaded.dtype == np.dtype(dtype)
    assert loaded.sizes.tolist() == [2, 8, 3]
    assert loaded.params.tobytes() == model.params.tobytes()
    for Xs in (X, Xv):
        assert loaded.predict(Xs).tobytes() == model.predict(Xs).tobytes()
        assert loaded.forward(Xs).tobytes() == model.forward(Xs).tobytes()
    info = loaded.file_info
    assert info["kind"] == "mlp" and info["dtype"] == dtype and info["sizes"] == [2, 8, 3]
    assert info["metadata"] == {"note": "ünïcode", "n": 1}
    made = info["made_by"]
    assert made["how"] == "search" and made["seed"] == 2 and made["steps"] == 300
    assert made["arguments"]["iterations"] == 300 and made["arguments"]["scale"] == 0.05
    assert info["data"]["samples"] == 180 and info["data"]["validation_samples"] == 90
    assert info["data"]["fingerprint"] == fastnn.checkpoint.fingerprint(
        np.asarray(X, dtype=dtype), np.asarray(y, dtype=np.int64))
    assert info["metrics"] == {"loss": result.loss, "accuracy": result.accuracy,
                               "val_loss": result.val_loss, "val_accuracy": result.val_accuracy}
    assert info["fastnn_version"] == fastnn.__version__
    assert fastnn.MLP.load(path).params.tobytes() == model.params.tobytes()
    # the loaded network records the same provenance when saved again
    loaded.save(tmp_path / "again.npz")
    assert fastnn.load(tmp_path / "again.npz").file_info["made_by"] == made


def test_trained_mlp_records_the_training(data, tmp_path):
    X, y, Xv, yv = data
    model = fastnn.MLP([2, 8, 3], seed=0)
    result = fastnn.train(model, X, y, epochs=20, learning_rate=0.05, dropout=0.1,
                          weight_regularizer_l2=1e-4, validation=(Xv, yv), seed=4)
    fastnn.save(model, tmp_path / "t.npz")
    info = fastnn.load(tmp_path / "t.npz").file_info
    assert info["made_by"]["how"] == "train" and info["made_by"]["steps"] == 20
    args = info["made_by"]["arguments"]
    assert args["epochs"] == 20 and args["optimizer"]["learning_rate"] == 0.05
    assert args["keep"][0] == pytest.approx(0.9) and args["seed"] == 4
    assert info["metrics"]["val_accuracy"] == result.val_accuracy
    # result= overrides what the model recorded
    fastnn.save(model, tmp_path / "t2.npz", result=result, metadata=None)
    assert fastnn.load(tmp_path / "t2.npz").file_info["metrics"]["loss"] == result.loss


def test_model_round_trip_continues_training_bit_for_bit(data, tmp_path):
    X, y, Xv, yv = data
    model = book_model()
    model.train(X, y, epochs=15, print_every=100)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = fastnn.Model.load(path)
    assert isinstance(loaded, fastnn.Model)
    assert [type(layer).__name__ for layer in loaded.layers] == [
        type(layer).__name__ for layer in model.layers]
    assert loaded.layers[2].rate == model.layers[2].rate
    assert loaded.layers[0].weight_regularizer_l2 == 5e-4
    assert loaded.layers[0].bias_regularizer_l1 == 1e-4
    assert loaded.predict(Xv).tobytes() == model.predict(Xv).tobytes()
    opt, lopt = model.optimizer, loaded.optimizer
    assert type(lopt) is type(opt)
    for name in ("learning_rate", "current_learning_rate", "decay", "iterations", "epsilon",
                 "beta_1", "beta_2"):
        assert getattr(lopt, name) == getattr(opt, name), name
    for mine, theirs in zip(loaded.trainable_layers, model.trainable_layers, strict=True):
        for name in ("weights", "biases", "weight_momentums", "weight_cache",
                     "bias_momentums", "bias_cache"):
            a, b = getattr(mine, name), getattr(theirs, name)
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    assert loaded.file_info["made_by"]["how"] == "train"
    # training goes on from the file exactly as from the model (dropout masks from
    # NumPy's global generator: the same state for both)
    state = np.random.get_state()
    model.train(X, y, epochs=10, print_every=100)
    np.random.set_state(state)
    loaded.train(X, y, epochs=10, print_every=100)
    for (w1, b1), (w2, b2) in zip(model.get_parameters(), loaded.get_parameters(),
                                  strict=True):
        assert w1.tobytes() == w2.tobytes() and b1.tobytes() == b2.tobytes()


def test_loading_does_not_touch_numpys_global_generator(data, tmp_path):
    book_model().save(tmp_path / "m.npz")
    np.random.seed(11)
    before = np.random.get_state()[1].copy()
    fastnn.load(tmp_path / "m.npz")
    assert (np.random.get_state()[1] == before).all()


def test_parameters_files_as_the_book_uses_them(data, tmp_path, capsys):
    """Chapter 21: save_parameters, then a new model with the same layers (no
    optimizer), finalize, load_parameters, evaluate."""
    X, y, Xv, yv = data
    model = book_model()
    model.train(X, y, epochs=5, print_every=100)
    model.save_parameters(tmp_path / "p.npz")
    fresh = fastnn.Model()
    for layer in (fastnn.Layer_Dense(2, 16), fastnn.Activation_ReLU(),
                  fastnn.Layer_Dropout(0.1), fastnn.Layer_Dense(16, 3),
                  fastnn.Activation_Softmax()):
        fresh.add(layer)
    fresh.set(loss=fastnn.Loss_CategoricalCrossentropy(),
              accuracy=fastnn.Accuracy_Categorical())
    fresh.finalize()
    fresh.load_parameters(tmp_path / "p.npz")
    assert fresh.predict(Xv).tobytes() == model.predict(Xv).tobytes()
    capsys.readouterr()
    fresh.evaluate(Xv, yv)
    model.evaluate(Xv, yv)
    first, second = capsys.readouterr().out.splitlines()
    assert first == second and first.startswith("validation, acc: ")
    pairs = fastnn.load(tmp_path / "p.npz")
    assert [w.shape for w, _ in pairs] == [(2, 16), (16, 3)]
    with pytest.raises(ValueError, match="call model.set"):
        fresh.train(X, y)
    wrong = fastnn.Model()
    wrong.add(fastnn.Layer_Dense(2, 4))
    wrong.add(fastnn.Activation_Softmax())
    wrong.set(loss=fastnn.Loss_CategoricalCrossentropy())
    wrong.finalize()
    with pytest.raises(ValueError,
                       match=r"parameters has 2 \(weights, biases\) pairs, but the model has 1"):
        wrong.load_parameters(tmp_path / "p.npz")
    with pytest.raises(ModelFileError, match="holds a list of"):
        fastnn.Model.load(tmp_path / "p.npz")


@pytest.mark.parametrize("cls", ["Dense_Layer", "Layer_Dense"])
def test_layer_lists_round_trip(data, cls, tmp_path):
    X, y, *_ = data
    layers = [getattr(fastnn, cls)(2, 5), getattr(fastnn, cls)(5, 3)]
    fastnn.search(layers, X, y, iterations=50, seed=0)
    fastnn.save(layers, tmp_path / "l.npz")
    loaded = fastnn.load(tmp_path / "l.npz")
    assert [type(layer) for layer in loaded] == [type(layer) for layer in layers]
    for a, b in zip(loaded, layers, strict=True):
        assert a.weights.tobytes() == b.weights.tobytes()
        assert a.biases.tobytes() == b.biases.tobytes()
    with pytest.raises(ValueError, match="dense layers only"):
        fastnn.save([layers[0], fastnn.Activation_ReLU(), layers[1]], tmp_path / "x.npz")


def test_predictions_are_the_same_in_a_new_process(data, tmp_path):
    X, y, Xv, yv = data
    paths = {}
    for dtype in DTYPES:
        model, _ = searched_mlp(data, dtype)
        paths[dtype] = (str(tmp_path / f"{dtype}.npz"), digest(model.predict(Xv)),
                        digest(model.forward(Xv)))
        model.save(paths[dtype][0])
    trained = book_model()
    trained.train(X, y, epochs=5, print_every=100)
    trained.save(tmp_path / "model.npz")
    np.save(tmp_path / "Xv.npy", Xv)
    code = f"""
import hashlib, json, sys
import numpy as np, fastnn
Xv = np.load({str(tmp_path / "Xv.npy")!r})
d = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
out = {{}}
for dtype, path in {({k: v[0] for k, v in paths.items()})!r}.items():
    m = fastnn.load(path)
    out[dtype] = [d(m.predict(Xv)), d(m.forward(Xv))]
out["model"] = d(fastnn.load({str(tmp_path / "model.npz")!r}).predict(Xv))
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env(), timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    for dtype in DTYPES:
        assert out[dtype] == list(paths[dtype][1:]), dtype
    assert out["model"] == digest(trained.predict(Xv))


def test_nothing_is_pickled(data, tmp_path):
    model, _ = searched_mlp(data, "float32")
    model.save(tmp_path / "m.npz")
    book_model().save(tmp_path / "b.npz")
    for name in ("m.npz", "b.npz"):
        with np.load(tmp_path / name, allow_pickle=False) as npz:
            for key in npz.files:
                assert npz[key].dtype != object
        with zipfile.ZipFile(tmp_path / name) as zf:
            for info in zf.infolist():
                assert b"\x80\x04\x95" not in zf.read(info)  # a pickle protocol-4 frame


# --- bad files --------------------------------------------------------------------------


@pytest.fixture
def good(data, tmp_path):
    model, _ = searched_mlp(data, "float32")
    path = tmp_path / "good.npz"
    model.save(path)
    return path


def refuse(path, match):
    with pytest.raises(ModelFileError, match=match) as info:
        fastnn.load(path)
    assert str(path) in str(info.value)
    return info.value


def test_truncated_files_are_refused(good, tmp_path):
    raw = good.read_bytes()
    for cut in (0, 1, 10, 100, len(raw) // 2, len(raw) - 30, len(raw) - 1):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(raw[:cut])
        refuse(bad, "cannot be read|damaged")


def test_flipped_bytes_are_refused_or_harmless(good, tmp_path):
    """A changed byte anywhere: a ModelFileError, or (in zip padding the readers never
    look at) the same network; never another exception or a different network."""
    raw = bytearray(good.read_bytes())
    reference = fastnn.load(good).params.tobytes()
    bad = tmp_path / "flipped.npz"
    for pos in range(0, len(raw), 3):
        changed = bytearray(raw)
        changed[pos] ^= 0x5A
        bad.write_bytes(bytes(changed))
        try:
            loaded = fastnn.load(bad)
        except ModelFileError:
            continue
        assert loaded.params.tobytes() == reference, pos


def rewrite(path, arrays=None, meta=None, version=None, fmt=None):
    """Write a file through the container (a valid digest) with fields replaced."""
    got, old = _archive.read(path, modelfile._kind())
    got.update(arrays or {})
    old.update(meta or {})
    kind = modelfile._kind()._replace(version=version or modelfile.VERSION,
                                      format=fmt or modelfile.FORMAT)
    _archive.write(path, got, old, kind)


@pytest.mark.parametrize("change, match", [
    (dict(meta={"kind": "pickle"}), "kind 'pickle'"),
    (dict(meta={"sizes": [2, 9, 3]}),
     r"params is float32 \(51,\), but sizes \[2, 9, 3\] in float32 need float32 \(57,\)"),
    (dict(meta={"sizes": [2]}), "at least 2"),
    (dict(meta={"sizes": [2, -1, 3]}), "positive layer sizes"),
    (dict(meta={"sizes": [2, 8.0, 3]}), "positive layer sizes"),
    (dict(meta={"dtype": "float16"}), "dtype 'float16'"),
    (dict(meta={"dtype": "float64"}), "params is float32"),
    (dict(arrays={"params": np.full(51, np.nan, np.float32)}), "NaN or inf"),
    (dict(arrays={"params": np.zeros((51, 1), np.float32)}), r"params is float32 \(51, 1\)"),
    (dict(arrays={"extra": np.zeros(2)}), "unexpected arrays"),
    (dict(meta={"made_by": [1]}), "made_by must be a dict"),
])
def test_inconsistent_files_are_refused(good, change, match):
    rewrite(good, **change)
    refuse(good, match)


def test_missing_params_future_and_foreign_files(good, tmp_path):
    arrays, meta = _archive.read(good, modelfile._kind())
    del arrays["params"]
    _archive.write(good, arrays, meta, modelfile._kind())
    refuse(good, "no params")
    future = tmp_path / "future.npz"
    _archive.write(future, {"params": np.zeros(51, np.float32)}, meta,
                   modelfile._kind()._replace(version=2))
    err = refuse(future, "version 2")
    assert "upgrade fastnn" in str(err)
    fastnn.checkpoint.save_checkpoint(tmp_path / "ck.npz", {"w": np.zeros(2)}, {})
    refuse(tmp_path / "ck.npz", "format 'fastnn-checkpoint', expected 'fastnn-model'")
    np.savez(tmp_path / "plain.npz", X=np.zeros((2, 2)))
    refuse(tmp_path / "plain.npz", "not a fastnn model file")
    (tmp_path / "text.npz").write_text("hello")
    refuse(tmp_path / "text.npz", "cannot be read")
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.npz")


def test_tampered_parameters_fail_the_digest(good):
    """Edit one parameter inside the zip, keeping the stored digest."""
    with zipfile.ZipFile(good) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    params = np.load(io.BytesIO(entries["params.npy"]))
    params[3] += 1
    buf = io.BytesIO()
    np.save(buf, params)
    entries["params.npy"] = buf.getvalue()
    with zipfile.ZipFile(good, "w") as zf:
        for name, raw in entries.items():
            zf.writestr(name, raw)
    refuse(good, "SHA-256")


@pytest.mark.parametrize("layers, match", [
    ([{"type": "dense", "class": "Layer_Dense", "weight_regularizer_l1": -1,
       "weight_regularizer_l2": 0, "bias_regularizer_l1": 0, "bias_regularizer_l2": 0}],
     "weight_regularizer_l1 is -1"),
    ([{"type": "conv"}], "unknown type 'conv'"),
    ([{"type": "dense", "class": "os.system"}], "class 'os.system'"),
])
def test_bad_layer_entries_are_refused(tmp_path, layers, match):
    layer = fastnn.Layer_Dense(2, 3)
    fastnn.save([layer], tmp_path / "l.npz")
    rewrite(tmp_path / "l.npz", meta={"layers": layers})
    refuse(tmp_path / "l.npz", match)


def test_bad_model_entries_are_refused(tmp_path):
    path = tmp_path / "m.npz"
    book_model().save(path)
    _, meta = _archive.read(path, modelfile._kind())
    layers = meta["layers"]
    rewrite(path, meta={"layers": [layers[0], layers[2], layers[1], *layers[3:]]})
    refuse(path, "not a layer order")
    book_model().save(path)
    rewrite(path, meta={"layers": layers[:-1]})
    refuse(path, "end with a dense layer and a softmax")
    book_model().save(path)
    rewrite(path, meta={"optimizer": {"kind": "adam", "learning_rate": 0.1}})
    refuse(path, "optimizer settings have keys")
    book_model().save(path)
    rewrite(path, arrays={"state.0.weight_cache": np.zeros((3, 3))})
    refuse(path, r"state.0.weight_cache is float64 \(3, 3\)")


def test_bad_save_arguments(data, tmp_path):
    model, _ = searched_mlp(data, "float32")
    with pytest.raises(TypeError, match="metadata must be a dict"):
        model.save(tmp_path / "m.npz", metadata=[1])
    with pytest.raises(TypeError, match="JSON"):
        model.save(tmp_path / "m.npz", metadata={"x": object()})
    with pytest.raises(TypeError, match="model must be"):
        fastnn.save("model", tmp_path / "m.npz")
    unfinished = fastnn.Model()
    unfinished.add(fastnn.Layer_Dense(2, 3))
    unfinished.add(fastnn.Activation_Softmax())
    with pytest.raises(ValueError, match="finalize"):
        unfinished.save(tmp_path / "m.npz")
    model.params[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# --- the command line -------------------------------------------------------------------


def test_search_save_then_predict_in_a_new_process(tmp_path, capsys):
    model_path = tmp_path / "s.npz"
    assert main(["search", "--iterations", "500", "--layers", "2,8,3", "--no-progress",
                 "--save", str(model_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["saved"] == str(model_path) and summary["val_loss"] is not None
    model = fastnn.load(model_path)
    assert model.file_info["metrics"]["val_accuracy"] == summary["val_accuracy"]
    assert model.file_info["metadata"]["command"] == "fastnn search"
    np.random.seed(9)
    X, y = spiral_data(samples=40, classes=3)
    np.savetxt(tmp_path / "new.csv", np.c_[X, y], delimiter=",", fmt="%.9g",
               header="x0,x1,label", comments="")
    Xr = np.loadtxt(tmp_path / "new.csv", delimiter=",", skiprows=1)[:, :2]
    out = tmp_path / "preds.csv"
    proc = subprocess.run([sys.executable, "-m", "fastnn", "predict", "--model",
                           str(model_path), "--data", str(tmp_path / "new.csv"), "--output",
                           str(out)], capture_output=True, text=True, env=env(), timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    assert out.read_text().splitlines()[0] == "predicted,prob_0,prob_1,prob_2"
    assert (rows[:, 0].astype(int) == model.predict(Xr)).all()
    np.testing.assert_array_equal(rows[:, 1:].astype(np.float32), model.forward(Xr))
    loss, acc = model.evaluate(Xr, y)
    assert f"loss      {loss:.6f}" in proc.stdout and f"accuracy  {acc:.4f}" in proc.stdout
    assert "confusion matrix" in proc.stdout


def test_train_save_then_predict(tmp_path, capsys):
    path = tmp_path / "t.npz"
    assert main(["train", "--epochs", "30", "--layers", "2,16,3", "--no-progress",
                 "--save", str(path)]) == 0
    assert f"model file           {path}" in capsys.readouterr().out
    model = fastnn.load(path)
    assert model.file_info["made_by"]["how"] == "train"
    assert model.file_info["made_by"]["arguments"]["epochs"] == 30
    np.random.seed(1)
    X, _ = spiral_data(samples=20, classes=3)
    np.savez(tmp_path / "x.npz", X=X)
    assert main(["predict", "--model", str(path), "--data", str(tmp_path / "x.npz"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["predictions"] == model.predict(X).tolist()
    assert "loss" not in report and report["made_by"] == "train"
    assert np.array(report["probabilities"]).shape == (60, 3)
    # no --output: the predictions as CSV on stdout
    assert main(["predict", "--model", str(path), "--data", str(tmp_path / "x.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "predicted,prob_0,prob_1,prob_2" and len(lines) == 61
    assert [int(line.split(",")[0]) for line in lines[1:]] == model.predict(X).tolist()


def test_predict_labels_and_confusion_matrix(tmp_path, capsys):
    model = fastnn.MLP([3, 4, 4], seed=0, dtype="float64")
    model.save(tmp_path / "m.npz")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((25, 3))
    y = rng.integers(0, 4, 25)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert main(["predict", "--model", str(tmp_path / "m.npz"), "--data",
                 str(tmp_path / "d.npz"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    matrix = np.zeros((4, 4), int)
    for t, p in zip(y, model.predict(X), strict=True):
        matrix[t, p] += 1
    assert report["confusion_matrix"] == matrix.tolist()
    assert (report["loss"], report["accuracy"]) == model.evaluate(X, y)
    assert report["made_by"] is None


@pytest.mark.parametrize("argv, message", [
    (["--model", "{m}", "--data", "{d}/three.csv"],
     "has 4 columns, but the model takes 2 features: give 2 columns, or 3 with the label"),
    (["--model", "{m}", "--data", "{d}/label9.csv"], "has label 9, but the model has 3 classes"),
    (["--model", "{m}", "--data", "{d}/huge.csv"], "too large for the model's float32"),
    (["--model", "{m}", "--data", "{d}/nope.csv"], "no such file"),
    (["--model", "{d}/plain.npz", "--data", "{d}/ok.csv"], "not a fastnn model file"),
    (["--model", "{d}/missing.npz", "--data", "{d}/ok.csv"], "argument --model: .* no such file"),
    (["--model", "{m}", "--data", "{d}/ok.csv", "--output", "{d}/no/dir.csv"],
     "argument --output: directory .* does not exist"),
    (["--model", "{m}"], "the following arguments are required: --data"),
])
def test_bad_predict_arguments_exit_2(tmp_path, capsys, argv, message):
    fastnn.MLP([2, 3, 3], seed=0).save(tmp_path / "m.npz")
    (tmp_path / "three.csv").write_text("1,2,3,4\n")
    (tmp_path / "label9.csv").write_text("0.5,0.5,9\n")
    (tmp_path / "huge.csv").write_text("1e300,0\n")
    (tmp_path / "ok.csv").write_text("0.5,0.5\n")
    np.savez(tmp_path / "plain.npz", X=np.zeros((2, 2)))
    argv = [a.format(m=tmp_path / "m.npz", d=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(["predict", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err


@pytest.mark.parametrize("command", ["search", "train"])
def test_bad_save_paths_exit_2_before_any_work(tmp_path, capsys, command):
    for path, message in ((tmp_path / "no" / "m.npz", "does not exist"),
                          (tmp_path, "is a directory")):
        with pytest.raises(SystemExit) as exc:
            main([command, "--save", str(path), "--no-progress"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "argument --save: " in err and message in err, err
