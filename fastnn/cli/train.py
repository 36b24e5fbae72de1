"""``fastnn train``: ``fastnn.train``, the book's gradient training (chapters 9-15)
compiled whole, on an nnfs data set or on the user's own ``.npz``/``.csv`` file.

With no options it is the book's chapter 10 run: ``spiral_data(samples=100,
classes=3)`` after ``np.random.seed(0)`` (what ``nnfs.init()`` does), a 2-64-3 network
whose weights are drawn from that seeded stream right after the data, as the script's
``Layer_Dense`` objects draw them (``data.book_model``), ``Optimizer_Adam(learning_rate=
0.05, decay=5e-7)`` and 10,001 full-batch epochs (the book's ``range(10001)``); and, as
chapter 11 does after training, validated on a fresh draw of the data set (seed 1),
here after every epoch (``--no-validation``: none).

Defaults, and why:

* ``--epochs 10001``: the book's run, and a sensible first run -- about 0.2-0.3 s
  compiled, long enough to reach the book's ~0.96 training accuracy on spiral data;
* ``--optimizer adam`` with ``--learning-rate 0.05 --decay 5e-7``: the chapter 10 run
  (``Optimizer_Adam``'s own defaults are 0.001 and 0, which take far longer on this
  problem).  The other optimizers, and every other hyperparameter, default to the book
  classes' own defaults (sgd and adagrad learning rate 1.0, rmsprop 0.001; decay 0;
  momentum 0; epsilon 1e-7; rho 0.9; beta_1 0.9, beta_2 0.999);
* ``--l1``/``--l2`` take one value for every dense layer or one per layer: the book's
  chapters 14-19 regularise the hidden layer only, ``--l2 5e-4,0``.

A hyperparameter the chosen optimizer does not have (``--rho`` with adam, say) is an
error, not silently ignored.  Exit status as ``fastnn search``: 0 when done (early stops
and a diverged run included: the summary's ``stopped`` says which), 2 for bad options or
data, 130 on Ctrl-C after printing the summary of what was reached (resumable with
``--resume`` when checkpointing).
"""

import math

from .. import __version__
from ..kernels import train as kt
from ..optimizers import HYPERPARAMETERS, OPTIMIZERS, optimizer_settings
from ..train import train
from . import _args, _common
from .data import book_model

#: the one-line description ``fastnn --help`` shows
HELP = "gradient training (fastnn.train): the book's chapter 10 run by default"
#: the optimizer hyperparameters with options of their own besides learning rate and decay
_HYPER = ("momentum", "epsilon", "rho", "beta_1", "beta_2")
#: what --optimizer adam changes from the class defaults: the book's chapter 10 run
CHAPTER_10 = dict(learning_rate=0.05, decay=5e-7)
DEFAULT_EPOCHS = 10_001


def add_arguments(p):
    p.epilog = ("Exit status: 0 when done (early stops and a diverged run included: see "
                "'stopped'), 2 for bad arguments or data, 130 when interrupted by Ctrl-C "
                "(after printing the summary of what was reached).")
    _common.add_data_arguments(p, validation_default="draw")

    net = p.add_argument_group("network and regularisation")
    net.add_argument("--layers", type=_args.layer_sizes, default=None, metavar="SIZES",
                     help="layer sizes, inputs first, ReLU between them, softmax and "
                          "cross-entropy at the end: the first must equal the data's "
                          "features, the last its classes (default: FEATURES,64,CLASSES, "
                          "i.e. 2,64,3 on spiral and vertical, as the book)")
    net.add_argument("--dropout", type=_args.float_list(_args.float_in(0, 1)), default=None,
                     metavar="RATE",
                     help="the book's Layer_Dropout after every hidden layer's ReLU, with "
                          "this rate, or one rate per hidden layer, comma-separated (0: "
                          "none); masks from a generator seeded by --seed (default: none)")
    for kind, example in (("l1", "e.g. --l1 5e-4,0: the hidden layer only"),
                          ("l2", "--l2 5e-4,0: the hidden layer only, as the book's "
                                 "chapters 14-19 regularise")):
        net.add_argument(f"--{kind}", type=_args.float_list(_args.non_negative_float),
                         default=None, metavar="L",
                         help=f"the book's {kind.upper()} regularisation "
                              f"(weight_regularizer_{kind} and bias_regularizer_{kind}): one "
                              f"value for every dense layer, or one per layer, "
                              f"comma-separated ({example}; default: 0)")
    net.add_argument("--seed", type=_args.seed, default=0,
                     help="seed for the data, the initial weights (drawn after the data, "
                          "as the book's scripts draw them), the validation split or draw, "
                          "the batches' shuffle and the dropout masks; the same seed gives "
                          "the same result (default: %(default)s)")
    net.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                     help="floating-point type of the data and parameters (default: "
                          "%(default)s, as nnfs.init())")

    opt = p.add_argument_group(
        "optimizer", "the book's optimizers (chapter 10); a hyperparameter the optimizer "
                     "does not have is an error")
    opt.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="adam",
                     help="(default: %(default)s)")
    opt.add_argument("--learning-rate", type=_args.positive_float, default=None,
                     metavar="LR",
                     help="the book's learning_rate (default: 0.05 with adam, as the book's "
                          "chapter 10 run; otherwise the optimizer class's default: sgd 1.0, "
                          "adagrad 1.0, rmsprop 0.001)")
    opt.add_argument("--decay", type=_args.non_negative_float, default=None,
                     help="learning-rate decay, lr / (1 + decay * updates) (default: 5e-7 "
                          "with adam, the chapter 10 run; otherwise 0)")
    opt.add_argument("--momentum", type=_args.float_in(0, 1), default=None,
                     help="sgd only: momentum in [0, 1) (default: 0)")
    opt.add_argument("--epsilon", type=_args.positive_float, default=None,
                     help="adagrad, rmsprop, adam: added to the root of the cache "
                          "(default: 1e-7)")
    opt.add_argument("--rho", type=_args.float_in(0, 1, low_open=True), default=None,
                     help="rmsprop only: the cache's decay rate in (0, 1) (default: 0.9)")
    opt.add_argument("--beta-1", type=_args.float_in(0, 1, low_open=True), default=None,
                     metavar="BETA_1", help="adam only: in (0, 1) (default: 0.9)")
    opt.add_argument("--beta-2", type=_args.float_in(0, 1, low_open=True), default=None,
                     metavar="BETA_2", help="adam only: in (0, 1) (default: 0.999)")

    run_group = p.add_argument_group("training")
    run_group.add_argument("--epochs", type=_args.int_in(1, 2 ** 62, "2**62"),
                           default=DEFAULT_EPOCHS, metavar="N",
                           help="epochs in all, a resumed run included (default: "
                                "%(default)s, the book's chapter 10 run, ~0.2 s compiled)")
    run_group.add_argument("--batch-size", type=_args.int_in(1), default=None, metavar="N",
                           help="mini-batches of N samples, reshuffled every epoch from "
                                "--seed, as the book's chapter 19 (default: the whole data "
                                "set per step, as chapters 10-18)")
    run_group.add_argument("--target-loss", type=_args.finite_float, default=None,
                           metavar="LOSS",
                           help="stop once the monitored loss is <= LOSS: the validation "
                                "loss when there is validation data, else the training loss")
    run_group.add_argument("--patience", type=_args.int_in(1), default=None, metavar="N",
                           help="stop after N epochs without improvement of the monitored "
                                "loss, keeping the best parameters")

    execution = p.add_argument_group("execution (none of these change the result)")
    _common.add_run_arguments(execution, what="training", unit_option="--epochs")
    _common.add_output_arguments(p)


#: the first word of a ValueError/TypeError from fastnn.train -> the option to blame
_TRAIN_OPTIONS = {
    "optimizer": "--optimizer", "learning_rate": "--learning-rate", "decay": "--decay",
    "momentum": "--momentum", "epsilon": "--epsilon", "rho": "--rho", "beta_1": "--beta-1",
    "beta_2": "--beta-2", "epochs": "--epochs", "batch_size": "--batch-size",
    "weight_regularizer_l1": "--l1", "bias_regularizer_l1": "--l1",
    "weight_regularizer_l2": "--l2", "bias_regularizer_l2": "--l2", "dropout": "--dropout",
    "target_loss": "--target-loss", "patience": "--patience", "seed": "--seed",
    "threads": "--threads", "checkpoint_every": "--checkpoint-every", "checkpoint": "--resume",
    "X": "--data", "y": "--data", "model": "--layers", "dtype": "--dtype",
}

#: fields of a training checkpoint's metadata (checked on resume) -> the options
_CHECKPOINT_FIELDS = {
    "layer_sizes": "--layers", "regularizers": "--l1/--l2", "keep": "--dropout",
    "data": _common.DATA_FIELD,
    "optimizer": "--optimizer or its hyperparameters", "batch_size": "--batch-size",
    "target_loss": "--target-loss", "patience": "--patience", "seed": "--seed",
    "dtype": "--dtype",
}


def _epochs_done(arrays):
    return int(arrays["istate"][kt.EPOCH])


def _check_hyperparameters(args, parser):
    """The optimizer's keyword arguments: the hyperparameters given (one the optimizer
    does not have is an error), and the chapter 10 run's for adam."""
    kind = args.optimizer
    for name in _HYPER:
        if getattr(args, name) is not None and name not in HYPERPARAMETERS[kind]:
            owners = [k for k, names in HYPERPARAMETERS.items() if name in names]
            parser.error(f"argument --{name.replace('_', '-')}: applies to --optimizer "
                         f"{' or '.join(owners)}, not {kind}")
    given = {name: getattr(args, name) for name in ("learning_rate", "decay", *_HYPER)
             if getattr(args, name) is not None}
    if kind == "adam":
        given = {**CHAPTER_10, **given}
    return given


def _per_layer(values, count, option, what, parser):
    """One value for every layer (a float), or the list of ``count`` values; None
    stays None."""
    if values is None or len(values) == 1:
        return None if values is None else values[0]
    if len(values) != count:
        parser.error(f"argument {option}: gives {len(values)} values, but the network has "
                     f"{count} {what}; give one value for all, or one per {what[:-1]}")
    return values


def run(args, parser):
    checkpoint, resumed_at = _common.check_run_options(args, parser, "fastnn.train", _epochs_done)
    _common.check_save(args, parser)
    plan = prepare(args, parser)
    summary, description, result = execute(args, parser, plan, checkpoint, resumed_at)
    return _common.report(args, summary, _summary_text(summary, description),
                          result.interrupted, checkpoint, "the training reached so far")


def prepare(args, parser):
    """Everything before the training (the data, the validation data, the network with
    the book's initial weights, the optimizer, regularisation and dropout settings),
    checked: a ``_common.Plan``, or a parser error.  ``fastnn.sweep`` calls it on the
    client for every job before anything runs."""
    hyper = _check_hyperparameters(args, parser)
    X, y, info = _common.load_data(args, parser)
    # the initial weights are drawn after the data set, as the book's scripts draw them
    drawn = ()
    if args.data is None:
        drawn = (info["data"], info["samples_per_class"], info["classes"])
    X, y, validation, vinfo = _common.validation_data(args, parser, X, y, info,
                                                      default="draw")
    features, classes = X.shape[1], info["classes"]
    layers = args.layers or [features, 64, classes]
    _common.check_layers(layers, features, classes, info, parser)
    dense = len(layers) - 1
    if args.dropout is not None and dense < 2:
        parser.error(f"argument --dropout: needs a hidden layer; the network "
                     f"{'-'.join(map(str, layers))} has none (see --layers)")
    dropout = _per_layer(args.dropout, dense - 1, "--dropout", "hidden layers", parser)
    l1 = _per_layer(args.l1, dense, "--l1", "dense layers", parser)
    l2 = _per_layer(args.l2, dense, "--l2", "dense layers", parser)
    try:
        settings = optimizer_settings(OPTIMIZERS[args.optimizer](**hyper))
    except (ValueError, TypeError) as exc:
        parser.error(_common.option_error(exc, "train", _TRAIN_OPTIONS, _CHECKPOINT_FIELDS))
    model = book_model(layers, args.dtype, args.seed, *drawn)
    options = dict(hyper=hyper, settings=settings, dropout=dropout, l1=l1, l2=l2)
    return _common.Plan(X, y, validation, info, vinfo, layers, model, options)


def execute(args, parser, plan, checkpoint, resumed_at):
    """Run the training ``plan`` describes; ``(summary, description, result)``: the
    summary's fields (what ``--json`` prints), the data's description and the
    ``TrainResult``.  Writes ``--save``'s and ``--plot``'s files."""
    X, y, info, vinfo, model = plan.X, plan.y, dict(plan.info), plan.vinfo, plan.model
    hyper, settings, dropout, l1, l2 = (plan.options[k] for k in
                                        ("hyper", "settings", "dropout", "l1", "l2"))
    try:
        with _common.plain_warnings("train"):
            result = train(
                model, X, y, optimizer=args.optimizer, **hyper, epochs=args.epochs,
                batch_size=args.batch_size, weight_regularizer_l1=l1, bias_regularizer_l1=l1,
                weight_regularizer_l2=l2, bias_regularizer_l2=l2, dropout=dropout,
                validation=plan.validation, target_loss=args.target_loss,
                patience=args.patience, seed=args.seed, progress=not args.no_progress,
                checkpoint=checkpoint,
                checkpoint_every=60.0 if args.checkpoint_every is None else args.checkpoint_every,
                resume=args.resume, threads=args.threads)
    except (ValueError, TypeError) as exc:
        blame = dict(_TRAIN_OPTIONS, validation="--validation-data"
                     if args.validation_data is not None else "--validation-split")
        parser.error(_common.option_error(exc, "train", blame, _CHECKPOINT_FIELDS))
    except OSError as exc:  # writing the checkpoint (its folder was checked beforehand)
        if checkpoint is None:
            raise
        parser.error(f"argument --checkpoint: cannot write {checkpoint}: {exc}")
    saved = _common.save_model(args, parser, model, result, "train", info, vinfo)
    plotted = _common.plot_model(args, parser, model, X, y, result)
    description = info.pop("description")
    per_epoch = result.seconds_per_epoch
    summary = dict(
        info, features=X.shape[1], **vinfo, layers=plan.layers, parameters=model.n_params,
        dtype=args.dtype, dropout=dropout, l1=l1, l2=l2, optimizer=args.optimizer,
        hyperparameters={k: v for k, v in settings.items()
                         if k not in ("kind", "iterations", "current_learning_rate")},
        epochs=args.epochs, batch_size=args.batch_size, target_loss=args.target_loss,
        patience=args.patience,
        loss=result.loss, accuracy=result.accuracy, data_loss=result.data_loss,
        regularization_loss=result.regularization_loss, val_loss=result.val_loss,
        val_accuracy=result.val_accuracy, epochs_done=result.epochs, steps=result.steps,
        final_learning_rate=result.learning_rate, seconds=result.seconds,
        us_per_epoch=per_epoch * 1e6 if math.isfinite(per_epoch) else None,
        mode=result.mode, seed=result.seed, stopped=result.stopped,
        interrupted=result.interrupted, resumed=args.resume is not None,
        resumed_from=args.resume, resumed_at_epoch=resumed_at, checkpoint=checkpoint,
        saved=saved, plot=plotted, fastnn=__version__)
    return summary, description, result


def _number_or_list(value):
    return ",".join(f"{v:g}" for v in value) if isinstance(value, list) else f"{value:g}"


def _summary_text(s, description):
    sizes = "-".join(str(n) for n in s["layers"])
    names = {"learning_rate": "learning rate"}
    hyper = ", ".join(f"{names.get(k, k)} {v:g}" for k, v in s["hyperparameters"].items())
    batches = "full batch" if s["batch_size"] is None else f"batches of {s['batch_size']}"
    extras = [f"target loss {s['target_loss']:g}" if s["target_loss"] is not None else "",
              f"patience {s['patience']}" if s["patience"] is not None else ""]
    head = [f"fastnn train: {description}, network {sizes} ({s['parameters']} parameters, "
            f"{s['dtype']})",
            f"{s['optimizer']} ({hyper}), {s['epochs']} epochs, {batches}"
            + "".join(f", {e}" for e in extras if e)]
    regularisation = [f"{name} {_number_or_list(s[key])}" for name, key in
                      (("L1", "l1"), ("L2", "l2"), ("dropout", "dropout"))
                      if s[key] is not None]
    if regularisation:
        head.append("regularisation: " + ", ".join(regularisation))
    head.append(f"validation: {s['validation'] or 'none'}")
    rows = [("loss", f"{s['loss']:.6f}"), ("accuracy", f"{s['accuracy']:.4f}")]
    if s["l1"] is not None or s["l2"] is not None:
        rows += [("data loss", f"{s['data_loss']:.6f}"),
                 ("regularization loss", f"{s['regularization_loss']:.6f}")]
    rows += [
        *_common.validation_rows(s),
        ("epochs", str(s["epochs_done"])),
        ("steps", str(s["steps"])),
        ("learning rate", f"{s['final_learning_rate']:.6g} (at the last update)"),
        ("seconds", f"{s['seconds']:.3f}"),
        ("us/epoch", "-" if s["us_per_epoch"] is None else f"{s['us_per_epoch']:.1f}"),
        ("mode", s["mode"]),
        ("seed", str(s["seed"])),
        ("stopped", s["stopped"]),
        ("resumed", _common.resumed_text(s["resumed_from"], s["resumed_at_epoch"], "epoch")),
    ]
    if s["checkpoint"]:
        rows.append(("checkpoint", s["checkpoint"]))
    if s["saved"]:
        rows.append(("model file", s["saved"]))
    if s["plot"]:
        rows.append(("plot", s["plot"]))
    rows.append(("fastnn", s["fastnn"]))
    return _common.table(head, rows)
