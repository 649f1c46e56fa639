"""This engine against AI-Scientist-v2's own tree search: the same model, the same node programs, the same workers.

    python -m benchmarks.v2_compare --v2 /path/to/AI-Scientist-v2 [--v2-python /path/to/venv/bin/python] \
        --out v2_compare.json [--latency 4 0 --nodes 12 --program-s 8 --workers 2 --seeds 3]

For each model latency, both systems run their experiment phase against one loopback model (engine/llm/loopback.py
speaking the OpenAI wire format; benchmarks/loopback_model.py answers each request after --latency seconds):
  ours  `python -m engine.launch` (cluster=local, --workers slots, stage 1 of --nodes nodes run to its budget,
        --seeds re-runs of its best node (stages.num_seeds=seeds+1), the model for every role with vision on), the
        template benchmarks/templates/v2_node;
  v2    v2's `perform_experiments_bfts` from the checkout at --v2, run by benchmarks/v2_peer.py under v2's own
        interpreter (a venv with v2's requirements), with agent.num_workers --workers, stage1_max_iters --nodes and
        multi_seed_eval.num_seeds --seeds; v2_peer.py says what it changes and the one thing it patches.
Every program (the model hands out benchmarks/templates/v2_node/experiment.py with its sleep set to --program-s)
prints when it started and ended; the systems keep that output in their records (our journal, v2's journal.json).
Reported per run: the node phase (first program's start to last program's end), the experiment phase (ours:
phases/experiments.json's wall_time_s; v2: perform_experiments_bfts from call to return), end to end (launch to
exit), launch to first program, slot use (the programs' run time over workers x the node phase), programs run,
drafts written against num_drafts asked, model calls by kind; then the measured ratios v2 / ours.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.loopback_model import LoopbackModel
from engine.llm.loopback import FakeLLMServer
from engine.rundir import RunDir, read_json

TEMPLATE = Path(__file__).resolve().parent / "templates" / "v2_node"
PEER = Path(__file__).resolve().parent / "v2_peer.py"
KEY = "loopback-key"
NUM_DRAFTS = 3  # both systems' default (conf/search/bfts.yaml; v2's bfts_config.yaml agent.search.num_drafts)


def spans_in(text: str) -> list[tuple[float, float]]:
    """(start, end) of each `BENCH_SPAN {...}` line a node program printed."""
    out = []
    for line in text.splitlines():
        if line.startswith("BENCH_SPAN "):
            span = json.loads(line.split(" ", 1)[1])
            out.append((float(span["start"]), float(span["end"])))
    return out


def figures(spans: list[tuple[float, float]], launched: float, exited: float, workers: int) -> dict:
    """The comparison's measures from the programs' own spans and the process's launch and exit."""
    if not spans:
        return {"programs_with_span": 0, "end_to_end_s": round(exited - launched, 1)}
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    phase = last - first
    busy = sum(e - s for s, e in spans)
    return {"programs_with_span": len(spans), "node_phase_s": round(phase, 1),
            "end_to_end_s": round(exited - launched, 1), "launch_to_first_program_s": round(first - launched, 1),
            "slot_use": round(busy / (workers * phase), 3) if phase > 0 else None,
            "program_s_total": round(busy, 1)}


def run_process(cmd: list[str], cwd: Path, env: dict, log: Path, timeout_s: float) -> tuple[float, float]:
    launched = time.time()
    with log.open("w") as out:
        try:
            code = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = None
    exited = time.time()
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        sys.exit(f"error: {' '.join(cmd[:4])} ... {'timed out' if code is None else f'exited with {code}'}; "
                 f"its log ({log}) ends:\n{tail}")
    return launched, exited


def run_ours(server: FakeLLMServer, args: argparse.Namespace, root: Path) -> dict:
    run_dir = root / "ours"
    cmd = [sys.executable, "-m", "engine.launch", "+topic=template", f"topic.path={TEMPLATE}", "tracking=none",
           "pipeline.phases=[experiments]", "stages.run=[initial]", f"stages.initial.max_nodes={args.nodes}",
           "stages.initial.run_to_budget=true", f"stages.num_seeds={args.seeds + 1}", "cluster=local",
           f"cluster.slots={args.workers}", f"model.base_url={server.base_url}", "model.name=loopback-model",
           "model.vision=true", f"hydra.run.dir={run_dir}"]
    env = os.environ | {"OPENAI_API_KEY": KEY, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                        "PYTHONUNBUFFERED": "1"}
    launched, exited = run_process(cmd, Path.cwd(), env, root / "ours.log", args.timeout_s)
    nodes = [n for n in RunDir(run_dir).load_nodes() if n.operator != "copy"]
    dropped = [read_json(p) for p in sorted((run_dir / "dropped").glob("*.json"))] \
        if (run_dir / "dropped").is_dir() else []
    spans = [s for n in nodes for s in spans_in(n.exec.stdout_tail)]
    summary = read_json(run_dir / "summary.json") or {}
    return figures(spans, launched, exited, args.workers) | {
        "search_programs": sum(1 for n in nodes if n.operator != "seed"),
        "seed_programs": sum(1 for n in nodes if n.operator == "seed"),
        "drafts_written": sum(1 for n in nodes if n.operator == "draft") +
        sum(1 for d in dropped if d.get("operator") == "draft"),
        "dropped_proposals": len(dropped),
        "phase_wall_s": (read_json(run_dir / "phases" / "experiments.json") or {}).get("wall_time_s"),
        "summary_slot_utilization": summary.get("slot_utilization")}


def v2_journal(work: Path) -> tuple[list[dict], dict[str, str]]:
    """v2's stage-1 journal as its step callback saved it last (nodes, child id -> parent id)."""
    files = sorted(work.glob("logs/*/stage_1_*/journal.json"))
    if not files:
        sys.exit(f"error: v2 left no stage-1 journal.json under {work}/logs")
    data = json.loads(files[-1].read_text())
    return data["nodes"], data.get("node2parent", {})


def run_v2(server: FakeLLMServer, args: argparse.Namespace, root: Path, python: str) -> dict:
    work = root / "v2"
    work.mkdir()
    idea = root / "v2_idea.json"
    idea.write_text(json.dumps(json.loads((TEMPLATE / "seed_ideas.json").read_text())[0]))
    cmd = [python, str(PEER), "--v2", str(args.v2), "--work", str(work), "--idea", str(idea),
           "--workers", str(args.workers), "--iters", str(args.nodes), "--seeds", str(args.seeds)]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")} | {
        "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    launched, exited = run_process(cmd, work, env, root / "v2.log", args.timeout_s)
    nodes, parents = v2_journal(work)
    spans = [s for n in nodes for s in spans_in("".join(n.get("_term_out") or []))]
    timing = read_json(work / "timing.json") or {}
    search = [n for n in nodes if not n.get("is_seed_node")]
    return figures(spans, launched, exited, args.workers) | {
        "search_programs": len(search), "seed_programs": sum(1 for n in nodes if n.get("is_seed_node")
                                                             and not n.get("is_seed_agg_node")),
        "drafts_written": sum(1 for n in search if n["id"] not in parents),
        "phase_wall_s": round(timing["phase_end"] - timing["phase_start"], 1) if timing else None}


def v2_python(args: argparse.Namespace) -> str:
    if args.v2_python:
        return args.v2_python
    for candidate in (args.v2 / ".venv", args.v2 / "venv", args.v2.parent / "venv"):
        if (candidate / "bin" / "python").is_file():
            return str(candidate / "bin" / "python")
    sys.exit(f"error: no Python environment for v2 found at {args.v2}/.venv, {args.v2}/venv or "
             f"{args.v2.parent}/venv; make one with v2's requirements and pass --v2-python PATH")


def v2_commit(path: Path) -> str | None:
    res = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else None


ROWS = (("node phase (s)", "node_phase_s"), ("experiment phase (s)", "phase_wall_s"),
        ("end to end (s)", "end_to_end_s"),
        ("launch to first program (s)", "launch_to_first_program_s"), ("slot use", "slot_use"),
        ("search programs", "search_programs"), ("seed programs", "seed_programs"),
        ("drafts written (asked 3)", "drafts_written"), ("model calls", "model_calls"))


def table(runs: list[dict]) -> str:
    lines = []
    for run in runs:
        ours, v2 = run["ours"], run["v2"]
        lines.append(f"-- model latency {run['latency_s']:g} s")
        lines.append(f"{'':30}{'ours':>10}{'v2':>10}{'v2 / ours':>11}")
        for label, key in ROWS:
            a, b = ours.get(key), v2.get(key)
            ratio = f"{b / a:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else ""
            lines.append(f"{label:30}{'-' if a is None else a:>10}{'-' if b is None else b:>10}{ratio:>11}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--v2", type=Path, required=True, help="an AI-Scientist-v2 checkout")
    ap.add_argument("--v2-python", default=None, help="the Python of a venv with v2's requirements")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--latency", type=float, nargs="+", default=[4.0, 0.0], help="seconds per model answer")
    ap.add_argument("--nodes", type=int, default=12, help="stage 1's budget in both systems")
    ap.add_argument("--program-s", type=float, default=8.0, help="how long each node program runs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3,
                    help="re-runs of stage 1's best node with other seeds (v2 needs 3; ours: stages.num_seeds is one "
                         "more, the node's own run being the first)")
    ap.add_argument("--timeout-s", type=float, default=3600)
    ap.add_argument("--keep", type=Path, default=None, help="keep both systems' run folders under this folder")
    args = ap.parse_args(argv)
    args.v2 = args.v2.expanduser().resolve()
    if not (args.v2 / "ai_scientist" / "treesearch" / "parallel_agent.py").is_file():
        sys.exit(f"error: --v2 {args.v2} is not an AI-Scientist-v2 checkout (no ai_scientist/treesearch/)")
    python = v2_python(args)
    runs = []
    for latency in args.latency:
        model = LoopbackModel(latency, args.program_s)
        root = Path(tempfile.mkdtemp(prefix=f"v2-compare-{latency:g}s-", dir=args.keep))
        with FakeLLMServer(responder=model, api_key=KEY) as server:
            ours = run_ours(server, args, root) | {"model_calls_by_kind": dict(model.calls)}
            model.reset()
            v2 = run_v2(server, args, root, python) | {"model_calls_by_kind": dict(model.calls)}
        for side in (ours, v2):
            side["model_calls"] = sum(side["model_calls_by_kind"].values())
        runs.append({"latency_s": latency, "ours": ours, "v2": v2, "folder": str(root) if args.keep else None})
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
        print(table(runs[-1:]), flush=True)
    result = {"command": "python -m benchmarks.v2_compare " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "v2_commit": v2_commit(args.v2), "cpu_count": os.cpu_count(),
              "nodes": args.nodes, "program_s": args.program_s, "workers": args.workers, "seeds": args.seeds,
              "num_drafts": NUM_DRAFTS, "runs": runs}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
