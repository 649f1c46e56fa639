"""A thread-safe limiter: requests of one engine start at least 1/requests_per_s seconds apart."""
from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, requests_per_s: float):
        self.interval = 1.0 / requests_per_s
        self._next = 0.0  # monotonic time of the next free slot
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until this caller's slot; slots are handed out in call order, so no thread starves."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
