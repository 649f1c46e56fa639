"""The one loop with an instant in-process executor: a proposer with nothing left, a repeated named change dropped
before it runs (and its model cost labelled), early completion, proposals written ahead of free slots, slots."""
import threading
import time

import pytest

from engine.config import shipped_llm, shipped_policy, shipped_sandbox, stages_config
from engine.llm.ledger import Ledger, cost_summary
from engine.llm.models import spec_from_dict
from engine.llm.service import LLM, CallContext
from engine.nodes.driver import Driver, SearchState
from engine.nodes.node_exec import NodeJob
from engine.rundir import RunDir
from search.journal import Journal
from search.measures import slot_utilization
from search.metric import MetricSpec
from search.node import Node
from search.operators import NothingLeft, Proposal
from stages.plan import StagePlan
from stages.policy import StageSetup
from stages.spec import STAGE_NAMES, StageSettings
from tests.engine.instant import InstantExecutor
from tests.scripted_model import BASE_URL, ScriptedModel

SPEC = MetricSpec("m", "maximize")


class ScriptedProposer:
    """Hands out (change, value) pairs in order; raises NothingLeft after them; `latency` s per proposal."""

    name = "scripted"

    def __init__(self, script, latency=0.0):
        self.script, self.lock, self.latency = list(script), threading.Lock(), latency
        self.in_flight = self.most_in_flight = 0
        self.ready: dict[str, float] = {}

    def _next(self, *args, **kw) -> Proposal:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.latency)
        with self.lock:
            self.in_flight -= 1
            if not self.script:
                raise NothingLeft("the script is used up")
            change, value = self.script.pop(0)
            self.ready[f"VALUE = {value}"] = time.time()  # when the program was handed back, on the nodes' clock
        return Proposal(f"set {change}", f"VALUE = {value}", change)

    draft = debug = improve = _next


def tuning_driver(tmp_path, proposer, executor, budget=10, concurrency=4, lookahead=0, stages=("initial", "tuning")):
    """A run whose first stage is done: the tuning stage searches from a copy of its best node."""
    settings = {n: StageSettings(n, max_nodes=budget, offline_max_nodes=budget, run_to_budget=False)
                for n in STAGE_NAMES}
    setup = StageSetup(stages_config(tuple(stages), settings, num_seeds=1),
                       shipped_policy(num_drafts=1, debug_prob=0.0), offline=True, critique=False, seed=0,
                       timeout_s=10.0)
    base = Node(code="VALUE = 1", operator="draft", stage="initial", metric=1.0, is_buggy=False, step=0)
    copy = Node(code="VALUE = 1", operator="copy", stage="tuning", metric=1.0, is_buggy=False, step=1,
                copied_from=base.id)
    state = SearchState(Journal([base, copy]), SPEC, next_step=2)
    record = {"name": "initial", "best": {"node_id": base.id, "value": 1.0}, "seeds": {}, "completed": True,
              "why": "done before"}
    plan = StagePlan.resume(setup, lambda: SPEC, state.journal, state.new_step,
                            lambda name: (record, None) if name == "initial" else (None, None))
    sandbox = shipped_sandbox()
    return Driver(RunDir(tmp_path), state, proposer, executor,
                  lambda n: NodeJob(n.id, n.code, {}, sandbox, None, None, None), plan, lookahead=lookahead,
                  proposal_concurrency=concurrency)


def ran(d):
    return sorted((n for n in d.state.journal if n.stage == "tuning" and n.operator == "improve"), key=lambda n: n.step)


def test_nothing_left_ends_the_stage_while_other_proposals_are_in_flight(tmp_path):
    d = tuning_driver(tmp_path, ScriptedProposer([("a", 0.5), ("b", 0.7), ("c", 0.9)]), InstantExecutor())
    d.search()
    tuning = d.plan.stages[1]
    assert tuning.stop_reason == "the script is used up" and d.plan.finished
    assert sorted(n.change for n in ran(d)) == ["a", "b", "c"]


class ModelProposer(ScriptedProposer):
    """The scripted proposals, each written by one call of a real LLM (an in-process scripted model behind the
    engine's OpenAI provider, its calls in the run's ledger), tagged with the proposal's node as LLMProposer tags
    its calls; the k-th call reports 1000 x k input tokens, so every call has a cost of its own."""

    def __init__(self, script, llm):
        super().__init__(script)
        self.llm = llm

    def _next(self, journal, *args, **kw) -> Proposal:
        proposal = super()._next(journal, *args, **kw)  # NothingLeft at the script's end: no call made then
        target = [a for a in args if isinstance(a, Node)][-1]  # the node being written (after a parent, if any)
        self.llm.ask("code", "system", [{"role": "user", "content": "write it"}],
                     CallContext(target.id, target.step, target.stage))
        return proposal

    draft = debug = improve = _next


def test_a_repeated_change_is_dropped_never_run_and_its_cost_labelled(tmp_path):
    ex = InstantExecutor()
    spec = spec_from_dict({"name": "fake-model", "base_url": BASE_URL, "prices": {"input": 2.0, "output": 10.0}})
    with ScriptedModel() as model:
        model.script = [{"text": "ok", "usage": {"input": 1000 * k, "output": 0, "cached": 0}} for k in (1, 2, 3)]
        llm = LLM({"code": spec}, shipped_llm(max_retries=0), {"OPENAI_API_KEY": "k"}, Ledger(tmp_path, "run"),
                  providers=model.providers("code", spec=spec))
        d = tuning_driver(tmp_path, ModelProposer([("lr", 0.5), ("lr", 0.6), ("wd", 0.7)], llm), ex, budget=3,
                          concurrency=1)
        d.search()
    assert [n.change for n in ran(d)] == ["lr", "wd"]
    assert "VALUE = 0.6" not in ex.submitted  # the repeat never ran
    assert len(d.dropped) == 1 and "taken meanwhile" in d.dropped[0]["why"]
    run = RunDir(tmp_path)
    assert run.dropped_ids() == {d.dropped[0]["node_id"]}
    assert all(n.id != d.dropped[0]["node_id"] for n in run.load_nodes())  # not in the journal
    # what the experiments phase puts in summary.json: the ledger's calls, the dropped proposal's labelled so
    labels = cost_summary(llm.ledger.rows(), run.dropped_ids())["llm_by_label"]
    assert labels["dropped proposal"] == pytest.approx({  # the second call: 2000 tokens at 2 USD per million
        "cost_usd": 0.004, "calls": 1, "calls_with_unknown_price": 0, "input_tokens": 2000, "output_tokens": 0,
        "cached_tokens": 0})
    assert labels["code"]["cost_usd"] == pytest.approx(0.008) and labels["code"]["calls"] == 2  # 1000 + 3000 tokens


def test_the_stage_completion_rule_ends_the_search_early(tmp_path):
    ex = InstantExecutor()
    d = tuning_driver(tmp_path, ScriptedProposer([("a", 0.5), ("b", 3), ("c", 4), ("d", 5), ("e", 6)]), ex,
                      concurrency=1)
    d.search()
    tuning = d.plan.stages[1]
    assert "beats the starting node" in tuning.stop_reason and tuning.decision["completed"] is True
    assert "VALUE = 6" not in ex.submitted and len(ran(d)) < 5


class SlowExecutor(InstantExecutor):
    """Each run takes `run_s` of wall time (results come back in submission order)."""

    def __init__(self, run_s):
        super().__init__()
        self.run_s, self.due = run_s, []

    def submit(self, job):
        super().submit(job)
        self.due.append((time.monotonic() + self.run_s, self.done.pop()))

    def wait_any(self, timeout_s):
        if not self.due:
            return []
        when, outcome = self.due[0]
        time.sleep(max(0.0, min(timeout_s, when - time.monotonic())))
        if time.monotonic() < when:
            return []
        self.due.pop(0)
        return [outcome]


def test_proposals_are_written_ahead_so_a_freed_slot_does_not_wait_for_the_model(tmp_path):
    script = [(f"p{i}", 0.5 + i / 100) for i in range(8)]
    slow = ScriptedProposer(script, latency=0.2)
    d = tuning_driver(tmp_path, slow, SlowExecutor(0.3), budget=8, lookahead=2)
    d.search()
    assert slow.most_in_flight >= 3  # the free slots' proposals plus the ones ahead were written at once
    nodes = ran(d)
    # after the first round, each slot's next program was ready before the slot freed (written while the slot's
    # run went on), so no slot waited for the model: a fact of the order of events, not of how fast they were
    follows = []
    for slot in (0, 1):
        mine = sorted((n for n in nodes if n.slot == slot), key=lambda n: n.submitted_at)
        follows += [(slow.ready[b.code], a.finished_at, b.submitted_at) for a, b in zip(mine, mine[1:])]
    assert len(follows) == 6 and all(ready <= freed <= next_run for ready, freed, next_run in follows)
    assert {n.slot for n in nodes} == {0, 1}
    util = slot_utilization(nodes, 2, max(n.finished_at for n in nodes) - min(n.submitted_at for n in nodes))
    assert 0 < util <= 1
