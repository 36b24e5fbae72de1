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
"""

import numba
import numpy as np
from numba import prange

from .._config import INLINE, kernel
from .network import network_loss, network_loss_total
from .noise import fill_normals, stream_key

RUNNING, TARGET_REACHED, PATIENCE_EXHAUSTED = 0, 1, 2
#: step-size adaptation by the 1/5th success rule (nevergrad's OnePlusOne): x2 on
#: success, x2**-1/4 on failure, so sigma is stable at a 1/5 success rate
ADAPT_UP, ADAPT_DOWN = 2.0, 2.0 ** -0.25
#: adapted sigma stays within [scale * 2**-30, scale * 2**10]: no underflow to 0
#: after long failure streaks, no overflow after lucky ones
ADAPT_MIN, ADAPT_MAX = 2.0 ** -30, 2.0 ** 10


@numba.njit(**INLINE)
def _draw(seed, c, s, k, random, sigma, cur_c, out):
    """Candidate k of chain c at step s: cur + sigma*N(0,1) (perturb) or sigma*N(0,1)."""
    fill_normals(stream_key(seed, c, s, k), out.dtype.type(sigma), out)
    if not random:
        for p in range(out.shape[0]):
            out[p] += cur_c[p]


@numba.njit(**INLINE)
def _finish_step(c, s, h, found_loss, found_correct, found, state, opts):
    """Accept the step's best candidate if it beats the chain; adapt; check stopping.
    Return the new number of history entries.  ``found`` holds the candidate's params."""
    cur, loss, correct, sigma, last, status, hist_step, hist_loss, hist_correct = state
    adapt, target, patience, scale = opts
    success = found_loss < loss[c]  # strict: an equal loss is not an improvement
    if success:
        for p in range(found.shape[0]):  # loops, not slices: under parallel=True a
            cur[c, p] = found[p]  # slice assignment would become a parallel region
        loss[c] = found_loss
        correct[c] = found_correct
        last[c] = s
        hist_step[c, h] = s
        hist_loss[c, h] = found_loss
        hist_correct[c, h] = found_correct
        h += 1
    if adapt:
        sig = sigma[c] * (ADAPT_UP if success else ADAPT_DOWN)
        sigma[c] = min(max(sig, scale * ADAPT_MIN), scale * ADAPT_MAX)
    if loss[c] <= target:
        status[c] = TARGET_REACHED
    elif patience > 0 and s - last[c] >= patience:
        status[c] = PATIENCE_EXHAUSTED
    return h


def _chains(x, labels, sizes, seed, random, n_cand, step_end, opts, work, trial, best,
            cur, loss, correct, sigma, step, last, status, evals,
            hist_step, hist_loss, hist_correct, hist_n):
    """Run every chain from ``step[c]`` to ``step_end`` (or until it stops or its
    history buffer fills); chains in ``prange``, candidates serially within a step."""
    n = x.shape[0]
    state = (cur, loss, correct, sigma, last, status, hist_step, hist_loss, hist_correct)
    for c in prange(cur.shape[0]):
        # views made once per chain, not per step (each one costs reference counting)
        cur_c, trial_c, best_c, work_c = cur[c], trial[c], best[c], work[c]
        s = step[c]
        h = 0
        cap = hist_step.shape[1]
        while s < step_end and status[c] == RUNNING and h < cap:
            best_loss = np.inf
            for k in range(n_cand):
                _draw(seed, c, s, k, random, sigma[c], cur_c, trial_c)
                cand_loss = network_loss_total(x, labels, trial_c, sizes, work_c) / n
                if cand_loss < best_loss:  # strict: the lowest index wins a tie
                    best_loss = cand_loss
                    if n_cand > 1:
                        for p in range(trial_c.shape[0]):
                            best_c[p] = trial_c[p]
            found = trial_c if n_cand == 1 else best_c
            n_correct = 0
            if best_loss < loss[c]:  # accuracy only for accepted candidates
                n_correct = network_loss(x, labels, found, sizes, work_c)[1]
            h = _finish_step(c, s, h, best_loss, n_correct, found, state, opts)
            evals[c] += n_cand
            s += 1
        step[c] = s
        hist_n[c] = h


def _candidates(x, labels, sizes, seed, random, n_cand, step_end, opts, work, trial, best,
                cur, loss, correct, sigma, step, last, status, evals,
                hist_step, hist_loss, hist_correct, hist_n):
    """As ``_chains``, but chains one after another and each step's candidates in
    ``prange`` (one work array per thread, one parameter row per candidate), reduced
    serially so the lowest index wins ties.  ``best`` holds per-candidate losses."""
    n = x.shape[0]
    state = (cur, loss, correct, sigma, last, status, hist_step, hist_loss, hist_correct)
    for c in range(cur.shape[0]):
        s = step[c]
        h = 0
        cap = hist_step.shape[1]
        while s < step_end and status[c] == RUNNING and h < cap:
            sig = sigma[c]
            for k in prange(n_cand):
                _draw(seed, c, s, k, random, sig, cur[c], trial[k])
                best[k] = network_loss_total(x, labels, trial[k], sizes,
                                             work[numba.get_thread_id()]) / n
            kb = 0
            for k in range(1, n_cand):
                if best[k] < best[kb]:
                    kb = k
            n_correct = 0
            if best[kb] < loss[c]:
                n_correct = network_loss(x, labels, trial[kb], sizes, work[0])[1]
            h = _finish_step(c, s, h, best[kb], n_correct, trial[kb], state, opts)
            evals[c] += n_cand
            s += 1
        step[c] = s
        hist_n[c] = h


#: serial and parallel builds of the same loops (the serial ones are also the nogil
#: twins used off the main thread: a parallel kernel called from several Python
#: threads can abort the process with Numba's workqueue layer)
chains_serial = kernel(_chains)
chains_parallel = kernel(_chains, parallel=True)
candidates_parallel = kernel(_candidates, parallel=True)
