"""The benchmark's PDFs, fetched before any review: concurrently and politely (a User-Agent, a per-host request
rate, bounded retries on 429 / 5xx / network errors that honour Retry-After; httpx and tenacity), into a cache
that later runs reuse. A paper that cannot be fetched is reported with the reason; the others go on."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from engine.literature.client import retry_after_seconds

log = logging.getLogger("iclr_review.downloads")
OPENREVIEW = "https://openreview.net"
USER_AGENT = ("ai-scientist-engine-iclr-benchmark/0.1 (reviewer benchmark; fetches each paper once into a "
              "local cache)")


@dataclass(frozen=True)
class DownloadSettings:
    base_url: str = OPENREVIEW        # a paper's PDF is <base_url>/pdf?id=<paper id>
    concurrency: int = 4              # downloads in flight at once
    per_host_rate: float = 1.0        # request starts per second to one host (retries included)
    attempts: int = 4                 # tries per paper, the first included
    timeout_s: float = 60.0           # per request
    backoff_s: float = 2.0            # first wait when the server gives no Retry-After (then doubling, jittered)
    max_wait_s: float = 120.0         # a longer Retry-After, or back-off, is cut to this
    user_agent: str = USER_AGENT

    def url(self, paper_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/pdf?id={paper_id}"


@dataclass
class Downloads:
    paths: dict[str, Path] = field(default_factory=dict)   # paper id -> its PDF
    failed: dict[str, str] = field(default_factory=dict)   # paper id -> why it could not be fetched


class Retryable(Exception):
    """A 429 or 5xx answer: worth another try, after `retry_after` seconds when the server said so."""

    def __init__(self, status: int, retry_after: float | None):
        super().__init__(f"HTTP {status}" + (f" (Retry-After {retry_after:g} s)" if retry_after is not None else ""))
        self.retry_after = retry_after


class Refused(Exception):
    """An answer that another try will not change (404, 403, a page that is not a PDF)."""


class HostRate:
    """Spaces the start of requests to each host by 1/rate seconds, whatever the number of tasks."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_start: dict[str, float] = {}
        self.lock = asyncio.Lock()

    async def wait(self, host: str) -> None:
        loop = asyncio.get_running_loop()
        async with self.lock:
            now = loop.time()
            start = max(now, self.next_start.get(host, now))
            self.next_start[host] = start + self.interval
        await asyncio.sleep(start - now)


def _waiter(settings: DownloadSettings):
    """tenacity's jittered exponential back-off, replaced by the server's Retry-After when it sent one."""
    backoff = wait_exponential_jitter(multiplier=settings.backoff_s, max=settings.max_wait_s, jitter=settings.backoff_s)

    def wait(state) -> float:
        after = getattr(state.outcome.exception(), "retry_after", None)
        return min(after, settings.max_wait_s) if after is not None else backoff(state)
    return wait


def _retryable(e: BaseException) -> bool:
    return isinstance(e, (Retryable, httpx.TransportError))


async def _get(client: httpx.AsyncClient, url: str, rate: HostRate) -> httpx.Response:
    await rate.wait(httpx.URL(url).host)
    resp = await client.get(url)
    if resp.status_code == 429 or resp.status_code >= 500:
        raise Retryable(resp.status_code, retry_after_seconds(resp.headers.get("retry-after")))
    if resp.status_code != 200:
        raise Refused(f"HTTP {resp.status_code}")
    return resp


async def _get_pdf(client: httpx.AsyncClient, url: str, rate: HostRate) -> bytes:
    resp = await _get(client, url, rate)
    if not resp.content.startswith(b"%PDF"):
        raise Refused(f"not a PDF (Content-Type {resp.headers.get('content-type', 'unknown')})")
    return resp.content


def _retrying(settings: DownloadSettings) -> AsyncRetrying:
    return AsyncRetrying(stop=stop_after_attempt(settings.attempts), wait=_waiter(settings),
                         retry=retry_if_exception(_retryable), reraise=True)


def _client(settings: DownloadSettings, accept: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"User-Agent": settings.user_agent, "Accept": accept},
                             timeout=settings.timeout_s, follow_redirects=True)


def fetch_json(url: str, settings: DownloadSettings) -> object:
    """One JSON document, with the same User-Agent and retries as the PDFs; raises Retryable (retries spent),
    Refused or httpx.TransportError."""
    async def get() -> object:
        async with _client(settings, "application/json") as client:
            resp = await _retrying(settings)(_get, client, url, HostRate(settings.per_host_rate))
            return resp.json()
    return asyncio.run(get())


async def _fetch_one(client: httpx.AsyncClient, paper_id: str, dest: Path, settings: DownloadSettings,
                     rate: HostRate, gate: asyncio.Semaphore) -> str | None:
    """Fetches one PDF into `dest`; None when it worked, else the reason."""
    url = settings.url(paper_id)
    retrying = _retrying(settings)
    async with gate:
        try:
            data = await retrying(_get_pdf, client, url, rate)
        except (Retryable, httpx.TransportError) as e:
            what = str(e) if isinstance(e, Retryable) else f"{type(e).__name__} {e}".strip()
            return f"{what}, gave up after {retrying.statistics.get('attempt_number', settings.attempts)} attempts"
        except Refused as e:
            return str(e)
    tmp = dest.with_name(f".{dest.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return None


async def _fetch_all(todo: list[str], cache_dir: Path, settings: DownloadSettings) -> dict[str, str | None]:
    rate, gate = HostRate(settings.per_host_rate), asyncio.Semaphore(max(1, settings.concurrency))
    async with _client(settings, "application/pdf") as client:
        results = await asyncio.gather(*(_fetch_one(client, pid, cache_dir / f"{pid}.pdf", settings, rate, gate)
                                         for pid in todo))
    return dict(zip(todo, results))


def local_pdf(paper_id: str, folders: list[Path | None]) -> Path | None:
    """The paper's PDF in the first folder that holds a usable one (<paper id>.pdf starting with %PDF)."""
    for folder in folders:
        path = folder / f"{paper_id}.pdf" if folder is not None else None
        if path is not None and path.is_file():
            with open(path, "rb") as f:
                if f.read(4) == b"%PDF":
                    return path
    return None


def fetch_pdfs(paper_ids: list[str], cache_dir: Path, settings: DownloadSettings,
               papers_dir: Path | None = None) -> Downloads:
    """Every paper's PDF: from `papers_dir` or the cache when there, else downloaded into `cache_dir`."""
    out = Downloads()
    todo = []
    for pid in paper_ids:
        path = local_pdf(pid, [papers_dir, cache_dir])
        if path is not None:
            out.paths[pid] = path
        else:
            todo.append(pid)
    if not todo:
        return out
    log.info("downloading %d PDF(s) from %s (%d at a time, at most %g requests/s)", len(todo), settings.base_url,
             settings.concurrency, settings.per_host_rate)
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for pid, error in asyncio.run(_fetch_all(todo, cache_dir, settings)).items():
        if error is None:
            out.paths[pid] = cache_dir / f"{pid}.pdf"
        else:
            out.failed[pid] = error
            log.warning("%s: not downloaded: %s", pid, error)
    log.info("downloaded %d of %d PDF(s) in %.0f s", len(todo) - len(out.failed), len(todo),
             time.monotonic() - started)
    return out
