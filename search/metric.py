"""The primary metric: one named number with a direction, extracted from a v1-shaped final_info.json."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class MetricSpec:
    """Which number decides between nodes.

    `name` is a metric inside the groups of final_info.json. A plain name ("val_acc") is averaged over
    every group that reports it; "group/metric" ("x_plus_y/val_acc") reads one group only.
    """

    name: str
    direction: Direction = "maximize"

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"metric direction must be 'maximize' or 'minimize', got {self.direction!r}")

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def extract(self, final_info: dict[str, Any]) -> float:
        """The primary metric's value in `final_info`; KeyError naming what is missing."""
        table = flatten_final_info(final_info)
        if "/" in self.name:
            if self.name not in table:
                raise KeyError(f"final_info.json has no metric {self.name!r}; it has {sorted(table)}")
            return table[self.name]
        values = [v for key, v in table.items() if key.rsplit("/", 1)[-1] == self.name]
        if not values:
            raise KeyError(f"final_info.json has no metric {self.name!r}; it has {sorted(table)}")
        return sum(values) / len(values)

    def value(self, final_info: dict[str, Any]) -> MetricValue:
        return MetricValue(self.extract(final_info), self)


def flatten_final_info(final_info: dict[str, Any]) -> dict[str, float]:
    """{"group/metric": mean} from the v1 shape {group: {"means": {metric: value}}}.

    v1 templates also wrote {metric: {"means": value}}; such a group is read as a metric of its own name.
    """
    if not isinstance(final_info, dict):
        raise ValueError("final_info.json must hold a JSON object {group: {\"means\": {...}}}")
    table: dict[str, float] = {}
    for group, entry in final_info.items():
        means = entry.get("means") if isinstance(entry, dict) else None
        if isinstance(means, dict):
            for metric, val in means.items():
                if _is_number(val):
                    table[f"{group}/{metric}"] = float(val)
        elif _is_number(means):
            table[f"{group}/{group}"] = float(means)
    if not table:
        raise ValueError("final_info.json holds no numeric means: expected {group: {\"means\": {metric: number}}}")
    return table


def metric_names(final_info: dict[str, Any]) -> list[str]:
    """Metric names in order of first appearance (groups merged)."""
    names: list[str] = []
    for key in flatten_final_info(final_info):
        name = key.rsplit("/", 1)[-1]
        if name not in names:
            names.append(name)
    return names


_LOWER_IS_BETTER = ("loss", "error", "err", "perplexity", "ppl", "mse", "mae", "rmse", "time", "step", "regret",
                    "nll", "bpc", "bpd", "fid")


def guess_direction(name: str) -> Direction:
    """A guess for templates that declare nothing: losses, errors, times and step counts are minimised."""
    lowered = name.lower()
    return "minimize" if any(word in lowered for word in _LOWER_IS_BETTER) else "maximize"


def finite_number(value: Any) -> float | None:
    """A number (or a number written as text) as a float; None for anything else, a bool, NaN or an infinity."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _is_number(val: Any) -> bool:
    return isinstance(val, (int, float)) and not isinstance(val, bool)


@functools.total_ordering
@dataclass(frozen=True)
class MetricValue:
    """A node's primary metric. `value=None` means buggy/absent, which compares worse than any number.

    Ordering is by quality: `a > b` means a is better, whatever the direction. NaN counts as absent.
    """

    value: float | None
    spec: MetricSpec

    @property
    def is_worst(self) -> bool:
        return self.value is None or math.isnan(self.value)

    def _key(self) -> tuple[int, float]:
        if self.is_worst:
            return (0, 0.0)
        assert self.value is not None
        return (1, self.value if self.spec.maximize else -self.value)

    def __lt__(self, other: MetricValue) -> bool:
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetricValue) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return "buggy" if self.is_worst else f"{self.spec.name}={self.value:.4g}"
