"""budget.* (conf/budget/default.yaml): the run's caps and the projection's tokens per call."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.inputs.values import Section, is_int
from engine.llm.models import ROLES
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
        """ValueError naming the key, the value and what is allowed (engine/inputs/values.py)."""
        s = Section(raw, "budget")
        caps = s.section("phase_max_usd")
        unknown = [p for p in caps.raw if p not in PHASES]
        if unknown:
            raise ValueError(f"budget.phase_max_usd.{unknown[0]}: no such phase; phases: {', '.join(PHASES)}")
        tokens = s.section("tokens_per_call")
        roles = [r for r in tokens.raw if r not in ROLES]
        if roles:
            raise ValueError(f"budget.tokens_per_call.{roles[0]}: no such role; roles: {', '.join(ROLES)}")
        phase_caps = {p: caps.number(p, above=0, null="no cap of its own") for p in caps.raw}
        return cls(
            max_usd=s.number("max_usd", above=0, null="no cap"),
            phase_max_usd={p: v for p, v in phase_caps.items() if v is not None},
            max_gpu_hours=s.number("max_gpu_hours", above=0, null="no cap"),
            chars_per_token=s.number("chars_per_token", above=0), image_tokens=s.integer("image_tokens", at_least=1),
            tokens_per_call={role: _tokens(tokens.section(role)) for role in tokens.raw})

    @property
    def capped(self) -> bool:
        return self.max_usd is not None or bool(self.phase_max_usd)


def _tokens(role: Section) -> TokenRange:
    """{input: [low, high], output: [low, high]}: whole numbers of tokens, low <= high."""
    pairs = []
    for side in ("input", "output"):
        value = role.get(side)
        if not (isinstance(value, list) and len(value) == 2 and all(is_int(v) and v >= 1 for v in value)
                and value[0] <= value[1]):
            raise role.refuse(side, value, "[low, high], whole numbers of tokens >= 1 with low <= high")
        pairs.append((value[0], value[1]))
    return TokenRange(pairs[0], pairs[1])
