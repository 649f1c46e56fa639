"""The Ray executor on a simulated two-machine cluster with logical GPUs (one Ray instance per session)."""
import json
import os
import shutil
import signal
import textwrap
import time

import pytest
import ray
from omegaconf import OmegaConf

from engine import config as config_mod
from engine.config import shipped_sandbox
from engine.experiments.phase import prepare, run_search
from engine.nodes.node_exec import NodeJob
from engine.nodes.ray_executor import InfeasibleError, RayExecutor, RunnerSpec
from engine.rundir import RunDir
from engine.tracking import NullTracker
from tests.conftest import REPO

pytestmark = pytest.mark.slow

PROBE = textwrap.dedent("""
    import json, os, sys, time
    start = time.time()
    time.sleep({sleep})
    os.makedirs("run_0", exist_ok=True)
    json.dump({{"env": {{k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "ENGINE_GPU_FRACTION",
               "ENGINE_GPU_MEMORY_FRACTION")}}, "start": start, "end": time.time(),
               "sitecustomize": os.path.isfile(".engine_site/sitecustomize.py")}}, open("run_0/probe.json", "w"))
    json.dump({{"g": {{"means": {{"t": {sleep}}}}}}}, open("run_0/final_info.json", "w"))
""")


@pytest.fixture(scope="module")
def two_machines():
    from ray.cluster_utils import Cluster

    machine = {"num_cpus": 4, "num_gpus": 1, "node_ip_address": "127.0.0.1"}  # loopback only
    cluster = Cluster(initialize_head=True, head_node_args=machine)
    cluster.add_node(**machine)
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def job(node_id, sleep=0.0, timeout=60.0, code=None):
    sandbox = shipped_sandbox(timeout_s=timeout, memory_gb=4)
    return NodeJob(node_id, code or PROBE.format(sleep=sleep), {}, sandbox, None, None, None)


def drain(executor, n, timeout=120):
    outcomes, deadline = [], time.monotonic() + timeout
    while len(outcomes) < n and time.monotonic() < deadline:
        outcomes += executor.wait_any(1.0)
    assert len(outcomes) == n, f"{len(outcomes)} of {n} nodes came back"
    return outcomes


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.25])
def test_gpu_fractions_pack_as_declared(two_machines, fraction):
    per_gpu = round(1 / fraction)
    slots = 2 * per_gpu
    ex = RayExecutor(slots, RunnerSpec(num_cpus=0.5, gpu_fraction=fraction))
    try:
        for i in range(slots):  # every runner is idle: each takes one node
            ex.submit(job(f"n{i}"))
        outcomes = drain(ex, slots)
        # each runner is an actor holding its share for its whole life, so all of them hold a GPU share at once:
        # the two GPUs are taken whole (eventually seen by the cluster's resource view)
        deadline = time.monotonic() + 30
        while ray.available_resources().get("GPU", 0) > 1e-6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ray.available_resources().get("GPU", 0) == pytest.approx(0, abs=1e-6)
    finally:
        ex.shutdown()
    by_gpu = {}
    for o in outcomes:
        assert o.result.ok, o.result.stderr_tail
        probe = json.loads(o.artifacts["run_0/probe.json"])
        key = (o.runner["node_id"], probe["env"]["CUDA_VISIBLE_DEVICES"])
        assert probe["env"]["CUDA_VISIBLE_DEVICES"] == ",".join(o.runner["gpu_ids"])
        assert probe["env"]["ENGINE_GPU_FRACTION"] == f"{fraction:g}"
        if fraction < 1:  # the runner caps torch's allocator to the share
            assert probe["env"]["ENGINE_GPU_MEMORY_FRACTION"] == f"{fraction:g}" and probe["sitecustomize"]
        by_gpu.setdefault(key, set()).add(o.runner["pid"])
    # two machines, one GPU each, `per_gpu` runners (processes) on each GPU, each of which ran one of the nodes
    assert len({k[0] for k in by_gpu}) == 2
    assert sorted(len(v) for v in by_gpu.values()) == [per_gpu, per_gpu]


def test_request_no_cluster_can_hold_fails_clearly(two_machines):
    with pytest.raises(InfeasibleError, match="can hold 2 of the 3 runners"):
        RayExecutor(3, RunnerSpec(num_cpus=1, gpu_fraction=1.0))
    with pytest.raises(InfeasibleError, match="can hold 0 of the 1"):
        RayExecutor(1, RunnerSpec(num_cpus=16))


def test_killed_runner_costs_only_its_node(two_machines):
    ex = RayExecutor(2, RunnerSpec(num_cpus=1))
    try:
        ex.submit(job("victim", sleep=60))
        ex.submit(job("bystander", sleep=2))
        time.sleep(1.0)
        victim = ex.runner_of("victim")
        os.kill(ray.get(victim.where.remote(), timeout=10)["pid"], signal.SIGKILL)
        outcomes = {o.node_id: o for o in drain(ex, 2, timeout=60)}
        assert outcomes["bystander"].result.ok
        lost = outcomes["victim"].result
        assert lost.exc_type == "RunnerDied" and lost.killed_reason == "runner"
        # the slot has a fresh runner
        ex.submit(job("after", sleep=0))
        [after] = drain(ex, 1)
        assert after.result.ok
    finally:
        ex.shutdown()


def test_node_past_its_timeout_is_killed_and_slot_reused(two_machines):
    ex = RayExecutor(1, RunnerSpec(num_cpus=1))
    try:
        start = time.monotonic()
        ex.submit(job("sleeper", code="import time\ntime.sleep(600)\n", timeout=2))
        [o] = drain(ex, 1, timeout=60)
        assert o.result.killed_reason == "timeout" and time.monotonic() - start < 30
        ex.submit(job("next", sleep=0))
        [o] = drain(ex, 1)
        assert o.result.ok
    finally:
        ex.shutdown()


def test_search_on_two_machines_needs_no_shared_paths(two_machines, tmp_path, v1_template):
    cfg = OmegaConf.load(REPO / "conf" / "config.yaml")
    for group, name in (("search", "bfts"), ("stages", "default"), ("cluster", "ray"), ("sandbox", "default"),
                        ("tracking", "none"), ("ideas", "default"), ("literature", "default"),
                        ("writeup", "default"), ("review", "default")):
        cfg[group] = OmegaConf.load(REPO / "conf" / group / f"{name}.yaml")
    cfg.topic = OmegaConf.load(REPO / "conf" / "topic" / "template.yaml")
    cfg.topic.path = str(v1_template)
    cfg.stages.run, cfg.stages.num_seeds = ["initial"], 1
    cfg.stages.initial.max_nodes = cfg.stages.initial.offline_max_nodes = 6
    cfg.stages.initial.run_to_budget = True
    cfg.cluster.slots, cfg.cluster.runner.num_cpus = 4, 1
    cfg.cluster.address = two_machines.address
    del cfg["hydra"]
    exp = prepare(config_mod.build(OmegaConf.to_container(cfg, resolve=True)))
    # from here on the template exists only as bytes in the driver: runners cannot read it from disk
    shutil.rmtree(v1_template)
    summary = run_search(exp, tmp_path / "run", {"Name": "toy"}, NullTracker())
    assert summary["nodes"] == {"total": 6, "good": 6, "buggy": 0, "copies": 0, "seed_runs": 0, "final_runs": 0}
    nodes = RunDir(tmp_path / "run").load_nodes()
    ray_nodes = {json.loads((RunDir(tmp_path / "run").node_dir(n) / "runner.json").read_text())["node_id"]
                 for n in nodes}
    assert len(ray_nodes) == 2, "runners on both machines ran nodes"
