"""Settings of the review phase, built from the resolved `review` config (conf/review/)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.inputs.values import Section

if TYPE_CHECKING:
    from engine.config import RunConfig

HIDDEN_TEXT_POLICIES = ("reject", "flag")


@dataclass(frozen=True)
class ReviewConfig:
    num_reflections: int
    num_fs_examples: int
    num_reviews_ensemble: int
    temperature: float
    figure_review: bool
    on_hidden_text: str  # reject | flag: what a paper with hidden text gets (engine/review/integrity.py)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], resolve: object = None) -> ReviewConfig:
        s = Section(raw, "review")
        return cls(s.integer("num_reflections", at_least=1), s.integer("num_fs_examples", at_least=0),
                   s.integer("num_reviews_ensemble", at_least=1), s.number("temperature", at_least=0, at_most=2),
                   s.flag("figure_review"), s.choice("on_hidden_text", HIDDEN_TEXT_POLICIES))

    @classmethod
    def of(cls, cfg: RunConfig) -> ReviewConfig:
        return cfg.section("review", cls)
