"""Which idea the experiments test, and the rows of the ideas table."""
from __future__ import annotations

from typing import Any

from engine.errors import EngineError
from engine.ideas.schema import SCORES


def score_sum(idea: dict[str, Any]) -> int:
    return sum(s for s in (idea.get(k) for k in SCORES) if isinstance(s, (int, float)) and not isinstance(s, bool))


def choose(ideas: list[dict[str, Any]], index: int | None) -> int:
    """`index` when given; else the novel idea with the highest Interestingness + Feasibility + Novelty (the
    earlier one on a tie); else the first idea."""
    if index is not None:
        if not 0 <= index < len(ideas):
            raise EngineError(f"ideas.index={index} but there are {len(ideas)} ideas (0..{len(ideas) - 1}); "
                              "see ideas.json for them")
        return index
    novel = [i for i, idea in enumerate(ideas) if idea.get("novel") is True]
    if not novel:
        return 0
    return max(novel, key=lambda i: (score_sum(ideas[i]), -i))


def table_rows(ideas: list[dict[str, Any]], chosen: int) -> list[dict[str, Any]]:
    return [{"name": idea["Name"], "title": idea["Title"], "interestingness": idea.get("Interestingness"),
             "feasibility": idea.get("Feasibility"), "novelty": idea.get("Novelty"),
             "decision": (idea.get("novelty") or {}).get("decision"), "chosen": i == chosen}
            for i, idea in enumerate(ideas)]
