"""``fastnn plot``: a saved network's decision regions over a data file, and the loss
and accuracy of the run that made it (the model file holds its history), as one image.

Headless (matplotlib's Agg backend); the format follows ``-o``'s extension.  Without
matplotlib: exit 2 with how to install it.
"""

from . import _common
from .predict import load_model_and_data

HELP = "draw a saved model's decision regions over a data file, and its run's loss curves"


def add_arguments(p):
    p.add_argument("--model", required=True, metavar="FILE",
                   help="the model file (.npz, written by --save, model.save or fastnn.save)")
    p.add_argument("--data", required=True, metavar="FILE",
                   help="the samples to draw: a .csv with the model's feature columns (and "
                        "optionally the label last) or a .npz with X (and optionally y)")
    p.add_argument("-o", "--output", required=True, metavar="IMAGE",
                   help="the image to write (.png, .svg, .pdf, ...)")
    p.add_argument("--title", default=None, help="the decision-region panel's title")


def run(args, parser):
    _common.check_output_path(args.output, "--output", parser)
    _common.check_plotting(args.output, "--output", parser)
    net, info, X, y = load_model_and_data(args, parser)
    from .. import plot

    net.made_by = {k: info.get(k) for k in ("made_by", "data", "metrics", "history")}
    try:
        plot.save_figure(plot.figure(net, X, y, title=args.title), args.output)
    except OSError as exc:
        parser.error(f"argument --output: cannot write {args.output}: {exc}")
    history = "with" if info.get("history") is not None else "without (none in the file)"
    print(f"fastnn plot: wrote {args.output}: decision regions of {args.model} over "
          f"{X.shape[0]} samples of {args.data}, {history} the run's loss and accuracy")
    return 0
