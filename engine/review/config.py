"""Settings of the review phase, built from the resolved `review` config (conf/review/)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
        cfg = cls(int(raw["num_reflections"]), int(raw["num_fs_examples"]), int(raw["num_reviews_ensemble"]),
                  float(raw["temperature"]), bool(raw["figure_review"]), str(raw["on_hidden_text"]))
        if cfg.num_reflections < 1 or cfg.num_fs_examples < 0 or cfg.num_reviews_ensemble < 1:
            raise ValueError("review.num_reflections and review.num_reviews_ensemble must be >= 1, "
                             "review.num_fs_examples >= 0")
        if cfg.on_hidden_text not in HIDDEN_TEXT_POLICIES:
            raise ValueError(f"review.on_hidden_text must be one of {HIDDEN_TEXT_POLICIES}, got "
                             f"{cfg.on_hidden_text!r}")
        return cfg

    @classmethod
    def of(cls, cfg: RunConfig) -> ReviewConfig:
        return cfg.section("review", cls)
