"""One job, where it runs (this process, a process pool's worker, a Dask worker).

``run_job`` is idempotent, as a Dask task must be (Dask may run one twice: a worker
dies after finishing it, before its result reached the client): a job with a result
record returns the record without running; a job with a checkpoint continues from it.
It runs ``fastnn search``/``fastnn train``'s own ``prepare`` and ``execute`` on the
job's options plus the sweep's (one thread, serial kernels, no bar, the checkpoint and
model file in the sweep's directory), so the numbers are the command line's, and the
driver's checkpoints make an interrupted job end bit-identical to an uninterrupted one.

Files of job ``ID`` in the sweep's directory: ``ID.npz``, its checkpoint, written every
``checkpoint_every`` seconds and at the end; ``ID.model.npz``, its model file (the
format of ``fastnn.save``); ``ID.json``, its result record, written last and
atomically: a job is done exactly when its record exists.
"""

import datetime
import json
import os
import socket
import time

from .. import __version__
from .._archive import atomic_file
from .spec import _in_python_spelling, _ParseError, command_module, parser_for

#: what every job adds to its options
_CONTROL = ("--threads=1", "--no-progress")


def paths(directory, job_id):
    """The job's (checkpoint, model file, result record) paths."""
    base = os.path.join(directory, job_id)
    return f"{base}.npz", f"{base}.model.npz", f"{base}.json"


def read_record(directory, job_id):
    """The job's result record, or None if it has not finished (or the record is not a
    finished job's: a partial file cannot exist, it is written atomically)."""
    try:
        with open(paths(directory, job_id)[2]) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable: run the job again (its checkpoint makes that cheap)
    if not isinstance(record, dict) or record.get("job") != job_id or (
            record.get("status") != "done"):
        return None
    return record


def remove_files(directory, job_id):
    """Forget a job (``resume=False``): its checkpoint, model file and record."""
    for path in paths(directory, job_id):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def run_job(job, directory, checkpoint_every=30.0):
    """Run ``job`` (a ``spec.Job``) to its end; returns its record: a dict with
    ``status`` "done" (written to ``ID.json``), "error" (with ``error``: the exception
    and its message; nothing written, so the next sweep tries again) or "cancelled"
    (Ctrl-C reached the job: its checkpoint holds the work done)."""
    record = read_record(directory, job.id)
    if record is not None:
        return record
    checkpoint, model, record_path = paths(directory, job.id)
    argv = [*job.argv, *_CONTROL, f"--checkpoint={checkpoint}",
            f"--checkpoint-every={checkpoint_every!r}", f"--save={model}"]
    if job.kind == "search":
        argv.append("--parallel=off")
    if os.path.exists(checkpoint):
        argv.append(f"--resume={checkpoint}")
    try:
        summary, result = _execute(job.kind, argv)
    except Exception as exc:  # noqa: BLE001 - any failure is this job's error row
        return dict(job=job.id, kind=job.kind, status="error",
                    error=f"{type(exc).__name__}: {exc}")
    record = _record(job, summary, checkpoint, model)
    if result.interrupted:
        record.update(status="cancelled")
        return record
    _write_json(record_path, record)
    return record


def _execute(kind, argv):
    from ..cli import _common

    parser = parser_for(kind)
    module = command_module(kind)
    try:
        args = parser.parse_args(argv)
        unit = "fastnn.search" if kind == "search" else "fastnn.train"
        done_in = module._steps_done if kind == "search" else module._epochs_done
        checkpoint, resumed_at = _common.check_run_options(args, parser, unit, done_in)
        plan = module.prepare(args, parser)
        summary, _, result = module.execute(args, parser, plan, checkpoint, resumed_at)
    except _ParseError as exc:
        raise ValueError(_in_python_spelling(str(exc))) from None
    return summary, result


def _record(job, s, checkpoint, model):
    search = job.kind == "search"
    return dict(
        job=job.id, kind=job.kind, status="done", error=None, loss=s["loss"],
        accuracy=s["accuracy"], val_loss=s["val_loss"], val_accuracy=s["val_accuracy"],
        steps=s["steps"], epochs=None if search else s["epochs_done"],
        evaluations=s["evaluations"] if search else None, seconds=s["seconds"],
        stopped=s["stopped"],
        resumed_at=s["resumed_at_step"] if search else s["resumed_at_epoch"],
        model=model, checkpoint=checkpoint, worker=f"{socket.gethostname()}:{os.getpid()}",
        finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        fastnn=__version__)


def _write_json(path, obj):
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_file(path) as f:
        json.dump(obj, f, indent=1)


def one_per_family(jobs):
    """The first job of each kernel family (``Job.family``)."""
    seen = {}
    for job in jobs:
        seen.setdefault(job.family, job)
    return list(seen.values())


def warm(jobs):
    """Compile (or load from Numba's disk cache) the kernels of ``jobs``: one job of each
    family (``Job.family``) run for one step, without files.  A worker calls it before its
    first job.  A job that cannot run is skipped (it reports its own error when it runs).
    Returns ``{"host", "pid", "seconds", "runs", "errors"}``."""
    t0 = time.perf_counter()
    families = one_per_family(jobs)
    errors = []
    for job in families:
        short = "--iterations=1" if job.kind == "search" else "--epochs=1"
        argv = [*job.argv, *_CONTROL, short]
        if job.kind == "search":
            argv.append("--parallel=off")
        try:
            _execute(job.kind, argv)
        except Exception as exc:  # noqa: BLE001 - reported by the job itself
            errors.append(f"{job.id}: {type(exc).__name__}: {exc}")
    return dict(host=socket.gethostname(), pid=os.getpid(),
                seconds=time.perf_counter() - t0, runs=len(families), errors=errors)
