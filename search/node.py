"""A node of the search tree and the record of one execution."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any, Literal

# copy: a stage's starting point, the previous stage's best node carried over (not run again);
# seed: the stage's best node re-run with another random seed (an evaluation, never a candidate);
# eval: a run on a fresh seed for the final evaluation (the run's result, its baseline, an ablation): no decision
#       of the search ever sees it
Operator = Literal["draft", "debug", "improve", "copy", "seed", "eval"]
RERUNS = ("seed", "eval")  # runs of a node's program with another seed: evaluations, never candidates


@dataclass
class ExecResult:
    """What running a node's program produced (filled by the engine's sandbox)."""

    exit_code: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    exc_type: str | None = None
    exc_message: str | None = None
    exec_time_s: float = 0.0
    started_at: float | None = None  # wall-clock start of the program on its machine
    timed_out: bool = False
    killed_reason: str | None = None  # "timeout", "memory", "processes", ... when the sandbox stopped it
    final_info: dict[str, Any] | None = None
    plots: list[str] = field(default_factory=list)  # file names inside the node folder

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.killed_reason is None


@dataclass
class Node:
    """One program in the tree. `metric` is the primary metric value; None until evaluated or when buggy."""

    code: str
    plan: str = ""
    operator: Operator = "draft"
    parent_id: str | None = None
    stage: str = "initial"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    step: int = 0  # order of creation within the run
    proposer: str = ""
    metric: float | None = None
    is_buggy: bool | None = None  # None while not yet executed
    bug_reason: str = ""
    analysis: str = ""
    change: str = ""  # the named change this node makes: a hyperparameter (tuning), an ablation, a seed
    copied_from: str | None = None  # for a copy: the node it carries over from the previous stage
    plot_feedback: str = ""  # the vision model's reading of the node's plots ("" when not critiqued)
    plots_valid: bool | None = None  # its verdict; None when not critiqued
    exec: ExecResult = field(default_factory=ExecResult)
    created_at: float = field(default_factory=time.time)  # when its proposal started being written
    submitted_at: float | None = None  # when it was handed to a slot
    slot: int | None = None  # which slot ran it (0-based)
    finished_at: float | None = None  # when its result reached the driver
    held_out: dict[str, float] | None = None  # held-out metrics' values: final evaluation runs only

    @property
    def is_draft(self) -> bool:
        return self.parent_id is None


# -- the one serialization of a node -------------------------------------------------------------------------
# Every place that stores or shows a node (the journal's Parquet rows, pending files, node.json, tree.json, the
# viewer's data, a stage's history) writes a subset of this flat record, so the formats cannot drift apart.
# Field kinds: str, int, float, bool, json (any JSON value, a string in Parquet), strs (a list of strings).
RECORD_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "str"), ("step", "int"), ("parent_id", "str"), ("stage", "str"), ("operator", "str"),
    ("proposer", "str"), ("plan", "str"), ("code", "str"), ("metric", "float"), ("is_buggy", "bool"),
    ("bug_reason", "str"), ("analysis", "str"), ("change", "str"), ("copied_from", "str"),
    ("plot_feedback", "str"), ("plots_valid", "bool"), ("exit_code", "int"), ("exec_time_s", "float"),
    ("started_at", "float"), ("timed_out", "bool"), ("killed_reason", "str"), ("exc_type", "str"),
    ("exc_message", "str"), ("stdout_tail", "str"), ("stderr_tail", "str"), ("final_info", "json"),
    ("plots", "strs"), ("created_at", "float"), ("submitted_at", "float"), ("slot", "int"),
    ("finished_at", "float"), ("held_out", "json"),
)
JSON_FIELDS = tuple(name for name, kind in RECORD_FIELDS if kind == "json")
_EXEC = {f.name for f in fields(ExecResult)}
# what tree.json and the viewer list per node (the code and logs are in the node's folder)
TREE_FIELDS = ("id", "step", "parent_id", "stage", "operator", "proposer", "plan", "metric", "is_buggy",
               "bug_reason", "change", "copied_from", "plots_valid", "exec_time_s", "started_at", "created_at",
               "submitted_at", "slot", "finished_at")


def node_record(node: Node, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The node as one flat JSON-ready dict (its execution fields inlined), or the `keys` of it."""
    rec = {name: getattr(node.exec, name) if name in _EXEC else getattr(node, name)
           for name, _ in RECORD_FIELDS if keys is None or name in keys}
    if "plots" in rec:
        rec["plots"] = list(rec["plots"])
    return rec


def node_from_record(rec: dict[str, Any]) -> Node:
    """The node from node_record() output (a Parquet row, a pending file, node.json); records written before a
    field existed get its default. A pending file of the older nested form ({... "exec": {...}}) loads too."""
    rec = dict(rec) | dict(rec.get("exec") or {})
    for name in JSON_FIELDS:
        if isinstance(rec.get(name), str):  # Parquet keeps it as JSON text
            rec[name] = json.loads(rec[name])
    ex = ExecResult(**{k: rec[k] for k in _EXEC if rec.get(k) is not None})
    ex.plots = list(ex.plots or [])
    node_keys = {f.name for f in fields(Node)} - {"exec"}
    kw = {k: rec[k] for k in node_keys if rec.get(k) is not None}
    for text in ("plan", "proposer", "bug_reason", "analysis", "change", "plot_feedback"):
        kw.setdefault(text, "")
    return Node(**kw, exec=ex)
