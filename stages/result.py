"""The run's result: chosen on seed means, measured on fresh seeds.

Once the stages that look for a better method (initial, tuning, agenda: those of them that run) are done, their
decided nodes are compared on the means of their seed evaluations, never on a single run; the best becomes the
run's result. It is then run, with the baseline (the template's own code), on `stages.final_seeds` fresh seeds:
seeds above every seed any run of the search used, so that no decision saw them. The ablation stage starts from
the result, and each ablation runs on the same fresh seeds: its effect is a paired difference.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from search import code_edit
from search.journal import Journal
from search.metric import MetricSpec, MetricValue
from search.node import Node
from stages import effects, seeds
from stages.evaluation import Evaluation, reruns

RESULT_STAGES = ("initial", "tuning", "agenda")  # the stages whose decided node may become the run's result
SINGLE_RUN = "single run, not repeated"


@dataclass(frozen=True)
class Candidate:
    stage: str
    node: Node  # the node whose program it is (a stage's copy resolved to the node it carries over)
    values: list[float]  # its own run and its good seed runs
    seeds: list[int]  # the seeds of those runs (empty when it has no seed evaluation)

    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    def row(self) -> dict[str, Any]:
        stats = effects.interval(self.values)
        return {"stage": self.stage, "node_id": self.node.id, "step": self.node.step, "mean": stats["mean"],
                "stderr": stats["stderr"], "n": stats["n"], "seeds": self.seeds}


def original(node: Node, journal: Journal) -> Node:
    """The node a chain of stage copies carries over."""
    while node.operator == "copy" and node.copied_from and node.copied_from in journal:
        node = journal.get(node.copied_from)
    return node


def choose(candidates: Sequence[Candidate], spec: MetricSpec) -> tuple[Candidate, dict[str, Any]]:
    """The candidate with the best mean (the earlier stage on a tie: fewer changes), and the account."""
    best = max(candidates, key=lambda c: MetricValue(c.mean(), spec))  # max keeps the first of equals
    repeated = all(len(c.values) > 1 for c in candidates)
    rule = "seed means" if repeated else "single runs (no seed evaluation to compare on)"
    listing = "; ".join(f"{c.stage}: node {c.node.step}, {c.mean():.4g} over {len(c.values)} "
                        f"run{'s' if len(c.values) > 1 else ''}" for c in candidates)
    return best, {"chosen_by": rule, "reason": f"the best {spec.name} ({spec.direction}) of the decided stages' "
                                               f"nodes on their {rule}: {listing}",
                  "candidates": [c.row() for c in candidates], "selection_seeds": best.seeds}


def fresh_seeds(journal: Journal, param: str, count: int) -> list[int]:
    """`count` seeds above every value of `param` any program of the run used (so no decision saw them)."""
    used = [0]
    for node in journal:
        value = code_edit.find_tunables(node.code).get(param) if node.code else None
        if value is not None and isinstance(value.value, int) and not isinstance(value.value, bool):
            used.append(value.value)
    start = max(used) + 1
    return list(range(start, start + count))


def fresh_variants(code: str, param: str, values: Sequence[int]) -> list[tuple[int, str]]:
    return [(v, code_edit.set_values(code, {param: v})) for v in values]


@dataclass
class FinalEvaluation:
    """The run's result and its baseline, each run on the fresh seeds; `choice` says how the result was chosen."""

    result: Node
    choice: dict[str, Any]
    param: str | None  # None: the result's program has no seed parameter (a single run, not repeated)
    fresh: list[int]
    baseline: Node | None  # None: template-free (no baseline program)
    result_runs: Evaluation
    baseline_runs: Evaluation

    @classmethod
    def plan(cls, result: Node, choice: dict[str, Any], baseline: Node | None, declared: str | None, count: int,
             journal: Journal, unfinished: Sequence[Node], fresh: list[int] | None = None) -> FinalEvaluation:
        """The runs to make (reusing those already in the journal or under way: a resume makes none twice)."""
        param = seeds.seed_param(result.code, declared)
        if param is None:
            return cls(result, choice, None, [], baseline, Evaluation(result, plan={"skipped": SINGLE_RUN}),
                       Evaluation(baseline, plan={"skipped": SINGLE_RUN}))
        fresh = fresh if fresh is not None else fresh_seeds(journal, param, count)
        ev = cls(result, choice, param, fresh, baseline, cls._runs(result, param, fresh, journal, unfinished),
                 Evaluation(baseline, plan={"skipped": "no baseline program (template-free)"}))
        if baseline is not None and baseline.code == result.code:
            ev.baseline_runs = ev.result_runs  # the result is the baseline's own program: the same runs
        elif baseline is not None and seeds.seed_param(baseline.code, declared) == param:
            ev.baseline_runs = cls._runs(baseline, param, fresh, journal, unfinished)
        elif baseline is not None:
            ev.baseline_runs = Evaluation(baseline, plan={"skipped": f"the baseline's code has no {param}"})
        return ev

    @staticmethod
    def _runs(node: Node, param: str, fresh: list[int], journal: Journal, unfinished: Sequence[Node]) -> Evaluation:
        runs = reruns(node, fresh_variants(node.code, param, fresh), param, journal, unfinished, "final", "eval",
                      lambda v: f"Node {node.step} on fresh seed {param}={v} (final evaluation: no decision saw it).")
        ev = Evaluation(node, runs, {"param": param, "seeds": list(fresh)})
        ev.handed |= {n.id for n in runs if n.id in journal}
        return ev

    def next(self) -> Node | None:
        return self.result_runs.next() or self.baseline_runs.next()

    def done(self, journal: Journal) -> bool:
        return self.result_runs.done(journal) and self.baseline_runs.done(journal)

    def saved(self) -> dict[str, Any]:
        """What a resume needs (final/search.json in the run directory)."""
        return {"result": self.result.id, "baseline": self.baseline.id if self.baseline else None,
                "param": self.param, "fresh_seeds": self.fresh, "choice": self.choice}

    def values(self, ev: Evaluation) -> list[float | None]:
        """The metric of each fresh run, in seed order (None for a run that failed)."""
        return [None if n.is_buggy else n.metric for n in ev.runs]
