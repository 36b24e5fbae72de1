"""Job specs: ``grid`` builds them, ``check_jobs`` checks them and gives each its identity.

A spec is a plain dict whose keys are the command line's option names in Python
spelling (``validation_split`` for ``--validation-split``) plus ``kind`` ("search", the
default, or "train").  It is checked exactly as the command line checks its options:
turned into an argument list, parsed by the subcommand's own parser (every type, range
and choice) and prepared by the subcommand's own ``prepare`` (the data loaded, the
layer sizes checked against it, the model built), with a parser that raises instead of
exiting.  So a spec means what the same options mean to ``fastnn search``/``fastnn
train``, and a bad one fails before anything runs, naming the job and the argument.

A job's identity is a hash of its canonical spec (every option as parsed, defaults
filled in, the layer sizes resolved) and of a fingerprint of its data: specs written
differently that mean the same run (``scale=1`` and ``scale=1.0``; ``iterations`` given
as its default) are one job, run once; a changed data file is a new job.
"""

import argparse
import difflib
import hashlib
import itertools
import json
import numbers
import os
from dataclasses import dataclass

from .._archive import fingerprint

KINDS = ("search", "train")
#: options the sweep sets for every job itself: the job's files, one thread, no bar
CONTROLLED = frozenset({"checkpoint", "checkpoint_every", "resume", "save", "plot", "json",
                        "no_progress", "threads", "parallel", "help"})
#: options that take one value per layer (a list, written comma-separated on the
#: command line); in ``grid``, a value of ``layers`` may be a flat list of sizes
LIST_OPTIONS = frozenset({"layers", "l1", "l2", "dropout"})
#: file options: made absolute on the client, so that workers started elsewhere find them
PATH_OPTIONS = frozenset({"data", "validation_data"})
#: bump when a job's meaning changes: old records then stop counting as done
JOB_FORMAT = 1


class SpecError(ValueError):
    """A job spec that cannot run; the message names the job (its index) and the
    argument at fault."""


class _ParseError(Exception):
    pass


class _SpecParser(argparse.ArgumentParser):
    """The subcommand's parser, raising instead of printing and exiting."""

    def error(self, message):
        raise _ParseError(message)


_PARSERS = {}


def parser_for(kind):
    """The ``fastnn search``/``fastnn train`` parser for specs of ``kind``."""
    if kind not in _PARSERS:
        parser = _SpecParser(prog=f"fastnn {kind}", add_help=False)
        command_module(kind).add_arguments(parser)
        _PARSERS[kind] = parser
    return _PARSERS[kind]


def command_module(kind):
    from ..cli import search, train

    return {"search": search, "train": train}[kind]


def grid(**axes):
    """Job specs: the cross product of the values given for each option.

    Every keyword maps to a list (or tuple, range, any iterable) of values; a scalar or
    a string counts as a one-value list.  ``layers`` takes a list of layer-size lists,
    or one flat list of sizes (``layers=[2, 64, 3]``); the per-layer options ``l1``,
    ``l2`` and ``dropout`` take one-value-per-layer lists wrapped once more
    (``l2=[[5e-4, 0]]``).  The specs come in the order of ``itertools.product``: the
    last keyword varies fastest.  ``grid(kind="search", seed=range(32), scale=[0.02,
    0.05])`` is 64 specs, seed 0 with both scales first.  The values are checked by
    ``fastnn.sweep``, not here."""
    names, values = [], []
    for name, value in axes.items():
        options = _axis_values(name, value)
        if not options:
            raise ValueError(f"grid: {name} has no values (an empty list makes no jobs)")
        names.append(name)
        values.append(options)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def _axis_values(name, value):
    if isinstance(value, (str, bytes, os.PathLike, dict)) or not _iterable(value):
        return [value]
    values = list(value)
    if name == "layers" and values and all(_is_int(v) for v in values):
        return [values]  # one network: layers=[2, 64, 3]
    return values


def _iterable(value):
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class Job:
    """One checked job: its identity, kind, the options as command-line arguments
    (paths absolute), and the family of kernels it runs (jobs of one family compile
    the same code: ``warm`` runs one of each)."""

    id: str
    kind: str
    argv: tuple
    family: tuple


def check_jobs(specs):
    """``[Job]`` for the specs, in order; a ``SpecError`` (a ValueError) naming the first
    bad spec's index and argument.  Runs each spec's ``prepare`` (loads its data)."""
    return [check_job(spec, index) for index, spec in enumerate(specs)]


def check_job(spec, index=0):
    where = f"job {index}"
    if not isinstance(spec, dict):
        raise TypeError(f"{where}: a job spec must be a dict of options, got "
                        f"{type(spec).__name__}")
    kind = spec.get("kind", "search")
    if kind not in KINDS:
        raise SpecError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    parser = parser_for(kind)
    argv = _argv(spec, kind, parser, where)
    try:
        args = parser.parse_args(argv)
        plan = command_module(kind).prepare(args, parser)
    except _ParseError as exc:
        raise SpecError(f"{where} ({kind}): {_in_python_spelling(str(exc))}") from None
    canonical = {key: value for key, value in sorted(vars(args).items())
                 if key not in CONTROLLED}
    canonical.update(kind=kind, layers=list(plan.layers))
    if args.data is None:  # the nnfs defaults, written out: --dataset spiral is the default
        canonical.update(dataset=plan.info["data"], samples=plan.info["samples_per_class"],
                         classes=plan.info["classes"])
    arrays = [plan.X, plan.y, *(plan.validation or ())]
    digest = hashlib.sha256(json.dumps(
        {"format": JOB_FORMAT, "job": canonical, "data": fingerprint(*arrays)},
        sort_keys=True).encode()).hexdigest()
    return Job(id=f"{kind}-{digest[:16]}", kind=kind, argv=tuple(argv),
               family=_family(kind, args, plan))


def _argv(spec, kind, parser, where):
    actions = {action.dest: action for action in parser._actions if action.option_strings}
    argv = []
    for key, value in spec.items():
        if key == "kind":
            continue
        if not isinstance(key, str):
            raise TypeError(f"{where}: option names must be strings, got {key!r}")
        if key in CONTROLLED:
            raise SpecError(f"{where}: {key} is set by the sweep for every job (each job "
                            f"checkpoints to and saves its model in the sweep's directory, "
                            f"on one thread); leave it out")
        action = actions.get(key)
        if action is None:
            close = difflib.get_close_matches(key, [k for k in actions if k not in CONTROLLED])
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"{where}: {key!r} is not an option of fastnn {kind}{hint}")
        if value is None:
            continue
        option = max(action.option_strings, key=len)
        if action.nargs == 0:  # a flag: --adapt, --no-validation
            if not isinstance(value, bool):
                raise SpecError(f"{where}: {key} must be True or False, got {value!r}")
            if value:
                argv.append(option)
            continue
        if key in LIST_OPTIONS and isinstance(value, (list, tuple)):
            text = ",".join(_text(item, key, where) for item in value)
        elif key in PATH_OPTIONS and isinstance(value, (str, os.PathLike)):
            text = os.path.abspath(os.fspath(value))
        else:
            text = _text(value, key, where)
        argv.append(f"{option}={text}")
    return argv


def _text(value, key, where):
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise SpecError(f"{where}: {key} takes a value, not {value!r}")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if value.is_integer() and abs(value) < 1e18:  # 2e6 from JSON/TOML: iterations=2000000
            return str(int(value))
        return repr(value)
    raise SpecError(f"{where}: {key} must be a number or a string"
                    + (", or a list for layers, l1, l2 and dropout" if key in LIST_OPTIONS
                       else "") + f", got {type(value).__name__} {value!r}")


def _in_python_spelling(message):
    """``argument --validation-split: ...`` -> ``validation_split: ...``."""
    if message.startswith("argument --"):
        name, _, rest = message[len("argument --"):].partition(":")
        name = name.split("/")[0].replace("-", "_")
        return f"{name}:{rest}"
    return message


def _family(kind, args, plan):
    """What decides which kernels a job compiles: jobs differing only in values (seed,
    steps, rates) share one."""
    from ..kernels.network import loss_family
    from ..kernels.train import train_family

    validated = plan.validation is not None
    if kind == "search":
        return (kind, args.dtype, loss_family(plan.layers), validated)
    return (kind, args.dtype, train_family(plan.layers, plan.options["dropout"] is not None),
            args.optimizer, args.batch_size is None, plan.options["l1"] is not None,
            plan.options["l2"] is not None, validated)
