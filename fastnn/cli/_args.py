"""Argument types shared by the subcommands.

Each raises ``argparse.ArgumentTypeError``, which argparse turns into ``fastnn
COMMAND: error: argument --option: MESSAGE`` and exit status 2 (never a traceback).
"""

import argparse
import math

from .data import MAX_SEED


def int_in(minimum, maximum=None, maximum_text=None):
    """An integer type accepting ``minimum <= value <= maximum`` (``maximum_text``: how the
    error message writes the maximum, e.g. ``"2**62"``)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f"must be <= {maximum_text or maximum}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text):
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def non_negative_float(text):
    value = finite_float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def float_in(low, high, *, low_open=False, high_open=True):
    """A float type accepting values in the interval from ``low`` to ``high``, each end
    open or closed (default ``[low, high)``)."""
    text_range = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text):
        value = finite_float(text)
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"must be in {text_range}, got {text}")
        return value

    parse.__name__ = "float"
    return parse


def float_list(item):
    """A type for one number or comma-separated numbers, each parsed by ``item`` (a type
    above); returns a list of floats."""
    def parse(text):
        parts = text.split(",")
        try:
            return [item(part.strip()) for part in parts]
        except argparse.ArgumentTypeError as exc:
            if len(parts) == 1:
                raise
            raise argparse.ArgumentTypeError(f"{exc} (in {text!r})") from None

    parse.__name__ = "float list"
    return parse


def layer_sizes(text):
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 2,3,3, got {text!r}"
        ) from None
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 sizes (inputs,outputs), got {text!r}")
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return sizes


#: ``--seed``: it seeds nnfs's data through ``np.random.seed``, so it stops at 2**32 - 1
seed = int_in(0, MAX_SEED, "2**32 - 1")
