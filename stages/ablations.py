"""The ablation stage: effects, never candidates.

It starts from the run's result (a copy of it) and searches as every stage does (one named ablation per node, never
twice), but it hands nothing on and its nodes never become the result. Each ablation runs on the final evaluation's
fresh seeds: its own run on the first (the proposal's seed is set before it runs) and one more run per other fresh
seed, so that its effect on the metric is a difference paired seed by seed with the result's own fresh runs
(stages/outcome.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search import code_edit
from search.journal import Journal
from search.node import RERUNS, Node
from stages.evaluation import Evaluation, reruns
from stages.policy import StagePolicy
from stages.result import fresh_variants

EFFECTS = "ablations are effects measured on the final seeds (summary.json ablations), never candidates"


class AblationPolicy(StagePolicy):
    """`fresh`: (seed parameter, the fresh seeds) of the final evaluation; None when the result's program has no
    seed parameter (each ablation is then a single run)."""

    fresh: tuple[str, list[int]] | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.effect_runs: dict[str, Evaluation] = {}  # ablation node id -> its runs on the other fresh seeds

    def ablations(self) -> list[Node]:
        return [n for n in self.view if n.operator not in ("copy", *RERUNS)]

    def prepare(self, node: Node) -> None:
        """An ablation runs on the first fresh seed (paired with the result's run on that seed)."""
        if self.fresh is None or node.operator == "copy" or not node.code:
            return
        param, values = self.fresh
        if param not in code_edit.find_tunables(node.code):
            return
        node.code = code_edit.set_values(node.code, {param: values[0]})
        node.plan = (f"{node.plan}\n(Run on fresh seed {param}={values[0]} and then on the other fresh seeds, "
                     "paired with the result's final evaluation.)").strip()

    def tell(self, node: Node) -> None:
        super().tell(node)
        if node.operator not in RERUNS and node.operator != "copy" and not node.is_buggy:
            self._plan_effect_runs(node, Journal(), ())

    def _plan_effect_runs(self, node: Node, journal: Journal, unfinished: Sequence[Node]) -> None:
        if self.fresh is None or node.id in self.effect_runs:
            return
        param, values = self.fresh
        if code_edit.find_tunables(node.code).get(param) is None:
            self.effect_runs[node.id] = Evaluation(node, plan={"skipped": f"its code has no {param}"})
            return
        runs = reruns(node, fresh_variants(node.code, param, values[1:]), param, journal, unfinished, self.name,
                      "eval", lambda v: f"Ablation node {node.step} on fresh seed {param}={v} (final evaluation).")
        ev = Evaluation(node, runs, {"param": param, "seeds": list(values)})
        ev.handed |= {n.id for n in runs if n.id in journal}
        self.effect_runs[node.id] = ev

    def restore_effects(self, journal: Journal, unfinished: Sequence[Node]) -> None:
        """After a resume: the finished ablations' runs, reusing those already in the journal or under way."""
        for node in self.ablations():
            if not node.is_buggy:
                self._plan_effect_runs(node, journal, unfinished)

    def decide(self, journal: Journal, unfinished_seeds: Sequence[Node] = ()) -> bool:
        """Nothing is handed on: the stage is over when its search is; its effect runs may still be running."""
        self._decided(None, {}, None, True, self.stop_reason or f"budget of {self.budget} nodes used "
                                                                 f"({len(self.ran)} ran)", None)
        self.seeds = Evaluation(None, plan={"skipped": EFFECTS})
        return True

    def next_seed(self) -> Node | None:
        for ev in self.effect_runs.values():
            node = ev.next()
            if node is not None:
                return node
        return None

    def seeds_done(self, journal: Journal) -> bool:
        return self.status == "seeding" and all(ev.done(journal) for ev in self.effect_runs.values())

    def evidence(self, journal: Journal) -> None:
        return None
