"""The model calls of the writeup phase, at least and at most, for the cost projection
(engine/budget/projection.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.budget.projection import Calls
from engine.writeup.config import WriteupConfig

if TYPE_CHECKING:
    from engine.config import RunConfig


def call_plan(cfg: RunConfig) -> list[Calls]:
    """The plotting program (code role), the citation rounds (a query and a pick each), the draft, one refinement
    per section and the compile-fix rounds (writeup role), and each figure's review (vision role)."""
    if "writeup" not in cfg.roles:
        return []
    from engine.writeup.writer import TITLES

    w = WriteupConfig.of(cfg)
    reask = 1 + cfg.llm.reask
    plan = [Calls("writeup", 1 + len(TITLES), (1 + len(TITLES) + w.compile_rounds) * reask, "the paper")]
    if w.plot_retries > 0 and "code" in cfg.roles:
        plan.append(Calls("code", 1, w.plot_retries * reask, "the plotting program"))
    if w.num_cite_rounds > 0 and "citation" in cfg.roles:
        plan.append(Calls("citation", 1, 2 * w.num_cite_rounds * reask, "citation rounds"))
    vision = cfg.roles.get("vision")
    if vision is not None and vision.vision:
        plan.append(Calls("vision", 0, w.max_figures * reask, "figure reviews"))
    return plan
