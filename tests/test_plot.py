"""Plots (issue 10, item 4), rendered headless (Agg): the images exist and are not blank,
and the colour of sampled pixels of the decision regions is the region colour of the
class ``model.predict`` gives at their coordinates -- for two features, for more
(projected on two principal components) and for one.  ``--plot``, ``fastnn plot`` and
their bad options; without matplotlib, a clear message.  Skips when matplotlib (the
``plot`` extra) is not installed.
"""

import sys

import numpy as np
import pytest
from nnfs.datasets import spiral_data

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import fastnn  # noqa: E402
from fastnn import plot  # noqa: E402
from fastnn.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def spiral():
    np.random.seed(2)
    X, y = spiral_data(samples=80, classes=3)
    Xv, yv = spiral_data(samples=40, classes=3)
    return X, y, Xv, yv


@pytest.fixture(scope="module")
def trained(spiral):
    X, y, Xv, yv = spiral
    model = fastnn.MLP([2, 32, 3], seed=0)
    result = fastnn.train(model, X, y, epochs=300, learning_rate=0.05,
                          validation=(Xv, yv))
    return model, result


def render(fig, path):
    fig.savefig(path, dpi=fig.dpi)
    image = mpimg.imread(path)[:, :, :3]
    return image


def check_regions(ax, image, net, to_features, coords, rng, count=300):
    """Sample pixels inside ``ax``: away from the samples' markers and from region
    borders, each pixel's colour is the region colour of the class predicted there."""
    height = image.shape[0]
    _, regions = plot.class_colors(net.n_classes)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    marks = ax.transData.transform(coords)
    box = ax.get_window_extent()
    checked = 0
    for _ in range(count * 20):
        point = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        px = ax.transData.transform(point)
        if min(px[0] - box.x0, box.x1 - px[0], px[1] - box.y0, box.y1 - px[1]) < 4:
            continue  # on or next to the frame
        if np.min(np.hypot(*(marks - px).T)) < 8:  # on or next to a sample's marker
            continue
        # the class here and 3 pixels around it must agree (not on a border)
        offsets = np.array([[0, 0], [3, 0], [-3, 0], [0, 3], [0, -3]], dtype=float)
        around = ax.transData.inverted().transform(px + offsets)
        classes = net.predict(to_features(around))
        if (classes != classes[0]).any():
            continue
        row, col = int(height - px[1]), int(px[0])
        colour = image[row, col]
        assert np.abs(colour - regions[classes[0]]).max() <= 2.5 / 255, (
            point, colour, regions[classes[0]])
        checked += 1
        if checked == count:
            break
    assert checked == count, f"only {checked} pixels away from markers and borders"


def test_decision_regions_match_predict_two_features(trained, spiral, tmp_path):
    model, _ = trained
    X, y, *_ = spiral
    ax = plot.decision_boundary(model, X, y)
    image = render(ax.figure, tmp_path / "r.png")
    assert image.std() > 0.05  # not blank
    assert "decision regions, network 2-32-3" in ax.get_title()
    predicted = set(np.unique(model.predict(X)).tolist())
    assert len(predicted) >= 2
    check_regions(ax, image, model, lambda g: g, X, np.random.default_rng(0))
    plt.close(ax.figure)


def test_decision_regions_of_four_features_are_on_principal_components(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 4)) * [3, 1, 0.5, 0.1]
    y = (X[:, 0] + 2 * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    model = fastnn.MLP([4, 16, 3], seed=0, dtype="float64")
    fastnn.train(model, X, y, epochs=200, learning_rate=0.05)
    ax = plot.decision_boundary(model, X, y)
    image = render(ax.figure, tmp_path / "r4.png")
    assert "4 features projected on their first two principal components" in ax.get_title()
    coords, to_features, labels, _ = plot._projection(X)
    assert (ax.get_xlabel(), ax.get_ylabel()) == labels == ("PC 1", "PC 2")
    check_regions(ax, image, model, to_features, coords, np.random.default_rng(2), 150)
    plt.close(ax.figure)


def test_decision_regions_of_one_feature(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (120, 1))
    y = np.digitize(X[:, 0], [-0.3, 0.4])
    model = fastnn.MLP([1, 16, 3], seed=0)
    fastnn.train(model, X, y, epochs=300, learning_rate=0.05)
    ax = plot.decision_boundary(model, X, y)
    image = render(ax.figure, tmp_path / "r1.png")
    coords = np.c_[X[:, 0], y]
    check_regions(ax, image, model, lambda g: g[:, :1], coords, np.random.default_rng(4), 100)
    plt.close(ax.figure)


def test_models_of_every_kind_draw_the_same_regions(trained, spiral, tmp_path):
    model, _ = trained
    X, y, *_ = spiral
    model.save(tmp_path / "m.npz")
    layers = [fastnn.Layer_Dense(2, 32), fastnn.Layer_Dense(32, 3)]
    for layer, source in zip(layers, model.layers, strict=True):
        layer.weights = source.weights.astype(np.float32).copy()
        layer.biases = source.biases.astype(np.float32).copy()
    images = []
    for what in (model, str(tmp_path / "m.npz"), layers):
        ax = plot.decision_boundary(what, X, y, resolution=120)
        images.append(render(ax.figure, tmp_path / "k.png"))
        plt.close(ax.figure)
    assert all((im == images[0]).all() for im in images)


def test_history_of_training_and_search(trained, spiral, tmp_path):
    model, result = trained
    loss_ax, acc_ax = result.plot()
    image = render(loss_ax.figure, tmp_path / "h.png")
    assert image.std() > 0.05
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert set(lines) == {"training loss", "validation loss"}
    np.testing.assert_array_equal(lines["training loss"].get_ydata(), result.history.loss)
    np.testing.assert_array_equal(lines["validation loss"].get_ydata(),
                                  result.history.val_loss)
    np.testing.assert_array_equal(lines["training loss"].get_xdata(),
                                  np.arange(1, result.epochs + 1))
    accs = {line.get_label(): line for line in acc_ax.get_lines()}
    np.testing.assert_array_equal(accs["training accuracy"].get_ydata(),
                                  result.history.accuracy)
    plt.close(loss_ax.figure)

    X, y, Xv, yv = spiral
    net = fastnn.MLP([2, 4, 3], seed=0)
    found = fastnn.search(net, X, y, iterations=5000, seed=0, validation=(Xv, yv))
    loss_ax, acc_ax = plot.history(found)
    assert loss_ax.get_xscale() == "symlog" and "log scale" in loss_ax.get_xlabel()
    line = loss_ax.get_lines()[0]
    assert line.get_drawstyle() == "steps-post"
    assert line.get_xdata()[-1] == 5000 and line.get_ydata()[-1] == found.loss
    np.testing.assert_array_equal(line.get_xdata()[:-1], found.history.step)
    plt.close(loss_ax.figure)
    # one Axes: accuracy on its twin
    fig, ax = plt.subplots()
    loss_ax, acc_ax = plot.history(found, ax=ax)
    assert loss_ax is ax and acc_ax is not ax
    plt.close(fig)
    with pytest.raises(TypeError, match="SearchResult or TrainResult"):
        plot.history(fastnn.MLP([2, 3], seed=0))


def test_the_history_travels_in_the_model_file(trained, tmp_path):
    model, result = trained
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    history = loaded.file_info["history"]
    np.testing.assert_array_equal(history["loss"], result.history.loss)
    np.testing.assert_array_equal(history["epoch"], result.history.epoch)
    loss_ax, _ = plot.history(loaded)
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_ydata(), result.history.loss)
    plt.close(loss_ax.figure)


def test_cli_plot_options_and_command(tmp_path, capsys):
    train_png, search_png = tmp_path / "train.png", tmp_path / "search.png"
    assert main(["train", "--epochs", "50", "--layers", "2,16,3", "--no-progress",
                 "--plot", str(train_png), "--save", str(tmp_path / "t.npz")]) == 0
    out = capsys.readouterr().out
    assert f"plot                 {train_png}" in out
    assert main(["search", "--iterations", "2000", "--no-progress", "--plot",
                 str(search_png)]) == 0
    capsys.readouterr()
    for path in (train_png, search_png):
        image = mpimg.imread(path)
        assert image.shape[1] > 1000 and image[:, :, :3].std() > 0.05  # three panels
    out_png = tmp_path / "from_file.png"
    np.random.seed(8)
    X, y = spiral_data(samples=30, classes=3)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert main(["plot", "--model", str(tmp_path / "t.npz"), "--data",
                 str(tmp_path / "d.npz"), "-o", str(out_png)]) == 0
    assert "with the run's loss and accuracy" in capsys.readouterr().out
    assert mpimg.imread(out_png).shape[1] > 1000
    svg = tmp_path / "p.svg"
    fastnn.MLP([2, 3, 3], seed=0).save(tmp_path / "plain.npz")
    assert main(["plot", "--model", str(tmp_path / "plain.npz"), "--data",
                 str(tmp_path / "d.npz"), "-o", str(svg)]) == 0
    assert "without (none in the file)" in capsys.readouterr().out
    assert svg.read_text().startswith("<?xml")


@pytest.mark.parametrize("argv, message", [
    (["train", "--plot", "{d}/x.xyz"], "argument --plot: .*unknown image format 'xyz'"),
    (["search", "--plot", "{d}/no/x.png"], "argument --plot: directory .* does not exist"),
    (["plot", "--model", "{d}/missing.npz", "--data", "{d}/d.csv", "-o", "{d}/o.png"],
     "argument --model: .*no such file"),
    (["plot", "--model", "{d}/m.npz", "--data", "{d}/bad.csv", "-o", "{d}/o.png"],
     "argument --data: .*has 3 columns, but the model takes 1 features"),
    (["plot", "--model", "{d}/m.npz", "--data", "{d}/d.csv"],
     "the following arguments are required: -o/--output"),
])
def test_bad_plot_options_exit_2(tmp_path, capsys, argv, message):
    import re

    fastnn.MLP([1, 3, 2], seed=0).save(tmp_path / "m.npz")
    (tmp_path / "d.csv").write_text("0.5\n")
    (tmp_path / "bad.csv").write_text("1,2,3\n")
    argv = [a.format(d=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--no-progress"] if argv[0] != "plot" else argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not (tmp_path / "o.png").exists()


def test_without_matplotlib_the_message_says_how_to_install_it(monkeypatch, tmp_path,
                                                                capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'fastnn\[plot\]'"):
        plot.decision_boundary(fastnn.MLP([2, 3], seed=0), np.zeros((3, 2)))
    with pytest.raises(SystemExit) as exc:
        main(["train", "--plot", str(tmp_path / "x.png"), "--no-progress"])
    assert exc.value.code == 2
    assert "pip install 'fastnn[plot]'" in capsys.readouterr().err


def test_the_readmes_picture_is_made_by_the_repositorys_script(tmp_path):
    """scripts/seed_story.py (short runs here): it writes the figure and says what it
    measured."""
    import subprocess
    from pathlib import Path

    from subproc import env

    script = Path(__file__).resolve().parents[1] / "scripts" / "seed_story.py"
    out = tmp_path / "story.png"
    proc = subprocess.run([sys.executable, str(script), "--steps", "2000", "--epochs", "100",
                           "-o", str(out)], capture_output=True, text=True, env=env(),
                          timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"wrote {out}: search acc ")
    image = mpimg.imread(out)
    assert image.shape[0] > 500 and image[:, :, :3].std() > 0.05
