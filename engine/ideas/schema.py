"""The idea record (v1 and v2 fields), the tools the model answers through, and the check of a model's idea."""
from __future__ import annotations

import json
import re
from typing import Any

from engine.llm.providers import Tool

V2_TEXT = ("Short Hypothesis", "Related Work", "Abstract", "Experiments", "Risk Factors and Limitations")
SCORES = ("Interestingness", "Feasibility", "Novelty")  # 1-10, v1
V1_ONLY = ("Experiment",)

_IDEA_PROPERTIES: dict[str, Any] = {
    "Name": {"type": "string", "description": "a short snake_case identifier, unique among the ideas"},
    "Title": {"type": "string", "description": "the title a paper about this idea would have"},
    "Short Hypothesis": {"type": "string", "description": "the hypothesis, in two or three sentences"},
    "Related Work": {"type": "string", "description": "the closest published work and how this idea differs"},
    "Abstract": {"type": "string", "description": "an abstract of the paper this idea would become"},
    "Experiments": {"type": "string", "description": "the experiments that test the hypothesis, concretely"},
    "Risk Factors and Limitations": {"type": "string", "description": "what may go wrong, what it cannot show"},
} | {s: {"type": "integer", "minimum": 1, "maximum": 10} for s in SCORES}

IDEA_SCHEMA: dict[str, Any] = {"type": "object", "properties": _IDEA_PROPERTIES,
                               "required": ["Name", "Title", *V2_TEXT, *SCORES]}


def idea_tool(allow_search: bool) -> Tool:
    """The ideation step: search the literature, or give the idea (and say whether it is finished)."""
    actions = ["search", "idea"] if allow_search else ["idea"]
    props: dict[str, Any] = {
        "action": {"type": "string", "enum": actions},
        "idea": IDEA_SCHEMA,
        "done": {"type": "boolean", "description": "true when the idea needs no further refinement"},
    }
    if allow_search:
        props["query"] = {"type": "string", "description": "a literature search query (action=search)"}
        return Tool("propose_idea", "Search the literature (action=search, query) or give the idea "
                    "(action=idea, idea, done).", {"type": "object", "properties": props, "required": ["action"]})
    return Tool("give_idea", "Give the idea (action=idea, idea, done); no more searches this round.",
                {"type": "object", "properties": props, "required": ["action", "idea"]})


TOPIC_TOOL = Tool("check_topic", "Say whether the idea keeps to the research topic.", {
    "type": "object", "properties": {"on_topic": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["on_topic", "reason"]})


def novelty_tool(allow_search: bool) -> Tool:
    """A novelty round: another query, or the decision with the numbers of the papers it rests on."""
    props: dict[str, Any] = {
        "action": {"type": "string", "enum": ["search", "decide"] if allow_search else ["decide"]},
        "novel": {"type": "boolean"},
        "reason": {"type": "string", "description": "why the idea is or is not novel"},
        "papers": {"type": "array", "items": {"type": "integer"},
                   "description": "the [numbers] of the results the decision rests on"},
    }
    if allow_search:
        props["query"] = {"type": "string", "description": "a literature search query (action=search)"}
        return Tool("novelty_step", "Search the literature (action=search, query) or decide (action=decide, "
                    "novel, reason, papers).", {"type": "object", "properties": props, "required": ["action"]})
    return Tool("novelty_verdict", "Decide whether the idea is novel (action=decide, novel, reason, papers).",
                {"type": "object", "properties": props, "required": ["action", "novel", "reason"]})


def snake_case(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def as_text(value: Any) -> str | None:
    """A text field; a list (v2 files sometimes list their experiments) becomes one line per item."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list) and value:
        return "\n".join(f"- {v}" if isinstance(v, str) else f"- {json.dumps(v)}" for v in value)
    return None


def as_score(value: Any) -> int | None:
    """A 1-10 score, or None: a missing or out-of-range score is never guessed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 1 <= value <= 10 else None


def clean_model_idea(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """The model's idea with both field sets, and the problems that make it unusable (empty when fine)."""
    if not isinstance(raw, dict):
        return {}, ["the answer has no idea object"]
    problems = []
    name = snake_case(raw["Name"]) if isinstance(raw.get("Name"), str) else ""
    title = as_text(raw.get("Title"))
    if not name:
        problems.append("the idea has no Name")
    if not title:
        problems.append("the idea has no Title")
    idea: dict[str, Any] = {"Name": name, "Title": title}
    for key in V2_TEXT:
        idea[key] = as_text(raw.get(key))
    missing = [k for k in V2_TEXT if idea[k] is None]
    if missing:
        problems.append(f"the idea lacks the fields {missing}")
    idea["Experiment"] = idea["Experiments"]
    for key in SCORES:
        idea[key] = as_score(raw.get(key))
    idea["novel"] = None
    return idea, problems
