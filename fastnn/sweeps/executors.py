"""Where a sweep's jobs run: in this process, on a ``concurrent.futures.Executor``, or on a
Dask cluster.  Each backend only ships jobs (``job.run_job``) and hands every finished
job's record to ``done(job, record)``; the numbers stay in the jobs.

Each returns whether Ctrl-C stopped it: queued jobs are then cancelled and become
``cancelled`` rows; a running job keeps its checkpoint.

Compiling: every process compiles fastnn's kernels once (or loads them from Numba's
disk cache).  Before the first job, each worker runs ``job.warm`` (one short run per
kernel family of the sweep): on Dask one worker per host first, the rest of each host
after it, so that one process compiles and writes the disk cache and the others load
it, rather than all compiling the same kernels at once and racing to write the same
cache files.  A process pool's workers load what this process compiled first.
"""

import asyncio
import concurrent.futures
import uuid

from .job import one_per_family, run_job, warm

#: seconds a process pool's running jobs get to return after Ctrl-C (they got the
#: SIGINT too, when they run in this terminal: their runs stop at the next chunk)
_GRACE = 10.0


def in_process(todo, directory, checkpoint_every, done):
    """One job after another in this process (Ctrl-C stops the running job at its next
    chunk, with its checkpoint written)."""
    try:
        for job in todo:
            record = run_job(job, directory, checkpoint_every)
            done(job, record)
            if record["status"] == "cancelled":
                return True
    except KeyboardInterrupt:
        return True
    return False


def on_executor(executor, todo, directory, checkpoint_every, done, warm_first):
    """The jobs on a ``concurrent.futures.Executor`` (a process pool: use the spawn
    context; a thread pool works too: the kernels release the GIL)."""
    futures, reported = {}, set()
    try:
        if warm_first:
            warm(one_per_family(todo))  # fills the disk cache: the pool's workers load it
        for job in todo:
            futures[executor.submit(run_job, job, directory, checkpoint_every)] = job
        for future in concurrent.futures.as_completed(futures):
            reported.add(future)
            done(futures[future], outcome(future, futures[future]))
        return False
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        finished, _ = concurrent.futures.wait(
            [f for f in futures if not f.cancelled()], timeout=_GRACE)
        for future in finished:
            if future not in reported and not future.cancelled():
                done(futures[future], outcome(future, futures[future]))
        return True


def on_dask(client, todo, directory, checkpoint_every, done, warm_first):
    """The jobs as tasks on a Dask cluster, each keyed by its job id (never Dask's
    ``pure=True`` hash of the arguments).  A worker that dies takes nothing finished
    with it (records are gathered as they come, and a job with a record returns it
    without running); its running job is rescheduled by Dask and continues from its
    checkpoint."""
    from distributed import as_completed

    futures, reported = {}, set()
    try:
        if warm_first:
            warm_workers(client, todo)
        for job in todo:
            futures[client.submit(run_job, job, directory, checkpoint_every,
                                  key=f"fastnn-{job.id}", pure=False)] = job
        for future in as_completed(futures):
            job = futures[future]
            reported.add(job.id)
            done(job, outcome(future, job))
            future.release()
        return False
    except KeyboardInterrupt:
        client.cancel([f for f, job in futures.items() if job.id not in reported])
        return True


def warm_workers(client, jobs):
    """``job.warm`` on every worker of ``client``'s cluster: first on one worker per host
    (compiling, or loading the host's disk cache), then on all the others at once
    (loading what the first wrote).  A warm-up that fails is not an error here: the
    jobs report their own."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    hosts = {}
    for address, info in sorted(workers.items()):
        hosts.setdefault(info.get("host"), []).append(address)
    waves = ([addresses[0] for addresses in hosts.values()],
             [a for addresses in hosts.values() for a in addresses[1:]])
    families = one_per_family(jobs)
    token = uuid.uuid4().hex[:12]
    for wave in waves:
        futures = {client.submit(warm, families, key=f"fastnn-warmup-{token}-{address}",
                                 workers=[address], allow_other_workers=False,
                                 pure=False): address for address in wave}
        _wait_while_alive(client, futures)


def _wait_while_alive(client, futures):
    """Wait for the warm-ups, but not for a worker that has gone (its pinned task would
    wait for it forever): its warm-up is cancelled."""
    from distributed import wait

    pending = dict(futures)
    while pending:
        try:
            wait(list(pending), timeout=1.0)
        except (TimeoutError, asyncio.TimeoutError):  # the same class since Python 3.11
            alive = set(client.scheduler_info(n_workers=-1)["workers"])
            gone = [f for f, address in pending.items() if address not in alive]
            client.cancel(gone)
        pending = {f: a for f, a in pending.items() if not f.done()}
    for future in futures:
        future.release()


def outcome(future, job):
    """A finished future's record: its result, or a ``cancelled``/``error`` record."""
    try:
        return future.result()  # Ctrl-C while it waits: raised, for the backend to handle
    except concurrent.futures.CancelledError:
        return dict(job=job.id, kind=job.kind, status="cancelled")
    except Exception as exc:  # noqa: BLE001 - a dead pool, a worker killed too often
        message = str(exc) or repr(exc)
        return dict(job=job.id, kind=job.kind, status="error",
                    error=f"{type(exc).__name__}: {message}")
