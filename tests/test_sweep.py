"""Sweeps (`python -m engine.launch -m ...`, engine/sweep.py, hydra_plugins/engine_ray_launcher): one sweep of three
scripted models and a model the server does not know, through the real entry point on one Ray instance. It is
stopped with SIGTERM while one run is in its review, then launched again: the finished runs are skipped, the
stopped one resumes, the failing one is reported and the others go on. The scaling analysis then reads it.

Run as a script, this file serves the scripted models on a port, for trying a sweep by hand (README):
    python -m tests.test_sweep --port 8765
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from engine import sweep
from tests.conftest import REPO, launch_cmd, run_config
from tests.engine.test_review import done, review_json
from tests.fake_llm_server import FakeLLMServer
from tests.writeup.paper_model import CLEAN, PaperModel

# the scripted models: release date, the Overall their reviews give, tokens reported per call
MODELS = {"scripted-2022": ("2022-06-01", 3, 40), "scripted-2023": ("2023-06-01", 5, 80),
          "scripted-2024": ("2024-06-01", 7, 160)}
BROKEN = "scripted-broken"  # the server does not know it: its run fails at the model check
PAPER_TOOLS = ("next_search", "pick_papers", "write_paper", "revise_section", "fixed_paper", "figure_notes")
FIGURE = (r"\begin{figure}[t]\centering\includegraphics[width=0.6\linewidth]{figures/search_progress.png}"
          r"\caption{Search progress.}\label{fig:progress}\end{figure}")
DRAFT = dict(CLEAN, results="Figure~\\ref{fig:progress} shows the search.\n" + FIGURE)


class SweepModel:
    """Scripted models behind one OpenAI-compatible server: each writes programs (doubling the template's learning
    rate), says every run is fine, writes the same paper, and reviews it with the Overall of its name. Reviews
    by the models in `hold` wait until `release` is set."""

    def __init__(self, hold: tuple[str, ...] = ()):
        self.hold, self.release, self.holding = set(hold), threading.Event(), threading.Event()
        self.papers: dict[str, PaperModel] = {}
        self.lock = threading.Lock()

    def __call__(self, path: str, body: dict) -> dict:
        model = body["model"]
        if model not in MODELS:
            return {"status": 404, "message": f"The model `{model}` does not exist"}
        usage = {"input": MODELS[model][2], "output": MODELS[model][2] // 4, "cached": 0}
        return self.answer(model, path, body) | {"usage": usage}

    def answer(self, model: str, path: str, body: dict) -> dict:
        text = "\n".join(m["content"] for m in body["messages"] if isinstance(m["content"], str))
        tools = body.get("tools") or []
        tool = tools[0]["function"]["name"] if tools else None
        overall = MODELS[model][1]
        if "Reply with OK." in text:
            return {"text": "OK"}
        if tool == "report":
            return {"tool": {"name": "report", "input": {"is_bug": False, "analysis": "Trained; no grokking."}}}
        if tool in PAPER_TOOLS:
            with self.lock:
                paper = self.papers.setdefault(model, PaperModel(draft=dict(DRAFT)))
            return paper(path, body)
        if "Review the paper below" in text:
            if model in self.hold:
                self.holding.set()
                self.release.wait(timeout=120)
            return done(overall, "Accept" if overall >= 6 else "Reject")
        if "Review 1:" in text:
            return review_json(overall, "Accept" if overall >= 6 else "Reject")
        code = text.split("```python\n", 1)[1].split("```", 1)[0]
        m = re.search(r'"--learning_rate", type=float, default=([0-9.e-]+)', code)
        code = code.replace(m.group(0), f'"--learning_rate", type=float, default={float(m.group(1)) * 2}')
        return {"text": f"Double the learning rate.\n```python\n{code}```"}


def kind(body: dict) -> str:
    text = json.dumps(body["messages"])
    tools = body.get("tools") or []
    tool = tools[0]["function"]["name"] if tools else None
    if "Reply with OK." in text:
        return "check"
    if tool == "report":
        return "feedback"
    if tool in PAPER_TOOLS:
        return "paper"
    return "review" if "Review the paper below" in text or "Review 1:" in text else "code"


def write_models(conf: Path, base_url: str) -> None:
    """conf/model/<name>.yaml for each scripted model, in a config folder of the user's own (hydra.searchpath)."""
    (conf / "model").mkdir(parents=True)
    for name, (released, _, _) in [*MODELS.items(), (BROKEN, ("2025-01-01", 0, 0))]:
        (conf / "model" / f"{name}.yaml").write_text(
            f"name: {name}\nprovider: null\nbase_url: {base_url}\napi_key_env: OPENAI_API_KEY\n"
            "prices: {input: 1.0, output: 2.0, cached_input: 0.5}\n"
            f"release_date: {released}\nvision: false\ntool_calling: true\nstructured_output: false\n"
            "max_output_tokens: 8192\nquirks: {system_message: true, temperature: true}\n")


def sweep_cmd(conf: Path, sweep_dir: Path) -> list[str]:
    return launch_cmd(
        "-m", "+topic=grokking", "topic.profile=smoke", f"model={BROKEN},{','.join(MODELS)}",
        f"hydra.searchpath=[file://{conf}]", "pipeline.phases=[experiments,writeup,review]", "stages.run=[initial]",
        "stages.initial.max_nodes=1", "stages.initial.run_to_budget=true", "stages.num_seeds=1",
        "stages.tie_break_tolerance=0", "search.num_drafts=1", "writeup.num_cite_rounds=0", "writeup.plot_retries=0",
        "writeup.compile_rounds=1", "review.num_reviews_ensemble=1", "review.num_reflections=1",
        "review.num_fs_examples=0", "review.figure_review=false", "tracking=none", "cluster.num_cpus=3",
        "sweep.max_concurrent_runs=4", "sweep.stop_grace_s=60", f"hydra.sweep.dir={sweep_dir}")


def point(name: str) -> str:
    return f"model={name}"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The sweep, stopped while scripted-2024 reviews its paper, then launched again; then its analysis."""
    tmp = tmp_path_factory.mktemp("sweep")
    sweep_dir, conf = tmp / "sweep", tmp / "conf"
    env = os.environ | {"OPENAI_API_KEY": "test-key", "PYTHONUNBUFFERED": "1"}
    model = SweepModel(hold=("scripted-2024",))
    with FakeLLMServer(responder=model) as server:
        write_models(conf, server.base_url)
        cmd = sweep_cmd(conf, sweep_dir)
        with open(tmp / "first.err", "w") as err:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=err, stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: model.holding.is_set() and recorded(sweep_dir, point(BROKEN)) == "failed" and all(
                    recorded(sweep_dir, point(m)) == "finished" for m in ("scripted-2022", "scripted-2023")),
                    proc, tmp / "first.err")
                proc.send_signal(signal.SIGTERM)
                # the run stopped in its review gets the signal while its model call is held; it then returns
                wait_until(lambda: "stopping model=scripted-2024" in (tmp / "first.err").read_text(), proc,
                           tmp / "first.err", timeout=60)
                model.release.set()
                proc.wait(timeout=120)
            finally:
                proc.kill()
                model.release.set()
        record1 = json.loads((sweep_dir / sweep.RECORD).read_text())
        n1 = len(server.requests)
        second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
        requests = [[(b["model"], kind(b)) for _, b, _ in server.requests[:n1]],
                    [(b["model"], kind(b)) for _, b, _ in server.requests[n1:]]]
    from benchmarks.scaling import analyse

    bench = tmp / "iclr2022_scripted-2024_fs0_refl1_ens1_t0.1" / "metrics.json"
    bench.parent.mkdir()
    bench.write_text(json.dumps({"n": 100, "balanced_accuracy": 0.61, "accuracy": 0.66, "f1": 0.5, "roc_auc": 0.7,
                                 "ci95": {"balanced_accuracy": [0.55, 0.67]},
                                 "by_threshold": {"6": {"balanced_accuracy": 0.63}}}))
    analysis = analyse([sweep_dir], tmp / "analysis", [bench], tracking="none")
    return SimpleNamespace(dir=sweep_dir, first=proc, first_log=(tmp / "first.err").read_text(),
                           record1=record1, second=second, requests=requests, analysis=analysis, out=tmp / "analysis")


def wait_until(condition, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended early ({proc.returncode}):\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; the sweep's output:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


def recorded(sweep_dir: Path, name: str) -> str | None:
    try:
        return json.loads((sweep_dir / sweep.RECORD).read_text())["points"].get(name, {}).get("status")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def attempts(run_dir: Path, phase: str) -> int:
    return len(json.loads((run_dir / "phases" / f"{phase}.json").read_text())["attempts"])


@pytest.mark.slow
def test_points_run_at_once_on_one_ray_instance_each_with_its_own_run(swept):
    points = swept.record1["points"]
    a, b = points[point("scripted-2022")], points[point("scripted-2023")]
    assert max(a["started_at"], b["started_at"]) < min(a["finished_at"], b["finished_at"])  # in flight together
    c = points[point("scripted-2024")]
    assert c["started_at"] < min(a["finished_at"], b["finished_at"])
    # the two finished runs took longer together than the sweep needed for both
    both = max(a["finished_at"], b["finished_at"]) - min(a["started_at"], b["started_at"])
    assert a["wall_time_s"] + b["wall_time_s"] > 1.3 * both
    ray_nodes = set()
    for name, (_, overall, _) in MODELS.items():
        run = swept.dir / point(name)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["review"]["Overall"] == overall
        assert summary["llm_calls"] > 0 and summary["cost_usd"] > 0  # its own ledger
        assert {r["model"] for r in pq.read_table(run / "llm" / "ledger").to_pylist()} == {name}
        config = (run / "config.yaml").read_text()
        # the fair share: 3 CPUs for 4 runs in flight, one node slot each, of 0.75 CPU
        assert "slots: 1\n" in config and "num_cpus: 0.75" in config
        ray_nodes |= {json.loads(f.read_text())["node_id"] for f in run.glob("nodes/*/runner.json")}
    assert len(ray_nodes) == 1  # every run's nodes ran on the sweep's one Ray instance


@pytest.mark.slow
def test_a_stopped_sweep_resumes_without_rerunning_a_finished_run(swept):
    assert swept.first.returncode == 128 + signal.SIGTERM, swept.first_log[-3000:]
    assert "resume the sweep" in swept.first_log and f"hydra.sweep.dir={swept.dir}" in swept.first_log
    assert swept.record1["points"][point("scripted-2024")]["status"] == "interrupted"
    first, second = swept.requests
    assert not [m for m, _ in second if m in ("scripted-2022", "scripted-2023")]  # finished: skipped
    assert "finished before: skipped" in swept.second.stdout + swept.second.stderr
    # the stopped run resumed in its review: no program was written again
    assert {k for m, k in second if m == "scripted-2024"} == {"check", "review"}
    assert {"code", "feedback"} & {k for m, k in first if m == "scripted-2024"}
    run = swept.dir / point("scripted-2024")
    review = json.loads((run / "phases" / "review.json").read_text())
    assert review["attempts"][0]["finished_at"] is not None  # it marked itself interrupted, as on Ctrl-C
    assert attempts(run, "experiments") == 1 and attempts(run, "writeup") == 1 and attempts(run, "review") == 2
    assert json.loads((run / "summary.json").read_text())["review"]["Overall"] == 7
    for name in ("scripted-2022", "scripted-2023"):
        assert attempts(swept.dir / point(name), "review") == 1


@pytest.mark.slow
def test_a_failing_point_is_reported_and_the_rest_go_on(swept):
    record = json.loads((swept.dir / sweep.RECORD).read_text())
    broken = record["points"][point(BROKEN)]
    assert broken["status"] == "failed" and BROKEN in broken["error"]
    assert [p["status"] for n, p in record["points"].items() if n != point(BROKEN)] == ["finished"] * 3
    out = swept.second.stdout + swept.second.stderr
    assert swept.second.returncode != 0 and f"{point(BROKEN)} failed" in out
    assert len(record["launches"]) == 2 and record["launches"][0]["status"] == "interrupted"


@pytest.mark.slow
def test_the_analysis_of_the_sweep(swept):
    rows = {r["run"]: r for r in pq.read_table(swept.out / "runs.parquet").to_pylist()}
    assert set(rows) == {point(m) for m in [*MODELS, BROKEN]}
    assert rows[point(BROKEN)]["overall"] is None and BROKEN in rows[point(BROKEN)]["why_no_review"]
    assert [rows[point(m)]["overall"] for m in MODELS] == [3, 5, 7]
    assert rows[point("scripted-2022")]["tokens"] < rows[point("scripted-2024")]["tokens"]
    fits = {f["against"]: f for f in swept.analysis["fits"]}
    date = fits["release date"]
    assert date["n"] == 3 and date["slope"] > 0 and date["ci95"][0] > 0 and date["p_value"] < 0.05
    assert fits["log10 tokens"]["slope"] > 0
    for png in ("scaling_release_date.png", "scaling_compute.png"):
        assert (swept.out / png).read_bytes()[:4] == b"\x89PNG"
    text = (swept.out / "report.md").read_text()
    assert f"`{point(BROKEN)}` (failed)" in text  # listed, not dropped
    assert "3 different reviewers" in text and "balanced accuracy **0.610**" in text
    assert swept.analysis["timing"][0]["launches"] == 2


# --- the pieces, without Ray ----------------------------------------------------------------------------------------

def test_points_are_named_by_their_swept_values_and_resume_by_state(tmp_path):
    jobs = [["+topic=grokking", "model=a", "seed=0"], ["+topic=grokking", "model=a", "seed=1"],
            ["+topic=grokking", "model=b/c", "seed=0"]]
    assert sweep.swept_keys(jobs) == ["model", "seed"]
    assert sweep.point_names(jobs) == ["model=a,seed=0", "model=a,seed=1", "model=b_c,seed=0"]
    assert sweep.point_names([["+topic=grokking"]]) == ["run"]
    done_dir, started = tmp_path / "model=a,seed=0", tmp_path / "model=a,seed=1"
    (done_dir / "phases").mkdir(parents=True)
    (done_dir / "summary.json").write_text(json.dumps({"status": "finished"}))
    (started / "phases").mkdir(parents=True)
    (started / "config.yaml").write_text("seed: 1\n")
    (started / "phases" / "experiments.json").write_text("{}")
    points = sweep.plan(tmp_path, jobs)
    assert [p.state for p in points] == ["finished", "started", "new"]
    resume = points[1].overrides[-1]
    parsed = OverridesParser.create().parse_overrides([resume])[0]  # a folder name with '=' and ',' is quoted
    assert parsed.key_or_group == "resume" and parsed.value() == str(started)
    assert not any(o.startswith("resume=") for o in points[2].overrides)


def test_fair_share_of_the_slots():
    assert sweep.fair_share(8, 3, 1.0) == (2, 1.0)  # 8 slots for 3 runs: 2 each
    assert sweep.fair_share(2, 3, 1.0) == (1, 0.66)  # fewer slots than runs: one each, of a smaller CPU share
    assert sweep.fair_share(float("inf"), 3, 0.0) == (1, 0.0)


def test_budget_scale_scales_every_stage_budget():
    base = run_config().stages.settings
    half = run_config("search.budget_scale=0.5").stages.settings
    assert [s.max_nodes for s in base.values()] == [20, 12, 12, 18]
    assert [s.max_nodes for s in half.values()] == [10, 6, 6, 9]
    assert half["tuning"].offline_max_nodes == 2 and base["tuning"].offline_max_nodes == 3  # 1.5 rounds up
    assert run_config("search.budget_scale=0.01").stages.settings["initial"].max_nodes == 1
    from engine.errors import EngineError
    with pytest.raises(EngineError, match="budget_scale"):
        run_config("search.budget_scale=0")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="serve the scripted sweep models (OpenAI wire format) and write their "
                                             "conf/model files into a config folder of your own")
    ap.add_argument("--conf", type=Path, required=True, help="a new folder: <conf>/model/scripted-*.yaml")
    conf_dir = ap.parse_args().conf.resolve()
    with FakeLLMServer(responder=SweepModel()) as server:
        write_models(conf_dir, server.base_url)
        print(f"scripted models {', '.join(MODELS)} at {server.base_url}; their configs in {conf_dir / 'model'}\n"
              f"sweep: OPENAI_API_KEY=test-key python -m engine.launch -m +topic=grokking hydra.searchpath=[file://"
              f"{conf_dir}] model={','.join(MODELS)} ...   (Ctrl-C stops the server)", flush=True)
        threading.Event().wait()
