"""Reproducible Gaussian noise for the perturbation search, from Python.

``gaussian_noise(seed, chain, step, candidate, size)`` returns exactly the noise the
compiled search draws for that chain, step and candidate (``kernels.noise.normals``):
a pure function of its arguments, identical in every process and with any number of
threads.  See ``kernels/noise.py`` for the generator and the float32 tail truncation.
"""

import math
import numbers

import numpy as np

from ._validation import as_positive_int, resolve_dtype
from .kernels.noise import normals

_U64_MAX = 2**64 - 1


def _as_u64(value, name):
    """``value`` as np.uint64: an int (not a bool) in [0, 2**64 - 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if not 0 <= value <= _U64_MAX:
        raise ValueError(f"{name} must be in [0, 2**64 - 1], got {value}")
    return np.uint64(value)


def _as_scale(value, dtype):
    """``value`` as a finite, positive scalar of ``dtype``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"scale must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"scale must be finite and > 0, got {value}")
    with np.errstate(over="ignore", under="ignore"):
        cast = dtype.type(value)
    if not (np.isfinite(cast) and cast > 0):
        raise ValueError(f"scale {value} is not a finite positive {dtype} number")
    return cast


def gaussian_noise(seed, chain, step, candidate, size, scale=1.0, dtype="float32"):
    """``size`` draws of ``scale * N(0, 1)`` for (seed, chain, step, candidate).

    seed: int in [0, 2**64 - 1].  chain, step, candidate: ints in [0, 2**64 - 1].
    size: int >= 0.  scale: finite, > 0 (rounded to ``dtype``).  dtype: float32 or
    float64.

    Element ``i`` depends on the arguments and ``i`` only (a shorter draw is a prefix
    of a longer one).  float32 draws satisfy ``|z| <= 5.77 * scale`` (24-bit uniforms),
    float64 ``|z| <= 8.57 * scale``; float32 and float64 noise for the same arguments
    agree to about float32 precision except in the far tail.
    """
    seed = _as_u64(seed, "seed")
    chain = _as_u64(chain, "chain")
    step = _as_u64(step, "step")
    candidate = _as_u64(candidate, "candidate")
    size = as_positive_int(size, "size", minimum=0)
    dt = resolve_dtype(dtype)
    scale = _as_scale(scale, dt)
    out = np.empty(size, dtype=dt)
    normals(seed, chain, step, candidate, scale, out)
    return out
