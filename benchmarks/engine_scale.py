"""The engine at scale: a real run of thousands of tiny nodes, measured per decile.

    python -m benchmarks.engine_scale --nodes 2000 --slots 2 --out scale.json [--cluster local threads]

Each cluster kind runs `python -m engine.launch` in a subprocess, as a user would: the tiny template
(benchmarks/templates/tiny: a program that sleeps 0.05 s and writes final_info.json), the offline proposer, stage 1
only with a budget of --nodes nodes run to its budget, one seed, the experiment phase only, a real run directory
with every write the engine makes. While it runs, the driver process (the launcher) is sampled every --sample-s:
its RSS and the bytes it has passed to write() (/proc/PID/io `wchar`: every file write and rewrite, and its log
lines), and the run directory's size every --dir-every samples. After it, the node records (journal/) give the
per-decile figures defined in benchmarks/scale_measures.py: driver overhead per result (median, p95; from the records'
timestamps, the driver's own definition), the slot gap, nodes per minute, slot use both ways (submission to
result, as summary.json's `slot_utilization`; the programs' own run time), bytes written and run-directory growth
per result, and the driver's RSS. A table is printed per cluster kind and everything goes to --out (JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.scale_measures import NodeTimes, Sample, deciles, rss_slope
from engine.rundir import RunDir, read_json

TEMPLATE = Path(__file__).resolve().parent / "templates" / "tiny"


def launch_command(run_dir: Path, nodes: int, slots: int, cluster: str, template: Path = TEMPLATE) -> list[str]:
    """`python -m engine.launch` for one stage of exactly `nodes` nodes (no early completion, one seed)."""
    return [sys.executable, "-m", "engine.launch", "+topic=template", f"topic.path={template}", "tracking=none",
            "pipeline.phases=[experiments]", "stages.run=[initial]", f"stages.initial.max_nodes={nodes}",
            f"stages.initial.offline_max_nodes={nodes}", "stages.initial.run_to_budget=true", "stages.num_seeds=1",
            f"cluster={cluster}", f"cluster.slots={slots}", f"hydra.run.dir={run_dir}"]


def dir_bytes(root: Path) -> int:
    """Bytes in the files under root (files renamed or removed while walking are skipped)."""
    total, stack = 0, [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def read_proc(pid: int) -> tuple[int, int] | None:
    """(RSS bytes, wchar bytes) of a live process, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        io = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return None
    rss = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
    wchar = next(int(line.split()[1]) for line in io.splitlines() if line.startswith("wchar:"))
    return rss, wchar


class Sampler(threading.Thread):
    """Samples the driver process until it exits (or stop is set)."""

    def __init__(self, pid: int, run_dir: Path, every_s: float, dir_every: int):
        super().__init__(daemon=True)
        self.pid, self.run_dir, self.every_s, self.dir_every = pid, run_dir, every_s, dir_every
        self.samples: list[Sample] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            proc = read_proc(self.pid)
            if proc is None:
                return
            size = dir_bytes(self.run_dir) if i % self.dir_every == 0 and self.run_dir.is_dir() else None
            self.samples.append(Sample(time.time(), proc[0], proc[1], size))
            i += 1
            self.stop.wait(self.every_s)


def node_times(run_dir: Path) -> list[NodeTimes]:
    """The finished nodes that ran a program (a stage's starting copy ran none)."""
    out = []
    for n in RunDir(run_dir).load_nodes():
        if n.operator == "copy" or n.submitted_at is None or n.finished_at is None:
            continue
        out.append(NodeTimes(n.submitted_at, n.finished_at, n.exec.started_at or n.submitted_at,
                             n.exec.exec_time_s, n.slot))
    return out


def filesystem(path: Path) -> str:
    """The type of the filesystem holding path (from /proc/mounts), e.g. ext4, overlay, tmpfs."""
    best, kind = "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def run_one(cluster: str, nodes: int, slots: int, root: Path, every_s: float, dir_every: int,
            timeout_s: float) -> dict:
    run_dir = root / f"run-{cluster}"
    env = os.environ | {"PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                        "WANDB_MODE": "offline"}
    log = root / f"launch-{cluster}.log"
    launched = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(launch_command(run_dir, nodes, slots, cluster), env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        sampler = Sampler(proc.pid, run_dir, every_s, dir_every)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        sampler.stop.set()
        sampler.join()
    wall = time.time() - launched
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        sys.exit(f"error: the cluster={cluster} run {'timed out' if code is None else f'exited with {code}'} "
                 f"after {wall:.0f} s; its log ({log}) ends:\n{tail}")
    times, summary = node_times(run_dir), read_json(run_dir / "summary.json") or {}
    samples = sampler.samples + [Sample(time.time(), sampler.samples[-1].rss if sampler.samples else 0,
                                        sampler.samples[-1].wchar if sampler.samples else 0, dir_bytes(run_dir))]
    overall = deciles(times, slots, samples, parts=1)[0]
    return {"cluster": cluster, "nodes": len(times), "slots": slots, "launch_wall_s": round(wall, 1),
            "search_wall_s": summary.get("search_wall_s"), "first_program_after_launch_s":
                round(min(n.started for n in times) - launched, 2) if times else None,
            "summary_slot_utilization": summary.get("slot_utilization"),
            "summary_driver_overhead_ms_median": summary.get("driver_overhead_ms_median"),
            "records_overhead_ms_median": overall["overhead_ms_median"],
            "rss_growth_bytes_per_node": rss_slope(samples, times),
            "run_dir_bytes": dir_bytes(run_dir), "run_dir_filesystem": filesystem(run_dir),
            "deciles": deciles(times, slots, samples), "whole_run": overall,
            "samples": [[round(s.t, 3), s.rss, s.wchar, s.dir_bytes] for s in samples]}


COLUMNS = (("decile", "decile", "{}"), ("nodes", "last_node", "{}"), ("ovh med ms", "overhead_ms_median", "{:.1f}"),
           ("ovh p95 ms", "overhead_ms_p95", "{:.1f}"), ("gap med ms", "slot_gap_ms_median", "{:.1f}"),
           ("nodes/min", "nodes_per_min", "{:.0f}"), ("use sub", "slot_use_submitted", "{:.2f}"),
           ("use prog", "slot_use_programs", "{:.2f}"), ("RSS MB", "rss_mb_at_end", "{:.0f}"),
           ("RSS B/node", "rss_bytes_per_node", "{}"), ("written KB/res", "written_bytes_per_node", "kb"),
           ("dir KB/res", "dir_growth_bytes_per_node", "kb"))


def _cell(fmt: str, value) -> str:
    if value is None:
        return "-"
    return f"{value / 1024:.1f}" if fmt == "kb" else fmt.format(value)


def table(result: dict) -> str:
    lines = [f"cluster={result['cluster']}: {result['nodes']} nodes on {result['slots']} slots, launch to exit "
             f"{result['launch_wall_s']:.0f} s (search {result['search_wall_s']} s), first program "
             f"{result['first_program_after_launch_s']} s after launch"]
    lines.append(" | ".join(name for name, _, _ in COLUMNS))
    for row in result["deciles"] + [result["whole_run"] | {"decile": "all"}]:
        lines.append(" | ".join(_cell(fmt, row.get(key)) for _, key, fmt in COLUMNS))
    lines.append(f"summary.json: slot_utilization {result['summary_slot_utilization']}, driver overhead median "
                 f"{result['summary_driver_overhead_ms_median']} ms (from the records: "
                 f"{result['records_overhead_ms_median']} ms); driver memory growth "
                 f"{result['rss_growth_bytes_per_node']} B/node (least squares after the first tenth); run directory "
                 f"{result['run_dir_bytes'] / 2**20:.1f} MiB on {result['run_dir_filesystem']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, required=True, help="the stage's budget: nodes the run reaches")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    ap.add_argument("--cluster", nargs="+", default=["local", "threads"], choices=["local", "threads"])
    ap.add_argument("--sample-s", type=float, default=0.5, help="seconds between samples of the driver process")
    ap.add_argument("--dir-every", type=int, default=4, help="measure the run directory's size every N samples")
    ap.add_argument("--work-dir", type=Path, default=None, help="where the run directories go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    ap.add_argument("--timeout-s", type=float, default=6 * 3600, help="give a run up after this long")
    args = ap.parse_args(argv)
    if args.nodes < 1 or args.slots < 1:
        ap.error("--nodes and --slots must be >= 1")
    root = Path(tempfile.mkdtemp(prefix="engine-scale-", dir=args.work_dir))
    results = []
    try:
        for cluster in args.cluster:
            result = run_one(cluster, args.nodes, args.slots, root, args.sample_s, args.dir_every, args.timeout_s)
            print(table(result), flush=True)
            results.append(result)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    out = {"command": " ".join(["python -m benchmarks.engine_scale", *(argv if argv is not None else sys.argv[1:])]),
           "date": time.strftime("%Y-%m-%d %H:%M"), "cpu_count": os.cpu_count(),
           "load_avg_at_end": os.getloadavg(), "runs": results,
           "kept": str(root) if args.keep else None}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}" + (f"; run directories kept in {root}" if args.keep else ""))
    return out


if __name__ == "__main__":
    main()
