"""The run viewer in a real browser (Debian's headless Chromium): the tree renders and a node opens."""
import os
import re
import shutil
import subprocess

import pytest

from engine.rundir import RunDir
from engine.viewer import write_viewer
from search.journal import Journal
from search.node import ExecResult, Node

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed")


def make_run(tmp_path):
    run = RunDir(tmp_path / "run")
    root = Node(code="print('root')\n", plan="Baseline </script> <b>plan</b>", step=0, metric=0.5, is_buggy=False,
                exec=ExecResult(exit_code=0, stdout_tail="root output", final_info={"g": {"means": {"acc": 0.5}}},
                                plots=["acc.png"]))
    child = Node(code="print('child')\n", plan="Raise the learning rate.", operator="improve", parent_id=root.id,
                 step=1, metric=0.8, is_buggy=False, exec=ExecResult(exit_code=0, stdout_tail="child output"))
    bug = Node(code="raise ValueError('x')\n", plan="Break it.", operator="improve", parent_id=root.id, step=2,
               is_buggy=True, bug_reason="ValueError: x", exec=ExecResult(exit_code=1))
    for n in (root, child, bug):
        run.record(n, {"acc.png": b"\x89PNG\r\n\x1a\n"} if n is root else {})
    summary = {"topic": "toy", "run_dir": str(run.path), "proposer": "offline", "status": "finished",
               "primary_metric": {"name": "acc", "direction": "maximize"}, "baseline": 0.5,
               "best": {"node_id": child.id, "step": 1, "value": 0.8}, "nodes": {"total": 3, "good": 2, "buggy": 1}}
    return run, Journal([root, child, bug]), summary, (root, child, bug)


def dump_dom(page, fragment=""):
    res = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={page.parent / '.chromium'}", "--dump-dom", f"file://{page}{fragment}"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@needs_chromium
def test_tree_renders_and_a_node_opens_in_chromium(tmp_path):
    run, journal, summary, (root, child, bug) = make_run(tmp_path)
    page = write_viewer(run, journal, summary)
    dom = dump_dom(page)
    assert len(re.findall(r'class="node[^"]*" data-id=', dom)) == 3
    assert "Stage: initial" in dom and "buggy: ValueError: x" in dom
    assert "Click a node to open it." in dom
    opened = dump_dom(page, f"#node={root.id}")
    assert 'id="node-title">Node #0 (draft, stage initial)' in opened
    assert "Baseline &lt;/script&gt; &lt;b&gt;plan&lt;/b&gt;" in opened  # text is escaped, never markup
    assert "print('root')" in opened and f'src="{run.node_dir(root).name}' not in opened
    assert f'src="nodes/{run.node_dir(root).name}/acc.png"' in opened


@needs_chromium
def test_stages_show_how_they_ended_and_nodes_their_change_and_critique(tmp_path):
    run, journal, summary, (root, child, bug) = make_run(tmp_path)
    copy = Node(code=child.code, plan="Start of stage tuning.", operator="copy", stage="tuning", step=3, metric=0.8,
                is_buggy=False, copied_from=child.id)
    tuned = Node(code="print('tuned')\n", plan="Tune it.", operator="improve", stage="tuning", step=4,
                 parent_id=copy.id, metric=0.9, is_buggy=False, change="learning_rate",
                 plot_feedback="Curves fall smoothly.", plots_valid=True)
    for n in (copy, tuned):
        run.record(n, {})
        journal.add(n)
    summary["stages"] = [
        {"name": "initial", "title": "Initial investigation", "nodes": 3, "best_value": 0.8, "seed_mean": 0.79,
         "seed_stderr": 0.01, "completed": True, "why": "node 1 works"},
        {"name": "tuning", "title": "Hyperparameter tuning", "nodes": 1, "best_value": 0.9, "seed_mean": None,
         "seed_stderr": None, "completed": None, "why": "running"}]
    page = write_viewer(run, journal, summary)
    dom = dump_dom(page)
    assert "Stage: Initial investigation" in dom and "complete: node 1 works" in dom
    assert 'href="stages/initial/seeds.png"' in dom and "Stage: Hyperparameter tuning" in dom
    assert "improve [learning_rate]" in dom
    opened = dump_dom(page, f"#node={tuned.id}")
    assert "Change: <b>learning_rate</b>" in opened and "Plot critique (valid)" in opened
    assert "Curves fall smoothly." in opened
    opened = dump_dom(page, f"#node={copy.id}")
    assert f'href="#node={child.id}">#1</a>' in opened


@needs_chromium
def test_phases_ideas_paper_and_review_views_in_chromium(tmp_path):
    from engine.rundir import write_json
    run, journal, summary, _ = make_run(tmp_path)
    summary["phases"] = [{"name": "ideas", "status": "done", "wall_time_s": 12.0, "cost_usd": 0.01},
                         {"name": "experiments", "status": "done", "wall_time_s": 50.0, "cost_usd": 0.1},
                         {"name": "writeup", "status": "done", "wall_time_s": 30.0, "cost_usd": 0.05},
                         {"name": "review", "status": "skipped", "wall_time_s": 0, "cost_usd": 0.0,
                          "why": "no model <configured>"}]
    paper = {"title": "Grokking: <Generalization>", "authors": ["A. Power", "Y. Burda"], "venue": "ICLR",
             "year": 2022, "citation_count": 350}
    write_json(run.path / "ideas.json", {"chosen": "wd", "ideas": [
        {"Name": "wd", "Title": "Weight decay and grokking", "Interestingness": 7, "Feasibility": 8, "Novelty": 6,
         "Short Hypothesis": "Decay makes it grok sooner.", "novel": True,
         "novelty": {"decision": "novel", "reason": "no paper varies decay this way", "papers": [paper]}},
        {"Name": "lr", "Title": "Learning rate", "novel": False, "novelty": {"decision": "not novel", "papers": []}}],
        "dropped": [{"Name": "cook", "Title": "Cooking pasta", "reason": "off the topic"}]})
    write_json(run.path / "idea.json", {"Name": "wd"})
    write_json(run.path / "phases" / "writeup.json", {"status": "done", "outputs": {
        "pdf": "paper/paper.pdf", "kind": "paper", "pages": 4, "figures": 5, "citations": 7}})
    write_json(run.path / "paper" / "integrity.json", {"untraced": [{"number": "87.3", "context": "we reach 87.3%"}],
                                                       "checks": {"refs": {"ok": True, "findings": []}}})
    write_json(run.path / "review.json", {"Overall": 4, "Decision": "Reject", "Summary": "A small study.",
                                          "Strengths": ["clear"], "Weaknesses": ["tiny <models>"],
                                          "Questions": [], "Ensemble": [{"Overall": 3}]})
    page = write_viewer(run, journal, summary)
    dom = dump_dom(page)
    assert len(re.findall(r'<tr class="phase"><td>(?!\$)', dom)) == 4 and 'href="#ideas">ideas</a>' in dom
    assert "no model &lt;configured&gt;" in dom
    ideas = dump_dom(page, "#ideas")
    assert "Weight decay and grokking" in ideas and "<b>chosen</b>" in ideas
    assert re.search(r'class="novelty">novel<', ideas) and re.search(r'class="novelty">not novel<', ideas)
    assert "Grokking: &lt;Generalization&gt;" in ideas and "350 citations" in ideas
    assert "Cooking pasta: off the topic" in ideas
    opened = dump_dom(page, "#paper")
    assert 'id="paper-link" href="paper/paper.pdf"' in opened and "87.3: we reach 87.3%" in opened
    review = dump_dom(page, "#review")
    assert 'id="review-Overall">4<' in review and 'id="review-Decision">Reject<' in review
    assert "tiny &lt;models&gt;" in review
