"""Full book training runs over many seeds: fastnn's classes against the book's.

Training at the book's learning rates is chaotic (a 1e-7 relative change of the initial
weights moves the epoch-100 accuracy by 0.02), so two correct implementations agree on a
full run only statistically.  This runs the book's chapter scripts (``tests/book_scripts.py``:
the reader's script with its class definitions replaced by an import) with
``np.random.seed(seed)`` after ``nnfs.init()`` for each seed, once with the book's classes
and once with fastnn's, and compares the medians of the final training (and validation)
accuracy and loss against issue 9's bar: accuracy within 0.05, loss within 0.1.

    python -m bench.seed_statistics                       # ch10, ch11, seeds 1-12
    python -m bench.seed_statistics --scripts ch14 ch15 --jobs 2
    python -m bench.seed_statistics --scripts ch18 --epochs 1000

Each run is its own process; ``--jobs`` of them run at once.  Exit status 1 when a median
misses the bar.
"""

import argparse
import importlib.util
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"


def _book_scripts():
    spec = importlib.util.spec_from_file_location("fastnn_book_scripts",
                                                  TESTS_DIR / "book_scripts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The bar (issue 9): medians over the seeds within these of the book classes'.
ACCURACY_TOLERANCE = 0.05
LOSS_TOLERANCE = 0.1


def final_metrics(scripts, lines):
    """{'acc', 'loss'[, 'val_acc', 'val_loss']} from a run's printed lines: the last
    training line's, and the validation line's when there is one."""
    metrics = {}
    for label, fields in scripts.parse_lines(lines):
        if label == "validation":
            metrics["val_acc"], metrics["val_loss"] = fields["acc"], fields["loss"]
        elif label == "epoch":
            metrics["acc"], metrics["loss"] = fields["acc"], fields["loss"]
    if "acc" not in metrics:
        raise RuntimeError(f"no training line in {lines[-3:]!r}")
    return metrics


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scripts", nargs="+", default=["ch10", "ch11"],
                        choices=["ch10", "ch11", "ch14", "ch15", "ch18"])
    parser.add_argument("--seeds", type=int, default=12, help="seeds 1..N (default 12)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the book's epochs (default: the book's)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or (args.epochs is not None and args.epochs < 1):
        parser.error("--seeds, --jobs and --epochs must be positive")

    scripts = _book_scripts()
    env = scripts.subprocess_env()
    env.update(NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    tasks = [(name, classes, seed) for name in args.scripts for seed in range(1, args.seeds + 1)
             for classes in ("reference", "fastnn")]

    def run(task):
        name, classes, seed = task
        params = dict(scripts.BOOK[name])
        if args.epochs is not None:
            params["epochs"] = args.epochs
        result = scripts.run(name, classes=classes, seed=seed, env=env, timeout=3600,
                             **params)
        return final_metrics(scripts, result.lines), result.seconds

    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(tasks, pool.map(run, tasks), strict=True))
    print(f"{len(tasks)} runs in {time.perf_counter() - start:.0f} s, {args.jobs} at a time, "
          f"seeds 1-{args.seeds}, epochs {args.epochs or 'as the book'}")

    ok = True
    for name in args.scripts:
        print(f"\n{name}: medians over {args.seeds} seeds (per-run seconds: median)")
        keys = list(results[(name, "reference", 1)][0])
        header = f"  {'classes':10}" + "".join(f"{k:>10}" for k in keys) + f"{'seconds':>10}"
        print(header)
        medians = {}
        for classes in ("reference", "fastnn"):
            runs = [results[(name, classes, s)] for s in range(1, args.seeds + 1)]
            medians[classes] = {k: statistics.median(m[k] for m, _ in runs) for k in keys}
            seconds = statistics.median(t for _, t in runs)
            print(f"  {classes:10}" + "".join(f"{medians[classes][k]:10.3f}" for k in keys)
                  + f"{seconds:10.2f}")
        for k in keys:
            diff = abs(medians["fastnn"][k] - medians["reference"][k])
            tol = ACCURACY_TOLERANCE if k.endswith("acc") else LOSS_TOLERANCE
            verdict = "ok" if diff <= tol else "MISSES THE BAR"
            ok &= diff <= tol
            print(f"  {k:>8}: |median difference| {diff:.3f} (bar {tol}) {verdict}")
        for classes in ("reference", "fastnn"):
            accs = " ".join(f"{results[(name, classes, s)][0]['acc']:.3f}"
                            for s in range(1, args.seeds + 1))
            print(f"  {classes} acc by seed: {accs}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
