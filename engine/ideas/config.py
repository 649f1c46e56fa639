"""Settings of ideation and the novelty check, built from the resolved `ideas` config (conf/ideas/)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.inputs.values import Section

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
        s = Section(raw, "ideas")
        given = s.text("load", null="the ideas are drafted")
        load = resolve(given) if given else None
        if load is not None:  # read now: a file that is not a list of ideas stops the launch, not the ideas phase
            from engine.ideas.load import load_ideas
            load_ideas(load, f"ideas.load={given}")
        return cls(s.integer("num_ideas", at_least=1), s.integer("num_reflections", at_least=1),
                   s.integer("novelty_rounds", at_least=1), s.flag("check_novelty"), load,
                   s.integer("index", at_least=0, null="the best novel idea"))

    @classmethod
    def of(cls, cfg: RunConfig) -> IdeasConfig:
        return cfg.section("ideas", cls)
