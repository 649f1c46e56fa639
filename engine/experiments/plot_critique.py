"""Plot critique: a vision-capable model reads a node's PNGs and judges whether they show a sound run."""
from __future__ import annotations

import logging
from typing import Any

from engine.experiments.llm_proposer import render
from engine.llm.providers import Tool
from engine.llm.service import LLM, CallContext
from engine.nodes.node_exec import NodeOutcome
from search.node import Node

log = logging.getLogger(__name__)

CRITIQUE_TOOL = Tool(
    name="critique",
    description="Report what each plot shows and whether together they show a sound, stable run.",
    parameters={"type": "object", "properties": {
        "plots": {"type": "array", "items": {"type": "object", "properties": {
            "file": {"type": "string"}, "analysis": {"type": "string"}}, "required": ["file", "analysis"]}},
        "summary": {"type": "string", "description": "what the plots show together, in 2-4 sentences"},
        "valid": {"type": "boolean",
                  "description": "true if the curves are stable and the plots are readable and consistent"},
    }, "required": ["plots", "summary", "valid"]})


def vision_unavailable(llm: LLM | None) -> str | None:
    """Why plots cannot be critiqued, or None when a vision-capable model is configured."""
    if llm is None:
        return "no model configured"
    if not llm.has("vision"):
        return "no model for the vision role"
    if not llm.roles["vision"].vision:
        return (f"model {llm.model_name('vision')} (role vision) does not read images; "
                "set llm.roles.vision=<a vision-capable model in conf/model/>")
    return None


def choose_plots(plots: list[str], limit: int) -> list[str]:
    """At most `limit` plots, spread evenly over the node's list (sorted by name), so no one family fills it."""
    if len(plots) <= limit:
        return list(plots)
    step = len(plots) / limit
    return [plots[int(i * step)] for i in range(limit)]


class PlotCritic:
    def __init__(self, llm: LLM, max_plots: int):
        self.llm, self.max_plots = llm, max_plots

    def __call__(self, node: Node, outcome: NodeOutcome) -> None:
        """Sets node.plot_feedback and node.plots_valid (both stay empty when the node drew nothing)."""
        chosen = [p for p in choose_plots(outcome.result.plots, self.max_plots) if p in outcome.artifacts]
        if not chosen:
            return
        prompt = render("plot_critique", plan=node.plan, files="\n".join(f"{i + 1}. {p}" for i, p in
                                                                         enumerate(chosen)))
        answer: dict[str, Any] = self.llm.ask_json(
            "vision", "You review the figures of machine-learning experiments.",
            [{"role": "user", "content": prompt, "images": [outcome.artifacts[p] for p in chosen]}],
            CRITIQUE_TOOL, CallContext(node.id, node.step, node.stage))
        per_plot = [f"- {p.get('file', '?')}: {p.get('analysis', '')}" for p in answer.get("plots") or []
                    if isinstance(p, dict)]
        node.plots_valid = bool(answer["valid"])
        node.plot_feedback = "\n".join([str(answer["summary"]), *per_plot])
