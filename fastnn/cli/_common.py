"""What ``fastnn search`` and ``fastnn train`` share: the data options and loading, the
validation data, the execution and checkpoint options and their checks, errors reported
against the option that caused them, and the summary table.

Every check here ends in ``parser.error(...)``: ``fastnn COMMAND: error: argument
--option: MESSAGE`` and exit status 2, never a traceback.
"""

import contextlib
import json
import os
import re
import sys
import warnings
from typing import NamedTuple

import numba
import numpy as np

from .. import cli as _package  # the data functions as fastnn.cli has them (see __init__)
from ..checkpoint import CheckpointError, load_checkpoint
from . import _args
from .data import MAX_SEED, DataError

#: the nnfs data sets the commands offer
DATASETS = ("spiral", "vertical", "sine")
#: the options behind a checkpoint's ``data`` field (a fingerprint of every sample)
DATA_FIELD = ("the data (--dataset, --samples, --classes, --seed or --data) or the "
              "validation data (its options)")


class Plan(NamedTuple):
    """A run, prepared and checked, before it starts (``search.prepare``,
    ``train.prepare``): the samples to fit, the validation pair or None, the data's and
    the validation's summary fields, the layer sizes, the model with its initial
    weights, and the command's own settings (``search``: the search options; ``train``:
    the optimizer, regularisation and dropout settings)."""

    X: np.ndarray
    y: np.ndarray
    validation: tuple | None
    info: dict
    vinfo: dict
    layers: list
    model: object
    options: dict


# -- options ---------------------------------------------------------------------------------


def add_data_arguments(p, *, validation_default):
    """The data options (an nnfs data set, or ``--data FILE``) and the validation data
    options; ``validation_default``: what happens without them ("draw": a fresh draw of
    the nnfs data set, as ``train``; "none": no validation data, as ``search``)."""
    data = p.add_argument_group(
        "data", "an nnfs data set, generated after np.random.seed(--seed), or your own file")
    source = data.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset", choices=DATASETS, default=None,
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
    if validation_default == "draw":
        description = ("the samples the result is also measured on (the book's chapter 11). "
                       "Default for an nnfs data set: a fresh draw of the same data set "
                       "with seed --seed + 1, as the book draws its test set; for --data: "
                       "none")
    else:
        description = ("the samples the result is also measured on (the book's chapter 11; "
                       "default: none)")
    val = p.add_argument_group("validation data", description)
    choice = val.add_mutually_exclusive_group()
    choice.add_argument("--validation-split", type=_args.float_in(0, 1, low_open=True),
                        default=None, metavar="F",
                        help="hold out the fraction F of the data, stratified: "
                             "round(F x its samples) of every class, picked at random with "
                             "--seed; the rest is trained on")
    choice.add_argument("--validation-data", metavar="FILE",
                        help="validation samples from a .npz or .csv file, in --data's "
                             "format, with the data's features and classes")
    if validation_default == "draw":
        choice.add_argument("--no-validation", action="store_true",
                            help="no validation data (for an nnfs data set: no fresh draw; "
                                 "the epochs then time the training alone, as in the "
                                 "book's chapter 10)")


def add_run_arguments(group, *, what, unit_option):
    """``--threads`` and the checkpoint options, in ``group``; ``what`` names the run
    ("search", "training"), ``unit_option`` the option that may grow on resume."""
    group.add_argument("--threads", type=_args.int_in(1), default=None, metavar="N",
                       help="at most N Numba threads (default: all, NUMBA_NUM_THREADS)")
    group.add_argument("--checkpoint", metavar="PATH",
                       help=f"save the {what}'s state to PATH (.npz, written atomically) "
                            f"every --checkpoint-every seconds and at the end; an existing "
                            f"file is never overwritten, unless it is the one resumed")
    group.add_argument("--checkpoint-every", type=_args.positive_float, default=None,
                       metavar="SECONDS", help="seconds between checkpoints (default: 60)")
    group.add_argument("--resume", metavar="PATH",
                       help=f"continue the {what} saved in PATH: repeat the options of the "
                            f"run that wrote it ({unit_option} may grow); it keeps "
                            f"checkpointing to PATH unless --checkpoint names another file")


def add_output_arguments(p):
    out = p.add_argument_group("output")
    out.add_argument("--save", metavar="PATH",
                     help="write the network to a model file (.npz, no pickle): load it "
                          "with fastnn.load, or use it with fastnn predict / fastnn plot; "
                          "an interrupted run saves the best so far")
    out.add_argument("--plot", metavar="PATH",
                     help="draw the decision regions over the training data and the "
                          "run's loss and accuracy to an image (PNG, SVG, PDF: by the "
                          "extension); needs matplotlib (pip install 'fastnn[plot]')")
    out.add_argument("--no-progress", action="store_true",
                     help="no progress bar (it goes to stderr)")
    out.add_argument("--json", action="store_true",
                     help="print the summary as one JSON object instead of text")


# -- data ------------------------------------------------------------------------------------


def load_data(args, parser):
    """``(X, y, info)``: the nnfs data set or ``--data``'s file, X in ``--dtype``, y int64,
    or a parser error naming the option.  ``info`` has the summary's data fields
    (``data``, ``samples``, ``samples_per_class``, ``classes``) and a ``description``."""
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
    X, y = _read_file(args.data, "--data", dtype, parser)
    classes = int(y.max()) + 1
    info = dict(data=args.data, samples=int(X.shape[0]), samples_per_class=None,
                classes=classes,
                description=f"{args.data} ({X.shape[0]} samples, {X.shape[1]} features, "
                            f"{classes} classes)")
    return X, y, info


def _read_file(path, option, dtype, parser):
    try:
        X, y = _package.load_data(path)
    except DataError as exc:
        parser.error(f"argument {option}: {path}: {exc}")
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        parser.error(f"argument {option}: {path}: X has values too large for {dtype.name}; "
                     "try --dtype float64")
    return X, y


def validation_data(args, parser, X, y, info, *, default):
    """``(X, y, validation, vinfo)``: the samples to train on (fewer with
    ``--validation-split``), the validation pair or None, and the summary's validation
    fields (``validation``: a description or None, ``validation_samples``).

    ``default`` ("draw" or "none"): without a validation option, an nnfs data set gets a
    fresh draw with seed ``--seed + 1`` (wrapping at 2**32), as the book's chapter 11
    draws its test set after training, or nothing."""
    none = dict(validation=None, validation_samples=None)
    dtype = np.dtype(args.dtype)
    if args.validation_split is not None:
        Xt, yt, Xv, yv = split(X, y, args.validation_split, args.seed, parser)
        info.update(samples=int(Xt.shape[0]), samples_per_class=None)
        percent = f"{100 * args.validation_split:.4g}%"
        return Xt, yt, (Xv, yv), dict(
            validation=f"{percent} of the data held out ({Xv.shape[0]} samples, stratified "
                       f"by class, seed {args.seed})",
            validation_samples=int(Xv.shape[0]))
    if args.validation_data is not None:
        Xv, yv = _read_file(args.validation_data, "--validation-data", dtype, parser)
        if Xv.shape[1] != X.shape[1]:
            parser.error(f"argument --validation-data: {args.validation_data}: has "
                         f"{Xv.shape[1]} features, but the data has {X.shape[1]}")
        if int(yv.max()) >= info["classes"]:
            parser.error(f"argument --validation-data: {args.validation_data}: has label "
                         f"{int(yv.max())}, but the data has {info['classes']} classes "
                         f"(0..{info['classes'] - 1})")
        return X, y, (Xv, yv), dict(
            validation=f"{args.validation_data} ({Xv.shape[0]} samples)",
            validation_samples=int(Xv.shape[0]))
    if default == "none" or getattr(args, "no_validation", False) or args.data is not None:
        return X, y, None, none
    seed = (args.seed + 1) % (MAX_SEED + 1)
    Xv, yv = _package.make_data(info["data"], info["samples_per_class"], info["classes"],
                                seed, dtype)
    return X, y, (Xv, yv), dict(
        validation=f"a fresh draw of the {info['data']} data with seed {seed} "
                   f"({Xv.shape[0]} samples), as the book's chapter 11",
        validation_samples=int(Xv.shape[0]))


def split(X, y, fraction, seed, parser=None):
    """Stratified hold-out: from every class, ``round(fraction * its samples)`` samples
    (halves rounded up) picked at random (``np.random.default_rng(seed)``) for
    validation; both parts keep the data's order.  Returns ``(X_train, y_train, X_val,
    y_val)``; a split leaving either part empty is a parser error."""
    rng = np.random.default_rng(seed)
    held = np.zeros(y.shape[0], dtype=bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        count = int(np.floor(fraction * members.size + 0.5))
        held[rng.permutation(members)[:count]] = True
    n_val = int(held.sum())
    if (n_val == 0 or n_val == y.shape[0]) and parser is not None:
        part = "validation" if n_val == 0 else "training"
        parser.error(f"argument --validation-split: {fraction:g} of {y.shape[0]} samples "
                     f"leaves no {part} samples (round(F x its samples) of every class are "
                     f"held out)")
    return X[~held], y[~held], X[held], y[held]


def check_layers(layers, features, classes, info, parser):
    if layers[0] != features:
        parser.error(f"argument --layers: the first size must be the number of features "
                     f"({features} in {info['data']}), got {layers[0]}")
    if layers[-1] != classes:
        parser.error(f"argument --layers: the last size must be the number of classes "
                     f"({classes} in {info['data']}), got {layers[-1]}")


# -- execution and checkpoints ----------------------------------------------------------------


def check_run_options(args, parser, kind, done_in):
    """``--threads`` and the checkpoint options, checked before any work (a checkpoint
    that cannot be written fails now, not when the first save comes due).  Returns the
    checkpoint path (``--checkpoint``, else ``--resume``'s) and, resuming, the work
    already done in the checkpoint, ``done_in(arrays)``; ``kind``: the kind of
    checkpoint the command resumes ("fastnn.search", "fastnn.train")."""
    if args.threads is not None and args.threads > numba.config.NUMBA_NUM_THREADS:
        parser.error(f"argument --threads: must be <= {numba.config.NUMBA_NUM_THREADS} "
                     f"(NUMBA_NUM_THREADS, set before starting to allow more), "
                     f"got {args.threads}")
    checkpoint = args.checkpoint if args.checkpoint is not None else args.resume
    if args.checkpoint_every is not None and checkpoint is None:
        parser.error("argument --checkpoint-every: needs --checkpoint PATH (or --resume PATH)")
    if checkpoint is not None:
        option = "--checkpoint" if args.checkpoint is not None else "--resume"
        check_output_path(checkpoint, option, parser)
        resuming_it = args.resume is not None and os.path.exists(args.resume) and (
            os.path.samefile(checkpoint, args.resume) if os.path.exists(checkpoint) else False)
        if os.path.exists(checkpoint) and not resuming_it:
            # never overwrite a file by accident: it may be hours of work, or data
            parser.error(f"argument --checkpoint: {checkpoint} already exists; add --resume "
                         f"{checkpoint} to continue that run, or delete it or pick "
                         f"another path to start afresh")
    done = None
    if args.resume is not None:
        try:
            arrays, meta = load_checkpoint(args.resume)
            if meta.get("kind") != kind:
                parser.error(f"argument --resume: {args.resume} is not a checkpoint of "
                             f"{kind} (it is {meta.get('kind')!r}'s)")
            done = done_in(arrays)
        except FileNotFoundError:
            parser.error(f"argument --resume: {args.resume}: no such file")
        except (OSError, KeyError, IndexError, ValueError) as exc:  # CheckpointError too
            parser.error(f"argument --resume: {exc}")
    return checkpoint, done


def option_error(exc, command, options, checkpoint_fields):
    """A parser error message naming the option behind ``exc``, a ValueError or
    TypeError raised by ``fastnn.COMMAND``: ``options`` maps the first word of the
    message (an argument name) to the option; a ``CheckpointError`` is blamed on
    ``--resume``, with the checkpoint's fields (``checkpoint_fields``: field -> the
    options that set it) renamed to those options."""
    message = str(exc)
    if isinstance(exc, CheckpointError):
        for name, option in checkpoint_fields.items():  # name the options that differ
            message = re.sub(rf"(?<=(: |; )){name} is ", f"{option} is ", message)
        return f"argument --resume: {message}"
    word = re.match(r"\w+", message)
    option = options.get(word.group() if word else "")
    return f"argument {option}: {message}" if option else f"fastnn.{command}: {message}"


@contextlib.contextmanager
def plain_warnings(command):
    """Warnings (a diverging run, a periodic checkpoint that could not be written) as one
    ``fastnn COMMAND: warning: ...`` line on stderr, when they happen: no source line."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).removeprefix(f"fastnn.{command}: ")
        print(f"fastnn {command}: warning: {text}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


# -- the summary -------------------------------------------------------------------------------


def report(args, summary, text, interrupted, checkpoint, reached):
    """Print the summary (``--json``: one JSON object, else ``text``) and, after Ctrl-C,
    what it is (``reached``) and how to continue; returns the exit code (130 when
    interrupted)."""
    print(json.dumps(summary) if args.json else text)
    if interrupted:
        print(f"interrupted: the summary is {reached}"
              + (f"; continue with the same command and --resume {checkpoint}"
                 if checkpoint else ""), file=sys.stderr)
        return 130
    return 0


def table(head, rows):
    """The text summary: the ``head`` lines, then ``name  value`` rows aligned."""
    width = max(len(name) for name, _ in rows) + 2
    return "\n".join(list(head) + [f"{name:<{width}}{value}" for name, value in rows])


def resumed_text(resumed_from, at, unit):
    return "no" if resumed_from is None else f"yes, from {resumed_from} at {unit} {at}"


def validation_rows(s):
    """The validation rows of a text summary (none without validation data)."""
    if s["val_loss"] is None:
        return []
    return [("validation loss", f"{s['val_loss']:.6f}"),
            ("validation accuracy", f"{s['val_accuracy']:.4f}")]



# -- model files -------------------------------------------------------------------------


def check_save(args, parser):
    """``--save PATH`` and ``--plot PATH``: their folders exist and are writable, they
    are not folders, and matplotlib is there for ``--plot`` (checked before any work, so
    a long run never ends unable to save)."""
    for option in ("save", "plot"):
        path = getattr(args, option, None)
        if path is not None:
            check_output_path(path, f"--{option}", parser)
    if getattr(args, "plot", None) is not None:
        check_plotting(args.plot, "--plot", parser)


def check_output_path(path, option, parser):
    """A file fastnn will write: not a folder, in a folder that exists and is writable
    (parser errors naming ``option``)."""
    where = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        parser.error(f"argument {option}: {path} is a directory")
    if not os.path.isdir(where):
        parser.error(f"argument {option}: directory {where} does not exist")
    if not os.access(where, os.W_OK | os.X_OK):
        parser.error(f"argument {option}: directory {where} is not writable")


def check_plotting(path, option, parser):
    """matplotlib is installed (headless: the Agg backend) and can write ``path``'s
    format."""
    try:
        import matplotlib
    except ImportError:
        parser.error(f"argument {option}: needs matplotlib, which is not installed: "
                     "pip install 'fastnn[plot]' (or pip install matplotlib)")
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    kind = os.path.splitext(path)[1].lstrip(".").lower()
    formats = FigureCanvasAgg.get_supported_filetypes()
    if kind not in formats:
        parser.error(f"argument {option}: {path}: unknown image format {kind!r}; use one "
                     f"of the extensions {', '.join('.' + f for f in sorted(formats))}")


def plot_model(args, parser, model, X, y, result):
    """Write ``--plot``'s picture (nothing without it); returns the path."""
    if getattr(args, "plot", None) is None:
        return None
    from .. import plot

    try:
        plot.save_figure(plot.figure(model, X, y, result), args.plot)
    except OSError as exc:
        parser.error(f"argument --plot: cannot write {args.plot}: {exc}")
    return args.plot


def save_model(args, parser, model, result, command, info, vinfo):
    """Write ``--save``'s model file (nothing without it), recording the command line's
    data and validation choices next to what the run recorded; returns the path."""
    if args.save is None:
        return None
    from ..modelfile import save

    data = {k: info.get(k) for k in ("data", "samples", "samples_per_class", "classes")}
    metadata = {"command": f"fastnn {command}", "data_source": data,
                "validation": vinfo.get("validation")}
    try:
        save(model, args.save, result=result, metadata=metadata)
    except OSError as exc:
        parser.error(f"argument --save: cannot write {args.save}: {exc}")
    return args.save
