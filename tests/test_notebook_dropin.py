"""THE acceptance test: the seed notebook, run with fastnn's classes, prints what it
prints with its own NumPy classes.

The notebook's code cells are parsed out of ``tests/data/seed_notebook.txt`` (see
``seed_notebook.py``) and run as written -- bugs included: the misspelt ``loswest_loss``
(so every iteration "finds" new weights and prints, 10,000 lines per search cell), the
aliased ``best_dense_bias2``, ``np.random.rand`` biases (float64 under ``nnfs.init()``)
-- except the ``!pip`` cell and the torch cell.  The fastnn run replaces the four class
definitions by ``from fastnn import ...``; nothing else changes.

Each run is a subprocess (``nnfs.init()`` patches NumPy process-wide, STYLE.md #11);
stdout (~30,000 lines) is compared line by line: same text, same integers (iteration
numbers), every float (losses, accuracies, the probabilities cell 6 prints) within
``RTOL``.  An accuracy differing by one flipped argmax is off by >= 1/300 relative, so
RTOL cannot hide a tie-flip.

Variants (the reference for the two ``nnfs.init()`` variants is the same notebook run):
  nnfs_after_import   ``import fastnn`` first, then the notebook's ``nnfs.init()``
  nnfs_before_import  ``nnfs.init()`` where the notebook has it, fastnn imported after
  no_nnfs             ``nnfs.init()`` replaced by ``np.random.seed(0)`` in both runs
and, beyond the seed's own draws, the nnfs variant with ``np.random.seed(k)`` right after
``nnfs.init()`` for k = 1 (``test_notebook_prints_the_same_with_other_random_draws``).

Run time: ~2.5 s per notebook run (~30,000 iterations in all), ~20 s for the file with
compiled kernels in the cache, plus ~10-20 s the first time after any change to
fastnn's sources (subprocesses use a Numba cache keyed by the sources: ``subproc.py``).
The only deviation from the notebook's code: ``import pandas`` (unused by the notebook;
not a dependency) gets an empty stand-in module when pandas is not installed.
"""

import json
import re
import subprocess
import sys
import time

import pytest
from seed_notebook import (
    FASTNN_IMPORT,
    NOTEBOOK_CLASSES,
    SEED,
    build_script,
    code_cells,
    runnable_cells,
)
from subproc import env

#: Relative tolerance for every printed float (the brief: <= 1e-5).
RTOL = 1e-5
#: Iterations of each search cell (every one prints, because of `loswest_loss`).
SEARCH_ITERATIONS = 10_000
#: Generous: each run takes ~3 s on the reference machine (plus ~20 s of compiling).
TIMEOUT = 600

# The notebook imports pandas but never uses it; pandas is not a dependency of fastnn or
# its tests, so an empty stand-in module is used when it is not installed.
PREAMBLE = """\
import sys, types
try:
    import pandas
except ImportError:
    sys.modules["pandas"] = types.ModuleType("pandas")
"""

# Written to stderr so it cannot disturb the compared stdout: which classes ran and
# whether NumPy was patched by nnfs.
TRAILER = f"""
import json as _json, sys as _sys
_sys.stderr.write("HARNESS " + _json.dumps({{
    "classes": {{_n: globals()[_n].__module__ for _n in {NOTEBOOK_CLASSES!r}}},
    "randn": getattr(np.random.randn, "__module__", None),
    "dot": getattr(np.dot, "__module__", None),
}}) + "\\n")
"""

CELL_MARK = "#### In [{}]"

SCRIPTS = {
    "ref_nnfs": dict(use_fastnn=False, nnfs_init=True),
    "fast_nnfs_after_import": dict(use_fastnn=True, nnfs_init=True, import_fastnn_first=True),
    "fast_nnfs_before_import": dict(use_fastnn=True, nnfs_init=True),
    "ref_no_nnfs": dict(use_fastnn=False, nnfs_init=False),
    "fast_no_nnfs": dict(use_fastnn=True, nnfs_init=False),
}
VARIANTS = {
    "nnfs_after_import": ("ref_nnfs", "fast_nnfs_after_import"),
    "nnfs_before_import": ("ref_nnfs", "fast_nnfs_before_import"),
    "no_nnfs": ("ref_no_nnfs", "fast_no_nnfs"),
}


def marked_cells():
    """The runnable cells, each starting with a print of its marker (same in every run)."""
    return [(n, f"print({CELL_MARK.format(n)!r})\n{code}") for n, code in runnable_cells()]


def script(name, reseed=None):
    """The script for ``name``; ``reseed=k`` adds ``np.random.seed(k)`` right after
    each ``nnfs.init()`` (the same notebook with other random draws)."""
    text = PREAMBLE + build_script(marked_cells(), **SCRIPTS[name]) + TRAILER
    if reseed is not None:
        assert text.count("\nnnfs.init()\n") == 1
        text = text.replace("\nnnfs.init()\n", f"\nnnfs.init()\nnp.random.seed({reseed})\n")
    return text


def _start(tmp, name, reseed=None):
    path = tmp / f"{name}.py"
    path.write_text(script(name, reseed))
    out = open(tmp / f"{name}.out", "w")  # closed in _finish
    err = open(tmp / f"{name}.err", "w")
    proc = subprocess.Popen([sys.executable, str(path)], stdout=out, stderr=err,
                            stdin=subprocess.DEVNULL, cwd=tmp, env=env())
    return proc, out, err, time.perf_counter()


def _finish(tmp, name, started):
    proc, out, err, t0 = started
    try:
        rc = proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        err.close()
    seconds = time.perf_counter() - t0
    stdout = (tmp / f"{name}.out").read_text()
    stderr = (tmp / f"{name}.err").read_text()
    assert rc == 0, f"{name} failed (rc={rc}):\n{stderr[-5000:]}"
    info = [line for line in stderr.splitlines() if line.startswith("HARNESS ")]
    assert len(info) == 1, stderr[-5000:]
    return stdout, json.loads(info[0][len("HARNESS "):]), seconds


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the five scripts once; {name: (stdout, harness info, seconds)}.

    The two references and the first fastnn run start together; the first fastnn run
    compiles what the notebook needs into the session's Numba cache (subproc.py), and
    the other two fastnn runs start after it, so they do not all compile at the same
    moment (test_cache.py tests that race on its own)."""
    tmp = tmp_path_factory.mktemp("dropin")
    first = ["ref_nnfs", "ref_no_nnfs", "fast_nnfs_after_import"]
    started = {name: _start(tmp, name) for name in first}
    results = {name: _finish(tmp, name, started[name]) for name in first}
    started = {name: _start(tmp, name) for name in SCRIPTS if name not in first}
    results.update({name: _finish(tmp, name, s) for name, s in started.items()})
    return results


# --- parsing and comparing the printed output -------------------------------------------

_NUM = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|\bnan\b|\binf\b")
_SEARCH_LINE = re.compile(
    r"^New set of weight found with the iteration :  (\d+) Loss : (\S+) Accuracy :  (\S+)$"
)


def split_by_cell(stdout):
    """{execution count: [lines]} using the cell markers."""
    cells, current = {}, None
    for line in stdout.splitlines():
        m = re.fullmatch(r"#### In \[(\d+)\]", line)
        if m:
            current = int(m.group(1))
            cells[current] = []
        else:
            assert current is not None, f"output before the first cell: {line!r}"
            cells[current].append(line)
    return cells


def _sig_digits(token):
    mantissa = token.lower().split("e")[0].lstrip("+-").replace(".", "")
    return len(mantissa.lstrip("0"))


def compare_lines(ref_lines, fast_lines, where):
    """Mismatch descriptions (empty when fast == ref within RTOL)."""
    problems = []
    if len(ref_lines) != len(fast_lines):
        problems.append(f"{where}: {len(ref_lines)} reference lines vs {len(fast_lines)} fastnn")
    for i, (r, f) in enumerate(zip(ref_lines, fast_lines, strict=False)):
        # NumPy pads array entries to a common width: whitespace is not compared
        if re.sub(r"\s+", "", _NUM.sub("#", r)) != re.sub(r"\s+", "", _NUM.sub("#", f)):
            problems.append(f"{where} line {i}: text differs\n  ref:  {r}\n  fast: {f}")
            continue
        for tr, tf in zip(_NUM.findall(r), _NUM.findall(f), strict=True):
            if not re.search(r"[.eEna]", tr + tf):  # integers: iteration numbers
                ok = tr == tf
            else:
                vr, vf = float(tr), float(tf)
                ok = vr == vf or abs(vr - vf) <= RTOL * max(abs(vr), abs(vf))
                # a float32 never prints more than 9 significant digits and a float64
                # loss almost always prints 15-17: one of each means different dtypes
                dr, df = _sig_digits(tr), _sig_digits(tf)
                ok &= not (min(dr, df) <= 9 and max(dr, df) >= 12)
            if not ok:
                problems.append(f"{where} line {i}: {tr} vs {tf}\n  ref:  {r}\n  fast: {f}")
                break
    return problems


# --- the harness itself -------------------------------------------------------------------


def test_parser_finds_the_notebook_cells():
    cells = code_cells()
    assert [n for n, _ in cells] == [4, 18, 6, 7, 17, 15, 20]
    assert [n for n, _ in runnable_cells()] == [18, 6, 17, 15, 20]
    code = dict(cells)
    assert code[4].strip() == "!pip install nnfs"
    assert "import torch" in code[7]
    assert code[18].count("class ") == 4 and "nnfs.init()" in code[18]
    # the code stops where the output starts, and the last statement of each cell is in
    assert code[6].rstrip().endswith("print(loss_value)")
    for n in (17, 15, 20):
        assert code[n].rstrip().endswith("layer2.biases = best_dense_bias2")
        assert "loswest_loss" in code[n] and "New set of weight" in code[n]
        assert f"range({SEARCH_ITERATIONS})" in code[n]


def test_scripts_replace_only_the_class_definitions():
    ref = build_script(runnable_cells(), use_fastnn=False, nnfs_init=True)
    fast = build_script(runnable_cells(), use_fastnn=True, nnfs_init=True)
    assert all(f"class {c}" in ref for c in NOTEBOOK_CLASSES)
    assert not any(f"class {c}" in fast for c in NOTEBOOK_CLASSES)
    assert fast.count(FASTNN_IMPORT) == 1
    # apart from the class bodies, the scripts are identical line for line
    ref_body = [ln for ln in ref.splitlines() if ln.strip()]
    fast_body = [ln for ln in fast.splitlines() if ln.strip()]
    assert set(fast_body) - set(ref_body) == {FASTNN_IMPORT}
    # the variants put nnfs.init() and the fastnn import in the order they claim
    after = script("fast_nnfs_after_import")
    before = script("fast_nnfs_before_import")
    assert after.index("import fastnn") < after.index("nnfs.init()")
    assert "\nimport fastnn" not in before
    assert before.index("nnfs.init()") < before.index(FASTNN_IMPORT)
    for name in ("ref_no_nnfs", "fast_no_nnfs"):
        assert "nnfs.init()" not in script(name)
        assert "np.random.seed(0)" in script(name)


def test_comparison_catches_differences():
    line = "New set of weight found with the iteration :  {} Loss : {} Accuracy :  {}"
    ref = [line.format(3, "1.1196024", "0.3333333333333333")]
    assert compare_lines(ref, [line.format(3, "1.1196025", "0.3333333333333333")], "") == []
    bad = [
        line.format(3, "1.1196024", "0.33666666666666667"),  # one argmax flipped
        line.format(3, "1.1196224", "0.3333333333333333"),  # loss off by 2e-5
        line.format(3, "1.1196024123456789", "0.3333333333333333"),  # float64 loss
        line.format(4, "1.1196024", "0.3333333333333333"),  # another iteration
        line.format(3, "nan", "0.3333333333333333"),
        "New set of weights found with the iteration :  3",
        line.format(3, "1.1196024", "0.3333333333333333") + " 7",
    ]
    for fast in bad:
        assert compare_lines(ref, [fast], ""), fast
    assert compare_lines(ref, ref + ref, "")


@pytest.mark.slow
def test_reference_reproduces_the_notebooks_recorded_output(runs):
    """The harness runs the notebook faithfully: cell 6's saved output (printed right
    after nnfs.init()) is reproduced character for character by the NumPy classes."""
    text = SEED.read_text()
    start = text.index("print(loss_value)\n\n") + len("print(loss_value)\n\n")
    recorded = text[start:].split("\n\n")[0].splitlines()
    assert recorded[-1] == "1.098578"
    assert split_by_cell(runs["ref_nnfs"][0])[6] == recorded


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_notebook_prints_the_same_with_fastnn(runs, variant):
    ref_name, fast_name = VARIANTS[variant]
    ref_out, ref_info, _ = runs[ref_name]
    fast_out, fast_info, _ = runs[fast_name]

    # the runs used the classes and NumPy patches they were meant to
    assert set(ref_info["classes"].values()) == {"__main__"}
    # (the loss class lives in fastnn.losses with the book's losses since issue 9)
    assert set(fast_info["classes"].values()) == {"fastnn.layers", "fastnn.losses"}
    nnfs = variant != "no_nnfs"
    for info in (ref_info, fast_info):
        assert (info["randn"] == "nnfs.core") == nnfs
        assert (info["dot"] == "nnfs.core") == nnfs

    ref_cells, fast_cells = split_by_cell(ref_out), split_by_cell(fast_out)
    assert list(ref_cells) == list(fast_cells) == [18, 6, 17, 15, 20]
    assert ref_cells[18] == fast_cells[18] == []
    assert len(ref_cells[6]) == 8  # the summarised 1000x3 array and the loss
    problems = []
    for n in (6, 17, 15, 20):
        if n != 6:
            # every iteration prints (loswest_loss), in order, in both runs
            iters = [int(_SEARCH_LINE.match(ln).group(1)) for ln in ref_cells[n]]
            assert iters == list(range(SEARCH_ITERATIONS)), n
        problems += compare_lines(ref_cells[n], fast_cells[n], f"In [{n}]")
    assert not problems, (
        f"{len(problems)} mismatching lines, first ones:\n" + "\n".join(problems[:10])
    )


@pytest.mark.slow
def test_fastnn_run_time_is_reported(runs):
    """Not a speed gate (shared machines vary): records each run's wall time, and fails
    only if a fastnn run is wildly slower than the NumPy notebook (a pathological
    per-call cost, e.g. a recompile per call)."""
    times = {name: round(seconds, 2) for name, (_, _, seconds) in runs.items()}
    print("drop-in run times (s; 3 then 2 concurrent processes):", json.dumps(times))
    for name, seconds in times.items():
        if name.startswith("fast_"):
            ref = times["ref_no_nnfs" if name.endswith("no_nnfs") else "ref_nnfs"]
            assert seconds < 10 * ref + 30, (name, seconds, ref)


# --- the same notebook with other random draws ----------------------------------------

#: np.random.seed(k) right after nnfs.init(): the first k after 0, not a hand-picked one.
OTHER_SEEDS = [1]


@pytest.fixture(scope="module")
def reseeded_runs(tmp_path_factory, runs):  # after `runs`: the kernels are compiled
    results = {}
    for k in OTHER_SEEDS:
        tmp = tmp_path_factory.mktemp(f"reseed{k}")
        started = {n: _start(tmp, n, k) for n in ("ref_nnfs", "fast_nnfs_before_import")}
        results[k] = {n: _finish(tmp, n, st)[0] for n, st in started.items()}
    return results


@pytest.mark.slow
@pytest.mark.parametrize("seed", OTHER_SEEDS)
def test_notebook_prints_the_same_with_other_random_draws(reseeded_runs, seed):
    """The acceptance criterion is not a property of seed 0: the printed losses depend
    on the random draws only through the weights, and every weight is a legitimate
    input.  (Under nnfs.init() the losses in cells 15 and 20 come from logits of order
    10^2-10^3 -- the biases grow by 0.25 per iteration -- so a one-ulp difference in a
    float32 dense output moves a loss by ~1e-5 relative; see
    test_nnfs_init.py::test_dense_layer_rounds_like_the_notebook_under_nnfs.)"""
    ref_cells = split_by_cell(reseeded_runs[seed]["ref_nnfs"])
    fast_cells = split_by_cell(reseeded_runs[seed]["fast_nnfs_before_import"])
    assert list(ref_cells) == list(fast_cells) == [18, 6, 17, 15, 20]
    problems = []
    for n in (6, 17, 15, 20):
        problems += compare_lines(ref_cells[n], fast_cells[n], f"In [{n}]")
    assert not problems, (
        f"{len(problems)} mismatching lines, first ones:\n" + "\n".join(problems[:10])
    )
