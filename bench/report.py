"""Speed ratios from a pytest-benchmark run: ``baseline median / fastnn median`` per group,
and a gate that fails when a ratio falls below its floor.

Usage (from the repository root)::

    python -m pytest bench --benchmark-json=bench-results.json
    python -m bench.report bench-results.json [--gate bench/floors.json]
    python bench/report.py bench-results.json [--min-ratio 2] [--check-bars]   # the same

Prints a Markdown table (paste it into the README's performance section: tables there
are generated, never typed).  Ratios, not absolute times, are what can be compared between
runs on shared machines (they vary 10-30% run to run), so every check here is on ratios:

* ``--gate FLOORS``: the CI gate.  ``FLOORS`` (``bench/floors.json``) gives a floor for
  the key groups; exits with status 1 listing every group below its floor and every
  required group missing from the results, after a table of measured ratio against floor.
  A floor entry can say ``"max_load_per_cpu": x``: the group is then not gated (reported
  as such, never silently) when the 1-minute load average recorded by its benchmarks
  exceeds ``x`` times the CPU count -- thread scaling collapses when another process holds
  a core, and says nothing about fastnn then.  ``"min_cpus": k`` leaves a group ungated on
  machines with fewer CPUs, ``"required": false`` lets it be absent.  See ``load_floors``.
* ``--min-ratio R``: exits with status 1 when fastnn is less than R times faster than the
  fastest baseline in any group that has both (thread-scaling groups excepted).
* ``--check-bars``: exits with status 1 when a group misses its own bar (below).

A results or floors file that cannot be read or has the wrong shape is an error (status 2,
with the reason), not a pass.

What each benchmark is comes from its ``extra_info``:

* ``impl``: its name.  ``fastnn`` is the subject of its group; ``numpy``,
  ``numpy-prealloc``, ``numpy-vectorised`` and ``notebook`` are baselines (the
  fastest one present is used).
* ``role`` (``"subject"`` or ``"baseline"``) overrides that, for groups comparing
  fastnn with itself (``fastnn-2-threads`` against ``fastnn-1-thread``); such groups
  also set ``scaling=True``: their ratio is a parallel speed-up, which ``--min-ratio``
  does not gate (no speed-up reaches 2 on 2 cores).  ``"reference"``: shown in the
  table, never compared with (plain NumPy beside a thread-scaling group).
* ``bar`` (on the subject): the ratio the group should reach (an issue's target);
  shown in the table, and ``--check-bars`` exits with status 1 when one is missed.
* ``bars`` (on the subject, ``{impl: ratio}``): bars against particular baselines
  (issue 9: fastnn >= 15x the book's classes, >= 10x NumPy, >= 3x JAX, all in one
  group).  Each adds a row ``"<group> vs <impl>"`` (``VERSUS``) after its group, with
  the ratio against that baseline and its bar: shown, checked by ``--check-bars`` and
  gated like any group when a floors file names it (a floor against one baseline does
  not move when an optional, faster peer is installed or not).  A baseline absent from
  the run leaves its row without a ratio ("not in this run"), so it is not checked.
* ``epochs`` (training epochs per round): adds a table of microseconds per epoch.
* ``evaluations`` (network evaluations per round): adds a throughput table
  (evaluations per second of the median round); ``threading_layer``, ``threads``
  and ``load_average`` (the machine's, as the benchmark started) are printed under it.
* ``entry_point`` and ``cache`` (``"cold"``/``"warm"``; ``bench/test_bench_cold_start.py``):
  a cold-start run, shown in the "cold start (fresh process)" table instead of the ratio
  table, with ``result_s`` (first line of the script to its result), ``wall_s``,
  ``compiled``/``loaded`` signatures and ``slowest_compiles``.

The report starts with the CPU that ran the benchmarks: its model, vector features and
the vector width fastnn's kernels were compiled for, from the ``fastnn_target`` that
``bench/conftest.py`` puts in the JSON's ``machine_info`` (``fastnn.target_info()`` as
the session started); files without it still work and say it was not recorded.

``bench/conftest.py`` prints the same tables at the end of every ``pytest bench`` run.
"""

import argparse
import json
import math
import sys
from typing import NamedTuple

#: ``extra_info["impl"]`` of the implementation being measured ...
SUBJECT = "fastnn"
#: ... and of the implementations it is compared with (the fastest one is used).
BASELINES = ("numpy", "numpy-prealloc", "numpy-vectorised", "notebook")
#: joins a group and a baseline in the name of a per-baseline row (``bars``)
VERSUS = " vs "


class Row(NamedTuple):
    group: str
    medians: dict  # {impl: median seconds}, in the order first seen
    subject: str | None  # the impl measured against the baselines
    best: str | None  # the fastest baseline
    ratio: float | None  # best baseline median / subject median
    bar: float | None  # the ratio the group should reach
    scaling: bool  # fastnn against itself (a parallel speed-up)
    versus: str | None = None  # a per-baseline row (``bars``): that baseline


def _fmt_time(seconds):
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def _info(b):
    return b.get("extra_info") or {}


def _impl(b):
    return _info(b).get("impl", b["name"])


def _role(b):
    role = _info(b).get("role")
    if role in ("subject", "baseline"):
        return role
    if role == "reference":
        return None
    impl = _impl(b)
    return "subject" if impl == SUBJECT else "baseline" if impl in BASELINES else None


def rows(benchmarks):
    """One ``Row`` per group, in the order the groups first appear, each followed by
    its per-baseline rows (``bars``, ``versus`` set).

    ``benchmarks`` are dicts shaped like the entries of ``--benchmark-json``'s
    ``"benchmarks"`` list (``group``, ``name``, ``extra_info``, ``stats.median``)."""
    groups = {}
    for b in benchmarks:
        groups.setdefault(b.get("group") or "", []).append(b)
    out = []
    for group, members in groups.items():
        medians = {_impl(b): b["stats"]["median"] for b in members}
        subjects = [b for b in members if _role(b) == "subject"]
        subject = _impl(subjects[0]) if subjects else None
        base = [_impl(b) for b in members if _role(b) == "baseline"]
        best = min(base, key=medians.get) if base else None
        ratio = None
        if best is not None and subject is not None and medians[subject] > 0:
            ratio = medians[best] / medians[subject]
        bars = [_info(b)["bar"] for b in subjects if _info(b).get("bar") is not None]
        scaling = any(_info(b).get("scaling") for b in members)
        out.append(Row(group, medians, subject, best, ratio, bars[0] if bars else None,
                       scaling))
        versus = next((_info(b)["bars"] for b in subjects
                       if isinstance(_info(b).get("bars"), dict)), {})
        for impl, bar in versus.items():
            there = {k: medians[k] for k in (subject, impl) if k in medians}
            ratio = None
            if impl in medians and impl != subject and medians[subject] > 0:
                ratio = medians[impl] / medians[subject]
            out.append(Row(f"{group}{VERSUS}{impl}", there, subject,
                           impl if ratio is not None else None, ratio,
                           float(bar) if _is_number(bar) else None, scaling, impl))
    return out


def _cold_start(b):
    """``"cold"`` or ``"warm"`` for a cold-start benchmark (``test_bench_cold_start.py``:
    ``extra_info`` ``entry_point`` and ``cache``), else None."""
    state = _info(b).get("cache")
    return state if state in ("cold", "warm") and _info(b).get("entry_point") else None


def markdown(benchmarks):
    """The ratio table ("" without a group to show); cold-start benchmarks have no ratio
    and their own table (``cold_start_markdown``)."""
    found = rows([b for b in benchmarks if not _cold_start(b)])
    if not found:
        return ""
    lines = [
        "| workload | fastnn | baselines (median) | speed-up vs fastest baseline |",
        "|---|---|---|---|",
    ]
    for r in found:
        subject = "-"
        if r.subject is not None:
            subject = _fmt_time(r.medians[r.subject])
            if r.subject != SUBJECT:
                subject += f" ({r.subject})"
        others = ", ".join(
            f"{impl} {_fmt_time(t)}" for impl, t in r.medians.items() if impl != r.subject
        )
        speedup = f"**{r.ratio:.1f}x** (vs {r.best})" if r.ratio is not None else "-"
        if r.bar is not None and r.ratio is not None:
            speedup += f"; bar {r.bar:g}x {'met' if r.ratio >= r.bar else 'MISSED'}"
        elif r.versus is not None and r.ratio is None:
            speedup += f" ({r.versus} not in this run" + (
                f": bar {r.bar:g}x not checked)" if r.bar is not None else ")")
        group = r.group.replace("|", "\\|")  # a bare | would split the table cell
        lines.append(f"| `{group}` | {subject} | {others or '-'} | {speedup} |")
    return "\n".join(lines)


def _fmt_rate(per_second):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.2f} {unit}"
    return f"{per_second:.0f}"


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def cold_start_markdown(benchmarks):
    """The "cold start (fresh process)" table: per entry point, the seconds from the
    script's first line to its result with an empty Numba cache (cold) and with it filled
    (warm), from ``extra_info["result_s"]`` (the process's wall time, the benchmark's
    median, if a file lacks it); "" without cold-start benchmarks."""
    runs = {}  # {entry point: {state: [benchmarks]}}, in the order first seen
    for b in benchmarks:
        state = _cold_start(b)
        if state:
            runs.setdefault(str(_info(b)["entry_point"]), {}).setdefault(state, []).append(b)
    if not runs:
        return ""

    def seconds(members, key):
        values = [_info(b)[key] if _is_number(_info(b).get(key)) else b["stats"]["median"]
                  for b in members]
        return _median(values) if values else None

    def cell(t):  # seconds throughout: these vary by 10-30% run to run
        return f"{t:.2f} s" if t is not None else "-"

    lines = ["**cold start (fresh process)**: seconds from the script's first line to its "
             "result, with an empty `NUMBA_CACHE_DIR` (cold: compiles every kernel it "
             "uses) and again with that directory filled (warm: loads them)",
             "",
             "| entry point | cold (empty cache) | warm (disk cache) | cold / warm "
             "| process wall, cold / warm | signatures compiled / loaded |",
             "|---|---|---|---|---|---|"]
    slow = []
    for entry, by_state in runs.items():
        cold, warm = by_state.get("cold", []), by_state.get("warm", [])
        c, w = seconds(cold, "result_s"), seconds(warm, "result_s")
        ratio = f"{c / w:.1f}x" if c is not None and w else "-"
        wall = f"{cell(seconds(cold, 'wall_s'))} / {cell(seconds(warm, 'wall_s'))}"
        counts = (f"{_info(cold[0]).get('compiled', '-') if cold else '-'} / "
                  f"{_info(warm[0]).get('loaded', '-') if warm else '-'}")
        lines.append(f"| `{entry}` | {cell(c)} | {cell(w)} | {ratio} | {wall} | {counts} |")
        top = (_info(cold[0]).get("slowest_compiles") or [])[:3] if cold else []
        named = [f"`{str(name).removeprefix('fastnn.')}` {t:.1f} s" for name, t in top
                 if _is_number(t)]
        if named:
            slow.append(f"`{entry}`: {', '.join(named)}")
    if slow:
        lines += ["", "Slowest compiles in the cold runs (inclusive of their callees): "
                  + "; ".join(slow) + "."]
    return "\n".join(lines)


def extras(benchmarks):
    """Markdown for what the ratio table leaves out: a throughput table of the
    benchmarks that report search evaluations, the time per epoch of those that report
    training epochs, the cold-start table, the Numba threading set-up and the machine's
    load they ran with; "" if none recorded any of these."""
    lines = []
    order = {r.group: i for i, r in enumerate(rows(benchmarks))}
    counted = sorted((b for b in benchmarks if _info(b).get("evaluations")),
                     key=lambda b: order[b.get("group") or ""])  # stable: impls in order
    if counted:
        lines += ["| workload | implementation | evaluations per round | evaluations/s |",
                  "|---|---|---|---|"]
        for b in counted:
            n, median = _info(b)["evaluations"], b["stats"]["median"]
            rate = _fmt_rate(n / median) if median > 0 else "-"
            group = (b.get("group") or "").replace("|", "\\|")
            lines.append(f"| `{group}` | {_impl(b)} | {n:,} | {rate} |")
    trained = sorted((b for b in benchmarks
                      if _is_number(_info(b).get("epochs")) and _info(b)["epochs"] > 0),
                     key=lambda b: order[b.get("group") or ""])
    if trained:
        lines += ([""] if lines else []) + [
            "| workload | implementation | epochs per round | µs per epoch |",
            "|---|---|---|---|"]
        for b in trained:
            n, median = _info(b)["epochs"], b["stats"]["median"]
            group = (b.get("group") or "").replace("|", "\\|")
            lines.append(f"| `{group}` | {_impl(b)} | {n:,} | {median / n * 1e6:.1f} |")
    cold = cold_start_markdown(benchmarks)
    if cold:
        lines += ([""] if lines else []) + [cold]
    layers = sorted({str(_info(b)["threading_layer"]) for b in benchmarks
                     if _info(b).get("threading_layer")})
    threads = sorted({int(_info(b)["threads"]) for b in benchmarks
                      if _info(b).get("threads")})
    notes = []
    if layers:
        notes.append(f"Numba threading layer: {', '.join(layers)}"
                     + (f"; threads: {', '.join(map(str, threads))}" if threads else ""))
    loads = [float(_info(b)["load_average"]) for b in benchmarks
             if _info(b).get("load_average") is not None]
    if loads:
        notes.append(f"1-minute load average as the benchmarks started: {min(loads):.2f} to "
                     f"{max(loads):.2f} (it includes the benchmark process itself)")
    for note in notes:
        lines += ["", note + "."]
    return "\n".join(lines)


# -- the machine -----------------------------------------------------------------------
def _target(machine):
    """``fastnn.target_info()`` as ``bench/conftest.py`` recorded it in ``machine_info``
    (``fastnn_target``) when the benchmarks started, or None (older files)."""
    target = (machine or {}).get("fastnn_target")
    return target if isinstance(target, dict) else None


def cpu_name(machine):
    """The CPU's model name: fastnn's record, else py-cpuinfo's, else "unknown CPU"."""
    target = _target(machine)
    name = (target or {}).get("cpu") or ((machine or {}).get("cpu") or {}).get("brand_raw")
    return str(name) if name else "unknown CPU"


def _width(target):
    width = target.get("vector_width")
    return f"{width}-bit" if width else "LLVM's default"


def cpu_line(machine):
    """One Markdown line: the CPU that ran the benchmarks, its vector features and the
    vector width fastnn chose (from the results file, not from the machine printing it)."""
    target = _target(machine)
    if target is None:
        return (f"CPU: {cpu_name(machine)} (this results file does not record fastnn's "
                "target: vector features and vector width unknown).")
    llvm = f" (LLVM target `{target['llvm_cpu']}`)" if target.get("llvm_cpu") else ""
    features = target.get("vector_features")
    features = (", ".join(map(str, features)) if isinstance(features, list) and features
                else "none recorded")
    width = target.get("vector_width")
    chosen = f"{width} bits" if width else "none (no preference: LLVM's default for this CPU)"
    source = target.get("vector_width_source")
    how = {"auto": "chosen by fastnn from the CPU's features",
           "FASTNN_VECTOR_WIDTH": "set by FASTNN_VECTOR_WIDTH"}.get(source, source)
    return (f"CPU: {cpu_name(machine)}{llvm}; vector features: {features}; "
            f"vector width of fastnn's kernels: {chosen}" + (f" ({how})" if how else "") + ".")


def header(json_file, machine):
    """The generated-by comment that starts the report, naming the CPU."""
    target = _target(machine)
    cpu = cpu_name(machine)
    if target is not None:
        llvm = target.get("llvm_cpu")
        cpu += f" ({llvm + ', ' if llvm else ''}{_width(target)} vectors)"
    return (f"<!-- generated by bench/report.py from {json_file}: {cpu}, "
            f"Python {(machine or {}).get('python_version', '?')} -->")


# -- reading the files -----------------------------------------------------------------
class ReportError(Exception):
    """A results or floors file that cannot be used: exit status 2, never a pass."""


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:  # json keeps the last silently: a second entry would hide the first floor
        raise ValueError(f"duplicate key(s) {dup}")
    return dict(pairs)


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=_no_duplicate_keys)
    except OSError as e:
        raise ReportError(f"cannot read the {what} {path}: {e.strerror or e}") from None
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise ReportError(f"the {what} {path} is not valid JSON: {e}") from None


def load_results(path):
    """``(benchmarks, machine_info)`` from a file written by ``--benchmark-json``;
    ``ReportError`` saying what is wrong if it is not one."""
    data = _read_json(path, "results file")
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(f"{path} is not pytest-benchmark JSON: no \"benchmarks\" list "
                          "(write it with pytest --benchmark-json=FILE)")
    for i, b in enumerate(data["benchmarks"]):
        name = b.get("name", "?") if isinstance(b, dict) else "?"
        stats = b.get("stats") if isinstance(b, dict) else None
        median = stats.get("median") if isinstance(stats, dict) else None
        if not _is_number(median) or median < 0:
            raise ReportError(f"{path}: benchmarks[{i}] ({name}) has no stats.median "
                              "(a run under --benchmark-disable records no times)")
        if not isinstance(b.get("extra_info", {}), (dict, type(None))):
            raise ReportError(f"{path}: benchmarks[{i}] ({name}): extra_info is not an object")
    machine = data.get("machine_info")
    return data["benchmarks"], machine if isinstance(machine, dict) else {}


class Floor(NamedTuple):
    """One gated group: its ratio must be at least ``floor``."""
    group: str
    floor: float | None  # None in ``Floors.groups`` when each CPU has its own floor
    required: bool = True  # absent from the results (or without a ratio) fails the gate
    min_cpus: int | None = None  # not gated on machines with fewer CPUs
    max_load_per_cpu: float | None = None  # not gated when the run's load was higher
    cpu: str | None = None  # the LLVM target whose floor this is (None: every CPU's)


#: keys of a floor entry besides the ``Floor`` fields: documentation only
_FLOOR_NOTES = ("measured", "note")
#: keys of a group's entry in a CPU's table (``"cpus"``)
_CPU_FLOOR_KEYS = ("floor",) + _FLOOR_NOTES


class Selection(NamedTuple):
    """The floors that apply to one results' CPU (``Floors.for_cpu``)."""
    floors: dict  # {group: Floor}, every floor set, in the floors file's order
    note: str | None  # which CPU's floors these are (None: the file has one set)
    fallback: bool  # per group the lowest of the known CPUs (the CPU has none of its own)


class Floors(NamedTuple):
    """A floors file (``load_floors``)."""
    path: str
    groups: dict  # {group: Floor}; ``floor`` None where each CPU gives its own
    cpus: dict  # {LLVM target: {group: floor}}, in the file's order

    def for_cpu(self, llvm_cpu):
        """The floors for results from the LLVM target ``llvm_cpu`` (None: the results do
        not record it): that CPU's own, or, for a CPU without floors of its own, per group
        the lowest floor of the known CPUs -- a gate that is never stricter than one
        measured somewhere, and says so."""
        per_cpu = [g for g, f in self.groups.items() if f.floor is None]
        if not per_cpu:  # one floor per group, whatever the CPU
            return Selection(dict(self.groups), None, False)
        if llvm_cpu in self.cpus:
            table = self.cpus[llvm_cpu]
            chosen = {g: f if f.floor is not None else f._replace(floor=table[g], cpu=llvm_cpu)
                      for g, f in self.groups.items()}
            return Selection(chosen, f"those measured for CPU {llvm_cpu} (the LLVM target "
                                     "recorded in the results)", False)
        chosen = {}
        for g, f in self.groups.items():
            if f.floor is None:
                cpu = min(self.cpus, key=lambda c: self.cpus[c][g])  # first of equals
                f = f._replace(floor=self.cpus[cpu][g], cpu=cpu)
            chosen[g] = f
        why = (f"no floors measured for CPU {llvm_cpu}" if llvm_cpu is not None else
               "the results do not record their CPU (no fastnn_target in machine_info)")
        return Selection(chosen, f"{why}: using the lowest of the known CPUs "
                                 f"({', '.join(self.cpus)}), group by group", True)


def _check_measured(entry, where):
    measured = entry.get("measured", [])
    if not isinstance(measured, list) or not all(_is_number(m) for m in measured):
        raise ReportError(f"{where}: \"measured\" must be a list of numbers")


def _check_floor(floor, where):
    if not _is_number(floor) or floor <= 0:
        raise ReportError(f"{where}: \"floor\" must be a positive number, not {floor!r}")
    return float(floor)


def load_floors(path):
    """A ``Floors`` from a floors file (JSON: the standard library reads it on every
    Python fastnn supports, where ``tomllib`` needs 3.11)::

        {"about": "free text (a string or a list of strings)",
         "groups": {"<group name as in benchmark.group>": {
             "floor": 20,                 # the lowest acceptable ratio, on every CPU;
                                          # leave it out to give one per CPU ("cpus")
             "required": true,            # default true: fail if the group is absent
             "min_cpus": 2,               # optional: not gated with fewer CPUs
             "max_load_per_cpu": 0.75,    # optional: not gated if the run's 1-minute
                                          # load average exceeded this x the CPU count
             "measured": [33.0, 32.1],    # optional, documentation: the ratios behind it
             "note": "why this floor"}},  # optional, documentation
         "cpus": {                        # optional: floors per CPU
             "<LLVM target, fastnn.target_info()['llvm_cpu']>": {
                 "about": "where, when and how these were measured",
                 "floors": {"<group>": {"floor": 16, "measured": [22.4], "note": "..."}}}}}

    Every CPU in ``"cpus"`` gives a floor to each group without one in ``"groups"``, and
    to no other.  The gate uses the floors of the LLVM target recorded in the results
    (``Floors.for_cpu``).  Unknown keys are errors (a misspelt ``"flor"`` must not
    silently disable a gate)."""
    data = _read_json(path, "floors file")
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object with a \"groups\" object")
    unknown = set(data) - {"about", "groups", "cpus"}
    if unknown:
        raise ReportError(f"{path}: unknown top-level key(s) {sorted(unknown)}; "
                          "expected \"about\", \"groups\" and (optional) \"cpus\"")
    groups = data.get("groups")
    if not isinstance(groups, dict) or not groups:
        raise ReportError(f"{path}: \"groups\" must be a non-empty object "
                          "{group name: {\"floor\": ratio, ...}}")
    per_cpu = "cpus" in data
    floors = {}
    for group, entry in groups.items():
        where = f"{path}: group {group!r}"
        if not isinstance(entry, dict):
            raise ReportError(f"{where}: expected an object such as {{\"floor\": 20}}")
        unknown = set(entry) - set(Floor._fields[1:-1]) - set(_FLOOR_NOTES)
        if unknown:
            raise ReportError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: "
                              f"{', '.join(Floor._fields[1:-1] + _FLOOR_NOTES)}")
        floor = entry.get("floor")
        if floor is not None or not per_cpu:  # else each CPU's table gives it
            floor = _check_floor(floor, where)
        required = entry.get("required", True)
        if not isinstance(required, bool):
            raise ReportError(f"{where}: \"required\" must be true or false")
        min_cpus = entry.get("min_cpus")
        if min_cpus is not None and (isinstance(min_cpus, bool)
                                     or not isinstance(min_cpus, int) or min_cpus < 1):
            raise ReportError(f"{where}: \"min_cpus\" must be a positive integer")
        load = entry.get("max_load_per_cpu")
        if load is not None and (not _is_number(load) or load <= 0):
            raise ReportError(f"{where}: \"max_load_per_cpu\" must be a positive number")
        _check_measured(entry, where)
        floors[group] = Floor(group, floor, required, min_cpus,
                              None if load is None else float(load))
    cpus = {}
    if per_cpu:
        tables = data["cpus"]
        if not isinstance(tables, dict) or not tables:
            raise ReportError(f"{path}: \"cpus\" must be a non-empty object {{LLVM target: "
                              "{\"about\": ..., \"floors\": {group: {\"floor\": ratio}}}}")
        needed = [g for g, f in floors.items() if f.floor is None]
        for cpu, spec in tables.items():
            where = f"{path}: cpus {cpu!r}"
            if not isinstance(spec, dict) or not isinstance(spec.get("floors"), dict):
                raise ReportError(f"{where}: expected an object with a \"floors\" object "
                                  "{group: {\"floor\": ratio, ...}}")
            unknown = set(spec) - {"about", "floors"}
            if unknown:
                raise ReportError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: "
                                  "about, floors")
            table = spec["floors"]
            stray = [g for g in table if g not in floors]
            if stray:
                raise ReportError(f"{where}: floors for group(s) {stray} that \"groups\" "
                                  "does not list")
            both = [g for g in table if floors[g].floor is not None]
            if both:
                raise ReportError(f"{where}: group(s) {both} have one floor for every CPU "
                                  "in \"groups\": give a group's floor there or per CPU, "
                                  "not both")
            missing = [g for g in needed if g not in table]
            if missing:
                raise ReportError(f"{where}: no floor for group(s) {missing} (every CPU "
                                  "needs one for each group without a floor in \"groups\")")
            cpus[cpu] = {}
            for group, entry in table.items():
                here = f"{where}, group {group!r}"
                if not isinstance(entry, dict):
                    raise ReportError(f"{here}: expected an object such as {{\"floor\": 20}}")
                unknown = set(entry) - set(_CPU_FLOOR_KEYS)
                if unknown:
                    raise ReportError(f"{here}: unknown key(s) {sorted(unknown)}; allowed: "
                                      f"{', '.join(_CPU_FLOOR_KEYS)}")
                cpus[cpu][group] = _check_floor(entry.get("floor"), here)
                _check_measured(entry, here)
    return Floors(str(path), floors, cpus)


# -- the gate --------------------------------------------------------------------------
class Results(NamedTuple):
    """One results file, as ``load_results`` read it."""
    path: str
    benchmarks: list
    machine: dict


def llvm_cpu(machine):
    """The LLVM target fastnn compiled for, as the results file records it, or None."""
    cpu = (_target(machine) or {}).get("llvm_cpu")
    return str(cpu) if cpu else None


def results_cpu(results):
    """The LLVM target of a list of ``Results`` (None: not recorded); a ``ReportError``
    when they differ -- a median over two CPUs' ratios would describe neither."""
    cpus = {r.path: llvm_cpu(r.machine) for r in results}
    if len(set(cpus.values())) > 1:
        listed = ", ".join(f"{p}: {c or 'not recorded'}" for p, c in cpus.items())
        raise ReportError(f"the results files come from different CPUs ({listed}); "
                          "gate each CPU's runs on their own")
    return next(iter(cpus.values()))


class Outcome(NamedTuple):
    """One gated group in one results file."""
    ratio: float | None
    kind: str  # "counted"; "excluded" (not gated in this run, ``note`` says why); "missing"
    note: str = ""
    load: float | None = None  # counted under a load limit: the run's load average ...
    limit: str | None = None  # ... and the limit it was within ("1.50 = 0.75 x 2 CPUs")


class Verdict(NamedTuple):
    floor: Floor
    ratio: float | None  # the median of the counted runs' ratios (one run: its ratio)
    status: str  # "ok", "BELOW FLOOR", "MISSING" (these two fail) or "not gated"
    note: str = ""
    runs: tuple = ()  # one ``Outcome`` per results file, in the order given

    @property
    def failed(self):
        return self.status in ("BELOW FLOOR", "MISSING")


def _cpu_count(machine):
    count = ((machine or {}).get("cpu") or {}).get("count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def _group_load(benchmarks, group):
    """The highest 1-minute load average recorded by the group's benchmarks (each
    records it as it starts), or None.  A per-baseline row's are its group's."""
    group = group.partition(VERSUS)[0]
    loads = [float(_info(b)["load_average"]) for b in benchmarks
             if (b.get("group") or "") == group and _is_number(_info(b).get("load_average"))]
    return max(loads) if loads else None


def _outcome(f, found, benchmarks, machine):
    """``Outcome`` of floor ``f`` in one results file (``found``: its rows by group)."""
    cpus = _cpu_count(machine)
    r = found.get(f.group)
    ratio = r.ratio if r is not None else None
    if f.min_cpus is not None and cpus is not None and cpus < f.min_cpus:
        return Outcome(ratio, "excluded", f"needs {f.min_cpus} CPUs, the run had {cpus}")
    if ratio is None:
        if r is None:
            return Outcome(None, "missing", "missing from the results")
        return Outcome(None, "missing", f"no ratio: subject {r.subject or 'missing'}, "
                                        f"fastest baseline {r.best or 'missing'}")
    if f.max_load_per_cpu is None:
        return Outcome(ratio, "counted")
    load = _group_load(benchmarks, f.group)
    if load is None:
        return Outcome(ratio, "counted", "load average not recorded, gated anyway")
    if cpus is None:
        return Outcome(ratio, "counted",
                       f"load average {load:.2f}, CPU count not recorded, gated anyway")
    limit = f.max_load_per_cpu * cpus
    if load > limit:
        return Outcome(ratio, "excluded",
                       f"load average {load:.2f} > {limit:.2f} = {f.max_load_per_cpu:g} x "
                       f"{cpus} CPUs: other processes held cores, so thread scaling "
                       "measures the machine, not fastnn")
    within = f"{limit:.2f} = {f.max_load_per_cpu:g} x {cpus} CPUs"
    return Outcome(ratio, "counted", f"load average {load:.2f} <= {within}", load, within)


def _notes(outcomes):
    """The outcomes' notes as one string: once if every run says the same, else each
    with its run number ("run 2: ..."); the loads of runs within one limit are listed
    together ("load average 0.40, 0.52 <= 1.50 = ...")."""
    notes = [o.note for o in outcomes]
    if len(set(notes)) == 1:
        return notes[0]
    quiet = [(i, o) for i, o in enumerate(outcomes, 1) if o.limit is not None]
    if len({o.limit for _, o in quiet}) != 1:
        quiet = []
    parts = []
    if quiet:
        loads = ", ".join(f"{o.load:.2f}" for _, o in quiet)
        which = "" if len(quiet) == len(outcomes) else \
            f" (run{'s' if len(quiet) > 1 else ''} {', '.join(str(i) for i, _ in quiet)})"
        parts.append(f"load average {loads} <= {quiet[0][1].limit}{which}")
    skip = {i for i, _ in quiet}
    for i, o in enumerate(outcomes, 1):
        if o.note and i not in skip:
            counted = " (not counted)" if o.kind == "excluded" else ""
            parts.append(f"run {i}{counted}: {o.note}")
    return "; ".join(parts)


def gate(runs, floors):
    """One ``Verdict`` per floor, in the floors' order.

    ``runs`` is a list of ``(benchmarks, machine_info)``, one per results file (each
    file's ``cpu.count`` scales ``max_load_per_cpu`` and decides ``min_cpus``; when it is
    absent both are ignored and the group is gated); ``floors`` is ``{group: Floor}``
    with every floor set (``Floors.for_cpu(...).floors``).  A group is gated on the
    median of its ratios over the runs that count: a run excluded by ``min_cpus`` or
    ``max_load_per_cpu`` does not (and when none counts the group is not gated), a
    required group missing from any run fails."""
    found = [({r.group: r for r in rows(benchmarks)}, benchmarks, machine)
             for benchmarks, machine in runs]
    verdicts = []
    for f in floors.values():
        outcomes = tuple(_outcome(f, *run) for run in found)
        missing = [o for o in outcomes if o.kind == "missing"]
        counted = [o.ratio for o in outcomes if o.kind == "counted"]
        if missing:
            why = _notes(outcomes) if len(outcomes) == 1 else "; ".join(
                f"run {i}: {o.note}" for i, o in enumerate(outcomes, 1) if o.kind == "missing")
            if f.required:
                verdicts.append(Verdict(f, None, "MISSING", why, outcomes))
            else:
                verdicts.append(Verdict(f, None, "not gated", why + " (not required)",
                                        outcomes))
        elif not counted:
            verdicts.append(Verdict(f, None, "not gated", _notes(outcomes), outcomes))
        else:
            ratio = _median(counted)
            verdicts.append(Verdict(f, ratio, "ok" if ratio >= f.floor else "BELOW FLOOR",
                                    _notes(outcomes), outcomes))
    return verdicts


def _run_cell(o):
    if o.kind == "missing" or o.ratio is None:
        return "-"
    return f"{o.ratio:.2f}x" if o.kind == "counted" else f"({o.ratio:.2f}x)"


def runs_text(v):
    """The per-run ratios of a verdict, in file order (a run that does not count in
    parentheses, one without the group as "-")."""
    return ", ".join(_run_cell(o) for o in v.runs)


def gate_markdown(verdicts, show_cpu=False):
    """The gate's table; with several runs it shows each run's ratio next to their
    median, and ``show_cpu`` names the CPU each floor comes from."""
    several = any(len(v.runs) > 1 for v in verdicts)
    if several:
        lines = ["| gated group | per run | median | floor | result |",
                 "|---|---|---|---|---|"]
    else:
        lines = ["| gated group | measured | floor | result |", "|---|---|---|---|"]
    for v in verdicts:
        group = v.floor.group.replace("|", "\\|")
        measured = f"{v.ratio:.2f}x" if v.ratio is not None else "-"
        if several:
            measured = f"{runs_text(v)} | {measured}"
        floor = f"{v.floor.floor:g}x"
        if show_cpu and v.floor.cpu:
            floor += f" ({v.floor.cpu})"
        result = f"**{v.status}**" if v.failed else v.status
        if v.note:
            result += f" ({v.note})"
        lines.append(f"| `{group}` | {measured} | {floor} | {result} |")
    return "\n".join(lines)


def median_rows(all_benchmarks):
    """``rows`` over several results files: per group (in the order first seen) the first
    file's row with ``ratio`` the median of the files' ratios (None if none has one)."""
    by_group = {}
    for benchmarks in all_benchmarks:
        for r in rows(benchmarks):
            by_group.setdefault(r.group, []).append(r)
    out = []
    for members in by_group.values():
        ratios = [r.ratio for r in members if r.ratio is not None]
        bar = next((r.bar for r in members if r.bar is not None), None)
        out.append(members[0]._replace(ratio=_median(ratios) if ratios else None, bar=bar,
                                       scaling=any(r.scaling for r in members)))
    return out


# -- command line ----------------------------------------------------------------------
def _gate_report(results, floors, cpu, floors_path):
    """Print the gate's part of the report; the exit status (0 or 1)."""
    selection = floors.for_cpu(cpu)
    verdicts = gate([(r.benchmarks, r.machine) for r in results], selection.floors)
    several = len(results) > 1
    print()
    if several:
        files = ", ".join(f"{i}: {r.path}" for i, r in enumerate(results, 1))
        print(f"Ratio gate ({floors_path}): each group's median speed-up over {len(results)} "
              f"runs ({files}) against its floor")
    else:
        print(f"Ratio gate ({floors_path}): measured speed-up against its floor")
    if selection.note:
        print()
        print(f"Floors: {selection.note}.")
    print()
    print(gate_markdown(verdicts, show_cpu=selection.fallback))
    failed = [v for v in verdicts if v.failed]
    skipped = [v for v in verdicts if v.status == "not gated"]
    print()
    for v in failed:
        if v.status == "MISSING":
            print(f"FAIL: {v.floor.group}: {v.note} (required by {floors_path})",
                  file=sys.stderr)
            continue
        measured = f"{v.ratio:.2f}x" + (f" (median of {runs_text(v)})" if several else "")
        print(f"FAIL: {v.floor.group}: {measured}, below its floor of {v.floor.floor:g}x"
              + (f" for {v.floor.cpu}" if v.floor.cpu else ""), file=sys.stderr)
    summary = (f"{len(verdicts) - len(failed) - len(skipped)} of {len(verdicts)} "
               "groups at or above their floors")
    if skipped:
        summary += f", {len(skipped)} not gated ({', '.join(v.floor.group for v in skipped)})"
    print(f"gate {'FAILED' if failed else 'passed'}: {summary}"
          + (f"; {len(failed)} failed" if failed else ""))
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("json_files", nargs="+", metavar="json_file",
                        help="file written by --benchmark-json; with several (runs of the "
                             "same benchmarks on one CPU), the checks use each group's "
                             "median ratio over them and the tables describe the first")
    parser.add_argument("--gate", metavar="FLOORS", default=None,
                        help="floors file (bench/floors.json): fail (exit 1) if a gated "
                             "group's ratio is below its floor or a required group is missing")
    parser.add_argument("--min-ratio", type=float, default=None,
                        help="fail (exit 1) if any fastnn-vs-baseline ratio is below this "
                             "(thread-scaling groups excepted)")
    parser.add_argument("--check-bars", action="store_true",
                        help="fail (exit 1) if any group misses its own bar")
    args = parser.parse_args(argv)
    try:
        twice = sorted({p for p in args.json_files if args.json_files.count(p) > 1})
        if twice:  # the same run counted twice would weigh the median
            raise ReportError(f"results file(s) given more than once: {', '.join(twice)}")
        results = [Results(p, *load_results(p)) for p in args.json_files]
        cpu = results_cpu(results)
        floors = load_floors(args.gate) if args.gate is not None else None
    except ReportError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    first = results[0]
    print(header(first.path, first.machine))
    print()
    print(cpu_line(first.machine))
    if len(results) > 1:
        print()
        print(f"The tables describe {first.path}, the first of {len(results)} results files; "
              "the checks below use each group's median ratio over all of them ("
              + ", ".join(r.path for r in results) + ").")
    parts = [part for part in (markdown(first.benchmarks), extras(first.benchmarks)) if part]
    for part in parts:
        print()
        print(part)
    status = 0
    if floors is not None:
        status = _gate_report(results, floors, cpu, args.gate)
    checked = (rows(first.benchmarks) if len(results) == 1
               else median_rows([r.benchmarks for r in results]))
    what = "" if len(results) == 1 else f" (median of {len(results)} runs)"
    if args.min_ratio is not None:
        low = [r for r in checked
               if r.ratio is not None and not r.scaling and r.ratio < args.min_ratio]
        for r in low:
            print(f"FAIL: {r.group}: fastnn is only {r.ratio:.2f}x{what} the fastest "
                  f"baseline (< {args.min_ratio})", file=sys.stderr)
        status = status or (1 if low else 0)
    if args.check_bars:
        missed = [r for r in checked
                  if r.bar is not None and r.ratio is not None and r.ratio < r.bar]
        for r in missed:
            print(f"FAIL: {r.group}: {r.ratio:.2f}x{what}, below its bar of {r.bar:g}x",
                  file=sys.stderr)
        status = status or (1 if missed else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
