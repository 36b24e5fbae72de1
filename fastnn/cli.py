"""The ``fastnn`` command line (also ``python -m fastnn``).

Subcommands:

* ``search`` (the default when no subcommand is given): ``fastnn.search``, the compiled
  random search, on an nnfs data set (``spiral``, ``vertical``, or ``sine`` turned into
  classes) or on the user's own ``.npz``/``.csv`` file (``--data``).  A tqdm progress bar
  on stderr, a summary on stdout (``--json`` for scripts), checkpoints (``--checkpoint``,
  ``--resume``); Ctrl-C stops it with the best parameters so far.
* ``demo``: the nnfs book's random perturbation search on an nnfs data set, as a plain
  Python loop around the fused ``MLP.evaluate`` kernel, timed against the same loop with
  a plain NumPy loss.

Each subcommand is a pair ``_add_<name>_arguments(parser)`` / ``_run_<name>(args,
parser)`` registered in ``_COMMANDS``; ``main`` returns the process exit code: 0, 2 for
bad arguments or data (argparse's ``error: argument --option: ...``, never a traceback),
130 when interrupted by Ctrl-C (``search`` prints the best-so-far summary first).

Choices, and what they replaced:

* ``search`` is the default command (it was ``demo``): the README's first command runs the
  main job, and ``fastnn --iterations 100000`` means the search.
* ``--dataset sine`` becomes a classification task (classes by quantile of the sine)
  rather than being refused: the loss is categorical, and this gives a 1-feature data set
  whose classes are not linearly separable (``test_sine_is_cut_into_classes_by_quantile``).
* ``--checkpoint`` never overwrites an existing file unless it is the one being resumed:
  rerunning a command after Ctrl-C would otherwise silently throw away a long run
  (``test_checkpoint_and_resume_match_an_uninterrupted_run``).
* ``--seed`` stops at 2**32 - 1, the limit of ``np.random.seed`` that generates nnfs's data.
"""

import argparse
import csv
import json
import math
import os
import re
import sys
import time
import zipfile

import numba
import numpy as np

from . import __version__
from .checkpoint import CheckpointError, load_checkpoint
from .network import MLP
from .search import search

DATASETS = ("spiral", "vertical")  # the demo's
SEARCH_DATASETS = ("spiral", "vertical", "sine")
#: --parallel's words -> fastnn.search(parallel=...)
PARALLEL = {"auto": None, "off": False, "chains": "chains", "candidates": "candidates"}
#: np.random.seed (which seeds nnfs's data) takes seeds below 2**32
MAX_SEED = 2 ** 32 - 1


# -- argument types (argparse turns ArgumentTypeError into "error: ..." and exit 2) ----
def _int_in(minimum, maximum=None, maximum_text=None):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f"must be <= {maximum_text or maximum}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _positive_float(text):
    value = _finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _layer_sizes(text):
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 2,3,3, got {text!r}"
        ) from None
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 sizes (inputs,outputs), got {text!r}")
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return sizes


# -- data -----------------------------------------------------------------------------
def make_data(dataset, samples, classes, seed, dtype):
    """nnfs data (``spiral_data``, ``vertical_data``, ``sine_data``), X cast to ``dtype``,
    y as int64.

    ``sine`` is nnfs's regression set (x = i / n for i < n, target sin(2 pi x)), turned
    into a classification task: its ``samples * classes`` points are ranked by their
    sine value and cut into ``classes`` groups of ``samples`` (class 0 the lowest
    values), so the network learns which band of the sine each x falls in.

    nnfs draws from NumPy's global RNG: it is seeded for the call and then restored,
    so the caller's global random state is left as it was."""
    from nnfs.datasets import sine_data, spiral_data, vertical_data

    if dataset == "sine":  # deterministic: no random numbers involved
        X, values = sine_data(samples=samples * classes)
        y = np.empty(X.shape[0], dtype=np.int64)
        y[np.argsort(values.ravel(), kind="stable")] = np.arange(X.shape[0]) // samples
        return np.ascontiguousarray(X, dtype=dtype), y
    make = spiral_data if dataset == "spiral" else vertical_data
    # nnfs only knows the legacy global RNG, so these legacy calls are deliberate.
    state = np.random.get_state()  # noqa: NPY002
    try:
        if seed is not None:
            np.random.seed(seed)  # noqa: NPY002
        X, y = make(samples=samples, classes=classes)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    return np.ascontiguousarray(X, dtype=dtype), y.astype(np.int64)


class DataError(ValueError):
    """The user's data file cannot be used; the message says why (without the path)."""


#: accepted names of the two arrays in a .npz file (np.savez(f, X, y) names them
#: arr_0 and arr_1, accepted when they are the file's only arrays)
NPZ_KEYS = (("X", "x"), ("y", "Y"))


def load_data(path):
    """``(X, y)`` from the user's ``.npz`` or ``.csv`` file: X float (samples x
    features), y int64 labels in ``[0, classes)``.

    ``.npz``: arrays ``X`` (or ``x``) and ``y`` (or ``Y``), or the two unnamed arrays of
    ``np.savez(f, X, y)``; y as integer labels (whole-number floats and bools too), a
    ``(samples, 1)`` column, or one-hot rows.  ``.csv``: comma-separated, one sample
    per line, the features then an integer label in the last column; the first line
    may be a header; blank lines are skipped.  Raises DataError saying what is wrong."""
    path = os.fspath(path)
    kind = os.path.splitext(path)[1].lower()
    if kind not in (".npz", ".csv"):
        raise DataError("expected a .npz or .csv file (by its extension)")
    if os.path.isdir(path):
        raise DataError("is a directory")
    if not os.path.exists(path):
        raise DataError("no such file")
    X, y = _read_npz(path) if kind == ".npz" else _read_csv(path)
    return _check_data(X, y)


def _read_npz(path):
    with open(path, "rb") as f:
        magic = f.read(6)
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        raise DataError("is not a .npz file (a zip archive of .npy arrays, as np.savez writes)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot be read as a .npz file ({exc})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError("holds a single array (.npy format); expected a .npz file with "
                        "arrays X and y, as written by np.savez(path, X=X, y=y)")
    with loaded:
        names = list(loaded.files)
        x_key, y_key = (next((k for k in keys if k in names), None) for keys in NPZ_KEYS)
        if x_key is None and y_key is None and sorted(names) == ["arr_0", "arr_1"]:
            x_key, y_key = "arr_0", "arr_1"
        if x_key is None or y_key is None:
            raise DataError(f"expected arrays named X and y (or x and Y), found: "
                            f"{', '.join(names) or 'no arrays'}")
        arrays = []
        for key in (x_key, y_key):
            try:
                arrays.append(loaded[key])
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise DataError(f"array {key} holds Python objects (dtype object); save "
                                    "it as numbers") from None
                raise DataError(f"cannot read array {key} ({exc})") from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise DataError(f"cannot read array {key} ({exc})") from None
        return arrays


def _read_csv(path):
    rows, lines, width, header = [], [], None, False
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                cells = [cell.strip() for cell in row]
                if not any(cells):
                    continue
                try:
                    values = [float(cell) for cell in cells]
                except ValueError:
                    if width is None:  # the first line: a header
                        width, header = len(cells), True
                        continue
                    col, cell = next((j, c) for j, c in enumerate(cells) if not _is_float(c))
                    raise DataError(f"line {reader.line_num}, column {col + 1}: {cell!r} is "
                                    f"not a number") from None
                if width is None:
                    width = len(values)
                elif len(values) != width:
                    raise DataError(f"line {reader.line_num} has {len(values)} columns, but "
                                    f"{'the header' if header else 'the first line'} has "
                                    f"{width}")
                rows.append(values)
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise DataError("is not a UTF-8 text file") from None
    except csv.Error as exc:
        raise DataError(f"is not valid CSV ({exc})") from None
    if not rows:
        raise DataError("has no data rows")
    if width < 2:
        raise DataError("needs at least 2 columns: the features, then the label")
    data = np.array(rows)
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad.size:
        raise DataError(f"line {lines[bad[0]]} has a NaN or infinite value")
    labels = data[:, -1]
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < 0))
    if bad.size:
        raise DataError(f"line {lines[bad[0]]}: the label (last column) must be an integer "
                        f">= 0, got {labels[bad[0]]:g}")
    return data[:, :-1], labels


def _is_float(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_data(X, y):
    X, y = np.asarray(X), np.asarray(y)
    if X.dtype.kind not in "biuf":
        raise DataError(f"X must hold numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        raise DataError(f"X must be 2-D (samples, features), got shape {X.shape}"
                        + ("; for one feature use X.reshape(-1, 1)" if X.ndim == 1 else ""))
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"X must have at least one sample and one feature, got shape {X.shape}")
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1)) if X.dtype.kind == "f" else ()
    if len(bad):
        raise DataError(f"X row {bad[0]} has a NaN or infinite value")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf":  # one-hot rows
        ones = y == 1
        if not (ones.sum(axis=1) == 1).all() or not ((y == 0) | ones).all():
            raise DataError(f"y has shape {y.shape} but is not one-hot (each row a single 1 "
                            "and zeros); give integer labels as a 1-D array")
        y = ones.argmax(axis=1)
    if y.ndim != 1:
        raise DataError(f"y must be 1-D integer labels (or one-hot rows), got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise DataError(f"y must hold integer class labels, got dtype {y.dtype}")
    if y.shape[0] != X.shape[0]:
        raise DataError(f"X has {X.shape[0]} samples (rows) but y has {y.shape[0]} labels")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            raise DataError(f"y must hold integer class labels, got {y[bad[0]]:g} "
                            f"at index {bad[0]}")
    if y.min() < 0:
        raise DataError(f"y labels must be >= 0 (classes 0, 1, ...), got {y.min()}")
    top = int(y.max())
    if top < 1:
        raise DataError("y has a single class (0); a classifier needs at least 2")
    if top >= y.shape[0]:
        raise DataError(f"y labels must be 0..C-1 for C classes; the largest, {top}, is more "
                        f"than the {y.shape[0]} samples can cover")
    return X, y.astype(np.int64)


# -- the search loop ------------------------------------------------------------------
def perturbation_search(loss_fn, params, iterations, scale, rng, on_progress=None, every=0):
    """The nnfs book's random-adjustment search, done correctly.

    ``loss_fn()`` returns the loss of the network whose flat parameter vector is
    ``params``; ``params`` is changed in place and holds the best parameters found on
    return.  Each step adds ``scale * N(0, 1)`` to every parameter, keeps the step if
    the loss drops and restores the previous best otherwise.  (The seed notebook's
    loop compared against a misspelt variable, so it accepted every step, and added
    ``rand`` (uniform, positive) noise to the biases.)

    ``on_progress(iteration, best_loss)`` is called every ``every`` iterations and
    after the last one.  Returns ``(best_loss, accepted_steps, iterations_done)``; a
    KeyboardInterrupt stops the loop early with ``params`` at the best found so far.
    """
    best_loss = loss_fn()
    best = params.copy()
    noise = np.empty_like(params)
    accepted = 0
    done = 0
    try:
        for i in range(iterations):
            rng.standard_normal(dtype=noise.dtype, out=noise)
            noise *= scale
            params += noise
            loss = loss_fn()
            if loss < best_loss:
                best_loss = loss
                best[...] = params
                accepted += 1
            else:
                params[...] = best
            done = i + 1
            if on_progress is not None and every and done % every == 0 and done < iterations:
                on_progress(done, best_loss)
    except KeyboardInterrupt:
        params[...] = best
        raise _Interrupted(best_loss, accepted, done) from None
    if on_progress is not None:
        on_progress(done, best_loss)
    return best_loss, accepted, done


class _Interrupted(Exception):
    def __init__(self, best_loss, accepted, done):
        super().__init__("interrupted")
        self.result = (best_loss, accepted, done)


def numpy_loss_fn(X, y, params, sizes):
    """A plain, vectorised NumPy loss over the same flat parameter layout as ``MLP``.

    Returns a zero-argument callable that reads ``params`` (views, so in-place changes
    are seen) and computes the clipped categorical cross-entropy the way a NumPy user
    would: ``X @ W + b``, ``np.maximum``, max-subtracted ``exp``, normalise, clip the
    true-class probability, ``log``, ``mean``."""
    weights, biases = [], []
    offset = 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False):
        weights.append(params[offset:offset + n_in * n_out].reshape(n_in, n_out))
        offset += n_in * n_out
        biases.append(params[offset:offset + n_out])
        offset += n_out
    rows = np.arange(X.shape[0])

    def loss():
        a = X
        for w, b in zip(weights[:-1], biases[:-1], strict=False):
            a = np.maximum(a @ w + b, 0)
        z = a @ weights[-1] + biases[-1]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e[rows, y] / e.sum(axis=1)
        return float(-np.log(np.clip(p, 1e-7, 1 - 1e-7)).mean())

    return loss


# -- demo -----------------------------------------------------------------------------
def _add_demo_arguments(p):
    p.add_argument("--dataset", choices=DATASETS, default="spiral",
                   help="nnfs data set (default: %(default)s)")
    p.add_argument("--samples", type=_int_in(1), default=100, metavar="N",
                   help="samples per class (default: %(default)s)")
    p.add_argument("--classes", type=_int_in(2), default=3, metavar="C",
                   help="number of classes (default: %(default)s)")
    p.add_argument("--layers", type=_layer_sizes, default=[2, 3, 3], metavar="SIZES",
                   help="layer sizes, inputs first, e.g. 2,64,3; the first must be 2 and "
                        "the last must equal --classes (default: 2,3,3)")
    p.add_argument("--iterations", type=_int_in(1), default=10_000, metavar="N",
                   help="search steps (default: %(default)s)")
    p.add_argument("--scale", type=_positive_float, default=0.05,
                   help="noise scale: each step adds scale * N(0, 1) to every parameter "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED, "2**32 - 1"), default=0,
                   help="seed for the data, the initial weights and the noise "
                        "(default: %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="floating-point type of the data and parameters (default: %(default)s)")
    p.add_argument("--numpy-iterations", type=_int_in(0), default=500, metavar="N",
                   help="steps of the same loop with a plain NumPy loss, for comparison; "
                        "0 skips it (default: %(default)s)")


def _run_demo(args, parser):
    if args.layers[0] != 2:
        parser.error(f"--layers must start with 2 (the nnfs data sets have 2 features), "
                     f"got {args.layers[0]}")
    if args.layers[-1] != args.classes:
        parser.error(f"--layers must end with the number of classes ({args.classes}), "
                     f"got {args.layers[-1]}")
    dtype = np.dtype(args.dtype)
    X, y = make_data(args.dataset, args.samples, args.classes, args.seed, dtype)
    init_seq, search_seq = np.random.SeedSequence(args.seed).spawn(2)
    model = MLP(args.layers, seed=int(init_seq.generate_state(1)[0]), dtype=dtype)
    start_params = model.params.copy()
    sizes = "-".join(str(s) for s in args.layers)
    print(f"fastnn {__version__} demo: {args.dataset} data, {args.classes} classes x "
          f"{args.samples} samples, network {sizes} ({model.n_params} parameters, "
          f"{dtype.name}), seed {args.seed}")

    t0 = time.perf_counter()
    loss0, acc0 = model.evaluate(X, y)
    print(f"kernels ready in {time.perf_counter() - t0:.2f} s "
          f"(compiled, or loaded from the disk cache)")
    print(f"random search: {args.iterations} iterations, noise scale {args.scale}")

    def progress(i, best_loss):
        print(f"  iteration {i:>{len(str(args.iterations))}}  loss {best_loss:.6f}  "
              f"accuracy {model.accuracy(X, y):.3f}", flush=True)

    progress(0, loss0)
    every = max(1, args.iterations // 5)
    t0 = time.perf_counter()
    try:
        best_loss, accepted, done = perturbation_search(
            lambda: model.evaluate(X, y)[0], model.params, args.iterations, args.scale,
            np.random.default_rng(search_seq), progress, every,
        )
        status = 0
    except _Interrupted as stop:
        best_loss, accepted, done = stop.result
        print(f"interrupted after {done} iterations")
        status = 130
    elapsed = time.perf_counter() - t0
    loss, acc = model.evaluate(X, y)
    print(f"final: loss {loss:.6f}, accuracy {acc:.3f} (started at loss {loss0:.6f}, "
          f"accuracy {acc0:.3f}; {accepted} of {done} steps kept)")
    if done:
        print(f"fastnn: {done} iterations in {elapsed:.3f} s = {_rate(done, elapsed)}")
    if status or not args.numpy_iterations or not done:
        return status

    # The same loop, same start, same noise stream, with a plain NumPy loss.
    n = min(args.numpy_iterations, args.iterations)
    params = start_params.copy()
    t0 = time.perf_counter()
    try:
        perturbation_search(numpy_loss_fn(X, y, params, args.layers), params, n, args.scale,
                            np.random.default_rng(search_seq))
    except _Interrupted:
        return 130
    np_elapsed = time.perf_counter() - t0
    print(f"numpy:  {n} iterations in {np_elapsed:.3f} s = {_rate(n, np_elapsed)} "
          f"(same loop, plain NumPy {dtype.name} loss)")
    print(f"speed-up of the loop: {(np_elapsed / n) / (elapsed / done):.1f}x")
    if "OPENBLAS_NUM_THREADS" not in os.environ and (os.cpu_count() or 1) > 1:
        print("note: NumPy's BLAS may use several threads, fastnn uses one; run with "
              "OPENBLAS_NUM_THREADS=1 to compare core for core")
    return 0


def _rate(n, seconds):
    seconds = max(seconds, 1e-9)
    return f"{n / seconds:,.0f} it/s ({seconds / n * 1e6:.1f} us per iteration)"


# -- search ---------------------------------------------------------------------------
def _add_search_arguments(p):
    p.epilog = ("Exit status: 0 when done (early stops included), 2 for bad arguments or data, "
                "130 when interrupted by Ctrl-C (after printing the best-so-far summary).")
    data = p.add_argument_group(
        "data", "an nnfs data set, generated after np.random.seed(--seed), or your own file")
    source = data.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset", choices=SEARCH_DATASETS, default=None,
        help="nnfs data set (default: spiral). sine is nnfs's regression set (1 feature) "
             "turned into classes: its SAMPLES x CLASSES points ranked by sin(2 pi x) and "
             "cut into CLASSES equal groups")
    source.add_argument(
        "--data", metavar="FILE",
        help="your own data instead: a .npz with arrays X (samples x features) and y "
             "(integer labels, or one-hot rows); names X or x, y or Y, or the two arrays of "
             "np.savez(FILE, X, y). Or a .csv: comma-separated, one sample per line, the "
             "features then the integer label in the last column; a header line is allowed")
    data.add_argument("--samples", type=_int_in(1), default=None, metavar="N",
                      help="samples per class of an nnfs data set (default: 100)")
    data.add_argument("--classes", type=_int_in(2), default=None, metavar="C",
                      help="classes of an nnfs data set (default: 3)")

    net = p.add_argument_group("network and search")
    net.add_argument("--layers", type=_layer_sizes, default=None, metavar="SIZES",
                     help="layer sizes, inputs first, e.g. 2,64,3: the first must equal the "
                          "data's features, the last its classes (default: FEATURES,3,"
                          "CLASSES, i.e. 2,3,3 on spiral and vertical)")
    net.add_argument("--strategy", choices=("perturb", "random"), default="perturb",
                     help="perturb: add noise to the current best and keep it if the loss "
                          "drops (the book's chapter 6); random: draw every candidate afresh "
                          "(default: %(default)s)")
    net.add_argument("--iterations", type=_int_in(1, 2 ** 62, "2**62"), default=10_000,
                     metavar="N", help="steps per chain (default: %(default)s)")
    net.add_argument("--candidates", type=_int_in(1), default=1, metavar="K",
                     help="candidates evaluated per step; the best one is kept "
                          "(default: %(default)s)")
    net.add_argument("--chains", type=_int_in(1), default=1, metavar="R",
                     help="independent searches, each with its own noise; the best is "
                          "reported (default: %(default)s)")
    net.add_argument("--scale", type=_positive_float, default=0.05,
                     help="noise scale: candidates are scale * N(0, 1) away from the current "
                          "parameters (default: %(default)s)")
    net.add_argument("--adapt", action="store_true",
                     help="adapt each chain's step size by the 1/5th success rule "
                          "(x2 on success, x2**-1/4 on failure; --strategy perturb only)")
    net.add_argument("--target-loss", type=_finite_float, default=None, metavar="LOSS",
                     help="stop a chain once its loss is <= LOSS")
    net.add_argument("--patience", type=_int_in(1), default=None, metavar="N",
                     help="stop a chain after N steps without improvement")
    net.add_argument("--seed", type=_int_in(0, MAX_SEED, "2**32 - 1"), default=0,
                     help="seed for the data, the initial weights and the search's noise; "
                          "the same seed gives the same result (default: %(default)s)")
    net.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                     help="floating-point type of the data and parameters (default: %(default)s)")

    run = p.add_argument_group("execution (none of these change the result)")
    run.add_argument("--threads", type=_int_in(1), default=None, metavar="N",
                     help="at most N Numba threads (default: all, NUMBA_NUM_THREADS)")
    run.add_argument("--parallel", choices=tuple(PARALLEL), default="auto",
                     help="auto: chains in parallel when there are several, a step's "
                          "candidates when they are costly enough; off: serial; chains; "
                          "candidates (default: %(default)s)")
    run.add_argument("--checkpoint", metavar="PATH",
                     help="save the search's state to PATH (.npz, written atomically) every "
                          "--checkpoint-every seconds and at the end")
    run.add_argument("--checkpoint-every", type=_positive_float, default=None, metavar="SECONDS",
                     help="seconds between checkpoints (default: 60)")
    run.add_argument("--resume", metavar="PATH",
                     help="continue the search saved in PATH: repeat the options of the run "
                          "that wrote it (--iterations may grow); it keeps checkpointing to "
                          "PATH unless --checkpoint names another file")
    out = p.add_argument_group("output")
    out.add_argument("--no-progress", action="store_true",
                     help="no progress bar (it goes to stderr)")
    out.add_argument("--json", action="store_true",
                     help="print the summary as one JSON object instead of text")


def _search_data(args, parser):
    """``(X, y, info)`` for the search, or a parser error naming the option; ``info``
    has the summary's data fields and a ``description`` for the text summary."""
    dtype = np.dtype(args.dtype)
    if args.data is None:
        dataset = args.dataset or "spiral"
        samples = 100 if args.samples is None else args.samples
        classes = 3 if args.classes is None else args.classes
        X, y = make_data(dataset, samples, classes, args.seed, dtype)
        what = ", classes by quantile of sin(2 pi x)" if dataset == "sine" else ""
        info = dict(data=dataset, samples=samples * classes, samples_per_class=samples,
                    classes=classes,
                    description=f"{dataset} data ({classes} classes x {samples} samples{what})")
        return X, y, info
    for option in ("samples", "classes"):
        if getattr(args, option) is not None:
            parser.error(f"argument --{option}: applies to the nnfs data sets (--dataset), "
                         f"not to --data")
    try:
        X, y = load_data(args.data)
    except DataError as exc:
        parser.error(f"argument --data: {args.data}: {exc}")
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        parser.error(f"argument --data: {args.data}: X has values too large for {dtype.name}; "
                     "try --dtype float64")
    classes = int(y.max()) + 1
    info = dict(data=args.data, samples=int(X.shape[0]), samples_per_class=None,
                classes=classes,
                description=f"{args.data} ({X.shape[0]} samples, {X.shape[1]} features, "
                            f"{classes} classes)")
    return X, y, info


def _check_search_options(args, parser):
    """Option combinations argparse cannot check alone, and the checkpoint files.  Returns
    the checkpoint path (``--checkpoint``, else ``--resume``'s) and the resumed step."""
    if args.adapt and args.strategy != "perturb":
        parser.error("argument --adapt: applies to --strategy perturb only")
    if args.threads is not None and args.threads > numba.config.NUMBA_NUM_THREADS:
        parser.error(f"argument --threads: must be <= {numba.config.NUMBA_NUM_THREADS} "
                     f"(NUMBA_NUM_THREADS, set before starting to allow more), "
                     f"got {args.threads}")
    checkpoint = args.checkpoint if args.checkpoint is not None else args.resume
    if args.checkpoint_every is not None and checkpoint is None:
        parser.error("argument --checkpoint-every: needs --checkpoint PATH (or --resume PATH)")
    if checkpoint is not None:  # fail now, not when the first save comes due
        option = "--checkpoint" if args.checkpoint is not None else "--resume"
        where = os.path.dirname(os.path.abspath(checkpoint))
        if os.path.isdir(checkpoint):
            parser.error(f"argument {option}: {checkpoint} is a directory")
        if not os.path.isdir(where):
            parser.error(f"argument {option}: directory {where} does not exist")
        if not os.access(where, os.W_OK | os.X_OK):
            parser.error(f"argument {option}: directory {where} is not writable")
        resuming_it = args.resume is not None and os.path.exists(args.resume) and (
            os.path.samefile(checkpoint, args.resume) if os.path.exists(checkpoint) else False)
        if os.path.exists(checkpoint) and not resuming_it:
            # never overwrite a file by accident: it may be hours of search, or data
            parser.error(f"argument --checkpoint: {checkpoint} already exists; add --resume "
                         f"{checkpoint} to continue that search, or delete it or pick "
                         f"another path to start afresh")
    resumed_at = None
    if args.resume is not None:
        try:
            arrays, _ = load_checkpoint(args.resume)
            resumed_at = int(arrays["step"].max())
        except FileNotFoundError:
            parser.error(f"argument --resume: {args.resume}: no such file")
        except (OSError, KeyError, ValueError) as exc:  # CheckpointError is a ValueError
            parser.error(f"argument --resume: {exc}")
    return checkpoint, resumed_at


#: the first word of a ValueError/TypeError from fastnn.search -> the option to blame
_SEARCH_OPTIONS = {
    "strategy": "--strategy", "iterations": "--iterations", "scale": "--scale",
    "candidates": "--candidates", "chains": "--chains", "seed": "--seed", "adapt": "--adapt",
    "target_loss": "--target-loss", "patience": "--patience", "parallel": "--parallel",
    "threads": "--threads", "checkpoint_every": "--checkpoint-every", "checkpoint": "--resume",
    "X": "--data", "y": "--data", "model": "--layers", "dtype": "--dtype",
}


#: fields of a checkpoint's metadata (checked on resume) -> the options that set them
_CHECKPOINT_FIELDS = {
    "layer_sizes": "--layers", "target_loss": "--target-loss",
    "data": "the data (--dataset, --samples, --classes, --seed or --data)",
    **{name: f"--{name}" for name in ("dtype", "strategy", "scale", "candidates", "chains",
                                      "seed", "adapt", "patience")},
}


def _search_error(exc):
    """A parser error message naming the option behind ``exc`` (raised by fastnn.search)."""
    message = str(exc)
    if isinstance(exc, CheckpointError):
        for name, option in _CHECKPOINT_FIELDS.items():  # name the options that differ
            message = re.sub(rf"(?<=(: |; )){name} is ", f"{option} is ", message)
        return f"argument --resume: {message}"
    word = re.match(r"\w+", message)
    option = _SEARCH_OPTIONS.get(word.group() if word else "")
    return f"argument {option}: {message}" if option else f"fastnn.search: {message}"


def _run_search(args, parser):
    checkpoint, resumed_at = _check_search_options(args, parser)
    X, y, info = _search_data(args, parser)
    features, classes = X.shape[1], info["classes"]
    layers = args.layers or [features, 3, classes]
    if layers[0] != features:
        parser.error(f"argument --layers: the first size must be the number of features "
                     f"({features} in {info['data']}), got {layers[0]}")
    if layers[-1] != classes:
        parser.error(f"argument --layers: the last size must be the number of classes "
                     f"({classes} in {info['data']}), got {layers[-1]}")
    model = MLP(layers, seed=args.seed, dtype=args.dtype)
    options = dict(strategy=args.strategy, iterations=args.iterations, scale=args.scale,
                   candidates=args.candidates, chains=args.chains, adapt=args.adapt,
                   target_loss=args.target_loss, patience=args.patience)
    try:
        result = search(
            model, X, y, seed=args.seed, **options, parallel=PARALLEL[args.parallel],
            threads=args.threads, progress=not args.no_progress, checkpoint=checkpoint,
            checkpoint_every=60.0 if args.checkpoint_every is None else args.checkpoint_every,
            resume=args.resume)
    except (ValueError, TypeError) as exc:
        parser.error(_search_error(exc))
    except OSError as exc:  # writing the checkpoint (its folder was checked beforehand)
        if checkpoint is None:
            raise
        parser.error(f"argument --checkpoint: cannot write {checkpoint}: {exc}")
    rate = result.evaluations_per_second
    description = info.pop("description")
    summary = dict(
        info, features=features, layers=layers, parameters=model.n_params,
        dtype=args.dtype, **options,
        loss=result.loss, accuracy=result.accuracy, iteration=result.iteration,
        steps=result.steps, evaluations=result.evaluations, seconds=result.seconds,
        evaluations_per_second=rate if math.isfinite(rate) else None, mode=result.mode,
        seed=result.seed, chain=result.chain, stopped=result.stopped,
        interrupted=result.interrupted, resumed=args.resume is not None,
        resumed_from=args.resume, resumed_at_step=resumed_at, checkpoint=checkpoint,
        fastnn=__version__)
    if args.json:
        print(json.dumps(summary))
    else:
        print(_summary_text(summary, description))
    if result.interrupted:
        print("interrupted: the summary is the best found so far"
              + (f"; continue with the same command and --resume {checkpoint}"
                 if checkpoint else ""), file=sys.stderr)
        return 130
    return 0


def _summary_text(s, description):
    sizes = "-".join(str(n) for n in s["layers"])
    extras = [f"{s['candidates']} candidates" if s["candidates"] > 1 else "",
              f"{s['chains']} chains" if s["chains"] > 1 else "",
              "adapt" if s["adapt"] else "",
              f"target loss {s['target_loss']:g}" if s["target_loss"] is not None else "",
              f"patience {s['patience']}" if s["patience"] is not None else ""]
    rate = s["evaluations_per_second"]
    if s["resumed"]:
        resumed = f"yes, from {s['resumed_from']} at step {s['resumed_at_step']}"
    else:
        resumed = "no"
    rows = [
        ("loss", f"{s['loss']:.6f}"),
        ("accuracy", f"{s['accuracy']:.4f}"),
        ("best iteration", "none (no step improved on the start)" if s["iteration"] is None
         else str(s["iteration"])),
        ("steps", str(s["steps"])),
        ("evaluations", str(s["evaluations"])),
        ("seconds", f"{s['seconds']:.3f}"),
        ("evaluations/s", "-" if rate is None else f"{rate:,.0f}"),
        ("mode", s["mode"]),
        ("seed", str(s["seed"])),
        ("stopped", s["stopped"]),
        ("resumed", resumed),
    ]
    if s["checkpoint"]:
        rows.append(("checkpoint", s["checkpoint"]))
    head = [f"fastnn search: {description}, network {sizes} ({s['parameters']} parameters, "
            f"{s['dtype']})",
            f"{s['strategy']}, {s['iterations']} iterations, scale {s['scale']:g}"
            + "".join(f", {e}" for e in extras if e)]
    width = max(len(name) for name, _ in rows) + 2
    return "\n".join(head + [f"{name:<{width}}{value}" for name, value in rows])


# -- entry point ----------------------------------------------------------------------
_COMMANDS = {
    "search": (_add_search_arguments, _run_search,
               "compiled random search (fastnn.search) on nnfs data or your own file"),
    "demo": (_add_demo_arguments, _run_demo,
             "random perturbation search on nnfs data, timed against plain NumPy"),
}
#: the main job: ``fastnn`` alone (or ``fastnn --iterations ...``) runs it
_DEFAULT_COMMAND = "search"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="Neural Networks from Scratch networks, compiled with Numba. "
                    f"Without a subcommand, runs '{_DEFAULT_COMMAND}'.",
    )
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_arguments, run, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(run=run, subparser=p)
    return parser


def main(argv=None):
    """Run the command line; returns the exit code (argparse errors exit with 2, Ctrl-C
    with 130)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, _DEFAULT_COMMAND)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.run(args, args.subparser)
    except KeyboardInterrupt:  # outside the search's own handling (loading, compiling)
        print("fastnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
