"""The search loop: keep every slot busy, ask the policy for the next node whenever one finishes."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.executor import Executor
from engine.node_exec import NodeJob, NodeOutcome
from engine.rundir import RunDir
from search.journal import Journal
from search.judge import judge
from search.metric import MetricSpec
from search.node import Node
from search.operators import Proposer, propose
from search.policy import PolicyConfig, select_action

log = logging.getLogger(__name__)


@dataclass
class SearchState:
    """What the driver knows; `spec` may be None until the baseline tells which metric to use."""

    journal: Journal
    spec: MetricSpec | None
    next_step: int = 0


class Driver:
    def __init__(self, run: RunDir, state: SearchState, proposer: Proposer, policy: PolicyConfig,
                 executor: Executor, make_job: Callable[[Node], NodeJob], max_nodes: int, stage: str,
                 rng: random.Random, infer_spec: Callable[[Node], MetricSpec] | None = None,
                 on_change: Callable[[], None] | None = None):
        self.run, self.state, self.proposer, self.policy = run, state, proposer, policy
        self.executor, self.make_job, self.max_nodes, self.stage = executor, make_job, max_nodes, stage
        self.rng, self.infer_spec, self.on_change = rng, infer_spec, on_change or (lambda: None)
        self.pending: dict[str, Node] = {}
        self.started = time.monotonic()

    def search(self, resumed: list[Node] = ()) -> None:
        """Run until `max_nodes` nodes have finished. `resumed` nodes (unfinished at a crash) go first."""
        for node in resumed:
            self._submit(node)
        if self.state.spec is None and not self.state.journal and not self.pending:
            # the metric comes from the baseline: run it alone first
            self._submit(self._propose())
            while self.pending:
                self._collect(timeout_s=1.0)
        while len(self.state.journal) < self.max_nodes:
            while self.executor.in_flight() < self.executor.slots and \
                    len(self.state.journal) + len(self.pending) < self.max_nodes:
                self._submit(self._propose())
            self._collect(timeout_s=1.0)

    def _propose(self) -> Node:
        assert self.state.spec is not None or not self.state.journal
        spec = self.state.spec or MetricSpec("unknown")
        action = select_action(self.state.journal, list(self.pending.values()), self.policy, spec, self.rng)
        proposal = propose(self.proposer, self.state.journal, action, self.rng)
        node = Node(code=proposal.code, plan=proposal.plan, operator=action.operator,
                    parent_id=action.parent_id, stage=self.stage, step=self.state.next_step,
                    proposer=self.proposer.name)
        self.state.next_step += 1
        return node

    def _submit(self, node: Node) -> None:
        self.run.add_pending(node)
        self.pending[node.id] = node
        self.executor.submit(self.make_job(node))
        log.debug("submitted node %s (%s)", node.id, node.plan)

    def _collect(self, timeout_s: float) -> None:
        for outcome in self.executor.wait_any(timeout_s):
            self._finish(outcome)

    def _finish(self, outcome: NodeOutcome) -> None:
        node = self.pending.pop(outcome.node_id)
        node.finished_at = time.time()
        if self.state.spec is None:
            assert self.infer_spec is not None
            node.exec = outcome.result
            self.state.spec = self.infer_spec(node)
        judge(node, outcome.result, self.state.spec)
        node.analysis = _analysis(node, outcome, self.state.spec)
        self.run.record(node, outcome.artifacts)
        self.state.journal.add(node)
        self._report(node)
        self.on_change()

    def _report(self, node: Node) -> None:
        j, spec = self.state.journal, self.state.spec
        assert spec is not None
        best = j.best_node(spec)
        result = f"{spec.name}={node.metric:.4g}" if not node.is_buggy else f"buggy ({node.bug_reason[:80]})"
        best_txt = f"{best.metric:.4g} (node {best.step})" if best else "none yet"
        log.info("[%d/%d] node %d %-7s %s in %.0fs | running %d, good %d, buggy %d | best %s | %.1f min",
                 len(j), self.max_nodes, node.step, node.operator, result, node.exec.exec_time_s,
                 len(self.pending), len(j.good_nodes), len(j.buggy_nodes), best_txt,
                 (time.monotonic() - self.started) / 60)


def _analysis(node: Node, outcome: NodeOutcome, spec: MetricSpec) -> str:
    parts = []
    if node.is_buggy:
        parts.append(f"Buggy: {node.bug_reason}.")
    else:
        parts.append(f"Ran in {node.exec.exec_time_s:.0f}s; {spec.name} = {node.metric:.4g} ({spec.direction}).")
    if outcome.plot_error:
        parts.append(outcome.plot_error)
    return " ".join(parts)
