"""The model calls of the experiment phase, at least and at most, for the cost projection
(engine/budget/projection.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.budget.projection import Calls

if TYPE_CHECKING:
    from engine.config import RunConfig

ENDS_EARLY = ("initial", "tuning")  # stages that may end at their goal before their budget


def call_plan(cfg: RunConfig) -> list[Calls]:
    """Each program the model writes is a code call (and a re-ask when it does not compile); each run gets a feedback
    call and, with a vision model, a plot critique; each stage may put near-equal nodes to the select role once.
    At least: the first drafts beside the baseline (which the template writes), one tuning node, the agenda and
    ablation budgets. At most: every stage's budget, proposals written ahead and dropped, every re-ask."""
    if "code" not in cfg.roles or cfg.proposer == "offline":
        return []
    reask = 1 + cfg.llm.reask
    template = cfg.topic.path is not None
    low = high = 0
    for name in cfg.stages.run:
        st = cfg.stages.settings[name]
        high += st.max_nodes
        if name == "initial":
            low += max(1, cfg.policy.num_drafts - 1) if template else 1
        else:
            low += 1 if name in ENDS_EARLY and not st.run_to_budget else st.max_nodes
    ahead = cfg.policy.lookahead if cfg.policy.lookahead is not None else cfg.cluster.slots
    written = high + ahead * len(cfg.stages.run)  # proposals written ahead, dropped when their stage ends
    runs_low, runs_high = low + (1 if template else 0), high
    plan = [Calls("code", low, written * reask, "programs written"),
            Calls("feedback", runs_low, runs_high * reask, "feedback on each run")]
    vision = cfg.roles.get("vision")
    if vision is not None and vision.vision:
        plan.append(Calls("vision", 0, runs_high * reask, "plot critiques"))
    if "select" in cfg.roles and cfg.stages.tie_break_tolerance > 0:
        plan.append(Calls("select", 0, len(cfg.stages.run) * reask, "tie-breaks at stage ends"))
    return plan
