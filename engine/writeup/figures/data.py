"""What the figures are drawn from: a finished run directory's records (summary, tree, stage records) and the
result files each node saved in its run_0/ folder, read generically: any JSON, .npy, .npz or .csv file, whatever
its layout, is searched for numeric series (curves); what cannot be read is skipped, nothing is made up."""
from __future__ import annotations

import csv
import json
import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.rundir import RECOVER, read_json

log = logging.getLogger(__name__)

DATA_SUFFIXES = (".json", ".npy", ".npz", ".csv")
X_NAMES = ("step", "steps", "iter", "iters", "iteration", "iterations", "epoch", "epochs", "update", "updates")
SPLIT_TOKENS = {"train", "training", "val", "valid", "validation", "test", "eval", "dev"}
MAX_DEPTH, MAX_TABLES, MAX_POINTS = 6, 32, 2000
MAX_READ_BYTES = 64 * 2**20


@dataclass(frozen=True)
class NodeRecord:
    id: str
    step: int
    stage: str
    operator: str
    metric: float | None
    buggy: bool
    change: str
    plan: str
    copied_from: str | None
    dir: str | None  # "nodes/<step>-<id>" relative to the run directory, None when the folder is missing


@dataclass
class RunResults:
    run_dir: Path
    metric: str
    direction: str  # "maximize" | "minimize"
    nodes: dict[str, NodeRecord]  # by id, in step order
    stages: list[dict[str, Any]]  # each stage's summary.json, in run order
    idea: dict[str, Any] | None = None

    def original(self, node_id: str) -> str:
        """The node whose results a copy carries (copies are not run again)."""
        seen = set()
        while node_id in self.nodes and self.nodes[node_id].copied_from and node_id not in seen:
            seen.add(node_id)
            node_id = self.nodes[node_id].copied_from or node_id
        return node_id

    def result_files(self, node_id: str) -> list[str]:
        """The data files in the node's run_0/ (of the original, for a copy), relative to the run directory."""
        node = self.nodes.get(self.original(node_id))
        if node is None or node.dir is None:
            return []
        folder = self.run_dir / node.dir / "run_0"
        if not folder.is_dir():
            return []
        return [p.relative_to(self.run_dir).as_posix() for p in sorted(folder.rglob("*"))
                if p.suffix.lower() in DATA_SUFFIXES and p.is_file() and not p.is_symlink()]

    def stage_file(self, stage: dict[str, Any]) -> str:
        return f"stages/{stage['name']}/summary.json"

    def lower_is_better(self) -> bool:
        return self.direction == "minimize"


def load_run(run_dir: Path) -> RunResults:
    """The run's records; EngineError when the experiments left none."""
    tree_file, summary_file = run_dir / "tree.json", run_dir / "summary.json"
    if not tree_file.is_file():
        raise EngineError(f"{run_dir} has no tree.json: run the experiments phase before the writeup")
    tree, summary = read_json(tree_file), read_json(summary_file) or {}
    if not isinstance(tree, dict) or not isinstance(summary, dict):
        raise EngineError(f"{run_dir}: tree.json or summary.json is not a mapping; {RECOVER}")
    primary = summary.get("primary_metric") or tree.get("primary_metric") or {}
    if not primary.get("name"):
        raise EngineError(f"{run_dir}: no primary metric in summary.json or tree.json; was the run finished?")
    dirs = {p.name.split("-", 1)[1]: f"nodes/{p.name}" for p in sorted((run_dir / "nodes").glob("*-*"))
            if p.is_dir()}
    nodes = {}
    for n in sorted(tree.get("nodes", []), key=lambda n: n.get("step", 0)):
        metric = n.get("metric")
        nodes[n["id"]] = NodeRecord(
            n["id"], int(n.get("step", 0)), str(n.get("stage") or ""), str(n.get("operator") or ""),
            float(metric) if isinstance(metric, (int, float)) and np.isfinite(metric) else None,
            bool(n.get("is_buggy")), str(n.get("change") or ""), str(n.get("plan") or ""), n.get("copied_from"),
            dirs.get(n["id"]))
    order = [s["name"] for s in summary.get("stages", []) if isinstance(s, dict) and "name" in s]
    found = {p.parent.name: p for p in (run_dir / "stages").glob("*/summary.json")}
    order += sorted(n for n in found if n not in order)
    stages = [read_json(found[n]) for n in order if n in found]
    idea = read_json(run_dir / "idea.json")
    return RunResults(run_dir, str(primary["name"]), str(primary.get("direction") or "maximize"), nodes, stages,
                      idea if isinstance(idea, dict) else None)


# -- reading result files -------------------------------------------------------------------------------------
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars and plain containers only: a node's pickled .npy (v1 templates save
    dicts of results that way) is the output of generated code, and a pickle may name any callable."""
    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")} | {
        (m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")} | {
        (m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a result file")
        return super().find_class(module, name)


def _load_npy(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError:  # an object array: a pickle follows the header
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                np.lib.format.read_array_header_1_0(f)
            else:
                np.lib.format.read_array_header_2_0(f)
            return _ArrayUnpickler(f).load()


def _load_csv(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3:
        return {}
    columns: dict[str, list[float]] = {}
    for i, name in enumerate(rows[0]):
        try:
            columns[name.strip() or f"column {i}"] = [float(r[i]) for r in rows[1:]]
        except (ValueError, IndexError):
            continue
    return columns


def load_result(path: Path) -> Any:
    """The content of a result file, or None when it cannot be read (logged, never fatal)."""
    try:
        if path.stat().st_size > MAX_READ_BYTES:
            log.info("skipping %s: larger than %d MB", path.name, MAX_READ_BYTES >> 20)
            return None
        suffix = path.suffix.lower()
        if suffix == ".json":
            return json.loads(path.read_text())
        if suffix == ".npy":
            return _load_npy(path)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                out = {}
                for k in z.files:
                    try:
                        out[k] = z[k]
                    except ValueError:  # a pickled member
                        continue
                return out
        if suffix == ".csv":
            return _load_csv(path)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, UnicodeDecodeError, AttributeError) as e:
        log.info("cannot read %s: %s: %s", path, type(e).__name__, e)
    return None


# -- numeric series ---------------------------------------------------------------------------------------
@dataclass
class Table:
    """Numeric series of equal length found together in a result file: the curves of one run."""
    name: str  # where: "<file>:<path>", e.g. "curves.json:x_plus_y[0]"
    x_name: str
    x: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """The name without list indices and split words: the tables of several runs (seeds) of the same thing,
        and its training and validation logs (v1's `<dataset>_train_info` / `_val_info`), share it."""
        file, _, path = re.sub(r"\[\d+\]", "", self.name).partition(":")
        kept = [t for t in re.split(r"[_/\-. ]+", path) if t and t.lower() not in SPLIT_TOKENS]
        return f"{file}:{'_'.join(kept)}"


def _series(v: Any) -> np.ndarray | None:
    if isinstance(v, np.ndarray):
        if v.ndim == 1 and v.dtype.kind in "iuf" and v.size >= 2:
            return v.astype(float)
        return None
    if isinstance(v, (list, tuple)) and len(v) >= 2 and all(
            isinstance(e, (int, float, np.integer, np.floating)) and not isinstance(e, bool) for e in v):
        return np.asarray(v, dtype=float)
    return None


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _records(v: Any) -> dict[str, np.ndarray] | None:
    """A list of flat {name: number} dicts (a log of records) as columns."""
    if not (isinstance(v, list) and len(v) >= 2 and all(isinstance(r, dict) for r in v)):
        return None
    keys = [k for k in v[0] if all(_is_scalar(r.get(k)) for r in v)]
    return {str(k): np.asarray([r[k] for r in v], dtype=float) for k in keys} or None


def _tables_of(columns: dict[str, np.ndarray], name: str) -> list[Table]:
    by_len: dict[int, dict[str, np.ndarray]] = {}
    for k, arr in columns.items():
        by_len.setdefault(len(arr), {})[k] = arr
    out = []
    for cols in by_len.values():
        x_key = next((k for k in cols if k.lower() in X_NAMES and np.all(np.diff(cols[k]) >= 0)), None)
        x = cols.pop(x_key) if x_key else np.arange(len(next(iter(cols.values()))), dtype=float)
        if cols:
            out.append(Table(name, x_key or "index", x, cols))
    return out


def _leaf(name: str) -> str:
    """The last component of a table name: its key in the file, or the file's stem for a bare array."""
    file, _, path = name.partition(":")
    return re.sub(r"\[\d+\]", "", path.rsplit("/", 1)[-1]) or Path(file).stem


def find_tables(obj: Any, name: str, depth: int = 0) -> list[Table]:
    """Every group of numeric series in a loaded result file (see the module docstring)."""
    if depth > MAX_DEPTH:
        return []
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        obj = obj.item() if obj.ndim == 0 else list(obj)
    direct = _series(obj)
    if direct is not None:
        return _tables_of({_leaf(name): direct}, name)
    records = _records(obj)
    if records is not None:
        return _tables_of(records, name)
    found: list[Table] = []
    if isinstance(obj, dict):
        columns = {str(k): s for k, v in obj.items() if (s := _series(v)) is not None}
        found += _tables_of(columns, name)
        for k, v in obj.items():
            if str(k) not in columns and isinstance(v, (dict, list, np.ndarray)):
                found += find_tables(v, f"{name}/{k}" if not name.endswith(":") else f"{name}{k}", depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:MAX_TABLES]):
            if isinstance(v, (dict, list, np.ndarray)):
                found += find_tables(v, f"{name}[{i}]", depth + 1)
    return found[:MAX_TABLES]


def kind_of(column: str) -> str:
    """What a series measures, without its split: train_loss, val_loss -> loss."""
    parts = [p for p in re.split(r"[_/\-. ]+", column) if p]
    rest = [p for p in parts if p.lower() not in SPLIT_TOKENS]
    return "_".join(rest) if rest else column


def is_held_out(column: str) -> bool:
    return any(p.lower() in SPLIT_TOKENS - {"train", "training"} for p in re.split(r"[_/\-. ]+", column))


def node_tables(run: RunResults, node_id: str) -> tuple[list[Table], list[str]]:
    """The curves a node saved, and the files they came from (relative to the run directory)."""
    tables, used = [], []
    for rel in run.result_files(node_id):
        found = find_tables(load_result(run.run_dir / rel), f"{Path(rel).name}:")
        if found:
            tables += found
            used.append(rel)
    return tables, used


def thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_POINTS points per line (every k-th), keeping the last."""
    if len(x) <= MAX_POINTS:
        return x, y
    idx = np.unique(np.r_[np.arange(0, len(x), len(x) // MAX_POINTS + 1), len(x) - 1])
    return x[idx], y[idx]
