"""A node of the search tree and the record of one execution."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

# copy: a stage's starting point, the previous stage's best node carried over (not run again);
# seed: the stage's best node re-run with another random seed (an evaluation, never a candidate)
Operator = Literal["draft", "debug", "improve", "copy", "seed"]


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
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def is_draft(self) -> bool:
        return self.parent_id is None
