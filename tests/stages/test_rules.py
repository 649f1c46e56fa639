"""Stage completion rules, briefs, failure accounts and the seed arithmetic (pure logic, no engine)."""
import math
import random

import pytest

from engine.config import shipped_policy, stages_config
from search.journal import Journal
from search.metric import MetricSpec
from search.node import ExecResult, Node
from search.offline import OfflineProposer, TunableSpec
from search.operators import NothingLeft, StageBrief
from search.policy import select_action
from stages import rules, seeds
from stages.spec import StageSettings

SPEC = MetricSpec("loss", "minimize")
CODE = "LR = 0.1\nUNITS = 8\nSEED = 0\nDROPOUT = 0.5\nprint(LR, UNITS, SEED, DROPOUT)\n"


def stage(name, **kw):
    return StageSettings(name, max_nodes=kw.pop("max_nodes", 5), offline_max_nodes=kw.pop("offline", 3),
                         **({"run_to_budget": False} | kw))


def node(metric=None, buggy=False, op="improve", parent=None, change="", valid=None, **ex):
    return Node(code=CODE, operator=op, parent_id=parent, metric=None if buggy else metric, is_buggy=buggy,
                change=change, plots_valid=valid, exec=ExecResult(**ex), bug_reason="E: boom" if buggy else "")


def test_initial_is_complete_once_a_node_works():
    j = Journal([node(buggy=True, op="draft")])
    assert rules.completion(stage("initial"), j, None, SPEC, critique=False) is None
    j.add(node(metric=2.0, op="draft"))
    assert "works" in rules.completion(stage("initial"), j, None, SPEC, critique=False)
    assert rules.completion(stage("initial", run_to_budget=True), j, None, SPEC, critique=False) is None


def test_tuning_needs_a_better_node_with_stable_curves_when_a_critic_judges():
    start = node(metric=1.0, op="copy")
    j = Journal([start])
    j.add(worse := node(metric=1.5, parent=start.id, change="lr", valid=True))
    assert rules.completion(stage("tuning"), j, start, SPEC, critique=True) is None
    j.add(node(metric=0.5, parent=start.id, change="units", valid=False))
    assert rules.completion(stage("tuning"), j, start, SPEC, critique=True) is None  # better, curves not stable
    reason = rules.completion(stage("tuning"), j, start, SPEC, critique=False)
    assert "units" in reason and "not judged" in reason  # without a vision model stability cannot be judged
    j.add(node(metric=0.8, parent=worse.id, change="dropout", valid=True))
    reason = rules.completion(stage("tuning"), j, start, SPEC, critique=True)
    assert "dropout" in reason and "judged stable" in reason
    # stages 3 and 4 run to their budget
    assert rules.completion(stage("agenda"), j, start, SPEC, critique=True) is None
    assert rules.completion(stage("ablations"), j, start, SPEC, critique=True) is None


def test_brief_counts_running_nodes_and_fixes_but_not_copies_or_seeds():
    start = node(metric=1.0, op="copy", change="")
    j = Journal([start, node(metric=1.0, parent=start.id, change="lr")])
    pending = [node(parent=start.id, change="units"), node(parent=start.id, op="seed", change="SEED=1")]
    b = rules.brief(stage("tuning"), j, pending, ("lr", "units", "dropout"))
    assert b.taken == {"lr", "units"} and b.change_kind == "hyperparameter" and "Stage 2 of 4" in b.goal
    assert rules.brief(stage("agenda"), j, pending).change_kind is None


def test_failure_account_names_causes_most_common_first():
    j = Journal([node(buggy=True, op="draft", exc_type="ValueError"),
                 node(buggy=True, op="draft", exc_type="ValueError"),
                 node(buggy=True, op="draft", killed_reason="timeout")])
    text = rules.failure_account(j, budget=3)
    assert text.splitlines()[0].startswith("no working node in 3 tries")
    assert "2 x ValueError" in text.splitlines()[1] and "1 x killed (timeout)" in text.splitlines()[2]


def test_scale_up_signal_only_for_short_runs():
    fast = node(metric=1.0, exec_time_s=30.0)
    assert "Scale up" in rules.scale_up_note(fast, timeout_s=3600, fraction=0.1)
    assert rules.scale_up_note(node(metric=1.0, exec_time_s=900.0), timeout_s=3600, fraction=0.1) == ""


def test_offline_tuning_never_repeats_a_name_and_says_when_none_is_left():
    tunables = {"LR": TunableSpec("LR", low=0.001, high=1.0, log=True), "UNITS": TunableSpec("UNITS", values=(4, 16))}
    prop = OfflineProposer(CODE, tunables)
    start = node(metric=1.0, op="copy")
    brief = StageBrief("tuning", change_kind="hyperparameter", taken=frozenset({"LR"}))
    p = prop.improve(Journal([start]), start, random.Random(0), brief=brief)
    assert p.change == "UNITS" and "UNITS" in p.plan and "LR = 0.1" in p.code
    with pytest.raises(NothingLeft, match="every tunable"):
        prop.improve(Journal([start]), start, random.Random(0), brief=StageBrief(
            "tuning", change_kind="hyperparameter", taken=frozenset({"LR", "UNITS"})))


def test_offline_ablations_in_declared_order_once_each():
    ablations = {"no_dropout": {"DROPOUT": 0.0}, "missing": {"NOT_THERE": 1}, "tiny": {"UNITS": 1}}
    prop = OfflineProposer(CODE, {"LR": TunableSpec("LR", values=(0.2,))}, ablations=ablations)
    start = node(metric=1.0, op="copy")
    taken = set()
    for expected in ("no_dropout", "tiny"):  # "missing" names a hyperparameter the code lacks: skipped
        p = prop.improve(Journal([start]), start, random.Random(0),
                         brief=StageBrief("ablations", change_kind="ablation", taken=frozenset(taken)))
        assert p.change == expected
        taken.add(p.change)
    with pytest.raises(NothingLeft, match="every ablation"):
        prop.improve(Journal([start]), start, random.Random(0),
                     brief=StageBrief("ablations", change_kind="ablation", taken=frozenset(taken)))
    # proposals written in parallel from one brief (nothing taken yet) still get different ablations
    fresh = OfflineProposer(CODE, {"LR": TunableSpec("LR", values=(0.2,))}, ablations=ablations)
    same = StageBrief("ablations", change_kind="ablation")
    first, second = (fresh.improve(Journal([start]), start, random.Random(0), brief=same) for _ in range(2))
    assert (first.change, second.change) == ("no_dropout", "tiny") and "DROPOUT = 0.0" in first.code


def test_anchor_makes_every_improvement_expand_the_start():
    start = node(metric=1.0, op="copy")
    j = Journal([start, better := node(metric=0.1, parent=start.id, change="a")])
    cfg = shipped_policy(num_drafts=1, debug_prob=0.0)
    assert select_action(j, [], cfg, SPEC, random.Random(0)).parent_id == better.id
    assert select_action(j, [], cfg, SPEC, random.Random(0), anchor=start.id).parent_id == start.id


def test_seed_variants_and_aggregation():
    assert seeds.seed_param(CODE, None) == "SEED" and seeds.seed_param(CODE, "NOPE") is None
    variants = seeds.seed_variants(CODE, "SEED", 3)
    assert [v for v, _ in variants] == [1, 2] and all(f"SEED = {v}" in c for v, c in variants)
    mean, stderr = seeds.mean_stderr([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0) and stderr == pytest.approx(1.0 / math.sqrt(3))
    assert seeds.mean_stderr([4.0]) == (4.0, None) and seeds.mean_stderr([]) == (None, None)
    agg = seeds.aggregate([{"g": {"means": {"a": 1.0, "b": 10.0}}}, {"g": {"means": {"a": 3.0}}}])
    assert agg["g/a"]["mean"] == pytest.approx(2.0) and agg["g/a"]["n"] == 2 and agg["g/b"]["stderr"] is None


def test_stages_config_rejects_gaps_and_bad_values():
    with pytest.raises(ValueError, match="prefix"):
        stages_config(run=("initial", "agenda"), settings={"initial": stage("initial"), "agenda": stage("agenda")})
    with pytest.raises(ValueError, match="num_seeds"):
        stages_config(run=("initial",), settings={"initial": stage("initial")}, num_seeds=0)
    with pytest.raises(ValueError, match="unknown stage"):
        StageSettings("tunning", 1, 1, False)
    assert stage("tuning", max_nodes=12, offline=4).budget(offline=True) == 4
    assert stage("tuning", max_nodes=2, offline=4).budget(offline=True) == 2
    assert stage("tuning", max_nodes=12, offline=4).budget(offline=False) == 12
