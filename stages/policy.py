"""How each stage decides, as objects the driver consults (in the manner of a Ray Tune Searcher).

A `StagePolicy` is one stage: asked for the next node to propose (given what is pending), told each finished node,
it says when its search is over, which node it hands on (the metric, a model tie-break among near-equal nodes, and
the seed spread of its starting node), and which seed runs evaluate that node (evaluations, never parents).

Nothing here starts processes or writes files: the driver (engine/nodes/driver.py) runs whatever the plan
(stages/plan.py) asks for and hands its events (a stage started, decided, done) to the engine, which writes the
records.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine.errors import EngineError  # a leaf module: stages/ still imports nothing of Ray or the run directory
from search.journal import Journal
from search.metric import MetricSpec
from search.node import RERUNS, Node
from search.operators import StageBrief
from search.policy import Action, PolicyConfig, select_action
from stages import rules, seeds
from stages.evaluation import Evaluation, Evidence, seed_evaluation
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
    base_code: str = ""  # the template's own program (the baseline); "" when template-free


PENDING = "pending"  # the start's seed evaluation is still running


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
        self.seeds = Evaluation(None)  # the seed evaluation of the node it hands on, planned when decided
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

    def prepare(self, node: Node) -> None:
        """A written proposal, before it runs (the ablation stage sets its seed; the others leave it)."""

    def tell(self, node: Node) -> None:
        """A finished node of this stage (a search node or a seed run)."""
        if node.operator in RERUNS:
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
        self.seeds = seed_evaluation(best, journal, unfinished, self.setup.stages.num_seeds, self.setup.seed_param,
                                     self.name)

    def next_seed(self) -> Node | None:
        return self.seeds.next() if self.status == "seeding" else None

    def seeds_done(self, journal: Journal) -> bool:
        return self.status == "seeding" and self.seeds.done(journal)

    @property
    def seed_runs(self) -> list[Node]:
        return self.seeds.runs

    @property
    def seed_plan(self) -> dict[str, Any]:
        return self.seeds.plan

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

    def candidate_values(self) -> tuple[list[float], list[int]]:
        """The decided node's own run and its good seed runs, with their seeds (empty without a seed plan)."""
        best = self.best
        assert best is not None and best.metric is not None
        values, plan_seeds = [best.metric], list(self.seed_plan.get("seeds") or [])
        ok_seeds = plan_seeds[:1]
        for value, node in zip(plan_seeds[1:] or [None] * len(self.seed_runs), self.seed_runs):
            if not node.is_buggy and node.metric is not None:
                values.append(node.metric)
                if value is not None:
                    ok_seeds.append(value)
        return values, ok_seeds

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
