"""The driver's stage controls with an instant in-process executor: early completion, a proposer with nothing
left, and a repeated named change refused before it runs."""
import random
import threading

from engine.driver import Driver, SearchState
from engine.node_exec import NodeJob
from engine.rundir import RunDir
from engine.sandbox import SandboxConfig
from search.journal import Journal
from search.metric import MetricSpec
from search.node import Node
from search.operators import NothingLeft, Proposal, StageBrief
from search.policy import PolicyConfig
from tests.engine.instant import InstantExecutor

SPEC = MetricSpec("m", "maximize")


class ScriptedProposer:
    """Hands out (change, value) pairs in order; raises NothingLeft after them."""

    name = "scripted"

    def __init__(self, script):
        self.script, self.lock = list(script), threading.Lock()

    def _next(self, *args, **kw) -> Proposal:
        with self.lock:
            if not self.script:
                raise NothingLeft("the script is used up")
            change, value = self.script.pop(0)
        return Proposal(f"set {change}", f"VALUE = {value}", change)

    draft = debug = improve = _next


def driver(tmp_path, proposer, executor, max_nodes, kind=None, should_stop=None, concurrency=4):
    start = Node(code="VALUE = 1", operator="copy", metric=1.0, is_buggy=False)
    state = SearchState(Journal([start]), SPEC, next_step=1)
    brief = (lambda j, pending: StageBrief("tuning", change_kind=kind)) if kind else None
    return Driver(RunDir(tmp_path), state, proposer, PolicyConfig(num_drafts=1, debug_prob=0.0), executor,
                  lambda n: NodeJob(n.id, n.code, {}, SandboxConfig()), max_nodes, "tuning", random.Random(0),
                  proposal_concurrency=concurrency, brief=brief, should_stop=should_stop)


def test_nothing_left_ends_the_stage_while_other_proposals_are_in_flight(tmp_path):
    d = driver(tmp_path, ScriptedProposer([("a", 2), ("b", 3), ("c", 4)]), InstantExecutor(), max_nodes=10)
    d.search()
    assert d.stop_reason == "the script is used up"
    assert sorted(n.change for n in d.state.journal if n.operator != "copy") == ["a", "b", "c"]


def test_a_repeated_change_is_refused_and_never_run(tmp_path):
    ex = InstantExecutor()
    d = driver(tmp_path, ScriptedProposer([("lr", 2), ("lr", 5), ("wd", 3)]), ex, max_nodes=4,
               kind="hyperparameter", concurrency=1)
    d.search()
    nodes = sorted((n for n in d.state.journal if n.operator != "copy"), key=lambda n: n.step)
    assert [n.change for n in nodes] == ["lr", "lr", "wd"]
    refused = nodes[1]
    assert refused.is_buggy and refused.exec.exc_type == "RepeatedChange" and "already tried" in refused.bug_reason
    assert "VALUE = 5" not in ex.submitted  # the repeat never ran
    assert RunDir(tmp_path).load_nodes()[1].exec.exc_type == "RepeatedChange"  # and is on record


def test_should_stop_ends_the_stage_early(tmp_path):
    ex = InstantExecutor()
    stop = lambda j: "good enough" if any(n.metric and n.metric >= 3 for n in j) else None  # noqa: E731
    d = driver(tmp_path, ScriptedProposer([("a", 2), ("b", 3), ("c", 4), ("d", 5), ("e", 6)]), ex, max_nodes=10,
               should_stop=stop, concurrency=1)
    d.search()
    assert d.stop_reason == "good enough"
    assert "VALUE = 6" not in ex.submitted and len(d.state.journal) < 6
