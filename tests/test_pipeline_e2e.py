"""The pipeline through the real entry point: ideas from a scripted model that searches the literature (three
loopback literature servers), novelty decisions, then experiments on the chosen idea; and idea files in the v1
and v2 formats used unchanged via ideas.load=."""
import json
import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import NO_RAY, REPO, launch, launch_cmd
from tests.fake_llm_server import FakeLLMServer
from tests.ideas.helpers import IdeaModel
from tests.literature.fake_scholar_server import FakeScholarServer, paper

IDEA_TOOLS = ("propose_idea", "give_idea", "check_topic", "novelty_step", "novelty_verdict")
STAGE_ONE = ["stages.run=[initial]", "stages.initial.max_nodes=3", "stages.initial.offline_max_nodes=3",
             "stages.initial.run_to_budget=true", "stages.num_seeds=1", "search.num_drafts=1", "tracking=none", NO_RAY]


def literature(scholar):
    """The three engines at the loopback server, without the pauses the real services ask for (1 request/s)."""
    return [f"literature.{e}.{key}" for e in ("semantic_scholar", "openalex", "arxiv")
            for key in (f"base_url={scholar.base_url(e)}", "requests_per_s=100")]


def pipeline_model(template_code):
    ideas = IdeaModel(done_at=2, off_topic=(3,), not_novel=("idea_1",))
    rates = iter([0.05, 0.02, 0.03, 0.04])

    def respond(path, body):
        tools = body.get("tools") or []
        name = tools[0]["function"]["name"] if tools else None
        if name in IDEA_TOOLS:
            return ideas(path, body)
        if name == "report":
            return {"tool": {"name": "report", "input": {"is_bug": False, "analysis": "fine"}}}
        if "Reply with OK." in json.dumps(body["messages"]):
            return {"text": "OK"}
        code = re.sub(r"LEARNING_RATE = [0-9.]+", f"LEARNING_RATE = {next(rates)}", template_code)
        return {"text": f"Plan: a new rate.\n```python\n{code}```"}
    return respond


@pytest.mark.slow
def test_ideas_with_literature_then_experiments_on_the_chosen_idea(tmp_path, quick_template):
    run_dir = tmp_path / "run"
    with FakeLLMServer(responder=pipeline_model((quick_template / "experiment.py").read_text())) as llm, \
            FakeScholarServer() as scholar:
        # Semantic Scholar rate-limits every request: the searches move on to OpenAlex (arXiv stays unused)
        scholar.default["semantic_scholar"] = {"status": 429, "retry_after": "0"}
        scholar.default["openalex"] = {"papers": [paper("Learning rates for toy models", citations=12)]}
        env = os.environ | {"OPENAI_API_KEY": "test-key", "OPENALEX_API_KEY": "oa-key", "PYTHONUNBUFFERED": "1"}
        res = subprocess.run(launch_cmd(
            "+topic=template", f"topic.path={quick_template}", "topic.metric=val_loss", "topic.direction=minimize",
            f"model.base_url={llm.base_url}", "model.name=fake-model", "pipeline.phases=[ideas,experiments]",
            "ideas.num_ideas=3", "ideas.num_reflections=2", "ideas.novelty_rounds=2",
            *literature(scholar), "literature.max_wait_s=1", *STAGE_ONE, f"hydra.run.dir={run_dir}"),
            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
        assert res.returncode == 0, res.stderr[-3000:]
        code_prompts = [json.dumps(b["messages"]) for _, b, _ in llm.requests if not b.get("tools")
                        and "Reply with OK." not in json.dumps(b["messages"])]
        assert scholar.count("openalex") >= 1 and scholar.count("arxiv") == 0
        # the breaker stopped asking Semantic Scholar after 3 failed queries (3 attempts each), give or take the
        # queries already in flight from the other idea threads (llm.max_concurrency 4)
        assert scholar.count("semantic_scholar") <= 3 * (3 + 4 - 1) < scholar.count("openalex") * 3

    doc = json.loads((run_dir / "ideas.json").read_text())
    assert [i["Name"] for i in doc["ideas"]] == ["idea_1", "idea_2"]
    assert [d["Name"] for d in doc["dropped"]] == ["idea_3"] and "cooking" in doc["dropped"][0]["reason"]
    decisions = {i["Name"]: (i["novel"], i["novelty"]["decision"]) for i in doc["ideas"]}
    assert decisions == {"idea_1": (False, "not novel"), "idea_2": (True, "novel")}
    assert doc["ideas"][1]["novelty"]["papers"][0]["title"] == "Learning rates for toy models"
    chosen = json.loads((run_dir / "idea.json").read_text())
    assert chosen["Name"] == doc["chosen"] == "idea_2"  # the best novel idea
    assert code_prompts and all("Idea 2" in p for p in code_prompts)  # the experiments test the chosen idea
    s = json.loads((run_dir / "summary.json").read_text())
    assert [(p["name"], p["status"]) for p in s["phases"]] == [("ideas", "done"), ("experiments", "done")]
    assert s["idea"]["chosen"] == "idea_2" and s["idea"]["num_novel"] == 1
    assert s["llm_by_stage"]["ideas"]["calls"] > 0 and s["status"] == "finished"
    assert s["phases"][0]["cost_usd"] is None  # the fake model has no prices: unknown, never zero


@pytest.mark.parametrize("file, name", [("v1_seed_ideas.json", None), ("v2_ideas.json", None)])
def test_idea_files_run_unchanged_via_ideas_load(tmp_path, quick_template, file, name):
    source = REPO / "tests" / "ideas" / "fixtures" / file
    original = json.loads(source.read_text())
    first = (original if isinstance(original, list) else original["ideas"])[0]
    run_dir = tmp_path / "run"
    res = launch("+topic=template", f"topic.path={quick_template}", "topic.metric=val_loss", f"ideas.load={source}",
                 "ideas.index=0", "pipeline.phases=[ideas,experiments]", *STAGE_ONE, "stages.initial.max_nodes=2",
                 "stages.initial.offline_max_nodes=2", f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    chosen = json.loads((run_dir / "idea.json").read_text())
    assert {k: chosen[k] for k in first} == first  # every original key and value kept
    assert json.loads(source.read_text()) == original  # the file itself untouched
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["phases"][0]["status"] == "done" and s["nodes"]["total"] == 2


@pytest.mark.slow
def test_whole_pipeline_with_a_model_ends_with_a_paper_and_its_review(tmp_path, v1_template):
    """Issue 11's 'done when': ideas, experiments, a compiled paper whose citations all resolve and whose numbers
    trace or are listed, and review.json; everything through the real entry point and the real wire formats."""
    from tests.engine.test_review import done as review_done
    from tests.engine.test_review import review_json
    from tests.writeup.paper_model import CLEAN, PaperModel

    shutil.rmtree(v1_template / "latex")  # our workshop format (the fixture's own LaTeX is a one-liner)
    figure = (r"\begin{figure}[t]\centering\includegraphics[width=0.6\linewidth]{figures/search_progress.png}"
              r"\caption{Search progress.}\label{fig:progress}\end{figure}")
    draft = dict(CLEAN, results="Figure~\\ref{fig:progress} shows the search.\n" + figure +
                 "\nThe best validation loss was 0.123456, a number no run produced.")
    paper_model = PaperModel(draft=draft)
    experiments = pipeline_model((v1_template / "experiment.py").read_text())

    def respond(path, body):
        tools = body.get("tools") or []
        name = tools[0]["function"]["name"] if tools else None
        text = json.dumps(body["messages"])
        if name in ("next_search", "pick_papers", "write_paper", "revise_section", "fixed_paper", "figure_notes"):
            return paper_model(path, body)
        if "draws the figures of a research paper" in text:  # the plotting program: ours take over after it
            return {"text": "```python\nraise SystemExit('no figures today')\n```"}
        if "Review the paper below" in text:
            return review_done(4)
        if "Review 1:" in text:
            return review_json(4, "Reject", summary="Meta: thin evidence.")
        return experiments(path, body)

    run_dir = tmp_path / "run"
    with FakeLLMServer(responder=respond) as llm, FakeScholarServer() as scholar:
        env = os.environ | {"OPENAI_API_KEY": "test-key", "OPENALEX_API_KEY": "oa-key", "PYTHONUNBUFFERED": "1"}
        res = subprocess.run(launch_cmd(
            "+topic=template", f"topic.path={v1_template}", "topic.metric=val_loss", "topic.direction=minimize",
            f"model.base_url={llm.base_url}", "model.name=fake-model", "ideas.num_ideas=2",
            "ideas.num_reflections=2", "ideas.novelty_rounds=2", "writeup.plot_retries=1",
            "writeup.num_cite_rounds=2", "review.num_reviews_ensemble=2", "review.num_reflections=2",
            "review.num_fs_examples=0", *literature(scholar), *STAGE_ONE, f"hydra.run.dir={run_dir}"),
            cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
        assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((run_dir / "summary.json").read_text())
    assert [(p["name"], p["status"]) for p in s["phases"]] == [
        ("ideas", "done"), ("experiments", "done"), ("writeup", "done"), ("review", "done")]
    paper = s["paper"]
    assert paper["kind"] == "paper" and (run_dir / paper["pdf"]).read_bytes()[:4] == b"%PDF"
    text = subprocess.run(["pdftotext", str(run_dir / paper["pdf"]), "-"], capture_output=True, text=True).stdout
    assert "[?]" not in text and "generated autonomously by an AI system" in " ".join(text.split())
    assert "Power" in text  # the cited paper, from the literature search record
    assert paper["removed_citations"] == ["nanda2023progress"]  # the key no search returned
    integrity = json.loads((run_dir / "paper" / "integrity.json").read_text())
    assert "0.123456" in [u["number"] for u in integrity["untraced"]]
    review = json.loads((run_dir / "review.json").read_text())
    assert s["review"] == {"Overall": 4, "Decision": "Reject", "file": "review.json"}
    assert review["Summary"] == "Meta: thin evidence."
    assert set(s["llm_by_stage"]) >= {"ideas", "writeup", "review", "initial"}
    assert "Paper" in (run_dir / "viewer.html").read_text() and '"Meta: thin evidence."' in \
        (run_dir / "viewer.html").read_text()
