"""Re-runs of one node's program with other seeds.

A stage's chosen node is re-run on selection seeds (its own seed + 1, + 2, ...): the spread that the next
decisions rest on. Nothing here starts a process: the plan hands the runs to the driver one at a time and reads
their values once all are in. A run of the same program (the same code, so the same seed) that is already in the
journal or under way is reused, never run twice.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from search.journal import Journal
from search.node import Node
from stages import seeds


@dataclass(frozen=True)
class Evidence:
    """A node's seed evaluation: the spread that tells a real difference from noise."""

    mean: float
    stderr: float
    n: int

    @property
    def sd(self) -> float:
        return self.stderr * math.sqrt(self.n)

    def margin(self, z: float) -> float:
        """How far one new run must differ from this mean to be above the noise: z standard deviations of the
        difference between a single run and a mean of n runs (the same spread assumed for both)."""
        return z * self.sd * math.sqrt(1 + 1 / self.n)

    def text(self) -> str:
        return f"{self.mean:.4g} ± {self.stderr:.2g} over {self.n} seeds"


@dataclass
class Evaluation:
    """The runs that evaluate `target` with other seeds; `plan` says how they were chosen (param, asked, the
    target's own seed, every seed) or why there are none (`skipped`)."""

    target: Node | None
    runs: list[Node] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    handed: set[str] = field(default_factory=set)

    def next(self) -> Node | None:
        """A run not yet handed to the driver."""
        node = next((n for n in self.runs if n.id not in self.handed), None)
        if node is not None:
            self.handed.add(node.id)
        return node

    def done(self, journal: Journal) -> bool:
        return all(n.id in journal for n in self.runs)


def seed_evaluation(best: Node, journal: Journal, unfinished: Sequence[Node], asked: int, declared: str | None,
                    stage: str) -> Evaluation:
    """`best` re-run until `asked` seeds are in (its own run is the first): the stage's seed evaluation."""
    if asked <= 1:
        return Evaluation(best, plan={"skipped": "stages.num_seeds=1", "asked": 1})
    param = seeds.seed_param(best.code, declared)
    if param is None:
        return Evaluation(best, plan={"asked": asked, "skipped": (
            f"the best node's code has no seed parameter {declared}" if declared else
            f"the best node's code has no seed parameter (one of {', '.join(seeds.SEED_NAMES)}; declare "
            "seed_param in the template's manifest.yaml)")})
    try:
        variants = seeds.seed_variants(best.code, param, asked)
    except ValueError as e:
        return Evaluation(best, plan={"skipped": str(e), "asked": asked})
    own = seeds.seed_value(best.code, param)
    runs = reruns(best, variants, param, journal, unfinished, stage, "seed",
                  lambda value: f"Node {best.step} again with {param}={value} (multi-seed evaluation).")
    ev = Evaluation(best, runs, {"param": param, "asked": asked, "own_seed": own,
                                 "seeds": [own] + [v for v, _ in variants]})
    ev.handed |= {n.id for n in runs if n.id in journal}
    return ev


def reruns(target: Node, variants: Sequence[tuple[int, str]], param: str, journal: Journal,
           unfinished: Sequence[Node], stage: str, operator: str, plan: Any) -> list[Node]:
    """A node per (seed, program) of `variants`, reusing a finished good run or one under way of the same program
    and operator; `plan(seed)` is each new run's plan text."""
    done = {n.code: n for n in journal if n.operator == operator and not n.is_buggy}
    waiting = {n.code: n for n in unfinished if n.operator == operator}
    out = []
    for value, code in variants:
        node = done.get(code) or waiting.get(code)
        if node is None:
            node = Node(code=code, operator=operator, parent_id=target.id, stage=stage, step=-1,
                        proposer=f"{'seed' if operator == 'seed' else 'final'} evaluation",
                        change=f"{param}={value}", plan=plan(value))
        out.append(node)
    return out
