"""How the fused loss (``MLP.loss``) scales with samples, hidden width and depth.

Usage (from the repository root)::

    python bench/scaling.py [--quick] [--numpy] [--json out.json] [--plot out.png]

Three series, each a Markdown table of the time per ``MLP.loss(X, y)`` call and per
sample (nnfs ``spiral_data``, 3 classes, float32, cut to n samples; parameters
N(0, 1/fan_in), biases 0.1 N(0, 1), fixed seeds):

* samples: 2-64-3, n = 100 ... 1,000,000, plus n = 1 (the fixed cost of a call:
  argument checks, dispatch, one padded block);
* width: 2-H-3 at n = 3000, H = 3 ... 512;
* depth: 1 to 5 hidden layers of 64 at n = 3000.

Each point is timed after a warm-up call (compilation excluded) as ``--repeats``
repeats of enough calls to last ``--target`` seconds; the tables show the best repeat
(the least disturbed on a shared machine) and the JSON has the median too.  ``block`` is
the number of samples the kernel sweeps at a time (``fastnn.network.make_work``: the
largest power of two up to 1024 whose scratch fits in ~1 MB).  Each loss is checked
against ``tests/reference.py`` (float64) before it is timed, except where the float64
reference would need gigabytes (n x H above 2e7).  ``--numpy`` adds the vectorised
NumPy loss (float32, fresh temporaries, BLAS on one thread) and the ratio.

``--plot`` needs matplotlib (an optional extra: ``pip install matplotlib``).
``--quick`` measures fewer points for shorter times (~10 s in all).
"""

import os

# NumPy's BLAS on one thread, as in bench/conftest.py (must precede importing NumPy).
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import fastnn  # noqa: E402
from fastnn.cli import make_data  # noqa: E402
from fastnn.network import make_work  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LO, HI = np.float32(1e-7), np.float32(1 - 1e-7)

SAMPLES = [100, 300, 1000, 3000, 10_000, 30_000, 100_000, 300_000, 1_000_000]
WIDTHS = [3, 4, 8, 16, 32, 64, 128, 256, 512]
DEPTHS = [1, 2, 3, 4, 5]
QUICK_SAMPLES = [100, 1000, 10_000, 100_000, 1_000_000]
QUICK_WIDTHS = [3, 16, 64, 256, 512]
N_FIXED = 3000  # samples for the width and depth series
CHECK_LIMIT = 2e7  # n x widest layer above which the float64 reference is skipped


def _load_reference():
    spec = importlib.util.spec_from_file_location(
        "fastnn_tests_reference", ROOT / "tests" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()


def spiral_n(n):
    """``n`` samples of nnfs's 3-class spiral (float32 X, int64 labels)."""
    X, y = make_data("spiral", -(-n // 3), 3, 0, np.float32)
    return np.ascontiguousarray(X[:n]), np.ascontiguousarray(y[:n])


def make_model(sizes, seed):
    """An MLP with weights N(0, 1/fan_in) and biases 0.1 N(0, 1): activations stay
    O(1) at any width and depth, so the loss is a real one."""
    rng = np.random.default_rng(seed)
    parts = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        parts.append(rng.standard_normal(a * b) / np.sqrt(a))
        parts.append(0.1 * rng.standard_normal(b))
    model = fastnn.MLP(sizes, seed=0, dtype=np.float32)
    model.params = np.concatenate(parts).astype(np.float32)
    return model


def numpy_loss(layers, X, y):
    """The vectorised NumPy loss, float32, any depth (as ``test_bench_loss.numpy_loss``)."""
    a = X
    for k, (W, b) in enumerate(layers):
        a = a @ W + b
        if k < len(layers) - 1:
            a = np.maximum(a, 0)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    p = e[np.arange(len(y)), y] / e.sum(axis=1)
    return -np.log(np.clip(p, LO, HI)).mean()


def time_call(fn, target, repeats):
    """(best, median) seconds per call of ``fn`` over ``repeats`` repeats, each of
    enough calls to last about ``target`` seconds."""
    fn()  # warm-up: compile / load caches
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= target / 4 or number >= 1 << 24:
            break
        number *= 2 if elapsed > target / 64 else 8
    number = max(1, int(number * target / max(elapsed, 1e-9)))
    per_call = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            per_call.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was:
            gc.enable()
    return min(per_call), statistics.median(per_call)


def measure(sizes, n, args, seed):
    """One point: a dict of the times (and NumPy's with ``--numpy``)."""
    X, y = spiral_n(n)
    model = make_model(sizes, seed)
    loss = model.loss(X, y)
    checked = n * max(sizes) <= CHECK_LIMIT
    if checked:
        exact, _ = ref.mlp_loss(sizes, model.params, X, y)
        scale = float(np.mean(ref.logit_scale(sizes, model.params, X)))
        ref.assert_close(loss, exact, np.float32, scale=scale, msg=f"MLP.loss {sizes} n={n}")
    best, median = time_call(lambda: model.loss(X, y), args.target, args.repeats)
    point = {
        "sizes": sizes, "n": n, "block": int(make_work(model.sizes, model.dtype).shape[1]),
        "loss": float(loss), "checked": checked,
        "best_s": best, "median_s": median, "ns_per_sample": best / n * 1e9,
    }
    if args.numpy:
        layers = [(W.copy(), b.copy()) for W, b in
                  ((la.weights, la.biases) for la in model.layers)]
        got = numpy_loss(layers, X, y)
        assert abs(float(got) - loss) <= 1e-4 * abs(loss) + 1e-6, (got, loss)
        nbest, nmedian = time_call(lambda: numpy_loss(layers, X, y), args.target,
                                   args.repeats)
        point.update(numpy_best_s=nbest, numpy_median_s=nmedian,
                     numpy_ns_per_sample=nbest / n * 1e9, ratio=nbest / best)
    return point


def _fmt_us(seconds):
    us = seconds * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.2f}" if us < 10 else f"{us:.1f}"


def table(points, key, label, extra=None, numpy=False):
    """A Markdown table; ``extra`` = (header, function of a point) adds a column."""
    head = [label, "block", "µs per call", "ns per sample"]
    if extra:
        head.append(extra[0])
    if numpy:
        head += ["NumPy µs per call", "NumPy ns per sample", "speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in points:
        row = [key(p), str(p["block"]), _fmt_us(p["best_s"]), f"{p['ns_per_sample']:.2f}"]
        if extra:
            row.append(extra[1](p))
        if numpy:
            row += [_fmt_us(p["numpy_best_s"]), f"{p['numpy_ns_per_sample']:.1f}",
                    f"{p['ratio']:.1f}x"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    series = [
        ("samples", "n (samples), 2-64-3", lambda p: p["n"], True),
        ("width", f"hidden width H, 2-H-3, n={N_FIXED}", lambda p: p["sizes"][1], True),
        ("depth", f"hidden layers of 64, n={N_FIXED}", lambda p: len(p["sizes"]) - 2, False),
    ]
    for ax, (name, xlabel, xval, logx) in zip(axes, series, strict=True):
        points = [p for p in results[name] if p["n"] > 1]
        xs = [xval(p) for p in points]
        ax.plot(xs, [p["ns_per_sample"] for p in points], "o-", label="fastnn")
        if points and "numpy_ns_per_sample" in points[0]:
            ax.plot(xs, [p["numpy_ns_per_sample"] for p in points], "s--", label="NumPy")
        if logx:
            ax.set_xscale("log")
        else:
            ax.set_xticks(xs)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ns per sample (best repeat)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("MLP.loss: time per sample (float32, one core)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer points, shorter timing")
    parser.add_argument("--numpy", action="store_true",
                        help="also time the vectorised NumPy loss")
    parser.add_argument("--json", metavar="FILE", help="write every measurement here")
    parser.add_argument("--plot", metavar="PNG", help="draw the three series (matplotlib)")
    parser.add_argument("--target", type=float, default=None,
                        help="seconds per repeat (default 0.05, --quick 0.01)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repeats per point (default 7, --quick 3)")
    args = parser.parse_args(argv)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib, which is not installed "
                  "(pip install matplotlib), or leave out --plot", file=sys.stderr)
            return 2
    args.target = args.target or (0.01 if args.quick else 0.05)
    args.repeats = args.repeats or (3 if args.quick else 7)
    samples = QUICK_SAMPLES if args.quick else SAMPLES
    widths = QUICK_WIDTHS if args.quick else WIDTHS

    load_before = os.getloadavg()[0]
    t_start = time.perf_counter()
    results = {
        "samples": [measure([2, 64, 3], n, args, seed=n) for n in [1, *samples]],
        "width": [measure([2, h, 3], N_FIXED, args, seed=h) for h in widths],
        "depth": [measure([2, *[64] * d, 3], N_FIXED, args, seed=100 + d) for d in DEPTHS],
    }
    wall = time.perf_counter() - t_start
    load_after = os.getloadavg()[0]

    numpy = args.numpy
    fixed = results["samples"][0]["best_s"]
    print("## MLP.loss vs samples (2-64-3; the n=1 row is the fixed cost of a call)\n")
    print(table(results["samples"], lambda p: f"{p['n']:,}", "n", numpy=numpy,
                extra=("ns per sample above the fixed cost",
                       lambda p: f"{(p['best_s'] - fixed) / p['n'] * 1e9:.2f}"
                       if p["n"] > 1 else "-")))
    print(f"\n## MLP.loss vs hidden width (2-H-3, n={N_FIXED})\n")
    print(table(results["width"], lambda p: str(p["sizes"][1]), "H", numpy=numpy,
                extra=("ns per sample per hidden unit",
                       lambda p: f"{p['ns_per_sample'] / p['sizes'][1]:.3f}")))
    print(f"\n## MLP.loss vs depth (hidden layers of 64, n={N_FIXED})\n")
    print(table(results["depth"], lambda p: str(len(p["sizes"]) - 2), "hidden layers",
                numpy=numpy,
                extra=("parameters", lambda p: f"{ref.mlp_param_count(p['sizes']):,}")))
    unchecked = [f"{'-'.join(map(str, p['sizes']))} n={p['n']:,}"
                 for s in results.values() for p in s if not p["checked"]]
    print(f"\nBest of {args.repeats} repeats of ~{args.target * 1e3:g} ms each; "
          f"fastnn {fastnn.__version__}, numpy {np.__version__}; "
          f"1-minute load average {load_before:.2f} before, {load_after:.2f} after "
          f"(2 cores; it counts this process); {wall:.1f} s in all.")
    if unchecked:
        print("Not checked against the float64 reference (too big): " + ", ".join(unchecked))
    if args.json:
        meta = {"quick": args.quick, "target_s": args.target, "repeats": args.repeats,
                "load_average": [load_before, load_after], "wall_s": wall,
                "fastnn": fastnn.__version__, "numpy": np.__version__}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, **results}, f, indent=1)
    if args.plot:
        plot(results, args.plot)
        print(f"Plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
