"""budget.* (conf/budget/default.yaml): the run's caps and the projection's tokens per call."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.phase import PHASES


@dataclass(frozen=True)
class TokenRange:
    """Tokens per call of one role, [low, high], input and output."""

    input: tuple[int, int]
    output: tuple[int, int]


@dataclass(frozen=True)
class BudgetSettings:
    max_usd: float | None  # the whole run, all phases and roles; None: no cap
    phase_max_usd: dict[str, float]  # per phase, within max_usd
    max_gpu_hours: float | None
    chars_per_token: float  # a request's input tokens are estimated from its characters (and images)
    image_tokens: int
    tokens_per_call: dict[str, TokenRange]  # the projection's defaults, by role

    @classmethod
    def from_dict(cls, raw: dict[str, Any], resolve: Any = None) -> BudgetSettings:
        phase_caps = raw.get("phase_max_usd") or {}
        if not isinstance(phase_caps, dict):
            raise ValueError(f"budget.phase_max_usd must map phases to USD, got {phase_caps!r}")
        unknown = [p for p in phase_caps if p not in PHASES]
        if unknown:
            raise ValueError(f"budget.phase_max_usd.{unknown[0]}: no such phase; phases: {', '.join(PHASES)}")
        tokens = raw["tokens_per_call"] or {}
        return cls(
            max_usd=_cap(raw.get("max_usd"), "budget.max_usd"),
            phase_max_usd={p: _cap(v, f"budget.phase_max_usd.{p}") for p, v in phase_caps.items() if v is not None},
            max_gpu_hours=_cap(raw.get("max_gpu_hours"), "budget.max_gpu_hours"),
            chars_per_token=_positive(raw["chars_per_token"], "budget.chars_per_token"),
            image_tokens=int(_positive(raw["image_tokens"], "budget.image_tokens")),
            tokens_per_call={role: _tokens(v, f"budget.tokens_per_call.{role}") for role, v in tokens.items()})

    @property
    def capped(self) -> bool:
        return self.max_usd is not None or bool(self.phase_max_usd)


def _cap(value: Any, key: str) -> float | None:
    """A cap: None, or a positive number (a bool, a string or a negative number is refused, naming the key)."""
    if value is None:
        return None
    return _positive(value, key)


def _positive(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{key} must be a positive number, got {value!r}")
    return float(value)


def _tokens(raw: Any, key: str) -> TokenRange:
    try:
        pairs = [tuple(int(_positive(x, key)) for x in raw[side]) for side in ("input", "output")]
    except (KeyError, TypeError):
        raise ValueError(f"{key} must be {{input: [low, high], output: [low, high]}}, got {raw!r}") from None
    if any(len(p) != 2 or p[0] > p[1] for p in pairs):
        raise ValueError(f"{key}: each side must be [low, high] with low <= high, got {raw!r}")
    return TokenRange(pairs[0], pairs[1])  # type: ignore[arg-type]
