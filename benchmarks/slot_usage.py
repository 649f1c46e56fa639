"""How busy a run kept its slots, read from its journal (works on runs made before summary.json had the figure).

    python -m benchmarks.slot_usage RUN_DIR [RUN_DIR ...] [--slots N]

For each run: the programs' own run intervals (start, start + run time) from journal/*.parquet, over
slots x the search window (the first program's start to the last one's end). This counts program time only
(sandbox start-up and result transfer are idle here), so it is a lower bound of summary.json's
`slot_utilization`, which counts each slot from a node's submission to its result; both are printed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.rundir import RunDir, read_json
from search.measures import slot_utilization, spans


def program_utilization(run_dir: Path, slots: int) -> dict:
    nodes = [n for n in RunDir(run_dir).load_nodes() if n.operator != "copy" and n.exec.started_at]
    if not nodes:
        return {"run": str(run_dir), "nodes": 0}
    busy = spans(nodes, "program")
    first, last = min(s for s, _ in busy), max(e for _, e in busy)
    summary = read_json(run_dir / "summary.json") or {}
    return {"run": str(run_dir), "slots": slots, "programs": len(nodes),
            "seed_runs": sum(1 for n in nodes if n.operator == "seed"),
            "window_s": round(last - first, 1), "busy_program_s": round(sum(e - s for s, e in busy), 1),
            "program_utilization": slot_utilization(nodes, slots, basis="program"),
            "summary_slot_utilization": summary.get("slot_utilization"),
            "driver_overhead_ms_median": summary.get("driver_overhead_ms_median")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--slots", type=int, default=None, help="default: cluster.slots of the run's config.yaml")
    args = ap.parse_args()
    import yaml

    for run in args.runs:
        slots = args.slots
        if slots is None:
            cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
            slots = int(((cfg or {}).get("cluster") or {}).get("slots") or 1)
        print(json.dumps(program_utilization(run, slots)))


if __name__ == "__main__":
    main()
