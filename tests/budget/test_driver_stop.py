"""The search loop when the budget stops it (engine/nodes/driver.py): no new proposal, the running nodes finish and
are recorded, the stage in progress stays undecided, and a resume with a larger budget continues it. A compute cap
refuses a node before it starts."""
from engine.nodes.driver import Driver, SearchState
from search.journal import Journal
from search.operators import Proposal, StopSearch
from stages.plan import StagePlan
from tests.engine.instant import InstantExecutor
from tests.engine.test_driver import SPEC, ran, tuning_driver


class Paying:
    """Writes `VALUE = 0.99, 0.98, ...` until `affordable` proposals are paid for, then the budget stops it."""

    name = "paying"

    def __init__(self, affordable: int):
        self.affordable, self.count = affordable, 0

    def _next(self, *args, **kw) -> Proposal:
        if self.count >= self.affordable:
            raise StopSearch("budget.max_usd=1 reached: ...")
        self.count += 1
        # below the start (1): no node completes the stage early, it runs to its budget
        return Proposal(f"set v{self.count}", f"VALUE = {1 - self.count / 100}", f"v{self.count}")

    draft = debug = improve = _next


def resumed(tmp_path, d: Driver, proposer) -> Driver:
    """A new driver over the first one's run directory, as a resume builds it."""
    state = SearchState(Journal(list(d.state.journal.nodes)), SPEC, next_step=d.state.next_step)
    fresh = tuning_driver(tmp_path, proposer, InstantExecutor(), budget=6)
    plan = StagePlan.resume(fresh.plan.setup, lambda: SPEC, state.journal, state.new_step,
                            lambda name: (d.plan.stages[0].record, None) if name == "initial" else (None, None),
                            d.run.load_pending())
    fresh.state, fresh.plan = state, plan
    return fresh


def test_a_budget_stop_ends_the_search_without_deciding_and_a_resume_continues(tmp_path):
    d = tuning_driver(tmp_path, Paying(affordable=2), InstantExecutor(), budget=6)
    d.search()
    tuning = d.plan.stages[1]
    assert d.stopped.startswith("budget.max_usd=1 reached")
    assert [n.change for n in ran(d)] == ["v1", "v2"]  # what was paid for ran and was recorded
    assert tuning.status == "search" and tuning.decision is None and not d.plan.finished
    assert not (tmp_path / "stages" / "tuning" / "search.json").exists()

    more = resumed(tmp_path, d, Paying(affordable=10))
    more.search(resumed=d.run.load_pending())
    assert more.stopped is None and more.plan.finished
    changes = sorted(n.change for n in more.state.journal if n.stage == "tuning" and n.operator == "improve")
    assert len(changes) == 6 and changes[:2] == ["v1", "v2"]  # the stage's budget of 6, the first two kept


def test_a_node_the_compute_budget_refuses_never_starts(tmp_path):
    executor = InstantExecutor()
    d = tuning_driver(tmp_path, Paying(affordable=10), executor, budget=6)
    started = []

    def admit(node):
        if len(started) >= 3:
            return "budget.max_gpu_hours=1 reached"
        started.append(node.id)
        return None

    d.admit = admit
    d.search()
    assert d.stopped == "budget.max_gpu_hours=1 reached" and len(executor.submitted) == 3
    assert len(ran(d)) == 3 and not d.plan.finished
    # a program written but refused waits in pending/ for the resume
    assert {n.id for n in d.run.load_pending()} - {n.id for n in ran(d)}
