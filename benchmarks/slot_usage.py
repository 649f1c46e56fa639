"""How busy a run kept its slots, read from its journal (works on runs made before summary.json had the figure).

    python -m benchmarks.slot_usage RUN_DIR [RUN_DIR ...] [--slots N]

For each run: the programs' own run intervals (start, start + run time) from journal/*.parquet, over
slots x the search window (the first program's start to the last one's end). This counts program time only
(sandbox start-up and result transfer are idle here), so it is a lower bound of summary.json's
`slot_utilization`, which counts each slot from a node's submission to its result; both are printed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.errors import EngineError
from engine.inputs.files import input_folder, read_yaml
from engine.inputs.values import ArgumentParser, at_least
from engine.rundir import RunDir, read_json
from search.measures import slot_utilization, spans


def program_utilization(run_dir: Path, slots: int) -> dict:
    """EngineError when `run_dir` is not a run directory with finished nodes."""
    input_folder(run_dir)
    if not (run_dir / "journal").is_dir():
        raise EngineError(f"{run_dir}: no journal/ there; is it a run directory of this engine?")
    nodes = [n for n in RunDir(run_dir).load_nodes() if n.operator != "copy" and n.exec.started_at]
    if not nodes:
        raise EngineError(f"{run_dir}: no node ran to the end in its journal; nothing to measure")
    busy = spans(nodes, "program")
    first, last = min(s for s, _ in busy), max(e for _, e in busy)
    summary = read_json(run_dir / "summary.json") or {}
    return {"run": str(run_dir), "slots": slots, "programs": len(nodes),
            "seed_runs": sum(1 for n in nodes if n.operator == "seed"),
            "window_s": round(last - first, 1), "busy_program_s": round(sum(e - s for s, e in busy), 1),
            "program_utilization": slot_utilization(nodes, slots, basis="program"),
            "summary_slot_utilization": summary.get("slot_utilization"),
            "driver_overhead_ms_median": summary.get("driver_overhead_ms_median")}


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m benchmarks.slot_usage", description=__doc__)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--slots", type=at_least(1), default=None, help="default: cluster.slots of the run's config.yaml")
    args = ap.parse_args(argv)
    try:
        for run in args.runs:
            print(json.dumps(program_utilization(run, args.slots or run_slots(run))))
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def run_slots(run: Path) -> int:
    """cluster.slots of the run's config.yaml (1 without one)."""
    cfg = read_yaml(run / "config.yaml") if (run / "config.yaml").is_file() else {}
    slots = ((cfg if isinstance(cfg, dict) else {}).get("cluster") or {}).get("slots") or 1
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        raise EngineError(f"{run / 'config.yaml'}: cluster.slots={slots!r} is not a number of slots; give --slots N")
    return slots


if __name__ == "__main__":
    sys.exit(main())
