"""The projection before the first call (engine/budget/projection.py and each phase's calls.py): call counts from the
configured budgets, tokens per call from earlier runs' ledgers when there are enough, prices from the registry."""
import pytest

from engine.budget.projection import project
from engine.budget.settings import BudgetSettings
from engine.llm.ledger import CallRecord, Ledger
from tests.conftest import run_config


def lines(projection, phase, role):
    return [ln for ln in projection.lines if ln.phase == phase and ln.calls.role == role]


def test_the_experiments_calls_follow_the_stage_budgets_and_re_asks():
    cfg = run_config("model=claude-haiku-4-5")
    p = project(cfg, cfg.section("budget", BudgetSettings))
    [code] = lines(p, "experiments", "code")
    budgets = {n: cfg.stages.settings[n].max_nodes for n in cfg.stages.run}
    # at least: the drafts beside the free baseline, one tuning node, the agenda and ablation budgets
    assert code.calls.low == cfg.policy.num_drafts - 1 + 1 + budgets["agenda"] + budgets["ablations"]
    # at most: every budget, the proposals written ahead (one per slot and stage), each with a re-ask
    assert code.calls.high == (sum(budgets.values()) + cfg.cluster.slots * len(budgets)) * (1 + cfg.llm.reask)
    low, high = p.phase_usd("experiments")
    tokens = cfg.section("budget", BudgetSettings).tokens_per_call["code"]
    assert code.usd[0] == pytest.approx(code.calls.low * (tokens.input[0] * 1.0 + tokens.output[0] * 5.0) / 1e6)
    assert 0 < low < high and p.total_usd()[0] == pytest.approx(sum(p.phase_usd(ph)[0] for ph in p.phases))
    assert {ln.phase for ln in p.lines} == {"ideas", "experiments", "writeup", "review"}


def test_earlier_runs_in_the_runs_folder_give_the_tokens_per_call(tmp_path):
    earlier = Ledger(tmp_path / "runs" / "earlier", "earlier")
    for i, (tin, tout) in enumerate([(100, 10), (200, 20), (300, 30), (400, 40), (5000, 500)]):
        earlier.append(CallRecord("earlier", i, None, None, None, "code", "m", "openai", tin, tout, 0, 0.0, 1.0,
                                  True, None, False, 0.0))
    cfg = run_config("model=claude-haiku-4-5")
    p = project(cfg, cfg.section("budget", BudgetSettings), tmp_path / "runs", tmp_path / "runs" / "this")
    [code] = lines(p, "experiments", "code")
    assert (code.tokens.input, code.tokens.output) == ((300, 5000), (30, 500))  # median, 90th percentile
    assert "5 calls in the ledgers of 1 earlier runs" in p.tokens_source
    [feedback] = lines(p, "experiments", "feedback")  # too few feedback calls there: the defaults
    assert feedback.tokens == cfg.section("budget", BudgetSettings).tokens_per_call["feedback"]


def test_offline_projects_nothing_and_an_unpriced_model_projects_unknown():
    cfg = run_config()
    offline = project(cfg, cfg.section("budget", BudgetSettings))
    assert offline.lines == [] and offline.total_usd() == (0, 0)
    cfg = run_config("model.base_url=http://127.0.0.1:9/v1", "model.name=unpriced")
    p = project(cfg, cfg.section("budget", BudgetSettings))
    assert p.total_usd() is None and "unknown (no prices)" in p.text()


def test_a_dry_run_of_the_offline_main_job_shows_its_stage_budgets(tmp_path):
    from engine.budget.start import dry_run_text

    cfg = run_config()
    text = dry_run_text(cfg, project(cfg, cfg.section("budget", BudgetSettings)))
    budgets = ", ".join(f"{n} {cfg.stages.settings[n].budget(True)}" for n in cfg.stages.run)
    assert f"stages (node budget offline): {budgets}" in text
    assert "models: none (offline" in text and "projected cost: $0 (no model calls)" in text
