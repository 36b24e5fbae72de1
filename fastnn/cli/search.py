"""``fastnn search`` (the default command): ``fastnn.search``, the compiled random search,
on an nnfs data set (``spiral``, ``vertical``, or ``sine`` turned into classes) or on the
user's own ``.npz``/``.csv`` file (``--data``), measured on held-out data too: a fresh
draw of the nnfs data set by default (as the book's chapter 11), ``--validation-split``,
``--validation-data``, or none (``--no-validation``; the default for ``--data``).
``--save`` writes the best network to a model file.

A tqdm progress bar on stderr, a summary on stdout (``--json`` for scripts), checkpoints
(``--checkpoint``, ``--resume``); Ctrl-C stops it with the best parameters so far (exit
130 after the summary).  Errors from ``fastnn.search`` are reported against the option
that caused them (``error: argument --chains: ...``, exit 2).

``--checkpoint`` never overwrites an existing file unless it is the one being resumed:
rerunning a command after Ctrl-C would otherwise silently throw away a long run
(``tests/test_cli.py::test_checkpoint_and_resume_match_an_uninterrupted_run``).
"""

import math

from .. import __version__
from ..network import MLP
from ..search import search
from . import _args, _common

SEARCH_DATASETS = _common.DATASETS
#: --parallel's words -> fastnn.search(parallel=...)
PARALLEL = {"auto": None, "off": False, "chains": "chains", "candidates": "candidates"}
#: the one-line description ``fastnn --help`` shows
HELP = "compiled random search (fastnn.search) on nnfs data or your own file"


def add_arguments(p):
    p.epilog = ("Exit status: 0 when done (early stops included), 2 for bad arguments or data, "
                "130 when interrupted by Ctrl-C (after printing the best-so-far summary).")
    _common.add_data_arguments(p, validation_default="draw")

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
    execution.add_argument("--parallel", choices=tuple(PARALLEL), default="auto",
                           help="auto: chains in parallel when there are several, a step's "
                                "candidates when they are costly enough; off: serial; chains; "
                                "candidates (default: %(default)s)")
    _common.add_run_arguments(execution, what="search", unit_option="--iterations")
    _common.add_output_arguments(p)


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
    "data": _common.DATA_FIELD,
    **{name: f"--{name}" for name in ("dtype", "strategy", "scale", "candidates", "chains",
                                      "seed", "adapt", "patience")},
}


def _steps_done(arrays):
    return int(arrays["step"].max())


def run(args, parser):
    checkpoint, resumed_at = _common.check_run_options(args, parser, "fastnn.search", _steps_done)
    _common.check_save(args, parser)
    plan = prepare(args, parser)
    summary, description, result = execute(args, parser, plan, checkpoint, resumed_at)
    return _common.report(args, summary, _summary_text(summary, description),
                          result.interrupted, checkpoint, "the best found so far")


def prepare(args, parser):
    """Everything before the search (the data, the validation data, the network and the
    search's options), checked: a ``_common.Plan``, or a parser error.  ``fastnn.sweep``
    calls it on the client for every job before anything runs."""
    if args.adapt and args.strategy != "perturb":
        parser.error("argument --adapt: applies to --strategy perturb only")
    X, y, info = _common.load_data(args, parser)
    X, y, validation, vinfo = _common.validation_data(args, parser, X, y, info,
                                                      default="draw")
    features, classes = X.shape[1], info["classes"]
    layers = args.layers or [features, 3, classes]
    _common.check_layers(layers, features, classes, info, parser)
    model = MLP(layers, seed=args.seed, dtype=args.dtype)
    options = dict(strategy=args.strategy, iterations=args.iterations, scale=args.scale,
                   candidates=args.candidates, chains=args.chains, adapt=args.adapt,
                   target_loss=args.target_loss, patience=args.patience)
    return _common.Plan(X, y, validation, info, vinfo, layers, model, options)


def execute(args, parser, plan, checkpoint, resumed_at):
    """Run the search ``plan`` describes; ``(summary, description, result)``: the
    summary's fields (what ``--json`` prints), the data's description and the
    ``SearchResult``.  Writes ``--save``'s and ``--plot``'s files."""
    X, y, info, vinfo, model, options = (plan.X, plan.y, dict(plan.info), plan.vinfo,
                                         plan.model, plan.options)
    try:
        with _common.plain_warnings("search"):
            result = search(
                model, X, y, seed=args.seed, **options, parallel=PARALLEL[args.parallel],
                threads=args.threads, progress=not args.no_progress, checkpoint=checkpoint,
                checkpoint_every=60.0 if args.checkpoint_every is None else args.checkpoint_every,
                resume=args.resume, validation=plan.validation)
    except (ValueError, TypeError) as exc:
        blame = dict(_SEARCH_OPTIONS, validation="--validation-data"
                     if args.validation_data is not None else "--validation-split")
        parser.error(_common.option_error(exc, "search", blame, _CHECKPOINT_FIELDS))
    except OSError as exc:  # writing the checkpoint (its folder was checked beforehand)
        if checkpoint is None:
            raise
        parser.error(f"argument --checkpoint: cannot write {checkpoint}: {exc}")
    rate = result.evaluations_per_second
    saved = _common.save_model(args, parser, model, result, "search", info, vinfo)
    plotted = _common.plot_model(args, parser, model, X, y, result)
    description = info.pop("description")
    summary = dict(
        info, features=X.shape[1], layers=plan.layers, parameters=model.n_params,
        dtype=args.dtype, **options,
        loss=result.loss, accuracy=result.accuracy, **vinfo, val_loss=result.val_loss,
        val_accuracy=result.val_accuracy, iteration=result.iteration,
        steps=result.steps, evaluations=result.evaluations, seconds=result.seconds,
        evaluations_per_second=rate if math.isfinite(rate) else None, mode=result.mode,
        seed=result.seed, chain=result.chain, stopped=result.stopped,
        interrupted=result.interrupted, resumed=args.resume is not None,
        resumed_from=args.resume, resumed_at_step=resumed_at, checkpoint=checkpoint,
        saved=saved, plot=plotted, fastnn=__version__)
    return summary, description, result


def _summary_text(s, description):
    sizes = "-".join(str(n) for n in s["layers"])
    extras = [f"{s['candidates']} candidates" if s["candidates"] > 1 else "",
              f"{s['chains']} chains" if s["chains"] > 1 else "",
              "adapt" if s["adapt"] else "",
              f"target loss {s['target_loss']:g}" if s["target_loss"] is not None else "",
              f"patience {s['patience']}" if s["patience"] is not None else ""]
    rate = s["evaluations_per_second"]
    rows = [
        ("loss", f"{s['loss']:.6f}"),
        ("accuracy", f"{s['accuracy']:.4f}"),
        *_common.validation_rows(s),
        ("best iteration", "none (no step improved on the start)" if s["iteration"] is None
         else str(s["iteration"])),
        ("steps", str(s["steps"])),
        ("evaluations", str(s["evaluations"])),
        ("seconds", f"{s['seconds']:.3f}"),
        ("evaluations/s", "-" if rate is None else f"{rate:,.0f}"),
        ("mode", s["mode"]),
        ("seed", str(s["seed"])),
        ("stopped", s["stopped"]),
        ("resumed", _common.resumed_text(s["resumed_from"], s["resumed_at_step"], "step")),
    ]
    if s["checkpoint"]:
        rows.append(("checkpoint", s["checkpoint"]))
    if s["saved"]:
        rows.append(("model file", s["saved"]))
    if s["plot"]:
        rows.append(("plot", s["plot"]))
    head = [f"fastnn search: {description}, network {sizes} ({s['parameters']} parameters, "
            f"{s['dtype']})",
            f"{s['strategy']}, {s['iterations']} iterations, scale {s['scale']:g}"
            + "".join(f", {e}" for e in extras if e)]
    if s["validation"]:
        head.append(f"validation: {s['validation']}")
    return _common.table(head, rows)
