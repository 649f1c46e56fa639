"""The model-driven operators: draft / debug / improve write programs; feedback judges each run."""
from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.llm.providers import Tool
from engine.llm.service import LLM, CallContext
from engine.node_exec import NodeOutcome
from engine.prompts import render
from search.journal import Journal
from search.metric import MetricSpec
from search.node import Node
from search.operators import Proposal

FEEDBACK_TOOL = Tool(
    name="report",
    description="Report whether the run is buggy, with a short analysis of its results.",
    parameters={"type": "object", "properties": {
        "is_bug": {"type": "boolean", "description": "true if the run failed or its results cannot be trusted"},
        "analysis": {"type": "string", "description": "what the run shows, or what went wrong, in 2-5 sentences"},
    }, "required": ["is_bug", "analysis"]})
MEMORY_NODES = 12
OUTPUT_CHARS = 2500


@dataclass
class Context:
    """What every prompt of a run shares."""

    task_description: str
    idea: dict[str, Any]
    base_code: str
    support_files: list[str]
    spec_fn: Callable[[], MetricSpec | None]  # None until the baseline has named the metric
    timeout_s: float


def _metric_words(spec: MetricSpec | None) -> tuple[str, str]:
    if spec is None:
        return "the first metric of final_info.json", "higher or lower, as the baseline shows,"
    return spec.name, "higher" if spec.maximize else "lower"


class LLMProposer:
    def __init__(self, llm: LLM, ctx: Context):
        self.llm, self.ctx = llm, ctx
        self.name = f"llm ({llm.model_name('code')})"

    def _system(self) -> str:
        c = self.ctx
        idea = "\n".join(f"- {k}: {v}" for k, v in c.idea.items() if k != "generated_by")
        name, direction = _metric_words(c.spec_fn())
        return render("system", task_description=c.task_description, idea=idea,
                      support_files=", ".join(c.support_files) or "nothing else", metric_name=name,
                      metric_direction=direction, timeout_s=int(c.timeout_s))

    def _ask(self, prompt: str, target: Node | None) -> Proposal:
        call = CallContext(target.id, target.step, target.stage) if target else CallContext()
        text, code = self.llm.ask_code("code", self._system(), [{"role": "user", "content": prompt}], call)
        plan = text.split("```", 1)[0].strip() or "(no plan given)"
        return Proposal(plan, code)

    def draft(self, journal: Journal, rng: random.Random, target: Node | None = None) -> Proposal:
        return self._ask(render("draft", base_code=self.ctx.base_code), target)

    def improve(self, journal: Journal, node: Node, rng: random.Random, target: Node | None = None) -> Proposal:
        spec = self.ctx.spec_fn()
        name, direction = _metric_words(spec)
        prompt = render("improve", metric_name=name, metric_direction=direction,
                        parent_step=node.step, parent_metric=node.metric, parent_code=node.code,
                        parent_output=_tail(node), parent_analysis=node.analysis or "none",
                        memory=memory(journal, name))
        return self._ask(prompt, target)

    def debug(self, journal: Journal, node: Node, rng: random.Random, target: Node | None = None) -> Proposal:
        prompt = render("debug", node_step=node.step, code=node.code, bug_reason=node.bug_reason or "unknown",
                        output=_tail(node), analysis=node.analysis or "none")
        return self._ask(prompt, target)


class LLMReviewer:
    """After a run: is it buggy, and what does it show (structured output from the feedback role)."""

    def __init__(self, llm: LLM, spec_fn: Callable[[], MetricSpec | None]):
        self.llm, self.spec_fn = llm, spec_fn

    def __call__(self, node: Node, outcome: NodeOutcome) -> tuple[bool, str]:
        ex = outcome.result
        name, direction = _metric_words(self.spec_fn())
        prompt = render("feedback", plan=node.plan, code=node.code,
                        exit_status=ex.exit_code if ex.killed_reason is None else f"killed ({ex.killed_reason})",
                        output=(ex.stdout_tail + "\n" + ex.stderr_tail)[-OUTPUT_CHARS:],
                        final_info=json.dumps(ex.final_info)[:3000] if ex.final_info else "none",
                        metric_name=name, metric_direction=direction,
                        metric=node.metric if not node.is_buggy else f"none ({node.bug_reason})")
        answer = self.llm.ask_json("feedback", "You review machine-learning experiment runs.",
                                   [{"role": "user", "content": prompt}], FEEDBACK_TOOL,
                                   CallContext(node.id, node.step, node.stage))
        return bool(answer["is_bug"]), str(answer["analysis"])


def memory(journal: Journal, metric_name: str) -> str:
    lines = []
    for n in sorted(journal, key=lambda n: n.step)[-MEMORY_NODES:]:
        result = f"{metric_name} = {n.metric:.4g}" if not n.is_buggy and n.metric is not None else \
            f"buggy: {n.bug_reason[:120]}"
        lines.append(f"- node {n.step} ({n.operator}): {n.plan.splitlines()[0][:160] if n.plan else ''} -> {result}")
    return "\n".join(lines) or "nothing yet"


def _tail(node: Node) -> str:
    return (node.exec.stdout_tail + "\n" + node.exec.stderr_tail).strip()[-OUTPUT_CHARS:] or "(no output)"
