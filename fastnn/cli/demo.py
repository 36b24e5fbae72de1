"""``fastnn demo``: the nnfs book's random perturbation search on an nnfs data set, as a
plain Python loop around the fused ``MLP.evaluate`` kernel, timed against the same loop
(same start, same noise) with a plain NumPy loss.

``perturbation_search`` (the loop) and ``numpy_loss_fn`` (the NumPy loss) are also what
``bench/test_bench_loss.py`` times.
"""

import os
import time

import numpy as np

from .. import __version__
from .. import cli as _package  # make_data as fastnn.cli has it (see fastnn/cli/__init__.py)
from ..network import MLP
from . import _args

#: the nnfs data sets the demo offers
DATASETS = ("spiral", "vertical")
#: the one-line description ``fastnn --help`` shows
HELP = "random perturbation search on nnfs data, timed against plain NumPy"


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


# -- the subcommand -----------------------------------------------------------------
def add_arguments(p):
    p.add_argument("--dataset", choices=DATASETS, default="spiral",
                   help="nnfs data set (default: %(default)s)")
    p.add_argument("--samples", type=_args.int_in(1), default=100, metavar="N",
                   help="samples per class (default: %(default)s)")
    p.add_argument("--classes", type=_args.int_in(2), default=3, metavar="C",
                   help="number of classes (default: %(default)s)")
    p.add_argument("--layers", type=_args.layer_sizes, default=[2, 3, 3], metavar="SIZES",
                   help="layer sizes, inputs first, e.g. 2,64,3; the first must be 2 and "
                        "the last must equal --classes (default: 2,3,3)")
    p.add_argument("--iterations", type=_args.int_in(1), default=10_000, metavar="N",
                   help="search steps (default: %(default)s)")
    p.add_argument("--scale", type=_args.positive_float, default=0.05,
                   help="noise scale: each step adds scale * N(0, 1) to every parameter "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=_args.seed, default=0,
                   help="seed for the data, the initial weights and the noise "
                        "(default: %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="floating-point type of the data and parameters (default: %(default)s)")
    p.add_argument("--numpy-iterations", type=_args.int_in(0), default=500, metavar="N",
                   help="steps of the same loop with a plain NumPy loss, for comparison; "
                        "0 skips it (default: %(default)s)")


def run(args, parser):
    if args.layers[0] != 2:
        parser.error(f"--layers must start with 2 (the nnfs data sets have 2 features), "
                     f"got {args.layers[0]}")
    if args.layers[-1] != args.classes:
        parser.error(f"--layers must end with the number of classes ({args.classes}), "
                     f"got {args.layers[-1]}")
    dtype = np.dtype(args.dtype)
    X, y = _package.make_data(args.dataset, args.samples, args.classes, args.seed, dtype)
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
