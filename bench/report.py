"""Speed ratios from a pytest-benchmark run: ``baseline median / fastnn median`` per group.

Usage (from the repository root)::

    python -m pytest bench --benchmark-json=bench-results.json
    python bench/report.py bench-results.json [--min-ratio 2] [--check-bars]

Prints a Markdown table (paste it into the README's performance section: tables there
are generated, never typed).  ``--min-ratio R`` exits with status 1 when fastnn is less
than R times faster than the fastest baseline in any group that has both; ratios, not
absolute times, are what can be compared between runs on shared machines.

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json_file", help="file written by --benchmark-json")
    parser.add_argument("--min-ratio", type=float, default=None,
                        help="fail (exit 1) if any fastnn-vs-baseline ratio is below this "
                             "(thread-scaling groups excepted)")
    parser.add_argument("--check-bars", action="store_true",
                        help="fail (exit 1) if any group misses its own bar")
    args = parser.parse_args(argv)
    with open(args.json_file, encoding="utf-8") as f:
        data = json.load(f)
    benchmarks = data["benchmarks"]
    machine = data.get("machine_info", {})
    print(f"<!-- generated by bench/report.py from {args.json_file}: "
          f"{machine.get('cpu', {}).get('brand_raw', 'unknown CPU')}, "
          f"Python {machine.get('python_version', '?')} -->")
    print(markdown(benchmarks))
    more = extras(benchmarks)
    if more:
        print()
        print(more)
    status = 0
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
