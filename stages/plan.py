"""The stages of a run in order, as one plan the driver consults.

Stage N+1 starts from a copy of stage N's chosen node as soon as stage N's search is decided, while stage N's seed
runs are still to run (they are evaluations, never parents), so slots never drain at a stage boundary. The plan
emits events (a stage started, decided, done) that the engine writes down (engine/experiments/stage_records.py).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from search.journal import Journal
from search.metric import MetricSpec, MetricValue
from search.node import Node
from stages.evaluation import Evaluation
from stages.policy import StagePolicy, StageSetup


@dataclass
class Started:
    stage: StagePolicy
    copy_of: Node | None  # the node the stage's starting copy carries over (None: stage 1)


@dataclass
class Decided:
    stage: StagePolicy


@dataclass
class Finished:
    stage: StagePolicy


@dataclass
class StagePlan:
    """The stages of a run in order. Stage N+1 starts (from a copy of stage N's chosen node) once stage N is
    decided; stage N's seed runs then run beside it. The run is over when every stage is done, or at once when
    stage 1 found no working node."""

    setup: StageSetup
    spec: Callable[[], MetricSpec | None]
    journal: Journal  # every node of the run
    new_step: Callable[[], int]
    stages: list[StagePolicy] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    failed: StagePolicy | None = None

    @classmethod
    def resume(cls, setup: StageSetup, spec: Callable[[], MetricSpec | None], journal: Journal,
               new_step: Callable[[], int], saved: Callable[[str], tuple[dict | None, dict | None]],
               unfinished: Sequence[Node] = ()) -> StagePlan:
        """The plan of a run from its journal and the stage files saved so far (`saved(name)` gives the stage's
        (record, decision): summary.json and search.json, either None)."""
        plan = cls(setup, spec, journal, new_step)
        seeds_waiting = [n for n in unfinished if n.operator == "seed"]
        previous: StagePolicy | None = None
        for name in setup.stages.run:
            if previous is not None and (previous.status == "search" or previous.best is None):
                break  # later stages had not started
            record, decision = saved(name)
            mine = [n for n in journal if n.stage == name and n.operator != "seed"]
            if previous is None and not mine and record is None:
                break  # nothing ran yet: start() begins stage 1
            start = next((n for n in mine if n.operator == "copy"), None)
            if previous is not None and start is None:
                plan._begin(name, previous)  # decided before the stop, the next stage not yet begun
                break
            policy = plan._policy(name, start, mine, previous)
            plan.stages.append(policy)
            if record is not None:
                policy.record, policy.status = record, "done"
                policy.decision = {k: record.get(k) for k in ("best", "tie_break", "completed", "why")}
                policy.seeds = Evaluation(policy.best, [journal.get(i) for i in
                                                        (record.get("seeds") or {}).get("node_ids", [])[1:]
                                                        if i in journal])
                if record.get("best") is None:
                    plan.failed = policy
            elif decision is not None:
                policy.restore(decision, journal, seeds_waiting)
            previous = policy
        return plan

    def _policy(self, name: str, start: Node | None, nodes: Sequence[Node],
                previous: StagePolicy | None) -> StagePolicy:
        evidence = (lambda: previous.evidence(self.journal)) if previous is not None else (lambda: None)
        return StagePolicy(self.setup.stages.settings[name], self.setup, start, self.spec, evidence, nodes)

    def _begin(self, name: str, previous: StagePolicy | None) -> None:
        start = None
        if previous is not None:
            prev = previous.best
            assert prev is not None
            start = Node(code=prev.code, operator="copy", stage=name, step=self.new_step(),
                         plan=f"Start of stage {name}: node {prev.step}, the best of stage {prev.stage}, carried "
                              "over (not run again).",
                         proposer=prev.proposer, metric=prev.metric, is_buggy=False, analysis=prev.analysis,
                         copied_from=prev.id, plot_feedback=prev.plot_feedback, plots_valid=prev.plots_valid,
                         exec=copy.deepcopy(prev.exec), finished_at=time.time())
        policy = self._policy(name, start, [start] if start else [], previous)
        self.stages.append(policy)
        self.events.append(Started(policy, previous.best if previous else None))

    @property
    def searching(self) -> StagePolicy | None:
        """The stage whose search is running (at most one)."""
        return next((s for s in self.stages if s.status == "search"), None)

    @property
    def finished(self) -> bool:
        return self.failed is not None or (len(self.stages) == len(self.setup.stages.run) and
                                           all(s.status == "done" for s in self.stages))

    def start(self) -> None:
        if not self.stages and not self.failed:
            self._begin(self.setup.stages.run[0], None)

    def next_seed(self) -> Node | None:
        """A seed run ready to go (earliest stage first); its step is numbered when handed out."""
        for s in self.stages:
            node = s.next_seed()
            if node is not None:
                if node.step < 0:
                    node.step = self.new_step()
                return node
        return None

    def tell(self, node: Node) -> None:
        """A finished node: the stages re-check their rules, decide, start the next one, finish."""
        for s in self.stages:
            if s.name == node.stage:
                s.tell(node)
        for s in self.stages:
            s.check()  # a seed evaluation that just finished may settle the next stage's completion rule

    def advance(self, pending_of: Callable[[str], list[Node]], unfinished: Sequence[Node] = ()) -> None:
        """Decide stages whose search is over, start the next, finish stages whose seed runs are all in."""
        changed = True
        while changed and self.failed is None:
            changed = False
            for i, s in enumerate(self.stages):
                if s.status == "search" and s.search_over(pending_of(s.name)):
                    if s.decide(self.journal, unfinished):
                        self.events.append(Decided(s))
                        changed = True
                        if s.best is None:
                            self.failed = s  # stage 1 found no working node: its record is written, the run ends
                if s.status == "seeding" and s.seeds_done(self.journal):
                    s.status = "done"
                    self.events.append(Finished(s))
                    changed = True
                if s.status != "search" and i == len(self.stages) - 1 and s.best is not None and \
                        len(self.stages) < len(self.setup.stages.run):
                    self._begin(self.setup.stages.run[len(self.stages)], s)
                    changed = True

    def pop_events(self) -> list[Any]:
        out, self.events = self.events, []
        return out

    def chosen(self) -> tuple[Node, dict[str, str]] | None:
        """The run's best node and the rule that chose it, as the stage decisions say: the choice of the last
        decided stage (every stage starts from the one before, so it carries the run's best forward), unless a node
        of the stage still searching beats it on the metric. Before any decision: the metric."""
        spec = self.spec()
        if spec is None:
            return None
        decided = [s for s in self.stages if s.decision and s.decision.get("best")]
        chosen = decided[-1].best if decided else None
        searching = self.searching
        running_best = searching.view.best_node(spec) if searching is not None else None
        if chosen is not None and (running_best is None or
                                   not MetricValue(running_best.metric, spec) > MetricValue(chosen.metric, spec)):
            d = decided[-1].decision
            best = d["best"]
            # records written before this account existed: the tie-break key tells
            rule = best.get("chosen_by") or ("model tie-break" if d.get("tie_break") else "metric")
            return chosen, {"chosen_by": rule, "reason": best.get("reason") or d.get("tie_break") or
                            f"the best {spec.name} of stage {decided[-1].name}"}
        if running_best is None:
            return None
        return running_best, {"chosen_by": "metric",
                              "reason": f"the best {spec.name} so far (stage {running_best.stage} running)"}

    def rows(self) -> list[dict[str, Any]]:
        return [s.summary_row() for s in self.stages]
