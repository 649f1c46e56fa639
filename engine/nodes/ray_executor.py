"""Nodes on Ray: one runner actor per slot, each holding its CPUs and GPU fraction.

Jobs and results travel through Ray's object store (code and support files in, artifacts out), so runners on
other machines need no shared filesystem. A runner that dies (segfault, OOM kill, lost machine) is replaced
and its node comes back buggy with the cause; a runner that stops answering past its job's deadline is
killed the same way, so the driver never waits forever.
"""
from __future__ import annotations

import logging
import math
import os
import socket
import time
from dataclasses import dataclass

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from engine.nodes.node_exec import NodeJob, NodeOutcome, execute_node
from engine.sandbox.gpu_share import share_files_and_env
from search.node import ExecResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerSpec:
    num_cpus: float = 1.0
    gpu_fraction: float = 0.0  # 0.25: four runners share one GPU

    def __post_init__(self) -> None:
        if self.num_cpus < 0 or self.gpu_fraction < 0:
            raise ValueError("runner.num_cpus and runner.gpu_fraction must be >= 0")
        if self.gpu_fraction > 1 and self.gpu_fraction != int(self.gpu_fraction):
            raise ValueError(f"runner.gpu_fraction above 1 must be a whole number, got {self.gpu_fraction}")


@ray.remote(max_restarts=0)
class Runner:
    """Runs one node at a time in the sandbox, on whatever machine Ray placed it."""

    def __init__(self, gpu_fraction: float):
        self.gpu_fraction = gpu_fraction

    def where(self) -> dict:
        import engine  # which copy this worker imported: on a cluster, the one Ray shipped (py_modules)

        return {"host": socket.gethostname(), "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "engine": os.path.dirname(engine.__file__)}

    def run(self, job: NodeJob) -> NodeOutcome:
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        files, env = share_files_and_env(gpu_ids, self.gpu_fraction)
        outcome = execute_node(job, files, env)
        outcome.runner = self.where()
        return outcome


class RayExecutor:
    def __init__(self, slots: int, runner: RunnerSpec, deadline_margin_s: float = 120.0):
        if slots < 1:
            raise ValueError(f"cluster.slots must be >= 1, got {slots}")
        self.slots, self.spec, self.margin = slots, runner, deadline_margin_s
        check_feasible(runner, slots)
        self._idle = [self._new_runner() for _ in range(slots)]
        self._running: dict[ray.ObjectRef, tuple[object, NodeJob, float]] = {}

    def _new_runner(self):
        # a second thread answers where() while run() is busy; the executor gives each runner one node at a time
        return Runner.options(num_cpus=self.spec.num_cpus, num_gpus=self.spec.gpu_fraction,
                              max_concurrency=2).remote(self.spec.gpu_fraction)

    def runner_of(self, node_id: str):
        """The actor running `node_id` (None when it is not running)."""
        return next((actor for actor, job, _ in self._running.values() if job.node_id == node_id), None)

    def runners(self) -> list:
        return self._idle + [actor for actor, _, _ in self._running.values()]

    def submit(self, job: NodeJob) -> None:
        if not self._idle:
            raise RuntimeError("all slots are busy; wait for a node to finish before submitting")
        actor = self._idle.pop()
        deadline = time.monotonic() + job.sandbox.limit_s + job.sandbox.plot_timeout_s + self.margin
        self._running[actor.run.remote(job)] = (actor, job, deadline)

    def in_flight(self) -> int:
        return len(self._running)

    def wait_any(self, timeout_s: float) -> list[NodeOutcome]:
        if not self._running:
            time.sleep(timeout_s)  # nothing to wait for: still keep the caller's pace
            return []
        ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout_s)
        outcomes = [self._take(ref) for ref in ready]
        now = time.monotonic()
        for ref, (actor, _job, deadline) in list(self._running.items()):
            if now > deadline:  # the runner is hung or its machine is gone: give up on it
                ray.kill(actor, no_restart=True)
                outcomes.append(self._lost(ref, f"RunnerLost: no answer from the runner {self.margin:.0f}s past "
                                                f"the node's time limit; runner killed"))
        return outcomes

    def _take(self, ref: ray.ObjectRef) -> NodeOutcome:
        actor, job, _ = self._running[ref]
        try:
            outcome = ray.get(ref, timeout=60)
        except RayActorError as e:
            return self._lost(ref, f"RunnerDied: the runner process died while running the node ({_cause(e)})")
        except GetTimeoutError:
            ray.kill(actor, no_restart=True)
            return self._lost(ref, "RunnerLost: the result could not be fetched from the runner")
        del self._running[ref]
        self._idle.append(actor)
        return outcome

    def _lost(self, ref: ray.ObjectRef, reason: str) -> NodeOutcome:
        """The node's outcome when its runner is gone; a fresh runner takes the slot."""
        _, job, _ = self._running.pop(ref)
        exc_type, message = reason.split(": ", 1)
        log.warning("node %s: %s", job.node_id, reason)
        self._idle.append(self._new_runner())
        return NodeOutcome(job.node_id, ExecResult(exit_code=None, exc_type=exc_type, exc_message=message,
                                                   killed_reason="runner"))

    def shutdown(self) -> None:
        for actor in self.runners():
            ray.kill(actor, no_restart=True)
        self._idle.clear()
        self._running.clear()


def _cause(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return " ".join(line.strip() for line in text[:3])[:300]


def runners_that_fit(resources: dict[str, float], runner: RunnerSpec) -> float:
    """How many runners one machine with `resources` can hold at once (inf when the runner needs nothing)."""
    fits = math.inf
    if runner.num_cpus > 0:
        fits = min(fits, math.floor(resources.get("CPU", 0) / runner.num_cpus + 1e-9))
    if runner.gpu_fraction > 0:
        gpus = resources.get("GPU", 0)
        if runner.gpu_fraction < 1:  # fractions pack within one GPU, never across two
            fits = min(fits, math.floor(gpus + 1e-9) * math.floor(1 / runner.gpu_fraction + 1e-9))
        else:
            fits = min(fits, math.floor(gpus / runner.gpu_fraction + 1e-9))
    return fits


def check_feasible(runner: RunnerSpec, slots: int) -> None:
    """Fail now, with a message, when the cluster cannot hold `slots` runners at once (Ray would leave the
    requests pending forever)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    capacity = sum(runners_that_fit(n["Resources"], runner) for n in nodes)
    if capacity >= slots:
        return
    have = "; ".join(f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPU, "
                     f"{n['Resources'].get('GPU', 0):g} GPU" for n in nodes) or "no live machines"
    raise InfeasibleError(f"the Ray cluster can hold {capacity} of the {slots} runners asked for "
                          f"(cluster.slots), each needing {runner.num_cpus:g} CPU and {runner.gpu_fraction:g} GPU "
                          f"({have}); lower cluster.slots, cluster.runner.num_cpus or cluster.runner.gpu_fraction, "
                          "or add machines")


class InfeasibleError(RuntimeError):
    pass
