"""Every Numba option fastnn uses, decided once.

* ``cache=True``: compiled machine code is written next to the module (or, when the
  install is read-only, to Numba's user-wide cache, ``NUMBA_CACHE_DIR`` if set), so a
  second process loads instead of recompiling.  Numba writes cache files to a temporary
  name and renames them, so several processes compiling at once is safe
  (``tests/test_cache.py`` runs that race).  When no cache location is writable at all
  (read-only install, no writable home, no ``NUMBA_CACHE_DIR``), Numba would refuse to
  even define a cached function; we then compile per process and warn once.
* ``error_model="numpy"``: the default ``"python"`` model puts a ZeroDivisionError
  branch on every float division, which stops LLVM vectorising the loop.
* ``fastmath={"contract", "nsz"}``: FMA contraction and signless zeros only.  Never
  ``nnan``/``ninf`` (they delete the NaN guards and clipping), never ``reassoc`` (it
  would undo the Cody-Waite range reduction in ``kernels/fastmath.py`` and make sums
  depend on vector width).
* ``nogil=True``: kernels release the GIL so several Python threads can compute at once;
  every kernel writes only to buffers its caller owns.
"""

import hashlib
import pathlib
import types
import warnings

import numba


def _cache_probe():  # pragma: no cover - never called, only located
    return 0


def _disk_cache_available():
    """Whether Numba finds a writable cache location for functions in this package."""
    try:
        numba.njit(cache=True)(_cache_probe)
    except RuntimeError:
        return False
    return True


CACHE = _disk_cache_available()
if not CACHE:
    warnings.warn(
        "fastnn: no writable location for Numba's disk cache (read-only install and no "
        "writable home directory); kernels will be compiled in every process. Set "
        "NUMBA_CACHE_DIR to a writable directory to cache them.",
        RuntimeWarning,
        stacklevel=2,
    )

JIT = dict(
    cache=CACHE,
    nogil=True,
    error_model="numpy",
    fastmath={"contract", "nsz"},
)


def _sources_digest():
    """Hash of every file whose code ends up inside a compiled kernel."""
    here = pathlib.Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted([here / "_config.py", *(here / "kernels").glob("*.py")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


_SOURCES_DIGEST = _sources_digest()


def kernel(fn, **options):
    """``numba.njit(**JIT, **options)``, with a disk cache that goes stale when *any* kernel source
    changes, not only the file defining ``fn``.

    Numba stamps a cache entry with its own file only, yet our kernels inline helpers
    from other modules (``kernels/fastmath.py``, this file): editing one of those would
    leave old machine code in the cache.  We extend the stamp with a digest of all kernel
    sources (``tests/test_cache.py::test_editing_an_inlined_helper_invalidates_the_cache``).
    This touches Numba internals, guarded: if they change, Numba's own stamp still
    applies."""
    if options:
        fn = _renamed(fn, options)
    dispatcher = numba.njit(**dict(JIT, **options))(fn)
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, _SOURCES_DIGEST)
    return dispatcher


def _renamed(fn, options):
    """A copy of ``fn`` whose qualified name records ``options``: Numba names cache files
    after the function and keys entries by signature only, so a ``parallel=True`` build
    of a function would otherwise load (or overwrite) the serial build's machine code."""
    clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__,
                               fn.__closure__)
    suffix = "_".join(f"{key}_{value}" for key, value in sorted(options.items()))
    clone.__qualname__ = f"{fn.__qualname__}__{suffix}"
    clone.__doc__ = fn.__doc__
    return clone


#: Options for small helpers that must be inlined into every caller, so a fresh
#: compile and a cache load run the same machine code.
INLINE = dict(JIT, inline="always")
del INLINE["cache"]
