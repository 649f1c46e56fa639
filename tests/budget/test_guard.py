"""The budget's check before every call and every node (engine/budget/guard.py), its settings and the start-up
refusals: a cap is never crossed by a call it let through, what was spent before a resume counts, a bad cap or a
model without prices is refused naming the key."""
import dataclasses
import math

import pytest

from engine.budget.compute import ComputeLedger
from engine.budget.guard import Budget, BudgetExhausted
from engine.budget.settings import BudgetSettings
from engine.errors import EngineError
from engine.llm.models import Prices, spec_from_dict
from engine.llm.providers import Request
from search.node import ExecResult, Node
from search.operators import StopSearch
from tests.conftest import run_config

SPEC = dataclasses.replace(spec_from_dict({"name": "m", "base_url": "http://x/v1"}), prices=Prices(1.0, 2.0, 0.5),
                           max_output_tokens=1000)


def settings(**kw) -> BudgetSettings:
    return dataclasses.replace(run_config().section("budget", BudgetSettings), **kw)


def req(chars: int = 3000, max_tokens: int = 1000) -> Request:
    return Request(system="", messages=[{"role": "user", "content": "x" * chars}], max_tokens=max_tokens)


def test_the_bound_of_a_call_is_its_input_and_its_whole_output_limit(tmp_path):
    b = Budget(settings(), tmp_path)
    # 3000 characters at 3 per token: 1000 input tokens at $1/M, 1000 output tokens (the model's limit) at $2/M
    assert b.bound(SPEC, req(3000, max_tokens=5000)) == pytest.approx((1000 * 1 + 1000 * 2) / 1e6)
    images = Request(system="", messages=[{"role": "user", "content": "", "images": [b"png", b"png"]}],
                     max_tokens=10)
    assert b.bound(SPEC, images) == pytest.approx((2 * 1600 * 1 + 10 * 2) / 1e6)
    assert b.bound(dataclasses.replace(SPEC, prices=Prices()), req()) is None


def test_a_call_that_could_cross_the_cap_is_refused_and_calls_in_flight_count(tmp_path):
    b = Budget(settings(max_usd=0.01), tmp_path)  # each call's bound: $0.003
    b.phase = "experiments"
    t1, t2, t3 = (b.reserve("code", SPEC, req()) for _ in range(3))  # $0.009 in flight
    with pytest.raises(BudgetExhausted, match=r"budget.max_usd=0.01 reached") as refused:
        b.reserve("code", SPEC, req())
    assert isinstance(refused.value, StopSearch)  # the search treats it as "stop proposing"
    for t in (t1, t2, t3):
        b.settle(t, 0.001)  # what the calls really cost
    assert b.spent() == pytest.approx(0.003)
    b.settle(b.reserve("code", SPEC, req()), 0.002)  # room again: $0.003 + $0.003 <= $0.01
    assert b.spent() == pytest.approx(0.005)
    s = b.summary()
    assert s["stopped"] and "budget.max_usd=0.01" in s["why"] and s["by_phase"]["experiments"]["stopped"]


def test_a_phase_cap_stops_its_phase_only(tmp_path):
    b = Budget(settings(phase_max_usd={"review": 0.004}), tmp_path)
    b.phase = "review"
    b.settle(b.reserve("review", SPEC, req()), 0.002)
    with pytest.raises(BudgetExhausted, match="budget.phase_max_usd.review=0.004"):
        b.reserve("review", SPEC, req())
    b.phase = "writeup"
    b.settle(b.reserve("writeup", SPEC, req()), 0.003)  # another phase spends on
    assert b.stopped_in("review") and b.stopped_in("writeup") is None
    assert b.remaining("review") == pytest.approx(0.002) and b.remaining("writeup") == math.inf


def test_what_a_run_spent_before_a_resume_counts_and_replayed_calls_do_not(tmp_path):
    rows = [{"phase": "ideas", "cost_usd": 0.006, "replayed": False},
            {"phase": "experiments", "cost_usd": 0.5, "replayed": True}]
    b = Budget(settings(max_usd=0.01), tmp_path, rows)
    assert b.spent() == pytest.approx(0.006)
    with pytest.raises(BudgetExhausted):
        b.reserve("code", SPEC, req(chars=9000))  # $0.005 bound + $0.006 spent: over


def test_gpu_hours_are_counted_per_node_and_a_node_that_could_cross_the_cap_is_refused(tmp_path):
    b = Budget(settings(max_gpu_hours=1.0), tmp_path)
    assert b.admit_node("a", 0.5, 3600) is None  # 0.5 GPU-hours at its time limit
    assert b.admit_node("cpu", 0.0, 1e9) is None  # a CPU node needs no GPU-hours
    node = Node(code="", operator="improve", stage="tuning", step=3, exec=ExecResult(exec_time_s=1700))
    node.id, node.submitted_at, node.finished_at = "a", 1000.0, 1000.0 + 1800  # half an hour held
    b.node_done(node, cpus=2.0, gpu_share=0.5)
    assert b.admit_node("b", 0.5, 3600) is None  # 0.25 used + 0.5
    why = b.admit_node("c", 0.5, 3600)  # 0.25 used + 0.5 held by b + 0.5: over
    assert why and "budget.max_gpu_hours=1" in why
    rows = ComputeLedger(tmp_path).rows()
    assert [(r["kind"], r["gpu_hours"], r["cpu_hours"]) for r in rows] == [("gpu", 0.25, 1.0)]
    assert b.compute_summary()["node_hours"] == {"gpu": 0.5}


@pytest.mark.parametrize("override, message", [
    ("budget.max_usd=-1", "budget.max_usd=-1: must be a number > 0, or null (no cap)"),
    ("budget.max_usd=lots", "budget.max_usd='lots': must be a number > 0, or null (no cap)"),
    ("budget.phase_max_usd.review=0", "budget.phase_max_usd.review=0: must be a number > 0, or null (no cap of its "
                                      "own)"),
    ("budget.max_gpu_hours=true", "budget.max_gpu_hours=true: must be a number > 0, or null (no cap)"),
])
def test_a_bad_cap_is_refused_naming_the_key(override, message):
    with pytest.raises(EngineError) as e:
        run_config(override)
    assert str(e.value) == "bad config value: " + message


def test_a_model_without_prices_under_a_cap_is_refused_at_start_up(tmp_path):
    from engine.budget.start import open_budget

    cfg = run_config("model.base_url=http://127.0.0.1:9/v1", "model.name=unpriced", "budget.max_usd=5")
    with pytest.raises(EngineError, match=r"no prices known for unpriced: set model.prices.\* .*remove "
                                          r"budget.max_usd"):
        open_budget(cfg, tmp_path / "run")
    cfg = run_config("model.base_url=http://127.0.0.1:9/v1", "model.name=unpriced")  # no cap: costs are unknown
    assert open_budget(cfg, tmp_path / "run").summary()["max_usd"] is None


def test_a_cap_smaller_than_one_call_is_refused_with_the_projection(tmp_path):
    from engine.budget.start import open_budget

    cfg = run_config("model=claude-haiku-4-5", "budget.max_usd=0.01", "llm.max_tokens=8192")
    with pytest.raises(EngineError, match=r"budget.max_usd=0.01 is smaller than one call: .* up to 8192 output "
                                          r"tokens(.|\n)*projected cost of the model calls"):
        open_budget(cfg, tmp_path / "run")
    assert open_budget(run_config("model=claude-haiku-4-5", "budget.max_usd=0.1"), tmp_path / "ok").settings
