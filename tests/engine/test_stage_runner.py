"""The stage runner in process, with an instant executor: stage order, copies, seeds, records, tracking
events, and the clear end of a run whose first stage finds no working node."""
import json

import pytest

from engine.driver import SearchState
from engine.node_exec import NodeJob
from engine.rundir import RunDir
from engine.sandbox import SandboxConfig
from engine.stage_runner import StageContext, StageRunner
from search.journal import Journal
from search.metric import MetricSpec
from search.offline import OfflineProposer, TunableSpec
from search.operators import BaselineFirst
from search.policy import PolicyConfig
from stages.spec import STAGE_NAMES, StagesConfig, StageSettings
from tests.engine.instant import InstantExecutor

SPEC = MetricSpec("m", "maximize")
BASE = "VALUE = 1.0\nSEED = 0\nprint(VALUE, SEED)\n"


class RecordingTracker:
    def __init__(self):
        self.events, self.nodes = [], []

    def log_node(self, node, best):
        self.nodes.append(node.step)

    def log_event(self, name, data):
        self.events.append((name, data))

    def finish(self, summary):
        pass


def runner(tmp_path, base=BASE, values=(2.0, 3.0, 4.0), budget=3):
    tracker = RecordingTracker()
    offline = OfflineProposer(base, {"VALUE": TunableSpec("VALUE", values=values)},
                              ablations={"zero": {"VALUE": 0.0}, "half": {"VALUE": 0.5}})
    settings = {n: StageSettings(n, max_nodes=budget, offline_max_nodes=budget) for n in STAGE_NAMES}
    ctx = StageContext(
        run=RunDir(tmp_path), state=SearchState(Journal(), SPEC), proposer=BaselineFirst(base).wrap(offline),
        reviewer=None, executor=InstantExecutor(),
        make_job=lambda n: NodeJob(n.id, n.code, {}, SandboxConfig()), infer_spec=lambda n: SPEC,
        on_finish=lambda node, outcome: None, tracker=tracker, policy=PolicyConfig(num_drafts=2, debug_prob=0.0),
        stages=StagesConfig(STAGE_NAMES, settings, num_seeds=3), offline=True, critique=False, seed=0,
        proposal_concurrency=1, timeout_s=100.0, tunables=("VALUE",), ablations=("zero", "half"), seed_param=None)
    return StageRunner(ctx), ctx, tracker


def test_four_stages_in_order_with_copies_seeds_and_events(tmp_path):
    run, ctx, tracker = runner(tmp_path)
    records = run.run([])
    assert [r["name"] for r in records] == list(STAGE_NAMES)
    assert [(name, data["stage"]) for name, data in tracker.events] == \
        [(kind, s) for s in STAGE_NAMES for kind in ("stage_start", "stage_end")]
    journal = ctx.state.journal
    for prev, rec in zip(records, records[1:]):
        copy = journal.get(rec["started_from"]["copy_id"])
        assert copy.operator == "copy" and copy.copied_from == prev["best"]["node_id"] and copy.stage == rec["name"]
    # seeds: SEED found in the code, the best node is the first seed, the others ran as seed nodes
    seeds = records[0]["seeds"]
    assert seeds["param"] == "SEED" and seeds["seeds"] == [0, 1, 2] and seeds["ok"] == 3
    assert seeds["values"][1] - seeds["values"][0] == pytest.approx(0.01) and seeds["stderr"] > 0
    assert (tmp_path / seeds["plot"]).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "stages" / "ablations" / "summary.json").read_text())["completed"] is True
    ablations = [n for n in journal if n.stage == "ablations" and n.operator == "improve"]
    assert sorted(n.change for n in ablations) == ["half", "zero"]
    # seed runs are never a stage's best, and each stage's best beats or equals the one before on the metric
    bests = [journal.get(r["best"]["node_id"]) for r in records]
    assert all(b.operator != "seed" for b in bests)
    assert [r["best_value"] for r in records] == sorted(r["best_value"] for r in records)


def test_a_first_stage_without_a_working_node_ends_the_run_with_the_causes(tmp_path):
    run, ctx, tracker = runner(tmp_path, base="VALUE = -1.0\nSEED = 0\n", values=(-2.0, -3.0), budget=3)
    records = run.run([])
    assert len(records) == 1 and records[0]["best"] is None and records[0]["completed"] is False
    assert records[0]["why"].startswith("no working node in 3 tries") and "3 x ValueError" in records[0]["why"]
    assert not (tmp_path / "stages" / "tuning").exists()


def test_after_a_model_tie_break_the_summary_best_and_the_stage_record_agree(tmp_path):
    """The select model picks the worst of the near-equal nodes at each stage's end: the summary's best, best/
    and the last stage record name that node, and say the model chose (not the metric)."""
    from types import SimpleNamespace

    from engine.experiments import make_summary

    run, ctx, _ = runner(tmp_path)
    picked = []

    def select(candidates, spec, stage):
        worst = candidates[-1]
        picked.append((stage, worst.id, candidates[0].id))
        return worst, "its curves look steadier"

    ctx.select = select
    ctx.stages = StagesConfig(STAGE_NAMES, ctx.stages.settings, num_seeds=1, tie_break_tolerance=10.0)
    records = run.run([])
    last = records[-1]
    assert picked and picked[-1][0] == last["name"] and picked[-1][1] != picked[-1][2]  # not the metric's best
    assert last["best"]["node_id"] == picked[-1][1] and last["best"]["chosen_by"] == "model tie-break"
    assert "its curves look steadier" in last["best"]["reason"] and last["best"]["reason"] == last["tie_break"]
    saved = json.loads((tmp_path / "stages" / last["name"] / "summary.json").read_text())
    assert saved["best"] == last["best"]

    chosen = run.chosen_best()
    assert chosen is not None and chosen[0].id == last["best"]["node_id"]
    metric_best = ctx.state.journal.best_node(SPEC)
    assert metric_best.metric > chosen[0].metric  # the metric alone would have picked another node
    exp = SimpleNamespace(cfg=SimpleNamespace(topic=SimpleNamespace(name="t")), template=SimpleNamespace(
        path=tmp_path, baseline_final_info=None), profile=None, base_code=BASE)
    summary = make_summary(exp, ctx.state, 1.0, "finished", str(tmp_path), "offline", chosen)
    assert summary["best"]["node_id"] == last["best"]["node_id"] and summary["best"]["value"] == chosen[0].metric
    assert summary["best"]["chosen_by"] == "model tie-break" and summary["best"]["reason"] == last["tie_break"]
    ctx.run.write_best(chosen[0])
    assert (tmp_path / "best" / "experiment.py").read_text() == ctx.state.journal.get(last["best"]["node_id"]).code


def test_without_a_tie_break_the_metric_chose_and_says_so(tmp_path):
    run, ctx, _ = runner(tmp_path)
    records = run.run([])
    assert all(r["best"]["chosen_by"] == "metric" and "best m of stage" in r["best"]["reason"] for r in records)
    node, choice = run.chosen_best()
    assert node.id == records[-1]["best"]["node_id"] and choice["chosen_by"] == "metric"
