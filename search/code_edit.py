"""Find a program's hyperparameters in its syntax tree and rewrite their values in place.

Three places count as hyperparameters: argparse defaults (`add_argument("--lr", default=1e-3)`), module-level
constants (`LR = 1e-3`) and defaults of module-level functions (`def train(lr=1e-3)`). Edits replace the literal's
exact source span, so comments and formatting survive and every result is still a complete program.
"""
from __future__ import annotations

import ast
import threading
from dataclasses import dataclass
from typing import Any

Scalar = int | float | bool | str


@dataclass(frozen=True)
class Tunable:
    name: str
    value: Scalar
    where: str  # "argparse", "constant" or "parameter"
    lineno: int
    col: int
    end_lineno: int
    end_col: int


def find_tunables(code: str) -> dict[str, Tunable]:
    """Every literal hyperparameter in `code`, by name; argparse beats constant beats parameter on a clash."""
    tree = _parse(code)
    found: dict[str, Tunable] = {}
    rank = {"argparse": 0, "constant": 1, "parameter": 2}

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
    return found


def numeric_tunables(code: str) -> dict[str, Tunable]:
    """Numeric hyperparameters a search may vary when a template declares none (seeds excluded)."""
    return {name: t for name, t in find_tunables(code).items()
            if isinstance(t.value, (int, float)) and not isinstance(t.value, bool)
            and "seed" not in name.lower()}


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
