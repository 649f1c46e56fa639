"""The model registry: conf/model/<name>.yaml describes a model; adding a model is adding a file."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from engine.errors import EngineError

MODEL_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"  # engine/conf: the package's own
PROVIDERS = ("openai", "anthropic", "bedrock", "vertex")
ROLES = ("code", "feedback", "vision", "select", "summary", "review", "ideation", "citation", "writeup")
# what the call path honours (conf/model/*.yaml `quirks`; docs/models-and-budget.md says what each means)
QUIRKS = {
    "system_message": "false: the system prompt goes as the first user turn (OpenAI o1-era models)",
    "temperature": "false: no temperature is sent (reasoning models, Anthropic thinking, Gemini 3)",
    "fixed_temperature": "a number sent whatever llm.temperature says",
    "reasoning_effort": "OpenAI-compatible reasoning models: sent as reasoning_effort (low, medium, high, ...)",
    "thinking": "Anthropic: adaptive (thinking: {type: adaptive}) or enabled (with thinking_budget); then no "
                "temperature and no forced tool choice",
    "thinking_budget": "Anthropic thinking: enabled: budget_tokens, added to the call's output limit",
    "max_tokens_param": "OpenAI-compatible: max_completion_tokens or max_tokens (default: the first for OpenAI's "
                        "own API, the second for other servers)",
}


@dataclass(frozen=True)
class Prices:
    """USD per million tokens; None when unknown (the cost is then reported as unknown, never as zero)."""

    input: float | None = None
    output: float | None = None
    cached_input: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int) -> float | None:
        if self.input is None or self.output is None:
            return None
        cached_price = self.cached_input if self.cached_input is not None else self.input
        fresh = max(0, input_tokens - cached_tokens)
        return (fresh * self.input + cached_tokens * cached_price + output_tokens * self.output) / 1e6


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the provider's model name
    provider: str = "openai"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    prices: Prices = Prices()
    release_date: str | None = None
    vision: bool = False
    tool_calling: bool = True
    structured_output: bool = False
    max_output_tokens: int = 8192
    context_window: int | None = None
    quirks: dict[str, Any] = field(default_factory=dict)
    registry_name: str | None = None  # the conf/model file it came from, if any

    @property
    def system_message(self) -> bool:
        return bool(self.quirks.get("system_message", True))

    @property
    def takes_temperature(self) -> bool:
        return bool(self.quirks.get("temperature", True))

    @property
    def fixed_temperature(self) -> float | None:
        return self.quirks.get("fixed_temperature")

    @property
    def thinking(self) -> str | None:
        """Anthropic thinking: None, "adaptive" or "enabled"."""
        return self.quirks.get("thinking") or None

    @property
    def reasoning_effort(self) -> str | None:
        return self.quirks.get("reasoning_effort") or None

    def output_limit(self, requested: int) -> int:
        """The output tokens a call may produce (what the request sends as its limit, and what the budget bounds
        its cost by): the tokens asked for (plus an Anthropic thinking budget), within the model's limit."""
        extra = int(self.quirks.get("thinking_budget") or 0) if self.thinking == "enabled" else 0
        return min(requested + extra, self.max_output_tokens)


def spec_from_dict(raw: dict[str, Any], registry_name: str | None = None) -> ModelSpec | None:
    """A ModelSpec from a conf/model entry or the `model` config; None when no model is configured."""
    if not raw or not raw.get("name"):
        if raw and raw.get("base_url"):
            raise EngineError("model.base_url is set but model.name is not: add model.name=<the server's model>")
        return None
    provider = raw.get("provider") or "openai"  # a base_url without a provider: OpenAI-compatible
    if provider not in PROVIDERS:
        raise EngineError(f"model.provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    prices = raw.get("prices") or {}
    release = raw.get("release_date")
    quirks = dict(raw.get("quirks") or {})
    unknown = sorted(set(quirks) - set(QUIRKS))
    if unknown:
        raise EngineError(f"model {raw['name']}: quirks.{unknown[0]} is not a quirk the call path knows; known: "
                          f"{', '.join(QUIRKS)}")
    if quirks.get("thinking") not in (None, "adaptive", "enabled"):
        raise EngineError(f"model {raw['name']}: quirks.thinking must be adaptive, enabled or null, got "
                          f"{quirks['thinking']!r}")
    if quirks.get("thinking") == "enabled" and not isinstance(quirks.get("thinking_budget"), int):
        raise EngineError(f"model {raw['name']}: quirks.thinking=enabled needs quirks.thinking_budget (tokens)")
    return ModelSpec(
        name=str(raw["name"]), provider=provider, base_url=raw.get("base_url"),
        api_key_env=raw.get("api_key_env") or ("ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY"),
        prices=Prices(*(None if prices.get(k) is None else float(prices[k])
                        for k in ("input", "output", "cached_input"))),
        release_date=release.isoformat() if isinstance(release, dt.date) else release,
        vision=bool(raw.get("vision", False)), tool_calling=bool(raw.get("tool_calling", True)),
        structured_output=bool(raw.get("structured_output", False)),
        max_output_tokens=int(raw.get("max_output_tokens") or 8192),
        context_window=int(raw["context_window"]) if raw.get("context_window") else None, quirks=quirks,
        registry_name=registry_name)


def load_registered(name: str) -> ModelSpec:
    """The model described by conf/model/<name>.yaml."""
    file = MODEL_DIR / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in MODEL_DIR.glob("*.yaml") if p.stem != "none")
        raise EngineError(f"no model named {name!r} in conf/model/; known: {', '.join(known)} "
                          "(or give model.base_url=URL model.name=NAME for any OpenAI-compatible server)")
    raw = OmegaConf.to_container(OmegaConf.load(file), resolve=True)
    spec = spec_from_dict(raw, registry_name=name)  # type: ignore[arg-type]
    if spec is None:
        raise EngineError(f"{file}: name: missing")
    return spec


def resolve_roles(model: dict[str, Any] | None, roles: dict[str, str | None]) -> dict[str, ModelSpec]:
    """Each role's model: `model` for all, `llm.roles.<role>=<registry name>` to override one.
    Empty when no model is configured (the offline proposer runs)."""
    default = spec_from_dict(model or {})
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise EngineError(f"unknown role llm.roles.{unknown[0]}; roles: {', '.join(ROLES)}")
    resolved: dict[str, ModelSpec] = {}
    for role in ROLES:
        override = roles.get(role)
        spec = load_registered(override) if override else default
        if spec is not None:
            resolved[role] = spec
    if resolved and "code" not in resolved:
        raise EngineError("roles are configured but the code role has no model: set model=<name>")
    return resolved
