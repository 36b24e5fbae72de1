"""The ``fastnn`` command line (also ``python -m fastnn``): a module per subcommand.

* ``search`` (``search.py``; the default when no subcommand is given): ``fastnn.search``,
  the compiled random search, on nnfs data or the user's own file;
* ``train`` (``train.py``): ``fastnn.train``, the book's gradient training; with no
  options, the book's chapter 10 run (spiral data, 2-64-3, Adam, 10,001 epochs),
  validated on a fresh draw of the data as chapter 11;
* ``sweep`` (``sweep.py``): ``fastnn.sweep``, many searches or trainings from a JSON or
  TOML grid, in this process or on a Dask cluster (``--workers``, ``--scheduler``);
* ``predict`` (``predict.py``): a saved model's predictions on a data file, and its
  loss, accuracy and confusion matrix when the file has labels;
* ``plot`` (``plot.py``): a saved model's decision regions over a data file and its
  run's loss curves, as an image;
* ``demo`` (``demo.py``): the book's search as a plain Python loop, timed against NumPy;
* ``warmup`` (``warmup.py``): compile every kernel once into Numba's disk cache.

Each subcommand module has ``HELP`` (its one-line description), ``add_arguments(parser)``
and ``run(args, parser)``, registered in ``_COMMANDS``; ``_args.py`` holds the argument
types they share, ``data.py`` the data sets and file loading, and ``_common.py`` what
``search`` and ``train`` share: the data and validation options and their loading, the
execution and checkpoint options and checks, errors reported against the option that
caused them, the summary table.  ``main`` returns the process exit code: 0, 2 for bad
arguments or data (argparse's ``error: argument --option: ...``, never a traceback),
130 when interrupted by Ctrl-C (``search`` and ``train`` print the summary of what was
reached first).

``search`` is the default command (it was ``demo``): the README's first command runs the
main job, and ``fastnn --iterations 100000`` means the search.

The names other code imports from ``fastnn.cli`` (``make_data``, ``load_data``,
``perturbation_search``, ``numpy_loss_fn``, ...) are re-exported here, and the
subcommands call ``make_data``/``load_data`` through this package at call time, so that
replacing them here (``monkeypatch.setattr(fastnn.cli, "make_data", ...)`` in
``tests/test_cli.py::test_interrupt_before_the_search_exits_130``) reaches the commands.
"""

import argparse
import sys

from .. import __version__
from . import demo, plot, predict, search, sweep, train, warmup
from .data import MAX_SEED, NPZ_KEYS, DataError, load_data, make_data
from .demo import DATASETS, numpy_loss_fn, perturbation_search
from .search import PARALLEL, SEARCH_DATASETS

__all__ = [
    "DATASETS", "MAX_SEED", "NPZ_KEYS", "PARALLEL", "SEARCH_DATASETS", "DataError",
    "build_parser", "load_data", "main", "make_data", "numpy_loss_fn", "perturbation_search",
]

#: name -> (add_arguments, run, help), in the order ``fastnn --help`` lists them
_COMMANDS = {name: (module.add_arguments, module.run, module.HELP)
             for name, module in (("search", search), ("train", train),
                                  ("sweep", sweep), ("predict", predict), ("plot", plot),
                                  ("demo", demo),
                                  ("warmup", warmup))}
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
