"""Sweeps: `python -m engine.launch -m +topic=grokking model=a,b,c seed=0,1` runs one pipeline per point, the runs
in flight together on one Ray instance.

Hydra expands the command line into points; our launcher (hydra_plugins/engine_ray_launcher) composes each
point's config and hands the points to `run_points` here, which
  - names each run's folder after the point's swept values (`model=a,seed=0`), so a sweep run again with the
    same `hydra.sweep.dir` finds its runs whatever the order of the values;
  - skips the runs that finished, resumes the ones that started (`resume=<run dir>`), starts the others;
  - runs at most `sweep.max_concurrent_runs` at once, each in a fresh Ray actor on this machine, every run's
    nodes on the same Ray instance; with `sweep.fair_share` each run in flight gets an equal share of the
    cluster's node slots (`cluster.slots`, unless the command line sets it);
  - records every point (status, wall time, error) in `<sweep dir>/sweep.json` as it goes; a point that fails
    is reported and the others go on; Ctrl-C or SIGTERM stops the runs (each marks itself interrupted) and
    prints the command that resumes the sweep.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from engine import interrupt
from engine.errors import EngineError
from engine.inputs.values import Section
from engine.rundir import read_json, write_atomic

log = logging.getLogger("engine.sweep")
RECORD = "sweep.json"
LAUNCHER = "hydra_plugins.engine_ray_launcher.launcher.EngineRayLauncher"


@dataclass(frozen=True)
class SweepSettings:
    """sweep.* (conf/sweep/default.yaml holds the values and their meaning)."""

    max_concurrent_runs: int
    fair_share: bool
    stop_grace_s: float

    @classmethod
    def from_dict(cls, raw: dict[str, Any], resolve: object = None) -> SweepSettings:
        """ValueError naming the key, the value and what is allowed (a single run checks these too)."""
        s = Section(raw, "sweep")
        return cls(s.integer("max_concurrent_runs", at_least=1), s.flag("fair_share"),
                   s.number("stop_grace_s", at_least=0))

    @classmethod
    def of_sweep(cls, raw: dict[str, Any]) -> SweepSettings:
        """The settings of the sweep being launched; EngineError on a bad value."""
        try:
            return cls.from_dict(raw)
        except ValueError as e:
            raise EngineError(f"bad config value: {e}") from None


@dataclass
class Point:
    index: int
    name: str  # the run's folder in the sweep directory
    overrides: list[str]  # the point's overrides, as Hydra gave them (plus the ones the sweep adds)
    run_dir: Path
    state: str  # new | started (resumed) | finished (skipped)


@dataclass
class Outcome:
    status: str  # finished | failed | interrupted | skipped (finished before)
    error: str | None = None
    result: Any = None  # what the run's job returned (Hydra's JobReturn)


@dataclass
class PointRecord:
    overrides: list[str]
    run_dir: str
    status: str = "pending"
    started_at: float | None = None
    finished_at: float | None = None
    wall_time_s: float | None = None
    error: str | None = None
    launches: int = 0


@dataclass
class SweepRecord:
    """sweep.json: what each point did, and each launch of the sweep (one more per resume)."""
    dir: Path
    points: dict[str, PointRecord] = field(default_factory=dict)
    launches: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, sweep_dir: Path) -> SweepRecord:
        raw = read_json(sweep_dir / RECORD) or {}
        return cls(sweep_dir, {k: PointRecord(**v) for k, v in raw.get("points", {}).items()},
                   list(raw.get("launches", [])))

    def save(self) -> None:
        doc = {"sweep": self.dir.name, "dir": str(self.dir), "launches": self.launches,
               "points": {k: asdict(v) for k, v in self.points.items()}}
        write_atomic(self.dir / RECORD, json.dumps(doc, indent=2) + "\n")


def swept_keys(job_overrides: Sequence[Sequence[str]]) -> list[str]:
    """The keys whose values differ between the points, in the order they were given."""
    values: dict[str, list[str]] = {}
    for overrides in job_overrides:
        for item in overrides:
            key, _, value = item.partition("=")
            values.setdefault(key, []).append(value)
    return [k for k, v in values.items() if len(set(v)) > 1 or len(v) < len(job_overrides)]


def point_names(job_overrides: Sequence[Sequence[str]]) -> list[str]:
    """Each point's folder name: its swept `key=value`s, joined by commas (`run` when nothing is swept)."""
    keys = swept_keys(job_overrides)
    names: list[str] = []
    for i, overrides in enumerate(job_overrides):
        chosen = [o.lstrip("+~") for o in overrides if o.partition("=")[0] in keys]
        name = re.sub(r"[^A-Za-z0-9._=,+@:-]", "_", ",".join(chosen)) or "run"
        if len(name) > 120:
            name = f"{name[:100]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
        names.append(name if name not in names else f"{name}-{i}")
    return names


def run_state(run_dir: Path) -> str:
    """finished: the pipeline finished (skipped when the sweep runs again); started: a phase ran (resumed with its
    saved config); new: nothing ran (started afresh, with this command line's config)."""
    summary = read_json(run_dir / "summary.json") or {}
    if summary.get("status") == "finished":
        return "finished"
    if (run_dir / "config.yaml").is_file() and any((run_dir / "phases").glob("*.json")):
        return "started"
    return "new"


def fair_share(capacity: float, runs: int, runner_cpus: float) -> tuple[int, float]:
    """(cluster.slots, cluster.runner.num_cpus) of each of `runs` runs in flight on a cluster that holds `capacity`
    runners: an equal share of the slots; when there are fewer slots than runs, one slot each, of a CPU share
    small enough that every run's runner fits at once (rather than waiting for another run's runner)."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    if math.isinf(capacity) or capacity >= runs:
        return (max(1, int(capacity // runs)) if not math.isinf(capacity) else 1), runner_cpus
    return 1, math.floor(100 * runner_cpus * capacity / runs) / 100


def plan(sweep_dir: Path, job_overrides: Sequence[Sequence[str]], initial_idx: int = 0) -> list[Point]:
    points = []
    for i, (name, overrides) in enumerate(zip(point_names(job_overrides), job_overrides)):
        run_dir = sweep_dir / name
        state = run_state(run_dir)
        # quoted: a folder name holds '=' and ','
        extra = [f"resume='{_escape(str(run_dir))}'"] if state == "started" else []
        points.append(Point(initial_idx + i, name, [*overrides, *extra], run_dir, state))
    return points


Job = Callable[[], Any]  # runs one point's pipeline in the actor; returns Hydra's JobReturn


def run_points(points: list[Point], jobs: dict[str, Job], settings: SweepSettings, record: SweepRecord,
               describe: Callable[[Any], Outcome]) -> dict[str, Outcome]:
    """Run the points' jobs, at most `settings.max_concurrent_runs` at once, each in a fresh actor on this machine
    (the Ray instance must be up); `describe` turns what a job returned into its Outcome."""
    outcomes: dict[str, Outcome] = {}
    queue = [p for p in points if p.state != "finished"]
    for p in points:
        rec = record.points.setdefault(p.name, PointRecord(p.overrides, str(p.run_dir)))
        if p.state == "finished":
            rec.status = "finished"
            outcomes[p.name] = Outcome("skipped")
            log.info("sweep: %s finished before: skipped", p.name)
    record.save()
    if not queue:
        return outcomes
    import ray

    pending: dict[Any, tuple[Point, Any, Any]] = {}  # ref -> (point, actor, its pid's ref)
    total = len(queue)
    try:
        while queue or pending:
            while queue and len(pending) < settings.max_concurrent_runs:
                _start(queue.pop(0), jobs, pending, record)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            interrupt.check()
            for ref in ready:
                p, actor, _ = pending.pop(ref)
                try:
                    outcome = describe(ray.get(ref))
                except ray.exceptions.RayError as e:  # the actor's process died (OOM kill, a crash in Ray)
                    outcome = Outcome("failed", f"the run's process failed: {_last_line(e)}")
                ray.kill(actor)
                outcomes[p.name] = outcome
                _finish(record, p, outcome)
                log.log(logging.INFO if outcome.status == "finished" else logging.WARNING,
                        "sweep: [%d/%d] %s %s in %.0f s%s", total - len(queue) - len(pending), total, p.name,
                        outcome.status, record.points[p.name].wall_time_s or 0,
                        f": {outcome.error}" if outcome.error else "")
    except KeyboardInterrupt:
        outcomes |= _stopped(pending, settings, record, describe)
        raise
    return outcomes


def _start(p: Point, jobs: dict[str, Job], pending: dict[Any, tuple[Point, Any, Any]], record: SweepRecord) -> None:
    """The point's job in a fresh actor, pinned to this machine (the run writes its run directory here)."""
    import ray

    here = ray.get_runtime_context().get_node_id()
    actor = _actor_class().options(
        scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(here, soft=False)).remote()
    pending[actor.run.remote(jobs[p.name])] = (p, actor, actor.pid.remote())
    rec = record.points[p.name]
    rec.status, rec.started_at, rec.finished_at, rec.error = "running", time.time(), None, None
    rec.launches += 1
    record.save()
    log.info("sweep: started %s%s (log: %s)", p.name, " (resuming)" if p.state == "started" else "",
             p.run_dir / "launch.log")


def _stopped(pending: dict[Any, tuple[Point, Any, Any]], settings: SweepSettings, record: SweepRecord,
             describe: Callable[[Any], Outcome]) -> dict[str, Outcome]:
    """Ctrl-C or SIGTERM: the runs in flight are stopped; one that was finishing anyway keeps its result."""
    import ray

    outcomes = {}
    ended = stop(pending, settings.stop_grace_s)
    for ref, (p, _, _) in pending.items():
        outcome = Outcome("interrupted", "the sweep was stopped")
        if ref in ended:
            try:
                outcome = describe(ray.get(ref, timeout=10))
            except ray.exceptions.RayError:  # it stopped: interrupted, as above
                pass
            if outcome.status != "finished":
                outcome = Outcome("interrupted", "the sweep was stopped")
        outcomes[p.name] = outcome
        _finish(record, p, outcome)
    return outcomes


@cache
def _actor_class() -> Any:
    import ray

    return ray.remote(num_cpus=0, max_restarts=0)(PointActor)


class PointActor:
    """One run of the sweep, in a process of its own (a fresh actor per run: no state carries over)."""

    def pid(self) -> int:
        return os.getpid()

    def run(self, job: Job) -> Any:
        return job()


def stop(pending: dict[Any, tuple[Point, Any, Any]], grace_s: float) -> set[Any]:
    """SIGTERM each run in flight (it marks its phase interrupted, as on Ctrl-C), wait up to `grace_s` for them to
    end, then kill the ones left. Returns the refs of the runs that ended by themselves."""
    import ray

    for p, actor, pid in pending.values():
        log.warning("sweep: stopping %s", p.name)
        try:
            os.kill(ray.get(pid, timeout=10), signal.SIGTERM)
        except (ProcessLookupError, ray.exceptions.RayError):  # gone already, or not started yet
            ray.kill(actor)
    deadline = time.monotonic() + grace_s
    left = list(pending)
    while left and time.monotonic() < deadline:
        _, left = ray.wait(left, num_returns=len(left), timeout=min(1.0, max(0.0, deadline - time.monotonic())))
    for ref in left:
        log.warning("sweep: %s did not stop within %g s (sweep.stop_grace_s): killed", pending[ref][0].name,
                    grace_s)
        ray.kill(pending[ref][1])
    return set(pending) - set(left)


def _finish(record: SweepRecord, p: Point, outcome: Outcome) -> None:
    rec = record.points[p.name]
    rec.status, rec.error, rec.finished_at = outcome.status, outcome.error, time.time()
    rec.wall_time_s = round(rec.finished_at - (rec.started_at or rec.finished_at), 1)
    record.save()


def _last_line(err: BaseException) -> str:
    """The line of a Ray error that names the cause (its first line is Ray's own header)."""
    return ([line for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__])[-1][:300]


def start_ray(cluster: dict[str, Any]) -> dict[str, float]:
    """The sweep's one Ray instance: a private one on this machine (cluster=local or threads, with
    cluster.num_cpus / num_gpus), or the cluster at cluster.address (cluster=ray; this machine must be one of its
    nodes, since the runs write their run directories here). Returns the cluster's resources."""
    kind = str(cluster.get("kind", "local"))
    if kind != "ray":  # a private instance stays on loopback (Ray's documented switch, read at import)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return ray.cluster_resources()
    if kind != "ray":
        ray.init(address="local", num_cpus=_opt_int(cluster.get("num_cpus")),
                 num_gpus=_opt_int(cluster.get("num_gpus")), include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False, configure_logging=False)
    else:
        from engine.nodes.cluster import _code_for_workers

        address = str(cluster.get("address") or "")
        if not address or address.startswith("ray://"):
            raise EngineError("a sweep on a Ray cluster runs on one of its machines: cluster.address=auto (or "
                              "host:6379); a ray:// client address cannot hold the runs' directories")
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                     configure_logging=False, runtime_env=_code_for_workers())
        except ConnectionError as e:
            raise EngineError(f"cannot connect to the Ray cluster at {address}: {e}") from None
    interrupt.take_back()  # Ray's own SIGTERM handler exits at once: ours stops the runs first
    return ray.cluster_resources()


def slot_share(runner: dict[str, Any], runs: int) -> tuple[int, float]:
    """fair_share on the running Ray instance, for runners of `cluster.runner`'s size."""
    import ray

    from engine.nodes.ray_executor import RunnerSpec, runners_that_fit

    cpus = float(runner.get("num_cpus", 1))
    spec = RunnerSpec(cpus, float(runner.get("gpu_fraction") or 0))
    return fair_share(sum(runners_that_fit(n["Resources"], spec) for n in ray.nodes() if n.get("Alive")), runs, cpus)


def resume_command(sweep_dir: Path) -> str:
    args = [a for a in sys.argv[1:] if not a.startswith("hydra.sweep.dir=")]
    return " ".join(["python -m engine.launch", *map(shlex.quote, [*args, f"hydra.sweep.dir={sweep_dir}"])])


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
