"""The run viewer: one static HTML page in the run directory (viewer.html), openable from disk, no server.

It shows the pipeline's phases, the ideas (scores, novelty decision and the papers it rests on: #ideas), the paper
with its integrity findings (#paper), its review (#review), a timeline of the slots (which node wrote and ran its
program on which slot, when), and each stage's tree as a graph coloured by the primary metric; a click on a node
(or #node=<id> in the address) opens its plan, code, output, metrics and plots. The page draws its own SVG: no
library, no network. It is rewritten whenever a node or a phase finishes."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from engine.rundir import RunDir, read_json, write_atomic
from search.journal import Journal
from search.node import TREE_FIELDS, Node, node_record

PAGE = Path(__file__).resolve().parent / "viewer_page.html"
OUTPUT_CHARS = 4000


VIEWER_FIELDS = TREE_FIELDS + ("code", "analysis", "final_info", "plot_feedback")


def viewer_data(run: RunDir, journal: Journal, summary: dict[str, Any]) -> dict[str, Any]:
    nodes = []
    for n in sorted(journal, key=lambda n: n.step):
        folder = run.node_dir(n).relative_to(run.path).as_posix()
        rec = node_record(n, VIEWER_FIELDS)  # the one serialization of a node (search/node.py), plus the page's own
        nodes.append(rec | {
            "parent": n.parent_id, "buggy": bool(n.is_buggy), "exec_time_s": round(n.exec.exec_time_s, 1),
            "output": (n.exec.stdout_tail + "\n" + n.exec.stderr_tail).strip()[-OUTPUT_CHARS:],
            "plots": [f"{folder}/{p}" for p in n.exec.plots],
        } | timing(n))
    return {"summary": summary, "nodes": nodes} | pipeline_data(run.path)


def timing(n: Node) -> dict[str, Any]:
    """When the node's program was being written, handed to a slot, run and recorded (seconds since the epoch),
    and on which slot; None where unknown (runs from before these were kept). A copy ran nothing: its run is its
    source's, so it has no run of its own here."""
    ran = n.operator != "copy"
    started = n.exec.started_at if ran else None
    return {"created_at": n.created_at, "submitted_at": n.submitted_at if ran else None,
            "started_at": started, "ended_at": None if started is None else started + n.exec.exec_time_s,
            "finished_at": n.finished_at, "slot": n.slot if ran else None}


def json_safe(x: Any) -> Any:
    """`x` with NaN and infinities as text ("nan", "inf"): JSON.parse refuses them, and one diverged loss in a
    node's final_info would leave the whole page blank."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


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
    data = json.dumps(json_safe(viewer_data(run, journal, summary)), default=str, allow_nan=False)
    # inside <script>, "</" must not appear literally
    page = PAGE.read_text().replace("__DATA__", data.replace("</", "<\\/")).replace(
        "__TITLE__", html.escape(f"{summary.get('topic', 'run')}: {Path(str(summary.get('run_dir', ''))).name}"))
    out = run.path / "viewer.html"
    write_atomic(out, page)
    return out
