"""``kernels/mt19937.py``: NumPy's legacy ``np.random.binomial(1, p, size)``, compiled,
must give the same draws and leave the generator in the same state, draw for draw.

The book's ``Model`` run by fastnn draws its dropout masks this way; a seeded script then
sees the book's masks and, afterwards, the book's next random numbers.
"""

import numpy as np
import pytest

from fastnn.kernels import mt19937


def draws(seed, p0, sizes):
    """fastnn's draws and final (key, pos), starting from ``np.random.seed(seed)``."""
    np.random.seed(seed)
    state = np.random.get_state()
    key, pos = np.array(state[1], dtype=np.uint32), int(state[2])
    words = np.empty(mt19937.N, np.uint32)
    out = []
    for size in sizes:
        part = np.empty(size, np.uint8)
        pos = mt19937.binomial1(key, pos, *mt19937.binomial_parameters(p0), words, part)
        out.append(part)
    return out, key, pos


def numpy_draws(seed, p0, sizes):
    np.random.seed(seed)
    out = [np.random.binomial(1, p0, size=size).astype(np.uint8) for size in sizes]
    state = np.random.get_state()
    return out, state[1], state[2]


@pytest.mark.parametrize("p0", [0.9, 0.5, 0.1, 1.0, 0.999, 0.3333, 0.75, 1e-3])
@pytest.mark.parametrize("seed", [0, 7, 2 ** 32 - 1])
def test_same_draws_and_state_as_numpy(seed, p0):
    # sizes that start and end at every parity of the state position, and cross twists
    sizes = [1, 2, 311, 312, 313, 623, 624, 1000, 5, 20_000]
    ours, key, pos = draws(seed, p0, sizes)
    theirs, key_np, pos_np = numpy_draws(seed, p0, sizes)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(key, key_np)
    assert pos == pos_np


def test_a_mask_of_the_books_chapter_18_size():
    ours, key, pos = draws(0, 0.9, [3000 * 512])
    theirs, key_np, pos_np = numpy_draws(0, 0.9, [3000 * 512])
    np.testing.assert_array_equal(ours[0], theirs[0])
    assert pos == pos_np and np.array_equal(key, key_np)
    assert abs(ours[0].mean() - 0.9) < 0.002


def reference_inversion(p, qn, flip, size):
    """NumPy's C inversion loop for n = 1, transcribed, on NumPy's own uniforms
    (``random_sample`` draws the same 53-bit doubles as the binomial does)."""
    px_next = p * qn / (1.0 - p)
    out = np.empty(size, np.uint8)
    for i in range(size):
        while True:
            u = np.random.random_sample()
            if u <= qn:
                x = 0
                break
            if u - qn <= px_next:
                x = 1
                break
        out[i] = 1 - x if flip else x
    return out


@pytest.mark.parametrize("p, qn", [(0.3, 0.5), (0.5, 0.3), (0.2, 0.1)])
def test_restarts_follow_numpys_loop(p, qn):
    """With parameters where the inversion often passes its bound (impossible for the
    real qn, where it happens with probability ~1e-16), every restart draws a new
    uniform exactly as NumPy's loop would."""
    np.random.seed(3)
    state = np.random.get_state()
    key, pos = np.array(state[1], dtype=np.uint32), int(state[2])
    out = np.empty(2000, np.uint8)
    pos = mt19937.binomial1(key, pos, p, qn, False, np.empty(mt19937.N, np.uint32), out)
    np.random.seed(3)
    expected = reference_inversion(p, qn, False, 2000)
    np.testing.assert_array_equal(out, expected)
    after = np.random.get_state()
    assert pos == after[2] and np.array_equal(key, after[1])
