"""Throughput of the search engine against the synchronous-batch reference (AI-Scientist-v2's way).

    python -m benchmarks.engine_throughput --out throughput.json [--slots 8 --nodes 96]
        [--llm-latency MEDIAN_S SIGMA]

The same workload (simulated nodes: sandboxed programs that sleep for log-normal durations) runs on the same
number of slots, first with an instant proposer, then with a model's latency:
  ours       the real Driver and stage plan with Ray runner actors: a finished node's slot gets the next node
             at once; with a model, proposals are written ahead on the real proposal pool (search.lookahead);
  barrier    the v2 reference: a process pool, one node submitted per worker, then wait for all of them; with
             a model, it writes the batch's proposals one after another before running the batch, as v2 does.
Both execute nodes through the same sandbox code. Each proposal's latency is log-normal (--llm-latency median
and sigma; default: a median of half the median node time, sigma 0.5), the same draws for both systems.
Reported:
  speedup_vs_barrier       ours nodes/hour / barrier nodes/hour, instant proposals
  slot_utilization         ours: busy slot-time / (slots x time) over the steady state (from the first start
                           until the last node is started: the tail, when no node is left to start, is excluded
                           for both systems and reported separately as makespan)
  speedup_vs_barrier_llm, slot_utilization_llm   the same with the model's latency
  driver_overhead_ms       ours: median time from a result reaching the driver to its slot's next submission,
                           run-directory writes included
  packing                  nodes in flight per logical GPU with runner.gpu_fraction 1, 0.5 and 0.25
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when Ray is imported: loopback only
import ray  # noqa: E402

from engine.config import shipped_policy, shipped_sandbox, shipped_stages
from engine.nodes.driver import Driver, SearchState
from engine.nodes.node_exec import NodeJob, NodeOutcome, execute_node
from engine.nodes.ray_executor import RayExecutor, RunnerSpec
from engine.rundir import RunDir
from search.journal import Journal
from search.measures import busy_share, spans
from search.metric import MetricSpec
from search.operators import Proposal
from stages.plan import StagePlan
from stages.policy import StageSetup
from stages.spec import StageSettings

SLEEP_PROGRAM = """import json, os, time
time.sleep({duration})
os.makedirs("run_0", exist_ok=True)
json.dump({{"sim": {{"means": {{"duration": {duration}}}}}}}, open("run_0/final_info.json", "w"))
"""
GPU_PROBE = """import json, os, time
start = time.time()
time.sleep({duration})
os.makedirs("run_0", exist_ok=True)
json.dump({{"gpu": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()}},
          open("run_0/probe.json", "w"))
json.dump({{"sim": {{"means": {{"duration": {duration}}}}}}}, open("run_0/final_info.json", "w"))
"""
SANDBOX = shipped_sandbox(timeout_s=600, memory_gb=4, threads=1, plot_timeout_s=10)


def workload(n: int, median_s: float, sigma: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.lognormvariate(0.0, sigma) * median_s, 3) for _ in range(n)]


def job(i: int, duration: float, program: str = SLEEP_PROGRAM) -> NodeJob:
    return NodeJob(f"sim{i:04d}", program.format(duration=duration), {}, SANDBOX, None, None, None)


class WorkloadProposer:
    """Hands out the workload's programs in order, whatever the policy asks for; each proposal takes its
    latency (a model writing the program) on the proposal pool's thread."""

    name = "benchmark workload"

    def __init__(self, durations: list[float], latencies: list[float] | None = None):
        self.durations, self.latencies, self.next = durations, latencies, 0
        self.lock = threading.Lock()

    def _give(self) -> Proposal:
        with self.lock:
            i, self.next = self.next, self.next + 1
        if self.latencies:
            time.sleep(self.latencies[i % len(self.latencies)])
        d = self.durations[i % len(self.durations)]
        return Proposal(f"sleep {d}s", SLEEP_PROGRAM.format(duration=d))

    def draft(self, journal, rng, target=None, brief=None):
        return self._give()

    def debug(self, journal, node, rng, target=None, brief=None):
        return self._give()

    def improve(self, journal, node, rng, target=None, brief=None):
        return self._give()


def utilization(intervals: list[tuple[float, float]], slots: int) -> tuple[float, float, float]:
    """(steady-state utilization on the programs' own time, makespan, steady window) from (start, end)
    wall-clock intervals (search/measures.py defines the measure)."""
    first = min(s for s, _ in intervals)
    share = busy_share(intervals, slots, steady=True)
    return share or 0.0, max(e for _, e in intervals) - first, max(s for s, _ in intervals) - first


def run_ours(durations: list[float], slots: int, latencies: list[float] | None = None,
             lookahead: int | None = None, concurrency: int | None = None) -> dict:
    """The real driver with one stage of len(durations) nodes (run to its budget, no seed runs)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        executor = RayExecutor(slots, RunnerSpec(num_cpus=1, gpu_fraction=0))
        state = SearchState(Journal(), MetricSpec("duration", "minimize"))
        n = len(durations)
        stages = replace(shipped_stages(), run=("initial",), num_seeds=1,
                         settings={"initial": StageSettings("initial", n, n, run_to_budget=True)})
        setup = StageSetup(stages, shipped_policy(num_drafts=slots), offline=True, critique=False,
                           seed=0, timeout_s=600)
        plan = StagePlan(setup, lambda: state.spec, state.journal, state.new_step)
        ahead = lookahead if lookahead is not None else (slots if latencies else 0)
        driver = Driver(RunDir(tmp), state, WorkloadProposer(durations, latencies), executor,
                        lambda node: NodeJob(node.id, node.code, {}, SANDBOX, None, None, None), plan,
                        lookahead=ahead, proposal_concurrency=concurrency or max(1, slots))
        start = time.monotonic()
        driver.search()
        wall = time.monotonic() - start
        executor.shutdown()
        nodes = [n for n in state.journal.nodes if n.operator != "copy"]
    util, makespan, window = utilization(spans(nodes, "program"), slots)
    return {"wall_s": wall, "makespan_s": makespan, "steady_window_s": window, "slot_utilization": util,
            "nodes_per_hour": len(nodes) / wall * 3600, "buggy": sum(1 for n in nodes if n.is_buggy),
            "driver_overhead_ms": 1000 * statistics.median(driver.overhead_s), "lookahead": ahead,
            "proposal_concurrency": concurrency or max(1, slots)}


def run_barrier(durations: list[float], slots: int, latencies: list[float] | None = None) -> dict:
    """The v2 reference: (write the batch's proposals one after another,) submit one node per worker, wait for
    all, repeat."""
    outcomes: list[NodeOutcome] = []
    start = time.monotonic()
    with ProcessPoolExecutor(max_workers=slots) as pool:
        for b in range(0, len(durations), slots):
            if latencies:
                for i in range(b, min(b + slots, len(durations))):
                    time.sleep(latencies[i % len(latencies)])
            futures = [pool.submit(execute_node, job(b + i, d)) for i, d in enumerate(durations[b:b + slots])]
            wait(futures)
            outcomes += [f.result() for f in futures]
    wall = time.monotonic() - start
    intervals = [(o.result.started_at, o.result.started_at + o.result.exec_time_s) for o in outcomes]
    util, makespan, window = utilization(intervals, slots)
    return {"wall_s": wall, "makespan_s": makespan, "steady_window_s": window, "slot_utilization": util,
            "nodes_per_hour": len(outcomes) / wall * 3600,
            "buggy": sum(1 for o in outcomes if not o.result.ok)}


def packing(num_gpus: int = 2, duration: float = 5.0) -> dict[str, float]:
    """Nodes in flight per GPU for each runner GPU fraction (logical GPUs)."""
    result = {}
    for fraction in (1.0, 0.5, 0.25):
        slots = round(num_gpus / fraction)
        executor = RayExecutor(slots, RunnerSpec(num_cpus=0.25, gpu_fraction=fraction))
        for i in range(slots):
            executor.submit(job(i, duration, GPU_PROBE))
        outcomes: list[NodeOutcome] = []
        while len(outcomes) < slots:
            outcomes += executor.wait_any(5.0)
        executor.shutdown()
        per_gpu: dict[str, list[tuple[float, float]]] = {}
        for o in outcomes:
            probe = json.loads(o.artifacts["run_0/probe.json"])
            per_gpu.setdefault(probe["gpu"], []).append((probe["start"], probe["end"]))
        result[f"{fraction:g}"] = statistics.mean(_max_overlap(v) for v in per_gpu.values())
    return result


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON file for the figures")
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--nodes", type=int, default=96)
    ap.add_argument("--median-s", type=float, default=1.0, help="median simulated node duration")
    ap.add_argument("--sigma", type=float, default=0.8, help="log-normal shape (heavier tail when larger)")
    ap.add_argument("--llm-latency", type=float, nargs=2, metavar=("MEDIAN_S", "SIGMA"), default=None,
                    help="each proposal's log-normal latency (default: median half the median node time, sigma 0.5)")
    ap.add_argument("--lookahead", type=int, default=None, help="proposals ahead of the free slots (default: slots)")
    ap.add_argument("--llm-concurrency", type=int, default=None,
                    help="model calls in flight at once (llm.max_concurrency; default: slots)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-packing", action="store_true", help="leave out the GPU packing check")
    args = ap.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local instance for the run
    durations = workload(args.nodes, args.median_s, args.sigma, args.seed)
    llm_median, llm_sigma = args.llm_latency or (args.median_s / 2, 0.5)
    latencies = workload(args.nodes, llm_median, llm_sigma, args.seed + 1)
    ray.init(address="local", num_cpus=args.slots, num_gpus=2, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False)
    try:
        ours = run_ours(durations, args.slots)
        barrier = run_barrier(durations, args.slots)
        ours_llm = run_ours(durations, args.slots, latencies, args.lookahead, args.llm_concurrency)
        barrier_llm = run_barrier(durations, args.slots, latencies)
        packed = {} if args.skip_packing else packing()
    finally:
        ray.shutdown()

    figures = {
        "speedup_vs_barrier": ours["nodes_per_hour"] / barrier["nodes_per_hour"],
        "slot_utilization": ours["slot_utilization"],
        "speedup_vs_barrier_llm": ours_llm["nodes_per_hour"] / barrier_llm["nodes_per_hour"],
        "slot_utilization_llm": ours_llm["slot_utilization"],
        "driver_overhead_ms": ours["driver_overhead_ms"],
        "driver_overhead_ms_llm": ours_llm["driver_overhead_ms"],
        "packing": packed,
        "ours": ours, "barrier": barrier, "ours_llm": ours_llm, "barrier_llm": barrier_llm,
        "workload": {"nodes": args.nodes, "slots": args.slots, "median_s": args.median_s, "sigma": args.sigma,
                     "llm_latency_median_s": llm_median, "llm_latency_sigma": llm_sigma,
                     "seed": args.seed, "total_node_seconds": round(sum(durations), 2),
                     "total_llm_seconds": round(sum(latencies), 2), "cpu_cores": os.cpu_count()},
    }
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{args.nodes} simulated nodes, log-normal durations (median {args.median_s}s, sigma {args.sigma}), "
          f"{args.slots} slots, {os.cpu_count()} CPU cores; model latency log-normal (median {llm_median:g}s, "
          f"sigma {llm_sigma:g}), {ours_llm['lookahead']} proposals ahead, {ours_llm['proposal_concurrency']} calls "
          "at once")
    print(f"{'':34}{'ours':>12}{'barrier (v2)':>14}{'ratio':>9}")
    for label, a, b in (("instant proposals", ours, barrier), ("with model latency", ours_llm, barrier_llm)):
        print(f"-- {label}")
        for name, key in (("nodes / hour", "nodes_per_hour"), ("wall time (s)", "wall_s"),
                          ("slot utilization (steady state)", "slot_utilization")):
            print(f"{name:34}{a[key]:12.2f}{b[key]:14.2f}{a[key] / b[key]:9.2f}")
        print(f"{'driver overhead, median (ms)':34}{a['driver_overhead_ms']:12.2f}")
    if packed:
        print("GPU packing, nodes in flight per GPU: " +
              ", ".join(f"fraction {k} -> {v:g}" for k, v in packed.items()) + " (v2: whole GPUs only, 1)")
    print(f"speedup_vs_barrier = {figures['speedup_vs_barrier']:.2f}, slot_utilization = "
          f"{figures['slot_utilization']:.3f}; speedup_vs_barrier_llm = {figures['speedup_vs_barrier_llm']:.2f}, "
          f"slot_utilization_llm = {figures['slot_utilization_llm']:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
