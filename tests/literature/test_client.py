"""Fallback, retries, breaker, cache and threads of LiteratureSearch against the fake server. Back-off waits and
the rate limiter's spacing are recorded (the `waits` fixture, a frozen clock), not measured on the wall-clock."""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from types import SimpleNamespace

import pytest

from engine.errors import EngineError
from engine.literature import LiteratureError, LiteratureSearch, ratelimit
from tests.literature.conftest import config
from tests.literature.fake_scholar_server import paper

pytestmark = pytest.mark.usefixtures("waits")  # no test here sleeps through a back-off


def test_retry_after_is_honoured_and_bounded(server, make_client, waits):
    # 1.6 s: not a first back-off step without a header (1 s + up to 0.5 s jitter), so only the header gives it
    server.script["semantic_scholar"] = [{"status": 429, "retry_after": "1.6"}]
    client = make_client(max_wait_s=3.0)
    papers = client.search("grokking")
    assert papers[0].engine == "semantic_scholar"
    assert waits == [1.6]
    assert client.requests == {"semantic_scholar": 2, "openalex": 0, "arxiv": 0}


def test_retry_after_longer_than_max_wait_moves_on_at_once(server, make_client, waits):
    server.default["semantic_scholar"] = {"status": 429, "retry_after": "60"}
    client = make_client(max_wait_s=5.0)
    papers = client.search("grokking")
    assert papers[0].engine == "openalex" and waits == []  # no wait at all before the next engine
    assert client.requests["semantic_scholar"] == 1


def test_429_storm_moves_to_the_next_engine_quickly(server, make_client, waits):
    server.default["semantic_scholar"] = {"status": 429}  # no Retry-After: exponential back-off capped at max_wait_s
    client = make_client(max_attempts=3, max_wait_s=0.3)
    papers = client.search("grokking")
    assert papers[0].engine == "openalex" and len(waits) == 2 and all(0 < w <= 0.3 for w in waits)
    assert client.requests["semantic_scholar"] == 3 and client.stats()["answered"]["openalex"] == 1


def test_429_storm_with_the_shipped_defaults_takes_seconds_not_minutes(server, make_client, waits):
    server.default["semantic_scholar"] = {"status": 429}
    client = make_client(max_attempts=3, max_wait_s=20.0)  # as in conf/literature/default.yaml
    papers = client.search("grokking")
    assert papers[0].engine == "openalex" and client.requests["semantic_scholar"] == 3
    first, second = waits  # back-off 1 s, then 2 s, each plus up to 0.5 s of jitter; then the next engine
    assert 1.0 <= first <= 1.5 and 2.0 <= second <= 2.5


def test_timeouts_are_retried_then_fall_back(server, make_client, waits, caplog):
    server.default["semantic_scholar"] = {"delay": 1.0}
    client = make_client(timeout_s=0.2, max_attempts=2, max_wait_s=0.1)
    with caplog.at_level(logging.INFO, logger="engine.literature"):
        papers = client.search("grokking")
    assert papers[0].engine == "openalex" and client.requests["semantic_scholar"] == 2
    # both attempts ended at the client's timeout, not at the slow answer; one short wait between them
    assert "semantic_scholar failed for 'grokking': timeout x2" in caplog.text and len(waits) == 1 and waits[0] <= 0.1


def test_breaker_skips_a_failing_engine_on_later_queries(server, make_client, caplog):
    server.default["semantic_scholar"] = {"status": 500, "retry_after": "0"}
    client = make_client(breaker_failures=2, max_attempts=2)
    with caplog.at_level(logging.WARNING, logger="engine.literature"):
        for i in range(4):
            assert client.search(f"query {i}")[0].engine == "openalex"
    assert client.requests["semantic_scholar"] == 4  # 2 queries x 2 attempts, then never again
    warnings = [r.getMessage() for r in caplog.records if "semantic_scholar" in r.getMessage()]
    assert len(warnings) == 1 and "skipped" in warnings[0]
    assert "semantic_scholar" in client.stats()["disabled"]


def test_success_resets_the_breaker(server, make_client):
    server.script["semantic_scholar"] = [{"status": 500}, {"papers": [paper("ok")]}, {"status": 500}]
    client = make_client(breaker_failures=2, max_attempts=1)
    for i in range(3):
        client.search(f"q{i}")
    client.search("q3")
    assert client.requests["semantic_scholar"] == 4 and not client.stats()["disabled"]


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_disables_the_engine_naming_the_key(server, make_client, caplog, status):
    server.default["semantic_scholar"] = {"status": status}
    client = make_client(breaker_failures=5)
    with caplog.at_level(logging.WARNING, logger="engine.literature"):
        assert client.search("a")[0].engine == "openalex"
        client.search("b")
    assert client.requests["semantic_scholar"] == 1  # not retried, not asked again
    assert any("S2_API_KEY" in r.getMessage() for r in caplog.records)


def test_all_engines_down_raise_one_error_naming_each(server, make_client, waits):
    server.default["semantic_scholar"] = {"status": 429, "retry_after": "0"}
    server.default["openalex"] = {"status": 503}
    server.default["arxiv"] = {"delay": 2.0}
    client = make_client(timeout_s=0.3, max_attempts=3, max_wait_s=0.2)
    with pytest.raises(LiteratureError) as e:
        client.search("grokking")
    assert len(waits) == 6 and max(waits) <= 0.2  # two waits per engine, each capped at max_wait_s
    message = str(e.value)
    assert "semantic_scholar: 429 x3" in message and "openalex: 503 x3" in message and "arxiv: timeout x3" in message
    assert isinstance(e.value, EngineError) and set(e.value.reasons) == {"semantic_scholar", "openalex", "arxiv"}
    assert not list(client.cache.folder.iterdir())  # failures are not cached


def test_missing_openalex_key_skips_it_quietly(server, make_client, caplog):
    server.default["semantic_scholar"] = {"status": 404}
    with caplog.at_level(logging.INFO, logger="engine.literature"):
        client = make_client(env={"S2_API_KEY": "k"})
        assert client.search("a")[0].engine == "arxiv"
        client.search("b")
    assert client.requests["openalex"] == server.count("openalex") == 0
    assert sum("OPENALEX_API_KEY" in r.getMessage() for r in caplog.records) == 1
    server.default["arxiv"] = {"status": 500}
    with pytest.raises(LiteratureError) as e:
        client.search("c")
    assert "openalex: skipped (OPENALEX_API_KEY not set)" in str(e.value)
    assert "semantic_scholar: 404" in str(e.value)


def test_cache_same_query_once_and_a_resumed_client_asks_nothing(server, make_client, tmp_path):
    folder = tmp_path / "run" / "literature"
    client = make_client(folder=folder)
    first = client.search("Grokking  transformers")
    assert client.search("grokking transformers ") == first
    assert server.count("semantic_scholar") == 1 and client.cache_hits == 1
    client.search("grokking transformers", limit=3)  # another limit is another question
    assert server.count("semantic_scholar") == 2
    assert sorted(p.suffix for p in (folder / "cache").iterdir()) == [".json", ".json"]  # no temp files left
    resumed = make_client(folder=folder)
    assert resumed.search("grokking transformers") == first
    assert resumed.search("grokking transformers", limit=3)
    assert sum(resumed.requests.values()) == 0 and resumed.cache_hits == 2
    assert server.count("semantic_scholar") == 2


def test_empty_answer_is_cached(server, make_client):
    server.default["semantic_scholar"] = {"papers": []}
    client = make_client()
    assert client.search("x") == [] and client.search("x") == []
    assert len(server.requests) == 1


def test_concurrent_searches_from_threads(server, make_client):
    client = make_client()
    results: dict[str, list] = {}
    errors: list[BaseException] = []

    def work(q: str) -> None:
        try:
            results[q] = client.search(q)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"q{i % 4}",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and len(results) == 4 and all(r for r in results.values())
    assert server.count("semantic_scholar") == 4  # the same query from three threads is asked once
    assert client.stats()["queries"] == 12 and client.cache_hits == 8


def test_rate_limit_spaces_requests_across_threads(server, tmp_path, monkeypatch):
    # a frozen clock: every thread asks at the same instant, so the limiter's waits are exactly its slots
    slept: list[float] = []
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=lambda: 100.0, sleep=slept.append))
    cfg = config(server, engines=["arxiv"])
    cfg = replace(cfg, engines=tuple(replace(e, requests_per_s=5.0) for e in cfg.engines))
    with LiteratureSearch(cfg, {}, tmp_path) as client:
        threads = [threading.Thread(target=client.search, args=(f"q{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert len(server.requests) == 4
    assert sorted(slept) == pytest.approx([0.2, 0.4, 0.6])  # the first at once, then one slot of 1/5 s each


def test_blank_query_and_bad_limit(make_client, server):
    client = make_client()
    assert client.search("   ") == [] and not server.requests
    with pytest.raises(ValueError):
        client.search("x", limit=0)
