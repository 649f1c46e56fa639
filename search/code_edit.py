"""Find a program's hyperparameters in its syntax tree and rewrite their values in place.

Named places count as hyperparameters: argparse defaults (`add_argument("--lr", default=1e-3)`), module-level
constants (`LR = 1e-3`), defaults of module-level functions (`def train(lr=1e-3)`) and, for v1 templates that
write their parameters inline, number literals elsewhere (see `literal_tunables` for what counts and how they are
named: `odeint.args[0]`, `np.array[0][2]`, `y0[1]`, `beta`). Edits replace the literal's exact source span, so
comments and formatting survive and every result is still a complete program.
"""
from __future__ import annotations

import ast
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Scalar = int | float | bool | str


@dataclass(frozen=True)
class Tunable:
    name: str
    value: Scalar
    where: str  # "argparse", "constant", "parameter", or "literal" (an inline number, see literal_tunables)
    lineno: int
    col: int
    end_lineno: int
    end_col: int


def find_tunables(code: str) -> dict[str, Tunable]:
    """Every literal hyperparameter in `code`, by name; argparse beats constant beats parameter beats an inline
    literal on a clash."""
    tree = _parse(code)
    found: dict[str, Tunable] = {}
    rank = {"argparse": 0, "constant": 1, "parameter": 2, "literal": 3}

    def add(name: str, expr: ast.expr, where: str) -> None:
        value = _literal(expr)
        if value is None:
            return
        old = found.get(name)
        if old is None or rank[where] < rank[old.where]:
            found[name] = Tunable(name, value, where, expr.lineno, expr.col_offset,
                                  expr.end_lineno or expr.lineno, expr.end_col_offset or expr.col_offset)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "add_argument":
            flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            long_flags = [f for f in flags if f.startswith("--")]
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            if long_flags and default is not None:
                add(long_flags[0].lstrip("-").replace("-", "_"), default, "argparse")
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            add(stmt.targets[0].id, stmt.value, "constant")
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            add(stmt.target.id, stmt.value, "constant")
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = stmt.args
            positional = args.posonlyargs + args.args
            for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
                add(arg.arg, default, "parameter")
            for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults):
                if kw_default is not None:
                    add(arg.arg, kw_default, "parameter")
    for name, expr in literal_tunables(tree).items():
        add(name, expr, "literal")
    return found


def numeric_tunables(code: str) -> dict[str, Tunable]:
    """Numeric hyperparameters a search may vary when a template declares none (seeds excluded)."""
    return {name: t for name, t in find_tunables(code).items()
            if isinstance(t.value, (int, float)) and not isinstance(t.value, bool)
            and "seed" not in name.lower()}


# -- number literals written inline (v1 templates without named constants) ------------------------------------
# calls whose arguments are never hyperparameters: loop bounds, shapes, seeds, output and bookkeeping
_SKIP_CALLS = {"range", "arange", "reshape", "view", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
               "empty_like", "full_like", "resize", "expand", "broadcast_to", "tile", "repeat", "permute",
               "transpose", "squeeze", "unsqueeze", "flatten", "Size", "seed", "manual_seed", "manual_seed_all",
               "set_seed", "default_rng", "RandomState", "PRNGKey", "Random", "add_argument", "print", "round",
               "format", "open", "exit", "sleep", "enumerate", "len", "isinstance", "getattr", "setattr",
               "dump", "dumps", "makedirs", "savefig", "figure", "subplots", "subplot", "legend", "randint",
               "randn", "rand", "choice", "integers", "permutation", "split", "chunk", "take", "index_select",
               "linspace", "logspace", "geomspace", "meshgrid"}  # (grids are the problem's domain, not a setting)
# modules whose calls only draw, print or handle files
_SKIP_ROOTS = {"plt", "matplotlib", "os", "sys", "json", "logging", "time", "pickle", "shutil", "pathlib"}
# keyword arguments that are positions, shapes, seeds or bookkeeping, never hyperparameters
_SKIP_KEYWORDS = {"axis", "axes", "dim", "dims", "ndim", "shape", "size", "num", "seed", "random_state",
                  "generator", "indent", "verbose", "n_jobs", "num_workers", "device", "dtype", "figsize", "dpi",
                  "index", "start", "end", "step", "steps_per_epoch", "fontsize", "linewidth", "markersize"}
_SKIP_POSITIONAL = {"normal": {2}, "uniform": {2}}  # sample counts


def literal_tunables(tree: ast.Module) -> dict[str, ast.expr]:
    """Number literals written inline, by a readable name, for templates with no named hyperparameters.

    Naming: an argument of a call is `<callee as written>` then `[i]` (the i-th positional argument) or
    `.<keyword>`, then `[j]` per element of a tuple or list, `['key']` per value of a dict:
    `odeint(f, y0, t, args=(0.001, 14, 7))` gives `odeint.args[0]`, `odeint.args[1]`, `odeint.args[2]`;
    `np.array([3000, 0, 5, 0])` gives `np.array[0][0]` ... A tuple, list or dict assigned to a name is named
    after it (`y0 = [3000, 5]` -> `y0[0]`, `y0[1]`), and so is a number assigned inside a function, or one of a
    tuple of them (`beta, gamma = 0.3, 0.1` -> `beta`, `gamma`). A name that occurs more than once is made
    unique with its line, and a count when a line repeats it: `np.array[0][2]@L14`, `sum[0][0]@L20#2`.

    Never counted: booleans, zeros (a factor cannot move them), numbers inside subscripts (indices, slices),
    numbers inside arithmetic (`x ** 2`), the arguments of loop bounds (`range`), shapes (`reshape`, `zeros`,
    `ones`, `empty`, `full`, ...), seeds (`seed`, `manual_seed`, `random_state=`, any name with "seed"),
    grids (`linspace`, `arange`), sample counts and calls that only print, plot or write files.
    """
    found: list[tuple[str, ast.expr]] = []

    def collect(prefix: str, expr: ast.expr) -> None:
        if isinstance(expr, (ast.Tuple, ast.List)):
            for i, elt in enumerate(expr.elts):
                collect(f"{prefix}[{i}]", elt)
        elif isinstance(expr, ast.Dict):
            for key, value in zip(expr.keys, expr.values):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    collect(f"{prefix}[{key.value!r}]", value)
        elif _is_number(expr) and "seed" not in prefix.lower():
            found.append((prefix, expr))

    module_level = {id(stmt) for stmt in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            _call_literals(node, collect)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            _assigned_literals(node, id(node) in module_level, collect)
    return _unique_names(found)


def _call_literals(node: ast.Call, collect: Callable[[str, ast.expr], None]) -> None:
    """The literals among a call's arguments: `callee[i]` and `callee.keyword`."""
    callee = _callee(node.func)
    if callee is None:
        return
    parts = callee.split(".")
    if parts[-1] in _SKIP_CALLS or parts[0] in _SKIP_ROOTS:
        return
    skip_pos = _SKIP_POSITIONAL.get(parts[-1], set())
    for i, arg in enumerate(node.args):
        if i not in skip_pos and not isinstance(arg, ast.Starred):
            collect(f"{callee}[{i}]", arg)
    for kw in node.keywords:
        if kw.arg is not None and kw.arg.lower() not in _SKIP_KEYWORDS:
            collect(f"{callee}.{kw.arg}", kw.value)


def _assigned_literals(node: ast.Assign, module_level: bool, collect: Callable[[str, ast.expr], None]) -> None:
    target, value = node.targets[0], node.value
    if isinstance(target, ast.Name) and isinstance(value, (ast.Tuple, ast.List, ast.Dict)):
        collect(target.id, value)
    elif isinstance(target, ast.Name) and not module_level:
        collect(target.id, value)  # a constant inside a function (module-level ones are found already)
    elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
        for t, v in zip(target.elts, value.elts):
            if isinstance(t, ast.Name):
                collect(t.id, v)


def _unique_names(found: list[tuple[str, ast.expr]]) -> dict[str, ast.expr]:
    """A name that occurs more than once gets its line, and a count when a line repeats it."""
    counts: dict[str, int] = {}
    for name, _ in found:
        counts[name] = counts.get(name, 0) + 1
    named: dict[str, ast.expr] = {}
    for name, expr in found:
        key = name if counts[name] == 1 else f"{name}@L{expr.lineno}"
        k = 1
        while (key if k == 1 else f"{key}#{k}") in named:  # the same name twice on one line
            k += 1
        named[key if k == 1 else f"{key}#{k}"] = expr
    return named


def _callee(func: ast.expr) -> str | None:
    """`np.random.normal` for a call of np.random.normal(...); None for calls of anything but a dotted name."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    return ".".join([func.id, *reversed(parts)])


def _is_number(expr: ast.expr) -> bool:
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, (ast.USub, ast.UAdd)):
        expr = expr.operand
    return isinstance(expr, ast.Constant) and isinstance(expr.value, (int, float)) \
        and not isinstance(expr.value, bool) and expr.value != 0


def set_values(code: str, values: dict[str, Scalar]) -> str:
    """`code` with each named hyperparameter's literal replaced; KeyError for a name it does not have."""
    tunables = find_tunables(code)
    missing = sorted(set(values) - set(tunables))
    if missing:
        raise KeyError(f"the program has no hyperparameter named {', '.join(missing)}; "
                       f"it has {', '.join(sorted(tunables)) or 'none'}")
    lines = code.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()))
    raw = code.encode()
    edits = sorted(((tunables[n], v) for n, v in values.items()), key=lambda e: (e[0].lineno, e[0].col))
    out, pos = [], 0
    for tun, value in edits:
        # ast offsets are in UTF-8 bytes within a line
        start = offsets[tun.lineno - 1] + tun.col
        end = offsets[tun.end_lineno - 1] + tun.end_col
        out.append(raw[pos:start])
        out.append(format_literal(value).encode())
        pos = end
    out.append(raw[pos:])
    new = b"".join(out).decode()
    _parse(new)  # an edit must never break the program
    return new


def format_literal(value: Scalar) -> str:
    if isinstance(value, float):
        text = repr(value)
        return text if ("." in text or "e" in text or "inf" in text or "nan" in text) else text + ".0"
    return repr(value)


def _literal(expr: ast.expr) -> Scalar | None:
    try:
        value: Any = ast.literal_eval(expr)
    except (ValueError, SyntaxError, TypeError):
        return None
    return value if isinstance(value, (int, float, bool, str)) else None


# CPython 3.11/3.12 can fail with "SystemError: AST constructor recursion depth mismatch" when two threads
# parse at once (gh-106905); proposals are written on a thread pool, so parsing goes one at a time.
_PARSE_LOCK = threading.Lock()


def _parse(code: str) -> ast.Module:
    with _PARSE_LOCK:
        return ast.parse(code)
