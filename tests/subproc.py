"""Running fastnn in a subprocess (nnfs.init() and Numba's cache are process-wide).

``env()`` gives such a subprocess this process's Numba cache (the default one,
``fastnn/kernels/__pycache__``, or ``NUMBA_CACHE_DIR`` if set), so a subprocess loads the
kernels the tests before it compiled instead of compiling them again (which doubled the
suite's compile time).  Sharing is safe while kernels are being edited: ``_config.kernel``
stamps every cache entry with a digest of all kernel sources, not only of the file that
defines the kernel (``test_cache.py::test_editing_an_inlined_helper_invalidates_the_cache``),
and Numba writes entries atomically (``test_cache.py::test_concurrent_cold_start``).
Tests about the cache itself give their subprocesses their own ``NUMBA_CACHE_DIR``.
"""

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numba


def package_dir():
    return Path(importlib.util.find_spec("fastnn").origin).parent


def source_hash():
    h = hashlib.sha256(f"{sys.version}|numba {numba.__version__}".encode())
    root = package_dir()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def env(**extra):
    """os.environ for a subprocess: this process's Numba cache, no start-up file."""
    result = dict(os.environ)
    result.pop("PYTHONSTARTUP", None)
    result.update(extra)
    return result


def run_python(code, *, timeout=600, **kwargs):
    """Run ``python -c code`` with ``env()``; returns the CompletedProcess."""
    kwargs.setdefault("env", env())
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, **kwargs,
    )
