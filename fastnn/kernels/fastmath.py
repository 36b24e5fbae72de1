"""exp and log that LLVM can vectorise.

Without SVML, ``math.exp``/``math.log`` inside a loop are scalar libm calls that stop
vectorisation.  For float32 we use the Cephes ``expf``/``logf`` polynomials (about 1 ulp)
written in plain arithmetic with exponent bit manipulation, so they vectorise.  float64
keeps libm: full double accuracy matters more there than speed.

``exp_`` and ``log_`` dispatch on the argument type at compile time; LLVM inlines them
into their callers (Numba-level ``inline="always"`` would copy their IR into every call
site and cost seconds of compile time, ``_config``).
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .._config import HELPER
from .target import always_inline

f32 = np.float32

# Cephes expf: exp(x) = 2**n * exp(r), r = x - n*ln2 split in two parts.
_EXP_HI = f32(88.3)  # clamp: above this, return exp(88.3) (finite) rather than inf
_EXP_LO = f32(-87.3)  # below this, return 0 (avoids denormal scaling)
_LOG2E = f32(1.44269504088896341)
_LN2_HI = f32(0.693359375)
_LN2_LO = f32(-2.12194440e-4)
_E0, _E1, _E2 = f32(1.9875691500e-4), f32(1.3981999507e-3), f32(8.3334519073e-3)
_E3, _E4, _E5 = f32(4.1665795894e-2), f32(1.6666665459e-1), f32(5.0000001201e-1)
_HALF = f32(0.5)
_ONE = f32(1.0)
_ZERO = f32(0.0)

# Cephes logf on the mantissa m in [sqrt(1/2), sqrt(2)).
_SQRTHF = f32(0.707106781186547524)
_L = [f32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                       -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                       2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)]
_L0, _L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8 = _L


def _i32(builder, value):
    return builder.bitcast(value, ir.IntType(32))


@intrinsic
def _pow2_f32(typingctx, n):
    """2**n for an integral float32 n in [-126, 127], built from exponent bits.

    All in 32-bit lanes (Numba would widen integer arithmetic to int64 and halve the
    vector width)."""
    if n != types.float32:
        return None

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        k = builder.fptosi(args[0], i32)
        k = builder.shl(builder.add(k, ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(k, ir.FloatType())

    return types.float32(n), codegen


@intrinsic
def _exponent_f32(typingctx, x):
    """e such that x = m * 2**e with m in [0.5, 1), as float32 (x positive, normal)."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        bits = _i32(builder, args[0])
        e = builder.and_(builder.lshr(bits, ir.Constant(i32, 23)), ir.Constant(i32, 0xFF))
        e = builder.sub(e, ir.Constant(i32, 126))
        return builder.sitofp(e, ir.FloatType())

    return types.float32(x), codegen


@intrinsic
def _mantissa_f32(typingctx, x):
    """m in [0.5, 1) such that x = m * 2**e (x positive, normal)."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        bits = builder.and_(_i32(builder, args[0]), ir.Constant(i32, 0x807FFFFF))
        bits = builder.or_(bits, ir.Constant(i32, 0x3F000000))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(x), codegen


@intrinsic
def select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select``: no branch in Numba's IR, so inlining
    these helpers several times into one loop stays branch-free (the ternary form
    tripped Numba's SSA pass and stopped vectorisation)."""
    if not isinstance(cond, types.Boolean) or a != b:
        return None

    def codegen(context, builder, sig, args):
        return builder.select(args[0], args[1], args[2])

    return a(cond, a, b), codegen


@intrinsic
def flat_view(typingctx, arr):
    """A C-contiguous array as a 1-D view of all its elements (``arr.reshape(-1)``).

    ``reshape`` is lowered through a compiled helper that LLVM inlines without the
    kernels' vector-width attributes, which drops them (``kernels/target.py``); a view
    of the same buffer needs no code at all."""
    if not isinstance(arr, types.Array) or arr.layout != "C":
        return None
    result = arr.copy(ndim=1, layout="C")

    def codegen(context, builder, sig, args):
        from numba.core import cgutils
        from numba.core.imputils import impl_ret_borrowed
        from numba.np.arrayobj import make_array, populate_array

        src = make_array(sig.args[0])(context, builder, args[0])
        dst = make_array(sig.return_type)(context, builder)
        populate_array(dst, data=src.data, shape=cgutils.pack_array(builder, [src.nitems]),
                       strides=cgutils.pack_array(builder, [src.itemsize]),
                       itemsize=src.itemsize, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, sig.return_type, dst._getvalue())

    return result(arr), codegen


def exp_(x):
    """exp(x); vectorisable for float32, where x > 88.3 gives exp(88.3) and NaN gives 0."""
    return math.exp(x)


def log_(x):
    """log(x) for finite x > 0; vectorisable for float32 (normal numbers only)."""
    return math.log(x)


@overload(exp_)
def _exp_impl(x):
    if x != types.float32:
        return lambda x: math.exp(x)

    def exp_f32(x):
        always_inline()
        xc = select(x < _EXP_HI, x, _EXP_HI)  # NaN goes to _EXP_HI here...
        xc = select(xc > _EXP_LO, xc, _EXP_LO)
        n = np.floor(xc * _LOG2E + _HALF)
        r = xc - n * _LN2_HI
        r = r - n * _LN2_LO
        z = r * r
        p = ((((_E0 * r + _E1) * r + _E2) * r + _E3) * r + _E4) * r + _E5
        y = p * z + r + _ONE
        y = y * _pow2_f32(n)
        return select(x > _EXP_LO, y, _ZERO)  # ...and to 0 here

    return exp_f32


@overload(log_)
def _log_impl(x):
    if x != types.float32:
        return lambda x: math.log(x)

    def log_f32(x):
        always_inline()
        fe = _exponent_f32(x)
        m = _mantissa_f32(x)
        small = m < _SQRTHF
        fe = select(small, fe - _ONE, fe)
        m = select(small, m + m - _ONE, m - _ONE)
        z = m * m
        y = ((((((((_L0 * m + _L1) * m + _L2) * m + _L3) * m + _L4) * m + _L5) * m
               + _L6) * m + _L7) * m + _L8) * m * z
        y = y + fe * _LN2_LO
        y = y - _HALF * z
        return m + y + fe * _LN2_HI

    return log_f32


@njit(**HELPER)
def max2(a, b):
    """``max(a, b)`` with Python's rule (``a`` unless ``b`` is greater: a NaN ``b`` is
    ignored).  The builtin compiles to a Numba library function that LLVM inlines
    without the kernels' vector-width attributes, which drops them
    (``kernels/target.py``); this helper carries them."""
    always_inline()
    return b if b > a else a


@njit(**HELPER)
def min2(a, b):
    """``min(a, b)`` with Python's rule (``a`` unless ``b`` is smaller); see ``max2``."""
    always_inline()
    return b if b < a else a
