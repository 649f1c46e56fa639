"""The model calls of the review phase, at least and at most, for the cost projection
(engine/budget/projection.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.budget.projection import Calls
from engine.review.config import ReviewConfig

if TYPE_CHECKING:
    from engine.config import RunConfig


def call_plan(cfg: RunConfig) -> list[Calls]:
    """Each ensemble member: its review and reflection rounds until it says it is done (at least two rounds when
    there are reflections), a re-ask when its JSON is unusable; the meta-review; each figure's review."""
    if "review" not in cfg.roles:
        return []
    r = ReviewConfig.of(cfg)
    n = r.num_reviews_ensemble
    meta = 1 if n > 1 else 0
    plan = [Calls("review", n * min(2, r.num_reflections) + meta, n * (r.num_reflections + 1) + meta,
                  "reviews, reflections and the meta-review")]
    vision = cfg.roles.get("vision")
    if r.figure_review and vision is not None and vision.vision:
        from engine.writeup.config import WriteupConfig

        plan.append(Calls("vision", 0, WriteupConfig.of(cfg).max_figures, "figure reviews"))
    return plan
