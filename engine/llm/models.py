"""The model registry: conf/model/<name>.yaml describes a model; adding a model is adding a file."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from engine.errors import EngineError
from engine.inputs.values import Section, show

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


def spec_from_dict(raw: dict[str, Any] | None, registry_name: str | None = None) -> ModelSpec | None:
    """A ModelSpec from a conf/model entry or the `model` config; None when no model is configured. Every key given
    is checked, a model or not (ValueError naming model.<key>); a key left out takes the ModelSpec's value."""
    m = Section(raw or {}, "model")
    name = m.text("name", null="no model: the offline proposer", default=None)
    provider = m.choice("provider", PROVIDERS, null="openai, or OpenAI-compatible with a base_url", default=None)
    base_url = m.text("base_url", null="the provider's own", default=None)
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise m.refuse("base_url", base_url, "an http:// or https:// URL, or null (the provider's own)")
    api_key_env = m.text("api_key_env", null="the provider's usual variable", default=None)
    prices = Section(m.get("prices", None) or {}, "model.prices")
    spec = ModelSpec(
        name=name or "", provider=provider or "openai", base_url=base_url,
        api_key_env=api_key_env or ("ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY"),
        prices=Prices(*(prices.number(k, at_least=0, null="unknown", default=None)
                        for k in ("input", "output", "cached_input"))),
        release_date=_release_date(m), vision=m.flag("vision", default=False),
        tool_calling=m.flag("tool_calling", default=True), structured_output=m.flag("structured_output", default=False),
        max_output_tokens=m.integer("max_output_tokens", at_least=1, default=8192),
        context_window=m.integer("context_window", at_least=1, null="unknown", default=None), quirks=_quirks(m),
        registry_name=registry_name)
    if name is None:
        if base_url:
            raise ValueError("model.base_url is set but model.name is not: add model.name=<the server's model>")
        return None
    return spec


def _release_date(m: Section) -> str | None:
    value = m.get("release_date", None)
    if value is None or isinstance(value, dt.date):
        return None if value is None else value.isoformat()
    try:
        return dt.date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        raise m.refuse("release_date", value, "a date YYYY-MM-DD, or null (unknown)") from None


def _quirks(m: Section) -> dict[str, Any]:
    """model.quirks: only what the call path honours (QUIRKS), each of its type."""
    q = Section(m.get("quirks", None) or {}, "model.quirks")
    for key in q.raw:
        if key not in QUIRKS:
            raise ValueError(f"model.quirks.{key}: not a quirk the call path knows; known: {', '.join(QUIRKS)}")
    reads = {"system_message": lambda k: q.flag(k), "temperature": lambda k: q.flag(k),
             "fixed_temperature": lambda k: q.number(k, at_least=0, at_most=2, null="none"),
             "reasoning_effort": lambda k: q.text(k, null="not sent"),
             "thinking": lambda k: q.choice(k, ("adaptive", "enabled"), null="no thinking"),
             "thinking_budget": lambda k: q.integer(k, at_least=1, null="none"),
             "max_tokens_param": lambda k: q.choice(k, ("max_completion_tokens", "max_tokens"),
                                                    null="the API's usual one")}
    out = {key: reads[key](key) for key in QUIRKS if key in q.raw}
    if out.get("thinking") == "enabled" and out.get("thinking_budget") is None:
        raise ValueError("model.quirks.thinking=enabled needs model.quirks.thinking_budget (tokens)")
    return out


def load_registered(name: str) -> ModelSpec:
    """The model described by conf/model/<name>.yaml."""
    file = MODEL_DIR / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in MODEL_DIR.glob("*.yaml") if p.stem != "none")
        raise EngineError(f"no model named {name!r} in conf/model/; known: {', '.join(known)} "
                          "(or give model.base_url=URL model.name=NAME for any OpenAI-compatible server)")
    try:
        spec = spec_from_dict(OmegaConf.to_container(OmegaConf.load(file), resolve=True),  # type: ignore[arg-type]
                              registry_name=name)
    except ValueError as e:
        raise EngineError(f"{file}: {e}") from None
    if spec is None:
        raise EngineError(f"{file}: name: missing")
    return spec


def resolve_roles(model: dict[str, Any] | None, roles: dict[str, str | None] | None) -> dict[str, ModelSpec]:
    """Each role's model: `model` for all, `llm.roles.<role>=<registry name>` to override one.
    Empty when no model is configured (the offline proposer runs)."""
    default = spec_from_dict(model)
    given = Section(roles or {}, "llm.roles")
    unknown = sorted(set(given.raw) - set(ROLES))
    if unknown:
        raise EngineError(f"unknown role llm.roles.{unknown[0]}; roles: {', '.join(ROLES)}")
    resolved: dict[str, ModelSpec] = {}
    for role in ROLES:
        override = given.text(role, null="the model above", default=None)
        try:
            spec = load_registered(override) if override else default
        except EngineError as e:
            raise EngineError(f"llm.roles.{role}={show(override)}: {e}") from None
        if spec is not None:
            resolved[role] = spec
    if resolved and "code" not in resolved:
        role = next(r for r in ROLES if r in resolved)
        raise EngineError(f"llm.roles.{role}={resolved[role].registry_name} is set but the code role has no model: "
                          "set model=<name>, or llm.roles.code=<name>")
    return resolved
