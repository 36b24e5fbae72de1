"""Benchmarks of ``fastnn.sweep``: many searches on a Dask cluster, and the sweep's cost per job.

Run from the repository root (not part of the default test run; the cluster group needs
``dask[distributed]``, and is skipped without it)::

    python -m pytest bench/test_bench_sweep.py --benchmark-json=bench-sweep.json
    python -m bench.report bench-sweep.json [--check-bars]

Every job is a search on nnfs's spiral (100 samples per class, 3 classes, a fresh draw
with the next seed as validation data), network 2-8-3, noise scale 0.05, one seed per
job: ``fastnn.grid(kind="search", dataset="spiral", samples=100, classes=3,
layers=[2, 8, 3], seed=range(jobs), scale=0.05, iterations=steps)``.  Groups
(``sweep_<what>|2-8-3|n=300|<steps>_steps``):

* ``sweep_16_searches``: 16 such searches of 2,000,000 steps (``FASTNN_BENCH_SWEEP_STEPS``
  overrides the steps; ~2-4 s a search on one core), ``fastnn.sweep(jobs,
  directory=..., executor=client, progress=False)`` on a ``LocalCluster`` of 2 worker
  processes of 1 thread each (``fastnn-dask-2-workers``, the subject) against the same
  sweep with ``executor=None``, the jobs one after another in this process
  (``fastnn-sequential``, the baseline).  fastnn against itself, so a scaling group
  (``role``/``scaling``, see ``bench/report.py``); the issue's bar: >= 1.8x on a 2-core
  machine, with identical results: after timing, the two tables must be equal in every
  column but ``seconds``, ``model`` and ``checkpoint`` (the file paths), every job done.
* ``sweep_32_tiny``: what the sweep machinery costs per job: 32 one-step searches,
  ``fastnn.sweep(jobs, executor=None, progress=False)`` (``fastnn-sweep``, the subject:
  every spec checked and its data drawn on the client, each job's options parsed, data
  drawn again, a checkpoint, a model file and a JSON record written, ``results.csv``, the
  DataFrame) against the loop a user writes by hand (``fastnn-search-loop``, the
  baseline: per seed ``make_data`` for the data and the validation draw, ``MLP``,
  ``fastnn.search(..., iterations=1, validation=...)``).  Both give the same losses and
  accuracies (checked).  The ratio is below 1 by design; ``per_job_ms`` (each) and
  ``overhead_per_job_ms`` (the sweep's, over the loop's) say what a job costs.

Every timed round runs in a fresh directory (``resume=True`` would otherwise find every
job done), created by the round's untimed set-up.  Compilation is excluded: before timing,
an untimed sweep of one-step jobs of the same kernel family warms this process (the
in-process groups) and, on the cluster, every worker once (``warmup=True``: one worker
first, then the other loads the disk cache it wrote); the timed cluster sweeps keep the
default ``warmup=True``, which then costs a round trip per worker wave (``warm_s``: the
first warm-up, compiling or loading the disk cache; ``rewarm_ms``: what it adds later).  The
cluster starts once per module (``NUMBA_NUM_THREADS=1`` in its workers) when its group
first needs it, after the in-process groups have run (its idle workers would otherwise
share their cores).

Each benchmark records the load average as it started, ``jobs`` and ``steps`` per round,
``evaluations`` per round (the throughput table) and, for the 16 searches, of the last
round: the jobs' own ``seconds`` (``job_seconds_sum``, ``job_seconds_median``), its wall
time (``last_round_s``), ``busy_fraction`` (the jobs' seconds over wall time x workers:
1.0 when no time is lost outside the searches), ``client_cpu_s`` (this process's CPU
time: in process the jobs themselves, on the cluster the client and the scheduler) and
``jobs_per_worker`` (from the jobs' records).  Under ``--benchmark-disable`` (CI's smoke
run) every body runs once on ``SMOKE_STEPS`` steps per search.
"""

import json
import os
import resource
import time
from itertools import count

import numpy as np
import pytest

import fastnn
from fastnn.cli import MAX_SEED, make_data

SIZES = (2, 8, 3)
PER_CLASS, CLASSES, SCALE, DTYPE = 100, 3, 0.05, "float32"
#: the issue's workload: 16 searches of 2,000,000 steps (FASTNN_BENCH_SWEEP_STEPS overrides
#: the steps, under --benchmark-disable too)
JOBS, STEPS = 16, 2_000_000
SMOKE_STEPS = 20  # steps per search under --benchmark-disable
TINY_JOBS = 32  # one-step searches in the per-job overhead group
WORKERS = 2
BAR = 1.8
#: the columns where two runs of the same sweep may differ: time and the files' paths
VARYING = ("seconds", "model", "checkpoint")
#: timed rounds (a sequential round of the 16 searches: ~50-60 s on a 2-vCPU AMD EPYC)
ROUNDS = {"sequential": 3, "cluster": 3, "tiny": 15}


def rounds(n):
    """``n`` rounds, or fewer under ``FASTNN_BENCH_MAX_ROUNDS`` (CI's short timed runs)."""
    cap = int(os.environ.get("FASTNN_BENCH_MAX_ROUNDS", "0") or 0)
    return min(n, cap) if cap > 0 else n


@pytest.fixture(scope="module")
def smoke(request):
    """True under ``--benchmark-disable``: run every body once on a few steps."""
    return bool(request.config.getoption("benchmark_disable", default=False))


@pytest.fixture(scope="module")
def steps(smoke):
    given = os.environ.get("FASTNN_BENCH_SWEEP_STEPS")
    return int(given) if given else SMOKE_STEPS if smoke else STEPS


def jobs(n, iterations):
    return fastnn.grid(kind="search", dataset="spiral", samples=PER_CLASS, classes=CLASSES,
                       layers=list(SIZES), seed=range(n), scale=SCALE, iterations=iterations)


def group(what, iterations):
    return f"sweep_{what}|{'-'.join(map(str, SIZES))}|n={CLASSES * PER_CLASS}|{iterations}_steps"


def setup(benchmark, group_name, impl, **info):
    """Name the benchmark; record the 1-minute load average as it starts (on 2 CPUs, above
    ~1 before the cluster's round means another process held a core)."""
    benchmark.group = group_name
    benchmark.extra_info.update(impl=impl, load_average=round(os.getloadavg()[0], 2),
                                cpus=os.cpu_count(), version=fastnn.__version__, **info)


def median_seconds(benchmark):
    """The median round's seconds, or None when not timed."""
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    return getattr(stats, "median", None) or None


class Directories:
    """pytest-benchmark's ``setup``: a fresh, empty sweep directory per round (not timed)."""

    def __init__(self, root, jobs, **options):
        self.root, self.jobs, self.options, self.n = root, jobs, options, count()
        self.last = None

    def __call__(self):
        directory = self.last = self.root / f"round{next(self.n)}"
        directory.mkdir(parents=True)
        return (self.jobs,), dict(directory=directory, progress=False, **self.options)


def as_rows(table):
    """The table as a list of row dicts (``fastnn.sweep`` returns one without pandas)."""
    return table.to_dict("records") if hasattr(table, "to_dict") else list(table)


def check_done(table, n, iterations):
    rows = as_rows(table)
    assert len(rows) == n
    for row in rows:
        assert row["status"] == "done", row
        assert row["steps"] == iterations and row["evaluations"] == iterations, row


def assert_same_results(table, expected):
    """Equal in every column but ``VARYING``: a DataFrame by ``.equals`` (NaN/NA in the same
    places count as equal), a list of dicts row by row."""
    if hasattr(table, "drop"):
        got, want = table.drop(columns=list(VARYING)), expected.drop(columns=list(VARYING))
        assert list(got.columns) == list(want.columns)
        assert got.equals(want), got.compare(want)
    else:
        strip = [{k: v for k, v in row.items() if k not in VARYING} for row in table]
        assert strip == [{k: v for k, v in row.items() if k not in VARYING}
                         for row in expected]


def warm(tmp_path, executor=None):
    """An untimed sweep of one-step jobs of the timed jobs' kernel family (compiles, or
    loads Numba's disk cache; on a cluster ``warmup=True`` warms every worker); seconds."""
    t0 = time.perf_counter()
    table = fastnn.sweep(jobs(2 * WORKERS, 1), directory=tmp_path / "warm", executor=executor,
                         progress=False)
    check_done(table, 2 * WORKERS, 1)
    return time.perf_counter() - t0


class Timed:
    """Wraps ``fastnn.sweep`` to keep the wall time and this process's CPU time (the
    client's; on a ``LocalCluster`` its scheduler's too; in process the jobs' own) of the
    last call: the round whose table the test keeps."""

    def __init__(self, fn):
        self.fn, self.wall, self.cpu = fn, None, None

    def __call__(self, *args, **kwargs):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            self.wall = t1 - t0
            self.cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def record_sweep(benchmark, table, timed, workers):
    """The jobs' own seconds (``SearchResult.seconds``) against the wall time of the round
    that gave ``table`` (the last)."""
    seconds = [float(row["seconds"]) for row in as_rows(table)]
    busy = sum(seconds) / (timed.wall * workers)
    benchmark.extra_info.update(
        job_seconds_sum=round(sum(seconds), 3),
        job_seconds_median=round(float(np.median(seconds)), 3),
        last_round_s=round(timed.wall, 3), busy_fraction=round(busy, 3),
        client_cpu_s=round(timed.cpu, 3))


# -- sweep_32_tiny: the sweep's cost per job, against fastnn.search in a loop -------------------
def search_loop(n):
    """The loop a user writes for ``jobs(n, 1)``: per seed, the data and its validation draw
    (as ``fastnn search`` draws them), the model, one step of search; the results."""
    results = []
    for seed in range(n):
        X, y = make_data("spiral", PER_CLASS, CLASSES, seed, np.dtype(DTYPE))
        validation = make_data("spiral", PER_CLASS, CLASSES, (seed + 1) % (MAX_SEED + 1),
                               np.dtype(DTYPE))
        model = fastnn.MLP(list(SIZES), seed=seed, dtype=DTYPE)
        results.append(fastnn.search(model, X, y, iterations=1, scale=SCALE, seed=seed,
                                     parallel=False, validation=validation))
    return results


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Warm this process, and check that the sweep's jobs are the loop's searches."""
    tmp_root = tmp_path_factory.mktemp("tiny")
    warm(tmp_root)
    table = fastnn.sweep(jobs(TINY_JOBS, 1), directory=tmp_root / "check", progress=False)
    check_done(table, TINY_JOBS, 1)
    for row, result in zip(as_rows(table), search_loop(TINY_JOBS), strict=True):
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert row[name] == getattr(result, name), (row["seed"], name)


def record_per_job(benchmark):
    median = median_seconds(benchmark)
    if median:
        benchmark.extra_info["per_job_ms"] = round(median / TINY_JOBS * 1e3, 3)


#: per-job milliseconds of the loop's median round, for the sweep's overhead (this process)
_LOOP_PER_JOB_MS = {}


def test_sweep_tiny_loop(benchmark, tiny):
    setup(benchmark, group(f"{TINY_JOBS}_tiny", 1), "fastnn-search-loop", role="baseline",
          scaling=True, jobs=TINY_JOBS, steps=1)
    results = benchmark.pedantic(search_loop, args=(TINY_JOBS,), rounds=rounds(ROUNDS["tiny"]),
                                 warmup_rounds=1)
    assert [r.evaluations for r in results] == [1] * TINY_JOBS
    record_per_job(benchmark)
    if "per_job_ms" in benchmark.extra_info:
        _LOOP_PER_JOB_MS["ms"] = benchmark.extra_info["per_job_ms"]


def test_sweep_tiny_sweep(benchmark, tiny, tmp_path):
    setup(benchmark, group(f"{TINY_JOBS}_tiny", 1), "fastnn-sweep", role="subject", scaling=True,
          jobs=TINY_JOBS, steps=1)
    table = benchmark.pedantic(fastnn.sweep, setup=Directories(tmp_path, jobs(TINY_JOBS, 1)),
                               rounds=rounds(ROUNDS["tiny"]), warmup_rounds=1)
    check_done(table, TINY_JOBS, 1)
    record_per_job(benchmark)
    if "per_job_ms" in benchmark.extra_info and "ms" in _LOOP_PER_JOB_MS:
        benchmark.extra_info["overhead_per_job_ms"] = round(
            benchmark.extra_info["per_job_ms"] - _LOOP_PER_JOB_MS["ms"], 3)


# -- sweep_16_searches: a 2-worker LocalCluster against one process -----------------------------
#: the in-process table of each workload, {steps: table}: what the cluster's must equal
_SEQUENTIAL = {}


def sequential_table(tmp_path, iterations):
    """The in-process sweep's table: the timed test's (same process), else run now, untimed
    (the cluster test alone, or on another xdist worker)."""
    if iterations not in _SEQUENTIAL:
        warm(tmp_path)
        _SEQUENTIAL[iterations] = fastnn.sweep(jobs(JOBS, iterations),
                                               directory=tmp_path / "reference", progress=False)
    return _SEQUENTIAL[iterations]


def test_sweep_sequential(benchmark, steps, tmp_path):
    setup(benchmark, group(f"{JOBS}_searches", steps), "fastnn-sequential", role="baseline",
          scaling=True, jobs=JOBS, steps=steps, evaluations=JOBS * steps, workers=1)
    benchmark.extra_info["warm_s"] = round(warm(tmp_path), 3)
    timed = Timed(fastnn.sweep)
    table = benchmark.pedantic(timed, setup=Directories(tmp_path, jobs(JOBS, steps)),
                               rounds=rounds(ROUNDS["sequential"]))
    check_done(table, JOBS, steps)
    record_sweep(benchmark, table, timed, workers=1)
    _SEQUENTIAL[steps] = table


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A ``LocalCluster`` of 2 one-thread worker processes and its client, every worker warmed
    once (untimed); ``(client, seconds of that warm-up)``."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                  dashboard_address=":0",
                                  env={"NUMBA_NUM_THREADS": "1"}) as local, \
            distributed.Client(local) as client:
        client.wait_for_workers(WORKERS)
        seconds = warm(tmp_path_factory.mktemp("cluster"), executor=client)
        yield client, seconds


def jobs_per_worker(directory, table):
    """``{worker: jobs run}`` from the jobs' records (``<job>.json``'s ``worker``)."""
    counts = {}
    for row in as_rows(table):
        with open(directory / f"{row['job']}.json") as f:
            worker = json.load(f)["worker"]
        counts[worker] = counts.get(worker, 0) + 1
    return counts


def rewarm_ms(client, root):
    """Milliseconds that ``warmup=True`` adds to a sweep on workers already warm (each timed
    sweep pays it): one-job sweeps with and without it, the difference of their medians of
    5, measured once outside the rounds."""
    def median_ms(warmup):
        times = []
        for i in range(5):
            t0 = time.perf_counter()
            fastnn.sweep(jobs(1, 1), directory=root / f"rewarm-{warmup}-{i}", executor=client,
                         progress=False, warmup=warmup)
            times.append(time.perf_counter() - t0)
        return float(np.median(times)) * 1e3

    return round(median_ms(True) - median_ms(False), 1)


def test_sweep_cluster(benchmark, cluster, steps, smoke, tmp_path):
    client, warm_s = cluster
    setup(benchmark, group(f"{JOBS}_searches", steps), "fastnn-dask-2-workers", role="subject",
          scaling=True, bar=BAR, jobs=JOBS, steps=steps, evaluations=JOBS * steps,
          workers=WORKERS, threads_per_worker=1, warm_s=round(warm_s, 3),
          rewarm_ms=rewarm_ms(client, tmp_path / "rewarm"))
    directories = Directories(tmp_path, jobs(JOBS, steps), executor=client)
    timed = Timed(fastnn.sweep)
    table = benchmark.pedantic(timed, setup=directories, rounds=rounds(ROUNDS["cluster"]))
    check_done(table, JOBS, steps)
    record_sweep(benchmark, table, timed, workers=WORKERS)
    per_worker = jobs_per_worker(directories.last, table)
    benchmark.extra_info["jobs_per_worker"] = sorted(per_worker.values(), reverse=True)
    if not smoke:  # both workers ran jobs (a few-step job may end before the second starts)
        assert len(per_worker) == WORKERS, per_worker
    assert_same_results(table, sequential_table(tmp_path, steps))
