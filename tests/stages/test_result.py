"""What a run claims: the result chosen on seed means and measured on fresh seeds, ablations as paired effects, a
program without a seed parameter reported as a single run, a resume inside the final evaluation."""
import json
import re

import pytest

from engine.errors import EngineError
from engine.nodes.node_exec import NodeOutcome  # noqa: I001 - after the harness it extends
from engine.rundir import RunDir
from search.journal import Journal
from search.metric import MetricSpec
from search.node import ExecResult, Node
from stages import effects
from stages.result import Candidate, choose, fresh_seeds
from tests.conftest import run_config
from tests.engine.instant import InstantExecutor
from tests.engine.test_stage_plan import IdExecutor, Run


class LuckyExecutor(InstantExecutor):
    """VALUE + SEED/100, except two lucky programs: VALUE = 3.0 scores 13 on seed 0 and -7 on every other seed;
    VALUE = 0.5 (an ablation) scores 100 on the first fresh seed (3) only."""

    def submit(self, job):
        value = float(re.search(r"VALUE = (\S+)", job.code).group(1))
        seed = int(re.search(r"SEED = (\d+)", job.code).group(1))
        score = value + seed / 100
        if value == 3.0:
            score += 10 if seed == 0 else -10
        if value == 0.5 and seed == 3:
            score += 100
        self.done.append(NodeOutcome(job.node_id, ExecResult(exit_code=0, final_info={"g": {"means": {"m": score}}})))


def final_record(path):
    return json.loads((path / "final" / "summary.json").read_text())


def test_a_lucky_single_run_is_refuted_by_its_seeds_and_a_lucky_ablation_stays_an_ablation(tmp_path):
    r = Run(tmp_path, executor=LuckyExecutor(), noise_z=0.0)  # single runs decide inside the stages
    records = r.go()
    journal = r.state.journal
    lucky = next(n for n in journal if n.operator == "improve" and "VALUE = 3.0" in n.code and n.stage == "tuning")
    assert lucky.metric == 13.0 and records[1]["best"]["node_id"] == lucky.id  # tuning handed the lucky node on
    out = final_record(tmp_path)
    result = out["result"]
    # chosen on the seed means: the lucky node's seeds say (13 - 6.99 - 6.98) / 3, below initial's 2.01
    assert result["node_id"] != lucky.id and "VALUE = 2.0" in journal.get(result["node_id"]).code
    assert result["chosen_by"] == "seed means" and result["stage"] == "initial"
    tuning = next(c for c in result["candidates"] if c["stage"] == "tuning")
    assert tuning["mean"] == pytest.approx((13 - 6.99 - 6.98) / 3) and tuning["n"] == 3
    # measured on fresh seeds no decision used, with the baseline on the same seeds
    assert result["selection_seeds"] == [0, 1, 2] and result["seeds"] == [3, 4, 5]
    assert not set(result["seeds"]) & set(result["selection_seeds"])
    assert result["mean"] == pytest.approx(2.04) and result["n"] == 3 and result["ci95"][0] < 2.04 < result["ci95"][1]
    assert result["baseline"]["mean"] == pytest.approx(1.04) and result["improvement"]["significant"]
    assert result["improvement"]["text"].startswith("better than the baseline")
    evals = [n for n in journal if n.operator == "eval"]
    used = {int(m) for n in journal if n.operator != "eval" for m in re.findall(r"SEED = (\d+)", n.code)
            if n.stage != "ablations"}
    assert {int(re.search(r"SEED = (\d+)", n.code).group(1)) for n in evals} == {3, 4, 5} and not used & {3, 4, 5}
    # the ablation that scored 100 on one run is an ablation, with its paired effect: no clear effect
    half = next(a for a in out["ablations"] if a["change"] == "half")
    assert half["n"] == 3 and half["mean"] == pytest.approx((100.53 + 0.54 + 0.55) / 3)
    assert half["verdict"] == "no clear effect" and half["ci95_delta"][0] < 0 < half["ci95_delta"][1]
    zero = next(a for a in out["ablations"] if a["change"] == "zero")
    assert zero["delta"] == pytest.approx(-2.0) and zero["verdict"] == "hurts"
    assert journal.get(half["node_id"]).stage == "ablations" and result["node_id"] != half["node_id"]
    node, choice = r.plan.chosen()
    assert node.id == result["node_id"] and "the run's result" in choice["chosen_by"]


def test_a_program_without_a_seed_parameter_is_reported_as_a_single_run(tmp_path):
    r = Run(tmp_path, base="VALUE = 1.0\nprint(VALUE)\n")
    r.go()
    out = final_record(tmp_path)
    result = out["result"]
    assert result["n"] == 1 and result["single_run"] == "single run, not repeated" and result["ci95"] is None
    assert result["seeds"] == [] and not [n for n in r.state.journal if n.operator == "eval"]
    assert all(a["n"] == 1 and a["verdict"] == "no clear effect" for a in out["ablations"])


def test_the_final_evaluation_resumes_without_running_a_finished_node_again(tmp_path):
    first = Run(tmp_path, executor=IdExecutor())
    with pytest.raises(KeyboardInterrupt):
        first.go(stop_after=20)  # the result is chosen and its fresh runs are under way
    saved = json.loads((tmp_path / "final" / "search.json").read_text())
    finished = {n.id for n in RunDir(tmp_path).load_nodes()}
    assert any(n.operator == "eval" for n in RunDir(tmp_path).load_nodes())
    assert not (tmp_path / "final" / "summary.json").exists()
    second = Run(tmp_path, executor=IdExecutor())
    second.go()
    assert not finished & set(second.executor.ids)  # nothing finished ran again
    result = final_record(tmp_path)["result"]
    assert result["node_id"] == saved["result"] and result["seeds"] == saved["fresh_seeds"] and result["n"] == 3
    evals = [n for n in second.state.journal if n.operator == "eval"]
    assert len({n.code for n in evals}) == len(evals)  # no fresh run twice


def test_choice_prefers_the_earlier_stage_on_a_tie_and_fresh_seeds_lie_above_every_seed_used():
    spec = MetricSpec("m", "maximize")
    a, b = Node(code="SEED = 0\n", step=1), Node(code="SEED = 7\n", step=5)
    best, choice = choose([Candidate("initial", a, [1.0, 2.0], [0, 1]), Candidate("tuning", b, [2.0, 1.0], [7, 8])],
                          spec)
    assert best.node is a and choice["chosen_by"] == "seed means" and choice["selection_seeds"] == [0, 1]
    assert fresh_seeds(Journal([a, b]), "SEED", 3) == [8, 9, 10]
    minimise = MetricSpec("m", "minimize")
    assert choose([Candidate("initial", a, [3.0], []), Candidate("agenda", b, [2.0], [])], minimise)[0].node is b


def test_effects_interval_paired_difference_and_verdicts():
    iv = effects.interval([1.0, 2.0, 3.0])
    assert iv["mean"] == 2.0 and iv["n"] == 3 and iv["ci95"] == pytest.approx([2.0 - 4.302653 / 3 ** 0.5,
                                                                               2.0 + 4.302653 / 3 ** 0.5], rel=1e-5)
    d = effects.paired([2.0, 2.1, 1.9], [1.0, 1.0, 1.0])
    assert d["significant"] and effects.verdict(d, maximize=True) == "helps"
    assert effects.verdict(d, maximize=False) == "hurts"
    noisy = effects.paired([2.0, 0.0, 1.0], [1.0, 1.0, 1.0])
    assert not noisy["significant"] and effects.verdict(noisy, True) == "no clear effect"
    assert "no significant difference" in effects.improvement_text(noisy, True, "m")
    assert effects.interval([5.0])["ci95"] is None and effects.paired([1.0], [None])["n"] == 0


def test_final_seeds_below_two_are_refused_with_the_key_named():
    with pytest.raises(EngineError, match="stages.final_seeds=1: must be an integer >= 2"):
        run_config("stages.final_seeds=1")
