"""The CI ratio gate, ``python -m bench.report RESULTS --gate bench/floors.json``, on
small synthetic pytest-benchmark JSON files (nothing is benchmarked here): it passes at
the configured floors, fails when a floor is raised above the measured ratio, reports
missing groups, refuses malformed files with a clear error, leaves the thread-scaling
group ungated on a busy machine (and says so), and ``bench/floors.json`` names groups
that the benchmarks in ``bench/`` define."""

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ROOT / "bench" / "floors.json"


def _load(name, path):
    """Load a module by path: ``bench`` is not a package (and ``tests`` is not either)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load("fastnn_bench_report_for_gate_tests", ROOT / "bench" / "report.py")
REAL = json.loads(FLOORS.read_text(encoding="utf-8"))
CHAINS = "search_chains2|2-3-3|n=300|50000_steps"


# -- synthetic results -------------------------------------------------------------------
def entry(group, impl, median, **info):
    return {"group": group, "name": f"test_{impl}", "fullname": f"bench::test_{impl}",
            "extra_info": {"impl": impl, **info}, "stats": {"median": median, "rounds": 3}}


def speedup(group, ratio, load=None):
    """Benchmarks of ``group`` whose ratio is ``ratio``: a plain fastnn-vs-NumPy group,
    or, for the thread-scaling group, fastnn on 2 threads against 1 thread and the
    serial kernel, each recording ``load`` as the benchmarks do."""
    base = 1e-3
    if group.startswith(("search_chains2", "search_candidates64")):
        info = {"role": "baseline", "scaling": True, "threads": 2, "threading_layer": "omp"}
        if load is not None:
            info["load_average"] = load
        return [entry(group, "fastnn-serial", base * 1.02, **info),
                entry(group, "fastnn-1-thread", base, **info),
                entry(group, "fastnn-2-threads", base / ratio, **{**info, "role": "subject"})]
    extra = {} if load is None else {"load_average": load}
    return [entry(group, "numpy", base * 1.1, **extra),
            entry(group, "numpy-prealloc", base, **extra),
            entry(group, "fastnn", base / ratio, **extra)]


def write_results(path, benchmarks, cpus=2):
    data = {"machine_info": {"cpu": {"count": cpus, "brand_raw": "Test CPU"},
                             "python_version": "3.x"},
            "benchmarks": benchmarks, "version": "5.0"}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_floors(path, groups):
    path.write_text(json.dumps({"about": "test floors", "groups": groups}), encoding="utf-8")
    return path


def run(capsys, results, floors, *more):
    status = report.main([str(results), "--gate", str(floors), *more])
    out, err = capsys.readouterr()
    return status, out, err


def measured(group):
    """The lowest ratio behind the real floor of ``group`` (its floor if none recorded)."""
    spec = REAL["groups"][group]
    return min(spec.get("measured") or [spec["floor"]])


def all_at(ratios, load=1.0):
    return [b for group, ratio in ratios.items() for b in speedup(group, ratio, load)]


# -- the real floors file ----------------------------------------------------------------
def test_real_floors_parse_and_sit_below_their_measurements():
    floors = report.load_floors(FLOORS)
    assert set(floors) == set(REAL["groups"])
    assert {"fused_loss|2-3-3|n=3000", "fused_loss|2-64-3|n=3000",
            "search_book|2-3-3|n=300|10000_steps", CHAINS} <= set(floors)
    for group, f in floors.items():
        spec = REAL["groups"][group]
        assert spec.get("measured"), f"{group}: record the ratios the floor was set from"
        # headroom for shared CI machines (10-30% run to run): at most ~80% of the lowest
        # ratio measured, so noise alone does not fail the gate
        assert f.floor <= 0.8 * min(spec["measured"]), group
        assert f.floor > 1, group  # a floor of 1 or less gates nothing
    chains = floors[CHAINS]
    assert chains.min_cpus == 2 and chains.max_load_per_cpu is not None


def _bench_groups():
    """Every group name the benchmark modules define, built from their own constants (the
    names are f-strings, so a plain grep cannot find them whole)."""
    loss_src = (ROOT / "bench" / "test_bench_loss.py").read_text(encoding="utf-8")
    search_src = (ROOT / "bench" / "test_bench_search.py").read_text(encoding="utf-8")
    assert 'group = f"fused_loss|{' in loss_src  # the template rebuilt below
    assert 'f"search_{what or self.name}|{net}|n={3 * self.per_class}|' in search_src
    loss = _load("fastnn_bench_loss_for_gate_tests", ROOT / "bench" / "test_bench_loss.py")
    search = _load("fastnn_bench_search_for_gate_tests",
                   ROOT / "bench" / "test_bench_search.py")
    groups = {f"fused_loss|{'-'.join(map(str, sizes))}|n={3 * per_class}"
              for sizes, per_class, _ in loss.LOSS_CASES}
    groups |= {w.group(w.iterations) for w in (search.BOOK, search.WIDE)}
    groups |= {search.BOOK.group(steps, name)
               for name, (_, _, steps, _) in search.THREAD_GROUPS.items()}
    return groups


def test_real_floors_name_groups_that_the_benchmarks_define():
    defined = _bench_groups()
    missing = set(REAL["groups"]) - defined
    assert not missing, f"bench/floors.json gates groups no benchmark defines: {missing}"


def test_ci_and_tox_run_the_gate():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    assert "-m bench.report" in ci and "--gate bench/floors.json" in ci
    assert "-m bench.report" in tox and "floors.json" in tox


# -- pass / fail -------------------------------------------------------------------------
def test_gate_passes_at_the_measured_ratios(tmp_path, capsys):
    ratios = {group: measured(group) for group in REAL["groups"]}
    results = write_results(tmp_path / "r.json", all_at(ratios))
    status, out, err = run(capsys, results, FLOORS)
    assert status == 0, err
    assert f"gate passed: {len(ratios)} of {len(ratios)} groups" in out
    assert "FAIL" not in err
    # the table shows measured against floor for every gated group
    gate_table = out[out.index("| gated group |"):]
    for group in REAL["groups"]:
        cell = "`" + group.replace("|", "\\|") + "`"
        line = next(ln for ln in gate_table.splitlines() if ln.startswith(f"| {cell} |"))
        assert f"| {ratios[group]:.2f}x | {REAL['groups'][group]['floor']:g}x | ok" in line


def test_gate_passes_exactly_at_the_floors(tmp_path, capsys):
    ratios = {group: spec["floor"] for group, spec in REAL["groups"].items()}
    results = write_results(tmp_path / "r.json", all_at(ratios))
    status, _, err = run(capsys, results, FLOORS)
    assert status == 0, err


@pytest.mark.parametrize("group", sorted(REAL["groups"]))
def test_gate_fails_when_a_floor_is_raised_above_the_measured_ratio(tmp_path, capsys, group):
    ratios = {g: measured(g) for g in REAL["groups"]}
    results = write_results(tmp_path / "r.json", all_at(ratios))
    raised = copy.deepcopy(REAL["groups"])
    raised[group]["floor"] = round(ratios[group] * 1.05, 2)
    floors = write_floors(tmp_path / "floors.json", raised)
    status, out, err = run(capsys, results, floors)
    assert status == 1
    assert f"FAIL: {group}: {ratios[group]:.2f}x, below its floor of " \
           f"{raised[group]['floor']:g}x" in err
    assert err.count("FAIL:") == 1  # the others still pass
    assert "gate FAILED" in out and "BELOW FLOOR" in out


def test_gate_lists_every_group_below_its_floor(tmp_path, capsys):
    ratios = {g: REAL["groups"][g]["floor"] * 0.5 for g in REAL["groups"]}
    results = write_results(tmp_path / "r.json", all_at(ratios))
    status, out, err = run(capsys, results, FLOORS)
    assert status == 1
    for group in REAL["groups"]:
        assert f"FAIL: {group}:" in err
    assert f"{len(ratios)} failed" in out


def test_gate_passes_the_other_checks_through(tmp_path, capsys):
    """--gate combines with --check-bars: a missed bar still fails."""
    group = "search_book|2-3-3|n=300|10000_steps"
    benchmarks = speedup(group, 70)
    benchmarks[-1]["extra_info"]["bar"] = 80
    results = write_results(tmp_path / "r.json", benchmarks)
    floors = write_floors(tmp_path / "f.json", {group: {"floor": 50}})
    assert run(capsys, results, floors)[0] == 0
    status, _, err = run(capsys, results, floors, "--check-bars")
    assert status == 1 and "below its bar of 80x" in err


# -- missing groups ----------------------------------------------------------------------
def test_a_required_group_missing_from_the_results_fails(tmp_path, capsys):
    ratios = {g: measured(g) for g in REAL["groups"] if g.startswith("fused_loss")}
    results = write_results(tmp_path / "r.json", all_at(ratios))
    status, out, err = run(capsys, results, FLOORS)
    assert status == 1
    for group in set(REAL["groups"]) - set(ratios):
        assert f"FAIL: {group}: missing from the results (required by" in err
    assert "MISSING" in out


def test_a_group_without_its_subject_has_no_ratio_and_fails(tmp_path, capsys):
    group = "fused_loss|2-3-3|n=3000"
    benchmarks = [b for b in speedup(group, 30) if b["extra_info"]["impl"] != "fastnn"]
    results = write_results(tmp_path / "r.json", benchmarks)
    floors = write_floors(tmp_path / "f.json", {group: {"floor": 20}})
    status, _, err = run(capsys, results, floors)
    assert status == 1
    assert f"FAIL: {group}: no ratio: subject missing" in err


def test_an_optional_group_may_be_missing(tmp_path, capsys):
    results = write_results(tmp_path / "r.json", speedup("a|b", 5))
    floors = write_floors(tmp_path / "f.json", {"a|b": {"floor": 2},
                                               "c|d": {"floor": 2, "required": False}})
    status, out, err = run(capsys, results, floors)
    assert status == 0, err
    assert "not gated (missing from the results (not required))" in out
    assert "1 not gated (c|d)" in out


def test_an_empty_run_fails_every_required_group(tmp_path, capsys):
    results = write_results(tmp_path / "r.json", [])
    status, _, err = run(capsys, results, FLOORS)
    assert status == 1
    required = [g for g, s in REAL["groups"].items() if s.get("required", True)]
    assert err.count("missing from the results") == len(required)


# -- the thread-scaling group: gated only on a quiet machine -----------------------------
def chains_run(tmp_path, ratio, load, cpus=2):
    return write_results(tmp_path / "r.json", speedup(CHAINS, ratio, load), cpus=cpus)


def chains_floors(tmp_path):
    return write_floors(tmp_path / "f.json", {CHAINS: REAL["groups"][CHAINS]})


def test_scaling_is_gated_on_a_quiet_machine(tmp_path, capsys):
    floors = chains_floors(tmp_path)
    status, out, _ = run(capsys, chains_run(tmp_path, measured(CHAINS), 1.1), floors)
    assert status == 0 and "load average 1.10 <= 1.50 = 0.75 x 2 CPUs" in out
    status, _, err = run(capsys, chains_run(tmp_path, 1.05, 1.1), floors)
    assert status == 1 and f"FAIL: {CHAINS}: 1.05x, below its floor" in err


def test_scaling_is_not_gated_on_a_busy_machine_and_says_so(tmp_path, capsys):
    """On 2 vCPUs with another process holding a core, 2 threads ran at 0.6x 1 thread in
    a real run (load average 2.01): a failure there would say nothing about fastnn."""
    floors = chains_floors(tmp_path)
    status, out, err = run(capsys, chains_run(tmp_path, 0.6, 2.01), floors)
    assert status == 0, err
    assert "not gated (load average 2.01 > 1.50 = 0.75 x 2 CPUs" in out
    assert f"0 of 1 groups at or above their floors, 1 not gated ({CHAINS})" in out
    # the limit scales with the CPU count: the same load on 4 CPUs is gated
    status, _, err = run(capsys, chains_run(tmp_path, 0.6, 2.01, cpus=4), floors)
    assert status == 1 and "below its floor" in err


def test_scaling_without_a_recorded_load_is_gated(tmp_path, capsys):
    floors = chains_floors(tmp_path)
    status, out, err = run(capsys, chains_run(tmp_path, 0.9, None), floors)
    assert status == 1 and "below its floor" in err
    assert "load average not recorded, gated anyway" in out


def test_scaling_is_not_gated_on_one_cpu(tmp_path, capsys):
    """The benchmark skips itself without 2 Numba threads: absent, and not a failure."""
    floors = chains_floors(tmp_path)
    results = write_results(tmp_path / "r.json", speedup("fused_loss|x", 30), cpus=1)
    status, out, err = run(capsys, results, floors)
    assert status == 0, err
    assert "not gated (needs 2 CPUs, the run had 1)" in out


# -- malformed files: a clear error (status 2), never a pass -----------------------------
def good_results(tmp_path):
    return write_results(tmp_path / "r.json", speedup("a|b", 5))


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "is not valid JSON"),
    ("[]", "no \"benchmarks\" list"),
    ('{"machine_info": {}}', "no \"benchmarks\" list"),
    ('{"benchmarks": [{"name": "t", "group": "a", "stats": null}]}',
     "benchmarks[0] (t) has no stats.median"),
    ('{"benchmarks": [{"name": "t", "stats": {"median": "fast"}}]}', "has no stats.median"),
    ('{"benchmarks": [{"name": "t", "stats": {"median": 1}, "extra_info": []}]}',
     "extra_info is not an object"),
])
def test_malformed_results(tmp_path, capsys, text, message):
    path = tmp_path / "r.json"
    path.write_text(text, encoding="utf-8")
    status, out, err = run(capsys, path, FLOORS)
    assert status == 2
    assert message in err and str(path) in err and "error:" in err
    assert out == ""  # no table, no verdict


def test_missing_results_file(tmp_path, capsys):
    status, _, err = run(capsys, tmp_path / "nope.json", FLOORS)
    assert status == 2 and "cannot read the results file" in err


@pytest.mark.parametrize(("floors", "message"), [
    ("{oops", "is not valid JSON"),
    ('{"groups": {"a|b": {"floor": 2}, "a|b": {"floor": 3}}}', "duplicate key(s) ['a|b']"),
    ("[]", "expected a JSON object"),
    ('{"groups": {}}', "\"groups\" must be a non-empty object"),
    ('{"floors": {"a|b": {"floor": 2}}}', "unknown top-level key(s) ['floors']"),
    ('{"groups": {"a|b": 2}}', "expected an object such as"),
    ('{"groups": {"a|b": {"flor": 2}}}', "unknown key(s) ['flor']"),
    ('{"groups": {"a|b": {}}}', "\"floor\" must be a positive number, not None"),
    ('{"groups": {"a|b": {"floor": "20"}}}', "\"floor\" must be a positive number"),
    ('{"groups": {"a|b": {"floor": -1}}}', "\"floor\" must be a positive number"),
    ('{"groups": {"a|b": {"floor": true}}}', "\"floor\" must be a positive number"),
    ('{"groups": {"a|b": {"floor": 2, "required": "no"}}}', "\"required\" must be true"),
    ('{"groups": {"a|b": {"floor": 2, "min_cpus": 1.5}}}', "\"min_cpus\" must be"),
    ('{"groups": {"a|b": {"floor": 2, "max_load_per_cpu": 0}}}',
     "\"max_load_per_cpu\" must be"),
    ('{"groups": {"a|b": {"floor": 2, "measured": [1, "x"]}}}', "\"measured\" must be"),
])
def test_malformed_floors(tmp_path, capsys, floors, message):
    path = tmp_path / "floors.json"
    path.write_text(floors, encoding="utf-8")
    status, out, err = run(capsys, good_results(tmp_path), path)
    assert status == 2
    assert message in err and str(path) in err
    assert out == ""


def test_missing_floors_file(tmp_path, capsys):
    status, _, err = run(capsys, good_results(tmp_path), tmp_path / "nope.json")
    assert status == 2 and "cannot read the floors file" in err


# -- both command lines ------------------------------------------------------------------
@pytest.mark.parametrize("command", [["-m", "bench.report"], ["bench/report.py"]])
def test_command_line(tmp_path, command):
    """``python -m bench.report`` (the issue's spelling; ``bench`` is a namespace package,
    found from the repository root) and ``python bench/report.py`` both work."""
    results = write_results(tmp_path / "r.json", speedup("a|b", 5))
    floors = write_floors(tmp_path / "f.json", {"a|b": {"floor": 6}})
    proc = subprocess.run([sys.executable, *command, str(results), "--gate", str(floors)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stderr
    assert "| `a\\|b` | 5.00x | 6x | **BELOW FLOOR** |" in proc.stdout
    assert "FAIL: a|b: 5.00x, below its floor of 6x" in proc.stderr
