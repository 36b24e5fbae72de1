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
* No ``inline="always"``: Numba inlines such helpers by deep-copying their IR into every
  call site and re-running its passes, which took two thirds of a 45 s cold compile.
  Helpers are ordinary ``@njit`` functions (``HELPER``) that LLVM inlines where it pays,
  and each shape family gets its own kernels, built on first use (``specialise``).
* Vector width: ``VECTOR_WIDTH`` (see ``fastnn/kernels/target.py``) is baked into every
  kernel through a per-function LLVM attribute and is part of each cache entry's key.
"""

import hashlib
import os
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


#: Options for helpers called from kernels: compiled (uncached) only when a kernel that
#: calls them is compiled (a kernel loaded from the disk cache carries their code), and
#: without the wrappers that make a function callable from Python (argument unboxing
#: for every array is a sizeable share of a small function's compile).  Pass them no
#: literal constants: each distinct constant argument (``f(a, 0)``, ``f(a, 1)``) compiles
#: another specialisation; write ``np.int64(0)`` or a variable.
HELPER = dict(JIT, no_cpython_wrapper=True, no_cfunc_wrapper=True)
del HELPER["cache"]

#: every kernel dispatcher made by ``kernel``/``specialise``, by qualified name (for
#: ``fastnn.warmup`` and the cache tests)
KERNELS = {}


def kernel(fn, **options):
    """``numba.njit(**JIT, **options)``, with a disk cache that goes stale when *any* kernel
    source changes, not only the file defining ``fn``, and whose entries are keyed on the
    vector width too.

    Numba stamps a cache entry with its own file only, yet our kernels call helpers from
    other modules (``kernels/fastmath.py``, this file) whose code is linked into theirs:
    editing one of those would leave old machine code in the cache.  We extend the stamp
    with a digest of all kernel sources
    (``tests/test_cache.py::test_editing_an_inlined_helper_invalidates_the_cache``) and the
    index key with ``VECTOR_WIDTH``, so code built for one width is never loaded under
    another (an override, or a CPU whose rule differs) and both can share one cache.
    This touches Numba internals, guarded: if they change, Numba's own stamp applies."""
    if options:
        fn = _renamed(fn, _options_suffix(options))
    dispatcher = numba.njit(**dict(JIT, **options))(fn)
    cache = getattr(dispatcher, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, _SOURCES_DIGEST)
    if cache is not None and hasattr(cache, "_index_key"):
        numba_key = cache._index_key

        def index_key(sig, codegen):
            return (*numba_key(sig, codegen), ("fastnn-vector-width", VECTOR_WIDTH))

        cache._index_key = index_key
    KERNELS[fn.__qualname__] = dispatcher
    return dispatcher


def specialise(fn, suffix, callees, **options):
    """The kernel ``kernel(fn, **options)`` with some of the globals ``fn`` calls replaced
    (``callees``, a dict): one source, one compiled variant per shape family, each
    compiled only when a shape of its family is first used (one kernel holding every
    family took 10-20 s to compile).  ``suffix`` names the variant: Numba names cache
    files after the function, so variants must not share a name.  Made once per
    process: later calls return the same dispatcher."""
    name = f"{fn.__qualname__}__{suffix}"
    if options:
        name = f"{name}__{_options_suffix(options)}"
    if name not in KERNELS:
        kernel(_renamed(fn, suffix, callees), **options)
    return KERNELS[name]


def compiled(fn, suffix, callees, signature, **options):
    """``specialise(fn, suffix, callees, **options)`` compiled (or loaded from the disk
    cache) for exactly one ``signature`` now, and closed to others.

    For kernels that take another kernel as a first-class function argument
    (``types.FunctionType``): a dispatcher open to new signatures would type that
    argument as the callee's own ``Dispatcher`` type and compile a variant that links
    the callee's code in -- whose whole body LLVM then optimises again inside the caller
    (``kernels/train.py``: seconds of compile time).  Closed, the call converts the
    dispatcher to a function pointer.  ``suffix`` must tell the signatures apart (one
    dispatcher each)."""
    dispatcher = specialise(fn, suffix, callees, **options)
    if not dispatcher.signatures:
        dispatcher.compile(signature)
        dispatcher.disable_compile()
    return dispatcher


_HELPERS = {}


def specialise_helper(fn, suffix, callees):
    """``specialise`` for a helper (``HELPER`` options: no disk cache of its own, no
    Python wrapper): compiled into the kernels that call it.  Made once per process."""
    name = f"{fn.__qualname__}__{suffix}"
    if name not in _HELPERS:
        _HELPERS[name] = numba.njit(**HELPER)(_renamed(fn, suffix, callees))
    return _HELPERS[name]


def _options_suffix(options):
    return "_".join(f"{key}_{value}" for key, value in sorted(options.items()))


def _renamed(fn, suffix, callees=None):
    """A copy of ``fn`` whose qualified name ends in ``suffix``, optionally reading some
    globals from ``callees`` first.  Numba names cache files after the function and keys
    entries by signature only, so a ``parallel=True`` build (or a variant) of a function
    would otherwise load (or overwrite) another build's machine code."""
    glob = fn.__globals__ if not callees else {**fn.__globals__, **callees}
    clone = types.FunctionType(fn.__code__, glob, fn.__name__, fn.__defaults__,
                               fn.__closure__)
    clone.__qualname__ = f"{fn.__qualname__}__{suffix}"
    clone.__doc__ = fn.__doc__
    clone.__module__ = fn.__module__
    return clone


def _vector_width():
    """The vector width (bits) fastnn's kernels prefer: ``FASTNN_VECTOR_WIDTH`` if set
    (128, 256, 512; ``llvm``: no preference, LLVM's tuning decides; ``auto``), else the
    rule of ``_auto_vector_width``."""
    raw = os.environ.get("FASTNN_VECTOR_WIDTH", "auto").strip().lower()
    if raw in ("", "auto"):
        return _auto_vector_width(target_features())
    if raw == "llvm":
        return None
    if raw not in ("128", "256", "512"):
        warnings.warn(f"fastnn: FASTNN_VECTOR_WIDTH must be 128, 256, 512, llvm or auto, "
                      f"got {raw!r}; using auto", RuntimeWarning, stacklevel=2)
        return _auto_vector_width(target_features())
    return int(raw)


def target_features():
    """The CPU features Numba compiles for: ``NUMBA_CPU_FEATURES`` if set, else the
    host's as LLVM detects them (a set of names such as ``"avx512f"``)."""
    raw = numba.config.CPU_FEATURES
    if not raw:
        from llvmlite import binding as ll
        raw = ll.get_host_cpu_features().flatten()
    return {f[1:] for f in raw.split(",") if f.startswith("+")}


#: AVX-512 foundation plus the subsets LLVM needs to use 512-bit registers for
#: fastnn's float32/float64 loops (x86-64-v4)
_AVX512 = {"avx512f", "avx512vl", "avx512bw", "avx512dq"}


def _auto_vector_width(features):
    """512 when the CPU has AVX-512 (x86-64-v4), else None (LLVM's own choice).

    Why: LLVM's tuning for many AVX-512 CPUs (Intel client and server parts since
    Skylake-X, ``prefer-256-bit``) keeps loops at 256 bits to avoid clock throttling in
    mixed code; fastnn's kernels are long, uniform FMA/exp sweeps over samples where
    512-bit vectors won 1.43x on an Intel ``rocketlake`` and measure no worse on AMD Zen 4/5
    (``bench/``, README).  Without AVX-512 there is nothing wider than LLVM's pick (256 bits
    with AVX2), so no attribute is set.  A rule on features, not CPU names."""
    if _AVX512 <= features:
        return 512
    return None


VECTOR_WIDTH = _vector_width()


def target_info():
    """What fastnn compiles for, for reports and bug reports: the CPU's model name, the
    CPU LLVM targets, its vector features and the vector width fastnn's kernels prefer
    (None: no preference, LLVM's own tuning decides) and where that width came from."""
    import platform

    from llvmlite import binding as ll

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    features = target_features()
    vector = sorted(f for f in features if f.startswith(("sse", "avx", "fma", "amx")))
    override = os.environ.get("FASTNN_VECTOR_WIDTH", "auto").strip().lower()
    return {
        "cpu": model,
        "llvm_cpu": numba.config.CPU_NAME or ll.get_host_cpu_name(),
        "vector_features": vector,
        "vector_width": VECTOR_WIDTH,
        "vector_width_source": ("auto" if override in ("", "auto")
                                else "FASTNN_VECTOR_WIDTH"),
    }
