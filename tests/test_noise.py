"""The counter-based Gaussian noise of ``kernels/noise.py`` and ``fastnn.noise``.

* Exactness: ``mix64``/``stream_key`` against pure-Python integers, every element
  against a NumPy float64 reference built from the same bits (its constants restated
  here, so an accidental change of the generator fails), the float32 ``cos``/``log``
  approximations on *every* input the generator can give them.
* Reproducibility: identical bits in-process, from many Python threads, and from two
  subprocesses with 1 and 2 Numba threads drawing candidates in a ``prange``; the prefix
  property; distinct streams for distinct (seed, chain, step, candidate).
* Distribution: moments, Kolmogorov-Smirnov, tail frequencies and correlations, all with
  limits of 6 standard errors of the sample size (the samples are fixed, so a pass is
  deterministic; 6 sigma keeps a correct generator far from the limit).
* ``gaussian_noise`` argument checks.
"""

import hashlib
import math
import platform
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit, types
from subproc import env, run_python

from fastnn._config import JIT
from fastnn.kernels.fastmath import log_
from fastnn.kernels.noise import cos_2pi, fill_normals, mix64, normals, stream_key
from fastnn.noise import gaussian_noise

DTYPES = (np.float32, np.float64)
MASK64 = 2**64 - 1
U64_MAX = MASK64

# The generator, restated (kernels/noise.py).
GOLDEN = 0x9E3779B97F4A7C15
M1, M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
K_SEED, K_CHAIN = 0x6A09E667F3BCC909, 0xBB67AE8584CAA73B
K_STEP, K_CAND = 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1
ALT = 0x510E527FADE682D1

#: float32 noise: u1 >= 2**-24 bounds |z|
F32_BOUND = math.sqrt(2 * 24 * math.log(2))

#: compiled here without the disk cache (so inspect_asm works, and nothing is written
#: next to the tests)
NOCACHE = {**JIT, "cache": False}


# --- pure-Python / NumPy reference ------------------------------------------------------

def mix64_py(x):
    x &= MASK64
    x ^= x >> 30
    x = (x * M1) & MASK64
    x ^= x >> 27
    x = (x * M2) & MASK64
    return x ^ (x >> 31)


def unmix64_py(x):
    """Inverse of mix64_py: the word that mixes to x."""
    x ^= (x >> 31) ^ (x >> 62)
    x = (x * pow(M2, -1, 2**64)) & MASK64
    x ^= (x >> 27) ^ (x >> 54)
    x = (x * pow(M1, -1, 2**64)) & MASK64
    return x ^ (x >> 30) ^ (x >> 60)


def stream_key_py(seed, chain, step, cand):
    k = mix64_py(seed + K_SEED)
    k = mix64_py(k ^ ((chain + K_CHAIN) & MASK64))
    k = mix64_py(k ^ ((step + K_STEP) & MASK64))
    return mix64_py(k ^ ((cand + K_CAND) & MASK64))


def mix64_np(x):
    """mix64 on a uint64 array (NumPy array arithmetic wraps modulo 2**64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(M1)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(M2)
    return x ^ (x >> np.uint64(31))


def words_np(key, n):
    """The splitmix64 sequence from ``key``: word i is mix64(key + (i + 1) * GOLDEN)."""
    counter = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GOLDEN)
    return mix64_np(counter + np.uint64(key))


def uniforms_np(key, n, dtype):
    """(u1 in (0, 1], u2 in [0, 1)) as float64 arrays, with the bits the kernel uses."""
    h = words_np(key, n)
    a = h >> np.uint64(40)
    b = (h >> np.uint64(8)) & np.uint64(0xFFFFFF)
    if dtype == np.float32:
        return (a.astype(np.float64) + 1) * 2.0**-24, b.astype(np.float64) * 2.0**-24
    h2 = words_np(mix64_py(key ^ ALT), n)
    a = (a << np.uint64(29)) | (h2 >> np.uint64(35))
    b = (b << np.uint64(29)) | (h2 & np.uint64(2**29 - 1))
    return (a.astype(np.float64) + 1) * 2.0**-53, b.astype(np.float64) * 2.0**-53


def normals_np(key, n, dtype):
    """Box-Muller in float64 on the kernel's uniforms."""
    u1, u2 = uniforms_np(key, n, dtype)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


# --- compiled helpers -------------------------------------------------------------------

@njit(**NOCACHE)
def _mix64(x):
    return mix64(x)


@njit(**NOCACHE)
def _key(seed, chain, step, cand):
    return stream_key(seed, chain, step, cand)


@njit(**NOCACHE)
def _cos_all(u, out):
    for i in range(u.shape[0]):
        out[i] = cos_2pi(u[i])


@njit(**NOCACHE)
def _log_all(u, out):
    for i in range(u.shape[0]):
        out[i] = log_(u[i])


@njit(**NOCACHE)
def _fill_key(key, scale, out):
    fill_normals(key, scale, out)


def draw(dtype, n, seed=0, chain=0, step=0, cand=0, scale=1.0):
    out = np.empty(n, dtype=dtype)
    normals(np.uint64(seed), np.uint64(chain), np.uint64(step), np.uint64(cand),
            dtype(scale), out)
    return out


def draw_rows(dtype, rows, n, vary, seed=0):
    """rows x n: row r is the stream with ``vary`` (seed/chain/step/cand) set to r."""
    out = np.empty((rows, n), dtype=dtype)
    for r in range(rows):
        args = dict(seed=seed, chain=3, step=1000, cand=5)
        args[vary] = args[vary] + r if vary != "seed" else seed + r
        out[r] = draw(dtype, n, **args)
    return out


# --- exactness --------------------------------------------------------------------------

def test_mix64_known_splitmix64_outputs():
    """splitmix64 seeded with 0 gives 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, ..."""
    expected = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    for i, e in enumerate(expected, start=1):
        assert mix64_py(i * GOLDEN) == e
        assert int(_mix64(np.uint64((i * GOLDEN) & MASK64))) == e


@settings(deadline=None, max_examples=200)
@given(st.integers(0, U64_MAX))
def test_mix64_matches_python(x):
    assert int(_mix64(np.uint64(x))) == mix64_py(x)
    assert all(sig.return_type == types.uint64 for sig in _mix64.nopython_signatures)
    assert unmix64_py(mix64_py(x)) == x


@settings(deadline=None, max_examples=100)
@given(st.integers(0, U64_MAX), st.integers(0, 2**40), st.integers(0, 10**12),
       st.integers(0, 2**31))
def test_stream_key_matches_python(seed, chain, step, cand):
    expected = stream_key_py(seed, chain, step, cand)
    assert int(_key(np.uint64(seed), np.uint64(chain), np.uint64(step), np.uint64(cand))) \
        == expected
    # int64 arguments (the search's counters) give the same key as uint64 ones
    if seed < 2**63:
        assert int(_key(seed, chain, step, cand)) == expected


def test_stream_key_pinned():
    """A changed constant would silently change every checkpointed search."""
    assert stream_key_py(0, 0, 0, 0) == int(_key(0, 0, 0, 0))
    assert hex(stream_key_py(12345, 1, 2, 3)) == hex(int(_key(12345, 1, 2, 3)))
    assert stream_key_py(12345, 1, 2, 3) == 0x65DF3C0AE72CEAF2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("args", [(0, 0, 0, 0), (12345, 1, 2, 3), (U64_MAX, 7, 10**10, 99)])
def test_matches_numpy_reference(dtype, args):
    """Every element equals Box-Muller in float64 on the same bits: float32 to its
    polynomial accuracy (measured max 1e-6 at |z| ~ 5), float64 to rounding."""
    n = 100_003
    z = draw(dtype, n, *args)
    ref = normals_np(stream_key_py(*args), n, dtype)
    err = np.abs(z - ref)
    if dtype == np.float32:
        assert err.max() <= 4e-7 + 4e-7 * np.abs(ref).max(), err.max()
    else:
        assert err.max() <= 1e-14 * max(1.0, np.abs(ref).max()), err.max()


def test_cos_2pi_matches_numpy_on_every_input():
    """cos_2pi on all 2**24 values u2 = k * 2**-24 the float32 generator produces
    (an exhaustive grid): max absolute error 1.2e-7 measured."""
    u = np.arange(2**24, dtype=np.float64) * 2.0**-24
    out = np.empty(u.shape, dtype=np.float32)
    _cos_all(u.astype(np.float32), out)
    err = np.abs(out - np.cos(2.0 * np.pi * u))
    assert err.max() < 1.5e-7, (err.max(), u[err.argmax()])
    assert out[0] == 1 and out[2**23] == -1  # u = 0 and u = 1/2 exact
    assert np.all(np.abs(out) <= 1)


def test_log_is_exact_enough_on_every_input():
    """log_ on all 2**24 values u1 = (k + 1) * 2**-24: relative error below 1.5e-7
    (8e-8 measured), never positive (so sqrt(-2 log u1) needs no clamp), 0 at u1 = 1."""
    u = (np.arange(2**24, dtype=np.float64) + 1) * 2.0**-24
    out = np.empty(u.shape, dtype=np.float32)
    _log_all(u.astype(np.float32), out)
    ref = np.log(u)
    assert out[-1] == 0
    assert np.all(out[:-1] < 0)
    rel = np.abs(out[:-1] - ref[:-1]) / -ref[:-1]
    assert rel.max() < 1.5e-7, rel.max()


def _key_for_first_word(h):
    """A key whose element 0 is drawn from the word h."""
    return np.uint64((unmix64_py(h) - GOLDEN) & MASK64)


@pytest.mark.parametrize("word, expected", [
    (0, F32_BOUND),  # u1 = 2**-24, u2 = 0: the largest float32 draw
    (0x800000 << 8, -F32_BOUND),  # u2 = 1/2
    (0x400000 << 8, 0.0),  # u2 = 1/4
    (0xFFFFFF << 40, 0.0),  # u1 = 1
    (MASK64, 0.0),
])
def test_float32_edge_words(word, expected):
    out = np.empty(3, dtype=np.float32)
    _fill_key(_key_for_first_word(word), np.float32(1), out)
    assert words_np(int(_key_for_first_word(word)), 1)[0] == word
    assert abs(out[0] - expected) <= 2e-6
    assert np.abs(out).max() <= F32_BOUND * (1 + 1e-6)


def test_float32_and_float64_streams_agree():
    """Same arguments, nearly the same noise: the float64 uniforms refine the float32
    ones.  Differences come from the 2**-24 cells (large only where u1 is tiny, in the
    tail) and float32 rounding."""
    z32 = draw(np.float32, 200_000, seed=3)
    z64 = draw(np.float64, 200_000, seed=3)
    d = np.abs(z32 - z64)
    assert np.median(d) < 1e-6
    assert np.quantile(d, 0.999) < 3e-5
    assert d.max() < 0.02


def test_float32_loop_is_vectorised():
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("checks x86 assembly")

    @njit(**NOCACHE)
    def fill(key, scale, out):
        fill_normals(key, scale, out)

    fill(np.uint64(1), np.float32(1), np.empty(4, dtype=np.float32))
    asm = fill.inspect_asm(fill.signatures[0])
    assert re.search(r"\bv?sqrtps\b", asm), "no packed float32 sqrt: loop not vectorised"
    assert not re.search(r"(logf|cosf|sinf|expf)\b", asm), "libm call in the float32 loop"


# --- reproducibility --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_deterministic_in_process(dtype):
    a = gaussian_noise(42, 1, 2, 3, 1000, dtype=dtype)
    b = gaussian_noise(42, 1, 2, 3, 1000, dtype=dtype)
    assert a.tobytes() == b.tobytes()
    # the kernel with plain Python ints (any integer typing) gives the same bits
    out = np.empty(1000, dtype=dtype)
    normals(42, 1, 2, 3, 1.0, out)
    assert out.tobytes() == a.tobytes()
    out[:] = 0
    # a Python int seed >= 2**63 must come as np.uint64 once an int64 signature exists
    # (Numba then raises OverflowError rather than compiling another one)
    normals(np.uint64(U64_MAX), 1, 10**10, 3, 1.0, out)
    assert out.tobytes() == gaussian_noise(U64_MAX, 1, 10**10, 3, 1000, dtype=dtype).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_many_threads(dtype):
    serial = [gaussian_noise(9, 0, 4, k, 5000, dtype=dtype) for k in range(32)]
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(
            lambda k: gaussian_noise(9, 0, 4, k, 5000, dtype=dtype), range(32)))
    for s, t in zip(serial, threaded, strict=True):
        assert s.tobytes() == t.tobytes()


_SUBPROCESS = """
import hashlib
import numba
import numpy as np
from numba import njit, prange
from fastnn.kernels.noise import fill_normals, stream_key
from fastnn.noise import gaussian_noise

@njit(parallel=True, nogil=True, error_model="numpy", fastmath={"contract", "nsz"})
def candidates(seed, step, out):
    for k in prange(out.shape[0]):
        fill_normals(stream_key(seed, 2, step, k), out.dtype.type(1.0), out[k])

h = hashlib.sha256()
for dt in (np.float32, np.float64):
    out = np.empty((64, 259), dtype=dt)
    candidates(np.uint64(7), 10**10, out)
    h.update(out.tobytes())
    h.update(gaussian_noise(2**64 - 1, 3, 10**10, 9, 1001, dtype=dt).tobytes())
print(numba.get_num_threads(), h.hexdigest())
"""


def _expected_subprocess_digest():
    h = hashlib.sha256()
    for dt in DTYPES:
        out = np.empty((64, 259), dtype=dt)
        for k in range(64):
            normals(np.uint64(7), np.uint64(2), np.uint64(10**10), np.uint64(k),
                    dt(1.0), out[k])
        h.update(out.tobytes())
        h.update(gaussian_noise(2**64 - 1, 3, 10**10, 9, 1001, dtype=dt).tobytes())
    return h.hexdigest()


def test_same_bits_with_1_and_2_threads_in_subprocesses():
    """Candidates drawn in a prange with NUMBA_NUM_THREADS=1 and 2, in fresh processes,
    equal the serial in-process draw bit for bit."""
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(
            lambda t: run_python(_SUBPROCESS, env=env(NUMBA_NUM_THREADS=str(t))), (1, 2)))
    expected = _expected_subprocess_digest()
    for threads, run in zip((1, 2), runs, strict=True):
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == [str(threads), expected]


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 300), st.integers(0, 300), st.sampled_from(DTYPES),
       st.integers(0, U64_MAX))
def test_prefix_property(n, extra, dtype, seed):
    """Element i depends only on i: the first n of n + extra draws are the n draws
    (also across the vector body / scalar remainder boundary of the loop)."""
    short = gaussian_noise(seed, 1, 5, 2, n, dtype=dtype)
    long = gaussian_noise(seed, 1, 5, 2, n + extra, dtype=dtype)
    assert short.tobytes() == long[:n].tobytes()


def test_distinct_streams():
    """Neighbouring and permuted (seed, chain, step, candidate) give unrelated streams,
    and the keys over a grid are all distinct."""
    args = [(0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1),
            (1, 2, 3, 4), (4, 3, 2, 1), (2, 1, 3, 4), (1, 2, 4, 3), (0, 1, 1, 0),
            (U64_MAX, 0, 0, 0), (0, 0, 10**10, 0), (0, 0, 10**10 + 1, 0)]
    streams = [draw(np.float32, 1000, *a) for a in args]
    for i in range(len(args)):
        for j in range(i + 1, len(args)):
            # independent float32 draws coincide with probability ~1e-7 per element
            assert np.count_nonzero(streams[i] == streams[j]) <= 2, (args[i], args[j])
    keys = {int(_key(s, c, i, k)) for s in range(6) for c in range(6)
            for i in range(30) for k in range(30)}
    assert len(keys) == 6 * 6 * 30 * 30


# --- distribution -----------------------------------------------------------------------

N_MOMENTS = 1_000_000
N_TAIL = 10_000_000


@pytest.fixture(scope="module", params=DTYPES, ids=["float32", "float64"])
def sample(request):
    """10 million draws: 10,000 candidates x 1000 elements."""
    dt = request.param
    out = np.empty((N_TAIL // 1000, 1000), dtype=dt)
    for k in range(out.shape[0]):
        normals(np.uint64(2024), np.uint64(1), np.uint64(77), np.uint64(k), dt(1.0), out[k])
    return out.reshape(-1)


def kolmogorov_sf(t):
    """P(sqrt(n) D > t) for large n: 2 sum_k (-1)**(k-1) exp(-2 k**2 t**2)."""
    return min(1.0, max(0.0, 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * t * t)
                                     for k in range(1, 101))))


def test_kolmogorov_sf_known_values():
    assert kolmogorov_sf(1.358) == pytest.approx(0.05, abs=2e-4)
    assert kolmogorov_sf(1.628) == pytest.approx(0.01, abs=1e-4)


def test_moments(sample):
    x = sample[:N_MOMENTS].astype(np.float64)
    n = x.size
    mean = x.mean()
    c = x - mean
    var = np.mean(c**2)
    skew = np.mean(c**3) / var**1.5
    kurt = np.mean(c**4) / var**2
    assert abs(mean) < 6 * math.sqrt(1 / n)
    assert abs(var - 1) < 6 * math.sqrt(2 / n)
    assert abs(skew) < 6 * math.sqrt(6 / n)
    assert abs(kurt - 3) < 6 * math.sqrt(24 / n)


def test_kolmogorov_smirnov(sample):
    x = np.sort(sample[:N_MOMENTS].astype(np.float64))
    n = x.size
    cdf = 0.5 * (1 + np.frompyfunc(math.erf, 1, 1)(x / math.sqrt(2)).astype(np.float64))
    i = np.arange(1, n + 1)
    d = max(np.max(i / n - cdf), np.max(cdf - (i - 1) / n))
    p = kolmogorov_sf(math.sqrt(n) * d)
    assert p > 1e-6, (d, p)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_tail_frequencies(sample, k):
    """P(|z| > k) against erfc(k / sqrt 2), 6 binomial standard errors (10 million draws)."""
    n = sample.size
    p = math.erfc(k / math.sqrt(2))
    count = np.count_nonzero(np.abs(sample) > k)
    assert abs(count - n * p) < 6 * math.sqrt(n * p * (1 - p)), (count, n * p)


def test_bounded(sample):
    assert np.all(np.isfinite(sample))
    bound = F32_BOUND if sample.dtype == np.float32 else math.sqrt(2 * 53 * math.log(2))
    assert np.abs(sample).max() <= bound * (1 + 1e-6)


def assert_uncorrelated(a, b, what):
    """Pearson correlation of a and b, and of a**2 and b**2, within 6/sqrt(n) of 0."""
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    limit = 6 / math.sqrt(a.size)
    for f in (lambda v: v, np.square):
        r = np.corrcoef(f(a), f(b))[0, 1]
        assert abs(r) < limit, (what, r, limit)


@pytest.mark.parametrize("dtype", DTYPES)
def test_consecutive_elements_uncorrelated(dtype):
    z = draw(dtype, N_MOMENTS, seed=5)
    assert_uncorrelated(z[:-1], z[1:], "lag 1")
    assert_uncorrelated(z[:-2], z[2:], "lag 2")


@pytest.mark.parametrize("vary", ["seed", "chain", "step", "cand"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_neighbouring_streams_uncorrelated(dtype, vary):
    """Element i of the stream for seed/chain/step/candidate r against element i of r+1."""
    x = draw_rows(dtype, 501, 2000, vary, seed=11)
    assert_uncorrelated(x[:-1], x[1:], vary)


# --- scale, dtype and validation --------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_is_applied(dtype):
    unit = gaussian_noise(1, 2, 3, 4, 777, dtype=dtype)
    for scale in (0.5, 2.5, 1e-3, 3):
        scaled = gaussian_noise(1, 2, 3, 4, 777, scale=scale, dtype=dtype)
        np.testing.assert_array_equal(scaled, dtype(scale) * unit)


@pytest.mark.parametrize("dtype", ["float32", np.float32, np.dtype("float64"), float])
def test_dtype_policy(dtype):
    z = gaussian_noise(0, 0, 0, 0, 10, dtype=dtype)
    assert z.dtype == np.dtype(dtype) and z.shape == (10,) and z.flags.c_contiguous
    assert gaussian_noise(0, 0, 0, 0, 0, dtype=dtype).shape == (0,)


def test_accepts_numpy_integers():
    a = gaussian_noise(np.uint64(U64_MAX), np.int32(1), np.int64(10**10), np.uint8(3),
                       np.int16(50), scale=np.float32(2))
    b = gaussian_noise(U64_MAX, 1, 10**10, 3, 50, scale=2.0)
    assert a.tobytes() == b.tobytes()


GOOD = dict(seed=1, chain=0, step=0, candidate=0, size=5, scale=1.0, dtype="float32")


@pytest.mark.parametrize("name, value, error", [
    ("seed", -1, ValueError), ("seed", 2**64, ValueError), ("seed", 1.0, TypeError),
    ("seed", True, TypeError), ("seed", "1", TypeError), ("seed", None, TypeError),
    ("seed", np.bool_(True), TypeError),
    ("chain", -1, ValueError), ("chain", 2**64, ValueError), ("chain", 0.5, TypeError),
    ("step", -1, ValueError), ("step", 1.5, TypeError), ("step", False, TypeError),
    ("candidate", -3, ValueError), ("candidate", None, TypeError),
    ("candidate", np.float64(1), TypeError),
    ("size", -1, ValueError), ("size", 2.0, TypeError), ("size", True, TypeError),
    ("size", [3], TypeError),
    ("scale", 0, ValueError), ("scale", -1.0, ValueError), ("scale", math.nan, ValueError),
    ("scale", math.inf, ValueError), ("scale", -math.inf, ValueError),
    ("scale", "1", TypeError), ("scale", True, TypeError), ("scale", None, TypeError),
    ("scale", 1 + 0j, TypeError), ("scale", 1e39, ValueError), ("scale", 1e-50, ValueError),
    ("dtype", "int32", ValueError), ("dtype", "float16", ValueError),
    ("dtype", "complex128", ValueError), ("dtype", object(), TypeError),
    ("dtype", "no such dtype", TypeError),
])
def test_validation(name, value, error):
    with pytest.raises(error, match=name):
        gaussian_noise(**{**GOOD, name: value})


def test_float64_takes_scales_float32_cannot():
    assert np.isfinite(gaussian_noise(1, 0, 0, 0, 3, scale=1e39, dtype="float64")).all()
    assert np.all(gaussian_noise(1, 0, 0, 0, 3, scale=1e-50, dtype="float64") != 0)
