"""Counter-based Gaussian noise: element ``i`` of the noise for (seed, chain, step,
candidate) is a pure function of those five numbers.

There is no generator state, so the search can draw the noise of any candidate in any
thread, in any order, and get the same bits whatever the number of threads, and resume
from a checkpoint that stores only the step counter.  (Numba's own ``np.random`` keeps
one randomly seeded state per thread: results would depend on the schedule.)

* **Key.**  ``stream_key`` folds seed, chain, step and candidate into one 64-bit key
  with the splitmix64 finaliser ``mix64``, adding a distinct odd constant to each input
  first (``mix64(0) == 0``, and the constants keep permuted arguments apart).  Each
  fold is a bijection of the new input for a fixed prefix, so two candidates of the
  same (seed, chain, step) never share a key; other pairs collide with probability
  2**-64.
* **Counter.**  Element ``i`` uses the 64-bit word ``h = mix64(key + (i + 1) * GOLDEN)``
  (the splitmix64 sequence started at ``key``).  It depends on ``i`` only, so a shorter
  draw is a prefix of a longer one.  Two keys' sequences overlap only if the keys differ
  by a small multiple of GOLDEN (probability about ``size * 2**-63``).
* **Normal.**  Box-Muller with one word per normal, ``z = sqrt(-2 ln u1) cos(2 pi u2)``,
  ``u1`` in (0, 1] from the top 24 bits of ``h`` and ``u2`` in [0, 1) from bits 8..31.
  Rejected: the sin/cos pair (two normals per word) ties element ``2k+1`` to ``2k``
  for no gain we need; inverse-CDF needs a branchy tail polynomial; Philox costs more
  rounds for the same job here.

float32 (the search's hot path) is computed in float32, branch-free, so the loop
vectorises (``tests/test_noise.py::test_float32_loop_is_vectorised``): the Cephes
``log_`` of ``kernels/fastmath.py``, ``sqrt``, and ``cos_2pi`` below (a minimax
polynomial, max error 1.2e-7 over every ``u2`` the generator can produce,
``tests/test_noise.py::test_cos_2pi_matches_numpy_on_every_input``).  Integers become
floats through int32 (24-bit values, exact), the conversion AVX2 has.
**Tails:** ``u1 >= 2**-24`` bounds ``|z| <= sqrt(2 * 24 * ln 2) = 5.768``; the normal
puts 8e-9 of its mass beyond that, i.e. about one draw in 1.2e8 that would have been
further out is missing.  Below that the tail is right (``test_tail_frequencies``), but
it is quantised: ``u1`` takes 2**24 values, so beyond about 5 sigma only a few hundred
distinct radii exist.

float64 favours correctness over speed: libm ``log``/``cos`` (scalar calls, no
vectorisation) on 53-bit uniforms, ``|z| <= sqrt(2 * 53 * ln 2) = 8.57``.  The extra 29
bits of each uniform come from a second splitmix64 sequence (key ``mix64(key ^ ALT)``)
and sit *below* the float32 bits, so float32 and float64 noise for the same arguments
agree to about float32 precision except in the far tail
(``test_float32_and_float64_streams_agree``): a float32 and a float64 search with the
same seed see nearly the same perturbations.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._config import HELPER, kernel
from .fastmath import log_, select
from .target import always_inline, prefer_vector_width

u64 = np.uint64
f32 = np.float32

#: splitmix64's increment (2**64 / golden ratio, odd)
GOLDEN = u64(0x9E3779B97F4A7C15)
_M1 = u64(0xBF58476D1CE4E5B9)
_M2 = u64(0x94D049BB133111EB)
_S30, _S27, _S31 = u64(30), u64(27), u64(31)
#: added to seed, chain, step, candidate before each fold: SHA-512's initial hash
#: words (fractional parts of sqrt(2), sqrt(3), sqrt(5), sqrt(7); the first made odd)
_K_SEED = u64(0x6A09E667F3BCC909)
_K_CHAIN = u64(0xBB67AE8584CAA73B)
_K_STEP = u64(0x3C6EF372FE94F82B)
_K_CAND = u64(0xA54FF53A5F1D36F1)
#: xor-ed into the key to derive the float64 path's second sequence (sqrt(11))
_ALT = u64(0x510E527FADE682D1)

_SH40, _SH35, _SH29, _SH8 = u64(40), u64(35), u64(29), u64(8)
_MASK24 = u64(0xFFFFFF)
_MASK29 = u64((1 << 29) - 1)

# float32 constants
_ONE = f32(1.0)
_HALF = f32(0.5)
_QUARTER = f32(0.25)
_MINUS_TWO = f32(-2.0)
_TWO_M24 = f32(2.0**-24)
# cos(2 pi t) ~ 1 + s*(C1 + s*(C2 + s*(C3 + s*(C4 + s*C5)))), s = t*t, t in [0, 1/4]:
# minimax (Lawson) in float64, 2.4e-10; in float32 Horner the rounding dominates.
# Rejected: degree 8 (C4 last), 5e-8 before rounding but 1.9e-7 after; degree 12
# gains nothing over rounding.
_C1 = f32(-19.739208221435547)
_C2 = f32(64.9393539428711)
_C3 = f32(-85.45382690429688)
_C4 = f32(60.1482048034668)
_C5 = f32(-25.00679588317871)

# float64 constants
_TWO_M53 = 2.0**-53
_TWO_PI = 2.0 * math.pi


@njit(**HELPER)
def mix64(x):
    """splitmix64 / murmur3 fmix64 finaliser of a np.uint64 (a bijection)."""
    always_inline()
    x = u64(x)  # a new SSA version: an int64 argument is reinterpreted, not promoted
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


@njit(**HELPER)
def stream_key(seed, chain, step, cand):
    """The np.uint64 key of one noise vector: seed (0 .. 2**64-1), chain, step and
    candidate (non-negative integers, any integer type; taken modulo 2**64)."""
    always_inline()
    k = mix64(u64(seed) + _K_SEED)
    k = mix64(k ^ (u64(chain) + _K_CHAIN))
    k = mix64(k ^ (u64(step) + _K_STEP))
    return mix64(k ^ (u64(cand) + _K_CAND))


def cos_2pi(u):
    """cos(2 pi u) for u in [0, 1); branch-free polynomial for float32 (see module doc)."""
    return math.cos(_TWO_PI * u)


@overload(cos_2pi)
def _cos_2pi_impl(u):
    if u != types.float32:
        return lambda u: math.cos(_TWO_PI * u)

    def cos_2pi_f32(u):
        always_inline()
        # cos(2 pi u) = cos(2 pi (1 - u)) = -cos(2 pi (1/2 - u)): fold u to t in
        # [0, 1/4] and a sign.  Every step is exact for u = k * 2**-24.
        a = select(u < _HALF, u, _ONE - u)
        flip = a > _QUARTER
        t = select(flip, _HALF - a, a)
        s = t * t
        c = _ONE + s * (_C1 + s * (_C2 + s * (_C3 + s * (_C4 + s * _C5))))
        return select(flip, -c, c)

    return cos_2pi_f32


@njit(**HELPER)
def _normal_f32(h):
    """N(0, 1) in float32 from the 64-bit word h (24-bit uniforms, |z| <= 5.77)."""
    always_inline()
    a = np.int32(h >> _SH40)  # bits 40..63
    b = np.int32((h >> _SH8) & _MASK24)  # bits 8..31
    u1 = (f32(a) + _ONE) * _TWO_M24  # (0, 1]
    u2 = f32(b) * _TWO_M24  # [0, 1)
    # log_(u1) <= 0 for every u1 (test_log_is_exact_enough_on_every_input): no clamp
    return np.sqrt(_MINUS_TWO * log_(u1)) * cos_2pi(u2)


@njit(**HELPER)
def _normal_f64(h, h2):
    """N(0, 1) in float64: the float32 bits of h on top, 29 bits of h2 below."""
    always_inline()
    a = np.int64(((h >> _SH40) << _SH29) | (h2 >> _SH35))
    b = np.int64((((h >> _SH8) & _MASK24) << _SH29) | (h2 & _MASK29))
    u1 = (np.float64(a) + 1.0) * _TWO_M53  # (0, 1]
    u2 = np.float64(b) * _TWO_M53  # [0, 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


def fill_normals(key, scale, out):  # pragma: no cover - replaced by the overload below
    """out[i] = scale * N(0, 1) for i < out.shape[0], element i from
    ``mix64(key + (i + 1) * GOLDEN)`` only.  ``out`` is a 1-D float32 or float64 array;
    ``scale`` is rounded to its dtype first.  For compiled code only."""
    raise NotImplementedError("fill_normals runs inside compiled code only")


@overload(fill_normals)
def _fill_impl(key, scale, out):
    if out.dtype == types.float32:
        def fill_f32(key, scale, out):
            prefer_vector_width()
            k = u64(key)
            sc = f32(scale)
            for i in range(out.shape[0]):
                out[i] = sc * _normal_f32(mix64(k + u64(i + 1) * GOLDEN))

        return fill_f32
    if out.dtype == types.float64:
        def fill_f64(key, scale, out):
            prefer_vector_width()
            k = u64(key)
            sc = np.float64(scale)
            k2 = mix64(k ^ _ALT)
            for i in range(out.shape[0]):
                c = u64(i + 1) * GOLDEN
                out[i] = sc * _normal_f64(mix64(k + c), mix64(k2 + c))

        return fill_f64
    return None


@kernel
def normals(seed, chain, step, cand, scale, out):
    """Fill 1-D ``out`` with ``scale *`` the noise for (seed, chain, step, cand).

    No checks (``fastnn.noise.gaussian_noise`` is the checked entry point).  Pass a seed
    of 2**63 or more as ``np.uint64``: once a signature with an int64 seed exists, Numba
    refuses a larger Python int with OverflowError instead of compiling another one."""
    prefer_vector_width()
    fill_normals(stream_key(seed, chain, step, cand), scale, out)
