"""The CI ratio gate, ``python -m bench.report RESULTS --gate bench/floors.json``, on
small synthetic pytest-benchmark JSON files (nothing is benchmarked here): it passes at
the configured floors, fails when a floor is raised above the measured ratio, reports
missing groups, refuses malformed files with a clear error, leaves the thread-scaling
group ungated on a busy machine (and says so), and ``bench/floors.json`` names groups
that the benchmarks in ``bench/`` define."""

import ast
import copy
import importlib.util
import json
import os
import subprocess
import sys
import types
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
REAL_FILE = json.loads(FLOORS.read_text(encoding="utf-8"))
#: the real file for one CPU, as a single-level floors file: each group's settings from
#: "groups" plus the floor and measurements of REAL_CPU (the one with the highest floors)
REAL_CPU = "znver5"
REAL = {"groups": {g: {**spec, **REAL_FILE["cpus"][REAL_CPU]["floors"][g]}
                   for g, spec in REAL_FILE["groups"].items()}}
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


def write_results(path, benchmarks, cpus=2, llvm_cpu=REAL_CPU):
    data = {"machine_info": {"cpu": {"count": cpus, "brand_raw": "Test CPU"},
                             "python_version": "3.x",
                             "fastnn_target": {"cpu": "Test CPU", "llvm_cpu": llvm_cpu,
                                               "vector_features": ["avx2"],
                                               "vector_width": None,
                                               "vector_width_source": "auto"}},
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
    floors = report.load_floors(FLOORS).groups
    assert set(floors) == set(REAL_FILE["groups"])
    assert {"fused_loss|2-3-3|n=3000", "fused_loss|2-64-3|n=3000",
            "search_book|2-3-3|n=300|10000_steps", CHAINS} <= set(floors)
    assert {"znver5", "znver4", "rocketlake"} <= set(REAL_FILE["cpus"])
    for cpu, table in REAL_FILE["cpus"].items():
        assert table.get("about"), f"{cpu}: say where the measurements come from"
        assert set(table["floors"]) == set(REAL_FILE["groups"]), cpu
        for group, spec in table["floors"].items():
            assert spec["floor"] > 1, (cpu, group)  # a floor of 1 or less gates nothing
            if not spec.get("measured") and "not measured" in spec.get("note", ""):
                continue  # not measured on that CPU: a floor taken from the others
            assert spec.get("measured"), f"{cpu} {group}: record the ratios the floor is from"
            # headroom for shared CI machines (10-30% run to run): at most ~80% of the
            # lowest ratio measured, so noise alone does not fail the gate
            assert spec["floor"] <= 0.8 * min(spec["measured"]), (cpu, group)
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
    train = _load("fastnn_bench_train_for_gate_tests", ROOT / "bench" / "test_bench_train.py")
    groups.add(train.group("large", train.LARGE_SAMPLES, train.LARGE_EPOCHS))
    # the book's run as timed in full (10,001 epochs) and in CI's short run
    for epochs in (train.BOOK_EPOCHS, train.CI_EPOCHS):
        book = train.group("book", train.BOOK_SAMPLES, epochs)
        groups.add(book)
        groups |= {f"{book}{report.VERSUS}{impl}" for impl in train.BARS}  # per-baseline
    return groups


def test_ci_times_the_training_groups_the_floors_name():
    train = _load("fastnn_bench_train_for_ci_test", ROOT / "bench" / "test_bench_train.py")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    assert f"FASTNN_BENCH_TRAIN_EPOCHS={train.CI_EPOCHS}" in ci
    assert f"FASTNN_BENCH_TRAIN_EPOCHS={train.CI_EPOCHS}" in tox


def test_real_floors_name_groups_that_the_benchmarks_define():
    defined = _bench_groups()
    assert {"train_book|2-64-3|n=300|10001_epochs vs numpy-vectorised",
            "train_large|2-64-3|n=30000|100_epochs"} <= defined
    missing = set(REAL_FILE["groups"]) - defined
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


# -- the report's machine line and cold-start table --------------------------------------
#: what bench/conftest.py records from fastnn.target_info(); nothing like this machine's
TARGET = {"cpu": "Fake CPU 9000", "llvm_cpu": "fakelake", "vector_features": ["avx2", "fma"],
          "vector_width": 256, "vector_width_source": "FASTNN_VECTOR_WIDTH"}


def write_report_input(path, benchmarks, target=TARGET, machine=True):
    """Results as a bench run writes them; ``target=None`` and ``machine=False`` give
    the files written before the target (or any machine_info) was recorded."""
    data = {"benchmarks": benchmarks, "version": "5.0"}
    if machine:
        data["machine_info"] = {"cpu": {"count": 2, "brand_raw": "Test CPU"},
                                "python_version": "3.x"}
        if target is not None:
            data["machine_info"]["fastnn_target"] = target
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def cold_entry(point, state, wall, result_s=None, **info):
    """A benchmark as ``bench/test_bench_cold_start.py`` records one."""
    impl = {"cold": "fastnn-empty-cache", "warm": "fastnn-disk-cache"}[state]
    extra = {"entry_point": point, "cache": state, "wall_s": wall, **info}
    if result_s is not None:
        extra["result_s"] = result_s
    return entry(f"cold_start|{point}", impl, wall, **extra)


def report_out(capsys, path):
    status = report.main([str(path)])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def test_the_report_names_the_cpu_recorded_in_the_json(tmp_path, capsys):
    """The CPU, its vector features and fastnn's vector width come from the results
    file (the machine that ran the benchmarks), in the first lines of the report."""
    out = report_out(capsys, write_report_input(tmp_path / "r.json", speedup("a|b", 5)))
    first, _, third = out.splitlines()[:3]
    assert first == (f"<!-- generated by bench/report.py from {tmp_path / 'r.json'}: "
                     "Fake CPU 9000 (fakelake, 256-bit vectors), Python 3.x -->")
    assert third == ("CPU: Fake CPU 9000 (LLVM target `fakelake`); vector features: avx2, "
                     "fma; vector width of fastnn's kernels: 256 bits (set by "
                     "FASTNN_VECTOR_WIDTH).")
    assert "| `a\\|b` |" in out  # the ratio table follows


def test_the_report_says_when_fastnn_chose_no_width(tmp_path, capsys):
    target = {**TARGET, "vector_width": None, "vector_width_source": "auto"}
    out = report_out(capsys, write_report_input(tmp_path / "r.json", speedup("a|b", 5),
                                                target=target))
    assert "Fake CPU 9000 (fakelake, LLVM's default vectors)" in out.splitlines()[0]
    assert ("vector width of fastnn's kernels: none (no preference: LLVM's default for "
            "this CPU) (chosen by fastnn from the CPU's features).") in out


def test_the_cold_start_table_shows_every_entry_point_from_the_json(tmp_path, capsys):
    benchmarks = speedup("a|b", 5) + [
        cold_entry("notebook cell", "cold", 2.5, 2.0, compiled=6,
                   slowest_compiles=[["fastnn.kernels.layers.softmax", 0.4]]),
        cold_entry("notebook cell", "warm", 1.0, 0.5, loaded=6),
        cold_entry("MLP.evaluate", "cold", 5.5, 5.0, compiled=1),
        cold_entry("MLP.evaluate", "warm", 0.75, 0.4, loaded=1),
        cold_entry("search", "cold", 8.0, 7.5, compiled=3),
        cold_entry("search", "warm", 0.8, 0.5, loaded=3),
    ]
    out = report_out(capsys, write_report_input(tmp_path / "r.json", benchmarks))
    table = out[out.index("**cold start (fresh process)**"):]
    assert "| entry point | cold (empty cache) | warm (disk cache) | cold / warm |" in table
    assert "| `notebook cell` | 2.00 s | 0.50 s | 4.0x | 2.50 s / 1.00 s | 6 / 6 |" in table
    assert "| `MLP.evaluate` | 5.00 s | 0.40 s | 12.5x | 5.50 s / 0.75 s | 1 / 1 |" in table
    assert "| `search` | 7.50 s | 0.50 s | 15.0x | 8.00 s / 0.80 s | 3 / 3 |" in table
    assert "`notebook cell`: `kernels.layers.softmax` 0.4 s" in table
    # not in the ratio table: they have no baseline, and their own table says more
    ratios = out[out.index("| workload |"):out.index("**cold start")]
    assert "| `a\\|b` |" in ratios and "cold_start" not in ratios


def test_a_cold_start_only_run_prints_no_empty_ratio_table(tmp_path, capsys):
    """``pytest bench/test_bench_cold_start.py`` alone; a run without ``result_s`` shows
    the process wall time (the benchmark's median) instead."""
    benchmarks = [cold_entry("search", "cold", 8.0), cold_entry("search", "warm", 0.8)]
    out = report_out(capsys, write_report_input(tmp_path / "r.json", benchmarks))
    assert "| workload |" not in out
    assert "| `search` | 8.00 s | 0.80 s | 10.0x | 8.00 s / 0.80 s | - / - |" in out


@pytest.mark.parametrize("machine", [True, False], ids=["no-target", "no-machine-info"])
def test_old_results_files_still_work(tmp_path, capsys, machine):
    """Files written before the target and the cold-start benchmarks were recorded: the
    report says what is missing, and the old ``cold_start|2-3-3`` group (two impls, no
    entry point) stays in the ratio table as before."""
    old = speedup("a|b", 5) + [
        entry("cold_start|2-3-3", "fastnn-disk-cache", 0.45),
        entry("cold_start|2-3-3", "fastnn-compile", 12.7)]
    path = write_report_input(tmp_path / "r.json", old, target=None, machine=machine)
    out = report_out(capsys, path)
    cpu = "Test CPU" if machine else "unknown CPU"
    assert out.splitlines()[0].endswith(f": {cpu}, Python {'3.x' if machine else '?'} -->")
    assert (f"CPU: {cpu} (this results file does not record fastnn's target: vector "
            "features and vector width unknown).") in out
    assert "| `cold_start\\|2-3-3` | - | fastnn-disk-cache 450.00 ms, fastnn-compile " \
           "12.70 s | - |" in out
    assert "cold start (fresh process)" not in out
    # and the gate still reads them
    floors = write_floors(tmp_path / "f.json", {"a|b": {"floor": 4}})
    assert run(capsys, path, floors)[0] == 0


def test_a_malformed_target_is_treated_as_not_recorded(tmp_path, capsys):
    out = report_out(capsys, write_report_input(tmp_path / "r.json", speedup("a|b", 5),
                                                target=None))
    path = tmp_path / "bad.json"
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    data["machine_info"]["fastnn_target"] = "AMD"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert "does not record fastnn's target" in report_out(capsys, path)
    assert "does not record fastnn's target" in out


def test_bench_conftest_records_the_target_in_machine_info(monkeypatch):
    """``bench/conftest.py`` adds what it took at session start to pytest-benchmark's
    ``machine_info`` (the JSON's), and asks fastnn when nothing was taken."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # conftest setdefaults them
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    conftest = _load("fastnn_bench_conftest_for_gate_tests", ROOT / "bench" / "conftest.py")
    machine_info = {"cpu": {"count": 2}}
    conftest.pytest_benchmark_update_machine_info(
        config=types.SimpleNamespace(_fastnn_target=TARGET), machine_info=machine_info)
    assert machine_info == {"cpu": {"count": 2}, "fastnn_target": TARGET}
    import fastnn

    machine_info = {}
    conftest.pytest_benchmark_update_machine_info(config=types.SimpleNamespace(),
                                                  machine_info=machine_info)
    assert machine_info["fastnn_target"] == fastnn.target_info()
    assert set(TARGET) <= set(machine_info["fastnn_target"])  # the keys the report reads


def test_cold_start_scripts_run_the_entry_points_as_written():
    """Each measured script parses, runs its entry point unchanged between the clock's
    start and stop, and the benchmark module times every entry point cold and warm."""
    cold_start = _load("fastnn_bench_cold_start_for_gate_tests",
                       ROOT / "bench" / "cold_start.py")
    assert list(cold_start.ENTRY_POINTS) == ["notebook cell", "MLP.evaluate", "search", "train"]
    for entry, (body, _) in cold_start.ENTRY_POINTS.items():
        source = cold_start.script(entry, iterations=1000)
        ast.parse(source)
        start, stop = source.index("_t0 = time.perf_counter()"), source.index("_t_result =")
        assert start < source.index(body.replace("ITERATIONS", "1000")) < stop, entry
        # nothing is imported before the clock starts, nor Numba before the entry point
        assert source.index("import time") < start
        assert "import numba" not in source[:source.index(body.splitlines()[0])], entry
    assert "print(activation2.output); print(loss_value)\n" in cold_start.NOTEBOOK_CELL
    bench = _load("fastnn_bench_cold_start_module_for_gate_tests",
                  ROOT / "bench" / "test_bench_cold_start.py")
    assert bench.CASES == [(e, s) for e in cold_start.ENTRY_POINTS for s in ("cold", "warm")]


# -- floors per CPU, and the median of several runs ----------------------------------------
G = "fused_loss|2-3-3|n=3000"


def cpu_floors(path):
    """A floors file where CPU 'fast' needs 10x on G and CPU 'slow' 5x."""
    data = {"about": "test floors", "groups": {G: {"note": "per CPU"}},
            "cpus": {"fast": {"about": "t", "floors": {G: {"floor": 10, "measured": [14]}}},
                     "slow": {"about": "t", "floors": {G: {"floor": 5, "measured": [7]}}}}}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("llvm_cpu, ratio, status", [
    ("fast", 7, 1),  # below the fast CPU's floor
    ("fast", 11, 0),
    ("slow", 7, 0),  # the same ratio passes on the slow CPU
    ("slow", 4, 1),
])
def test_the_gate_uses_the_floors_of_the_cpu_the_results_record(tmp_path, capsys, llvm_cpu,
                                                                 ratio, status):
    results = write_results(tmp_path / "r.json", speedup(G, ratio), llvm_cpu=llvm_cpu)
    got, out, err = run(capsys, results, cpu_floors(tmp_path / "f.json"))
    assert got == status, out + err
    assert "using the lowest" not in out


@pytest.mark.parametrize("llvm_cpu", ["unknown9", None])
def test_an_unknown_cpu_gets_the_lowest_known_floor_and_is_told(tmp_path, capsys, llvm_cpu):
    path = tmp_path / "r.json"
    write_results(path, speedup(G, 6), llvm_cpu=llvm_cpu)
    if llvm_cpu is None:  # an old results file: no fastnn_target at all
        data = json.loads(path.read_text())
        del data["machine_info"]["fastnn_target"]
        path.write_text(json.dumps(data))
    status, out, err = run(capsys, path, cpu_floors(tmp_path / "f.json"))
    assert status == 0, out + err  # 6x passes the slow CPU's 5x, not the fast one's 10x
    assert "using the lowest of the known CPUs" in out
    if llvm_cpu is not None:
        assert f"no floors measured for CPU {llvm_cpu}" in out


@pytest.mark.parametrize("ratios, status", [
    ((20, 9, 21), 0),  # one bad run of three: the median passes
    ((20, 9, 8), 1),  # two bad runs: the median fails
    ((9, 9, 9), 1),
])
def test_the_gate_takes_the_median_of_several_runs(tmp_path, capsys, ratios, status):
    files = [write_results(tmp_path / f"r{i}.json", speedup(G, r))
             for i, r in enumerate(ratios)]
    floors = write_floors(tmp_path / "f.json", {G: {"floor": 10}})
    got = report.main([*map(str, files), "--gate", str(floors)])
    out, err = capsys.readouterr()
    assert got == status, out + err
    median = sorted(ratios)[1]
    assert f"{median:.2f}x" in out
    assert all(f"{r:.2f}x" in out for r in ratios)  # each run's ratio is shown


def test_a_missing_file_among_several_is_an_error(tmp_path, capsys):
    good = write_results(tmp_path / "r.json", speedup(G, 20))
    floors = write_floors(tmp_path / "f.json", {G: {"floor": 10}})
    got = report.main([str(good), str(tmp_path / "missing.json"), "--gate", str(floors)])
    out, err = capsys.readouterr()
    assert got == 2 and "missing.json" in err


# -- per-baseline bars (issue 9's training benchmarks), references, time per epoch -------
TRAIN = "train_book|2-64-3|n=300|10001_epochs"


def training_run(jax=True, bars=None):
    """fastnn against the book's classes (20x), NumPy (12x) and, optionally, JAX (2.5x),
    per-baseline bars on fastnn's entry as bench/test_bench_train.py records them."""
    bars = {"book": 15, "numpy-vectorised": 10, "jax": 3} if bars is None else bars
    epochs = 10_001
    out = [entry(TRAIN, "fastnn", 0.1, role="subject", epochs=epochs, bars=bars),
           entry(TRAIN, "book", 2.0, role="baseline", epochs=epochs),
           entry(TRAIN, "numpy-vectorised", 1.2, role="baseline", epochs=epochs)]
    if jax:
        out.append(entry(TRAIN, "jax", 0.25, role="baseline", epochs=epochs))
    return out


def test_per_baseline_bars_get_a_row_each():
    found = {r.group: r for r in report.rows(training_run())}
    assert list(found) == [TRAIN] + [f"{TRAIN} vs {impl}"
                                     for impl in ("book", "numpy-vectorised", "jax")]
    # the group itself: against its fastest baseline, as before
    assert found[TRAIN].best == "jax" and found[TRAIN].ratio == pytest.approx(2.5)
    assert found[TRAIN].bar is None and found[TRAIN].versus is None
    for impl, ratio, bar in (("book", 20, 15), ("numpy-vectorised", 12, 10), ("jax", 2.5, 3)):
        r = found[f"{TRAIN} vs {impl}"]
        assert (r.versus, r.best, r.subject, r.bar) == (impl, impl, "fastnn", bar)
        assert r.ratio == pytest.approx(ratio) and set(r.medians) == {"fastnn", impl}


def test_check_bars_fails_on_a_missed_per_baseline_bar_only(tmp_path, capsys):
    results = write_results(tmp_path / "r.json", training_run())
    status = report.main([str(results), "--check-bars"])
    out, err = capsys.readouterr()
    assert status == 1
    assert f"FAIL: {TRAIN} vs jax: 2.50x, below its bar of 3x" in err
    assert err.count("FAIL") == 1
    assert "**20.0x** (vs book); bar 15x met" in out
    assert "**2.5x** (vs jax); bar 3x MISSED" in out
    met = write_results(tmp_path / "met.json", training_run(bars={"book": 15, "jax": 2}))
    assert report.main([str(met), "--check-bars"]) == 0


def test_a_per_baseline_bar_without_its_baseline_is_shown_and_not_checked(tmp_path, capsys):
    """An optional peer not installed: its row says so; nothing fails."""
    results = write_results(tmp_path / "r.json", training_run(jax=False))
    status = report.main([str(results), "--check-bars"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "- (jax not in this run: bar 3x not checked)" in out
    found = {r.group: r for r in report.rows(training_run(jax=False))}
    assert found[TRAIN].best == "numpy-vectorised"  # the fastest baseline present
    assert found[f"{TRAIN} vs jax"].ratio is None


def test_a_floor_can_gate_one_per_baseline_row(tmp_path, capsys):
    """A floor on ``"<group> vs <impl>"`` stays the same whether a faster optional peer
    ran or not; an absent peer's row is missing (a floor on it: ``required: false``)."""
    floors = write_floors(tmp_path / "f.json", {
        f"{TRAIN} vs numpy-vectorised": {"floor": 8},
        f"{TRAIN} vs jax": {"floor": 2, "required": False}})
    cell = TRAIN.replace("|", "\\|")  # as the table escapes it
    numpy_row = f"| `{cell} vs numpy-vectorised` | 12.00x | 8x | ok"
    for jax in (True, False):
        results = write_results(tmp_path / "r.json", training_run(jax=jax))
        status, out, err = run(capsys, results, floors)
        assert status == 0, err
        assert numpy_row in out
    raised = write_floors(tmp_path / "g.json", {f"{TRAIN} vs book": {"floor": 25}})
    status, _, err = run(capsys, results, raised)
    assert status == 1 and f"FAIL: {TRAIN} vs book: 20.00x, below its floor of 25x" in err


def test_a_reference_is_shown_but_never_the_baseline():
    """``role="reference"``: NumPy beside a thread-scaling group, even when faster than
    fastnn on one thread."""
    group = "train_large|2-64-3|n=30000|100_epochs"
    info = {"scaling": True, "epochs": 100}
    benchmarks = [entry(group, "numpy-vectorised", 0.5, role="reference", **info),
                  entry(group, "fastnn-1-thread", 1.0, role="baseline", **info),
                  entry(group, "fastnn-2-threads", 0.55, role="subject", bar=1.7, **info)]
    (r,) = report.rows(benchmarks)
    assert r.best == "fastnn-1-thread" and r.ratio == pytest.approx(1 / 0.55)
    assert "numpy-vectorised 500.00 ms" in report.markdown(benchmarks)


def test_the_report_shows_microseconds_per_epoch(tmp_path, capsys):
    out = report_out(capsys, write_report_input(tmp_path / "r.json", training_run()))
    assert "| workload | implementation | epochs per round | µs per epoch |" in out
    group = TRAIN.replace("|", "\\|")
    assert f"| `{group}` | fastnn | 10,001 | 10.0 |" in out
    assert f"| `{group}` | book | 10,001 | 200.0 |" in out
