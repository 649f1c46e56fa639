"""The model-driven operators: draft / debug / improve write programs; feedback judges each run."""
from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.llm.fence import fence, with_data_rule
from engine.llm.parsing import ParseError
from engine.llm.providers import Tool
from engine.llm.service import LLM, CallContext
from engine.nodes.node_exec import NodeOutcome
from engine.prompts import render_from
from search.journal import Journal
from search.metric import MetricSpec
from search.node import Node
from search.operators import Proposal, StageBrief

PROMPTS = Path(__file__).resolve().parent / "prompts"  # the search operators' prompts


def render(name: str, **values: object) -> str:
    """A prompt of the search operators (engine/experiments/prompts/<name>.md) with its $placeholders filled."""
    return render_from(PROMPTS, name, **values)


FEEDBACK_TOOL = Tool(
    name="report",
    description="Report whether the run is buggy, with a short analysis of its results.",
    parameters={"type": "object", "properties": {
        "is_bug": {"type": "boolean", "description": "true if the run failed or its results cannot be trusted"},
        "analysis": {"type": "string", "description": "what the run shows, or what went wrong, in 2-5 sentences"},
    }, "required": ["is_bug", "analysis"]})
SELECT_TOOL = Tool(
    name="choose",
    description="Choose the node the next stage should start from.",
    parameters={"type": "object", "properties": {
        "step": {"type": "integer", "description": "the step number of the chosen node"},
        "reason": {"type": "string", "description": "why, in one or two sentences"},
    }, "required": ["step", "reason"]})
MEMORY_NODES = 12
OUTPUT_CHARS = 2500
# the parts of an idea the code model reads (not its novelty record, papers or provenance)
IDEA_CONTENT = ("Name", "Title", "Short Hypothesis", "Abstract", "Experiments", "Experiment",
                "Risk Factors and Limitations")


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
        idea = "\n".join(f"- {k}: {v}" for k, v in c.idea.items() if k in IDEA_CONTENT)
        name, direction = _metric_words(c.spec_fn())
        time_limit = ("no time limit" if c.timeout_s == float("inf") else
                      f"{c.timeout_s:.0f} seconds of wall-clock time")
        return with_data_rule(render("system", task_description=c.task_description, idea=idea,
                                     support_files=", ".join(c.support_files) or "nothing else", metric_name=name,
                                     metric_direction=direction, time_limit=time_limit))

    def _ask(self, prompt: str, target: Node | None, brief: StageBrief | None = None) -> Proposal:
        call = CallContext(target.id, target.step, target.stage) if target else CallContext()
        named = brief is not None and brief.change_kind is not None
        check = (lambda text: named_change(text, brief)) if named else None
        text, code = self.llm.ask_code("code", self._system(), [{"role": "user", "content": prompt}], call, check)
        plan = text.split("```", 1)[0].strip() or "(no plan given)"
        return Proposal(plan, code, named_change(text, brief) if named else "")

    def draft(self, journal: Journal, rng: random.Random, target: Node | None = None,
              brief: StageBrief | None = None) -> Proposal:
        if not self.ctx.base_code:  # template-free: the model writes the first program from the idea alone
            return self._ask(render("draft_scratch"), target)
        return self._ask(render("draft", base_code=self.ctx.base_code), target)

    def improve(self, journal: Journal, node: Node, rng: random.Random, target: Node | None = None,
                brief: StageBrief | None = None) -> Proposal:
        spec = self.ctx.spec_fn()
        name, direction = _metric_words(spec)
        prompt = render("improve", metric_name=name, metric_direction=direction,
                        parent_step=node.step, parent_metric=node.metric, parent_code=node.code,
                        parent_output=_tail(node), parent_analysis=_feedback(node),
                        memory=fence(memory(journal, name), "search history"), stage_goal=brief.goal if brief else "",
                        stage_request=_request(brief))
        return self._ask(prompt, target, brief)

    def debug(self, journal: Journal, node: Node, rng: random.Random, target: Node | None = None,
              brief: StageBrief | None = None) -> Proposal:
        prompt = render("debug", node_step=node.step, code=node.code,
                        bug_reason=fence(node.bug_reason or "unknown", "error message"),
                        output=_tail(node), analysis=_feedback(node))
        return self._ask(prompt, target)


class LLMFeedback:
    """After a run: is it buggy, and what does it show (structured output from the feedback role)."""

    def __init__(self, llm: LLM, spec_fn: Callable[[], MetricSpec | None]):
        self.llm, self.spec_fn = llm, spec_fn

    def __call__(self, node: Node, outcome: NodeOutcome) -> tuple[bool, str]:
        ex = outcome.result
        name, direction = _metric_words(self.spec_fn())
        prompt = render("feedback", plan=node.plan, code=node.code,
                        exit_status=ex.exit_code if ex.killed_reason is None else f"killed ({ex.killed_reason})",
                        output=fence((ex.stdout_tail + "\n" + ex.stderr_tail)[-OUTPUT_CHARS:], "program output"),
                        final_info=fence(json.dumps(ex.final_info)[:3000], "results") if ex.final_info else "none",
                        metric_name=name, metric_direction=direction,
                        metric=node.metric if not node.is_buggy else
                        f"none, the run is buggy:\n{fence(node.bug_reason, 'error message')}")
        answer = self.llm.ask_json("feedback", with_data_rule("You review machine-learning experiment runs."),
                                   [{"role": "user", "content": prompt}], FEEDBACK_TOOL,
                                   CallContext(node.id, node.step, node.stage))
        return bool(answer["is_bug"]), str(answer["analysis"])


class LLMSelector:
    """At the end of a stage only: among nodes whose primary metric is nearly equal, the model picks the one to
    carry forward (plots, stability, simplicity), never on every step."""

    def __init__(self, llm: LLM):
        self.llm = llm

    def __call__(self, candidates: list[Node], spec: MetricSpec, stage: str) -> tuple[Node, str]:
        listing = "\n".join(
            f"- step {n.step}: {spec.name} = {n.metric:.6g}; plan: {n.plan.splitlines()[0][:200] if n.plan else ''}; "
            f"analysis: {n.analysis[:300]}" + (f"; plots: {n.plot_feedback[:300]}" if n.plot_feedback else "")
            for n in candidates)
        answer = self.llm.ask_json("select", "You choose between machine-learning experiment runs.",
                                   [{"role": "user", "content": render("select", metric_name=spec.name,
                                                                       stage=stage, candidates=listing)}],
                                   SELECT_TOOL, CallContext(stage=stage))
        chosen = next((n for n in candidates if n.step == int(answer["step"])), None)
        if chosen is None:
            raise ValueError(f"the model chose step {answer['step']}, not one of {[n.step for n in candidates]}")
        return chosen, str(answer["reason"])


def memory(journal: Journal, metric_name: str) -> str:
    lines = []
    for n in sorted(journal, key=lambda n: n.step)[-MEMORY_NODES:]:
        result = f"{metric_name} = {n.metric:.4g}" if not n.is_buggy and n.metric is not None else \
            f"buggy: {n.bug_reason[:120]}"
        if n.plots_valid is not None:
            result += ", plots judged " + ("valid" if n.plots_valid else "NOT valid")
        change = f" [{n.change}]" if n.change else ""
        plan = n.plan.splitlines()[0][:160] if n.plan else ""
        lines.append(f"- node {n.step} ({n.operator}){change}: {plan} -> {result}")
    return "\n".join(lines) or "nothing yet"


LABELS = {"hyperparameter": "Hyperparameter", "ablation": "Ablation"}
EXAMPLES = {"hyperparameter": "`learning_rate` or `batch_size`", "ablation": "`no_weight_decay` or `one_layer`"}
_NAMED = re.compile(r"^[\s*#>-]*(?:hyperparameter|ablation|change)\s*\**\s*:\s*\**\s*`?([A-Za-z][\w.\-]*)`?",
                    re.IGNORECASE | re.MULTILINE)


def named_change(text: str, brief: StageBrief) -> str:
    """The change a reply names on its `Hyperparameter: <name>` / `Ablation: <name>` line; ParseError when the
    line is missing or names a change this stage already tried (the model is asked again)."""
    kind = brief.change_kind or "change"
    found = _NAMED.search(text.split("```", 1)[0])
    if not found:
        raise ParseError(f"the reply must begin with a line `{LABELS.get(kind, 'Change')}: <name>` naming the "
                         f"one {kind} it changes")
    name = found.group(1).strip(".").lower()
    if name in brief.taken:
        raise ParseError(f"{kind} {name!r} was already tried in this stage; choose one not in "
                         f"{sorted(brief.taken)}")
    return name


def _request(brief: StageBrief | None) -> str:
    parts = []
    if brief is not None and brief.change_kind:
        kind = brief.change_kind
        suggestions = [s for s in brief.suggestions if s not in brief.taken]
        parts.append(render("named_change", kind=kind, label=LABELS.get(kind, "Change"), example=EXAMPLES.get(kind),
                            taken=", ".join(sorted(brief.taken)) or "nothing yet",
                            suggestions=f"The template declares these (you may choose others): "
                                        f"{', '.join(suggestions)}." if suggestions else ""))
    if brief is not None and brief.notes:
        parts.append(brief.notes)
    return "\n" + "\n\n".join(parts) + "\n" if parts else ""


def _feedback(node: Node) -> str:
    text = node.analysis or "none"
    if node.plot_feedback:
        verdict = "valid" if node.plots_valid else "NOT valid"
        text += f"\nPlot critique (judged {verdict}): {node.plot_feedback}"
    return text


def _tail(node: Node) -> str:
    return fence((node.exec.stdout_tail + "\n" + node.exec.stderr_tail).strip()[-OUTPUT_CHARS:] or "(no output)",
                 "program output")
