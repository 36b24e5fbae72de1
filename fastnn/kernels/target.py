"""The vector width fastnn's kernels are compiled for, set per function.

LLVM picks a vector width per function from the target's tuning, and for many AVX-512
CPUs (Intel's since Skylake-X: ``prefer-256-bit``) that is 256 bits even though 512 are
there; fastnn's sample-innermost sweeps ran 1.43x faster at 512 bits on an Intel
``rocketlake``.  Numba offers no per-function option, and ``NUMBA_CPU_FEATURES`` would
change the code of every Numba function in the process, the user's included.

LLVM honours the string attribute ``"prefer-vector-width"="N"`` on a function (what
clang's ``-mprefer-vector-width`` sets): it overrides the tuning for that function only,
provided the function also says it needs no wider registers for its own signature
(``"min-legal-vector-width"="0"``, which clang sets on every function and Numba does not:
without it LLVM keeps 512-bit registers legal and the vectoriser uses them anyway).
``prefer_vector_width()`` is an intrinsic that, called at the top of a kernel or helper,
adds that attribute to the LLVM function being generated.  llvmlite only accepts LLVM's
enum attributes through ``Function.attributes.add`` ("unknown attr"), so the string
attribute goes into the same set without that check; llvmlite prints the set verbatim in
the ``define`` line, where LLVM parses string attributes.  Every function with a hot loop
calls it (helpers too: LLVM does not always inline them, and a function keeps its own
attribute when it is not inlined); ``tests/test_vector_width.py`` checks the machine
code has 512-bit registers or not, as asked.

The width is ``fastnn._config.VECTOR_WIDTH`` (None: no attribute, LLVM's choice).  It is
part of every cache entry's key (``_config.kernel``), so changing it recompiles.
"""

from numba import types
from numba.extending import intrinsic

from .. import _config


def _set_width(function):
    """Add the vector-width attributes (if a width is set) to an llvmlite function."""
    width = _config.VECTOR_WIDTH
    if width is not None:
        # set.add: llvmlite's AttributeSet.add refuses string attributes (see above)
        set.add(function.attributes, f'"prefer-vector-width"="{int(width)}"')
        # and no vector types in the signature that need wider registers: without this
        # LLVM assumes any width may be required, keeps 512-bit registers legal, and
        # loops still come out at 512 bits (clang sets it on every function)
        set.add(function.attributes, '"min-legal-vector-width"="0"')


@intrinsic
def prefer_vector_width(typingctx):
    """Make LLVM prefer ``_config.VECTOR_WIDTH``-bit vectors in the calling function."""
    def codegen(context, builder, sig, args):
        _set_width(builder.function)
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def always_inline(typingctx):
    """Ask LLVM to inline the calling function into every caller (``alwaysinline``).

    For the small per-element helpers (``exp_``, a logit difference, a clip) called
    inside vectorised loops: a call left in a loop body stops vectorisation (a 2-3-3
    loss ran 8x slower), and LLVM's cost model declines to inline a helper holding two
    polynomial exps.  Numba's own ``inline="always"`` would do it by copying Numba IR
    into every call site, which made cold compiles 2-3x longer; LLVM inlines the
    compiled helper, once optimised, for a fraction of that.

    The helper carries the vector-width attributes too: when LLVM inlines a function
    without ``min-legal-vector-width`` it drops that attribute from the caller ("the
    callee might need any width"), and the caller's loops would be vectorised at 512
    bits whatever was asked.  For the same reason the kernels avoid Numba's builtin
    ``max``/``min`` (library functions without the attribute): ``fastmath.max2``."""
    def codegen(context, builder, sig, args):
        builder.function.attributes.add("alwaysinline")
        _set_width(builder.function)
        return context.get_dummy_value()

    return types.none(), codegen
