"""Cold start per entry point, in fresh processes: ``bench/cold_start.py``'s measurements,
once each, recorded in the benchmark JSON.

Run from the repository root (part of ``pytest bench``)::

    python -m pytest bench/test_bench_cold_start.py --benchmark-json=cold.json
    python bench/report.py cold.json      # the "cold start (fresh process)" table

One benchmark per entry point (``cold_start.ENTRY_POINTS``: the notebook cell,
``MLP.evaluate``, ``search``, ``train``) and cache state, in group ``cold_start|<entry point>``:
``fastnn-empty-cache`` runs the entry point in a new process with an empty
``NUMBA_CACHE_DIR`` (compiling every kernel it uses), then ``fastnn-disk-cache`` runs it
again on that directory (loading them).  The timed function is the whole process (one
round: a second cold round would compile everything again); ``extra_info`` holds the
seconds from the script's first line to its result (``result_s``, what the report shows),
the signatures compiled and loaded, and the slowest compiles.  ``cold_start.measure``
fails the benchmark if the cold run loaded anything, the warm run compiled anything, or a
cache file landed outside the directory.

Under ``--benchmark-disable`` (CI's smoke run) only the notebook cell runs, cold then
warm, untimed: that tests the measuring scripts whole (a cold and a warm run, their
checks and records) in ~5 s, where every entry point took ~27 s of CI's 10 minutes; the
empty-cache compiles of the others are exercised by the tests (``tests/test_cache.py``)
and measured by a full ``pytest bench``.
"""

import importlib.util
import os
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "fastnn_bench_cold_start", Path(__file__).with_name("cold_start.py"))
cold_start = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cold_start)

#: extra_info["impl"] per cache state
IMPLS = {"cold": "fastnn-empty-cache", "warm": "fastnn-disk-cache"}
#: the one entry point a smoke run (``--benchmark-disable``) measures
SMOKE_ENTRY = "notebook cell"
#: cold before warm for each entry point: the warm run reuses the cold run's cache
CASES = [(entry, state) for entry in cold_start.ENTRY_POINTS for state in cold_start.STATES]


@pytest.fixture(scope="module")
def caches():
    """{entry point: the NUMBA_CACHE_DIR its cold run filled}."""
    return {}


def _fill(caches, tmp_path_factory, entry):
    """A cache directory for ``entry`` filled by a cold run (untimed: its own cold
    benchmark was deselected or failed)."""
    if entry not in caches:
        cache = tmp_path_factory.mktemp("numba-cache")
        cold_start.measure(entry, cache, "cold")
        caches[entry] = cache
    return caches[entry]


@pytest.mark.parametrize(("entry", "state"), CASES,
                         ids=[f"{e.replace(' ', '_')}-{s}" for e, s in CASES])
def test_cold_start(benchmark, caches, tmp_path_factory, entry, state, request):
    if request.config.getoption("benchmark_disable", default=False) and \
            entry != SMOKE_ENTRY:
        pytest.skip(f"smoke run (--benchmark-disable): only {SMOKE_ENTRY!r} runs")
    benchmark.group = f"cold_start|{entry}"
    benchmark.extra_info.update(impl=IMPLS[state], entry_point=entry, cache=state,
                                load_average=round(os.getloadavg()[0], 2))
    if state == "cold":
        cache = tmp_path_factory.mktemp("numba-cache")
    else:
        cache = _fill(caches, tmp_path_factory, entry)
    info = benchmark.pedantic(cold_start.measure, args=(entry, cache, state),
                              rounds=1, iterations=1)
    if state == "cold":
        caches[entry] = cache
    benchmark.extra_info.update(
        result_s=info["result_s"], import_s=info["import_s"], wall_s=info["wall_s"],
        compiled=info["misses"], loaded=info["hits"],
        slowest_compiles=[[name, round(t, 3)] for name, t in cold_start.slowest(
            info["compiles"])])
