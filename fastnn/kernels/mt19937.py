"""NumPy's legacy global generator (``np.random.binomial(1, p, size)``), compiled.

The book's ``Layer_Dropout`` draws its masks with ``np.random.binomial(1, keep,
size=...)`` from NumPy's global ``RandomState``: a Mersenne Twister (MT19937) whose
53-bit doubles feed the binomial's inversion algorithm.  The book's ``Model`` run through
fastnn's compiled trainer must draw the same masks and leave the generator in the same
state (so the next ``spiral_data`` of a seeded script is the book's too), but NumPy's
binomial costs ~20 ns a draw: 32 ms of every epoch of the book's chapter 18 run, far more
than the epoch's arithmetic.  This module takes the generator's state
(``np.random.get_state()``), produces the same draws in a compiled loop, and returns the
state to put back (``np.random.set_state``).

What it reproduces, from NumPy's sources (``mt19937.c``, ``distributions.c``,
``legacy-distributions.c``): ``mt19937_gen`` (the twist of all 624 words), the tempering
of ``mt19937_next32``, ``mt19937_next_double`` = ``((a >> 5) * 67108864 + (b >> 6)) /
2**53``, and ``legacy_random_binomial`` for n = 1: with p > 0.5 it draws ``1 -
inversion(1, 1 - p)``, else ``inversion(1, p)``, where ``inversion`` compares a uniform
with ``qn = exp(n * log(q))`` and restarts with a new uniform in the (astronomically
rare) case the search passes its bound.  ``tests/test_mt19937.py`` checks it draw for
draw against NumPy.
"""

import math

import numpy as np
from numba import njit

from .._config import HELPER, kernel

N, M = 624, 397
_MATRIX_A = np.uint32(0x9908B0DF)
_UPPER = np.uint32(0x80000000)
_LOWER = np.uint32(0x7FFFFFFF)


@njit(**HELPER)
def _twist(key):
    """Regenerate all 624 words of the state (``mt19937_gen``)."""
    one = np.uint32(1)
    for i in range(N - M):
        y = (key[i] & _UPPER) | (key[i + 1] & _LOWER)
        key[i] = key[i + M] ^ (y >> one) ^ (_MATRIX_A * (y & one))
    for i in range(N - M, N - 1):
        y = (key[i] & _UPPER) | (key[i + 1] & _LOWER)
        key[i] = key[i + (M - N)] ^ (y >> one) ^ (_MATRIX_A * (y & one))
    y = (key[N - 1] & _UPPER) | (key[0] & _LOWER)
    key[N - 1] = key[M - 1] ^ (y >> one) ^ (_MATRIX_A * (y & one))


@njit(**HELPER)
def _temper(key, words):
    """words[i] = the tempered key[i] (``mt19937_next``'s output), all 624 at once: a
    loop LLVM vectorises."""
    for i in range(N):
        y = np.uint32(key[i])
        y ^= y >> np.uint32(11)
        y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
        y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
        y ^= y >> np.uint32(18)
        words[i] = y


@kernel
def binomial1(key, pos, p, qn, flip, words, out):
    """Fill ``out`` (uint8) with draws of ``np.random.binomial(1, p0)``, continuing the
    generator at (``key``, ``pos``); returns the new position (``key`` is updated in
    place).  ``p``, ``qn`` and ``flip`` are ``binomial_parameters(p0)``; ``words`` is
    scratch for 624 uint32."""
    _temper(key, words)  # words[pos:] are the next outputs (the state is unchanged)
    px = p * qn / (1.0 - p)  # ((n - X + 1) * p * px) / (X * q) for n = X = 1
    one = np.uint8(1) if flip else np.uint8(0)
    draws = out.shape[0]
    i = 0
    while i < draws:
        # the draws whose two words lie before the next twist, while none restarts
        run = min((N - pos) // 2, draws - i)
        restart = _run(words, pos, run, qn, px, one, out[i:i + run])
        done = run if restart < 0 else restart
        pos += 2 * done
        i += done
        if i == draws:
            break
        if done == run and pos + 2 <= N:
            continue
        # a draw straddling a twist, or a restart: one at a time, exactly
        while True:
            u, pos = _next_double(key, words, pos)
            if u <= qn:
                x = 0
                break
            if u - qn <= px:
                x = 1
                break
        out[i] = np.uint8(1 - x) if flip else np.uint8(x)
        i += 1
    return pos


@njit(**HELPER)
def _run(words, pos, run, qn, px, one, out):
    """``run`` draws from the words at ``pos`` (two each) into ``out``; returns -1, or
    the index of the first draw that would restart the inversion (probability ~1e-16
    each; its result and those after it are then not valid).  Branch-free, so the loop
    vectorises: a and b fit int32 (27 and 26 bits), whose conversion AVX2 has."""
    bad = False
    flip = one ^ np.uint8(1)
    for k in range(run):
        a = np.int32(words[pos + 2 * k] >> np.uint32(5))
        b = np.int32(words[pos + 2 * k + 1] >> np.uint32(6))
        u = (np.float64(a) * 67108864.0 + np.float64(b)) / 9007199254740992.0
        big = u > qn
        out[k] = flip if big else one
        bad |= big & (u - qn > px)
    if not bad:
        return -1
    for k in range(run):
        a = np.int32(words[pos + 2 * k] >> np.uint32(5))
        b = np.int32(words[pos + 2 * k + 1] >> np.uint32(6))
        u = (np.float64(a) * 67108864.0 + np.float64(b)) / 9007199254740992.0
        if u > qn and u - qn > px:
            return k
    return -1


@njit(**HELPER)
def _next_double(key, words, pos):
    """mt19937_next_double: the next uniform (53 bits) and the new position; twists
    (and re-tempers ``words``) when the state is used up."""
    if pos >= N:
        _twist(key)
        _temper(key, words)
        pos = 0
    a = np.int64(words[pos] >> np.uint32(5))
    pos += 1
    if pos >= N:
        _twist(key)
        _temper(key, words)
        pos = 0
    b = np.int64(words[pos] >> np.uint32(6))
    return (a * 67108864.0 + b) / 9007199254740992.0, pos + 1


def binomial_parameters(p0):
    """(p, qn, flip) of ``legacy_random_binomial`` for n = 1 and probability ``p0``: the
    inversion runs on min(p0, 1 - p0), computed as NumPy's C code does (``q = 1 - p``,
    ``qn = exp(n * log(q))``; Python's ``math`` calls the same C library)."""
    flip = p0 > 0.5
    p = 1.0 - p0 if flip else p0
    q = 1.0 - p
    qn = math.exp(1 * math.log(q)) if q > 0 else 0.0
    return p, qn, flip
