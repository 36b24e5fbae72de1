"""Many runs, resumably, on one machine or a Dask cluster: ``fastnn.grid``, ``fastnn.sweep``.

The cluster code only splits work, ships it and gathers results; every job is a
``fastnn search``/``fastnn train`` run on one thread, with that command's own option
checks, data loading and drivers (chunks, checkpoints, resume):

* ``spec.py``: ``grid`` (job specs as a cross product) and ``check_jobs`` (every spec
  checked on the client before anything runs; a job's identity from its canonical
  spec and data fingerprint);
* ``job.py``: one job where it runs -- idempotent, checkpointed, its record written
  atomically last -- and ``warm``, a worker's compile before its first job;
* ``executors.py``: in this process, on a ``concurrent.futures.Executor``, on Dask;
* ``table.py``: the rows (spec order), ``results.csv``, the DataFrame;
* ``run.py``: ``sweep`` itself.
"""

from .run import sweep
from .spec import SpecError, grid

__all__ = ["grid", "sweep", "SpecError"]
