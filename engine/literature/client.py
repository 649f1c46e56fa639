"""The literature client: engines tried in order, each request rate-limited and retried a bounded number of times,
a circuit breaker per engine, and an on-disk cache so nothing is asked twice.

Failure policy, per engine:
- 429 / 5xx / timeout / connection error: retried (tenacity) up to max_attempts, waiting Retry-After when the server
  sends one (a Retry-After longer than max_wait_s fails the engine for this query at once), else an exponential
  back-off capped at max_wait_s. Such a failed query counts for the breaker; after breaker_failures consecutive ones
  the engine is skipped for the rest of the client's life (one warning).
- 401 / 403: the engine is disabled at once, with a message naming its key variable.
- other 4xx, a malformed body: that engine fails for this query only.
The first engine that answers wins (an empty list is an answer); when none does, LiteratureError names them all.
"""
from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import tenacity

from engine.literature import arxiv, openalex, semantic_scholar
from engine.literature.cache import QueryCache
from engine.literature.config import EngineConfig, LiteratureConfig
from engine.literature.errors import LiteratureError, RequestFailed
from engine.literature.paper import Paper
from engine.literature.ratelimit import RateLimiter

log = logging.getLogger(__name__)

ENGINES: dict[str, ModuleType] = {m.NAME: m for m in (semantic_scholar, openalex, arxiv)}
USER_AGENT = "ai-scientist-engine literature search (httpx)"
BACKOFF_INITIAL_S = 1.0  # first wait when the server gives no Retry-After; doubles, capped at max_wait_s


@dataclass
class _Engine:
    cfg: EngineConfig
    module: ModuleType
    key: str | None
    limiter: RateLimiter
    failures: int = 0  # consecutive failed queries (transient failures only)
    disabled: str | None = None  # why it is skipped, once it is

    @property
    def name(self) -> str:
        return self.cfg.name


class LiteratureSearch:
    """`search(query, limit)` -> list[Paper]; thread-safe. `requests` (per engine) and `cache_hits` count work done."""

    def __init__(self, cfg: LiteratureConfig, env: Mapping[str, str], folder: Path):
        self.cfg = cfg
        self.folder = Path(folder)
        self.cache = QueryCache(self.folder / "cache")
        self.requests: dict[str, int] = {e.name: 0 for e in cfg.engines}
        self.answered: dict[str, int] = {e.name: 0 for e in cfg.engines}
        self.cache_hits = 0
        self.queries = 0
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._http = httpx.Client(timeout=cfg.timeout_s, follow_redirects=True, headers={"User-Agent": USER_AGENT})
        self._engines: list[_Engine] = []
        for ec in cfg.engines:
            key = (env.get(ec.api_key_env) or None) if ec.api_key_env else None
            engine = _Engine(ec, ENGINES[ec.name], key, RateLimiter(ec.requests_per_s))
            if engine.module.KEY_REQUIRED and not key:
                engine.disabled = f"skipped ({ec.api_key_env or 'its API key'} not set)"
                log.warning("literature: %s is skipped: it needs an API key in %s, which is not set", ec.name,
                            ec.api_key_env)
            self._engines.append(engine)

    def search(self, query: str, limit: int | None = None) -> list[Paper]:
        """Up to `limit` (default results_per_query) papers for `query`, from the first engine that answers.
        LiteratureError when every engine fails or is skipped; a blank query gives []."""
        limit = self.cfg.results_per_query if limit is None else int(limit)
        if limit < 1:
            raise ValueError(f"literature search limit must be >= 1, got {limit}")
        query = " ".join(query.split())
        if not query:
            return []
        with self._key_lock(self.cache.path(query, limit).name):  # the same query from two threads: asked once
            cached = self.cache.get(query, limit)
            with self._lock:
                self.queries += 1
                self.cache_hits += cached is not None
            if cached is not None:
                log.info("literature: %r -> %d papers (cache)", query, len(cached))
                return cached
            start = time.monotonic()
            papers, engine = self._ask_engines(query, limit)
            self.cache.put(query, limit, engine, papers)
        log.info("literature: %r -> %d papers from %s (%.1f s)", query, len(papers), engine, time.monotonic() - start)
        return papers

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"queries": self.queries, "cache_hits": self.cache_hits, "requests": dict(self.requests),
                    "answered": dict(self.answered),
                    "disabled": {e.name: e.disabled for e in self._engines if e.disabled}}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LiteratureSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- engines in order -----------------------------------------------------------------------------------------
    def _ask_engines(self, query: str, limit: int) -> tuple[list[Paper], str]:
        reasons: dict[str, str] = {}
        for engine in self._engines:
            if engine.disabled:
                reasons[engine.name] = engine.disabled
                continue
            try:
                papers = engine.module.search(partial(self._get, engine), engine.cfg, query, limit, engine.key)
            except RequestFailed as e:
                reasons[engine.name] = e.reason()
                self._failed(engine, e)
                log.info("literature: %s failed for %r: %s", engine.name, query, e.reason())
                continue
            with self._lock:
                engine.failures = 0
                self.answered[engine.name] += 1
            return papers[:limit], engine.name
        keys = [e.cfg.api_key_env for e in self._engines if e.cfg.api_key_env]
        hint = "Check network access" + (f" and the API keys ({', '.join(keys)})" if keys else "") + \
            ", or try again later."
        raise LiteratureError(query, reasons, hint)

    def _failed(self, engine: _Engine, e: RequestFailed) -> None:
        """Update the engine's breaker after a failed query."""
        with self._lock:
            if engine.disabled:
                return
            if e.auth:
                var = engine.cfg.api_key_env
                what = (f"check the key in {var}" if engine.key else f"set an API key in {var}") if var \
                    else "the service refused access"
                engine.disabled = f"disabled ({e.status}: {what})"
                log.warning("literature: %s refused the request (%s); %s. It is disabled for this run.",
                            engine.name, e.status, what)
            elif e.transient:
                engine.failures += 1
                if engine.failures >= self.cfg.breaker_failures:
                    engine.disabled = f"skipped (failed {engine.failures} queries in a row, last: {e.reason()})"
                    log.warning("literature: %s failed %d queries in a row (last: %s); it is skipped for the rest "
                                "of this run", engine.name, engine.failures, e.reason())

    # --- one request, retried -------------------------------------------------------------------------------------
    def _get(self, engine: _Engine, url: str, params: dict[str, str], headers: dict[str, str]) -> str:
        attempts = 0

        def send() -> str:
            nonlocal attempts
            attempts += 1
            return self._send(engine, url, params, headers)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.cfg.max_attempts),
            retry=tenacity.retry_if_exception(self._retryable), wait=self._wait, reraise=True,
            before_sleep=lambda state: log.debug("literature: %s: %s, retrying in %.1f s", engine.name,
                                                 state.outcome.exception() if state.outcome else None,
                                                 state.next_action.sleep if state.next_action else 0.0))
        try:
            return retrying(send)
        except RequestFailed as e:
            e.attempts = attempts
            raise

    def _retryable(self, e: BaseException) -> bool:
        return isinstance(e, RequestFailed) and e.transient and (e.retry_after is None
                                                                  or e.retry_after <= self.cfg.max_wait_s)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        e = state.outcome.exception() if state.outcome else None
        if isinstance(e, RequestFailed) and e.retry_after is not None:
            return e.retry_after
        backoff = tenacity.wait_exponential_jitter(initial=BACKOFF_INITIAL_S, max=self.cfg.max_wait_s, jitter=0.5)
        return backoff(state)

    def _send(self, engine: _Engine, url: str, params: dict[str, str], headers: dict[str, str]) -> str:
        engine.limiter.wait()
        with self._lock:
            self.requests[engine.name] += 1
        try:
            response = self._http.get(url, params=params, headers=headers)
        except httpx.TimeoutException as e:
            raise RequestFailed("timeout") from e
        except httpx.HTTPError as e:
            raise RequestFailed("connection error", type(e).__name__) from e
        if response.is_success:
            return response.text
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        if retry_after is not None and retry_after > self.cfg.max_wait_s:
            raise RequestFailed(response.status_code, f"Retry-After {retry_after:g} s > max_wait_s "
                                f"{self.cfg.max_wait_s:g} s", retry_after)
        raise RequestFailed(response.status_code, retry_after=retry_after)

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
