"""The perturbation search loop, compiled whole: noise, candidates, loss, acceptance.

One call runs a *chunk* of steps for every chain and returns to Python, which shows
progress, honours Ctrl-C and writes checkpoints between chunks.  Everything a chain does
at step ``i`` depends only on its state and on ``(seed, chain, i, candidate)`` (the
counter-based noise of ``kernels/noise.py``), never on threads, chunk boundaries or
timing: the same seed gives bit-identical results whether chains or candidates run in
parallel or not, and a resumed run continues exactly where a checkpoint left off.

State lives in caller-owned arrays with one row per chain, updated in place (so the
Python driver can checkpoint it as it is):

* ``cur[c]``: the chain's current parameters (its best, for both strategies);
* ``loss[c]``, ``correct[c]``: their mean loss and number of correct samples;
* ``sigma[c]``: the noise scale (changes only with ``adapt``);
* ``step[c]``: steps done; ``last[c]``: step of the last improvement (-1: none);
* ``status[c]``: RUNNING, or why the chain stopped early; ``evals[c]``: evaluations.

Each chunk records improvements in ``hist_*[c, :hist_n[c]]``; a chain whose history
buffer fills up ends its chunk early (memory stays bounded however long the run).

Validation data (``xv``, ``lv``; no samples: none) is evaluated only when a chain
accepts an improvement -- rare, so it costs little -- with the same loss kernel and a
work array of its own (``vwork``: the chain's ``work`` keeps the training samples loaded
across the chunk), and recorded in ``hist_vloss``/``hist_vcorrect`` beside the training
loss.  The per-step loop does not change.
"""

import numba
import numpy as np
from numba import prange

from .._config import HELPER, specialise
from .fastmath import max2, min2
from .network import loss_kernel
from .noise import fill_normals, stream_key
from .target import always_inline, prefer_vector_width

RUNNING, TARGET_REACHED, PATIENCE_EXHAUSTED = 0, 1, 2
#: step-size adaptation by the 1/5th success rule (nevergrad's OnePlusOne): x2 on
#: success, x2**-1/4 on failure, so sigma is stable at a 1/5 success rate
ADAPT_UP, ADAPT_DOWN = 2.0, 2.0 ** -0.25
#: adapted sigma stays within [scale * 2**-12, scale * 2**10]: a chain at a local
#: optimum keeps trying steps that still change float32 parameters (a floor of
#: 2**-30 froze chains for good), and a lucky streak cannot blow the step up
ADAPT_MIN, ADAPT_MAX = 2.0 ** -12, 2.0 ** 10


@numba.njit(**HELPER)
def _draw(seed, c, s, k, random, sigma, cur_c, out):
    """Candidate k of chain c at step s: cur + sigma*N(0,1) (perturb) or sigma*N(0,1)."""
    prefer_vector_width()
    fill_normals(stream_key(seed, c, s, k), out.dtype.type(sigma), out)
    if not random:
        for p in range(out.shape[0]):
            out[p] += cur_c[p]


@numba.njit(**HELPER)
def _adapted(sigma, success, adapt, scale):
    """The chain's next noise scale: unchanged, or by the 1/5th success rule."""
    always_inline()
    if not adapt:
        return sigma
    sigma = sigma * (ADAPT_UP if success else ADAPT_DOWN)
    return min2(max2(sigma, scale * ADAPT_MIN), scale * ADAPT_MAX)


@numba.njit(**HELPER)
def _stop_status(loss, s, last, target, patience):
    """RUNNING, or why the chain stops after step s (its last improvement at ``last``)."""
    always_inline()
    if loss <= target:
        return TARGET_REACHED
    if patience > 0 and s - last >= patience:
        return PATIENCE_EXHAUSTED
    return RUNNING


@numba.njit(**HELPER)
def _copy(src, dst):
    always_inline()
    for p in range(src.shape[0]):  # a loop, not a slice: under parallel=True a slice
        dst[p] = src[p]  # assignment would become a parallel region of its own


def _chains(x, labels, sizes, seed, random, n_cand, step_end, opts, work, trial, best,
            cur, loss, correct, sigma, step, last, status, evals,
            hist_step, hist_loss, hist_correct, hist_n, xv, lv, vwork, hist_vloss,
            hist_vcorrect):
    """Run every chain from ``step[c]`` to ``step_end`` (or until it stops or its
    history buffer fills); chains in ``prange``, candidates serially within a step.

    One chain's steps are their own compiled function, called here: written inline in
    this loop they ran 1.3x slower in the serial build than in the parallel one (where
    Numba outlines the loop body anyway; measured on the book's workload)."""
    prefer_vector_width()
    for c in prange(cur.shape[0]):
        chain_steps(c, x, labels, sizes, seed, random, n_cand, step_end, opts, work, trial,
                     best, cur, loss, correct, sigma, step, last, status, evals,
                     hist_step, hist_loss, hist_correct, hist_n, xv, lv, vwork, hist_vloss,
                     hist_vcorrect)


def _chain_steps(c, x, labels, sizes, seed, random, n_cand, step_end, opts, work, trial,
                 best, cur, loss, correct, sigma, step, last, status, evals,
                 hist_step, hist_loss, hist_correct, hist_n, xv, lv, vwork, hist_vloss,
                 hist_vcorrect):
    """Chain c's steps of one chunk.

    Everything a step touches is private to its chain: scalars in locals and the
    parameter vectors in ``trial[c]``/``best[c]``, rows padded to 64 bytes by the
    caller; the shared state arrays are written once per chunk.  (Neighbouring chains'
    entries share cache lines: updating them every step made two threads barely
    faster than one.)"""
    prefer_vector_width()
    n = x.shape[0]
    # the loss kernel's flags as run-time bools: a constant True/False would be typed
    # Literal[bool] and compile a second build of the loss kernel
    yes = n > 0
    no = not yes
    n_params = cur.shape[1]
    adapt, target, patience, scale = opts
    cap = hist_step.shape[1]
    work_c = work[c]
    vwork_c = vwork[c]
    nv = xv.shape[0]
    passes = 2 if nv > 0 else 1  # loss kernel passes per accepted step
    cur_c = best[c, n_params:2 * n_params]
    trial_c = trial[c, :n_params]
    best_c = best[c, :n_params]
    _copy(cur[c], cur_c)
    loss_c, correct_c, sigma_c = loss[c], correct[c], sigma[c]
    last_c, status_c = last[c], status[c]
    s0 = step[c]
    s = s0
    h = 0
    while s < step_end and status_c == RUNNING and h < cap:
        best_loss = np.inf
        for k in range(n_cand):
            _draw(seed, c, s, k, random, sigma_c, cur_c, trial_c)
            # the samples stay in work_c from the chunk's first evaluation on
            cand_loss = loss_fn(x, labels, trial_c, sizes, work_c, no, s == s0 and k == 0,
                                no)[1] / n
            if cand_loss < best_loss:  # strict: the lowest index wins a tie
                best_loss = cand_loss
                if n_cand > 1:
                    _copy(trial_c, best_c)
        success = best_loss < loss_c  # strict: an equal loss is no improvement
        if success:
            found = trial_c if n_cand == 1 else best_c
            # the samples' accuracy, then the validation data's loss and accuracy,
            # through *one* call of the loss kernel.  Rejected: a second call (or a
            # helper making it), which LLVM inlines and optimises as another copy of
            # the loss kernel: the first search's cold compile took 30% longer (CPU
            # time of ``fastnn search --iterations 1000`` on an empty cache).
            for v in range(passes):
                xs, ls, ws = (x, labels, work_c) if v == 0 else (xv, lv, vwork_c)
                _, total, right = loss_fn(xs, ls, found, sizes, ws, yes, yes, no)
                if v == 0:
                    correct_c = right
                else:
                    hist_vloss[c, h] = total / nv
                    hist_vcorrect[c, h] = right
            loss_c = best_loss
            last_c = s
            _copy(found, cur_c)
            hist_step[c, h] = s
            hist_loss[c, h] = loss_c
            hist_correct[c, h] = correct_c
            h += 1
        sigma_c = _adapted(sigma_c, success, adapt, scale)
        status_c = _stop_status(loss_c, s, last_c, target, patience)
        s += 1
    _copy(cur_c, cur[c])
    loss[c], correct[c], sigma[c], last[c], status[c] = (loss_c, correct_c, sigma_c,
                                                         last_c, status_c)
    evals[c] += (s - s0) * n_cand
    step[c] = s
    hist_n[c] = h


def _candidates(x, labels, sizes, seed, random, n_cand, step_end, opts, work, trial, best,
                cur, loss, correct, sigma, step, last, status, evals,
                hist_step, hist_loss, hist_correct, hist_n, xv, lv, vwork, hist_vloss,
                hist_vcorrect):
    """As ``_chains``, but chains one after another and each step's candidates in
    ``prange`` (one work array per thread, one parameter row per candidate), reduced
    serially so the lowest index wins ties.  ``best`` holds per-candidate losses."""
    prefer_vector_width()
    n = x.shape[0]
    # the loss kernel's flags as run-time bools: a constant True/False would be typed
    # Literal[bool] and compile a second build of the loss kernel
    yes = n > 0
    no = not yes
    n_params = cur.shape[1]
    adapt, target, patience, scale = opts
    cap = hist_step.shape[1]
    nv = xv.shape[0]
    passes = 2 if nv > 0 else 1
    for c in range(cur.shape[0]):
        cur_c = cur[c]
        loss_c, correct_c, sigma_c = loss[c], correct[c], sigma[c]
        last_c, status_c = last[c], status[c]
        s0 = step[c]
        s = s0
        h = 0
        while s < step_end and status_c == RUNNING and h < cap:
            for k in prange(n_cand):
                trial_k = trial[k, :n_params]
                _draw(seed, c, s, k, random, sigma_c, cur_c, trial_k)
                best[k] = loss_fn(x, labels, trial_k, sizes, work[numba.get_thread_id()],
                                  no, yes, no)[1] / n
            kb = 0
            for k in range(1, n_cand):
                if best[k] < best[kb]:
                    kb = k
            success = best[kb] < loss_c
            if success:
                found = trial[kb, :n_params]
                for v in range(passes):  # as in ``_chain_steps``
                    xs, ls, ws = (x, labels, work[0]) if v == 0 else (xv, lv, vwork[0])
                    _, total, right = loss_fn(xs, ls, found, sizes, ws, yes, yes, no)
                    if v == 0:
                        correct_c = right
                    else:
                        hist_vloss[c, h] = total / nv
                        hist_vcorrect[c, h] = right
                loss_c = best[kb]
                last_c = s
                _copy(found, cur_c)
                hist_step[c, h] = s
                hist_loss[c, h] = loss_c
                hist_correct[c, h] = correct_c
                h += 1
            sigma_c = _adapted(sigma_c, success, adapt, scale)
            status_c = _stop_status(loss_c, s, last_c, target, patience)
            s += 1
        loss[c], correct[c], sigma[c], last[c], status[c] = (loss_c, correct_c, sigma_c,
                                                             last_c, status_c)
        evals[c] += (s - s0) * n_cand
        step[c] = s
        hist_n[c] = h


# ``loss_fn`` and ``chain_steps`` are placeholders: each variant below replaces them
# with its loss family's kernels (``_config.specialise``).
loss_fn = None
chain_steps = None


def chain_kernels(family):
    """(serial, parallel) runs of the chains loop for a loss family, built on first use.

    The serial one calls the compiled steps of one chain at a time from Python (a call
    per chain per chunk of ~0.2 s costs nothing, and a first search then compiles no
    loop around them); it is also the twin used off the main thread, where a parallel
    kernel called from several Python threads can abort the process with Numba's
    workqueue layer.  The parallel one runs the chains in ``prange``."""
    steps = specialise(_chain_steps, family, dict(loss_fn=loss_kernel(family)))

    def serial(*args):
        for c in range(args[_CUR].shape[0]):
            steps(c, *args)

    return serial, specialise(_chains, family, dict(chain_steps=steps), parallel=True)


#: position of ``cur`` in ``_chains``'s arguments
_CUR = 11


def candidates_kernel(family):
    """The candidates-in-parallel loop for a loss family, built on first use."""
    return specialise(_candidates, family, dict(loss_fn=loss_kernel(family)), parallel=True)
