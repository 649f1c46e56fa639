"""A capped run through the real entry point, against a scripted model on the loopback server: the cap stops the
run between calls and it winds down (the search stops proposing, the writeup takes its offline path, the review
is skipped) with exit status 0 and a summary that says so; a resume with a larger cap carries on from there to a
paper and its review; a dry run makes no request at all."""
import json
import os
import subprocess

import pytest

from tests.conftest import REPO, launch_cmd
from tests.fake_llm_server import FakeLLMServer
from tests.test_sweep import SweepModel, write_models

MODEL = "scripted-2024"  # $1 / $2 per million input / output tokens (tests/test_sweep.py writes its conf/model file)
SMALL = ["+topic=grokking", "topic.profile=smoke", "cluster=threads", "tracking=none", f"model={MODEL}",
         "pipeline.phases=[experiments,writeup,review]", "stages.run=[initial,tuning]", "stages.initial.max_nodes=2",
         "stages.initial.run_to_budget=true", "stages.tuning.max_nodes=3", "stages.tuning.run_to_budget=true",
         "stages.num_seeds=1", "stages.tie_break_tolerance=0", "search.num_drafts=1", "search.lookahead=0",
         "llm.max_concurrency=1", "llm.max_tokens=1000", "writeup.num_cite_rounds=0", "writeup.plot_retries=0",
         "writeup.compile_rounds=1", "review.num_reviews_ensemble=1", "review.num_reflections=1",
         "review.num_fs_examples=0", "review.figure_review=false"]


class Priced(SweepModel):
    """The sweep's scripted model, every call reporting 1,000 tokens in and out: $0.003 a call."""

    def __call__(self, path: str, body: dict) -> dict:
        return super().__call__(path, body) | {"usage": {"input": 1000, "output": 1000, "cached": 0}}


def run(conf, run_dir, *overrides, resume=False):
    env = os.environ | {"OPENAI_API_KEY": "test-key", "PYTHONUNBUFFERED": "1"}
    args = [f"resume={run_dir}", *overrides] if resume else [*SMALL, f"hydra.run.dir={run_dir}", *overrides]
    return subprocess.run(launch_cmd(f"hydra.searchpath=[file://{conf}]", *args), cwd=REPO, capture_output=True,
                          text=True, timeout=400, env=env)


def summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
def test_the_cap_stops_the_run_between_calls_and_a_resume_with_a_larger_cap_carries_on(tmp_path):
    run_dir, conf = tmp_path / "run", tmp_path / "conf"
    with FakeLLMServer(responder=Priced()) as server:
        write_models(conf, server.base_url)
        first = run(conf, run_dir, "budget.max_usd=0.012")
        assert first.returncode == 0, first.stderr[-3000:]
        n_first = len(server.requests)
        s = summary(run_dir)
        b = s["budget"]
        assert s["status"] == "finished" and b["stopped"] and b["why"].startswith("budget.max_usd=0.012 reached")
        assert b["max_usd"] == 0.012 and b["spent_usd"] <= 0.012 and b["spent_usd"] == pytest.approx(s["cost_usd"])
        assert b["by_phase"]["experiments"]["stopped"] and b["projection"]["usd"][0] > 0
        phases = {p["name"]: p for p in s["phases"]}
        assert phases["experiments"]["status"] == "done" and phases["writeup"]["status"] == "done"
        assert phases["review"]["status"] == "skipped"
        writeup = json.loads((run_dir / "phases" / "writeup.json").read_text())
        assert writeup["outputs"]["kind"] == "results report" and "budget" in writeup["outputs"]["why_report"]
        assert (run_dir / writeup["outputs"]["pdf"]).is_file()
        tuning = next(r for r in s["stages"] if r["name"] == "tuning")
        assert tuning["why"].startswith("stopped by the budget") and tuning["completed"] is None
        nodes_first = s["nodes"]["total"]
        assert "projected cost of the model calls" in first.stderr  # said before anything was spent

        more = run(conf, run_dir, "budget.max_usd=1", resume=True)
        assert more.returncode == 0, more.stderr[-3000:]
        assert len(server.requests) > n_first
    s = summary(run_dir)
    assert s["status"] == "finished" and not s["budget"]["stopped"] and s["budget"]["max_usd"] == 1
    assert s["nodes"]["total"] == nodes_first + 3  # the tuning stage ran its 3 nodes on resume
    assert s["paper"]["kind"] == "paper" and s["review"]["Overall"] == 7
    assert s["budget"]["spent_usd"] > 0.012 and s["compute"]["node_hours"]["cpu"] > 0


def test_a_dry_run_prints_the_plan_and_makes_no_request(tmp_path):
    run_dir, conf = tmp_path / "run", tmp_path / "conf"
    with FakeLLMServer(responder=Priced()) as server:
        write_models(conf, server.base_url)
        res = run(conf, run_dir, "pipeline.dry_run=true", "budget.max_usd=0.5")
        assert res.returncode == 0, res.stderr[-3000:]
        assert server.requests == []  # not even the model check
    out = res.stdout
    assert "nothing runs and no model is called" in out and "stages (node budget with a model): initial 2, " \
        "tuning 3" in out and f"code      {MODEL}" in out and "budget.max_usd=0.5" in out
    assert "projected cost of the model calls" in out and "experiments  code" in out
    assert "the projection is above budget.max_usd=0.5" in out  # said before anything is spent
    assert not (run_dir / "summary.json").exists() and not (run_dir / "nodes").exists()
