"""The stages in order and their settings (from conf/stages/)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

STAGE_NAMES = ("initial", "tuning", "agenda", "ablations")
GOAL_DIR = Path(__file__).resolve().parent / "prompts"

# what each improvement of a stage must name (None: any change); "ablations" expand the stage's starting node only
CHANGE_KIND = {"initial": None, "tuning": "hyperparameter", "agenda": None, "ablations": "ablation"}
TITLES = {"initial": "Initial investigation", "tuning": "Hyperparameter tuning",
          "agenda": "Research agenda execution", "ablations": "Ablation studies"}


@dataclass(frozen=True)
class StageSettings:
    name: str
    max_nodes: int  # node budget with a model (the copied starting node does not count)
    offline_max_nodes: int  # the budget when the offline proposer runs (the smaller of the two is used)
    run_to_budget: bool  # ignore the early completion rule (stages 1 and 2)

    def __post_init__(self) -> None:
        if self.name not in STAGE_NAMES:
            raise ValueError(f"unknown stage {self.name!r}; stages: {', '.join(STAGE_NAMES)}")
        if self.max_nodes < 1 or self.offline_max_nodes < 1:
            raise ValueError(f"stages.{self.name}.max_nodes and offline_max_nodes must be >= 1")

    def budget(self, offline: bool) -> int:
        return min(self.max_nodes, self.offline_max_nodes) if offline else self.max_nodes

    @property
    def change_kind(self) -> str | None:
        return CHANGE_KIND[self.name]

    @property
    def title(self) -> str:
        return TITLES[self.name]


@dataclass(frozen=True)
class StagesConfig:
    """stages.* (conf/stages/default.yaml holds the defaults and their meaning; engine.config builds this)."""

    run: tuple[str, ...]  # which stages run: a prefix of the four, in order
    settings: dict[str, StageSettings]
    num_seeds: int  # multi-seed evaluation of each stage's best node (1: none)
    critique_max_plots: int  # PNGs of a node the vision model reads
    scale_up_fraction: float  # stage 3: "scale up" when the best run used less than this share of the limit
    tie_break_tolerance: float  # at a stage's end, a model picks among nodes this close to the best (0: off)
    noise_z: float  # a node beats the start only by more than z sd of the start's seed spread (0: any margin)
    final_seeds: int  # fresh seeds the run's result, its baseline and each ablation are evaluated on

    def __post_init__(self) -> None:
        if not self.run or tuple(self.run) != STAGE_NAMES[:len(self.run)]:
            raise ValueError(f"stages.run must be a prefix of {list(STAGE_NAMES)}, got {list(self.run)}")
        missing = [s for s in self.run if s not in self.settings]
        if missing:
            raise ValueError(f"stages.{missing[0]} has no settings (max_nodes, offline_max_nodes)")
        if self.num_seeds < 1:
            raise ValueError(f"stages.num_seeds must be >= 1, got {self.num_seeds}")
        if self.critique_max_plots < 1:
            raise ValueError(f"stages.critique_max_plots must be >= 1, got {self.critique_max_plots}")
        if self.final_seeds < 2:
            raise ValueError(f"stages.final_seeds must be >= 2 (an interval needs two fresh runs), "
                             f"got {self.final_seeds}")
        if self.noise_z < 0:
            raise ValueError(f"stages.noise_z must be >= 0, got {self.noise_z}")
        if self.tie_break_tolerance < 0:
            raise ValueError(f"stages.tie_break_tolerance must be >= 0, got {self.tie_break_tolerance}")
        if not 0.0 <= self.scale_up_fraction <= 1.0:
            raise ValueError(f"stages.scale_up_fraction must be in [0, 1], got {self.scale_up_fraction}")


@cache
def stage_goal(name: str) -> str:
    """The stage's goal, as the model reads it (stages/prompts/<name>.md)."""
    return (GOAL_DIR / f"{name}.md").read_text().strip()
