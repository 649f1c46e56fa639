"""Start (or join) the place where nodes run, and hand back an executor for it.

cluster.kind:
  local    start a private Ray instance on this machine with the declared CPUs/GPUs (real GPUs are detected
           when num_gpus is null; a number declares logical GPUs, e.g. to test packing on a CPU machine).
           It never attaches to a Ray cluster that happens to be running.
  ray      connect to an existing cluster: cluster.address=auto, or ray://host:10001, or host:6379.
  threads  no Ray: nodes run as sandboxed subprocesses of this process (quick tests, minimal installs).
"""
from __future__ import annotations

import logging
import os

from engine import interrupt
from engine.errors import EngineError
from engine.nodes.config import ClusterConfig
from engine.nodes.executor import Executor, LocalExecutor

log = logging.getLogger(__name__)


def start_executor(cfg: ClusterConfig, template_gpus: float = 0.0) -> Executor:
    if cfg.kind == "threads":
        return LocalExecutor(cfg.slots)
    if cfg.kind == "local":  # a private instance stays on loopback (Ray's documented switch, read at import)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    from engine.nodes.ray_executor import InfeasibleError, RayExecutor, RunnerSpec

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        if cfg.kind == "local":
            ray.init(address="local", num_cpus=_opt_int(cfg.num_cpus), num_gpus=_opt_int(cfg.num_gpus),
                     include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                     configure_logging=False)
        else:
            if not cfg.address:
                raise EngineError("cluster=ray needs cluster.address (auto, host:6379 or ray://host:10001)")
            try:
                ray.init(address=cfg.address, logging_level=logging.WARNING, log_to_driver=False,
                         configure_logging=False, runtime_env=_code_for_workers())
            except ConnectionError as e:
                raise EngineError(f"cannot connect to the Ray cluster at {cfg.address}: {e}") from None
    interrupt.take_back()  # Ray's own SIGTERM handler dumps a stack and exits: ours marks the run interrupted
    total_gpus = ray.cluster_resources().get("GPU", 0)
    fraction = cfg.runner_gpu_fraction
    if fraction is None:
        fraction = template_gpus if total_gpus > 0 else 0.0
    log.info("Ray: %g CPUs, %g GPUs; %d runners of %g CPU and %g GPU each", ray.cluster_resources().get("CPU", 0),
             total_gpus, cfg.slots, cfg.runner_num_cpus, fraction)
    try:
        return RayExecutor(cfg.slots, RunnerSpec(cfg.runner_num_cpus, fraction))
    except (InfeasibleError, ValueError) as e:
        raise EngineError(str(e)) from None


def _code_for_workers() -> dict:
    """Ship this project's packages to the workers of a remote cluster (no shared filesystem)."""
    import engine
    import search
    import stages
    return {"py_modules": [os.path.dirname(m.__file__) for m in (engine, search, stages)]}


def _opt_int(value: float | None) -> int | None:
    return None if value is None else int(value)
