"""The model calls of the ideas phase, at least and at most, for the cost projection (engine/budget/projection.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.budget.projection import Calls
from engine.ideas.config import IdeasConfig
from engine.ideas.generate import MAX_FIXES, MAX_SEARCHES, ROLE

if TYPE_CHECKING:
    from engine.config import RunConfig


def call_plan(cfg: RunConfig) -> list[Calls]:
    """Per idea: one round and the topic check at least; at most every reflection round with its literature searches
    and a re-ask, then the topic check. The novelty check: one to novelty_rounds rounds per idea."""
    if ROLE not in cfg.roles:
        return []
    ideas = IdeasConfig.of(cfg)
    reask = 1 + cfg.llm.reask
    plan = []
    count = ideas.num_ideas
    if ideas.load is None:
        per_idea = ideas.num_reflections * (MAX_SEARCHES + 1 + MAX_FIXES) + 1  # (its re-asks are MAX_FIXES)
        plan.append(Calls(ROLE, 2 * count, per_idea * count, "ideas drafted and refined"))
    else:
        count = _loaded(ideas)
    if ideas.check_novelty:
        plan.append(Calls(ROLE, count, ideas.novelty_rounds * count * reask, "novelty checks"))
    return plan


def _loaded(ideas: IdeasConfig) -> int:
    from engine.ideas.load import load_ideas

    try:
        return len(load_ideas(ideas.load))
    except Exception:  # noqa: BLE001 - a bad file is named when the phase runs; the projection counts one idea
        return 1
