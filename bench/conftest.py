"""Benchmark session set-up, and the fastnn-vs-baseline ratios (``bench/report.py``)
printed after a ``pytest bench`` run.

What fastnn compiles for (``fastnn.target_info()``: CPU model, vector features, the
vector width its kernels prefer) is taken as the session starts and written to the
JSON's ``machine_info["fastnn_target"]``, so the report describes the machine that ran
the benchmarks, not the one printing it.

NumPy's BLAS is limited to one thread unless the caller set ``OPENBLAS_NUM_THREADS``
or ``MKL_NUM_THREADS``: fastnn runs on one core, so this compares like with like, and
multi-threaded OpenBLAS on these small products is erratic on small VMs (on 2 vCPUs the
2-64-3, n=3000 NumPy loss took a steady 8 ms instead of 0.3 ms), which would flatter
fastnn.  The variables must be set before NumPy is first imported, hence here.
"""

import os
import sys

_NUMPY_WAS_LOADED = "numpy" in sys.modules
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "fastnn_bench_report", Path(__file__).with_name("report.py")
)
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


def _target_info():
    """``fastnn.target_info()``, or None for a fastnn without it.  Imported here, after
    the BLAS variables above are set (fastnn imports NumPy)."""
    import fastnn

    info = getattr(fastnn, "target_info", None)
    return info() if info is not None else None


def pytest_sessionstart(session):
    session.config._fastnn_target = _target_info()


def pytest_benchmark_update_machine_info(config, machine_info):
    """pytest-benchmark asks for ``machine_info`` when it writes the JSON: add the target
    recorded at session start."""
    target = getattr(config, "_fastnn_target", None)
    machine_info["fastnn_target"] = target if target is not None else _target_info()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or getattr(session, "disabled", False):
        return
    benchmarks = [
        {"group": b.group, "name": b.name, "extra_info": b.extra_info,
         "stats": {"median": b.stats.median}}
        for b in session.benchmarks
        if b and not getattr(b, "has_error", False)
    ]
    if benchmarks:
        terminalreporter.write_sep("-", "fastnn speed-up (median of the fastest baseline / "
                                        "median of fastnn)")
        terminalreporter.write_line(
            report.cpu_line({"fastnn_target": getattr(config, "_fastnn_target", None)}))
        # the ratios; throughput, cold start, Numba threading layer, load
        for part in (report.markdown(benchmarks), report.extras(benchmarks)):
            if part:
                terminalreporter.write_line("")
                terminalreporter.write_line(part)


def pytest_report_header(config):
    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    note = ""
    if _NUMPY_WAS_LOADED:
        note = " (NOT applied: NumPy was imported before bench/conftest.py)"
    return f"fastnn bench: OPENBLAS_NUM_THREADS={threads}{note}"
