"""``fastnn.sweep``: run many jobs, resumably, and gather their results in one table."""

import concurrent.futures
import os
import sys

from .. import driver
from . import executors, table
from .job import read_record, remove_files
from .spec import check_jobs


def sweep(jobs, *, directory, executor=None, resume=True, progress=True,
          checkpoint_every=30.0, warmup=True):
    """Run every job and return the table of their results, one row per job spec in
    spec order (never completion order).

    ``jobs``: job specs, dicts of the command line's options in Python spelling plus
    ``kind`` ("search", the default, or "train"), as ``fastnn.grid`` builds them.  All
    are checked before anything runs: a bad spec raises ValueError/TypeError naming its
    index and argument.  Specs meaning the same run (``scale=1`` and ``scale=1.0``) are
    one job, run once, with a row each.

    ``directory``: where each job checkpoints (``<job>.npz``, every
    ``checkpoint_every`` seconds and at the end), writes its model file
    (``<job>.model.npz``) and result record (``<job>.json``), and where the table goes
    (``results.csv``); created if missing.  ``executor``: None (in this process, one
    job after another), a ``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``
    with the spawn context) or a ``dask.distributed.Client``.  Every job runs on one
    thread with the serial kernels: a worker runs as many jobs as it has threads, and
    results depend only on the specs, never on where they ran.

    ``resume=True``: jobs with a record are not run again, jobs with a checkpoint
    continue from it, ending bit-identical to an uninterrupted run; ``False`` deletes
    the jobs' files first.  ``progress``: a tqdm bar over jobs.  ``warmup``: compile the
    jobs' kernels on each worker before the first job (one worker per host first, so
    that the others load the disk cache instead of all compiling at once).

    Returns a pandas DataFrame when pandas is installed, else a list of dicts: the
    spec's fields, then ``job`` (its id), ``status`` ("done", "error" with ``error``,
    or "cancelled"), ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``steps``,
    ``epochs`` (training), ``evaluations`` (search), ``seconds``, ``stopped``, and the
    ``model`` file and ``checkpoint`` paths.  Ctrl-C cancels the queued jobs and returns
    the table so far (``cancelled`` rows; ``table.attrs["interrupted"]`` is True on a
    DataFrame); running the same sweep again continues it."""
    specs = _as_specs(jobs)
    backend = _backend(executor)
    directory = _directory(directory)
    checkpoint_every = driver.positive_float(checkpoint_every, "checkpoint_every")
    for name, value in (("resume", resume), ("progress", progress), ("warmup", warmup)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    checked = check_jobs(specs)  # before anything runs: a bad spec fails the call
    os.makedirs(directory, exist_ok=True)
    unique = {job.id: job for job in checked}
    if not resume:
        for job_id in unique:
            remove_files(directory, job_id)
    records = {job_id: read_record(directory, job_id) for job_id in unique}
    records = {job_id: r for job_id, r in records.items() if r is not None}
    todo = [job for job_id, job in unique.items() if job_id not in records]
    bar = _bar(len(unique), len(records)) if progress else None

    def done(job, record):
        records[job.id] = record
        if bar is not None:
            bar.update()
            errors = sum(r["status"] == "error" for r in records.values())
            losses = [r["val_loss"] if r.get("val_loss") is not None else r["loss"]
                      for r in records.values() if r["status"] == "done"]
            bar.set_postfix(dict(errors=errors, best=f"{min(losses):.4g}" if losses else "-"),
                            refresh=False)

    interrupted = False
    try:
        if todo:
            interrupted = backend(todo, directory, checkpoint_every, done, warmup)
    finally:
        if bar is not None:
            bar.close()
    for job in todo:  # finished where it ran, but its result did not reach us (Ctrl-C)
        if records.get(job.id, {}).get("status") != "done":
            record = read_record(directory, job.id)
            if record is not None:
                records[job.id] = record
    rows = table.rows(specs, checked, records)
    table.write_csv(rows, os.path.join(directory, "results.csv"))
    result = table.as_table(rows)
    if hasattr(result, "attrs"):
        result.attrs["interrupted"] = interrupted
    if interrupted:
        print(f"fastnn.sweep: interrupted; {len(todo) - _finished(records, todo)} of "
              f"{len(unique)} jobs not done. Run the same sweep again to continue it.",
              file=sys.stderr)
    return result


def _finished(records, todo):
    return sum(1 for job in todo if records.get(job.id, {}).get("status") == "done")


def _as_specs(jobs):
    if isinstance(jobs, dict):
        raise TypeError("jobs must be a list of job specs (dicts); for one job pass "
                        "[spec], for a cross product fastnn.grid(**axes)")
    if isinstance(jobs, (str, bytes)):
        raise TypeError(f"jobs must be a list of job specs (dicts), got {type(jobs).__name__}")
    try:
        specs = list(jobs)
    except TypeError:
        raise TypeError(f"jobs must be a list of job specs (dicts), got "
                        f"{type(jobs).__name__}") from None
    if not specs:
        raise ValueError("jobs is empty: nothing to run")
    return specs


def _backend(executor):
    """The function running the jobs on ``executor``, or a TypeError."""
    if executor is None:
        return lambda todo, directory, every, done, warm: executors.in_process(
            todo, directory, every, done)
    if _is_dask_client(executor):
        return lambda todo, directory, every, done, warm: executors.on_dask(
            executor, todo, directory, every, done, warm)
    if isinstance(executor, concurrent.futures.Executor):
        return lambda todo, directory, every, done, warm: executors.on_executor(
            executor, todo, directory, every, done, warm)
    raise TypeError("executor must be None, a concurrent.futures.Executor or a "
                    f"dask.distributed.Client, got {type(executor).__name__}")


def _is_dask_client(obj):
    distributed = sys.modules.get("distributed")  # a Client means it is imported
    return distributed is not None and isinstance(obj, distributed.Client)


def _directory(directory):
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory must be a path (str or os.PathLike), got "
                        f"{type(directory).__name__}")
    directory = os.path.abspath(os.fspath(directory))
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"directory: {directory!r} exists and is not a directory")
    existing = directory  # the folder it will be made in must be writable
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"directory: {existing!r} is not writable")
    return directory


def _bar(total, initial):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="job", desc="sweep", dynamic_ncols=True)
