"""A Ctrl-C (SIGINT) that cannot be lost.

Python raises KeyboardInterrupt wherever the main thread happens to be; when that is a finalizer (Ray's
ObjectRef.__del__ runs constantly in the driver loop) the exception is reported as "ignored" and the run goes
on. The handler below also sets a flag, and the loops that wait for nodes check it, so the run stops anyway.
"""
from __future__ import annotations

import signal
import threading

_requested = threading.Event()


def install() -> None:
    """Route SIGINT through the flag (call from the main thread, once per process)."""
    reset()

    def handler(signum: int, frame: object) -> None:
        _requested.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def reset() -> None:
    """Forget a SIGINT that was seen (a new run in the same process starts clean)."""
    _requested.clear()


def check() -> None:
    """Raise KeyboardInterrupt if a SIGINT came in, even one whose exception was swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt
