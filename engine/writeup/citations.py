"""The paper's references: up to `writeup.num_cite_rounds` rounds in which the model names what the reference
list lacks and a query, the literature search answers, and the model picks papers from the results by number.

BibTeX comes from the search results (Paper.bibtex()), never from the model. The state is saved after every
round in paper/citations.json, so a resumed run continues where it stopped (the literature cache answers the
queries already made without a request). A failing literature search ends the rounds with a warning."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.literature.errors import LiteratureError
from engine.llm.fence import fence, with_data_rule
from engine.llm.providers import Tool
from engine.llm.service import LLM, CallContext
from engine.prompts import render_from
from engine.rundir import RECOVER, read_json, write_json

log = logging.getLogger(__name__)
PROMPTS = Path(__file__).resolve().parent / "prompts"
CTX = CallContext(stage="writeup")

NEXT_TOOL = Tool("next_search", "Say what the reference list lacks and the query that would find it, or that it "
                 "is complete.", {"type": "object", "properties": {
                     "done": {"type": "boolean", "description": "true when the reference list is complete"},
                     "missing": {"type": "string", "description": "what the list still lacks"},
                     "query": {"type": "string", "description": "a short keyword query for the search engine"}},
                     "required": ["done"]})
PICK_TOOL = Tool("pick_papers", "Pick the search results the paper should cite, by their numbers.", {
    "type": "object", "properties": {
        "indices": {"type": "array", "items": {"type": "integer"}, "description": "numbers in brackets"},
        "reason": {"type": "string"}}, "required": ["indices"]})


@dataclass
class CitationState:
    rounds: list[dict[str, Any]] = field(default_factory=list)  # {query, missing, found, picked}
    records: list[dict[str, Any]] = field(default_factory=list)  # {key, title, year, bibtex, paper}
    done: bool = False
    warning: str | None = None

    def keys(self) -> list[str]:
        return [r["key"] for r in self.records]


def load_state(path: Path) -> CitationState:
    raw = read_json(path)
    if raw is None:
        return CitationState()
    if not isinstance(raw, dict):
        raise EngineError(f"{path}: damaged (not a mapping); {RECOVER}")
    return CitationState(raw.get("rounds", []), raw.get("records", []), bool(raw.get("done")), raw.get("warning"))


def save_state(path: Path, state: CitationState) -> None:
    write_json(path, {"rounds": state.rounds, "records": state.records, "done": state.done,
                      "warning": state.warning})


def gather_citations(llm: LLM, literature: Any, idea_text: str, facts_text: str, paper_dir: Path,
                     max_rounds: int) -> CitationState:
    """The reference list, built or continued in paper_dir/citations.json. `literature` is anything with
    .search(query, limit=None) -> list[Paper]."""
    path = paper_dir / "citations.json"
    state = load_state(path)
    role = "citation" if llm.has("citation") else "writeup"
    system = with_data_rule(render_from(PROMPTS, "cite_system"))
    state.warning = None  # a search that failed last time is tried again
    while not state.done and len(state.rounds) < max_rounds:
        answer = llm.ask_json(role, system, [{"role": "user", "content": render_from(
            PROMPTS, "cite_next", idea=idea_text, facts=facts_text, have=_have(state), history=_history(state),
            round=len(state.rounds) + 1, rounds=max_rounds)}], NEXT_TOOL, CTX)
        query = str(answer.get("query") or "").strip()
        if answer.get("done") or not query:
            state.done = True
            break
        missing = str(answer.get("missing") or "")
        try:
            papers = list(literature.search(query))
        except LiteratureError as e:
            state.warning = f"the literature search failed, so the citation rounds stopped: {e}"
            log.warning("writeup: %s", state.warning)
            break
        picked = _pick(llm, role, system, query, missing, papers, state) if papers else []
        state.rounds.append({"query": query, "missing": missing, "found": len(papers), "picked": picked})
        save_state(path, state)
    if len(state.rounds) >= max_rounds:
        state.done = True
    save_state(path, state)
    return state


def _pick(llm: LLM, role: str, system: str, query: str, missing: str, papers: list[Any],
          state: CitationState) -> list[str]:
    listing = fence("\n\n".join(f"[{i}] {p.prompt_text()}" for i, p in enumerate(papers)), "search results")
    answer = llm.ask_json(role, system, [{"role": "user", "content": render_from(
        PROMPTS, "cite_pick", query=query, missing=missing or "(not said)", results=listing, have=_have(state))}],
        PICK_TOOL, CTX)
    picked = []
    for i in answer.get("indices") or []:
        if isinstance(i, int) and 0 <= i < len(papers):
            key = add_paper(state, papers[i])
            if key and key not in picked:
                picked.append(key)
    return picked


def add_paper(state: CitationState, paper: Any) -> str | None:
    """Add a search result to the list; its key (made unique when another paper has it), or None if listed."""
    info = paper.to_dict()
    if any(_same(r["paper"], info) for r in state.records):
        return None
    key, bibtex = paper.bibtex_key, paper.bibtex()
    taken = set(state.keys())
    if key in taken:
        new = next(f"{key}{c}" for c in "bcdefghijklmnopqrstuvwxyz" if f"{key}{c}" not in taken)
        bibtex = re.sub(r"(@\w+\s*\{\s*)" + re.escape(key) + r"\s*,", lambda m: f"{m.group(1)}{new},", bibtex,
                        count=1)
        key = new
    state.records.append({"key": key, "title": info.get("title", ""), "year": info.get("year"), "bibtex": bibtex,
                          "paper": info})
    return key


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    for k in ("doi", "arxiv_id"):
        if a.get(k) and a.get(k) == b.get(k):
            return True
    return _norm(a.get("title")) == _norm(b.get("title")) and a.get("year") == b.get("year")


def _norm(title: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(title or "").lower())


def _have(state: CitationState) -> str:
    listing = "\n".join(f"- {r['key']}: {r['title']} ({r.get('year') or 'n.d.'})" for r in state.records)
    return fence(listing, "reference list") if listing else "(none yet)"


def _history(state: CitationState) -> str:
    return "\n".join(f"- {r['query']}: {', '.join(r['picked']) or 'nothing picked'} ({r['found']} results)"
                     for r in state.rounds) or "(none yet)"
