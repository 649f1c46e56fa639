"""The run viewer: one static HTML page in the run directory (viewer.html), openable from disk, no server.

It shows the pipeline's phases, the ideas (scores, novelty decision and the papers it rests on: #ideas), the paper
with its integrity findings (#paper), its review (#review), and each stage's tree; a click on a node (or
#node=<id> in the address) opens its plan, code, output, metrics and plots. The page is rewritten whenever a node
or a phase finishes."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from engine.rundir import RunDir, read_json, write_atomic
from search.journal import Journal

PAGE = Path(__file__).resolve().parent / "viewer_page.html"
OUTPUT_CHARS = 4000


def viewer_data(run: RunDir, journal: Journal, summary: dict[str, Any]) -> dict[str, Any]:
    nodes = []
    for n in sorted(journal, key=lambda n: n.step):
        folder = run.node_dir(n).relative_to(run.path).as_posix()
        nodes.append({
            "id": n.id, "step": n.step, "parent": n.parent_id, "stage": n.stage, "operator": n.operator,
            "plan": n.plan, "code": n.code, "metric": n.metric, "buggy": bool(n.is_buggy),
            "bug_reason": n.bug_reason, "analysis": n.analysis, "exec_time_s": round(n.exec.exec_time_s, 1),
            "output": (n.exec.stdout_tail + "\n" + n.exec.stderr_tail).strip()[-OUTPUT_CHARS:],
            "final_info": n.exec.final_info, "plots": [f"{folder}/{p}" for p in n.exec.plots],
            "change": n.change, "copied_from": n.copied_from, "plot_feedback": n.plot_feedback,
            "plots_valid": n.plots_valid,
        })
    return {"summary": summary, "nodes": nodes} | pipeline_data(run.path)


def pipeline_data(run_dir: Path) -> dict[str, Any]:
    """What the other phases left: the ideas with their novelty decisions, the paper and its checks, the review."""
    ideas = read_json(run_dir / "ideas.json")
    if isinstance(ideas, list):
        ideas = {"ideas": ideas, "dropped": []}
    chosen = read_json(run_dir / "idea.json")
    review = read_json(run_dir / "review.json")
    if isinstance(review, dict):
        review = {k: v for k, v in review.items() if k != "Ensemble"}
    paper = None
    marker = read_json(run_dir / "phases" / "writeup.json")
    if marker and marker.get("status") == "done":
        paper = dict(marker["outputs"]) | {"integrity": read_json(run_dir / "paper" / "integrity.json")}
    return {"ideas": ideas, "chosen_idea": (chosen or {}).get("Name"), "paper": paper, "review": review}


def write_viewer(run: RunDir, journal: Journal, summary: dict[str, Any]) -> Path:
    data = json.dumps(viewer_data(run, journal, summary), default=str)
    # inside <script>, "</" must not appear literally
    page = PAGE.read_text().replace("__DATA__", data.replace("</", "<\\/")).replace(
        "__TITLE__", html.escape(f"{summary.get('topic', 'run')}: {Path(str(summary.get('run_dir', ''))).name}"))
    out = run.path / "viewer.html"
    write_atomic(out, page)
    return out
