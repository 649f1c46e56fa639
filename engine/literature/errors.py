"""The two errors of the literature search: one engine failing one request, and every engine failing a query."""
from __future__ import annotations

from engine.errors import EngineError

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class RequestFailed(Exception):
    """One engine could not answer: `status` is the HTTP status, or 'timeout', 'connection error', 'malformed'.

    `retry_after` is the server's Retry-After in seconds (None when it sent none); `attempts` is how many requests
    were made before giving up (set by the client)."""

    def __init__(self, status: int | str, detail: str = "", retry_after: float | None = None):
        super().__init__(f"{status}{': ' + detail if detail else ''}")
        self.status, self.detail, self.retry_after = status, detail, retry_after
        self.attempts = 1

    @property
    def transient(self) -> bool:
        """Worth retrying later (rate limit, server error, network trouble); these also count for the breaker."""
        return self.status in TRANSIENT_STATUSES or self.status in ("timeout", "connection error")

    @property
    def auth(self) -> bool:
        return self.status in (401, 403)

    def reason(self) -> str:
        """Short form for the user: '429 x3', 'timeout', 'malformed: not JSON'."""
        text = f"{self.status} x{self.attempts}" if self.attempts > 1 else str(self.status)
        return f"{text} ({self.detail})" if self.detail else text


class LiteratureError(EngineError):
    """Every configured engine failed (or was skipped) for one query; `reasons` maps engine -> last reason."""

    def __init__(self, query: str, reasons: dict[str, str], hint: str):
        listed = "; ".join(f"{name}: {why}" for name, why in reasons.items()) or "no engine configured"
        super().__init__(f"literature search for {query!r} failed on every engine: {listed}. {hint}")
        self.query, self.reasons = query, reasons
