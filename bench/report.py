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
  does not gate (no speed-up reaches 2 on 2 cores).
* ``bar`` (on the subject): the ratio the group should reach (an issue's target);
  shown in the table, and ``--check-bars`` exits with status 1 when one is missed.
* ``evaluations`` (network evaluations per round): adds a throughput table
  (evaluations per second of the median round); ``threading_layer``, ``threads``
  and ``load_average`` (the machine's, as the benchmark started) are printed under it.

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


class Row(NamedTuple):
    group: str
    medians: dict  # {impl: median seconds}, in the order first seen
    subject: str | None  # the impl measured against the baselines
    best: str | None  # the fastest baseline
    ratio: float | None  # best baseline median / subject median
    bar: float | None  # the ratio the group should reach
    scaling: bool  # fastnn against itself (a parallel speed-up)


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
    impl = _impl(b)
    return "subject" if impl == SUBJECT else "baseline" if impl in BASELINES else None


def rows(benchmarks):
    """One ``Row`` per group, in the order the groups first appear.

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
    return out


def markdown(benchmarks):
    lines = [
        "| workload | fastnn | baselines (median) | speed-up vs fastest baseline |",
        "|---|---|---|---|",
    ]
    for r in rows(benchmarks):
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
        group = r.group.replace("|", "\\|")  # a bare | would split the table cell
        lines.append(f"| `{group}` | {subject} | {others or '-'} | {speedup} |")
    return "\n".join(lines)


def _fmt_rate(per_second):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.2f} {unit}"
    return f"{per_second:.0f}"


def extras(benchmarks):
    """Markdown for what the ratio table leaves out: a throughput table of the
    benchmarks that report search evaluations, the Numba threading set-up and the
    machine's load they ran with; "" if none recorded any of these."""
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
    floor: float
    required: bool = True  # absent from the results (or without a ratio) fails the gate
    min_cpus: int | None = None  # not gated on machines with fewer CPUs
    max_load_per_cpu: float | None = None  # not gated when the run's load was higher


#: keys of a floor entry besides the ``Floor`` fields: documentation only
_FLOOR_NOTES = ("measured", "note")


def load_floors(path):
    """``{group: Floor}`` from a floors file (JSON: the standard library reads it on every
    Python fastnn supports, where ``tomllib`` needs 3.11)::

        {"about": "free text (a string or a list of strings)",
         "groups": {"<group name as in benchmark.group>": {
             "floor": 20,                 # required: the lowest acceptable ratio
             "required": true,            # default true: fail if the group is absent
             "min_cpus": 2,               # optional: not gated with fewer CPUs
             "max_load_per_cpu": 0.75,    # optional: not gated if the run's 1-minute
                                          # load average exceeded this x the CPU count
             "measured": [33.0, 32.1],    # optional, documentation: the ratios behind it
             "note": "why this floor"}}}  # optional, documentation

    Unknown keys are errors (a misspelt ``"flor"`` must not silently disable a gate)."""
    data = _read_json(path, "floors file")
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object with a \"groups\" object")
    unknown = set(data) - {"about", "groups"}
    if unknown:
        raise ReportError(f"{path}: unknown top-level key(s) {sorted(unknown)}; "
                          "expected \"about\" and \"groups\"")
    groups = data.get("groups")
    if not isinstance(groups, dict) or not groups:
        raise ReportError(f"{path}: \"groups\" must be a non-empty object "
                          "{group name: {\"floor\": ratio, ...}}")
    floors = {}
    for group, entry in groups.items():
        where = f"{path}: group {group!r}"
        if not isinstance(entry, dict):
            raise ReportError(f"{where}: expected an object such as {{\"floor\": 20}}")
        unknown = set(entry) - set(Floor._fields[1:]) - set(_FLOOR_NOTES)
        if unknown:
            raise ReportError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: "
                              f"{', '.join(Floor._fields[1:] + _FLOOR_NOTES)}")
        floor = entry.get("floor")
        if not _is_number(floor) or floor <= 0:
            raise ReportError(f"{where}: \"floor\" must be a positive number, not {floor!r}")
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
        measured = entry.get("measured", [])
        if not isinstance(measured, list) or not all(_is_number(m) for m in measured):
            raise ReportError(f"{where}: \"measured\" must be a list of numbers")
        floors[group] = Floor(group, float(floor), required, min_cpus,
                              None if load is None else float(load))
    return floors


# -- the gate --------------------------------------------------------------------------
class Verdict(NamedTuple):
    floor: Floor
    ratio: float | None
    status: str  # "ok", "BELOW FLOOR", "MISSING" (these two fail) or "not gated"
    note: str = ""

    @property
    def failed(self):
        return self.status in ("BELOW FLOOR", "MISSING")


def _cpu_count(machine):
    count = ((machine or {}).get("cpu") or {}).get("count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def _group_load(benchmarks, group):
    """The highest 1-minute load average recorded by the group's benchmarks (each
    records it as it starts), or None."""
    loads = [float(_info(b)["load_average"]) for b in benchmarks
             if (b.get("group") or "") == group and _is_number(_info(b).get("load_average"))]
    return max(loads) if loads else None


def gate(benchmarks, floors, machine=None):
    """One ``Verdict`` per floor, in the floors file's order.  ``machine`` is the JSON's
    ``machine_info`` (its ``cpu.count`` scales ``max_load_per_cpu`` and decides
    ``min_cpus``; when it is absent both are ignored and the group is gated)."""
    found = {r.group: r for r in rows(benchmarks)}
    cpus = _cpu_count(machine)
    verdicts = []
    for f in floors.values():
        r = found.get(f.group)
        ratio = r.ratio if r is not None else None
        if f.min_cpus is not None and cpus is not None and cpus < f.min_cpus:
            verdicts.append(Verdict(f, ratio, "not gated",
                                    f"needs {f.min_cpus} CPUs, the run had {cpus}"))
            continue
        if ratio is None:
            if r is None:
                why = "missing from the results"
            else:
                why = (f"no ratio: subject {r.subject or 'missing'}, fastest baseline "
                       f"{r.best or 'missing'}")
            if f.required:
                verdicts.append(Verdict(f, None, "MISSING", why))
            else:
                verdicts.append(Verdict(f, None, "not gated", why + " (not required)"))
            continue
        note = ""
        if f.max_load_per_cpu is not None:
            load = _group_load(benchmarks, f.group)
            if load is None:
                note = "load average not recorded, gated anyway"
            elif cpus is None:
                note = f"load average {load:.2f}, CPU count not recorded, gated anyway"
            else:
                limit = f.max_load_per_cpu * cpus
                if load > limit:
                    verdicts.append(Verdict(
                        f, ratio, "not gated",
                        f"load average {load:.2f} > {limit:.2f} = {f.max_load_per_cpu:g} x "
                        f"{cpus} CPUs: other processes held cores, so thread scaling "
                        "measures the machine, not fastnn"))
                    continue
                note = (f"load average {load:.2f} <= {limit:.2f} = {f.max_load_per_cpu:g} x "
                        f"{cpus} CPUs")
        verdicts.append(Verdict(f, ratio, "ok" if ratio >= f.floor else "BELOW FLOOR", note))
    return verdicts


def gate_markdown(verdicts):
    lines = ["| gated group | measured | floor | result |", "|---|---|---|---|"]
    for v in verdicts:
        group = v.floor.group.replace("|", "\\|")
        measured = f"{v.ratio:.2f}x" if v.ratio is not None else "-"
        result = f"**{v.status}**" if v.failed else v.status
        if v.note:
            result += f" ({v.note})"
        lines.append(f"| `{group}` | {measured} | {v.floor.floor:g}x | {result} |")
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("json_file", help="file written by --benchmark-json")
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
        benchmarks, machine = load_results(args.json_file)
        floors = load_floors(args.gate) if args.gate is not None else None
    except ReportError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"<!-- generated by bench/report.py from {args.json_file}: "
          f"{(machine.get('cpu') or {}).get('brand_raw', 'unknown CPU')}, "
          f"Python {machine.get('python_version', '?')} -->")
    print(markdown(benchmarks))
    more = extras(benchmarks)
    if more:
        print()
        print(more)
    status = 0
    if floors is not None:
        verdicts = gate(benchmarks, floors, machine)
        print()
        print(f"Ratio gate ({args.gate}): measured speed-up against its floor")
        print()
        print(gate_markdown(verdicts))
        failed = [v for v in verdicts if v.failed]
        skipped = [v for v in verdicts if v.status == "not gated"]
        print()
        for v in failed:
            if v.status == "MISSING":
                print(f"FAIL: {v.floor.group}: {v.note} (required by {args.gate})",
                      file=sys.stderr)
            else:
                print(f"FAIL: {v.floor.group}: {v.ratio:.2f}x, below its floor of "
                      f"{v.floor.floor:g}x", file=sys.stderr)
        summary = (f"{len(verdicts) - len(failed) - len(skipped)} of {len(verdicts)} "
                   "groups at or above their floors")
        if skipped:
            summary += f", {len(skipped)} not gated ({', '.join(v.floor.group for v in skipped)})"
        print(f"gate {'FAILED' if failed else 'passed'}: {summary}"
              + (f"; {len(failed)} failed" if failed else ""))
        status = 1 if failed else 0
    if args.min_ratio is not None:
        low = [r for r in rows(benchmarks)
               if r.ratio is not None and not r.scaling and r.ratio < args.min_ratio]
        for r in low:
            print(f"FAIL: {r.group}: fastnn is only {r.ratio:.2f}x the fastest baseline "
                  f"(< {args.min_ratio})", file=sys.stderr)
        status = status or (1 if low else 0)
    if args.check_bars:
        missed = [r for r in rows(benchmarks)
                  if r.bar is not None and r.ratio is not None and r.ratio < r.bar]
        for r in missed:
            print(f"FAIL: {r.group}: {r.ratio:.2f}x, below its bar of {r.bar:g}x",
                  file=sys.stderr)
        status = status or (1 if missed else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
