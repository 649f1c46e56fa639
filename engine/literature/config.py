"""Settings of the literature search, built from the resolved `literature` config (conf/literature/)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import RunConfig

ENGINE_NAMES = ("semantic_scholar", "openalex", "arxiv")


@dataclass(frozen=True)
class EngineConfig:
    name: str
    base_url: str
    api_key_env: str | None
    requests_per_s: float


@dataclass(frozen=True)
class LiteratureConfig:
    engines: tuple[EngineConfig, ...]  # in the order they are tried
    results_per_query: int
    timeout_s: float
    max_attempts: int
    max_wait_s: float
    breaker_failures: int

    @classmethod
    def from_dict(cls, raw: dict[str, Any], resolve: object = None) -> LiteratureConfig:
        """ValueError naming the key on a bad value."""
        names = raw["engines"]
        if isinstance(names, str):
            names = [names]
        engines = []
        for name in names:
            if name not in ENGINE_NAMES:
                raise ValueError(f"literature.engines: unknown engine {name!r}; engines: {', '.join(ENGINE_NAMES)}")
            e = raw[name]
            engines.append(EngineConfig(name, str(e["base_url"]).rstrip("/"), e.get("api_key_env"),
                                        float(e["requests_per_s"])))
        cfg = cls(tuple(engines), int(raw["results_per_query"]), float(raw["timeout_s"]), int(raw["max_attempts"]),
                  float(raw["max_wait_s"]), int(raw["breaker_failures"]))
        if cfg.results_per_query < 1 or cfg.max_attempts < 1 or cfg.breaker_failures < 1 or cfg.timeout_s <= 0:
            raise ValueError("literature.results_per_query, max_attempts and breaker_failures must be >= 1, "
                             "timeout_s > 0")
        if any(e.requests_per_s <= 0 for e in engines):
            raise ValueError("literature.<engine>.requests_per_s must be > 0")
        return cfg

    @classmethod
    def of(cls, cfg: RunConfig) -> LiteratureConfig:
        return cfg.section("literature", cls)
