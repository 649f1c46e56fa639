"""The search loop, the only one: keep every slot busy with whatever the stage plan asks for.

One loop submits, waits and records for the whole experiment phase. Programs are written on a small thread pool
ahead of need (up to `lookahead` proposals beyond the free slots, so a slot that frees takes a ready program at
once instead of waiting for the model); seed runs of a decided stage fill slots while the next stage searches;
finished runs get the model's feedback on the same pool; every result is recorded as it arrives (no batch barrier,
no stage barrier). What to run, and when a stage is over, is decided by the stage objects of stages/policy.py.
"""
from __future__ import annotations

import bisect
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from engine import interrupt
from engine.errors import EngineError
from engine.nodes.executor import Executor
from engine.nodes.node_exec import NodeJob, NodeOutcome
from engine.rundir import RunDir
from search import held_out
from search.journal import Journal
from search.judge import judge
from search.metric import MetricSpec
from search.node import RERUNS, ExecResult, Node
from search.operators import NothingLeft, Proposal, Proposer, StopSearch, propose
from stages.plan import StagePlan, Started
from stages.policy import StagePolicy

log = logging.getLogger(__name__)

Feedback = Callable[[Node, NodeOutcome], tuple[bool, str]]  # after a run: (is it buggy, what it shows)


@dataclass
class SearchState:
    """What the driver knows; `spec` may be None until the baseline tells which metric to use."""

    journal: Journal
    spec: MetricSpec | None
    next_step: int = 0

    def new_step(self) -> int:
        self.next_step += 1
        return self.next_step - 1


class Driver:
    def __init__(self, run: RunDir, state: SearchState, proposer: Proposer, executor: Executor,
                 make_job: Callable[[Node], NodeJob], plan: StagePlan, *, feedback: Feedback | None = None,
                 lookahead: int = 0, proposal_concurrency: int = 1,
                 infer_spec: Callable[[Node], MetricSpec | None] | None = None,
                 on_record: Callable[[Node, NodeOutcome], None] | None = None,
                 on_events: Callable[[list[Any]], None] | None = None, held_out: tuple[str, ...] = (),
                 admit: Callable[[Node], str | None] | None = None):
        self.run, self.state, self.proposer, self.executor, self.make_job = run, state, proposer, executor, make_job
        self.plan, self.feedback, self.lookahead, self.infer_spec = plan, feedback, max(0, lookahead), infer_spec
        self.on_record = on_record or (lambda node, outcome: None)
        self.on_events = on_events or (lambda events: None)
        # before a node starts: None, or why it may not (the run's compute budget), which stops the search
        self.admit = admit or (lambda node: None)
        self.stopped: str | None = None  # why the search winds down early (a budget): no new proposals
        self.pool = ThreadPoolExecutor(max_workers=max(1, proposal_concurrency), thread_name_prefix="propose")
        self.proposing: dict[Future, Node] = {}  # programs being written
        self.ready: list[Node] = []  # written, waiting for a slot
        self.running: dict[str, Node] = {}
        self.awaiting: dict[Future, tuple[Node, NodeOutcome]] = {}  # finished runs awaiting the model's feedback
        self.queued: list[Node] = []  # resumed nodes waiting for a slot
        self.deferred: list[tuple[Node, NodeOutcome]] = []  # finished before the metric was known
        self.free_slots = list(range(executor.slots))
        self.dropped: list[dict[str, Any]] = []  # written proposals whose basis changed before they could run
        self.started = time.monotonic()
        self.overhead_s: list[float] = []  # per result: driver time from its arrival to the slot's next submission
        self.held_out = held_out  # metrics the search never sees (search/held_out.py)

    # -- what is in flight -------------------------------------------------------------------------------
    def _unfinished(self) -> list[Node]:
        return list(self.proposing.values()) + self.ready + list(self.running.values()) + \
            [n for n, _ in self.awaiting.values()] + self.queued + [n for n, _ in self.deferred]

    def pending_of(self, stage: str) -> list[Node]:
        """The stage's search nodes handed out and not yet finished (they count against its budget)."""
        return [n for n in self._unfinished() if n.stage == stage and n.operator not in RERUNS]

    def _stage(self, name: str) -> StagePolicy | None:
        return next((s for s in self.plan.stages if s.name == name), None)

    # -- the loop ----------------------------------------------------------------------------------------
    def search(self, resumed: Sequence[Node] = ()) -> None:
        """Run the plan to its end. `resumed` nodes (unfinished at a crash): one that had finished running gets its
        feedback without running again; the others run as slots free (seed runs are re-issued by their stage)."""
        try:
            for node in resumed:
                if node.operator in RERUNS:
                    continue  # re-issued by their stage or by the final evaluation
                saved = self.run.load_run(node)
                if saved is None:
                    self.queued.append(node)
                    continue
                result, artifacts, plot_error = saved
                self.running[node.id] = node
                self._finish(NodeOutcome(node.id, result, artifacts, plot_error))
            self.plan.start()
            self._advance()
            while not self.plan.finished or self._unfinished():
                interrupt.check()
                self._take_proposals()
                self._take_feedback()
                self._sweep()
                self._refill()
                if not self._unfinished():
                    self._advance()
                    self._refill()
                    if not self._unfinished() and not self.plan.finished:
                        if self.stopped:
                            break  # the stages in progress stay undecided: a resume continues them
                        raise EngineError("the search has nothing to run and is not over (an engine fault): " +
                                          "; ".join(f"{s.name}: {s.status}" for s in self.plan.stages))
                    continue
                timeout = 0.005 if self.proposing or self.awaiting else 1.0
                for outcome in self.executor.wait_any(timeout):
                    t0 = time.perf_counter()
                    self._finish(outcome)
                    self._refill()
                    self.overhead_s.append(time.perf_counter() - t0)
        finally:
            # model calls in flight end by their own timeout; a Ctrl-C must not wait for them
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _refill(self) -> None:
        """Free slots take what is ready at once; then proposals are asked for (the free slots' and `lookahead`
        more), and when slots are still free, instant (offline) proposals get a moment to be written before seed
        runs take those slots."""
        self._fill(seeds=False)
        if self._top_up() and self._capacity() > 0:
            self._take_proposals(block=True)
        self._fill()

    def _capacity(self) -> int:
        return self.executor.slots - len(self.running)

    def _fill(self, seeds: bool = True) -> None:
        """Free slots take resumed nodes first, then written proposals, then seed runs of decided stages."""
        while self._capacity() > 0:
            node = self.queued.pop(0) if self.queued else self._next_ready()
            if node is None and seeds and self.state.spec is not None:
                node = self.plan.next_seed()
            if node is None:
                return
            why = self.admit(node)
            if why is not None:
                self._stop(why, keep=node)
                return
            self._submit(node)

    def _stop(self, why: str, keep: Node | None = None) -> None:
        """The run's budget is spent: nothing new is written or started; running nodes finish and are recorded.
        Programs already written wait in pending/ for a resume (a seed run is planned again by its stage)."""
        if self.stopped is None:
            self.stopped = why
            log.warning("=== the search stops: %s; running nodes finish and are recorded", why)
        for fut in [f for f in self.proposing if f.cancel()]:
            del self.proposing[fut]
        for node in self.queued + self.ready + ([keep] if keep is not None and keep.operator != "seed" else []):
            self.run.add_pending(node)
        self.queued, self.ready = [], []

    def _top_up(self) -> int:
        """Keep proposals being written for every free slot plus `lookahead` more; returns how many were asked."""
        stage, asked_for = self.plan.searching, 0
        if stage is None or self.stopped:
            return 0
        want = self._capacity() + self.lookahead - len(self.proposing) - len(self.ready)
        while want > 0:
            asked = stage.ask(self.pending_of(stage.name))
            if asked is None:
                break
            action, brief = asked
            node = Node(code="", operator=action.operator, parent_id=action.parent_id, stage=stage.name,
                        step=self.state.new_step(), proposer=self.proposer.name)
            # the proposer reads a snapshot: the stage's nodes keep changing while it writes
            snapshot, rng = Journal(stage.view.nodes), random.Random(stage.rng.random())
            self.proposing[self.pool.submit(propose, self.proposer, snapshot, action, rng, node, brief)] = node
            want, asked_for = want - 1, asked_for + 1
        return asked_for

    def _take_proposals(self, block: bool = False) -> None:
        """Written programs join the ready list; with `block`, wait briefly for instant (offline) proposals."""
        if block and self.proposing:  # at most 50 ms in all: enough for the offline proposer, short for a model
            wait(list(self.proposing), timeout=0.05, return_when=ALL_COMPLETED)
        for fut in [f for f in self.proposing if f.done()]:
            node = self.proposing.pop(fut)
            stage = self._stage(node.stage)
            try:
                proposal: Proposal = fut.result()
            except EngineError:
                raise  # a configuration problem (a rejected key, a replay that does not match): stop the run
            except NothingLeft as e:
                if stage is not None:
                    stage.nothing_left(str(e))
                continue
            except StopSearch as e:  # the run's budget: no call was made for this node
                self._stop(str(e))
                continue
            except Exception as e:  # noqa: BLE001 - a failed proposal is a buggy node, not a dead run
                log.warning("proposing node %d failed: %s", node.step, e)
                node.plan, node.code = f"{node.operator} (proposal failed)", ""
                self._record(node, NodeOutcome(node.id, ExecResult(
                    exc_type="ProposalFailed", exc_message=f"{type(e).__name__}: {e}", killed_reason="proposal")))
                continue
            node.plan, node.code, node.change = proposal.plan, proposal.code, proposal.change
            unnamed = stage.unnamed(node) if stage is not None else None
            if unnamed:
                self._record(node, NodeOutcome(node.id, ExecResult(
                    exc_type="UnnamedChange", exc_message=unnamed, killed_reason="proposal")))
                continue
            self.plan.prepare(node)
            if self.stopped:  # written (and paid for) after the stop: it runs on resume
                self.run.add_pending(node)
                continue
            self.ready.append(node)

    def _next_ready(self) -> Node | None:
        while self.ready:
            node = self.ready.pop(0)
            why = self._stale(node)
            if why is None:
                return node
            self._drop(node, why)
        return None

    def _stale(self, node: Node) -> str | None:
        stage = self._stage(node.stage)
        return "its stage is gone" if stage is None else stage.stale(node, list(self.running.values()))

    def _sweep(self) -> None:
        """Proposals of a stage that is complete are dropped now, not when a slot frees: the stage's decision
        waits for its pending nodes. Proposals not yet started are cancelled (no model call made)."""
        for fut, node in list(self.proposing.items()):
            stage = self._stage(node.stage)
            if stage is not None and (stage.status != "search" or stage.stopped_by_rule) and fut.cancel():
                del self.proposing[fut]
        for node in [n for n in self.ready if self._stale(n)]:
            self.ready.remove(node)
            self._drop(node, self._stale(node) or "")
        self._advance()

    def _drop(self, node: Node, why: str) -> None:
        log.info("dropped proposal %d (%s %s): %s", node.step, node.operator, node.change or "", why)
        self.dropped.append({"node_id": node.id, "step": node.step, "stage": node.stage, "why": why})
        self.run.record_dropped(node, why)

    def _submit(self, node: Node) -> None:
        node.submitted_at = time.time()
        node.slot = self.free_slots.pop(0) if self.free_slots else None
        self.run.add_pending(node)
        self.running[node.id] = node
        self.executor.submit(self.make_job(node))
        log.debug("submitted node %d on slot %s: %s", node.step, node.slot, node.plan)

    # -- results -----------------------------------------------------------------------------------------
    def _finish(self, outcome: NodeOutcome) -> None:
        node = self.running.pop(outcome.node_id)
        if node.slot is not None and node.slot not in self.free_slots:
            bisect.insort(self.free_slots, node.slot)
        node.finished_at = time.time()
        self._withhold(node, outcome)
        node.exec = outcome.result
        if self.state.spec is None and self.infer_spec is not None:
            self.state.spec = self.infer_spec(node)  # raises when the template's own code failed
            if self.state.spec is None and outcome.result.final_info is not None:
                self.deferred.append((node, outcome))  # a working draft, judged once the baseline names the metric
                return
            if self.state.spec is not None:
                waiting, self.deferred = self.deferred, []
                for n, o in waiting:
                    self._judged(n, o)
        self._judged(node, outcome)

    def _withhold(self, node: Node, outcome: NodeOutcome) -> None:
        """Held-out metrics leave the result before anything reads it; a final evaluation run keeps their values
        on the node (never in what a model or a decision reads)."""
        if not self.held_out:
            return
        result = outcome.result
        result.final_info, hidden = held_out.split(result.final_info, self.held_out)
        result.stdout_tail = held_out.redact(result.stdout_tail, self.held_out)
        result.stderr_tail = held_out.redact(result.stderr_tail, self.held_out)
        node.held_out = hidden if node.operator == "eval" else None
        for name in ("run_0/final_info.json", "stdout.txt", "stderr.txt"):
            if name in outcome.artifacts:
                outcome.artifacts[name] = _withheld_file(name, outcome.artifacts[name], self.held_out)

    def _judged(self, node: Node, outcome: NodeOutcome) -> None:
        judge(node, outcome.result, self.state.spec or MetricSpec("unknown"))
        node.analysis = _analysis(node, outcome, self.state.spec)
        if self.feedback is None or node.operator in RERUNS:
            self._record(node, outcome)
        else:
            self.run.save_run(node, outcome.result, outcome.artifacts, outcome.plot_error)
            self.awaiting[self.pool.submit(self.feedback, node, outcome)] = (node, outcome)

    def _take_feedback(self) -> None:
        for fut in [f for f in self.awaiting if f.done()]:
            node, outcome = self.awaiting.pop(fut)
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
        if node.is_buggy is None:  # never ran (its proposal failed)
            node.finished_at = time.time()
            judge(node, outcome.result, self.state.spec or MetricSpec("unknown"))
            node.analysis = _analysis(node, outcome, self.state.spec)
        artifacts = outcome.artifacts
        if outcome.runner:  # where it ran: host, Ray node, pid, GPUs, the engine copy the runner imported
            artifacts = artifacts | {"runner.json": json.dumps(outcome.runner, indent=1).encode()}
        self.run.record(node, artifacts)
        self.state.journal.add(node)
        self.plan.tell(node)
        self._report(node)
        self.on_record(node, outcome)
        self._advance()

    def _advance(self) -> None:
        """Let the plan decide stages whose search is over, start the next, finish those whose seeds are in."""
        self.plan.advance(self.pending_of, [n for n in self._unfinished() if n.operator in RERUNS])
        events = self.plan.pop_events()
        for ev in events:
            if isinstance(ev, Started) and ev.stage.start is not None:
                copy = ev.stage.start  # the previous stage's chosen node carried over with its results
                artifacts = self.run.read_artifacts(ev.copy_of) if ev.copy_of is not None else {}
                self.run.record(copy, artifacts)
                self.state.journal.add(copy)
                self.on_record(copy, NodeOutcome(copy.id, copy.exec, artifacts))
        if events:
            self.on_events(events)

    def _report(self, node: Node) -> None:
        spec, stage = self.state.spec, self._stage(node.stage)
        view = stage.view if stage is not None else self.state.journal
        best = view.best_node(spec) if spec else None
        result = f"{spec.name}={node.metric:.4g}" if spec and not node.is_buggy else \
            f"buggy ({node.bug_reason[:80]})"
        best_txt = f"{best.metric:.4g} (node {best.step})" if best else "none yet"
        budget = f"{len(stage.ran)}/{stage.budget}" if stage is not None and node.operator not in RERUNS else \
            node.operator
        log.info("%s [%s] node %d %-7s %s in %.0fs | running %d, ready %d, writing %d | best %s | %.1f min",
                 node.stage, budget, node.step, node.operator, result, node.exec.exec_time_s, len(self.running),
                 len(self.ready), len(self.proposing), best_txt, (time.monotonic() - self.started) / 60)


def _analysis(node: Node, outcome: NodeOutcome, spec: MetricSpec | None) -> str:
    parts = []
    if node.is_buggy or spec is None:
        parts.append(f"Buggy: {node.bug_reason}.")
    else:
        parts.append(f"Ran in {node.exec.exec_time_s:.0f}s; {spec.name} = {node.metric:.4g} ({spec.direction}).")
    if node.operator in RERUNS:
        parts.insert(0, f"{'Seed' if node.operator == 'seed' else 'Final evaluation'} run of node {node.parent_id}:")
    if outcome.plot_error:
        parts.append(outcome.plot_error)
    return " ".join(parts)


def _withheld_file(name: str, content: bytes, names: tuple[str, ...]) -> bytes:
    """A node's file as it is kept: final_info.json without the held-out metrics, logs without lines naming them."""
    text = content.decode("utf-8", errors="replace")
    if name.endswith(".json"):
        try:
            return json.dumps(held_out.split(json.loads(text), names)[0], indent=2).encode()
        except ValueError:
            return content
    return held_out.redact(text, names).encode()
