"""The search loop: keep every slot busy, ask the policy for the next node whenever one finishes.

No batch barrier: as soon as any node finishes, it is recorded and the policy picks the next one.
Proposals (an LLM call, for a model proposer) run on their own small thread pool, limited by
`proposal_concurrency`, so writing the next program overlaps running experiments.
"""
from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from engine import interrupt
from engine.errors import EngineError
from engine.executor import Executor
from engine.node_exec import NodeJob, NodeOutcome
from engine.rundir import RunDir
from search.journal import Journal
from search.judge import judge
from search.metric import MetricSpec
from search.node import ExecResult, Node
from search.operators import NothingLeft, Proposal, Proposer, StageBrief, propose
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
                 rng: random.Random, infer_spec: Callable[[Node], MetricSpec | None] | None = None,
                 on_finish: Callable[[Node, NodeOutcome], None] | None = None, proposal_concurrency: int = 1,
                 reviewer: Callable[[Node, NodeOutcome], tuple[bool, str]] | None = None,
                 brief: Callable[[Journal, list[Node]], StageBrief] | None = None,
                 should_stop: Callable[[Journal], str | None] | None = None, anchor: str | None = None):
        self.run, self.state, self.proposer, self.policy = run, state, proposer, policy
        self.brief, self.should_stop, self.anchor = brief, should_stop, anchor
        self.stop_reason: str | None = None  # set when the stage is complete before its budget
        self.stopped_by_rule = False  # the stage's completion rule ended it (not an exhausted proposer)
        self.executor, self.make_job, self.max_nodes, self.stage = executor, make_job, max_nodes, stage
        self.rng, self.infer_spec = rng, infer_spec
        self.on_finish = on_finish or (lambda node, outcome: None)
        self.proposals = ThreadPoolExecutor(max_workers=max(1, proposal_concurrency), thread_name_prefix="propose")
        self.reviewer = reviewer
        self.proposing: dict[Future, Node] = {}  # placeholders whose code is being written
        self.running: dict[str, Node] = {}
        self.reviewing: dict[Future, tuple[Node, NodeOutcome]] = {}  # finished runs awaiting feedback
        self.queued: list[Node] = []  # resumed nodes waiting for a free slot
        self.started = time.monotonic()
        self.overhead_s: list[float] = []  # per node: driver time from a result to its slot's next submission

    @property
    def pending(self) -> list[Node]:
        return list(self.proposing.values()) + list(self.running.values()) + \
            [node for node, _ in self.reviewing.values()] + self.queued

    def search(self, resumed: list[Node] = ()) -> None:
        """Run until `max_nodes` nodes have finished. `resumed` nodes (unfinished at a crash) go first: one that
        had finished running gets its feedback without running again; the others run as slots free."""
        try:
            for node in resumed:
                saved = self.run.load_run(node)
                if saved is None:
                    self.queued.append(node)
                    continue
                result, artifacts, plot_error = saved
                self.running[node.id] = node
                self._finish(NodeOutcome(node.id, result, artifacts, plot_error))
            self._check_stop()
            while self.pending or (self.stop_reason is None and len(self.state.journal) < self.max_nodes):
                interrupt.check()
                self._fill_slots()
                self._take_proposals()
                self._take_reviews()
                wait = 0.005 if self.proposing or self.reviewing else 1.0
                for outcome in self.executor.wait_any(wait):
                    t0 = time.perf_counter()
                    self._finish(outcome)
                    self._fill_slots()
                    self._take_proposals(block=True)
                    self.overhead_s.append(time.perf_counter() - t0)
        finally:
            # calls in flight end by their own timeout; a Ctrl-C must not wait for them
            self.proposals.shutdown(wait=False, cancel_futures=True)

    def _capacity(self) -> int:
        # until the baseline (template-free: the first working draft) has told which metric to use, it runs alone
        if self.state.spec is None:
            return 0 if self.proposing or self.running or self.reviewing else 1
        return self.executor.slots

    def _fill_slots(self) -> None:
        # resumed nodes first, as slots free
        while self.queued and len(self.proposing) + len(self.running) < self._capacity():
            self._submit(self.queued.pop(0))
        # runs awaiting feedback hold no slot; they still count against the node budget
        while self.stop_reason is None and len(self.proposing) + len(self.running) < self._capacity() and \
                len(self.state.journal) + len(self.pending) < self.max_nodes:
            spec = self.state.spec or MetricSpec("unknown")
            action = select_action(self.state.journal, self.pending, self.policy, spec, self.rng, self.anchor)
            brief = self.brief(self.state.journal, self.pending) if self.brief else None
            node = Node(code="", operator=action.operator, parent_id=action.parent_id, stage=self.stage,
                        step=self.state.next_step, proposer=self.proposer.name)
            self.state.next_step += 1
            # the proposer reads a snapshot: the journal keeps changing while it writes
            snapshot, rng = Journal(self.state.journal.nodes), random.Random(self.rng.random())
            fut = self.proposals.submit(propose, self.proposer, snapshot, action, rng, node, brief)
            self.proposing[fut] = node

    def _check_stop(self) -> None:
        if self.stop_reason is None and self.should_stop is not None:
            reason = self.should_stop(self.state.journal)
            self.stopped_by_rule = reason is not None
            self._stop(reason)

    def _stop(self, reason: str | None) -> None:
        """The stage is complete: write no new programs; running nodes finish and are kept."""
        if reason is None or self.stop_reason is not None:
            return
        self.stop_reason = reason
        log.info("stage %s complete: %s", self.stage, reason)
        for fut in list(self.proposing):
            fut.cancel()  # not run yet: nothing is lost (a model call in flight ends by itself)
            del self.proposing[fut]

    def _take_proposals(self, block: bool = False) -> None:
        """Submit nodes whose programs are written; with `block`, wait for the offline proposer's instant ones."""
        if block and self.proposing:  # at most 50 ms in all: enough for the offline proposer, short for a model
            wait(list(self.proposing), timeout=0.05, return_when=ALL_COMPLETED)
        for fut in list(self.proposing):
            if fut not in self.proposing or not fut.done():
                continue  # still being written, or dropped by a stage that completed meanwhile
            node = self.proposing.pop(fut)
            try:
                proposal: Proposal = fut.result()
            except EngineError:
                raise  # a configuration problem (a rejected key, a replay that does not match): stop the run
            except NothingLeft as e:
                self._stop(str(e))
                continue
            except Exception as e:  # noqa: BLE001 - a failed proposal is a buggy node, not a dead run
                log.warning("proposing node %d failed: %s", node.step, e)
                node.plan, node.code = f"{node.operator} (proposal failed)", ""
                self._record(node, NodeOutcome(node.id, ExecResult(
                    exc_type="ProposalFailed", exc_message=f"{type(e).__name__}: {e}", killed_reason="proposal")))
                continue
            node.plan, node.code, node.change = proposal.plan, proposal.code, proposal.change
            repeated = self._repeated_change(node)
            if repeated:
                self._record(node, NodeOutcome(node.id, ExecResult(
                    exc_type="RepeatedChange", exc_message=repeated, killed_reason="proposal")))
                continue
            self._submit(node)

    def _repeated_change(self, node: Node) -> str | None:
        """A stage that asks for named changes never runs one twice (proposals written in parallel may clash)."""
        if node.operator != "improve" or self.brief is None:
            return None
        kind = self.brief(self.state.journal, []).change_kind
        if kind is None:
            return None
        if not node.change:
            return f"the proposal names no {kind}"
        others = list(self.state.journal) + list(self.running.values())
        if any(n.change == node.change and n.operator in ("improve", "debug") for n in others):
            return f"{kind} {node.change!r} was already tried in this stage"
        return None

    def _submit(self, node: Node) -> None:
        self.run.add_pending(node)
        self.running[node.id] = node
        self.executor.submit(self.make_job(node))
        log.debug("submitted node %d: %s", node.step, node.plan)

    def _finish(self, outcome: NodeOutcome) -> None:
        node = self.running.pop(outcome.node_id)
        if self.state.spec is None:
            assert self.infer_spec is not None
            node.exec = outcome.result
            self.state.spec = self.infer_spec(node)  # None: template-free and no working program yet
        node.finished_at = time.time()
        judge(node, outcome.result, self.state.spec or MetricSpec("unknown"))
        node.analysis = _analysis(node, outcome, self.state.spec)
        if self.reviewer is None:
            self._record(node, outcome)
        else:
            self.run.save_run(node, outcome.result, outcome.artifacts, outcome.plot_error)
            self.reviewing[self.proposals.submit(self.reviewer, node, outcome)] = (node, outcome)

    def _take_reviews(self) -> None:
        for fut in [f for f in self.reviewing if f.done()]:
            node, outcome = self.reviewing.pop(fut)
            try:
                is_bug, analysis = fut.result()
            except EngineError:
                raise  # a configuration problem (a rejected key, a replay that does not match) stops the run
            except Exception as e:  # noqa: BLE001 - no feedback is not a buggy run
                log.warning("feedback on node %d failed: %s", node.step, e)
                node.analysis += f" (No model feedback: {e}.)"
            else:
                if is_bug and not node.is_buggy:
                    node.is_buggy, node.metric = True, None
                    node.bug_reason = f"ModelFeedback: {analysis[:300]}"
                node.analysis = f"{analysis} {node.analysis}"
            self._record(node, outcome)

    def _record(self, node: Node, outcome: NodeOutcome) -> None:
        if node.is_buggy is None and self.state.spec is None and self.infer_spec is not None:
            self.infer_spec(node)  # the baseline could not even be proposed: this raises with the reason
            # (template-free, it returns None: the next draft is tried)
        if node.is_buggy is None:  # never ran (its proposal failed)
            node.finished_at = time.time()
            judge(node, outcome.result, self.state.spec or MetricSpec("unknown"))
            node.analysis = _analysis(node, outcome, self.state.spec)
        artifacts = outcome.artifacts
        if outcome.runner:  # where it ran: host, Ray node, pid, GPUs, the engine copy the runner imported
            artifacts = artifacts | {"runner.json": json.dumps(outcome.runner, indent=1).encode()}
        self.run.record(node, artifacts)
        self.state.journal.add(node)
        self._report(node)
        self.on_finish(node, outcome)
        self._check_stop()

    def _report(self, node: Node) -> None:
        j, spec = self.state.journal, self.state.spec
        best = j.best_node(spec) if spec else None
        result = f"{spec.name}={node.metric:.4g}" if spec and not node.is_buggy else \
            f"buggy ({node.bug_reason[:80]})"
        best_txt = f"{best.metric:.4g} (node {best.step})" if best else "none yet"
        log.info("%s [%d/%d] node %d %-7s %s in %.0fs | running %d, good %d, buggy %d | best %s | %.1f min",
                 self.stage, len(j), self.max_nodes, node.step, node.operator, result, node.exec.exec_time_s,
                 len(self.running), len(j.good_nodes), len(j.buggy_nodes), best_txt,
                 (time.monotonic() - self.started) / 60)


def _analysis(node: Node, outcome: NodeOutcome, spec: MetricSpec | None) -> str:
    parts = []
    if node.is_buggy or spec is None:
        parts.append(f"Buggy: {node.bug_reason}.")
    else:
        parts.append(f"Ran in {node.exec.exec_time_s:.0f}s; {spec.name} = {node.metric:.4g} ({spec.direction}).")
    if outcome.plot_error:
        parts.append(outcome.plot_error)
    return " ".join(parts)
