"""Print the fastnn-vs-baseline ratios (``bench/report.py``) after a ``pytest bench`` run."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "fastnn_bench_report", Path(__file__).with_name("report.py")
)
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


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
        terminalreporter.write_line(report.markdown(benchmarks))
