"""``fastnn predict``: a saved network's predictions on a data file.

``--model`` is any model file fastnn writes (``--save``, ``model.save``,
``fastnn.save``); ``--data`` a ``.csv`` (the model's feature columns, optionally the
label last) or ``.npz`` (``X``, optionally ``y``).  Each row's predicted class and class
probabilities go to ``--output FILE`` (CSV) or, without it, to stdout as CSV.  When the
file has labels, the loss, the accuracy and the confusion matrix are printed: on stdout
with ``--output``, on stderr when stdout carries the predictions.  ``--json`` prints one
JSON object with all of it instead.
"""

import csv
import io
import json
import sys

import numpy as np

from . import _common
from .data import DataError, load_inputs

HELP = "predict classes and probabilities with a saved model (--save's model file)"


def add_arguments(p):
    p.add_argument("--model", required=True, metavar="FILE",
                   help="the model file (.npz, written by --save, model.save or fastnn.save)")
    p.add_argument("--data", required=True, metavar="FILE",
                   help="the samples: a .csv with the model's feature columns (and "
                        "optionally the integer label last; a header line allowed) or a "
                        ".npz with X (and optionally y)")
    p.add_argument("--output", metavar="FILE",
                   help="write the predictions as CSV to FILE (columns: predicted, "
                        "prob_0 .. prob_{C-1}); default: stdout")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: predictions, probabilities and, with "
                        "labels, loss, accuracy and the confusion matrix")


def run(args, parser):
    if args.output is not None:
        _common.check_output_path(args.output, "--output", parser)
    net, info, X, y = load_model_and_data(args, parser)
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(X, dtype=net.dtype)
    if not np.isfinite(X).all():
        parser.error(f"argument --data: {args.data}: has values too large for the model's "
                     f"{net.dtype.name}")

    probabilities = net.forward(X)
    predicted = net.predict(X)
    report = {"model": args.model, "network": _describe(net), "samples": int(X.shape[0]),
              "features": int(X.shape[1]), "classes": int(net.n_classes),
              "made_by": (info.get("made_by") or {}).get("how")}
    if y is not None:
        loss, accuracy = net.evaluate(X, y)
        matrix = np.zeros((net.n_classes, net.n_classes), dtype=np.int64)
        np.add.at(matrix, (y, predicted), 1)
        report.update(loss=float(loss), accuracy=float(accuracy),
                      confusion_matrix=matrix.tolist())
    if args.json:
        report.update(predictions=predicted.tolist(),
                      probabilities=probabilities.astype(np.float64).tolist())
        if args.output is not None:
            _write_csv(args.output, predicted, probabilities, parser)
            report["output"] = args.output
        print(json.dumps(report))
        return 0
    if args.output is not None:
        _write_csv(args.output, predicted, probabilities, parser)
        print(_summary(report, f"wrote {X.shape[0]} predictions to {args.output}"))
        return 0
    sys.stdout.write(_csv_text(predicted, probabilities))
    if y is not None:
        print(_summary(report, None), file=sys.stderr)
    return 0


def load_model_and_data(args, parser):
    """``(network, file info, X, y or None)`` from ``--model`` and ``--data``, or a parser
    error naming the option (the data's against the model's features and classes)."""
    from ..modelfile import ModelFileError, load_network

    try:
        net, info = load_network(args.model)
    except FileNotFoundError:
        parser.error(f"argument --model: {args.model}: no such file")
    except IsADirectoryError:
        parser.error(f"argument --model: {args.model} is a directory")
    except (ModelFileError, OSError) as exc:
        parser.error(f"argument --model: {exc}")
    try:
        X, y = load_inputs(args.data, net.n_inputs)
    except DataError as exc:
        parser.error(f"argument --data: {args.data}: {exc} (model {_describe(net)})")
    if y is not None and int(y.max()) >= net.n_classes:
        parser.error(f"argument --data: {args.data}: has label {int(y.max())}, but the model "
                     f"has {net.n_classes} classes (0..{net.n_classes - 1})")
    return net, info, X, y


def _describe(net):
    return f"{'-'.join(map(str, net.sizes))}, {net.dtype.name}: {net.n_inputs} features, " \
           f"{net.n_classes} classes"


def _csv_text(predicted, probabilities):
    digits = 9 if probabilities.dtype == np.float32 else 17  # exact round trips
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["predicted", *(f"prob_{c}" for c in range(probabilities.shape[1]))])
    for label, row in zip(predicted.tolist(), probabilities.tolist(), strict=True):
        writer.writerow([label, *(f"{p:.{digits}g}" for p in row)])
    return out.getvalue()


def _write_csv(path, predicted, probabilities, parser):
    try:
        with open(path, "w", newline="") as f:
            f.write(_csv_text(predicted, probabilities))
    except OSError as exc:
        parser.error(f"argument --output: cannot write {path}: {exc}")


def _summary(report, wrote):
    lines = [f"fastnn predict: model {report['model']} ({report['network']}), "
             f"{report['samples']} samples"]
    if wrote:
        lines.append(wrote)
    if "loss" in report:
        lines += [f"loss      {report['loss']:.6f}", f"accuracy  {report['accuracy']:.4f}",
                  "confusion matrix (rows: true class, columns: predicted class):"]
        matrix = np.array(report["confusion_matrix"])
        width = max(len(str(matrix.max())), len(str(matrix.shape[0] - 1)), 4)
        lines.append(" " * 6 + "".join(f"{c:>{width + 1}}" for c in range(matrix.shape[0])))
        for c, row in enumerate(matrix):
            lines.append(f"{c:>6}" + "".join(f"{v:>{width + 1}}" for v in row))
    return "\n".join(lines)
