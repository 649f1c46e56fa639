"""Run the per-idea jobs on a few threads; the first failure (or a Ctrl-C) stops the rest at their next step."""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

from engine import interrupt

T = TypeVar("T")


class Stopped(Exception):
    """Raised inside a job when the phase is being stopped (another job failed, or Ctrl-C)."""


class Pool:
    def __init__(self, workers: int):
        self.workers = max(1, workers)
        self.stop = threading.Event()

    def check(self) -> None:
        """Call between steps of a job: raises when the phase is stopping."""
        interrupt.check()
        if self.stop.is_set():
            raise Stopped

    def run(self, jobs: list[Callable[[], T]]) -> list[T]:
        """Every job's result, in order; the first exception is raised once running jobs reach a check."""
        with ThreadPoolExecutor(min(self.workers, max(1, len(jobs))), thread_name_prefix="ideas") as ex:
            futures = [ex.submit(self._guarded, job) for job in jobs]
            try:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                    interrupt.check()
                    for f in done:
                        if f.exception() is not None and not isinstance(f.exception(), Stopped):
                            raise f.exception()
            except BaseException:
                self.stop.set()
                for f in futures:
                    f.cancel()
                raise
        return [f.result() for f in futures]

    def _guarded(self, job: Callable[[], T]) -> T:
        self.check()
        try:
            return job()
        except BaseException:
            self.stop.set()  # at once, before this thread takes the next job
            raise
