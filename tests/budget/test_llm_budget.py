"""The budget on the one call path (engine/llm/service.py) with the real SDK against the loopback server: calls go
through until the next could cross the cap; the refused call reaches no server and is not in the ledger; each
ledger row names its phase; a call that times out is counted at its bound, one refused with an error status is not."""
import dataclasses
import time

import pytest

from engine.budget.guard import Budget, BudgetExhausted
from engine.budget.settings import BudgetSettings
from engine.config import shipped_llm
from engine.llm.ledger import Ledger
from engine.llm.models import spec_from_dict
from engine.llm.service import LLM, LLMCallError
from tests.conftest import run_config
from tests.fake_llm_server import FakeLLMServer


def budget(tmp_path, **kw) -> Budget:
    return Budget(dataclasses.replace(run_config().section("budget", BudgetSettings), **kw), tmp_path)


def make(server, tmp_path, guard, timeout_s=10.0) -> LLM:
    spec = spec_from_dict({"name": "fake-model", "base_url": server.base_url, "max_output_tokens": 1000,
                           "prices": {"input": 1.0, "output": 2.0, "cached_input": 0.5}})
    return LLM({"code": spec}, shipped_llm(max_retries=0, timeout_s=timeout_s, max_tokens=1000),
               {"OPENAI_API_KEY": "test-key"}, Ledger(tmp_path, "t"), budget=guard)


def test_calls_go_through_until_the_next_could_cross_the_cap(tmp_path):
    guard = budget(tmp_path, max_usd=0.01)
    guard.phase = "experiments"
    with FakeLLMServer(responder=lambda p, b: {"text": "ok", "usage": {"input": 1000, "output": 1000}}) as server:
        llm = make(server, tmp_path, guard)
        made = 0
        with pytest.raises(BudgetExhausted, match="budget.max_usd=0.01 reached"):
            for _ in range(20):  # each call costs $0.003; its bound is about $0.002 (the prompt) + $0.002
                llm.ask("code", "", [{"role": "user", "content": "x" * 30}])
                made += 1
        assert made == len(server.requests) == 3  # $0.009 spent; a fourth could cross $0.01: not sent
        with pytest.raises(LLMCallError):  # (BudgetExhausted is one: the phases' fallbacks catch it as such)
            llm.ask("code", "", [{"role": "user", "content": "x"}])
        assert len(server.requests) == 3
    rows = Ledger(tmp_path, "t").rows()
    assert len(rows) == 3 and {r["phase"] for r in rows} == {"experiments"}
    assert guard.spent() == pytest.approx(sum(r["cost_usd"] for r in rows)) == pytest.approx(0.009)
    assert guard.summary()["by_phase"]["experiments"]["stopped"].startswith("budget.max_usd=0.01 reached")


def test_a_timed_out_call_counts_at_its_bound_and_an_error_status_costs_nothing(tmp_path):
    guard = budget(tmp_path)

    def slow(path, body):
        if "slow" in str(body["messages"]):
            time.sleep(1.5)
        return {"status": 500} if "fail" in str(body["messages"]) else {"text": "ok"}

    with FakeLLMServer(responder=slow) as server:
        llm = make(server, tmp_path, guard, timeout_s=0.5)
        with pytest.raises(LLMCallError):
            llm.ask("code", "", [{"role": "user", "content": "slow"}])
        with pytest.raises(LLMCallError):
            llm.ask("code", "", [{"role": "user", "content": "fail"}])
    timed_out, refused = Ledger(tmp_path, "t").rows()
    bound = 2 * 1 / 1e6 + 1000 * 2 / 1e6  # 4 characters (2 tokens at 3 per token, rounded up) and 1000 out
    assert timed_out["cost_estimated"] and timed_out["cost_usd"] == pytest.approx(bound)
    assert not refused["cost_estimated"] and refused["cost_usd"] == 0.0 and not refused["ok"]
    assert guard.spent() == pytest.approx(bound)


def test_a_connection_never_made_costs_nothing(tmp_path):
    guard = budget(tmp_path)
    spec = spec_from_dict({"name": "fake-model", "base_url": "http://127.0.0.1:9/v1",  # nothing listens there
                           "prices": {"input": 1.0, "output": 2.0}})
    llm = LLM({"code": spec}, shipped_llm(max_retries=0, timeout_s=5, max_tokens=1000), {"OPENAI_API_KEY": "k"},
              Ledger(tmp_path, "t"), budget=guard)
    with pytest.raises(LLMCallError, match="Connection"):
        llm.ask("code", "", [{"role": "user", "content": "hi"}])
    [row] = Ledger(tmp_path, "t").rows()
    assert row["cost_usd"] == 0.0 and not row["cost_estimated"] and guard.spent() == 0.0
