"""The run directory: everything one run makes, written so that a crash loses nothing finished.

    config.yaml          resolved config of the run
    idea.json            the idea being tested
    journal/             Parquet, one file per finished node (append-only; read as one table)
    pending/             proposals handed to a runner but not finished (re-run on resume); <id>.run/ holds a
                         finished run whose model feedback was still pending (not re-run on resume)
    dropped/             proposals written but never run: their basis changed while they were written
    nodes/<step>-<id>/   the node's code, logs, run_0/ (final_info.json, arrays) and plots
    tree.json            the search tree (ids, parents, operators, metrics)
    best/                the best node's code and its record
    summary.json         what the run found
Every file is written to a temporary name and renamed, so readers never see half a file.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import EngineError
from search.node import JSON_FIELDS, RECORD_FIELDS, ExecResult, Node, node_from_record, node_record

_ARROW = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "json": pa.string(),
          "strs": pa.list_(pa.string())}
SCHEMA = pa.schema([(name, _ARROW[kind]) for name, kind in RECORD_FIELDS])  # one row per finished node


# what to do with a file of the run directory that is damaged although it was written whole (a disk fault, an edit)
RECOVER = "move it aside and resume (the step that wrote it runs again), or start a new run"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Written to a temporary name, then renamed: a reader (a resume after the process was killed) sees the old
    file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any, indent: int = 2) -> None:
    write_atomic(path, json.dumps(obj, indent=indent, default=str) + "\n")


def read_json(path: Path) -> Any:
    """The JSON in `path`, or None when there is no such file; EngineError naming a damaged one, with what to do."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EngineError(f"{path}: damaged, not readable JSON ({e}); {RECOVER}") from None


def node_to_row(node: Node) -> dict[str, Any]:
    row = node_record(node)
    for name in JSON_FIELDS:
        row[name] = None if row[name] is None else json.dumps(row[name])
    return row


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    """`files` (relative path -> bytes) under `root`; a name that would land outside it is skipped."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        dest = (root / rel).resolve()
        if root.resolve() not in dest.parents:
            continue  # never write outside the folder, whatever names came back
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.journal_dir = self.path / "journal"
        self.pending_dir = self.path / "pending"
        self.nodes_dir = self.path / "nodes"

    def node_dir(self, node: Node) -> Path:
        return self.nodes_dir / f"{node.step:04d}-{node.id}"

    # -- writing -------------------------------------------------------------------------------------
    def add_pending(self, node: Node) -> None:
        write_json(self.pending_dir / f"{node.id}.json", node_record(node))

    def save_run(self, node: Node, result: ExecResult, artifacts: dict[str, bytes], plot_error: str | None) -> None:
        """What a node's run produced, kept while its model feedback is pending: a resume then asks for the
        feedback without running the program again."""
        folder = self.pending_dir / f"{node.id}.run"
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        _write_tree(staging / "artifacts", artifacts)
        write_json(staging / "result.json", {"result": asdict(result), "plot_error": plot_error})
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)

    def load_run(self, node: Node) -> tuple[ExecResult, dict[str, bytes], str | None] | None:
        """(result, artifacts, plot error) saved by save_run, or None when the node had not finished running."""
        folder = self.pending_dir / f"{node.id}.run"
        if not (folder / "result.json").is_file():
            return None
        saved = read_json(folder / "result.json")
        root = folder / "artifacts"
        artifacts = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return ExecResult(**saved["result"]), artifacts, saved["plot_error"]

    def record(self, node: Node, artifacts: dict[str, bytes]) -> None:
        """Store a finished node: its folder first, then its journal row (the row marks it finished)."""
        final = self.node_dir(node)
        staging = final.with_name(final.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        _write_tree(staging, artifacts)
        write_json(staging / "node.json", node_record(node))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        table = pa.Table.from_pylist([node_to_row(node)], schema=SCHEMA)
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        part = self.journal_dir / f"{node.step:06d}-{node.id}.parquet"
        tmp = self.journal_dir / f".{part.name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, part)
        (self.pending_dir / f"{node.id}.json").unlink(missing_ok=True)
        shutil.rmtree(self.pending_dir / f"{node.id}.run", ignore_errors=True)

    def record_dropped(self, node: Node, why: str) -> None:
        """A written proposal that never ran because its basis changed (dropped/; its model cost is labelled so)."""
        write_json(self.path / "dropped" / f"{node.step:06d}-{node.id}.json", node_record(node) | {"dropped": why})
        (self.pending_dir / f"{node.id}.json").unlink(missing_ok=True)

    def dropped_ids(self) -> set[str]:
        folder = self.path / "dropped"
        return {p.stem.split("-", 1)[1] for p in folder.glob("*.json")} if folder.is_dir() else set()

    def write_best(self, node: Node) -> None:
        write_atomic(self.path / "best" / "experiment.py", node.code)
        write_json(self.path / "best" / "node.json", node_record(node))

    # -- reading -------------------------------------------------------------------------------------
    def read_artifacts(self, node: Node) -> dict[str, bytes]:
        """The files a finished node left in its folder (its record, node.json, excepted)."""
        folder = self.node_dir(node)
        if not folder.is_dir():
            return {}
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
                if p.is_file() and p.name != "node.json"}

    def load_nodes(self) -> list[Node]:
        """Finished nodes in creation order."""
        parts = sorted(self.journal_dir.glob("*.parquet")) if self.journal_dir.is_dir() else []
        if not parts:
            return []
        table = pa.concat_tables([_journal_part(p) for p in parts])
        nodes = [node_from_record(r) for r in table.to_pylist()]
        return sorted(nodes, key=lambda n: n.step)

    def load_pending(self) -> list[Node]:
        """Nodes that were running when the run stopped; their half-written folders are removed."""
        nodes = []
        for f in sorted(self.pending_dir.glob("*.json")) if self.pending_dir.is_dir() else []:
            nodes.append(node_from_record(read_json(f)))
        for partial in self.nodes_dir.glob("*.partial") if self.nodes_dir.is_dir() else []:
            shutil.rmtree(partial, ignore_errors=True)
        return sorted(nodes, key=lambda n: n.step)

    def read_table(self) -> pa.Table:
        return pa.concat_tables([_journal_part(p) for p in sorted(self.journal_dir.glob("*.parquet"))])


def _journal_part(part: Path) -> pa.Table:
    try:
        return pq.read_table(part, schema=SCHEMA)
    except (OSError, pa.ArrowException) as e:
        raise EngineError(f"{part}: damaged journal part ({str(e).splitlines()[0]}); move it aside and resume (the "
                          "node it records is then left out of the tree), or start a new run") from None
