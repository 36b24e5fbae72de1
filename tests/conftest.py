"""Session set-up: the long ``fastnn warmup`` of ``tests/test_warmup.py`` starts early.

``test_warmup.py`` proves that ``fastnn warmup --dtype float32`` into an *empty* Numba
cache covers what a fresh process then uses; compiling every kernel takes 2-3 minutes of
one core.  Run when its tests come (last, alphabetically), it adds all of that to the
suite's wall time; started in the background as the session starts, it compiles on the
second core while the other tests run on the first, and ``test_warmup.py`` waits for it.
Nothing starts when ``test_warmup.py``'s slow tests are not collected (a subset run).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from subproc import env

ROOT = Path(__file__).resolve().parents[1]
#: the nodeid prefix of the tests that need the warmed cache
_WARMUP_TESTS = "tests/test_warmup.py::test_warmup_"


def _lower_priority():
    """In the warmup process: yield the CPU to the tests (nice 10), so it compiles on
    what they leave idle instead of slowing the suite's own work."""
    os.nice(10)


class BackgroundWarmup:
    """``python -m fastnn warmup --dtype float32`` into an empty cache, running."""

    def __init__(self):
        self.cache = Path(tempfile.mkdtemp(prefix="fastnn-warmup-cache-"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastnn", "warmup", "--dtype", "float32"], cwd=ROOT,
            env=env(NUMBA_CACHE_DIR=str(self.cache)), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            preexec_fn=_lower_priority if hasattr(os, "nice") else None)
        self.result = None

    def wait(self, timeout):
        """(the finished process, its stdout, stderr), the cache directory."""
        if self.result is None:
            out, err = self.proc.communicate(timeout=timeout)
            self.result = (self.proc, out, err)
        return self.result, self.cache

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        shutil.rmtree(self.cache, ignore_errors=True)


def pytest_collection_finish(session):
    if any(item.nodeid.startswith(_WARMUP_TESTS) for item in session.items):
        session.config._fastnn_warmup = BackgroundWarmup()


def pytest_sessionfinish(session):
    warmup = getattr(session.config, "_fastnn_warmup", None)
    if warmup is not None:
        warmup.close()


@pytest.fixture(scope="session")
def background_warmup(request):
    """The session's background warmup (started at collection), or a new one."""
    warmup = getattr(request.config, "_fastnn_warmup", None)
    if warmup is None:
        warmup = request.config._fastnn_warmup = BackgroundWarmup()
    return warmup
