"""Settings of ideation and the novelty check, built from the resolved `ideas` config (conf/ideas/)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import RunConfig


@dataclass(frozen=True)
class IdeasConfig:
    num_ideas: int
    num_reflections: int
    novelty_rounds: int
    check_novelty: bool
    load: Path | None  # an ideas file used as it is (v1 seed_ideas.json or v2 ideas JSON)
    index: int | None  # the idea the experiments test; None: the best novel one

    @classmethod
    def from_dict(cls, raw: dict[str, Any], resolve: Callable[[str], Path]) -> IdeasConfig:
        """ValueError names the key; `resolve` turns the path of ideas.load into an absolute one."""
        load = resolve(str(raw["load"])) if raw.get("load") else None
        cfg = cls(int(raw["num_ideas"]), int(raw["num_reflections"]), int(raw["novelty_rounds"]),
                  bool(raw["check_novelty"]), load, None if raw.get("index") is None else int(raw["index"]))
        if cfg.num_ideas < 1 or cfg.num_reflections < 1 or cfg.novelty_rounds < 1:
            raise ValueError("ideas.num_ideas, ideas.num_reflections and ideas.novelty_rounds must be >= 1")
        if cfg.index is not None and cfg.index < 0:
            raise ValueError(f"ideas.index must be >= 0, got {cfg.index}")
        if load is not None and not load.is_file():
            raise ValueError(f"ideas.load={load}: no such file")
        return cfg

    @classmethod
    def of(cls, cfg: RunConfig) -> IdeasConfig:
        return cfg.section("ideas", cls)
