"""Settings of the literature search, built from the resolved `literature` config (conf/literature/)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.inputs.values import Section

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
    timeout_s: float | None  # per request (None: no limit)
    max_attempts: int
    max_wait_s: float
    breaker_failures: int

    @classmethod
    def from_dict(cls, raw: dict[str, Any], resolve: object = None) -> LiteratureConfig:
        """ValueError naming the key, the value and what is allowed; every engine's settings are checked, also
        those of an engine left out of literature.engines."""
        s = Section(raw, "literature")
        names = s.names("engines", ENGINE_NAMES)
        engines = {name: _engine(s, name) for name in ENGINE_NAMES if name in raw or name in names}
        return cls(tuple(engines[n] for n in names), s.integer("results_per_query", at_least=1, at_most=100),
                   s.number("timeout_s", above=0, null="no limit"), s.integer("max_attempts", at_least=1),
                   s.number("max_wait_s", at_least=0), s.integer("breaker_failures", at_least=1))

    @classmethod
    def of(cls, cfg: RunConfig) -> LiteratureConfig:
        return cfg.section("literature", cls)


def _engine(literature: Section, name: str) -> EngineConfig:
    e = literature.section(name)
    url = e.text("base_url")
    if not url.startswith(("http://", "https://")):
        raise e.refuse("base_url", url, "an http:// or https:// URL")
    return EngineConfig(name, url.rstrip("/"), e.text("api_key_env", null="no key", default=None),
                        e.number("requests_per_s", above=0))
