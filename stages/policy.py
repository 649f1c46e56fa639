"""How each stage decides, as objects the driver consults (in the manner of a Ray Tune Searcher).

A `StagePolicy` is one stage: asked for the next node to propose (given what is pending), told each finished node,
it says when its search is over, which node it hands on (the metric, a model tie-break among near-equal nodes, and
the seed spread of its starting node), and which seed runs evaluate that node. A `StagePlan` is the stages of a run
in order: stage N+1 starts from a copy of stage N's chosen node as soon as stage N's search is decided, while stage
N's seed runs are still to run (they are evaluations, never parents), so slots never drain at a stage boundary.

Nothing here starts processes or writes files: the driver (engine/nodes/driver.py) runs whatever the plan asks for and
hands the plan's events (a stage started, decided, done) to the engine, which writes the records.
"""
from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.errors import EngineError  # a leaf module: stages/ still imports nothing of Ray or the run directory
from search.journal import Journal
from search.metric import MetricSpec, MetricValue
from search.node import Node
from search.operators import StageBrief
from search.policy import Action, PolicyConfig, select_action
from stages import rules, seeds
from stages.spec import StagesConfig, StageSettings

Select = Callable[[list[Node], MetricSpec, str], tuple[Node, str]]  # the model tie-break: (chosen, reason)


@dataclass(frozen=True)
class StageSetup:
    """What every stage of a run shares."""

    stages: StagesConfig
    policy: PolicyConfig
    offline: bool
    critique: bool  # a vision model judges plots (the stage-2 stability check needs it)
    seed: int
    timeout_s: float
    tunables: tuple[str, ...] = ()  # names the template declares: suggestions for stage 2
    ablations: tuple[str, ...] = ()  # its ablation switches: suggestions for stage 4
    seed_param: str | None = None  # the manifest's seed hyperparameter (None: look for a usual name)
    select: Select | None = None  # the model tie-break, if a model is configured for it


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


PENDING = "pending"  # the start's seed evaluation is still running


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


class StagePolicy:
    """One stage: search (ask / tell until its completion rule or budget), decide, then its seed runs."""

    def __init__(self, settings: StageSettings, setup: StageSetup, start: Node | None,
                 spec: Callable[[], MetricSpec | None],
                 start_evidence: Callable[[], Evidence | str | None] = lambda: None, nodes: Sequence[Node] = ()):
        self.settings, self.setup, self.start, self._spec = settings, setup, start, spec
        self.name = settings.name
        self.start_evidence = start_evidence
        self.view = Journal(sorted(nodes, key=lambda n: n.step))  # the stage's search nodes and its start
        self.budget = settings.budget(setup.offline)
        self.policy = setup.policy if start is None else replace(setup.policy, num_drafts=1)  # the copy: one root
        self.rng = random.Random(f"{setup.seed}-{self.name}-{len(self.view)}")
        self.stop_reason: str | None = None  # the stage is complete before its budget (or nothing is left)
        self.stopped_by_rule = False
        self.status = "search"  # search -> seeding -> done
        self.decision: dict[str, Any] | None = None  # the decided best, the verdict, the evidence (search.json)
        self.seed_runs: list[Node] = []  # the seed evaluation's nodes (some may be reused from earlier stages)
        self.seed_plan: dict[str, Any] = {}  # param, asked, seeds, or "skipped"
        self._handed: set[str] = set()  # seed runs handed to the driver
        self.record: dict[str, Any] | None = None  # the finished stage's record (summary.json)

    # -- the search --------------------------------------------------------------------------------------
    @property
    def ran(self) -> list[Node]:
        return [n for n in self.view if n.operator != "copy"]

    def wants(self, pending: Sequence[Node]) -> bool:
        """Whether the stage would take another proposal now (`pending`: its search nodes not yet finished)."""
        if self.status != "search" or self.stop_reason is not None:
            return False
        if len(self.ran) + len(pending) >= self.budget:
            return False
        if self._spec() is None:  # the metric is not known yet: at most the first drafts run at once
            return len(pending) < self.policy.num_drafts
        return True

    def ask(self, pending: Sequence[Node]) -> tuple[Action, StageBrief] | None:
        """The next node to propose, or None while the stage wants none."""
        if not self.wants(pending):
            return None
        spec = self._spec() or MetricSpec("unknown")
        anchor = self.start.id if self.name == "ablations" and self.start is not None else None
        action = select_action(self.view, pending, self.policy, spec, self.rng, anchor)
        return action, self.brief(pending)

    def brief(self, pending: Sequence[Node] = ()) -> StageBrief:
        notes, spec = "", self._spec()
        if self.name == "agenda" and spec is not None:
            notes = rules.scale_up_note(self.view.best_node(spec), self.setup.timeout_s,
                                        self.setup.stages.scale_up_fraction)
        suggestions = {"tuning": self.setup.tunables, "ablations": self.setup.ablations}.get(self.name, ())
        return rules.brief(self.settings, self.view, pending, suggestions, notes)

    def stale(self, node: Node, running: Sequence[Node]) -> str | None:
        """Why a written proposal should not run now, or None. The rule: a proposal is dropped when its stage's
        search is over (complete, or decided meanwhile) or when the named change it makes was taken by a node
        that finished or started while it was being written; a proposal whose parent is no longer the stage's
        best is kept (it still improves a working node, and at most `search.lookahead` proposals are ahead)."""
        if self.status != "search":
            return f"stage {self.name} was decided while it was being written"
        if self.stopped_by_rule:  # (a proposer with nothing left leaves what it already wrote valid)
            return f"stage {self.name} completed while it was being written ({self.stop_reason})"
        kind = self.settings.change_kind
        if kind and node.change and node.operator == "improve":
            if any(n.change == node.change and n.operator in ("improve", "debug") and n.id != node.id
                   for n in list(self.view) + list(running)):
                return f"{kind} {node.change!r} was taken meanwhile"
        return None

    def unnamed(self, node: Node) -> str | None:
        """A stage that asks for named changes refuses an improvement that names none (a buggy proposal)."""
        kind = self.settings.change_kind
        if kind and node.operator == "improve" and not node.change:
            return f"the proposal names no {kind}"
        return None

    def nothing_left(self, reason: str) -> None:
        """The proposer has no untried named change left: the stage is complete."""
        if self.stop_reason is None:
            self.stop_reason, self.stopped_by_rule = reason, False

    def tell(self, node: Node) -> None:
        """A finished node of this stage (a search node or a seed run)."""
        if node.operator == "seed":
            return  # the seed runs are read from their nodes when all are in
        self.view.add(node)
        self.check()

    def check(self) -> None:
        """The completion rule, with the start's seed spread when it is known (re-checked as evidence arrives)."""
        spec = self._spec()
        if self.status != "search" or self.stop_reason is not None or spec is None:
            return
        evidence = self.start_evidence()
        if evidence == PENDING and self.name == "tuning":
            return  # "beats the start" is decided on the start's seed spread, which is still running
        reason = rules.completion(self.settings, self.view, self.start, spec, self.setup.critique,
                                  _known(evidence), self.setup.stages.noise_z)
        if reason is not None:
            self.stop_reason, self.stopped_by_rule = reason, True

    def search_over(self, pending: Sequence[Node]) -> bool:
        """Every search node has finished and no more will be asked for."""
        return self.status == "search" and not pending and not self.wants(pending)

    # -- the decision -------------------------------------------------------------------------------------
    def decide(self, journal: Journal, unfinished_seeds: Sequence[Node] = ()) -> bool:
        """Choose the node the stage hands on and its verdict, then plan its seed runs. False while the start's
        seed evaluation, which the decision rests on, is still running."""
        evidence = self.start_evidence()
        if evidence == PENDING:
            return False
        spec = self._spec()
        if spec is None:  # template-free and nothing ever worked: stage 1 failed
            self._decided(None, {}, None, False, rules.failure_account(self.view, self.budget), None)
            return True
        best, tie_break, choice = self._choose(spec, _known(evidence))
        completed, why = self._verdict(spec, _known(evidence))
        self._decided(best, choice, tie_break, completed, why, _known(evidence))
        if best is not None:
            self._plan_seeds(best, journal, unfinished_seeds)
        return True

    def _decided(self, best: Node | None, choice: dict[str, str], tie_break: str | None, completed: bool, why: str,
                 evidence: Evidence | None) -> None:
        self.decision = {
            "best": None if best is None else {"node_id": best.id, "step": best.step, "value": best.metric,
                                               "change": best.change, "plan": best.plan} | choice,
            "tie_break": tie_break, "completed": completed, "why": why,
            "start_evidence": None if evidence is None else {"mean": evidence.mean, "stderr": evidence.stderr,
                                                             "n": evidence.n},
        }
        self.status = "seeding"

    def restore(self, decision: dict[str, Any], journal: Journal, unfinished_seeds: Sequence[Node]) -> None:
        """A decision saved before a resume (search.json): its seed runs continue."""
        self.decision, self.status = decision, "seeding"
        best = decision.get("best")
        if best is not None and best["node_id"] in journal:
            self._plan_seeds(journal.get(best["node_id"]), journal, unfinished_seeds)

    @property
    def best(self) -> Node | None:
        b = self.decision and self.decision.get("best")
        return None if not b else self._node(b["node_id"])

    def _node(self, node_id: str) -> Node | None:
        if node_id in self.view:
            return self.view.get(node_id)
        return next((n for n in self.seed_runs if n.id == node_id), None)

    def _choose(self, spec: MetricSpec, evidence: Evidence | None) -> tuple[Node | None, str | None, dict[str, str]]:
        """(node handed on, the tie-break's account or None, which rule chose it and why)."""
        tolerance = self.setup.stages.tie_break_tolerance
        near = rules.near_best(self.view, spec, tolerance)
        if not near:
            return None, None, {}
        best, tie_break = near[0], None
        choice = {"chosen_by": "metric", "reason": f"the best {spec.name} of stage {self.name} ({best.metric:.6g})"}
        if len(near) >= 2 and self.setup.select is not None:
            try:
                best, reason = self.setup.select(near, spec, self.name)
            except EngineError:  # a problem the user must fix, such as a rejected key, stops the run
                raise
            except Exception as e:  # noqa: BLE001 - without the model's choice the metric decides
                choice["reason"] += f"; the model tie-break failed: {e}"
            else:
                tie_break = (f"the model chose node {best.step} among {len(near)} nodes within {tolerance:.0%} of "
                             f"the best: {reason}")
                choice = {"chosen_by": "model tie-break", "reason": tie_break}
        start = self.start
        if start is not None and best.id != start.id and evidence is not None and self.setup.stages.noise_z > 0:
            above, account = rules.beats(best, evidence, spec, self.setup.stages.noise_z)
            if not above:
                kept = (f"node {best.step} ({best.metric:.4g}) is within the noise of the starting node "
                        f"({account}), so the start is handed on")
                return start, tie_break, {"chosen_by": "seed spread", "reason": kept}
            choice["reason"] += f"; above the noise of the start ({account})"
        return best, tie_break, choice

    def _verdict(self, spec: MetricSpec, evidence: Evidence | None) -> tuple[bool, str]:
        """(completed, why): stages 1 and 2 are complete when their goal is met; 3 and 4 when they ran their course."""
        if self.name == "initial" and self.view.best_node(spec) is None:
            return False, rules.failure_account(self.view, self.budget)
        why = self.stop_reason or f"budget of {self.budget} nodes used ({len(self.ran)} ran)"
        if self.name in ("initial", "tuning"):
            goal = rules.completion(replace(self.settings, run_to_budget=False), self.view, self.start, spec,
                                    self.setup.critique, evidence, self.setup.stages.noise_z)
            if goal is None:
                noisy = evidence is not None and self.setup.stages.noise_z > 0
                noise = f" by more than the noise of its seed evaluation ({evidence.text()})" if noisy else ""
                return False, f"{why}; no node beat the starting node{noise}" + (
                    " with curves judged stable" if self.setup.critique else "")
            return True, goal if self.stopped_by_rule else f"{why}; {goal}"
        return True, why

    # -- the seed evaluation ------------------------------------------------------------------------------
    def _plan_seeds(self, best: Node, journal: Journal, unfinished: Sequence[Node]) -> None:
        asked = self.setup.stages.num_seeds
        if asked <= 1:
            self.seed_plan = {"skipped": "stages.num_seeds=1", "asked": 1}
            return
        declared = self.setup.seed_param
        param = seeds.seed_param(best.code, declared)
        if param is None:
            self.seed_plan = {"asked": asked, "skipped": (
                f"the best node's code has no seed parameter {declared}" if declared else
                f"the best node's code has no seed parameter (one of {', '.join(seeds.SEED_NAMES)}; declare "
                "seed_param in the template's manifest.yaml)")}
            return
        try:
            variants = seeds.seed_variants(best.code, param, asked)
        except ValueError as e:
            self.seed_plan = {"skipped": str(e), "asked": asked}
            return
        # a seed run of the same program in an earlier stage (the copy stayed best) is reused, not run again
        done = {n.code: n for n in journal if n.operator == "seed" and not n.is_buggy}
        waiting = {n.code: n for n in unfinished if n.operator == "seed"}
        for value, code in variants:
            node = done.get(code) or waiting.get(code)
            if node is None:
                node = Node(code=code, operator="seed", parent_id=best.id,
                            stage=self.name, step=-1, proposer="seed evaluation", change=f"{param}={value}",
                            plan=f"Node {best.step} again with {param}={value} (multi-seed evaluation).")
            if node.id in journal:
                self._handed.add(node.id)
            self.seed_runs.append(node)
        self.seed_plan = {"param": param, "asked": asked, "own_seed": seeds.seed_value(best.code, param),
                          "seeds": [seeds.seed_value(best.code, param)] + [v for v, _ in variants]}

    def next_seed(self) -> Node | None:
        if self.status != "seeding":
            return None
        node = next((n for n in self.seed_runs if n.id not in self._handed), None)
        if node is not None:
            self._handed.add(node.id)
        return node

    def seeds_done(self, journal: Journal) -> bool:
        return self.status == "seeding" and all(n.id in journal for n in self.seed_runs)

    def evidence(self, journal: Journal) -> Evidence | str | None:
        """This stage's seed evaluation of the node it hands on, as the next stage's start evidence."""
        if self.status == "search":
            return PENDING
        if self.status == "seeding" and not self.seeds_done(journal):
            return PENDING
        best, spec = self.best, self._spec()
        if best is None or spec is None or not self.seed_runs:
            return None
        values = [best.metric] + [n.metric for n in self.seed_runs if not n.is_buggy]
        mean, stderr = seeds.mean_stderr(values)
        return None if stderr is None or mean is None else Evidence(mean, stderr, len(values))

    def summary_row(self) -> dict[str, Any]:
        """The stage's line in summary.json while it runs or after."""
        if self.record is not None:
            return {k: self.record.get(k) for k in ("name", "title", "nodes", "best_value", "seed_mean",
                                                     "seed_stderr", "completed", "why")}
        d = self.decision or {}
        best = d.get("best")
        return {"name": self.name, "title": self.settings.title, "nodes": len(self.ran),
                "best_value": best["value"] if best else None, "seed_mean": None, "seed_stderr": None,
                "completed": d.get("completed"), "why": d.get("why") or ("running" if self.status == "search" else
                                                                          "seed runs running")}


def _known(evidence: Evidence | str | None) -> Evidence | None:
    return evidence if isinstance(evidence, Evidence) else None


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
                policy.seed_runs = [journal.get(i) for i in (record.get("seeds") or {}).get("node_ids", [])[1:]
                                    if i in journal]
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
