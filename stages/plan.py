"""The stages of a run in order, and its result, as one plan the driver consults.

Stage N+1 starts from a copy of stage N's chosen node as soon as stage N's search is decided, while stage N's seed
runs are still to run (they are evaluations, never parents), so slots rarely drain at a stage boundary. When the
stages that look for a better method (initial, tuning, agenda) are done, the run's result is chosen on their seed
means and measured on fresh seeds with its baseline (stages/result.py); the ablation stage then starts from the
result and measures each ablation on the same fresh seeds (stages/ablations.py). The plan emits events that the
engine writes down (engine/experiments/stage_records.py).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from search.journal import Journal
from search.metric import MetricSpec, MetricValue
from search.node import RERUNS, Node
from stages import outcome
from stages.ablations import AblationPolicy
from stages.evaluation import Evaluation
from stages.policy import StagePolicy, StageSetup
from stages.result import RESULT_STAGES, Candidate, FinalEvaluation, choose, original

Saved = Callable[[str], tuple[dict | None, dict | None]]  # a stage's (record, decision) saved in the run directory


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
class ResultChosen:
    final: FinalEvaluation


@dataclass
class Concluded:
    """Every run of the plan is in: the result and the ablations are final."""

    record: dict[str, Any]


@dataclass
class StagePlan:
    """The stages of a run in order, then the run's result. The run is over when every stage and the final
    evaluation are done, or at once when stage 1 found no working node."""

    setup: StageSetup
    spec: Callable[[], MetricSpec | None]
    journal: Journal  # every node of the run
    new_step: Callable[[], int]
    stages: list[StagePolicy] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    failed: StagePolicy | None = None
    final: FinalEvaluation | None = None
    concluded: bool = False

    @classmethod
    def resume(cls, setup: StageSetup, spec: Callable[[], MetricSpec | None], journal: Journal,
               new_step: Callable[[], int], saved: Saved, unfinished: Sequence[Node] = ()) -> StagePlan:
        """The plan of a run from its journal and the stage files saved so far (`saved(name)` gives the stage's
        (record, decision): summary.json and search.json, either None; `saved("final")` the result's, final/)."""
        plan = cls(setup, spec, journal, new_step)
        waiting = [n for n in unfinished if n.operator in RERUNS]
        previous: StagePolicy | None = None
        for name in setup.stages.run:
            if name not in RESULT_STAGES and plan.final is None:
                plan._restore_final(saved, waiting)
            if not plan._resumable(name, previous):
                break
            record, decision = saved(name)
            mine = [n for n in journal if n.stage == name and n.operator not in RERUNS]
            if previous is None and not mine and record is None:
                break  # nothing ran yet: start() begins stage 1
            start = next((n for n in mine if n.operator == "copy"), None)
            if previous is not None and start is None:
                plan._begin_next(previous)  # decided before the stop, the next stage not yet begun
                break
            policy = plan._policy(name, start, mine, previous)
            plan.stages.append(policy)
            plan._restore_stage(policy, record, decision, waiting)
            previous = policy
        if plan.final is None and plan.stages and plan._result_stages_done():
            plan._restore_final(saved, waiting)
        return plan

    def _resumable(self, name: str, previous: StagePolicy | None) -> bool:
        if previous is None:
            return True
        if name in RESULT_STAGES:
            return previous.status != "search" and previous.best is not None
        return self.final is not None  # the ablations start from the result

    def _restore_stage(self, policy: StagePolicy, record: dict | None, decision: dict | None,
                       waiting: Sequence[Node]) -> None:
        if isinstance(policy, AblationPolicy):
            policy.restore_effects(self.journal, waiting)
        if record is not None:
            policy.record, policy.status = record, "done"
            policy.decision = {k: record.get(k) for k in ("best", "tie_break", "completed", "why")}
            seed_info = record.get("seeds") or {}
            if not isinstance(policy, AblationPolicy):
                policy.seeds = Evaluation(policy.best, [self.journal.get(i) for i in
                                                        seed_info.get("node_ids", [])[1:] if i in self.journal],
                                          dict(seed_info))
            if record.get("best") is None and policy.name in RESULT_STAGES:
                self.failed = policy
        elif decision is not None:
            policy.restore(decision, self.journal, waiting)

    def _restore_final(self, saved: Saved, waiting: Sequence[Node]) -> None:
        """The result chosen before a resume (final/search.json): its fresh runs continue."""
        record, choice = saved("final")
        if choice is None or choice.get("result") not in self.journal:
            return
        base = choice.get("baseline")
        self.final = FinalEvaluation.plan(
            self.journal.get(choice["result"]), choice["choice"], self.journal.get(base) if base in self.journal
            else None, self.setup.seed_param, self.setup.stages.final_seeds, self.journal, waiting,
            fresh=choice.get("fresh_seeds"))
        self.concluded = record is not None

    def _policy(self, name: str, start: Node | None, nodes: Sequence[Node],
                previous: StagePolicy | None) -> StagePolicy:
        settings = self.setup.stages.settings[name]
        if name in RESULT_STAGES:
            evidence = (lambda: previous.evidence(self.journal)) if previous is not None else (lambda: None)
            return StagePolicy(settings, self.setup, start, self.spec, evidence, nodes)
        policy = AblationPolicy(settings, self.setup, start, self.spec, lambda: None, nodes)
        if self.final is not None and self.final.param is not None:
            policy.fresh = (self.final.param, self.final.fresh)
        return policy

    def _begin(self, name: str, source: Node | None, previous: StagePolicy | None) -> None:
        start = None
        if source is not None:
            start = Node(code=source.code, operator="copy", stage=name, step=self.new_step(),
                         plan=f"Start of stage {name}: node {source.step} of stage {source.stage}, carried over "
                              "(not run again).",
                         proposer=source.proposer, metric=source.metric, is_buggy=False, analysis=source.analysis,
                         copied_from=source.id, plot_feedback=source.plot_feedback, plots_valid=source.plots_valid,
                         exec=copy.deepcopy(source.exec), finished_at=time.time())
        policy = self._policy(name, start, [start] if start else [], previous)
        self.stages.append(policy)
        self.events.append(Started(policy, source))

    def _begin_next(self, last: StagePolicy) -> bool:
        """The next stage, when it may start: a result stage once the one before is decided; the ablations once
        the result is chosen (from a copy of it)."""
        if len(self.stages) >= len(self.setup.stages.run):
            return False
        name = self.setup.stages.run[len(self.stages)]
        if name in RESULT_STAGES and last.status != "search" and last.best is not None:
            self._begin(name, last.best, last)
            return True
        if name not in RESULT_STAGES and self.final is not None:
            self._begin(name, self.final.result, last)
            return True
        return False

    @property
    def searching(self) -> StagePolicy | None:
        """The stage whose search is running (at most one)."""
        return next((s for s in self.stages if s.status == "search"), None)

    @property
    def finished(self) -> bool:
        return self.failed is not None or (len(self.stages) == len(self.setup.stages.run) and
                                           all(s.status == "done" for s in self.stages) and
                                           self.final is not None and self.final.done(self.journal))

    def start(self) -> None:
        if not self.stages and not self.failed:
            self._begin(self.setup.stages.run[0], None, None)

    def next_seed(self) -> Node | None:
        """A re-run ready to go: the result stages' seed runs first (decisions wait on them), then the final
        evaluation's, then the ablations'; its step is numbered when handed out."""
        result_stages = [s for s in self.stages if s.name in RESULT_STAGES]
        others = [s.next_seed for s in self.stages if s.name not in RESULT_STAGES]
        for source in [s.next_seed for s in result_stages] + ([self.final.next] if self.final else []) + others:
            node = source()
            if node is not None:
                if node.step < 0:
                    node.step = self.new_step()
                return node
        return None

    def prepare(self, node: Node) -> None:
        """A written proposal, before it runs: its stage may set what it runs with (the ablations' seed)."""
        for s in self.stages:
            if s.name == node.stage:
                s.prepare(node)

    def tell(self, node: Node) -> None:
        """A finished node: the stages re-check their rules, decide, start the next one, finish."""
        for s in self.stages:
            if s.name == node.stage:
                s.tell(node)
        for s in self.stages:
            s.check()  # a seed evaluation that just finished may settle the next stage's completion rule

    def advance(self, pending_of: Callable[[str], list[Node]], unfinished: Sequence[Node] = ()) -> None:
        """Decide stages whose search is over, start the next, finish stages whose seed runs are all in, choose
        the result when its stages are done, conclude when every run is in."""
        changed = True
        while changed and self.failed is None:
            changed = False
            for s in self.stages:
                if s.status == "search" and s.search_over(pending_of(s.name)):
                    if s.decide(self.journal, unfinished):
                        self.events.append(Decided(s))
                        changed = True
                        if s.best is None and s.name in RESULT_STAGES:
                            self.failed = s  # stage 1 found no working node: its record is written, the run ends
                if s.status == "seeding" and s.seeds_done(self.journal):
                    s.status = "done"
                    self.events.append(Finished(s))
                    changed = True
            changed |= self._choose_result(unfinished)
            if self.stages and self.stages[-1].status != "search":
                changed |= self._begin_next(self.stages[-1])
        if self.finished and self.failed is None and not self.concluded:
            self.concluded = True
            self.events.append(Concluded(self.outcome()))

    def _result_stages_done(self) -> bool:
        wanted = [n for n in self.setup.stages.run if n in RESULT_STAGES]
        done = [s.name for s in self.stages if s.name in RESULT_STAGES and s.status == "done"]
        return done == wanted

    def _choose_result(self, unfinished: Sequence[Node]) -> bool:
        spec = self.spec()
        if self.final is not None or spec is None or not self._result_stages_done():
            return False
        candidates = []
        for s in self.stages:
            if s.name in RESULT_STAGES and s.best is not None:
                values, seeds = s.candidate_values()
                candidates.append(Candidate(s.name, original(s.best, self.journal), values, seeds))
        best, choice = choose(candidates, spec)
        self.final = FinalEvaluation.plan(best.node, choice, self._baseline(), self.setup.seed_param,
                                          self.setup.stages.final_seeds, self.journal, unfinished)
        self.events.append(ResultChosen(self.final))
        return True

    def _baseline(self) -> Node | None:
        """The template's own code as it first ran (stage 1's first draft); None when template-free."""
        if not self.setup.base_code:
            return None
        return next((n for n in sorted(self.journal, key=lambda n: n.step)
                     if n.operator == "draft" and n.code == self.setup.base_code and not n.is_buggy), None)

    def pop_events(self) -> list[Any]:
        out, self.events = self.events, []
        return out

    def outcome(self) -> dict[str, Any]:
        """summary.json's `result` and `ablations` (None before the result is chosen)."""
        spec = self.spec()
        if self.final is None or spec is None:
            return {"result": None, "ablations": None}
        ablation = next((s for s in self.stages if isinstance(s, AblationPolicy)), None)
        return {"result": outcome.result_record(self.final, spec, self.journal),
                "ablations": None if ablation is None else outcome.ablation_records(ablation, self.final, spec,
                                                                                    self.journal)}

    def chosen(self) -> tuple[Node, dict[str, str]] | None:
        """The run's best node and the rule that chose it: the result once chosen; before, the choice of the last
        decided stage (every stage starts from the one before, so it carries the best forward), unless a node of
        the stage still searching beats it on the metric. The ablation stage never chooses."""
        spec = self.spec()
        if spec is None:
            return None
        if self.final is not None:
            return self.final.result, {"chosen_by": f"the run's result ({self.final.choice['chosen_by']})",
                                       "reason": self.final.choice["reason"]}
        decided = [s for s in self.stages if s.name in RESULT_STAGES and s.decision and s.decision.get("best")]
        chosen = decided[-1].best if decided else None
        searching = self.searching if self.searching and self.searching.name in RESULT_STAGES else None
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
