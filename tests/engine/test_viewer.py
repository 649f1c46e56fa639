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
                          "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
                          f"--user-data-dir={page.parent / '.chromium'}", "--dump-dom", f"file://{page}{fragment}"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Uncaught" not in res.stderr, res.stderr[-2000:]  # the page's script ran to its end
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
    write_json(run.path / "paper" / "integrity.json", {"untraced": [
        {"number": "87.3", "context": "we reach 87.3%"},  # as an integrity.json before issue 20 has it
        {"number": "8.3%", "sentence": "It needs 8.3% more steps.", "problem": "wrong sign"}],
        "checks": {"refs": {"ok": True, "findings": []}}})
    write_json(run.path / "review.json", {"Overall": 4, "Decision": "Reject", "Summary": "A small study.",
                                          "Strengths": ["clear"], "Weaknesses": ["tiny <models>"],
                                          "Questions": [], "Ensemble": [{"Overall": 3}],
                                          "integrity_flag": "hidden text (white <text> on page 2); rejected"})
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
    assert "8.3% (wrong direction): It needs 8.3% more steps." in opened
    review = dump_dom(page, "#review")
    assert 'id="review-Overall">4<' in review and 'id="review-Decision">Reject<' in review
    assert "tiny &lt;models&gt;" in review
    assert "<b>Integrity:</b> hidden text (white &lt;text&gt; on page 2); rejected" in review


T0 = 1_700_000_000.0


def ran(slot, created, submitted, started, run_s, old=False, **fields):
    """A node as the driver leaves it: proposed at `created`, handed to `slot` at `submitted`, run from `started`
    for `run_s` (seconds after T0). `old`: a run from before nodes kept their slot and hand-over time."""
    node = Node(code=fields.pop("code", "x"), exec=ExecResult(exit_code=1 if fields.get("is_buggy") else 0,
                                                               final_info=fields.pop("final_info", None)),
                created_at=T0 + created, finished_at=T0 + started + run_s + 0.1, **fields)
    node.exec.started_at, node.exec.exec_time_s = T0 + started, run_s
    node.submitted_at, node.slot = (None, None) if old else (T0 + submitted, slot)
    return node


def graph_run(tmp_path, old=False):
    """Two stages on two slots: drafts, a buggy improve, two seed runs of the stage's best, a copy, a tuned node.
    The metric is a loss (minimize). Text a node carries holds markup that must stay text."""
    run = RunDir(tmp_path / ("old" if old else "run"))
    a = ran(0, 0, 2, 2.2, 10, old, plan="Draft A.", step=0, metric=0.3, is_buggy=False)
    b = ran(1, 0, 3, 3.2, 8, old, plan="Draft B.", step=1, metric=0.5, is_buggy=False)
    bug = ran(0, 12.5, 14, 14.2, 3, old, plan="Break it.", operator="improve", parent_id=a.id, step=2, is_buggy=True,
              bug_reason='ValueError: <b id="pwn">x</b>')
    seeds = [ran(k - 1, 20, 20, 20.2, 5, old, plan="Seed.", operator="seed", parent_id=a.id, step=2 + k,
                 metric=0.3 + k / 100, change=f"seed_offset={k}", is_buggy=False) for k in (1, 2)]
    copy = Node(code="x", plan="Start of stage tuning.", operator="copy", stage="tuning", step=5, metric=0.3,
                is_buggy=False, copied_from=a.id, exec=ExecResult(exit_code=0, started_at=T0 + 2.2, exec_time_s=10),
                created_at=T0 + 26, finished_at=T0 + 26)
    tuned = ran(1, 26, 28, 28.2, 6, old, plan="Tune it.", operator="improve", stage="tuning", step=6,
                parent_id=copy.id, metric=0.2, change='<script>alert("pwn")</script>', is_buggy=False,
                final_info={"g": {"means": {"loss": float("nan"), "note": "<i>x</i>"}}})  # NaN: diverged
    nodes = [a, b, bug, *seeds, copy, tuned]
    for n in nodes:
        run.record(n, {})
    summary = {"topic": "toy", "run_dir": str(run.path), "proposer": "offline", "status": "finished",
               "primary_metric": {"name": "loss", "direction": "minimize"}, "baseline": 0.3,
               "best": {"node_id": tuned.id, "step": 6, "value": 0.2}, "slot_utilization": 0.75,
               "nodes": {"total": 7, "good": 6, "buggy": 1}}
    return run, Journal(nodes), summary, {n.step: n for n in nodes}


def rendered(dom):
    """The page as drawn: without its scripts (their source holds the same markup as templates)."""
    return re.sub(r"<script\b.*?</script>", "", dom, flags=re.S)


def fill(dom, node):
    dot = r'<circle class="dot"[^>]* fill="rgb\((\d+), (\d+), (\d+)\)"'
    m = re.search(rf'data-id="{node.id}">(?:(?!</g>).)*?{dot}', dom)
    assert m, f"no circle for node {node.step}"
    r, g, b = map(int, m.groups())
    return 0.299 * r + 0.587 * g + 0.114 * b  # the scale runs dark (worse) to bright (better)


@needs_chromium
def test_stage_graphs_and_slot_timeline_in_chromium(tmp_path):
    run, journal, summary, node = graph_run(tmp_path)
    summary["slots"] = 3  # slot 2 never ran anything: its lane shows it idle
    page = write_viewer(run, journal, summary)
    # a click on node 1's circle in the graph, as a user would (dump-dom cannot click)
    clicked = page.with_name("clicked.html")
    clicked.write_text(page.read_text().replace("</body>", "<script>document.querySelector("
                       f"'.gnode[data-id=\"{node[1].id}\"] circle').dispatchEvent(new MouseEvent('click', "
                       "{bubbles: true}));</script></body>"))
    dom = rendered(dump_dom(clicked))
    graphs = re.findall(r'<svg class="tree-graph".*?</svg>', dom, flags=re.S)
    assert [g.count('<circle class="dot"') for g in graphs] == [3, 2]  # seed runs are squares
    assert graphs[0].count('<rect class="dot"') == 2 and 'data-stage="tuning"' in graphs[1]
    assert re.search(rf'class="gnode buggy" data-id="{node[2].id}">(?:(?!</g>).)*class="cross"', dom)
    assert re.search(rf'class="gnode best" data-id="{node[6].id}">(?:(?!</g>).)*class="best-ring"', dom)
    assert 'stroke-dasharray="3 2"' in graphs[1]  # the copy, carried over
    # minimize: the lower the loss, the brighter, across stages; a stage's colours are the run's
    assert fill(dom, node[6]) > fill(dom, node[5]) == fill(dom, node[0]) > fill(dom, node[1])
    # the timeline: a lane per slot, a bar per node that ran (the copy ran nothing), proposals before search nodes
    assert dom.count('<rect class="lane"') == 3 and "slot utilization 75%" in dom
    assert dom.count('<rect class="bar ') == 6 and dom.count('<rect class="proposal"') == 4
    assert f'data-id="{node[5].id}" data-lane' not in dom and dom.count('class="stage-start"') == 2
    lanes = dict(re.findall(r'class="tl [^"]*" data-id="(\w+)" data-lane="(\d+)"', dom))
    assert [lanes[node[s].id] for s in (0, 1, 2, 3, 4, 6)] == ["0", "1", "0", "0", "1", "1"]
    assert 'class="bar seed"' in dom and 'class="bar buggy"' in dom
    # the click opened node 1, marked in the graph and the timeline
    assert 'id="node-title">Node #1 (draft, stage initial)' in dom
    assert f'class="gnode sel" data-id="{node[1].id}"' in dom and f'class="tl search sel" data-id="{node[1].id}"' in dom
    assert re.search(r'id="node-when">slot 1 · program written in 3s · run from 3.2s to 11s into the run', dom)
    # text from a node stays text in SVG titles too
    assert '<b id="pwn">' not in dom and '&lt;b id="pwn"&gt;' in dom
    assert "<script>alert(" not in dom and '&lt;script&gt;alert("pwn")' in dom


@needs_chromium
def test_an_old_run_without_slots_gets_lanes_inferred(tmp_path):
    run, journal, summary, node = graph_run(tmp_path, old=True)
    del summary["slot_utilization"]
    page = write_viewer(run, journal, summary)
    assert "NaN" not in page.read_text() and '"loss": "nan"' in page.read_text()  # JSON.parse refuses NaN
    dom = rendered(dump_dom(page, f"#node={node[6].id}"))
    assert dom.count('<circle class="dot"') == 5 and "lanes inferred" in dom and "utilization" not in dom
    assert dom.count('<rect class="lane"') == 2 and dom.count('<rect class="bar ') == 6
    lanes = dict(re.findall(r'class="tl [^"]*" data-id="(\w+)" data-lane="(\d+)"', dom))
    assert lanes[node[6].id] == "0"  # the first lane free when it was proposed (it ran on slot 1)
    assert 'id="node-title">Node #6 (improve, stage tuning)' in dom and "<td>loss</td><td>nan</td>" in dom
    assert "<td>&lt;i&gt;x&lt;/i&gt;</td>" in dom  # a value that is text stays text
