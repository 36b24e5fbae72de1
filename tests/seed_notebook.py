"""Parse the seed notebook's text dump into code cells and build runnable scripts from it.

The dump (``tests/data/seed_notebook.txt``, a copy of the seed the project started from)
has one ``In [N]:`` header per code cell, then the code, then the cell's printed output
and any markdown that follows.  The code is the longest run of blank-line separated
blocks after the header that parses as Python: the outputs start with lines such as
``[[0.333 0.333 0.333]`` or ``New set of weight found ... :  5000 Loss : ...`` that do
not parse, so the code never swallows them (``test_notebook_dropin.py`` pins the cells
it expects to find).
"""

import ast
import re
from pathlib import Path

SEED = Path(__file__).parent / "data" / "seed_notebook.txt"

NOTEBOOK_CLASSES = (
    "Dense_Layer",
    "Activation_Relu",
    "Activation_Softmax",
    "Loss_CategoricalCrossentropy",
)
FASTNN_IMPORT = f"from fastnn import {', '.join(NOTEBOOK_CLASSES)}"

_HEADER = re.compile(r"^In \[(\d+)\]:[ \t]*$", re.MULTILINE)


def _parses(source):
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def code_cells(text=None):
    """[(execution_count, code)] for every code cell, in the order of the dump."""
    if text is None:
        text = SEED.read_text()
    headers = list(_HEADER.finditer(text))
    cells = []
    for h, nxt in zip(headers, [*headers[1:], None], strict=True):
        body = text[h.end():nxt.start() if nxt else len(text)]
        blocks = re.split(r"\n[ \t]*\n", body.strip("\n"))
        code = ""
        for k in range(1, len(blocks) + 1):
            candidate = "\n\n".join(blocks[:k])
            # shell escapes (`!pip ...`) are not Python: keep them verbatim, they are
            # filtered out by the caller
            if _parses(candidate) or (k == 1 and candidate.lstrip().startswith("!")):
                code = candidate
        cells.append((int(h.group(1)), code.rstrip() + "\n"))
    return cells


def is_shell_cell(code):
    return code.lstrip().startswith("!")


def uses_torch(code):
    return any(
        isinstance(node, (ast.Import, ast.ImportFrom))
        and any(
            (alias.name if isinstance(node, ast.Import) else (node.module or "")).split(".")[0]
            == "torch"
            for alias in node.names
        )
        for node in ast.walk(ast.parse(code))
    )


def runnable_cells(text=None):
    """The cells the tests run: everything except the ``!pip`` cell and the torch cell."""
    return [
        (n, code) for n, code in code_cells(text)
        if not is_shell_cell(code) and not uses_torch(code)
    ]


def _replace_statements(code, predicate, replacement):
    """Replace the top-level statements matching ``predicate`` by ``replacement`` (once,
    at the first match; later matches are deleted).  Returns (new code, n replaced)."""
    tree = ast.parse(code)
    lines = code.splitlines(keepends=True)
    spans = [
        (node.lineno - 1, node.end_lineno)
        for node in tree.body
        if predicate(node)
    ]
    # decorators belong to the statement: ast's lineno for a class is the `class` line
    for start, end in reversed(spans):
        new = [replacement + "\n"] if (start, end) == spans[0] else []
        lines[start:end] = new
    return "".join(lines), len(spans)


def _is_notebook_class(node):
    return isinstance(node, ast.ClassDef) and node.name in NOTEBOOK_CLASSES


def _is_nnfs_init(node):
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and ast.unparse(node.value.func) == "nnfs.init"
    )


def build_script(cells, *, use_fastnn, nnfs_init, import_fastnn_first=False):
    """One script running ``cells`` in order.

    use_fastnn: replace the notebook's class definitions by ``FASTNN_IMPORT`` (placed
        where the first class was defined).
    nnfs_init: keep the notebook's ``nnfs.init()`` calls; if False, each is replaced by
        ``np.random.seed(0)`` so both implementations draw the same numbers.
    import_fastnn_first: prepend ``import fastnn`` (so it is imported before
        ``nnfs.init()`` runs).
    """
    parts = []
    if import_fastnn_first:
        parts.append("import fastnn  # imported before nnfs.init()\n")
    n_classes = n_inits = 0
    for n, code in cells:
        if use_fastnn:
            code, k = _replace_statements(code, _is_notebook_class, FASTNN_IMPORT)
            n_classes += k
        if not nnfs_init:
            code, k = _replace_statements(code, _is_nnfs_init, "np.random.seed(0)")
            n_inits += k
        parts.append(f"# ---- In [{n}] ----\n{code}")
    if use_fastnn and n_classes != len(NOTEBOOK_CLASSES):
        raise ValueError(f"expected {len(NOTEBOOK_CLASSES)} notebook classes, found {n_classes}")
    if not nnfs_init and n_inits == 0:
        raise ValueError("no nnfs.init() call found to replace")
    return "\n".join(parts)


def notebook_classes(namespace=None):
    """The notebook's own class definitions (cell 18), executed in ``namespace`` (a dict;
    NumPy is imported into it as ``np``).  Returns {name: class}."""
    import numpy as np

    code = dict(code_cells())[18]
    tree = ast.parse(code)
    defs = ast.Module(body=[n for n in tree.body if _is_notebook_class(n)], type_ignores=[])
    ns = {"np": np} if namespace is None else namespace
    ns.setdefault("np", np)
    exec(compile(defs, str(SEED), "exec"), ns)
    return {name: ns[name] for name in NOTEBOOK_CLASSES}
