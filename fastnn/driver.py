"""One driver for long compiled runs (``search``, ``train``): chunks, progress, Ctrl-C,
callbacks, checkpoints and resume.

A run's compiled kernel does a *chunk* of work per call (steps, or candidates, or
epochs: the run's own unit) and returns to Python, where the driver

* sizes the next chunk so a call takes about ``CHUNK_SECONDS`` (a live progress bar and a
  prompt Ctrl-C, yet the ~20 us of Python per chunk is lost in the noise),
* updates a tqdm bar (``tqdm.auto``: a widget in Jupyter, text in a terminal),
* calls the user's ``callback(result_so_far)`` (a true return value stops the run),
* turns Ctrl-C into a flag checked between chunks (the state is never half updated),
* writes the checkpoint every ``checkpoint_every`` seconds (atomically, no pickle:
  ``fastnn.checkpoint``); a failing periodic write warns and the run goes on.

What a run must provide is ``Run``'s methods; results depend only on the run's
arguments and seed, never on chunk sizes, timing or threads (the runs' kernels keep
that promise; the driver only decides how much work each call does).
"""

import contextlib
import math
import numbers
import os
import signal
import threading
import time
import warnings

import numba
import numpy as np

from .checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint

#: wall time aimed at per chunk: short enough for a live progress bar and a prompt
#: Ctrl-C, long enough that the per-chunk Python work (~20 us) is lost in the noise
CHUNK_SECONDS = 0.2
#: a chunk grows at most this factor from one call to the next
_MAX_GROWTH = 64


class Run:
    """The interface ``drive`` works with (a base class documenting it; subclasses
    override every method but ``stop``).

    ``stopped`` is None while the run goes on, else why it ended ("callback",
    "interrupted", or the run's own reasons)."""

    stopped = None
    #: tqdm's ``desc`` and ``unit`` for the bar
    name = "run"
    unit = "step"

    def running(self):
        """Whether there is work left (and nothing stopped the run)."""
        raise NotImplementedError

    def advance(self, budget):
        """Do at most ``budget`` units of work in one compiled call."""
        raise NotImplementedError

    def progress(self):
        """(units done, units in all, {postfix name: text}) for the bar."""
        raise NotImplementedError

    def result(self):
        """The result so far (what the callback gets, and what the run returns)."""
        raise NotImplementedError

    def state(self):
        """(arrays, meta) to write to a checkpoint."""
        raise NotImplementedError

    def stop(self, reason):
        self.stopped = reason


def drive(run, *, progress=False, callback=None, checkpoint=None, checkpoint_every=60.0,
          first_chunk=64, max_chunk=None):
    """Run ``run`` to its end in chunks; returns the wall time spent (seconds).

    ``first_chunk``: units in the first timed chunk (the kernels are compiled before:
    the first chunk measures the speed); ``max_chunk``: a cap (a run whose buffers hold a
    bounded number of units per call)."""
    bar = _progress_bar(run) if progress else None
    chunk = first_chunk if max_chunk is None else min(first_chunk, max_chunk)
    t0 = time.perf_counter()
    last_save = t0
    try:
        with _sigint_as_flag() as interrupted:
            while run.running():
                t = time.perf_counter()
                run.advance(chunk)
                took = time.perf_counter() - t
                if took > 0:  # next chunk: about CHUNK_SECONDS of work
                    chunk = int(min(max(chunk * CHUNK_SECONDS / took, 1), chunk * _MAX_GROWTH))
                    if max_chunk is not None:
                        chunk = min(chunk, max_chunk)
                if bar is not None:
                    _update_bar(bar, run)
                # a stop asked for after the last chunk changes nothing: the run ended
                if callback is not None and callback(run.result()) and run.running():
                    run.stop("callback")
                if interrupted() and run.running():
                    run.stop("interrupted")
                now = time.perf_counter()
                if checkpoint is not None and now - last_save >= checkpoint_every:
                    save_or_warn(run, checkpoint)
                    last_save = now
    finally:
        if bar is not None:
            bar.close()
    return time.perf_counter() - t0


def save(run, path):
    """Write ``run``'s state to the checkpoint ``path`` (atomically)."""
    arrays, meta = run.state()
    save_checkpoint(path, arrays, meta)


def save_or_warn(run, path):
    """A periodic checkpoint; if it cannot be written (disk full...), warn and go on: the
    previous checkpoint is intact and the run is not thrown away."""
    try:
        save(run, path)
    except OSError as exc:
        warnings.warn(f"fastnn.{run.name}: could not write checkpoint {str(path)!r}: {exc}",
                      RuntimeWarning, stacklevel=3)


def restore(path, meta, arrays_like):
    """The arrays of the checkpoint ``path``, checked against this run: its metadata
    must equal ``meta`` (``CheckpointError`` naming every field that differs) and every
    array of ``arrays_like`` (name -> array) must be there with the same shape and
    dtype.  Extra arrays (histories) are returned as they are."""
    arrays, saved = load_checkpoint(path)
    check_compatible(path, saved, meta)
    for name, like in arrays_like.items():
        got = arrays.get(name)
        if got is None or got.shape != like.shape or got.dtype != like.dtype:
            raise CheckpointError(f"checkpoint {str(path)!r} is missing or has a malformed "
                                  f"'{name}' array; start a new checkpoint")
    return arrays


# -- argument checks shared by the runs --------------------------------------------------


def check_seed(seed):
    """An int seed in [0, 2**64); None draws one from the OS."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) % 2 ** 64
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if not 0 <= seed < 2 ** 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return int(seed)


def check_threads(threads):
    """None, or an int in [1, NUMBA_NUM_THREADS]."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if threads > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"threads must be <= {numba.config.NUMBA_NUM_THREADS} "
                         f"(NUMBA_NUM_THREADS), got {threads}")
    return int(threads)


def check_callback(callback):
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    return callback


def positive_float(value, name):
    """A finite float > 0, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def writable_path(path, name):
    """``path`` if a file can be created there (checked before the run, not after it,
    when the result would be lost), else a TypeError/ValueError naming it."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike) or None, "
                        f"got {type(path).__name__}")
    if os.path.isdir(path):
        raise ValueError(f"{name}: {os.fspath(path)!r} is a directory")
    folder = os.path.dirname(os.path.abspath(os.fspath(path))) or "."
    if not os.path.isdir(folder):
        raise ValueError(f"{name}: directory {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: directory {folder!r} is not writable")
    return path


def check_resume(resume):
    if resume is not None and not isinstance(resume, (str, os.PathLike)):
        raise TypeError(f"resume must be a path (str or os.PathLike) or None, "
                        f"got {type(resume).__name__}")
    return resume


# -- execution context ------------------------------------------------------------------


def on_main_thread():
    return threading.current_thread() is threading.main_thread()


def threading_layer():
    """Numba's threading layer, starting its threads if needed (None if unknown).

    Starting them also matters for correctness: a cached kernel that calls
    ``numba.get_thread_id`` crashes if loaded before the threads exist (numba 0.68)."""
    try:
        return numba.threading_layer()
    except ValueError:  # not started yet
        try:
            from numba.np.ufunc.parallel import _launch_threads
            _launch_threads()
            return numba.threading_layer()
        except Exception:  # noqa: BLE001 - internal API: fall back to "unknown"
            return None


@contextlib.contextmanager
def numba_threads(n):
    """Use ``n`` Numba threads in this thread for the duration (None: leave as is)."""
    if n is None:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@contextlib.contextmanager
def _sigint_as_flag():
    """Turn Ctrl-C into a flag checked between chunks, so an interrupt never lands
    halfway through updating the state (on the main thread; elsewhere a
    KeyboardInterrupt cannot reach us anyway)."""
    hits = []
    if not on_main_thread():
        yield lambda: False
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda signum, frame: hits.append(signum))
    try:
        yield lambda: bool(hits)
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress_bar(run):
    from tqdm.auto import tqdm

    done, total, _ = run.progress()
    return tqdm(total=total, unit=run.unit, dynamic_ncols=True, initial=done, desc=run.name)


def _update_bar(bar, run):
    done, _, postfix = run.progress()
    bar.n = done
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()
