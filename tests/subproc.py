"""Running fastnn in a subprocess (nnfs.init() and Numba's cache are process-wide).

``env()`` points every such subprocess at a Numba cache directory (``NUMBA_CACHE_DIR``)
named after a hash of fastnn's source files, in the system temp directory.  Not the
default cache (``fastnn/kernels/__pycache__``): Numba keys a cache entry on the
modification time of the file defining the kernel only, not on the modules whose
helpers it inlines (``kernels/fastmath.py``, ``_config.py``), so while kernels are being
edited the default cache can hold stale machine code
(``test_cache.py::test_editing_an_inlined_helper_invalidates_the_cache``).  Any change
to any source file gives a new, empty directory; an unchanged tree reuses its compiled
kernels, so repeated runs do not pay the compile time again.
"""

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
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


def cache_dir():
    path = Path(tempfile.gettempdir()) / f"fastnn-test-numba-cache-{source_hash()}"
    path.mkdir(exist_ok=True)
    return str(path)


def env(**extra):
    """os.environ for a subprocess: the source-keyed Numba cache, no start-up file."""
    result = dict(os.environ)
    result.pop("PYTHONSTARTUP", None)
    result["NUMBA_CACHE_DIR"] = cache_dir()
    result.update(extra)
    return result


def run_python(code, *, timeout=600, **kwargs):
    """Run ``python -c code`` with ``env()``; returns the CompletedProcess."""
    kwargs.setdefault("env", env())
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, **kwargs,
    )
