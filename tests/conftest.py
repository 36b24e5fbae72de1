"""Session set-up: the long ``fastnn warmup`` of ``tests/test_warmup.py`` starts early.

``test_warmup.py`` proves that ``fastnn warmup --dtype float32`` into an *empty* Numba
cache covers what a fresh process then uses; compiling every kernel takes 2-3 minutes of
one core.  Run when its tests come, it adds all of that to the suite's wall time; started
in the background as the session starts, it compiles on what the other tests leave idle
(at nice 10), and ``test_warmup.py`` waits for it.  Nothing starts when
``test_warmup.py``'s slow tests are not collected (a subset run).

The suite runs in parallel (pytest-xdist, ``-n auto`` in pyproject.toml).  Every worker
collects every test, so the warmup lives in a directory shared by the session (made by
the controller, passed on in the environment): the first worker to claim it starts the
warmup, whichever worker runs ``test_warmup.py`` waits for its exit-status file, and the
controller stops it and removes the directory at the end.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from subproc import env

ROOT = Path(__file__).resolve().parents[1]
#: the nodeid prefix of the tests that need the warmed cache
_WARMUP_TESTS = "tests/test_warmup.py::test_warmup_"
_SHARED = "FASTNN_TESTS_WARMUP_DIR"

#: Runs the warmup with its output in files and writes its exit status last (atomically):
#: the worker that started it may finish before it does.
_RUNNER = r"""
import os, subprocess, sys
d = sys.argv[1]
def lower_priority():
    os.nice(10)  # yield the CPU to the tests
with open(os.path.join(d, "out"), "w") as out, open(os.path.join(d, "err"), "w") as err:
    proc = subprocess.Popen(sys.argv[2:], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                            preexec_fn=lower_priority if hasattr(os, "nice") else None)
    with open(os.path.join(d, "child.tmp"), "w") as f:
        f.write(str(proc.pid))
    os.replace(os.path.join(d, "child.tmp"), os.path.join(d, "child"))
    rc = proc.wait()
with open(os.path.join(d, "rc.tmp"), "w") as f:
    f.write(str(rc))
os.replace(os.path.join(d, "rc.tmp"), os.path.join(d, "rc"))
"""


class BackgroundWarmup:
    """``python -m fastnn warmup --dtype float32`` into an empty cache, in ``directory``
    (``cache/``; its output in ``out``/``err``, its exit status in ``rc`` when done)."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.cache = self.dir / "cache"
        self.argv = [sys.executable, "-m", "fastnn", "warmup", "--dtype", "float32"]

    def claim_and_start(self):
        """Start the warmup unless another process of this session already did."""
        try:
            fd = os.open(self.dir / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        self.cache.mkdir()
        runner = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, str(self.dir), *self.argv], cwd=ROOT,
            env=env(NUMBA_CACHE_DIR=str(self.cache)), stdin=subprocess.DEVNULL,
            start_new_session=True)
        (self.dir / "runner").write_text(str(runner.pid))

    def wait(self, timeout):
        """(a CompletedProcess of the finished warmup, the cache directory)."""
        deadline = time.monotonic() + timeout
        rc = self.dir / "rc"
        while not rc.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the background warmup did not finish in {timeout} s")
            time.sleep(0.2)
        proc = subprocess.CompletedProcess(self.argv, int(rc.read_text()),
                                           (self.dir / "out").read_text(),
                                           (self.dir / "err").read_text())
        return proc, self.cache

    def stop(self):
        """Kill what still runs (the warmup, then its runner) and remove the directory."""
        if not (self.dir / "rc").exists():
            for name in ("child", "runner"):
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int((self.dir / name).read_text()), signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def pytest_configure(config):
    if _SHARED not in os.environ:  # the controller, or a run without xdist
        os.environ[_SHARED] = tempfile.mkdtemp(prefix="fastnn-tests-warmup-")
        config._fastnn_warmup_owner = True


def pytest_collection_finish(session):
    if any(item.nodeid.startswith(_WARMUP_TESTS) for item in session.items):
        BackgroundWarmup(os.environ[_SHARED]).claim_and_start()


def pytest_unconfigure(config):
    if getattr(config, "_fastnn_warmup_owner", False):
        BackgroundWarmup(os.environ.pop(_SHARED)).stop()


@pytest.fixture(scope="session")
def background_warmup():
    """The session's background warmup (started at collection, or now)."""
    warmup = BackgroundWarmup(os.environ[_SHARED])
    if not (warmup.dir / "claimed").exists():
        warmup.claim_and_start()
    return warmup



@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """``-n`` without ``--dist``: whole files per worker (``loadfile``), so each
    module-scoped fixture (a notebook run, the book's scripts) is made once, not once
    per worker.  Not in pyproject's addopts: any ``--dist`` there would switch
    pytest-benchmark off in ``pytest bench`` runs."""
    if getattr(config.option, "numprocesses", None) and config.option.dist == "no":
        config.option.dist = "loadfile"
