"""``fastnn warmup``: compile every kernel once (``fastnn.warmup``), for CI jobs, Docker
images and cluster workers, so that later processes load the machine code from Numba's
disk cache instead of compiling.

A tqdm progress bar on stderr (none with ``--quiet``), then one summary line on stdout:
``compiled N kernel signatures, loaded M from the disk cache in S s; cache: PATH``.
"""

import sys

from ..warmup import warmup

#: --dtype's words -> fastnn.warmup(dtypes=...)
DTYPES = {"float32": ("float32",), "float64": ("float64",), "both": ("float32", "float64")}
#: the one-line description ``fastnn --help`` shows
HELP = "compile every kernel once into Numba's disk cache (CI, Docker images, clusters)"


def add_arguments(p):
    p.epilog = ("Run it once per machine image or cache directory (NUMBA_CACHE_DIR), before "
                "starting parallel jobs: processes started afterwards load the compiled "
                "kernels instead of compiling them. Exit status: 0 when done, 2 for bad "
                "arguments, 130 when interrupted by Ctrl-C.")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="both",
                   help="floating-point type(s) to compile for (default: %(default)s)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (it goes to stderr); the summary is still printed")


def run(args, parser):
    result = warmup(DTYPES[args.dtype], progress=not args.quiet)
    print(result.summary())
    for note in result.skipped:
        print(f"fastnn warmup: not reached: {note}", file=sys.stderr)
    if result.cache_dir is None:
        print("fastnn warmup: Numba has no disk cache here, so nothing was kept for later "
              "processes; set NUMBA_CACHE_DIR to a writable directory", file=sys.stderr)
    return 0
