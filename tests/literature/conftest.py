from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import tenacity
import yaml

from engine.literature import LiteratureConfig, LiteratureSearch
from tests.literature.fake_scholar_server import FakeScholarServer

DEFAULTS = Path(__file__).resolve().parents[2] / "conf" / "literature" / "default.yaml"
KEYS = {"S2_API_KEY": "s2-key", "OPENALEX_API_KEY": "oa-key"}


@pytest.fixture
def server() -> Iterator[FakeScholarServer]:
    with FakeScholarServer() as s:
        yield s


def config(server: FakeScholarServer, **overrides: Any) -> LiteratureConfig:
    """The shipped defaults pointed at the fake server, fast enough for tests; overrides replace top-level keys."""
    raw = yaml.safe_load(DEFAULTS.read_text())
    raw.update(timeout_s=1.0, max_attempts=3, max_wait_s=0.5, breaker_failures=2)
    for name in ("semantic_scholar", "openalex", "arxiv"):
        raw[name] = {**raw[name], "base_url": server.base_url(name), "requests_per_s": 50.0}
    raw.update(overrides)
    return LiteratureConfig.from_dict(raw)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The back-off waits the client asks tenacity for, in order, recorded instead of slept: the tests assert on
    the waits themselves (deterministic) rather than on a wall-clock that load on the machine stretches."""
    asked: list[float] = []
    monkeypatch.setattr(tenacity.nap, "time", SimpleNamespace(sleep=asked.append))  # tenacity's documented hook
    return asked


@pytest.fixture
def make_client(server: FakeScholarServer, tmp_path: Path) -> Iterator[Callable[..., LiteratureSearch]]:
    clients: list[LiteratureSearch] = []

    def make(env: dict[str, str] | None = None, folder: Path | None = None, **overrides: Any) -> LiteratureSearch:
        client = LiteratureSearch(config(server, **overrides), KEYS if env is None else env,
                                  folder or tmp_path / "literature")
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
