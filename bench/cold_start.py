"""Cold start of fastnn, measured in fresh processes; prints a Markdown table.

Usage (from the repository root)::

    python bench/cold_start.py [--repeat 3] [--iterations 1000] [--json cold-start.json]

Measures, each in new Python processes (the median of ``--repeat`` runs, and min/max):

* interpreter start alone, ``import numba`` and ``import fastnn`` (for scale);
* for each entry point (``ENTRY_POINTS``), the time from the first line of the script
  (before anything is imported) to its result, and the whole process's wall time:

  - ``notebook cell``: the seed notebook's first cell with the fastnn import, verbatim
    (``nnfs.init()``, ``vertical_data(1000, 3)``, the 2-3-3 drop-in chain and its loss),
    timed to the printed loss;
  - ``MLP.evaluate``: ``fastnn.MLP([2, 64, 3], seed=0).evaluate(X, y)`` on nnfs
    ``spiral_data(100, 3)`` as float32;
  - ``search``: the first ``fastnn.search`` (the book's workload: ``spiral_data(100, 3)``,
    2-3-3, float32, ``--iterations`` steps, scale 0.05);
  - ``train``: the first ``fastnn.train`` (the book's chapter 10 run: ``spiral_data(100,
    3)``, 2-64-3, float32, Adam with learning rate 0.05 and decay 5e-7, ``--iterations``
    epochs);

  (a) with an empty Numba cache: the first run ever, compiling every kernel it uses;
  (b) again with that cache warm: loading the machine code instead;

* the command line, ``python -m fastnn search --iterations N --no-progress``, wall time
  on the warm cache (skipped if the installed fastnn has no ``search`` subcommand);
* under the table, per entry point, the functions whose compilation took longest in its
  first cold run (Numba's ``numba:compile`` events).

``--json PATH`` also writes every run's numbers, the versions and the CPU fastnn compiled
for (``fastnn.target_info()``, from the measured processes) to PATH.
``bench/test_bench_cold_start.py`` runs the same measurements (``measure``) once per
entry point and cache state inside ``pytest bench``, so they land in its JSON and report.

How the cache is controlled (and checked): fastnn compiles with ``cache=True`` and Numba
would normally keep the machine code next to fastnn's sources (``fastnn/__pycache__``,
``fastnn/kernels/__pycache__``) when they are writable, so a "first run" on a
development tree is usually not a first run at all.  Numba looks for a cache location
in a fixed order and a ``NUMBA_CACHE_DIR`` comes first, before the in-tree
``__pycache__`` (``numba.core.caching._CacheLocator``: ``UserProvidedCacheLocator``,
then ``InTreeCacheLocator``): every run below gets ``NUMBA_CACHE_DIR`` pointing at a
fresh temporary directory (one per cold run; the warm runs, and the command line, reuse
the entry point's last one), so the in-tree cache is neither read nor written.  Each run
also reports, from the dispatchers themselves, how many kernel signatures were compiled
(cache misses) or loaded (cache hits) and where their cache lives; a run fails if a
cold run loaded anything, a warm run compiled anything, or any cache file lives outside
that temporary directory.  Python's own bytecode (``.pyc``) is warm in every run, as it
is after any install.

The scripts import nothing before the entry point does: the compile listener is
registered by an import hook as soon as fastnn imports Numba, so the notebook cell runs
exactly as written (``nnfs.init()`` before Numba is first imported, as in the notebook).
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
DEFAULT_ITERATIONS = 1000
STATES = ("cold", "warm")  # (a) empty NUMBA_CACHE_DIR, (b) the same directory, filled

#: first lines of every script: the clock starts, and numba:compile events are collected
#: (inclusive seconds per function) once fastnn imports Numba
PRELUDE = r"""
import time
_t0 = time.perf_counter()
import importlib.abc as _abc, importlib.machinery as _machinery, sys as _sys
_compiles, _started = {}, {}


def _listen(event):
    class CompileTimes(event.Listener):
        def on_start(self, ev):
            _started[id(ev.data["dispatcher"]), str(ev.data["args"])] = time.perf_counter()

        def on_end(self, ev):
            d = ev.data["dispatcher"]
            took = time.perf_counter() - _started.pop((id(d), str(ev.data["args"])))
            name = d.py_func.__module__ + "." + d.py_func.__qualname__
            _compiles[name] = _compiles.get(name, 0.0) + took

    event.register("numba:compile", CompileTimes())


class _OnNumbaEvent(_abc.MetaPathFinder):  # runs _listen right after numba.core.event loads
    def find_spec(self, name, path, target=None):
        if name != "numba.core.event":
            return None
        _sys.meta_path.remove(self)
        spec = _machinery.PathFinder.find_spec(name, path)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _listen(module)

        spec.loader.exec_module = exec_module
        return spec


_sys.meta_path.insert(0, _OnNumbaEvent())
"""

#: the clock stops; one JSON line with the cache statistics of every fastnn dispatcher
EPILOGUE = r"""
_t_result = time.perf_counter() - _t0
import json as _json
from numba.core.dispatcher import Dispatcher as _Dispatcher
_seen = {}
for _name, _module in list(_sys.modules.items()):
    if _name == "fastnn" or _name.startswith("fastnn."):
        for _obj in list(vars(_module).values()):
            if isinstance(_obj, _Dispatcher):
                _seen[id(_obj)] = _obj
# kernels built per shape family live only in this registry (if the fastnn has one)
for _obj in getattr(_sys.modules.get("fastnn._config"), "KERNELS", {}).values():
    _seen[id(_obj)] = _obj
_hits = _misses = 0
_paths = set()
for _obj in _seen.values():
    _stats = _obj.stats if _obj.signatures else None
    if _stats is not None and _stats.cache_path:  # disk-cached (not an inlined helper)
        _hits += sum(_stats.cache_hits.values())
        _misses += sum(_stats.cache_misses.values())
        _paths.add(_stats.cache_path)
_fastnn = _sys.modules["fastnn"]
_target = _fastnn.target_info() if hasattr(_fastnn, "target_info") else None
print(_json.dumps(dict(result_s=_t_result, import_s=globals().get("_t_import"),
                       hits=_hits, misses=_misses, paths=sorted(_paths), result=RESULT,
                       compiles=_compiles, target=_target)))
"""

#: the seed notebook's first cell with the fastnn import, exactly as a user runs it
NOTEBOOK_CELL = """\
import numpy as np
import nnfs
from nnfs.datasets import vertical_data
nnfs.init()
from fastnn import Dense_Layer, Activation_Relu, Activation_Softmax, Loss_CategoricalCrossentropy
X, y = vertical_data(samples=1000, classes=3)
layer1 = Dense_Layer(2, 3); activation1 = Activation_Relu()
layer1.forward(X); activation1.forward(layer1.output)
layer2 = Dense_Layer(3, 3); activation2 = Activation_Softmax()
layer2.forward(activation1.output); activation2.forward(layer2.output)
loss = Loss_CategoricalCrossentropy()
loss_value = loss.forward(activation2.output, y)
print(activation2.output); print(loss_value)
"""

EVALUATE = """\
import fastnn
_t_import = time.perf_counter() - _t0
import numpy as np
from fastnn.cli import make_data
X, y = make_data("spiral", 100, 3, 0, np.float32)  # nnfs spiral_data(100, 3), float32
loss, accuracy = fastnn.MLP([2, 64, 3], seed=0).evaluate(X, y)
"""

SEARCH = """\
import fastnn
_t_import = time.perf_counter() - _t0
import numpy as np
from fastnn.cli import make_data
X, y = make_data("spiral", 100, 3, 0, np.float32)
result = fastnn.search(fastnn.MLP([2, 3, 3], seed=0), X, y, iterations=ITERATIONS,
                       scale=0.05, seed=1)
"""

TRAIN = """\
import fastnn
_t_import = time.perf_counter() - _t0
import numpy as np
from fastnn.cli import make_data
X, y = make_data("spiral", 100, 3, 0, np.float32)
result = fastnn.train(fastnn.MLP([2, 64, 3], seed=0), X, y, learning_rate=0.05, decay=5e-7,
                      epochs=ITERATIONS, seed=1)
"""

#: entry point: (script body, what the epilogue reports as its result)
ENTRY_POINTS = {
    "notebook cell": (NOTEBOOK_CELL, "float(loss_value)"),
    "MLP.evaluate": (EVALUATE, "[float(loss), float(accuracy)]"),
    "search": (SEARCH, "[float(result.loss), int(result.evaluations)]"),
    "train": (TRAIN, "[float(result.loss), int(result.epochs)]"),
}

IMPORT_SCRIPT = r"""
import time
t0 = time.perf_counter()
import MODULE
print(time.perf_counter() - t0)
"""


class ColdStartError(Exception):
    """A run failed, or its cache was not in the state the measurement needs."""


def script(entry, iterations=DEFAULT_ITERATIONS):
    """The whole program run for ``entry``: prelude, the entry point, epilogue."""
    body, result = ENTRY_POINTS[entry]
    body = body.replace("ITERATIONS", str(int(iterations)))
    return PRELUDE + body + EPILOGUE.replace("RESULT", result)


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
        raise ColdStartError(f"failed ({done.returncode}): {' '.join(args)[:200]}\n"
                             f"{done.stderr}")
    return wall, done.stdout


def measure(entry, cache_dir, state, iterations=DEFAULT_ITERATIONS):
    """One fresh process running ``entry`` with ``NUMBA_CACHE_DIR=cache_dir``; its
    numbers as a dict (``result_s``: first line to result, ``wall_s``: the process,
    ``import_s``, ``misses``/``hits``: signatures compiled/loaded, ``compiles``).

    ``state`` is what the cache must be: ``"cold"`` (nothing loaded, something compiled)
    or ``"warm"`` (nothing compiled, something loaded); ``ColdStartError`` otherwise, or
    when a cache file lives outside ``cache_dir``."""
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, not {state!r}")
    wall, out = _run([sys.executable, "-c", script(entry, iterations)], _env(cache_dir))
    info = json.loads(out.strip().splitlines()[-1])
    outside = [p for p in info.pop("paths")
               if not Path(p).resolve().is_relative_to(Path(cache_dir).resolve())]
    if outside:
        raise ColdStartError(f"{entry}: numba used a cache outside "
                             f"NUMBA_CACHE_DIR={cache_dir}: {outside}")
    if state == "cold" and (info["hits"] or not info["misses"]):
        raise ColdStartError(f"{entry}: the cold run was not cold: {info['hits']} "
                             f"signatures loaded, {info['misses']} compiled")
    if state == "warm" and (info["misses"] or not info["hits"]):
        raise ColdStartError(f"{entry}: the warm run compiled: {info['misses']} "
                             f"signatures compiled, {info['hits']} loaded")
    info.update(entry=entry, state=state, wall_s=wall)
    return info


def slowest(compiles, k=5):
    """The ``k`` longest ``(function, seconds)`` of a run's ``compiles``, longest first."""
    return sorted(compiles.items(), key=lambda kv: -kv[1])[:k]


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


def _measure_all(n, iters, tmp):
    """{entry: {"cold": [runs], "warm": [runs]}}, and the search's warm cache dir."""
    runs, warm_cache = {}, {}
    for entry in ENTRY_POINTS:
        cold = []
        for i in range(n):
            cache = Path(tmp) / f"{entry.replace(' ', '_').replace('.', '_')}-{i}"
            cache.mkdir()
            cold.append(measure(entry, cache, "cold", iters))
        warm_cache[entry] = cache
        warm = [measure(entry, cache, "warm", iters) for _ in range(n)]
        runs[entry] = {"cold": cold, "warm": warm}
    return runs, warm_cache["search"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (default 3)")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help=f"search steps (default {DEFAULT_ITERATIONS})")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write every run's numbers to PATH (JSON)")
    args = parser.parse_args(argv)
    n, iters = max(args.repeat, 1), args.iterations
    load_before = os.getloadavg()
    rows, scale = [], {}
    try:
        scale["python_s"] = [_run([sys.executable, "-c", "pass"], _env())[0]
                             for _ in range(n)]
        rows.append(_row("`python -c pass` (interpreter start and exit), wall",
                         scale["python_s"]))
        for module in ("numba", "fastnn"):
            script_ = IMPORT_SCRIPT.replace("MODULE", module)
            done = [_run([sys.executable, "-c", script_], _env()) for _ in range(n)]
            scale[f"import_{module}_s"] = [float(out) for _, out in done]
            scale[f"import_{module}_wall_s"] = [wall for wall, _ in done]
            rows.append(_row(f"`import {module}`, in process", scale[f"import_{module}_s"]))
            rows.append(_row(f"`import {module}`, process wall",
                             scale[f"import_{module}_wall_s"]))

        with tempfile.TemporaryDirectory(prefix="fastnn-cold-") as tmp:
            runs, search_cache = _measure_all(n, iters, tmp)
            for entry, by_state in runs.items():
                cold, warm = by_state["cold"], by_state["warm"]
                what = f"`{entry}`" + (f" ({iters} steps)" if entry == "search" else "")
                note_cold = (f"empty NUMBA_CACHE_DIR: {cold[0]['misses']} kernel signatures "
                             "compiled, 0 loaded")
                note_warm = f"same cache, warm: {warm[0]['hits']} signatures loaded, 0 compiled"
                rows.append(_row(f"{what}, (a) empty cache, in process",
                                 [i["result_s"] for i in cold], note_cold))
                rows.append(_row(f"{what}, (a) empty cache, process wall",
                                 [i["wall_s"] for i in cold]))
                rows.append(_row(f"{what}, (b) warm cache, in process",
                                 [i["result_s"] for i in warm], note_warm))
                rows.append(_row(f"{what}, (b) warm cache, process wall",
                                 [i["wall_s"] for i in warm]))
                if warm[0]["import_s"] is not None:
                    rows.append(_row("  of which `import fastnn` (b)",
                                     [i["import_s"] for i in warm]))

            cli = [sys.executable, "-m", "fastnn", "search", "--iterations", str(iters),
                   "--no-progress"]
            cli_wall = None
            if _has_search_command():
                _run(cli, _env(search_cache))  # any kernel the command line adds to the cache
                cli_wall = [_run(cli, _env(search_cache))[0] for _ in range(n)]
                rows.append(_row(f"`python -m fastnn search --iterations {iters} "
                                 "--no-progress`, warm cache, process wall", cli_wall))
            else:
                rows.append("| `python -m fastnn search` | - | - | - | 0 | no `search` "
                            "subcommand in this fastnn: skipped |")
    except ColdStartError as e:
        print(f"cold_start.py: {e}", file=sys.stderr)
        return 1

    load_after = os.getloadavg()
    import numba  # only for the versions line
    import numpy

    target = runs["search"]["warm"][0].get("target")
    cpu = _describe_target(target)
    print(f"<!-- generated by bench/cold_start.py --repeat {n} --iterations {iters}: "
          f"{cpu}, Python {sys.version.split()[0]}, numba {numba.__version__}, numpy "
          f"{numpy.__version__}, {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after -->")
    print("| measurement (fresh process each run) | median | min | max | runs | notes |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("Slowest compiles in the first cold run (seconds, inclusive of the functions each "
          "one compiles for its callees):")
    for entry, by_state in runs.items():
        top = slowest(by_state["cold"][0]["compiles"])
        print(f"* `{entry}`: "
              + (", ".join(f"`{name.removeprefix('fastnn.')}` {t:.1f}" for name, t in top)
                 or "none recorded"))
    if args.json:
        data = {"tool": "bench/cold_start.py", "repeat": n, "iterations": iters,
                "python": sys.version.split()[0], "numba": numba.__version__,
                "numpy": numpy.__version__, "cpus": os.cpu_count(),
                "load_average": {"before": load_before[0], "after": load_after[0]},
                "target": target, "scale": scale, "cli_warm_wall_s": cli_wall,
                "entry_points": runs}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


def _describe_target(target):
    """``AMD EPYC (znver4, 512-bit vectors)`` from ``fastnn.target_info()``."""
    if not target:
        return "CPU not recorded"
    width = target.get("vector_width")
    width = f"{width}-bit vectors" if width else "LLVM's default vector width"
    return f"{target.get('cpu', '?')} ({target.get('llvm_cpu', '?')}, {width})"


if __name__ == "__main__":
    sys.exit(main())
