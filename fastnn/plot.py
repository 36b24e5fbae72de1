"""Pictures of what a network learned: its decision regions over the data, and the loss
and accuracy of the run that made it.  Needs matplotlib (``pip install
'fastnn[plot]'``); nothing here is imported by ``import fastnn``.

* ``decision_boundary(model, X, y=None, ax=None)``: each class's region, the samples on
  top in their class's colour.  Inputs with more than two features are drawn on their
  first two principal components (the grid is mapped back to the features along them,
  and the title says so); a single feature is drawn along x, the samples at the height
  of their label.
* ``history(result, ax=None)``: loss and accuracy against steps (a search: every
  improvement, the steps on a log scale for long searches) or epochs (training), on the
  training and, when there was some, the validation data.  ``result`` is a
  ``SearchResult``/``TrainResult``, or a network loaded from a model file that holds the
  run's history (``--save`` writes it).
* ``figure(model, X, y, result=None)``: both, side by side: what ``--plot`` and
  ``fastnn plot`` write.

Region colours are the class colours mixed with white (``class_colors``), opaque, so a
pixel of a region has a known colour: ``tests/test_plot.py`` checks sampled pixels of the
rendered PNG against ``model.predict`` at their coordinates.
"""

import numpy as np

#: how much of the class colour a region gets (the rest is white)
REGION_STRENGTH = 0.35


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("fastnn's plots need matplotlib: pip install 'fastnn[plot]' "
                          "(or pip install matplotlib)") from None
    return plt


def class_colors(n_classes):
    """``(points, regions)``: an (n_classes, 3) RGB array of each class's colour, and
    of its region's (the colour mixed with white)."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n_classes <= 10 else "tab20" if n_classes <= 20
                        else "gist_rainbow")
    if n_classes <= 20:
        points = np.array([cmap(i)[:3] for i in range(n_classes)])
    else:
        points = np.array([cmap(i / (n_classes - 1))[:3] for i in range(n_classes)])
    regions = REGION_STRENGTH * points + (1 - REGION_STRENGTH)
    return points, regions


def as_network(model):
    """An ``MLP`` computing what ``model`` predicts: an ``MLP``, the book's ``Model``,
    a list of dense layers (ReLU between, softmax at the end), or a model file's path."""
    import os

    from .model import Model
    from .modelfile import load_network
    from .network import MLP
    from .train import Stack

    if isinstance(model, MLP):
        return model
    if isinstance(model, Model):
        return model._network()
    if isinstance(model, (str, os.PathLike)):
        return load_network(model)[0]
    if isinstance(model, (list, tuple)):
        stack = Stack.of(list(model), None)
        net = MLP(stack.sizes.tolist(), seed=0, dtype=stack.dtype)
        net.params = stack.flat()
        return net
    raise TypeError("model must be a fastnn.MLP, a fastnn.Model, a list of dense layers "
                    f"or a model file's path, got {type(model).__name__}")


def _projection(X):
    """(2-D coordinates of X, a function from 2-D coordinates back to features, axis
    labels, title note)."""
    n_features = X.shape[1]
    if n_features == 2:
        return X, (lambda g: g), ("feature 0", "feature 1"), ""
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    components = vt[:2]
    if components.shape[0] < 2:  # a single sample: any second direction
        components = np.vstack([components, np.roll(components, 1, axis=1)])
    share = (s[:2] ** 2).sum() / max((s ** 2).sum(), 1e-300)
    coords = (X - mean) @ components.T
    note = (f"{n_features} features projected on their first two principal components "
            f"({100 * share:.0f}% of the variance)")
    return coords, (lambda g: mean + g @ components), ("PC 1", "PC 2"), note


def decision_boundary(model, X, y=None, ax=None, *, resolution=300, title=None):
    """Draw ``model``'s decision regions over the samples ``X`` (and their labels ``y``,
    as colours) on ``ax`` (default: a new figure's).  Returns ``ax``."""
    from ._validation import as_labels, as_matrix

    plt = _pyplot()
    net = as_network(model)
    X = as_matrix(X, "X", n_cols=net.n_inputs, dtype=np.float64)
    labels = None if y is None else as_labels(y, X.shape[0], net.n_classes)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    points, regions = class_colors(net.n_classes)
    if net.n_inputs == 1:
        return _one_feature(net, X, labels, ax, points, regions, resolution, title)
    coords, to_features, axis_labels, note = _projection(X)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    pad = 0.08 * np.maximum(hi - lo, 1e-9)
    lo, hi = lo - pad, hi + pad
    gx = np.linspace(lo[0], hi[0], resolution)
    gy = np.linspace(lo[1], hi[1], resolution)
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    predicted = net.predict(to_features(grid)).reshape(resolution, resolution)
    ax.imshow(regions[predicted], origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]),
              aspect="auto", interpolation="nearest")
    colors = "black" if labels is None else points[labels]
    ax.scatter(coords[:, 0], coords[:, 1], c=colors, s=12, edgecolors="black",
               linewidths=0.4)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    head = title if title is not None else f"decision regions, network {_sizes(net)}"
    ax.set_title(head + (f"\n{note}" if note else ""), fontsize=10)
    return ax


def _one_feature(net, X, labels, ax, points, regions, resolution, title):
    x = X[:, 0]
    lo, hi = x.min(), x.max()
    pad = 0.08 * max(hi - lo, 1e-9)
    lo, hi = lo - pad, hi + pad
    grid = np.linspace(lo, hi, resolution)
    predicted = net.predict(grid[:, None])
    top = net.n_classes - 0.5
    ax.imshow(regions[predicted][None, :, :], origin="lower", aspect="auto",
              extent=(lo, hi, -0.5, top), interpolation="nearest")
    heights = np.zeros_like(x) if labels is None else labels
    colors = "black" if labels is None else points[labels]
    ax.scatter(x, heights, c=colors, s=12, edgecolors="black", linewidths=0.4)
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.5, top)
    ax.set_xlabel("feature 0")
    ax.set_ylabel("label")
    ax.set_title(title if title is not None
                 else f"decision regions, network {_sizes(net)}", fontsize=10)
    return ax


def _sizes(net):
    return "-".join(str(int(s)) for s in net.sizes)


def _history_of(result):
    """(kind, dict of arrays, total steps or None) of a result or a loaded network."""
    from .search import SearchResult
    from .train import TrainResult

    if isinstance(result, SearchResult):
        h = result.history
        return "search", {"step": h.step, "loss": h.loss, "accuracy": h.accuracy,
                          "val_loss": h.val_loss, "val_accuracy": h.val_accuracy}, result.steps
    if isinstance(result, TrainResult):
        h = result.history
        return "train", h._asdict(), None
    info = getattr(result, "file_info", None)
    made = getattr(result, "made_by", None)
    record = made if made else info
    if record and record.get("history") is not None:
        how = record["made_by"]["how"]
        return how, record["history"], record["made_by"].get("steps")
    raise TypeError("result must be a SearchResult or TrainResult, or a network loaded from "
                    f"a model file that holds its run's history; got {type(result).__name__}")


def history(result, ax=None, *, metrics=("loss", "accuracy")):
    """Loss and accuracy of ``result``'s run, training and validation.  ``ax``: None (a
    new figure with a loss and an accuracy panel), a pair of Axes (loss, accuracy), or
    one Axes (loss; accuracy on its twin y axis).  ``metrics``: both, or ``("loss",)``
    or ``("accuracy",)`` alone (then ``ax`` is one Axes).  Returns the Axes used, one
    per metric."""
    plt = _pyplot()
    kind, h, total = _history_of(result)
    metrics = tuple(metrics)
    if metrics not in (("loss", "accuracy"), ("loss",), ("accuracy",)):
        raise ValueError(f"metrics must be ('loss', 'accuracy'), ('loss',) or "
                         f"('accuracy',), got {metrics!r}")
    if len(metrics) == 1:
        one = plt.subplots(figsize=(6, 4))[1] if ax is None else ax
        loss_ax = acc_ax = one
    elif ax is None:
        _, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    elif isinstance(ax, (list, tuple, np.ndarray)):
        loss_ax, acc_ax = ax
    else:
        loss_ax, acc_ax = ax, ax.twinx()
    if kind == "search":
        x = np.asarray(h["step"], dtype=np.float64)
        end = float(total) if total else (x[-1] if x.size else 1.0)
        if x.size:  # improvements only: the loss holds until the next one
            x = np.append(x, max(end, x[-1]))
        style = dict(drawstyle="steps-post")
        xlabel = "step"
    else:
        x = np.asarray(h["epoch"], dtype=np.float64) + 1
        style = {}
        xlabel = "epoch"

    def series(name):
        values = np.asarray(h[name], dtype=np.float64)
        if kind == "search" and values.size:
            values = np.append(values, values[-1])
        return values

    panels = [(loss_ax, "loss", "loss"), (acc_ax, "accuracy", "accuracy")]
    for axis, name, label in [p for p in panels if p[1] in metrics]:
        axis.plot(x, series(name), color="tab:blue", label=f"training {label}", **style)
        val = series(f"val_{name}")
        if val.size and np.isfinite(val).any():
            axis.plot(x, val, color="tab:orange", label=f"validation {label}", **style)
        axis.set_ylabel(label)
        axis.set_xlabel(xlabel)
        if kind == "search" and x.size and x.max() > 1000:
            axis.set_xscale("symlog", linthresh=1.0)
            axis.set_xlabel("step (log scale)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8, loc="upper right" if name == "loss" else "lower right")
        if name == "accuracy":
            axis.set_ylim(-0.02, 1.02)
    what = "search" if kind == "search" else "training"
    for axis, name, _ in [p for p in panels if p[1] in metrics][::-1]:
        axis.set_title(f"{what}: {name}", fontsize=10)
    return (loss_ax, acc_ax) if len(metrics) == 2 else (loss_ax,)


def figure(model, X, y=None, result=None, *, title=None):
    """A figure with the decision regions and, when the run's history is known
    (``result``, or the model's own record), its loss and accuracy."""
    plt = _pyplot()
    source = result if result is not None else model
    try:
        _history_of(source)
        has_history = True
    except TypeError:
        has_history = False
    if has_history:
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
        decision_boundary(model, X, y, ax=axes[0], title=title)
        history(source, ax=(axes[1], axes[2]))
    else:
        fig, ax = plt.subplots(figsize=(6, 5))
        decision_boundary(model, X, y, ax=ax, title=title)
    fig.tight_layout()
    return fig


def save_figure(fig, path):
    """Write ``fig`` to ``path`` (the format from its extension) and close it."""
    plt = _pyplot()
    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
