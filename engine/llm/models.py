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
    return ModelSpec(
        name=str(raw["name"]), provider=provider, base_url=raw.get("base_url"),
        api_key_env=raw.get("api_key_env") or ("ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY"),
        prices=Prices(*(None if prices.get(k) is None else float(prices[k])
                        for k in ("input", "output", "cached_input"))),
        release_date=release.isoformat() if isinstance(release, dt.date) else release,
        vision=bool(raw.get("vision", False)), tool_calling=bool(raw.get("tool_calling", True)),
        structured_output=bool(raw.get("structured_output", False)),
        max_output_tokens=int(raw.get("max_output_tokens") or 8192), quirks=dict(raw.get("quirks") or {}),
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
