"""Where nodes run. The driver needs only submit / wait_any; a Ray executor plugs in the same way."""
from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol

from engine.nodes.node_exec import NodeJob, NodeOutcome, execute_node
from engine.sandbox.run import kill_all_running


class Executor(Protocol):
    slots: int

    def submit(self, job: NodeJob) -> None: ...

    def wait_any(self, timeout_s: float) -> list[NodeOutcome]:
        """Outcomes of the jobs that finished (at least one unless the timeout passed)."""
        ...

    def in_flight(self) -> int: ...

    def shutdown(self) -> None: ...


class LocalExecutor:
    """Runs nodes as sandboxed subprocesses on this machine, `slots` at a time (one thread watches each)."""

    def __init__(self, slots: int):
        if slots < 1:
            raise ValueError(f"cluster.slots must be >= 1, got {slots}")
        self.slots = slots
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="node")
        self._futures: dict[Future, str] = {}

    def submit(self, job: NodeJob) -> None:
        if len(self._futures) >= self.slots:
            raise RuntimeError("all slots are busy; wait for a node to finish before submitting")
        self._futures[self._pool.submit(execute_node, job)] = job.node_id

    def wait_any(self, timeout_s: float) -> list[NodeOutcome]:
        if not self._futures:
            time.sleep(timeout_s)  # nothing to wait for: still keep the caller's pace
            return []
        done, _ = wait(list(self._futures), timeout=timeout_s, return_when=FIRST_COMPLETED)
        outcomes = []
        for fut in done:
            self._futures.pop(fut)
            outcomes.append(fut.result())
        return outcomes

    def in_flight(self) -> int:
        return len(self._futures)

    def shutdown(self) -> None:
        kill_all_running()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._futures.clear()
