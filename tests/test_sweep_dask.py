"""``fastnn.sweep`` on real Dask clusters started here: a ``LocalCluster`` of two
single-threaded worker processes (module-scoped) and, once, ``dask scheduler`` with two
``dask worker`` processes driven by ``fastnn sweep --scheduler``.  No mocks: the tables
are compared with the sequential sweep's, bit for bit, and a worker is SIGKILLed
mid-job."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from subproc import env
from test_sweep import SEARCHES, TRAININGS, same_table

import fastnn
from fastnn.sweeps import spec
from fastnn.sweeps.job import paths, read_record

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
pytest.importorskip("pandas", reason="the dask extra is not installed")


@pytest.fixture(scope="module")
def client():
    from fastnn.cli.sweep import local_cluster

    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        yield client


def task_keys(stream):
    return [task["key"] for task in stream.data]


def test_dask_gives_the_sequential_table_with_keys_of_job_ids(client, tmp_path):
    """Bit for bit; one task per distinct job, keyed by its id (never Dask's pure hash);
    each worker warmed once before its first job, one at a time (one host here)."""
    jobs = SEARCHES + TRAININGS + [dict(SEARCHES[0])]
    alone = fastnn.sweep(jobs, directory=tmp_path / "alone", progress=False)
    with distributed.get_task_stream(client=client) as stream:
        dask = fastnn.sweep(jobs, directory=tmp_path / "dask", executor=client,
                            progress=False)
    assert same_table(alone, dask)
    keys = task_keys(stream)
    job_keys = [k for k in keys if not k.startswith("fastnn-warmup-")]
    assert sorted(job_keys) == sorted(f"fastnn-{j}" for j in set(alone["job"]))
    warm = [t for t in stream.data if t["key"].startswith("fastnn-warmup-")]
    assert sorted(t["worker"] for t in warm) == sorted(client.scheduler_info()["workers"])

    def span(task):
        return (min(s["start"] for s in task["startstops"]),
                max(s["stop"] for s in task["startstops"]))

    # the task stream's times are corrected by each worker's estimated clock offset,
    # a few ms to tens of ms off under load: compare with that much slack
    slack = 0.25
    assert (span(warm[0])[1] <= span(warm[1])[0] + slack
            or span(warm[1])[1] <= span(warm[0])[0] + slack)
    first_job = min(span(t)[0] for t in stream.data if t not in warm)
    assert all(span(t)[1] <= first_job + slack for t in warm)
    assert len({read_record(str(tmp_path / "dask"), j)["worker"] for j in dask["job"]}) == 2


def test_a_second_call_submits_nothing(client, tmp_path):
    first = fastnn.sweep(SEARCHES, directory=tmp_path, executor=client, progress=False)
    with distributed.get_task_stream(client=client) as stream:
        again = fastnn.sweep(SEARCHES, directory=tmp_path, executor=client, progress=False)
    assert task_keys(stream) == []
    assert same_table(first, again, skip=())


def test_a_failing_job_is_an_error_row_on_dask(client, tmp_path):
    job = spec.check_job(SEARCHES[1])
    (tmp_path / f"{job.id}.npz").write_bytes(b"damaged")
    table = fastnn.sweep(SEARCHES, directory=tmp_path, executor=client, progress=False)
    assert list(table["status"]) == ["done", "error", "done", "done"]
    assert "checkpoint" in table["error"][1]


@pytest.mark.slow
def test_sigkill_of_a_worker_mid_job_changes_nothing(client, tmp_path):
    """A worker killed while a job runs: the same table as an undisturbed sweep, no
    finished job run again, and the killed job continued from its checkpoint."""
    jobs = fastnn.grid(kind="search", layers=[2, 8, 3], seed=[7, 8, 9], iterations=600_000)
    undisturbed = fastnn.sweep(jobs, directory=tmp_path / "calm", progress=False)
    ids = set(undisturbed["job"])
    where = str(tmp_path / "killed")
    out = {}

    def run():
        out["table"] = fastnn.sweep(jobs, directory=where, executor=client, progress=False,
                                    checkpoint_every=0.1)

    sweeping = threading.Thread(target=run)
    sweeping.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and sweeping.is_alive():
        for address, keys in client.processing().items():
            for key in keys:
                job_id = key.removeprefix("fastnn-")
                if (job_id in ids and os.path.exists(paths(where, job_id)[0])
                        and read_record(where, job_id) is None):
                    victim = address, job_id
        time.sleep(0.01)
    assert victim is not None, "no job was seen running with a checkpoint"
    address, job_id = victim
    pid = client.run(os.getpid, workers=[address])[address]
    finished = {j: os.stat(paths(where, j)[2]).st_mtime_ns for j in ids
                if read_record(where, j) is not None}
    os.kill(pid, signal.SIGKILL)
    sweeping.join(timeout=180)
    assert not sweeping.is_alive()
    table = out["table"]
    assert same_table(undisturbed, table)
    assert list(table["status"]) == ["done"] * 3
    record = read_record(where, job_id)
    assert 0 < record["resumed_at"] < 600_000  # continued from its checkpoint
    assert record["worker"] != f"{socket.gethostname()}:{pid}"
    assert {j: os.stat(paths(where, j)[2]).st_mtime_ns for j in finished} == finished


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_fastnn_sweep_on_a_dask_scheduler_and_two_dask_workers(tmp_path):
    """The README's cluster recipe: ``dask scheduler``, two ``dask worker`` processes,
    ``fastnn sweep SPEC --scheduler ADDRESS``; the table equals the sequential sweep's."""
    dask_cli = Path(sys.executable).with_name("dask")
    if not dask_cli.exists():
        pytest.skip("no dask command next to this Python")
    address = f"tcp://127.0.0.1:{_free_port()}"
    environ = env(NUMBA_NUM_THREADS="1")
    logs = open(tmp_path / "dask.log", "w")  # noqa: SIM115 - closed in finally
    procs = [subprocess.Popen([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port",
                               address.rsplit(":", 1)[1], "--no-dashboard"],
                              stdout=logs, stderr=logs, env=environ, cwd=tmp_path)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(dask_cli), "worker", address, "--nthreads", "1", "--no-dashboard"],
                stdout=logs, stderr=logs, env=environ, cwd=tmp_path))
        with distributed.Client(address, timeout="60s") as probe:
            probe.wait_for_workers(2, timeout=120)
        grid = dict(kind="search", layers=[2, 8, 3], seed={"range": [0, 3]},
                    scale=[0.02, 0.05], iterations=3000)
        (tmp_path / "grid.json").write_text(json.dumps(grid))
        done = subprocess.run(
            [sys.executable, "-m", "fastnn", "sweep", "grid.json", "--scheduler", address,
             "--directory", "out", "--json", "--no-progress"],
            capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        workers = {read_record(str(tmp_path / "out"), r["job"])["worker"] for r in rows}
        assert len(workers) == 2  # both dask workers ran jobs
        alone = fastnn.sweep(fastnn.grid(**dict(grid, seed=range(3))),
                             directory=tmp_path / "alone", progress=False)
        alone = [{k: (None if v != v else v) for k, v in row.items()}  # NaN -> None
                 for row in alone.to_dict("records")]
        for row in alone:
            row["seed"] = int(row["seed"])
        assert same_table(alone, rows)
        assert (tmp_path / "out" / "results.csv").exists()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        logs.close()


@pytest.mark.slow
def test_cli_workers_starts_a_local_cluster_of_single_threaded_workers(tmp_path, capsys):
    from fastnn.cli import main

    (tmp_path / "grid.json").write_text(json.dumps(dict(iterations=2000, seed=[0, 1, 2])))
    assert main(["sweep", str(tmp_path / "grid.json"), "--workers", "2", "--directory",
                 str(tmp_path / "out"), "--json", "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["done"] * 3
    alone = fastnn.sweep(fastnn.grid(iterations=2000, seed=[0, 1, 2]),
                         directory=tmp_path / "alone", progress=False)
    assert [r["loss"] for r in rows] == list(alone["loss"])
    assert os.getpid() not in {int(read_record(str(tmp_path / "out"), r["job"])["worker"]
                                   .rsplit(":", 1)[1]) for r in rows}


@pytest.mark.slow
def test_ctrl_c_cancels_the_queue_and_the_same_sweep_continues(client, tmp_path):
    jobs = fastnn.grid(kind="search", layers=[2, 8, 3], seed=range(6), iterations=300_000)
    where = str(tmp_path)
    ids = [job.id for job in spec.check_jobs(jobs)]

    def interrupt():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(read_record(where, j) for j in ids):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    cut = fastnn.sweep(jobs, directory=where, executor=client, progress=False)
    assert cut.attrs["interrupted"]
    statuses = list(cut["status"])
    assert "done" in statuses and "cancelled" in statuses, statuses
    assert set(statuses) <= {"done", "cancelled"}
    again = fastnn.sweep(jobs, directory=where, executor=client, progress=False)
    assert list(again["status"]) == ["done"] * 6
    alone = fastnn.sweep(jobs, directory=tmp_path / "alone", progress=False)
    assert same_table(alone, again)
