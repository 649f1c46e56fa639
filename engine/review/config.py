"""Settings of the review phase, built from the resolved `review` config (conf/review/)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import RunConfig


@dataclass(frozen=True)
class ReviewConfig:
    num_reflections: int
    num_fs_examples: int
    num_reviews_ensemble: int
    temperature: float
    figure_review: bool

    @classmethod
    def from_dict(cls, raw: dict[str, Any], resolve: object = None) -> ReviewConfig:
        cfg = cls(int(raw["num_reflections"]), int(raw["num_fs_examples"]), int(raw["num_reviews_ensemble"]),
                  float(raw["temperature"]), bool(raw["figure_review"]))
        if cfg.num_reflections < 1 or cfg.num_fs_examples < 0 or cfg.num_reviews_ensemble < 1:
            raise ValueError("review.num_reflections and review.num_reviews_ensemble must be >= 1, "
                             "review.num_fs_examples >= 0")
        return cfg

    @classmethod
    def of(cls, cfg: RunConfig) -> ReviewConfig:
        return cfg.section("review", cls)
