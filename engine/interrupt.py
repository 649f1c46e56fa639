"""A Ctrl-C (SIGINT) or a SIGTERM (Slurm, Kubernetes, spot preemption, `timeout`) that cannot be lost.

Both stop the run the same way: KeyboardInterrupt in the main thread, the phase marked interrupted, the resume
command printed. Python raises it wherever the main thread happens to be; when that is a finalizer (Ray's
ObjectRef.__del__ runs constantly in the driver loop) the exception is reported as "ignored" and the run goes
on, so the handler also sets a flag that the loops waiting for nodes check. Ray installs a handler of its own
for SIGTERM when it starts (a stack dump, then exit): `take_back()` after ray.init puts ours back.
"""
from __future__ import annotations

import signal
import threading

_requested = threading.Event()
_signal: list[int] = []  # the signal that stopped the run, once one did
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _handler(signum: int, frame: object) -> None:
    if not _signal:
        _signal.append(signum)
    _requested.set()
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM through the flag (call from the main thread, once per process)."""
    reset()
    take_back()


def take_back() -> None:
    """Our handlers again, after a library (Ray) installed its own; a no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in SIGNALS:
        signal.signal(sig, _handler)


def reset() -> None:
    """Forget a signal that was seen (a new run in the same process starts clean)."""
    _requested.clear()
    _signal.clear()


def received() -> int | None:
    """The signal that stopped the run, if one did."""
    return _signal[0] if _signal else None


def check() -> None:
    """Raise KeyboardInterrupt if a signal came in, even one whose exception was swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt
