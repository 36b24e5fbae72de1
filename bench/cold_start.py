"""Cold start of fastnn, measured in fresh processes; prints a Markdown table.

Usage (from the repository root)::

    python bench/cold_start.py [--repeat 3] [--iterations 1000]

Measures, each in new Python processes (the median of ``--repeat`` runs, and min/max):

* interpreter start alone, ``import numba`` and ``import fastnn`` (for scale);
* time to the first result of ``fastnn.search`` (the book's workload: nnfs
  ``spiral_data(100, 3)``, 2-3-3, float32, ``--iterations`` steps, scale 0.05), from
  the first line of the script (before ``import fastnn``) to the returned result, and
  the whole process's wall time:

  (a) with an empty Numba cache: the first run ever, compiling every kernel it uses;
  (b) again with that cache warm: loading the machine code instead;

* the command line, ``python -m fastnn search --iterations N --no-progress``, wall time
  on the warm cache (skipped if the installed fastnn has no ``search`` subcommand);
* under the table, the functions whose compilation took longest in the first cold run
  (Numba's ``numba:compile`` events).

How the cache is controlled (and checked): fastnn compiles with ``cache=True`` and Numba
would normally keep the machine code next to fastnn's sources (``fastnn/__pycache__``,
``fastnn/kernels/__pycache__``) when they are writable, so a "first run" on a
development tree is usually not a first run at all.  Numba looks for a cache location
in a fixed order and a ``NUMBA_CACHE_DIR`` comes first, before the in-tree
``__pycache__`` (``numba.core.caching._CacheLocator``: ``UserProvidedCacheLocator``,
then ``InTreeCacheLocator``): every run below gets ``NUMBA_CACHE_DIR`` pointing at a
fresh temporary directory (one per cold run; the warm runs and the command line reuse
the last one), so the in-tree cache is neither read nor written.  Each run also
reports, from the dispatchers themselves, how many kernel signatures were compiled
(cache misses) or loaded (cache hits) and where their cache lives; the script fails if
a cold run loaded anything, a warm run compiled anything, or any cache file lives
outside that temporary directory.  Python's own bytecode (``.pyc``) is warm in every
run, as it is after any install.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the search, timed from the script's first line; prints one JSON line
SEARCH_SCRIPT = r"""
import time
t0 = time.perf_counter()
from numba.core import event  # numba is imported by fastnn anyway: t_import includes it

compiles, started = {}, {}


class CompileTimes(event.Listener):  # inclusive compile seconds per function
    def on_start(self, ev):
        started[id(ev.data["dispatcher"]), str(ev.data["args"])] = time.perf_counter()

    def on_end(self, ev):
        d = ev.data["dispatcher"]
        took = time.perf_counter() - started.pop((id(d), str(ev.data["args"])))
        name = d.py_func.__module__ + "." + d.py_func.__qualname__
        compiles[name] = compiles.get(name, 0.0) + took


event.register("numba:compile", CompileTimes())
import fastnn
t_import = time.perf_counter() - t0
import json, sys
import numpy as np
from fastnn.cli import make_data
X, y = make_data("spiral", 100, 3, 0, np.float32)
result = fastnn.search(fastnn.MLP([2, 3, 3], seed=0), X, y, iterations=ITERATIONS,
                       scale=0.05, seed=1)
t_result = time.perf_counter() - t0
from numba.core.dispatcher import Dispatcher
hits = misses = 0
paths = set()
for name, module in list(sys.modules.items()):
    if not name.startswith("fastnn"):
        continue
    for obj in vars(module).values():
        stats = obj.stats if isinstance(obj, Dispatcher) and obj.signatures else None
        if stats is not None and stats.cache_path:  # disk-cached (not an inlined helper)
            hits += sum(stats.cache_hits.values())
            misses += sum(stats.cache_misses.values())
            paths.add(stats.cache_path)
print(json.dumps(dict(import_s=t_import, result_s=t_result, hits=hits, misses=misses,
                      paths=sorted(paths), loss=result.loss, evaluations=result.evaluations,
                      compiles=compiles)))
"""

IMPORT_SCRIPT = r"""
import time
t0 = time.perf_counter()
import MODULE
print(time.perf_counter() - t0)
"""


def _env(cache_dir=None):
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    return env


def _run(args, env):
    """(wall seconds, stdout) of one process."""
    t = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(args)}\n{done.stderr}")
    return wall, done.stdout


def _search(cache_dir, iterations):
    script = SEARCH_SCRIPT.replace("ITERATIONS", str(int(iterations)))
    wall, out = _run([sys.executable, "-c", script], _env(cache_dir))
    info = json.loads(out.strip().splitlines()[-1])
    outside = [p for p in info["paths"]
               if not Path(p).resolve().is_relative_to(Path(cache_dir).resolve())]
    if outside:
        sys.exit(f"numba used a cache outside NUMBA_CACHE_DIR={cache_dir}: {outside}")
    info["wall_s"] = wall
    return info


def _has_search_command():
    done = subprocess.run([sys.executable, "-m", "fastnn", "search", "--help"], cwd=ROOT,
                          env=_env(), stdin=subprocess.DEVNULL, capture_output=True)
    return done.returncode == 0


def _fmt(seconds):
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.0f} ms"


def _row(name, values, note=""):
    values = list(values)
    return (f"| {name} | {_fmt(statistics.median(values))} | {_fmt(min(values))} | "
            f"{_fmt(max(values))} | {len(values)} | {note} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (default 3)")
    parser.add_argument("--iterations", type=int, default=1000,
                        help="search steps (default 1000)")
    args = parser.parse_args(argv)
    n, iters = max(args.repeat, 1), args.iterations
    load_before = os.getloadavg()
    rows = []

    python = [_run([sys.executable, "-c", "pass"], _env())[0] for _ in range(n)]
    rows.append(_row("`python -c pass` (interpreter start and exit), wall", python))
    for module in ("numba", "fastnn"):
        script = IMPORT_SCRIPT.replace("MODULE", module)
        runs = [_run([sys.executable, "-c", script], _env()) for _ in range(n)]
        rows.append(_row(f"`import {module}`, in process", [float(out) for _, out in runs]))
        rows.append(_row(f"`import {module}`, process wall", [wall for wall, _ in runs]))

    with tempfile.TemporaryDirectory(prefix="fastnn-cold-") as tmp:
        cold = []
        for i in range(n):
            cache = Path(tmp) / f"cache{i}"
            cache.mkdir()
            info = _search(cache, iters)
            if info["hits"] or not info["misses"]:
                sys.exit(f"cold run was not cold: {info}")
            cold.append(info)
        warm_cache = cache
        warm = []
        for _ in range(n):
            info = _search(warm_cache, iters)
            if info["misses"] or not info["hits"]:
                sys.exit(f"warm run compiled: {info}")
            warm.append(info)
        what = f"first `fastnn.search` result ({iters} steps)"
        note_cold = (f"empty NUMBA_CACHE_DIR: {cold[0]['misses']} kernel signatures compiled, "
                     f"0 loaded")
        note_warm = (f"same cache, warm: {warm[0]['hits']} signatures loaded, 0 compiled")
        rows.append(_row(f"{what}, (a) empty cache, in process",
                         [i["result_s"] for i in cold], note_cold))
        rows.append(_row(f"{what}, (a) empty cache, process wall", [i["wall_s"] for i in cold]))
        rows.append(_row(f"{what}, (b) warm cache, in process",
                         [i["result_s"] for i in warm], note_warm))
        rows.append(_row(f"{what}, (b) warm cache, process wall", [i["wall_s"] for i in warm]))
        rows.append(_row("  of which `import fastnn` (b)", [i["import_s"] for i in warm]))

        cli = [sys.executable, "-m", "fastnn", "search", "--iterations", str(iters),
               "--no-progress"]
        if _has_search_command():
            _run(cli, _env(warm_cache))  # any kernel the command line adds to the cache
            runs = [_run(cli, _env(warm_cache))[0] for _ in range(n)]
            rows.append(_row(f"`python -m fastnn search --iterations {iters} --no-progress`, "
                             "warm cache, process wall", runs))
        else:
            rows.append("| `python -m fastnn search` | - | - | - | 0 | no `search` "
                        "subcommand in this fastnn: skipped |")

    load_after = os.getloadavg()
    import numba  # only for the versions line
    import numpy

    print(f"<!-- generated by bench/cold_start.py --repeat {n} --iterations {iters}: "
          f"Python {sys.version.split()[0]}, numba {numba.__version__}, numpy "
          f"{numpy.__version__}, {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after -->")
    print("| measurement (fresh process each run) | median | min | max | runs | notes |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    slowest = sorted(cold[0]["compiles"].items(), key=lambda kv: -kv[1])[:5]
    if slowest:
        print()
        print("Slowest compiles in the first cold run (seconds, inclusive of the functions "
              "each one compiles for its callees): "
              + ", ".join(f"`{name.removeprefix('fastnn.')}` {t:.1f}" for name, t in slowest)
              + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
