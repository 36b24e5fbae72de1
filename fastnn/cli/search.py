"""``fastnn search`` (the default command): ``fastnn.search``, the compiled random search,
on an nnfs data set (``spiral``, ``vertical``, or ``sine`` turned into classes) or on the
user's own ``.npz``/``.csv`` file (``--data``).

A tqdm progress bar on stderr, a summary on stdout (``--json`` for scripts), checkpoints
(``--checkpoint``, ``--resume``); Ctrl-C stops it with the best parameters so far (exit
130 after the summary).  Errors from ``fastnn.search`` are reported against the option
that caused them (``error: argument --chains: ...``, exit 2).

``--checkpoint`` never overwrites an existing file unless it is the one being resumed:
rerunning a command after Ctrl-C would otherwise silently throw away a long run
(``tests/test_cli.py::test_checkpoint_and_resume_match_an_uninterrupted_run``).
"""

import json
import math
import os
import re
import sys

import numba
import numpy as np

from .. import __version__
from .. import cli as _package  # the data functions as fastnn.cli has them (see __init__)
from ..checkpoint import CheckpointError, load_checkpoint
from ..network import MLP
from ..search import search
from . import _args
from .data import DataError

SEARCH_DATASETS = ("spiral", "vertical", "sine")
#: --parallel's words -> fastnn.search(parallel=...)
PARALLEL = {"auto": None, "off": False, "chains": "chains", "candidates": "candidates"}
#: the one-line description ``fastnn --help`` shows
HELP = "compiled random search (fastnn.search) on nnfs data or your own file"


def add_arguments(p):
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
    data.add_argument("--samples", type=_args.int_in(1), default=None, metavar="N",
                      help="samples per class of an nnfs data set (default: 100)")
    data.add_argument("--classes", type=_args.int_in(2), default=None, metavar="C",
                      help="classes of an nnfs data set (default: 3)")

    net = p.add_argument_group("network and search")
    net.add_argument("--layers", type=_args.layer_sizes, default=None, metavar="SIZES",
                     help="layer sizes, inputs first, e.g. 2,64,3: the first must equal the "
                          "data's features, the last its classes (default: FEATURES,3,"
                          "CLASSES, i.e. 2,3,3 on spiral and vertical)")
    net.add_argument("--strategy", choices=("perturb", "random"), default="perturb",
                     help="perturb: add noise to the current best and keep it if the loss "
                          "drops (the book's chapter 6); random: draw every candidate afresh "
                          "(default: %(default)s)")
    net.add_argument("--iterations", type=_args.int_in(1, 2 ** 62, "2**62"), default=10_000,
                     metavar="N", help="steps per chain (default: %(default)s)")
    net.add_argument("--candidates", type=_args.int_in(1), default=1, metavar="K",
                     help="candidates evaluated per step; the best one is kept "
                          "(default: %(default)s)")
    net.add_argument("--chains", type=_args.int_in(1), default=1, metavar="R",
                     help="independent searches, each with its own noise; the best is "
                          "reported (default: %(default)s)")
    net.add_argument("--scale", type=_args.positive_float, default=0.05,
                     help="noise scale: candidates are scale * N(0, 1) away from the current "
                          "parameters (default: %(default)s)")
    net.add_argument("--adapt", action="store_true",
                     help="adapt each chain's step size by the 1/5th success rule "
                          "(x2 on success, x2**-1/4 on failure; --strategy perturb only)")
    net.add_argument("--target-loss", type=_args.finite_float, default=None, metavar="LOSS",
                     help="stop a chain once its loss is <= LOSS")
    net.add_argument("--patience", type=_args.int_in(1), default=None, metavar="N",
                     help="stop a chain after N steps without improvement")
    net.add_argument("--seed", type=_args.seed, default=0,
                     help="seed for the data, the initial weights and the search's noise; "
                          "the same seed gives the same result (default: %(default)s)")
    net.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                     help="floating-point type of the data and parameters (default: %(default)s)")

    execution = p.add_argument_group("execution (none of these change the result)")
    execution.add_argument("--threads", type=_args.int_in(1), default=None, metavar="N",
                           help="at most N Numba threads (default: all, NUMBA_NUM_THREADS)")
    execution.add_argument("--parallel", choices=tuple(PARALLEL), default="auto",
                           help="auto: chains in parallel when there are several, a step's "
                                "candidates when they are costly enough; off: serial; chains; "
                                "candidates (default: %(default)s)")
    execution.add_argument("--checkpoint", metavar="PATH",
                           help="save the search's state to PATH (.npz, written atomically) every "
                                "--checkpoint-every seconds and at the end")
    execution.add_argument("--checkpoint-every", type=_args.positive_float, default=None,
                           metavar="SECONDS", help="seconds between checkpoints (default: 60)")
    execution.add_argument("--resume", metavar="PATH",
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
        X, y = _package.make_data(dataset, samples, classes, args.seed, dtype)
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
        X, y = _package.load_data(args.data)
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


def run(args, parser):
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
