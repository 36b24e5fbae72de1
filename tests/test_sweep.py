"""``fastnn.grid`` and ``fastnn.sweep`` without Dask: specs, identity, the job files,
resume, duplicates, errors, Ctrl-C, the process and thread pools, the table and
``results.csv``, and ``fastnn sweep``.  The Dask paths: ``test_sweep_dask.py``."""

import concurrent.futures
import csv
import json
import math
import multiprocessing
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import fastnn
from fastnn.cli import main
from fastnn.sweeps import executors, spec
from fastnn.sweeps.job import paths, read_record

#: small jobs: a few hundredths of a second each
SEARCHES = fastnn.grid(kind="search", layers=[2, 8, 3], seed=[0, 1], scale=[0.02, 0.05],
                       iterations=3000)
TRAININGS = fastnn.grid(kind="train", seed=[0, 1], epochs=200, optimizer=["adam", "sgd"])
#: what differs between two runs of the same jobs
TIMING = ("seconds",)


def records(table):
    """The rows of a sweep's table, a DataFrame (pandas installed) or a list of dicts."""
    return table.to_dict("records") if hasattr(table, "to_dict") else table


def col(table, name):
    return [row[name] for row in records(table)]


def missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def interrupted(table):
    """Whether the sweep says it was interrupted (a DataFrame's ``attrs``; a list of
    rows says it with its ``cancelled`` rows only)."""
    return table.attrs["interrupted"] if hasattr(table, "attrs") else None


def same_table(a, b, skip=TIMING + ("model", "checkpoint")):
    """Every row equal in every column but ``skip``, floats bit for bit."""
    a, b = records(a), records(b)
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert list(ra) == list(rb)
        for key in ra:
            if key in skip:
                continue
            x, y = ra[key], rb[key]
            if missing(x):
                assert missing(y), key
            else:
                assert x == y, (key, x, y)
    return True


# -- grid ----------------------------------------------------------------------------


def test_grid_of_the_issue_has_128_specs_last_keyword_fastest():
    specs = fastnn.grid(kind=["search"], dataset=["spiral"], samples=[100], classes=[3],
                        layers=[[2, 8, 3], [2, 64, 3]], seed=range(32), scale=[0.02, 0.05],
                        iterations=[2_000_000])
    assert len(specs) == 128
    assert specs[0] == dict(kind="search", dataset="spiral", samples=100, classes=3,
                            layers=[2, 8, 3], seed=0, scale=0.02, iterations=2_000_000)
    assert [s["scale"] for s in specs[:3]] == [0.02, 0.05, 0.02]
    assert specs[2]["seed"] == 1 and specs[64]["layers"] == [2, 64, 3]


def test_grid_scalars_strings_and_flat_layers_are_one_value():
    specs = fastnn.grid(kind="train", dataset="vertical", layers=[2, 16, 3], seed=3,
                        l2=[[5e-4, 0]], dropout=[0.1, 0.2])
    assert specs == [dict(kind="train", dataset="vertical", layers=[2, 16, 3], seed=3,
                          l2=[5e-4, 0], dropout=d) for d in (0.1, 0.2)]


def test_grid_with_an_empty_axis_is_an_error():
    with pytest.raises(ValueError, match="seed has no values"):
        fastnn.grid(seed=[])


# -- checking specs ----------------------------------------------------------------------


@pytest.mark.parametrize("bad, match", [
    (dict(kind="search", scael=0.1), r"job 1: 'scael' is not an option .* did you mean 'scale'"),
    (dict(kind="search", scale=-1), r"job 1 \(search\): scale: must be a finite number > 0"),
    (dict(kind="search", layers=[3, 8, 3]), r"job 1 \(search\): layers: the first size"),
    (dict(kind="train", rho=0.5), r"job 1 \(train\): rho: applies to --optimizer rmsprop"),
    (dict(kind="train", dropout=0.5, layers=[2, 3]), r"job 1 \(train\): dropout: needs a "),
    (dict(kind="fit"), r"job 1: kind must be one of \('search', 'train'\), got 'fit'"),
    (dict(checkpoint="x.npz"), r"job 1: checkpoint is set by the sweep"),
    (dict(threads=2), r"job 1: threads is set by the sweep"),
    (dict(adapt="yes"), r"job 1: adapt must be True or False"),
    (dict(seed=[1, 2]), r"job 1: seed must be a number or a string"),
    (dict(iterations=True), r"job 1: iterations takes a value"),
    (dict(dataset="spirals"), r"job 1 \(search\): dataset: invalid choice: 'spirals'"),
    (dict(data="no/such/file.csv"), r"job 1 \(search\): data: .*no/such/file.csv"),
    (dict(data="x.csv", dataset="spiral"), r"job 1 \(search\): (data|dataset): not allowed"),
])
def test_a_bad_spec_fails_the_call_naming_job_and_argument_and_nothing_runs(tmp_path, bad,
                                                                           match):
    jobs = [dict(kind="search", iterations=10), bad]
    with pytest.raises(ValueError, match=match):
        fastnn.sweep(jobs, directory=tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists()  # not even the good job ran


@pytest.mark.parametrize("jobs, error", [
    (dict(kind="search"), TypeError), ("search", TypeError), ([], ValueError),
    ([3], TypeError), ([{1: 2}], TypeError),
])
def test_jobs_must_be_a_list_of_dicts(tmp_path, jobs, error):
    with pytest.raises(error, match="job"):
        fastnn.sweep(jobs, directory=tmp_path, progress=False)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(executor=object()), TypeError, "executor must be None, a concurrent.futures"),
    (dict(directory=3), TypeError, "directory must be a path"),
    (dict(checkpoint_every=0), ValueError, "checkpoint_every must be finite and > 0"),
    (dict(resume="yes"), TypeError, "resume must be True or False"),
])
def test_bad_sweep_arguments(tmp_path, kwargs, error, match):
    kwargs = dict(dict(directory=tmp_path), **kwargs)
    with pytest.raises(error, match=match):
        fastnn.sweep([{}], progress=False, **kwargs)


def test_a_file_as_directory_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="not a directory"):
        fastnn.sweep([{}], directory=tmp_path / "f", progress=False)


def test_a_job_id_is_its_meaning_not_its_spelling(tmp_path):
    ids = [job.id for job in spec.check_jobs([
        dict(scale=1), dict(kind="search", scale=1.0), dict(scale=1, iterations=10_000),
        dict(scale=1, dataset="spiral", samples=100, classes=3),
        dict(scale=1, layers=[2, 3, 3], dtype="float32", no_validation=False),
        dict(scale=1, seed=1), dict(scale=1, samples=50), dict(kind="train")])]
    assert len(set(ids[:5])) == 1
    assert len(set(ids)) == 4
    assert ids[0].startswith("search-") and ids[-1].startswith("train-")


def test_a_changed_data_file_is_a_new_job(tmp_path):
    X, y = fastnn.cli.make_data("spiral", 20, 3, 0, np.float32)
    path = tmp_path / "data.npz"
    np.savez(path, X=X, y=y)
    first = spec.check_job(dict(data=str(path)))
    np.savez(path, X=X + 1, y=y)
    assert spec.check_job(dict(data=str(path))).id != first.id
    assert os.path.isabs(first.argv[0].partition("=")[2])  # workers elsewhere find it


# -- running -----------------------------------------------------------------------------


def test_rows_are_what_the_command_line_prints(tmp_path, capsys):
    """Each done row holds the numbers ``fastnn search``/``fastnn train --json`` print
    for the same options, its model file loads to that network."""
    jobs = [SEARCHES[1], TRAININGS[2]]
    table = fastnn.sweep(jobs, directory=tmp_path, progress=False)
    rows = records(table)
    for job, row in zip(jobs, rows, strict=True):
        argv = [job["kind"], "--json", "--no-progress"]
        for key, value in job.items():
            if key != "kind":
                text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
                argv += [f"--{key.replace('_', '-')}", text]
        assert main(argv) == 0
        cli = json.loads(capsys.readouterr().out)
        assert row["status"] == "done" and row["error"] is None
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert row[key] == cli[key], key
        assert row["steps"] == cli["steps"]
        model, info = fastnn.modelfile.load_network(row["model"])
        assert info["metrics"]["loss"] == row["loss"]
        assert os.path.exists(row["checkpoint"])
    assert rows[0]["evaluations"] == 3000 and rows[1]["epochs"] == 200


def test_a_second_call_runs_nothing_and_duplicates_run_once(tmp_path, monkeypatch):
    calls = []
    real = executors.run_job

    def counting(job, *args):
        calls.append(job.id)
        return real(job, *args)

    monkeypatch.setattr(executors, "run_job", counting)
    jobs = SEARCHES + [dict(SEARCHES[0]), dict(SEARCHES[0], iterations=3e3)]
    first = fastnn.sweep(jobs, directory=tmp_path, progress=False)
    assert len(calls) == len(SEARCHES) == len(set(calls))
    assert col(first, "job")[-2:] == [col(first, "job")[0]] * 2  # a row per spec
    assert col(first, "loss")[-1] == col(first, "loss")[0]
    records = {p: os.stat(tmp_path / p).st_mtime_ns for p in os.listdir(tmp_path)
               if p.endswith(".json")}
    again = fastnn.sweep(jobs, directory=tmp_path, progress=False)
    assert len(calls) == len(SEARCHES)  # nothing submitted
    assert same_table(first, again, skip=())  # seconds too: read from the records
    assert records == {p: os.stat(tmp_path / p).st_mtime_ns for p in records}


def test_no_resume_runs_everything_afresh(tmp_path):
    first = fastnn.sweep(SEARCHES[:2], directory=tmp_path, progress=False)
    before = read_record(str(tmp_path), col(first, "job")[0])["finished"]
    time.sleep(1.1)  # records carry the time to the second
    again = fastnn.sweep(SEARCHES[:2], directory=tmp_path, progress=False, resume=False)
    assert read_record(str(tmp_path), col(first, "job")[0])["finished"] != before
    assert same_table(first, again)


def test_a_failing_job_is_an_error_row_and_the_others_finish(tmp_path):
    job = spec.check_job(SEARCHES[2])
    checkpoint = paths(str(tmp_path), job.id)[0]
    with open(checkpoint, "wb") as f:
        f.write(b"not a checkpoint")  # a damaged checkpoint: this job cannot resume
    table = fastnn.sweep(SEARCHES, directory=tmp_path, progress=False)
    assert col(table, "status") == ["done", "done", "error", "done"]
    error = col(table, "error")[2]
    assert "checkpoint" in error and error.startswith("ValueError")
    assert missing(col(table, "loss")[2])
    assert read_record(str(tmp_path), job.id) is None  # tried again next time
    again = fastnn.sweep(SEARCHES, directory=tmp_path, progress=False, resume=False)
    assert col(again, "status") == ["done"] * 4


def test_an_interrupted_job_resumes_from_its_checkpoint_bit_identical(tmp_path):
    """Ctrl-C mid-job (after a checkpoint): the table so far, with cancelled rows; the
    next call continues the job from its checkpoint and ends where an uninterrupted
    sweep ends."""
    jobs = [dict(kind="search", layers=[2, 8, 3], seed=5, iterations=1_000_000),
            dict(kind="search", layers=[2, 8, 3], seed=6, iterations=1000)]
    whole = fastnn.sweep(jobs, directory=tmp_path / "whole", progress=False)
    first = spec.check_job(jobs[0])
    checkpoint = paths(str(tmp_path / "cut"), first.id)[0]

    def interrupt():
        deadline = time.monotonic() + 60
        while not os.path.exists(checkpoint) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    cut = fastnn.sweep(jobs, directory=tmp_path / "cut", progress=False, checkpoint_every=0.05)
    assert col(cut, "status") == ["cancelled", "cancelled"]
    assert interrupted(cut) in (True, None)
    assert read_record(str(tmp_path / "cut"), first.id) is None
    resumed = fastnn.sweep(jobs, directory=tmp_path / "cut", progress=False)
    record = read_record(str(tmp_path / "cut"), first.id)
    assert 0 < record["resumed_at"] < 1_000_000
    assert same_table(whole, resumed)


@pytest.mark.slow
def test_a_spawned_process_pool_gives_the_sequential_table(tmp_path):
    jobs = SEARCHES + TRAININGS
    alone = fastnn.sweep(jobs, directory=tmp_path / "alone", progress=False)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        pooled = fastnn.sweep(jobs, directory=tmp_path / "pool", executor=pool,
                              progress=False)
    assert same_table(alone, pooled)
    assert {read_record(str(tmp_path / "pool"), j)["worker"] for j in col(pooled, "job")} != {
        read_record(str(tmp_path / "alone"), j)["worker"] for j in col(alone, "job")}


def test_a_thread_pool_gives_the_sequential_table(tmp_path):
    """Jobs in threads of one process: the kernels release the GIL, and nnfs's seeded
    draws from NumPy's global generator take turns (``cli.data.GLOBAL_RNG_LOCK``)."""
    jobs = SEARCHES + TRAININGS + fastnn.grid(kind="train", seed=range(4), epochs=50)
    alone = fastnn.sweep(jobs, directory=tmp_path / "alone", progress=False)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        pooled = fastnn.sweep(jobs, directory=tmp_path / "threads", executor=pool,
                              progress=False)
    assert same_table(alone, pooled)


# -- the table -------------------------------------------------------------------------------


def test_results_csv_reads_back_bit_for_bit(tmp_path):
    table = fastnn.sweep(SEARCHES + TRAININGS, directory=tmp_path, progress=False)
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(records(table)[0])
    for row, expected in zip(rows, records(table), strict=True):
        assert float(row["loss"]) == expected["loss"]
        assert float(row["val_loss"]) == expected["val_loss"]
        assert row["layers"] in ("[2, 8, 3]", "")
        assert row["job"] == expected["job"]


def test_without_pandas_the_table_is_a_list_of_dicts(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas fails
    table = fastnn.sweep(SEARCHES[:2], directory=tmp_path, progress=False)
    assert isinstance(table, list) and table[0]["status"] == "done"
    assert list(table[0])[:4] == ["kind", "layers", "seed", "scale"]
    assert table[1]["scale"] == 0.05 and table[1]["val_loss"] > 0


# -- the command line ----------------------------------------------------------------------


def test_cli_sweep_of_a_toml_grid(tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text('kind = "search"\nlayers = [2, 8, 3]\nseed = {range = [0, 3]}\n'
                    'scale = [0.02, 0.05]\niterations = 3000\n')
    out_dir = tmp_path / "out"
    assert main(["sweep", str(path), "--directory", str(out_dir), "--no-progress"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split()[:4] == ["job", "status", "seed", "scale"]
    assert len(text) == 1 + 6 + 1 and text[-1].endswith("results.csv")
    column = text[0].split().index("val_loss")
    val = [float(line.split()[column]) for line in text[1:-1]]
    assert val == sorted(val)  # best first
    api = fastnn.sweep(fastnn.grid(kind="search", layers=[2, 8, 3], seed=range(3),
                                   scale=[0.02, 0.05], iterations=3000),
                       directory=out_dir, progress=False)
    assert main(["sweep", str(path), "--directory", str(out_dir), "--json",
                 "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["val_loss"] for r in rows] == col(api, "val_loss")


def test_cli_sweep_of_a_json_list_of_grids(tmp_path, capsys):
    path = tmp_path / "grids.json"
    path.write_text(json.dumps([dict(kind="search", iterations=500, seed=[1, 2]),
                                dict(kind="train", epochs=20)]))
    assert main(["sweep", str(path), "--directory", str(tmp_path / "o"), "--json",
                 "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["search", "search", "train"]
    assert rows[2]["epochs"] == 20 and rows[0]["evaluations"] == 500


@pytest.mark.parametrize("content, name, match", [
    ("kind = 'search'\nscale = -1\n", "g.toml", "job 0 \\(search\\): scale: must be"),
    ("[1, 2]", "g.json", "expected a mapping of options"),
    ("{", "g.json", "g.json: Expecting"),
    ("seed = {range = [1.5]}\n", "g.toml", "range takes"),
    ("kind = 'search'\n", "g.yaml", "expected a .json or .toml file"),
])
def test_cli_sweep_bad_specs_exit_2(tmp_path, capsys, content, name, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(path), "--directory", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "argument SPEC" in (err := capsys.readouterr().err)
    assert __import__("re").search(match, err), err


def test_cli_sweep_exits_1_when_a_job_failed(tmp_path, capsys):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(dict(iterations=300, seed=[0, 1])))
    job = spec.check_job(dict(iterations=300, seed=1))
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / f"{job.id}.npz").write_bytes(b"damaged")
    assert main(["sweep", str(path), "--directory", str(tmp_path / "o"),
                 "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"error in {job.id}: ValueError" in out


@pytest.mark.parametrize("option", [["--workers", "2"], ["--scheduler", "tcp://x:1"]])
def test_cli_dask_options_without_dask_say_how_to_install_it(tmp_path, capsys, monkeypatch,
                                                               option):
    monkeypatch.setitem(sys.modules, "distributed", None)
    path = tmp_path / "g.json"
    path.write_text("{}")
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(path), *option])
    assert exc.value.code == 2
    assert "pip install 'fastnn[dask]'" in capsys.readouterr().err
