"""A stage's decisions as a policy object (no engine): what it asks for, when it is complete, which node it hands
on and on what evidence, how stale proposals are judged."""
import pytest

from engine.config import shipped_policy, stages_config
from engine.errors import EngineError, TemplateError
from search.journal import Journal
from search.metric import MetricSpec
from search.node import ExecResult, Node
from stages.evaluation import Evidence
from stages.policy import PENDING, StagePolicy, StageSetup
from stages.spec import STAGE_NAMES, StageSettings

SPEC = MetricSpec("acc", "maximize")
CODE = "LR = 0.1\nSEED = 0\n"


def setup(noise_z=2.0, num_seeds=3, select=None, tolerance=0.0):
    settings = {n: StageSettings(n, max_nodes=4, offline_max_nodes=4, run_to_budget=False) for n in STAGE_NAMES}
    return StageSetup(stages_config(STAGE_NAMES, settings, num_seeds=num_seeds, noise_z=noise_z,
                                   tie_break_tolerance=tolerance),
                      shipped_policy(num_drafts=1, debug_prob=0.0), offline=True, critique=False, seed=0,
                      timeout_s=100.0, select=select)


def tuning(evidence, noise_z=2.0, values=(1.02,), budget_left=True):
    start = Node(code=CODE, operator="copy", stage="tuning", metric=1.0, is_buggy=False, step=0)
    policy = StagePolicy(setup(noise_z).stages.settings["tuning"], setup(noise_z), start, lambda: SPEC,
                         lambda: evidence, [start])
    for i, v in enumerate(values):
        policy.tell(Node(code=f"LR = {v}\nSEED = 0\n", operator="improve", parent_id=start.id, stage="tuning",
                         metric=v, is_buggy=False, change=f"p{i}", step=i + 1, exec=ExecResult(exit_code=0)))
    return policy, start


def test_a_gain_within_the_seed_spread_does_not_complete_tuning_and_is_not_handed_on():
    # the demo's case: 1325 against a start of 1417 +- 55 over 3 seeds was called a win; here 1.02 vs 1.01 +- 0.006
    evidence = Evidence(1.01, 0.0058, 3)
    policy, start = tuning(evidence)
    assert policy.stop_reason is None  # not complete: the gain is noise
    assert policy.ask([]) is not None  # so the stage goes on asking
    policy.budget = 1  # the budget is used
    assert policy.search_over([])
    assert policy.decide(Journal([start] + policy.ran))
    d = policy.decision
    assert d["completed"] is False and "noise of its seed evaluation" in d["why"]
    assert d["best"]["node_id"] == start.id and d["best"]["chosen_by"] == "seed spread"
    assert "within the noise" in d["best"]["reason"] and d["start_evidence"] == {"mean": 1.01, "stderr": 0.0058,
                                                                                 "n": 3}


def test_a_gain_above_the_noise_completes_tuning_and_says_on_what_evidence():
    policy, start = tuning(Evidence(1.01, 0.0058, 3), values=(1.2,))
    assert policy.stop_reason is not None and "noise margin" in policy.stop_reason
    assert policy.decide(Journal([start] + policy.ran))
    assert policy.decision["completed"] is True and policy.decision["best"]["chosen_by"] == "metric"
    assert "above the noise" in policy.decision["best"]["reason"]


def test_without_the_noise_rule_single_runs_decide():
    policy, _ = tuning(Evidence(1.01, 0.0058, 3), noise_z=0.0)
    assert policy.stop_reason is not None and "beats the starting node" in policy.stop_reason


def test_tuning_waits_for_the_start_seed_evaluation_before_declaring_or_deciding():
    policy, start = tuning(PENDING, values=(1.2,))
    assert policy.stop_reason is None  # evidence pending: not declared yet
    policy.budget = 1
    assert policy.search_over([]) and not policy.decide(Journal([start] + policy.ran))  # waits for the seeds


def test_a_stale_proposal_is_dropped_when_its_stage_completed_or_its_change_was_taken():
    policy, start = tuning(Evidence(1.01, 0.0058, 3), values=(1.02,))
    fresh = Node(code="x", operator="improve", parent_id=start.id, stage="tuning", change="p9")
    repeat = Node(code="y", operator="improve", parent_id=start.id, stage="tuning", change="p0")
    running = Node(code="z", operator="improve", parent_id=start.id, stage="tuning", change="p9")
    assert policy.stale(fresh, []) is None
    assert "taken meanwhile" in policy.stale(repeat, [])  # p0 finished while it was written
    assert "taken meanwhile" in policy.stale(fresh, [running])  # p9 started on another slot
    policy.nothing_left("no tunable left")
    assert policy.stale(fresh, []) is None  # what was written before the proposer ran dry still runs
    policy.stop_reason, policy.stopped_by_rule = "node 1 beats the start", True
    assert "completed while it was being written" in policy.stale(fresh, [])


def test_the_budget_counts_pending_nodes_and_the_metric_gates_parallel_drafts():
    s = setup()
    first = StagePolicy(s.stages.settings["initial"], s, None, lambda: None)
    draft = Node(code="", operator="draft", stage="initial")
    assert first.ask([]) is not None  # one draft while the metric is unknown (num_drafts=1)
    assert first.ask([draft]) is None
    known = StagePolicy(s.stages.settings["initial"], s, None, lambda: SPEC)
    assert known.ask([draft] * 3) is not None and known.ask([draft] * 4) is None  # budget 4


def test_a_failed_model_tie_break_leaves_the_choice_to_the_metric_but_a_user_error_stops_the_run():
    def policy_with(select):
        s = setup(noise_z=0.0, select=select, tolerance=0.5)
        start = Node(code=CODE, operator="copy", stage="tuning", metric=1.0, is_buggy=False, step=0)
        policy = StagePolicy(s.stages.settings["tuning"], s, start, lambda: SPEC, lambda: None, [start])
        for i, v in enumerate((1.02, 1.03)):
            policy.tell(Node(code=f"LR = {v}\n", operator="improve", parent_id=start.id, stage="tuning", metric=v,
                             is_buggy=False, change=f"p{i}", step=i + 1, exec=ExecResult(exit_code=0)))
        return policy, start

    def timeout(near, spec, name):
        raise TimeoutError("the model did not answer")

    policy, start = policy_with(timeout)
    assert policy.decide(Journal([start] + policy.ran))
    best = policy.decision["best"]
    assert best["chosen_by"] == "metric" and best["value"] == 1.03 and "tie-break failed: the model did not" in \
        best["reason"]
    for error in (EngineError("the API rejected the key in $OPENAI_API_KEY"), TemplateError("t", "f", "bad")):
        def rejected(near, spec, name, error=error):
            raise error
        policy, start = policy_with(rejected)
        with pytest.raises(EngineError):
            policy.decide(Journal([start] + policy.ran))
