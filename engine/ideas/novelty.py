"""The novelty check of one idea: up to `rounds` model rounds, each a literature query (top-10 results shown
with [numbers]) or the decision, novel or not, with the reason and the papers it rests on.

Every query and every result list is checkpointed, and the conversation is rebuilt from the checkpoint, so a
rerun repeats no finished model round and no finished query. When the literature is down the idea is recorded
as unchecked (never as novel or not novel), and that outcome is not checkpointed: a later rerun tries again.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.ideas.library import Library, LiteratureDown, paper_record, render_results
from engine.ideas.schema import SCORES, novelty_tool
from engine.llm.fence import with_data_rule
from engine.llm.service import LLM, CallContext, LLMCallError
from engine.prompts import render_from

log = logging.getLogger(__name__)

PROMPTS = Path(__file__).resolve().parent / "prompts"
ROLE = "ideation"
SHOWN_FIELDS = ("Name", "Title", "Short Hypothesis", "Related Work", "Abstract", "Experiments",
                "Risk Factors and Limitations")


def idea_text(idea: dict[str, Any], scores: bool = False) -> str:
    """The idea's content fields as JSON for a prompt (v1 ideas show their Experiment instead); its own 1-10
    scores only when asked (the model refining it sees them, a judge does not)."""
    shown = {k: idea[k] for k in SHOWN_FIELDS if idea.get(k)}
    if not idea.get("Experiments") and idea.get("Experiment"):
        shown["Experiment"] = idea["Experiment"]
    if scores:
        shown |= {k: idea.get(k) for k in SCORES}
    return json.dumps(shown, indent=2)


def unchecked(reason: str, queries: list[str] | None = None) -> dict[str, Any]:
    return {"decision": "unchecked", "reason": reason, "rounds": 0, "queries": queries or [], "papers": []}


def check_novelty(llm: LLM, idea: dict[str, Any], state: dict[str, Any], save: Callable[[], None],
                  library: Library, rounds: int, call: CallContext, check: Callable[[], None]) -> dict[str, Any]:
    """The novelty record {decision, reason, rounds, queries, papers}; state["novelty"] holds the progress and
    `save` checkpoints it; `check` raises when the phase is being stopped."""
    nov = state.setdefault("novelty", {"rounds": [], "decision": None})
    if nov.get("decision"):
        return nov["decision"]
    done = nov["rounds"]
    try:
        while True:
            check()
            if done and done[-1]["results"] is None:  # the query of an interrupted round
                done[-1]["results"] = library.search(done[-1]["query"])  # literature.results_per_query of them
                save()
            allow_search = len(done) + 1 < rounds
            answer = llm.ask_json(ROLE, with_data_rule(render_from(PROMPTS, "novelty_system")),
                                  _conversation(idea, done, rounds), novelty_tool(allow_search), call)
            query = answer.get("query")
            if answer.get("action") == "search" and allow_search and isinstance(query, str) and query.strip():
                done.append({"query": query.strip(), "results": None})
                save()
                continue
            if not isinstance(answer.get("novel"), bool):
                return unchecked(f"the model gave no decision after {len(done) + 1} rounds", _queries(done))
            nov["decision"] = _decision(answer, done)
            save()
            return nov["decision"]
    except LiteratureDown as e:
        return unchecked(f"literature search failed: {e}", _queries(done))
    except LLMCallError as e:
        log.warning("novelty check of %s: %s", idea.get("Name"), e)
        return unchecked(f"model call failed: {e}", _queries(done))


def _queries(done: list[dict[str, Any]]) -> list[str]:
    return [r["query"] for r in done]


def _numbered(done: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Every paper seen so far, each once, and the [number] of each result of each round."""
    seen: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    numbers = []
    for r in done:
        nums = []
        for p in r["results"] or []:
            key = str(p.get("id") or p.get("title"))
            if key not in index:
                seen.append(p)
                index[key] = len(seen)
            nums.append(index[key])
        numbers.append(nums)
    return seen, numbers


def _conversation(idea: dict[str, Any], done: list[dict[str, Any]], rounds: int) -> list[dict[str, Any]]:
    messages = [{"role": "user", "content": render_from(PROMPTS, "novelty_start", idea=idea_text(idea),
                                                        rounds=rounds)}]
    _, numbers = _numbered(done)
    for i, (r, nums) in enumerate(zip(done, numbers)):
        last = "\nThis is the last round: decide now." if i + 2 == rounds else ""
        messages += [{"role": "assistant", "content": json.dumps({"action": "search", "query": r["query"]})},
                     {"role": "user", "content": render_from(PROMPTS, "novelty_results", query=r["query"],
                                                             results=render_results(r["results"], nums),
                                                             round=i + 2, rounds=rounds, last=last)}]
    return messages


def _decision(answer: dict[str, Any], done: list[dict[str, Any]]) -> dict[str, Any]:
    seen, _ = _numbered(done)
    cited = []
    for n in answer.get("papers") or []:
        if isinstance(n, int) and 1 <= n <= len(seen) and n not in cited:
            cited.append(n)
    return {"decision": "novel" if answer["novel"] else "not novel", "reason": str(answer.get("reason") or ""),
            "rounds": len(done) + 1, "queries": _queries(done), "papers": [paper_record(seen[n - 1]) for n in cited]}
