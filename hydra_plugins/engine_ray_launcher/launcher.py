"""Hydra's launcher for the engine's sweeps: the points of `python -m engine.launch -m ...` run concurrently on
one Ray instance, each a whole pipeline in a process of its own (the sweep's logic is in engine/sweep.py).

Chosen in conf/config.yaml (`override hydra/launcher: engine_ray`); its settings are the `sweep` group
(conf/sweep/). Hydra imports every module under hydra_plugins when it starts, so this one imports Ray and the
engine only when a sweep launches. (No `from __future__ import annotations`: Hydra executes this module outside
sys.modules, where dataclasses cannot resolve string annotations.)
"""
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger("engine.sweep")


@dataclass
class EngineRayLauncherConf:
    _target_: str = "hydra_plugins.engine_ray_launcher.launcher.EngineRayLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="engine_ray", node=EngineRayLauncherConf,
                             provider="ai-scientist-engine")


class EngineRayLauncher(Launcher):
    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray

        from engine import interrupt, sweep
        from engine.errors import EngineError
        from engine.inputs import startup

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        try:
            settings = sweep.SweepSettings.of_sweep(_plain(self.config.get("sweep")))
        except EngineError as e:
            startup.refuse(e, sweep_dir=sweep_dir)
        points = sweep.plan(sweep_dir, job_overrides, initial_job_idx)
        todo = [p for p in points if p.state != "finished"]
        for p in todo:  # every point's settings and inputs, before the sweep makes its folder or starts Ray
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(p.overrides))
            startup.check_or_exit(config, p.run_dir, f"sweep point {p.name}: ", sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        interrupt.install()
        cluster = _plain(self.config.cluster)
        resources = sweep.start_ray(cluster) if todo else {}  # nothing to run: no Ray
        record = sweep.SweepRecord.load(sweep_dir)
        launch = {"started_at": time.time(), "finished_at": None, "status": "running", "points": len(points),
                  "resources": {k: resources.get(k, 0) for k in ("CPU", "GPU")},
                  "max_concurrent_runs": settings.max_concurrent_runs}
        record.launches.append(launch)
        runs = min(settings.max_concurrent_runs, len(todo))
        share = sweep.slot_share(cluster.get("runner") or {}, runs) if todo and settings.fair_share else None
        log.info("sweep: %d points in %s: %d finished before, %d to resume, %d new; %d at a time on Ray (%g CPUs, "
                 "%g GPUs)%s", len(points), sweep_dir, len(points) - len(todo),
                 sum(p.state == "started" for p in todo), sum(p.state == "new" for p in todo), runs,
                 resources.get("CPU", 0), resources.get("GPU", 0),
                 f"; each run {share[0]} node slot(s) of {share[1]:g} CPU" if share else "")
        # (Hydra's sweeper composed every point's config before this: a point that does not compose stops the
        # sweep before anything runs)
        jobs = {p.name: functools.partial(execute, self.hydra_context, self._point_config(p, sweep_dir, share),
                                          self.task_function, Singleton.get_state(), os.getcwd()) for p in todo}
        try:
            outcomes = sweep.run_points(points, jobs, settings, record, functools.partial(describe, sweep_dir))
        except KeyboardInterrupt:
            launch |= {"status": "interrupted", "finished_at": time.time()}
            launch["wall_time_s"] = round(launch["finished_at"] - launch["started_at"], 1)
            record.save()
            log.warning("sweep stopped: the runs in flight are marked interrupted; resume the sweep (finished runs "
                        "are skipped) with\n    %s", sweep.resume_command(sweep_dir))
            sys.exit(128 + (interrupt.received() or signal.SIGINT))
        finally:
            if ray.is_initialized():
                ray.shutdown()
        launch |= {"status": "done", "finished_at": time.time()}
        launch["wall_time_s"] = round(launch["finished_at"] - launch["started_at"], 1)
        record.save()
        report(points, outcomes, record, launch, sweep_dir)
        # Hydra's sweeper raises the first failed point's error after this, so the sweep's exit status says so
        return [job_return(p, outcomes[p.name]) for p in points]

    def _point_config(self, point: Any, sweep_dir: Path, share: tuple[int, float] | None) -> DictConfig:
        assert self.config is not None and self.hydra_context is not None
        given = {o.partition("=")[0].lstrip("+~") for o in point.overrides}
        extra = []
        if share is not None and point.state == "new" and "cluster.slots" not in given:
            extra.append(f"cluster.slots={share[0]}")
            if "cluster.runner.num_cpus" not in given and share[1] != float((self.config.cluster.get("runner") or {})
                                                                            .get("num_cpus", 1)):
                extra.append(f"cluster.runner.num_cpus={share[1]}")
        config = self.hydra_context.config_loader.load_sweep_config(self.config, [*point.overrides, *extra])
        with open_dict(config):
            config.hydra.job.id = f"{config.hydra.job.name}_{point.index}"
            config.hydra.job.num = point.index
            # resolved here: `${now:...}` in a run's own process would name another folder
            config.hydra.sweep.dir = str(sweep_dir)
            config.hydra.sweep.subdir = point.name
        return config


def execute(hydra_context: HydraContext, config: DictConfig, task_function: TaskFunction, singleton_state: Any,
            cwd: str) -> JobReturn:
    """One point's pipeline, in the run's own process (a Ray actor)."""
    os.chdir(cwd)  # relative paths on the command line mean what they meant where the sweep was launched
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(config)
    return run_job(hydra_context=hydra_context, task_function=task_function, config=config,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def job_return(point: Any, outcome: Any) -> JobReturn:
    if isinstance(outcome.result, JobReturn):
        return outcome.result
    ok = outcome.status in ("finished", "skipped")
    return JobReturn(overrides=point.overrides, working_dir=str(point.run_dir),
                     status=JobStatus.COMPLETED if ok else JobStatus.FAILED,
                     _return_value=None if ok else RuntimeError(f"{point.name}: {outcome.error}"))


def describe(sweep_dir: Path, ret: JobReturn) -> Any:
    from engine.rundir import read_json
    from engine.sweep import Outcome

    if ret.status == JobStatus.COMPLETED:
        summary = read_json(Path(str(ret.working_dir or sweep_dir)) / "summary.json") or {}
        return Outcome(str(summary.get("status", "finished")), None, ret)
    err = ret._return_value
    return Outcome("failed", (str(err).strip().splitlines() or [type(err).__name__])[0][:500], ret)


def report(points: list[Any], outcomes: dict[str, Any], record: Any, launch: dict[str, Any], sweep_dir: Path) -> None:
    ran = [record.points[p.name] for p in points if outcomes[p.name].status != "skipped"]
    counts: dict[str, int] = {}
    for o in outcomes.values():
        counts[o.status] = counts.get(o.status, 0) + 1
    log.info("sweep: done in %.0f s: %s; the runs of this launch took %.0f s together",
             launch["wall_time_s"], ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
             sum(r.wall_time_s or 0 for r in ran))
    for p in points:
        o = outcomes[p.name]
        if o.status not in ("finished", "skipped"):
            log.warning("sweep: %s %s: %s (log: %s)", p.name, o.status, o.error, p.run_dir / "launch.log")
    log.info("sweep: analyse it with\n    python -m benchmarks.scaling %s --out %s", sweep_dir,
             sweep_dir / "analysis")


def _plain(node: Any) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}  # type: ignore[return-value]
