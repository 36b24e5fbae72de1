"""Numba's disk cache (``cache=True``, fastnn/_config.py), exercised in subprocesses.

Where the cache lives: for an installed (or editable) package Numba writes next to the
source, in ``fastnn/kernels/__pycache__``; ``NUMBA_CACHE_DIR`` redirects it; if neither
is writable, Numba's user-wide cache (``$HOME/.cache/numba``) is tried.  Every test here
uses its own empty ``NUMBA_CACHE_DIR`` (or a private copy of the package), never the
in-tree cache.

Read-only directories and root: these tests usually run as root, and root ignores
``chmod 555`` (CAP_DAC_OVERRIDE).  The subprocesses of the read-only tests therefore drop
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from their capability bounding set before
``exec`` (``prctl(PR_CAPBSET_DROP)``), so the new interpreter, still uid 0, is bound by
file permissions like any user.  Each of those subprocesses first tries to write into
the directories that are meant to be read-only and the test asserts that it could not,
so a scenario that silently stayed writable fails instead of passing vacuously.  Where
capabilities cannot be dropped (no CAP_SETPCAP, not Linux), running as root makes the
scenario untestable and those tests skip with that reason.
"""

import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from subproc import package_dir, source_hash

pytestmark = pytest.mark.slow

TIMEOUT = 600

# The workload: every public entry point in float32 and float64, results as bit-exact
# hashes plus the numbers, and the cache statistics of every cached kernel.
WORKLOAD = r"""
import hashlib, json, os, sys, time
t0 = time.perf_counter()
import numpy as np
import numba
from numba.core.dispatcher import Dispatcher

probe = {}
for d in os.environ.get("PROBE_READONLY", "").split(os.pathsep):
    if d:
        try:
            with open(os.path.join(d, ".write-probe"), "w"):
                pass
            os.remove(os.path.join(d, ".write-probe"))
            probe[d] = "writable"
        except OSError as exc:
            probe[d] = type(exc).__name__

go = os.environ.get("WAIT_FOR")
if go:  # start line for the concurrent test: everybody imported, then compile at once
    open(os.environ["READY"], "w").close()
    deadline = time.time() + 120
    while not os.path.exists(go):
        if time.time() > deadline:
            sys.exit("never got the start signal")
        time.sleep(0.01)

import fastnn
import fastnn.kernels
from fastnn import MLP, Dense_Layer, Activation_Relu, Activation_Softmax
from fastnn import Loss_CategoricalCrossentropy

def digest(a):
    a = np.ascontiguousarray(a)
    return a.dtype.name + ":" + hashlib.sha256(a.tobytes()).hexdigest()[:16]

rng = np.random.default_rng(0)
X = rng.standard_normal((301, 2))
y = np.arange(301) % 3
parts = os.environ.get("PARTS", "evaluate").split()
out = {"results": {}, "params": {}}
res = out["results"]
for dtype in os.environ.get("DTYPES", "float32").split():
    m = MLP([2, 8, 3], seed=1, dtype=dtype)
    m.params = 0.7 * np.random.default_rng(5).standard_normal(m.n_params)  # any order
    out["params"][dtype] = m.params.astype(np.float64).tolist()
    if "evaluate" in parts:
        res[dtype + ".evaluate"] = list(m.evaluate(X, y))
    if "forward" in parts:
        res[dtype + ".forward"] = digest(m.forward(X))
    if "predict" in parts:
        res[dtype + ".predict"] = digest(m.predict(X))
    if "layers" in parts:
        l1, l2 = Dense_Layer(2, 8), Dense_Layer(8, 3)
        l1.weights, l1.biases = m.layers[0].weights, m.layers[0].biases
        l2.weights, l2.biases = m.layers[1].weights, m.layers[1].biases
        a1, a2 = Activation_Relu(), Activation_Softmax()
        l1.forward(X.astype(dtype)); a1.forward(l1.output); l2.forward(a1.output)
        a2.forward(l2.output)
        res[dtype + ".layers"] = digest(a2.output)
        res[dtype + ".layers_loss"] = float(
            Loss_CategoricalCrossentropy().forward(a2.output, y))
        res[dtype + ".layers_acc"] = fastnn.accuracy(a2.output, y)

stats = {}
import importlib, pkgutil
from fastnn._config import KERNELS  # every kernel made so far, family variants included
dispatchers = {}
for info in pkgutil.iter_modules(fastnn.kernels.__path__):  # and the uncached helpers
    mod = importlib.import_module("fastnn.kernels." + info.name)
    for name, obj in vars(mod).items():
        if isinstance(obj, Dispatcher) and obj.__module__ == mod.__name__:
            dispatchers[info.name + "." + name] = obj
for name, obj in KERNELS.items():
    dispatchers[obj.py_func.__module__.split(".")[-1] + "." + name] = obj
for name, obj in dispatchers.items():
    st = obj.stats
    stats[name] = {
        "hits": sum(st.cache_hits.values()), "misses": sum(st.cache_misses.values()),
        "path": st.cache_path, "compiled": len(obj.signatures)}
out["stats"] = stats
out["fastnn"] = fastnn.__file__
out["probe"] = probe
out["seconds"] = time.perf_counter() - t0
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(autouse=True)
def _sources_unchanged():
    """Cache hits and misses depend on the source files' timestamps: an edit of fastnn
    while a test runs (another developer, an editor saving) would show up as misses."""
    before = source_hash()
    yield
    if source_hash() != before:
        pytest.fail("fastnn's source files changed while this test ran: rerun it")


def _drop_dac_capabilities():
    """preexec_fn: remove root's permission-bypassing capabilities for the exec'd child
    (PR_CAPBSET_DROP=24; CAP_DAC_OVERRIDE=1, CAP_DAC_READ_SEARCH=2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _can_drop_capabilities():
    if not sys.platform.startswith("linux"):
        return False
    proc = subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_drop_dac_capabilities,
                          capture_output=True)
    return proc.returncode == 0


def bound_by_permissions():
    """preexec_fn making the child subject to file permissions, or skip the test."""
    if os.geteuid() != 0:
        return None
    if not _can_drop_capabilities():
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE: a chmod 555 "
                    "directory stays writable, so the read-only case cannot be tested")
    return _drop_dac_capabilities


def base_env(**extra):
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    env.pop("NUMBA_CACHE_DIR", None)
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
    return env


def start(env, cwd, preexec_fn=None):
    return subprocess.Popen(
        [sys.executable, "-c", WORKLOAD], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn,
    )


def finish(proc):
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"timed out:\n{stderr[-3000:]}") from None
    assert proc.returncode == 0, f"rc={proc.returncode}\n{stderr[-5000:]}"
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, stdout[-2000:] + stderr[-3000:]
    out = json.loads(lines[0][len("RESULT "):])
    out["stderr"] = stderr
    return out


def run(env, cwd, preexec_fn=None):
    return finish(start(env, cwd, preexec_fn))


def totals(out):
    """(hits, misses) summed over the cached kernels (inline helpers have no cache)."""
    cached = [v for v in out["stats"].values() if v["path"] is not None]
    return sum(s["hits"] for s in cached), sum(s["misses"] for s in cached)


def uncached_compiles(out):
    """Dispatchers without a disk cache that were compiled from Python anyway: each
    costs a compile in every process."""
    return {k: v["compiled"] for k, v in out["stats"].items()
            if v["path"] is None and v["compiled"]}


def cache_files(path):
    return sorted(p.name for p in Path(path).rglob("*") if p.suffix in (".nbi", ".nbc"))


def assert_same_results(a, b):
    """Bit-for-bit on the results both runs computed: a cache load must run the same
    machine code as a fresh compile."""
    common = set(a["results"]) & set(b["results"])
    assert "float32.evaluate" in common or "float64.evaluate" in common
    assert {k: a["results"][k] for k in common} == {k: b["results"][k] for k in common}


def reference(params, dtype):
    """NumPy forward pass of the 2-8-3 workload network, in float64: (loss, accuracy)."""
    p = np.asarray(params, dtype=np.float64)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((301, 2))
    y = np.arange(301) % 3
    w1, b1 = p[:16].reshape(2, 8), p[16:24]
    w2, b2 = p[24:48].reshape(8, 3), p[48:51]
    z = np.maximum(X.astype(dtype).astype(np.float64) @ w1 + b1, 0) @ w2 + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    prob = e / e.sum(axis=1, keepdims=True)
    loss = -np.log(np.clip(prob[np.arange(len(y)), y], 1e-7, 1 - 1e-7)).mean()
    return loss, np.mean(np.argmax(z, axis=1) == y)


def assert_correct(out):
    checked = 0
    for key, value in out["results"].items():
        dtype, what = key.split(".")
        loss, acc = reference(out["params"][dtype], dtype)
        rel = 1e-5 if dtype == "float32" else 1e-10
        if what == "evaluate":
            assert value[0] == pytest.approx(loss, rel=rel), key
            assert value[1] == acc, key
            checked += 1
        elif what == "layers_loss":
            assert value == pytest.approx(loss, rel=rel), key
        elif what == "layers_acc":
            assert value == acc, key
        assert 0.2 < loss < 5
    assert checked


FULL = "evaluate forward predict layers"
#: the loss kernel of the workload's 2-8-3 network (its shape family's variant)
LOSS = "network._loss__pair23_c3"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The full float32 workload compiled from scratch into an empty cache directory:
    (result, that cache directory)."""
    cache = tmp_path_factory.mktemp("baseline-cache")
    out = run(base_env(NUMBA_CACHE_DIR=cache, PARTS=FULL), cwd=cache)
    assert_correct(out)
    return out, cache


# --- (a) a second process loads instead of compiling -------------------------------------


def test_first_process_compiles_into_numba_cache_dir(baseline):
    first, cache = baseline
    loss_stats = first["stats"][LOSS]
    assert loss_stats["misses"] >= 1 and loss_stats["hits"] == 0
    assert loss_stats["path"].startswith(str(cache))
    hits, misses = totals(first)
    assert hits == 0 and misses >= 5
    assert cache_files(cache), "nothing was written to NUMBA_CACHE_DIR"


def test_second_process_loads_everything_from_the_cache(baseline):
    first, cache = baseline
    second = run(base_env(NUMBA_CACHE_DIR=cache, PARTS=FULL), cwd=cache)
    loss_stats = second["stats"][LOSS]
    assert loss_stats["misses"] == 0
    assert loss_stats["hits"] == first["stats"][LOSS]["misses"]
    hits, misses = totals(second)
    assert misses == 0, {k: v for k, v in second["stats"].items() if v["misses"]}
    # every signature the second process has came from the disk cache (callees such as
    # a compiled helper are linked into their caller's cached code and not loaded)
    assert hits >= 5
    for name, st in second["stats"].items():
        if st["path"] is not None:
            assert st["hits"] == st["compiled"], (name, st)
    assert_same_results(first, second)
    print(f"cold {first['seconds']:.1f} s, warm {second['seconds']:.1f} s")
    assert second["seconds"] < first["seconds"]


def test_second_process_compiles_nothing(baseline):
    """Not even the small uncached helpers: calling an ``inline='always'`` njit helper
    from Python (no ``cache``) compiles it afresh in every process."""
    first, cache = baseline
    second = run(base_env(NUMBA_CACHE_DIR=cache, PARTS=FULL), cwd=cache)
    assert uncached_compiles(second) == {}


def test_default_cache_location_is_in_tree_and_numba_cache_dir_moves_it(tmp_path):
    """Only reads where the cache would go (nothing is compiled or written)."""
    code = ("import json; from fastnn.kernels import network as k; "
            "print(json.dumps(k.loss_kernel('pair23_c3').stats.cache_path))")
    kernels = package_dir() / "kernels"
    for env, expected in [
        (base_env(), kernels / "__pycache__" if os.access(kernels, os.W_OK) else None),
        (base_env(NUMBA_CACHE_DIR=tmp_path), tmp_path),
    ]:
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=TIMEOUT, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        path = json.loads(proc.stdout)
        if expected is not None:
            assert Path(path) == expected or Path(path).parent == expected, path


# --- (b) several processes compiling into the same empty cache at once ------------------


def test_concurrent_cold_start(tmp_path, baseline):
    cache = tmp_path / "cache"
    cache.mkdir()
    go = tmp_path / "go"
    procs = []
    # different orders, so that different signatures of one kernel are compiled and
    # saved at the same moment (each save rewrites the kernel's shared index file)
    orders = ["float32 float64", "float64 float32", "float32 float64"]
    for i, order in enumerate(orders):
        env = base_env(NUMBA_CACHE_DIR=cache, WAIT_FOR=go, READY=tmp_path / f"ready{i}",
                       DTYPES=order, PARTS="evaluate")
        procs.append(start(env, cwd=tmp_path))
    deadline = time.time() + TIMEOUT
    while not all((tmp_path / f"ready{i}").exists() for i in range(3)):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.time() < deadline
        time.sleep(0.01)
    go.touch()
    outs = [finish(p) for p in procs]
    for out in outs:
        assert_correct(out)
        assert_same_results(out, baseline[0])
        assert_same_results(out, outs[0])
        assert "Traceback" not in out["stderr"] and "Warning" not in out["stderr"]
    # the cache they wrote together is complete and loads cleanly
    after = run(base_env(NUMBA_CACHE_DIR=cache, DTYPES="float32 float64", PARTS="evaluate"),
                cwd=tmp_path)
    assert_same_results(after, outs[0])
    lost = {k: v["misses"] for k, v in after["stats"].items() if v["misses"] and v["path"]}
    assert not lost, f"cache entries missing after the race: {lost}; files {cache_files(cache)}"


# --- (c) read-only cache directories and a read-only install ---------------------------


def _copy_package(dest):
    """A private copy of the fastnn package (no compiled cache), importable from dest."""
    shutil.copytree(package_dir(), dest / "fastnn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    return dest


def _read_only(*paths):
    for top in paths:
        for root, dirs, files in os.walk(top):
            for name in files:
                os.chmod(os.path.join(root, name), 0o444)
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o555)
        os.chmod(top, 0o555)


def _writable(*paths):
    for top in paths:
        os.chmod(top, 0o755)
        for root, dirs, files in os.walk(top):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)


@pytest.fixture
def sandbox(tmp_path):
    """tmp_path with a package copy in ``pkg``; restores write permission afterwards so
    pytest can delete it."""
    (tmp_path / "pkg").mkdir()
    _copy_package(tmp_path / "pkg")
    yield tmp_path
    _writable(tmp_path)


SCENARIOS = {
    # name: (NUMBA_CACHE_DIR state, HOME state); the package copy is read-only in all.
    # Numba skips a cache location it cannot write to (even a warm one) and tries the
    # next: NUMBA_CACHE_DIR, the package's __pycache__, then $HOME/.cache/numba.
    "ro-cache-dir,writable-home": ("empty", "writable"),
    "ro-cache-dir,ro-home": ("empty", "read-only"),  # nowhere to cache at all
    "ro-warm-cache-dir,ro-home": ("warm", "read-only"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_read_only_locations_still_compute_correct_results(sandbox, scenario, baseline):
    preexec = bound_by_permissions()
    cache_state, home_state = SCENARIOS[scenario]
    pkg, home, cache = sandbox / "pkg", sandbox / "home", sandbox / "cache"
    home.mkdir()
    read_only = [pkg]
    env = base_env(PYTHONPATH=pkg, HOME=home, XDG_CACHE_HOME=None, NUMBA_CACHE_DIR=None)
    if cache_state is not None:
        cache.mkdir()
        env["NUMBA_CACHE_DIR"] = str(cache)
        read_only.append(cache)
        if cache_state == "warm":
            warm = run(env, cwd=sandbox)  # still writable here: fill it
            assert cache_files(cache)
            assert totals(warm)[1] > 0
    if home_state == "read-only":
        read_only.append(home)
    _read_only(*read_only)
    env["PROBE_READONLY"] = os.pathsep.join(str(p / "fastnn" if p == pkg else p)
                                            for p in read_only)
    out = run(env, cwd=sandbox, preexec_fn=preexec)

    assert Path(out["fastnn"]).parent == pkg / "fastnn"  # the read-only copy ran
    assert set(out["probe"].values()) == {"PermissionError"}, out["probe"]
    assert_correct(out)
    assert_same_results(out, baseline[0])
    if home_state == "writable":
        # Numba fell back to its user-wide cache under $HOME, and a second process in
        # the same situation loads from there
        paths = {s["path"] for s in out["stats"].values() if s["path"] is not None}
        assert paths and all(p.startswith(str(home)) for p in paths), paths
        assert cache_files(home)
        again = run(env, cwd=sandbox, preexec_fn=preexec)
        assert_same_results(again, out)
        assert totals(again)[1] == 0


# --- (d) the cache follows source edits -----------------------------------------------


FASTMATH_EDIT = ("lambda x: math.exp(x)", "lambda x: 2.0 * math.exp(x)")


def test_editing_an_inlined_helper_invalidates_the_cache(tmp_path):
    """Kernels inline helpers from other modules (``exp_``/``log_`` from
    kernels/fastmath.py, the forward passes from kernels/network.py, options from
    _config.py).  Numba's cache index is keyed on the defining file's modification time
    and size only, so after editing fastmath.py a second process silently loads machine
    code compiled from the *old* fastmath.py.  An edited source must give what a fresh
    compile of it gives.

    The edit doubles every float64 exp, which adds log(2) to every unclipped loss."""
    pkg = _copy_package(tmp_path / "pkg")
    cache = tmp_path / "cache"
    cache.mkdir()
    env = base_env(PYTHONPATH=pkg, NUMBA_CACHE_DIR=cache, DTYPES="float64", PARTS="evaluate")
    before = run(env, cwd=tmp_path)
    assert Path(before["fastnn"]).parent == pkg / "fastnn"

    fastmath = pkg / "fastnn" / "kernels" / "fastmath.py"
    text = fastmath.read_text()
    assert text.count(FASTMATH_EDIT[0]) == 1, "fastmath.py changed: update FASTMATH_EDIT"
    time.sleep(0.01)  # a distinct modification time even on coarse file systems
    fastmath.write_text(text.replace(*FASTMATH_EDIT))
    st = fastmath.stat()
    os.utime(fastmath, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    edited = run(env, cwd=tmp_path)
    fresh_cache = tmp_path / "fresh"
    fresh_cache.mkdir()
    fresh = run(dict(env, NUMBA_CACHE_DIR=str(fresh_cache)), cwd=tmp_path)

    old = before["results"]["float64.evaluate"][0]
    new = fresh["results"]["float64.evaluate"][0]
    # log(2) more on every sample below the upper clip
    assert old + 0.1 < new <= old + np.log(2) + 1e-9, "the edit had no effect"
    stale = {k for k, v in edited["stats"].items() if v["hits"]}
    assert edited["results"] == fresh["results"], (
        f"stale cache: after editing fastmath.py the cached kernels {sorted(stale)} "
        f"still compute loss {edited['results']['float64.evaluate'][0]!r} (old source: "
        f"{old!r}, fresh compile of the edited source: {new!r})"
    )

