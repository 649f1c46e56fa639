"""The stage plan driven by the one loop, in process with an instant executor: stage order, copies, seeds beside
the next stage's search, records, tracking events, the clear end of a run whose first stage finds no working
node, and a resume in the middle of the overlap."""
import json

import pytest

from engine.config import shipped_policy, shipped_sandbox, stages_config
from engine.experiments.stage_records import StageRecords
from engine.nodes.driver import Driver, SearchState
from engine.nodes.node_exec import NodeJob
from engine.rundir import RunDir
from search.journal import Journal
from search.metric import MetricSpec
from search.offline import OfflineProposer, TunableSpec
from search.operators import BaselineFirst
from stages.plan import StagePlan
from stages.policy import StageSetup
from stages.spec import STAGE_NAMES, StageSettings
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


class Run:
    """A search over the four stages with the offline proposer, the way engine.experiments.phase wires it."""

    def __init__(self, tmp_path, base=BASE, values=(2.0, 3.0, 4.0), budget=3, num_seeds=3, select=None,
                 tolerance=0.0, noise_z=0.0, executor=None):
        self.tracker = RecordingTracker()
        self.base, self.values, self.path = base, values, tmp_path
        settings = {n: StageSettings(n, max_nodes=budget, offline_max_nodes=budget, run_to_budget=False)
                    for n in STAGE_NAMES}
        self.setup = StageSetup(stages_config(STAGE_NAMES, settings, num_seeds=num_seeds, tie_break_tolerance=tolerance,
                                             noise_z=noise_z),
                                shipped_policy(num_drafts=2, debug_prob=0.0), offline=True, critique=False, seed=0,
                                timeout_s=100.0, tunables=("VALUE",), ablations=("zero", "half"), select=select,
                                base_code=base)
        self.executor = executor or InstantExecutor()

    def go(self, stop_after=None):
        run = RunDir(self.path)
        nodes, unfinished = run.load_nodes(), run.load_pending()
        self.state = SearchState(Journal(nodes), SPEC, next_step=1 + max((n.step for n in nodes + unfinished),
                                                                           default=-1))
        offline = OfflineProposer(self.base, {"VALUE": TunableSpec("VALUE", values=self.values)},
                                  ablations={"zero": {"VALUE": 0.0}, "half": {"VALUE": 0.5}},
                                  already_proposed=tuple(n.code for n in nodes + unfinished))
        proposer = BaselineFirst(self.base, tuple(n.code for n in nodes + unfinished)).wrap(offline)
        self.records = StageRecords(run, self.state.journal, lambda: self.state.spec, self.tracker, False)
        self.plan = StagePlan.resume(self.setup, lambda: self.state.spec, self.state.journal, self.state.new_step,
                                     self.records.saved, unfinished)
        recorded = []

        def on_record(node, outcome):
            recorded.append(node)
            if stop_after is not None and len(recorded) >= stop_after:
                raise KeyboardInterrupt

        self.driver = Driver(run, self.state, proposer, self.executor,
                             lambda n: NodeJob(n.id, n.code, {}, shipped_sandbox(), None, None, None), self.plan,
                             infer_spec=lambda n: SPEC, on_record=on_record, on_events=self.records)
        self.driver.search(resumed=unfinished)
        return [s.record for s in self.plan.stages]


def test_four_stages_in_order_with_copies_seeds_and_events(tmp_path):
    r = Run(tmp_path)
    records = r.go()
    tracker = r.tracker
    assert [rec["name"] for rec in records] == list(STAGE_NAMES)
    starts = [d["stage"] for name, d in tracker.events if name == "stage_start"]
    ends = [d["stage"] for name, d in tracker.events if name == "stage_end"]
    assert starts == list(STAGE_NAMES) and ends == list(STAGE_NAMES)
    journal = r.state.journal
    searched = records[:3]  # initial, tuning, agenda: each starts from the node the one before handed on
    for prev, rec in zip(searched, searched[1:]):
        copy = journal.get(rec["started_from"]["copy_id"])
        assert copy.operator == "copy" and copy.copied_from == prev["best"]["node_id"] and copy.stage == rec["name"]
    final = json.loads((tmp_path / "final" / "search.json").read_text())
    ablation_copy = journal.get(records[3]["started_from"]["copy_id"])
    assert ablation_copy.copied_from == final["result"]  # the ablations start from the run's result
    # seeds: SEED found in the code, the best node is the first seed, the others ran as seed nodes
    seeds = records[0]["seeds"]
    assert seeds["param"] == "SEED" and seeds["seeds"] == [0, 1, 2] and seeds["ok"] == 3
    assert seeds["values"][1] - seeds["values"][0] == pytest.approx(0.01) and seeds["stderr"] > 0
    assert (tmp_path / seeds["plot"]).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "stages" / "ablations" / "summary.json").read_text())["completed"] is True
    assert json.loads((tmp_path / "stages" / "tuning" / "search.json").read_text())["best"] == records[1]["best"]
    ablations = [n for n in journal if n.stage == "ablations" and n.operator == "improve"]
    assert sorted(n.change for n in ablations) == ["half", "zero"]
    # seed runs are never a stage's best, and each stage's best beats or equals the one before on the metric
    bests = [journal.get(rec["best"]["node_id"]) for rec in searched]
    assert all(b.operator != "seed" for b in bests)
    assert [rec["best_value"] for rec in searched] == sorted(rec["best_value"] for rec in searched)
    assert records[3]["best"] is None  # the ablation stage hands nothing on


def test_seed_runs_of_a_stage_run_beside_the_next_stages_search(tmp_path):
    """No barrier between the searching stages: the tuning stage's seed runs are submitted after the agenda
    stage's first nodes (its search started from tuning's decided node), and tuning's record is written only when
    they are in. The ablations wait for the result, which is chosen once the agenda's seeds are in."""
    r = Run(tmp_path)
    records = r.go()
    journal = r.state.journal
    tuning_seeds = [n for n in journal if n.stage == "tuning" and n.operator == "seed"]
    agenda_runs = [n for n in journal if n.stage == "agenda" and n.operator == "improve"]
    agenda_seeds = [n for n in journal if n.stage == "agenda" and n.operator == "seed"]
    ablation_runs = [n for n in journal if n.stage == "ablations" and n.operator == "improve"]
    assert tuning_seeds and agenda_runs and ablation_runs
    assert min(n.step for n in agenda_runs) < min(n.step for n in tuning_seeds)  # search first, seeds fill slots
    assert records[1]["seeds"]["node_ids"][1:] == [n.id for n in tuning_seeds] and records[1]["seeds"]["ok"] == 3
    assert len(agenda_seeds) == 2 and min(n.step for n in ablation_runs) > max(n.step for n in agenda_seeds)
    # every run got a slot, and no more slots than the executor has were used at once
    assert {n.slot for n in journal if n.operator != "copy"} <= {0, 1}


def test_a_first_stage_without_a_working_node_ends_the_run_with_the_causes(tmp_path):
    r = Run(tmp_path, base="VALUE = -1.0\nSEED = 0\n", values=(-2.0, -3.0), budget=3)
    records = r.go()
    assert len(records) == 1 and records[0]["best"] is None and records[0]["completed"] is False
    assert records[0]["why"].startswith("no working node in 3 tries") and "3 x ValueError" in records[0]["why"]
    assert r.plan.failed is r.plan.stages[0]
    assert not (tmp_path / "stages" / "tuning").exists()


def test_after_a_model_tie_break_the_summary_best_and_the_stage_record_agree(tmp_path):
    """The select model picks the worst of the near-equal nodes at each stage's end: the summary's best, best/
    and the last stage record name that node, and say the model chose (not the metric)."""
    from types import SimpleNamespace

    from engine.experiments.summary import make_summary

    picked = []

    def select(candidates, spec, stage):
        worst = candidates[-1]
        picked.append((stage, worst.id, candidates[0].id))
        return worst, "its curves look steadier"

    r = Run(tmp_path, num_seeds=1, select=select, tolerance=10.0)
    records = r.go()
    last = records[2]  # the agenda: the last stage that hands a node on
    assert picked and picked[-1][0] == last["name"] and picked[-1][1] != picked[-1][2]  # not the metric's best
    assert last["best"]["node_id"] == picked[-1][1] and last["best"]["chosen_by"] == "model tie-break"
    assert "its curves look steadier" in last["best"]["reason"] and last["best"]["reason"] == last["tie_break"]
    saved = json.loads((tmp_path / "stages" / last["name"] / "summary.json").read_text())
    assert saved["best"] == last["best"]

    # the result is chosen among the stages' decided nodes: the agenda's candidate is the model's pick
    final = json.loads((tmp_path / "final" / "search.json").read_text())
    agenda = next(c for c in final["choice"]["candidates"] if c["stage"] == "agenda")
    assert agenda["node_id"] == original_id(r, last["best"]["node_id"])
    chosen = r.plan.chosen()
    assert chosen is not None and chosen[0].id == final["result"] and "the run's result" in chosen[1]["chosen_by"]
    exp = SimpleNamespace(cfg=SimpleNamespace(topic=SimpleNamespace(name="t")), template=SimpleNamespace(
        path=tmp_path, baseline_final_info=None), profile=None, base_code=BASE)
    summary = make_summary(exp, r.state, 1.0, "finished", str(tmp_path), "offline", chosen)
    assert summary["best"]["node_id"] == final["result"] and summary["best"]["value"] == chosen[0].metric
    assert summary["best"]["value_is"] == "a single run" and summary["best"]["reason"] == final["choice"]["reason"]
    RunDir(tmp_path).write_best(chosen[0])
    assert (tmp_path / "best" / "experiment.py").read_text() == r.state.journal.get(final["result"]).code


def original_id(r, node_id):
    node = r.state.journal.get(node_id)
    while node.operator == "copy":
        node = r.state.journal.get(node.copied_from)
    return node.id


def test_without_a_tie_break_the_metric_chose_and_says_so(tmp_path):
    r = Run(tmp_path)
    records = r.go()[:3]  # the stages that hand a node on
    assert all(rec["best"]["chosen_by"] in ("metric", "seed spread") for rec in records)
    assert all("best m of stage" in rec["best"]["reason"] for rec in records if rec["best"]["chosen_by"] == "metric")
    node, choice = r.plan.chosen()
    assert choice["chosen_by"] == "the run's result (seed means)" and "on their seed means" in choice["reason"]


class IdExecutor(InstantExecutor):
    def __init__(self):
        super().__init__()
        self.ids = []

    def submit(self, job):
        self.ids.append(job.node_id)
        super().submit(job)


def test_resume_in_the_overlap_keeps_every_record_and_runs_nothing_twice(tmp_path):
    """Killed while a stage's seed runs and the next stage's search were both under way: the resumed run
    continues both from the saved decision, and no finished node runs again."""
    first = Run(tmp_path, executor=IdExecutor())
    with pytest.raises(KeyboardInterrupt):
        first.go(stop_after=12)
    finished = {n.id for n in RunDir(tmp_path).load_nodes()}
    decided = [p.parent.name for p in (tmp_path / "stages").glob("*/search.json")]
    done = [p.parent.name for p in (tmp_path / "stages").glob("*/summary.json")]
    assert set(decided) > set(done)  # at least one stage decided whose record was not yet written: the overlap
    second = Run(tmp_path, executor=IdExecutor())
    records = second.go()
    assert [rec["name"] for rec in records] == list(STAGE_NAMES)
    assert not finished & set(second.executor.ids)  # nothing finished ran again
    assert all(rec["seeds"]["ok"] == 3 for rec in records if "param" in rec["seeds"])
    steps = [n.step for n in second.state.journal]
    assert len(steps) == len(set(steps))
