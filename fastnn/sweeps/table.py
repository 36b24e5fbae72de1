"""The sweep's table: one row per spec, in spec order, written to ``results.csv``.

A row is the spec's own fields (every option any spec gave, None where this one did
not) followed by ``RESULT_COLUMNS``.  ``results.csv`` holds the same rows: lists as
JSON (``[2, 8, 3]``), None as an empty cell, floats in full (``repr``: they read back
bit for bit).  ``as_table`` gives a pandas DataFrame when pandas is installed.
"""

import csv
import json

from .._archive import atomic_file

#: the result fields of every row, after the spec's fields
RESULT_COLUMNS = ("job", "status", "loss", "accuracy", "val_loss", "val_accuracy", "steps",
                  "epochs", "evaluations", "seconds", "stopped", "error", "model",
                  "checkpoint")


def rows(specs, jobs, records):
    """The rows: ``specs`` and their ``jobs`` (``spec.Job``, same order), ``records``
    (job id -> record)."""
    fields = []
    for spec in specs:
        fields += [key for key in spec if key not in fields]
    fields = [f for f in fields if f not in RESULT_COLUMNS]
    table = []
    for spec, job in zip(specs, jobs, strict=True):
        record = records.get(job.id) or dict(status="cancelled")
        row = {name: spec.get(name) for name in fields}
        row.update({name: record.get(name) for name in RESULT_COLUMNS})
        row["job"] = job.id
        table.append(row)
    return table


def write_csv(table, path):
    """Write the rows to ``path``, atomically."""
    columns = list(table[0]) if table else list(RESULT_COLUMNS)
    with atomic_file(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in table:
            writer.writerow([_cell(row[c]) for c in columns])


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    if isinstance(value, range):
        return json.dumps(list(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def as_table(table):
    """A pandas DataFrame of the rows (None becomes NaN in the number columns), or the
    list of dicts itself without pandas."""
    try:
        import pandas as pd
    except ImportError:
        return table
    columns = list(table[0]) if table else list(RESULT_COLUMNS)
    frame = pd.DataFrame(table, columns=columns)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in ("steps", "epochs", "evaluations"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("Int64")
    for name in columns[:-len(RESULT_COLUMNS)]:  # spec fields: seeds stay integers
        given = [row[name] for row in table if row[name] is not None]
        if given and all(isinstance(v, int) and not isinstance(v, bool) for v in given):
            frame[name] = frame[name].astype("Int64")
    return frame
