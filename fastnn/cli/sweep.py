"""``fastnn sweep SPEC``: ``fastnn.sweep`` on the grid a JSON or TOML file describes.

SPEC holds the mapping ``fastnn.grid`` takes (option names in Python spelling, a list
of values per option; in JSON also a list of such mappings, their grids one after
another); ``{"range": [START, STOP]}`` (or ``[START, STOP, STEP]``) stands for
``range(...)``, since neither format has one::

    kind = "search"
    dataset = "spiral"
    layers = [2, 8, 3]
    seed = {range = [0, 32]}
    scale = [0.02, 0.05]
    iterations = 2000000

The jobs run in this process one after another, on ``--workers N`` (a Dask
``LocalCluster`` of N single-threaded worker processes) or on the Dask scheduler at
``--scheduler ADDRESS`` (its workers must see ``--directory`` and any data file at the
same paths).  The table is printed sorted by validation loss (the loss without
validation data) and written to ``DIRECTORY/results.csv``.  Exit status: 0 when every
job is done, 1 if any failed (its row says why), 2 for bad arguments or specs, 130
after Ctrl-C (the table so far is printed; run the same command again to continue).
"""

import json
import math
import os
import sys

from ..sweeps import run as _run
from ..sweeps.spec import SpecError
from ..sweeps.table import RESULT_COLUMNS
from . import _args

HELP = "many searches or trainings from a JSON/TOML grid, here or on a Dask cluster"
_DASK_MISSING = ("needs dask.distributed, which is not installed: pip install "
                 "'fastnn[dask]' (or pip install 'dask[distributed]')")


def add_arguments(p):
    p.epilog = ("Exit status: 0 when every job is done, 1 if any failed, 2 for bad arguments "
                "or specs, 130 when interrupted by Ctrl-C (run the same command again to "
                "continue).")
    p.add_argument("spec", metavar="SPEC",
                   help="a .json or .toml file: the options of fastnn search/train in "
                        "Python spelling (kind = \"search\" or \"train\"), each a value or "
                        "a list of values; the jobs are their cross product")
    p.add_argument("--directory", default="sweep", metavar="DIR",
                   help="where the jobs' checkpoints, model files and records go, and "
                        "results.csv (default: %(default)s)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_args.int_in(1), default=None, metavar="N",
                       help="run on a Dask LocalCluster of N worker processes, one thread "
                            "each (default: in this process, one job after another)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster of this scheduler (tcp://host:8786); "
                            "its workers must see DIR and the data files at the same paths")
    p.add_argument("--no-resume", action="store_true",
                   help="run every job afresh, deleting its earlier checkpoint, model file "
                        "and record (default: finished jobs are kept, interrupted ones "
                        "continue from their checkpoints)")
    p.add_argument("--checkpoint-every", type=_args.positive_float, default=30.0,
                   metavar="SECONDS",
                   help="seconds between a job's checkpoints (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (stderr)")
    p.add_argument("--json", action="store_true",
                   help="print the table as JSON (a list of rows, spec order)")


def run(args, parser):
    specs = load_spec(args.spec, parser)
    client = cluster = None
    if args.workers is not None or args.scheduler is not None:
        client, cluster = _connect(args, parser)
    try:
        try:
            table = _run.sweep(specs, directory=args.directory, executor=client,
                               resume=not args.no_resume, progress=not args.no_progress,
                               checkpoint_every=args.checkpoint_every)
        except (SpecError, ValueError, TypeError) as exc:
            parser.error(f"argument SPEC: {args.spec}: {exc}")
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    rows = table.to_dict("records") if hasattr(table, "to_dict") else table
    rows = [{k: _plain(v) for k, v in row.items()} for row in rows]
    if args.json:
        print(json.dumps(rows))
    else:
        print(format_table(rows))
        print(f"results: {os.path.join(os.path.abspath(args.directory), 'results.csv')}")
    if getattr(table, "attrs", {}).get("interrupted") or any(
            r["status"] == "cancelled" for r in rows):
        return 130
    return 1 if any(r["status"] == "error" for r in rows) else 0


def load_spec(path, parser):
    """The job specs of a JSON or TOML file (a parser error naming SPEC if it cannot be
    read)."""
    from ..sweeps.spec import grid

    if not os.path.isfile(path):
        parser.error(f"argument SPEC: {path}: no such file")
    kind = os.path.splitext(path)[1].lower()
    try:
        if kind == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                try:
                    import tomli as tomllib
                except ImportError:
                    parser.error("argument SPEC: reading TOML on Python 3.10 needs tomli: "
                                 "pip install tomli (or use a .json spec)")
            with open(path, "rb") as f:
                data = tomllib.load(f)
        elif kind == ".json":
            with open(path) as f:
                data = json.load(f)
        else:
            parser.error(f"argument SPEC: {path}: expected a .json or .toml file")
    except (OSError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError
        parser.error(f"argument SPEC: {path}: {exc}")
    grids = data if isinstance(data, list) else [data]
    specs = []
    for i, mapping in enumerate(grids):
        if not isinstance(mapping, dict):
            parser.error(f"argument SPEC: {path}: expected a mapping of options (or, in "
                         f"JSON, a list of them), got {type(mapping).__name__}"
                         + (f" at index {i}" if isinstance(data, list) else ""))
        try:
            specs += grid(**{key: _ranges(value) for key, value in mapping.items()})
        except (ValueError, TypeError) as exc:
            parser.error(f"argument SPEC: {path}: {exc}")
    if not specs:
        parser.error(f"argument SPEC: {path}: no jobs")
    return specs


def _ranges(value):
    """``{"range": [start, stop(, step)]}`` -> ``range(...)``."""
    if isinstance(value, dict) and set(value) == {"range"}:
        bounds = value["range"]
        if not (isinstance(bounds, list) and 1 <= len(bounds) <= 3
                and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)):
            raise ValueError(f"range takes [STOP], [START, STOP] or [START, STOP, STEP] "
                             f"integers, got {bounds!r}")
        return range(*bounds)
    return value


def _connect(args, parser):
    """A Dask client: of a new LocalCluster (``--workers``), or of ``--scheduler``."""
    try:
        import distributed
    except ImportError:
        option = "--workers" if args.workers is not None else "--scheduler"
        parser.error(f"argument {option}: {_DASK_MISSING}")
    if args.scheduler is not None:
        try:
            return distributed.Client(args.scheduler, timeout="30s"), None
        except (OSError, TimeoutError) as exc:
            parser.error(f"argument --scheduler: cannot connect to {args.scheduler}: {exc}")
    cluster = local_cluster(args.workers)
    return distributed.Client(cluster), cluster


def local_cluster(workers):
    """A Dask ``LocalCluster`` of ``workers`` processes, one thread each, whose Numba uses
    one thread too (Dask's nanny sets OMP_NUM_THREADS=1 but not NUMBA_NUM_THREADS).  The
    dashboard's server on any free port: ``None`` still takes 8787, and a second cluster
    warns that it is in use."""
    import distributed

    return distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
        env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})


def _plain(value):
    """A table cell as JSON can hold it (pandas' NA and NaN as None)."""
    if value is None:
        return None
    try:
        if value != value or value is getattr(sys.modules.get("pandas"), "NA", object()):
            return None
    except (TypeError, ValueError):  # pandas.NA compared: ambiguous
        return None
    if hasattr(value, "item"):  # NumPy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_table(rows):
    """The rows as text, best first: sorted by validation loss (the loss without
    validation data), failed and cancelled jobs last; the spec fields that vary from
    job to job, then the results."""
    spec_fields = [k for k in rows[0] if k not in RESULT_COLUMNS] if rows else []
    varying = [k for k in spec_fields if len({json.dumps(r[k]) for r in rows}) > 1]

    def key(row):
        score = row["val_loss"] if row["val_loss"] is not None else row["loss"]
        return (row["status"] != "done", math.inf if score is None else score)

    columns = ["job", "status", *varying, "loss", "accuracy", "val_loss", "val_accuracy",
               "steps", "epochs", "seconds"]
    columns = [c for c in columns if c in ("job", "status") or any(r[c] is not None
                                                                   for r in rows)]
    lines = [[c for c in columns]]
    errors = []
    for row in sorted(rows, key=key):
        lines.append([_format(row[c], c) for c in columns])
        if row["status"] == "error":
            errors.append(f"{row['job']}: {row['error']}")
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    text = ["  ".join(cell.rjust(w) if i > 1 else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
            for line in lines]
    return "\n".join(text + [f"error in {e}" for e in errors])


def _format(value, column):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if column == "seconds" else f"{value:.6g}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
