"""The seed notebook's story in one picture (the README's figure).

On nnfs's spiral data (3 classes x 100 samples, ``nnfs.init()``'s seed), the
notebook's answer -- random search on a 2-3-3 network (the book's chapter 6 version:
keep a 0.05-scaled random change of every parameter when the loss drops; 100,000 steps
here, ten times the notebook's loop) -- against the book's answer, gradient training of a
2-64-3 network with Adam (chapter 10: learning rate 0.05, decay 5e-7, 10,001 epochs).
Both compiled by fastnn, both measured on a fresh draw of the spiral as the book's
chapter 11 does.  Top: the decision regions; bottom: the loss against steps or epochs.

    python scripts/seed_story.py                 # writes docs/seed_story.png
    python scripts/seed_story.py -o story.svg

Needs matplotlib (``pip install -e '.[plot]'``).  The times are wall-clock seconds of the
compiled runs (the kernels compiled beforehand), on the CPU named in the figure.
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nnfs  # noqa: E402
from nnfs.datasets import spiral_data  # noqa: E402

import fastnn  # noqa: E402
from fastnn import plot  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def data():
    nnfs.init()  # as the notebook: seed 0, float32 arithmetic for NumPy's dot
    X, y = spiral_data(samples=100, classes=3)
    X_val, y_val = spiral_data(samples=100, classes=3)
    return X, y, X_val, y_val


def run_search(X, y, validation, steps):
    model = fastnn.MLP([2, 3, 3], seed=0)
    fastnn.search(model.copy(), X, y, iterations=10, seed=0)  # compile first
    t = time.perf_counter()
    result = fastnn.search(model, X, y, iterations=steps, scale=0.05, seed=0,
                           validation=validation)
    return model, result, time.perf_counter() - t


def run_adam(X, y, validation, epochs):
    model = fastnn.MLP([2, 64, 3], seed=0)
    fastnn.train(model.copy(), X, y, epochs=2, learning_rate=0.05, decay=5e-7,
                 validation=validation)  # compile first
    t = time.perf_counter()
    result = fastnn.train(model, X, y, epochs=epochs, learning_rate=0.05, decay=5e-7,
                          validation=validation, seed=0)
    return model, result, time.perf_counter() - t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "seed_story.png"))
    parser.add_argument("--steps", type=int, default=100_000, help="search steps")
    parser.add_argument("--epochs", type=int, default=10_001, help="Adam epochs")
    args = parser.parse_args(argv)

    X, y, X_val, y_val = data()
    search_model, found, search_s = run_search(X, y, (X_val, y_val), args.steps)
    adam_model, trained, adam_s = run_adam(X, y, (X_val, y_val), args.epochs)

    fig, axes = plt.subplots(2, 2, figsize=(12, 10), gridspec_kw={"height_ratios": [5, 3]})
    runs = [
        (search_model, found, search_s,
         f"random search, 2-3-3: {found.steps:,} steps in {search_s:.2f} s"),
        (adam_model, trained, adam_s,
         f"Adam (book ch. 10), 2-64-3: {trained.epochs:,} epochs in {adam_s:.2f} s"),
    ]
    for col, (model, result, _, head) in enumerate(runs):
        title = (f"{head}\ntraining acc {result.accuracy:.3f}, loss {result.loss:.3f}; "
                 f"validation acc {result.val_accuracy:.3f}, loss {result.val_loss:.3f}")
        plot.decision_boundary(model, X, y, ax=axes[0, col], title=title)
        loss_ax = axes[1, col]
        plot.history(result, ax=loss_ax, metrics=("loss",))
        loss_ax.set_yscale("log")
        loss_ax.set_ylabel("loss (log scale)")
    # one loss scale for both: where each run ends, side by side
    low = min(ax.get_ylim()[0] for ax in axes[1])
    high = max(ax.get_ylim()[1] for ax in axes[1])
    for ax in axes[1]:
        ax.set_ylim(low, high)
    cpu = fastnn.target_info()["llvm_cpu"]
    fig.suptitle("The spiral: what random search finds, and what gradients find "
                 f"(fastnn {fastnn.__version__}, one thread each, CPU {cpu})", fontsize=12)
    fig.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}: search acc {found.accuracy:.3f} loss {found.loss:.3f} "
          f"({search_s:.2f} s); Adam acc {trained.accuracy:.3f} loss {trained.loss:.3f} "
          f"({adam_s:.2f} s); CPU {cpu}")


if __name__ == "__main__":
    main()
