"""python -m benchmarks.faults --out FILE: run the fault kinds, write FILE.json and FILE.md, print the table."""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.faults import __doc__ as DOC
from benchmarks.faults.engine_kinds import KINDS as ENGINE_KINDS
from benchmarks.faults.llm_kinds import KINDS as LLM_KINDS
from benchmarks.faults.record import Kind, Trial, markdown, summarize
from benchmarks.faults.sandbox_kinds import KINDS as SANDBOX_KINDS

ALL_KINDS = SANDBOX_KINDS + ENGINE_KINDS + LLM_KINDS


def choose(kinds: str | None, fast: bool) -> list[Kind]:
    """The kinds named (by key or group), the fast subset, or all of them."""
    if fast:
        return [k for k in ALL_KINDS if k.fast]
    if not kinds:
        return ALL_KINDS
    names = [n.strip() for n in kinds.split(",") if n.strip()]
    unknown = [n for n in names if not any(n in (k.key, k.group) for k in ALL_KINDS)]
    if unknown:
        raise SystemExit(f"unknown kind {', '.join(unknown)}; kinds: {', '.join(k.key for k in ALL_KINDS)}; "
                         "groups: sandbox, engine, llm")
    return [k for k in ALL_KINDS if k.key in names or k.group in names]


def run(kinds: list[Kind], repeat: int) -> list[dict]:
    rows = []
    for kind in kinds:
        trials = []
        for _ in range(repeat):
            trial = Trial(kind.key)
            kind.run(trial)
            trials.append(trial)
        row = summarize(kind, trials)
        print(f"  {kind.key:14} {row['seconds_mean']:6.1f} s/run  escapes {row['escapes']}/{row['runs']}  "
              f"{row['note'][:80]}", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def machine() -> dict:
    bwrap = shutil.which("bwrap")
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip() if bwrap else None
    return {"uid": os.getuid(), "cpu_cores": os.cpu_count(), "kernel": platform.release(), "bwrap": version,
            "python": platform.python_version()}


def out_paths(out: str) -> tuple[Path, Path]:
    base = Path(out)
    if base.suffix in (".json", ".md"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".md")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="FILE: writes FILE.json and FILE.md")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each kind")
    ap.add_argument("--kinds", help="comma-separated kind keys or groups (sandbox, engine, llm); default: all")
    ap.add_argument("--fast", action="store_true", help="the subset the test suite runs")
    ap.add_argument("--list", action="store_true", help="list the kinds and exit")
    args = ap.parse_args(argv)
    if args.list:
        for k in ALL_KINDS:
            print(f"{k.key:14} {k.group:8} {'fast ' if k.fast else '     '}{k.name}")
        return 0
    if not args.out:
        ap.error("--out is required")
    logging.basicConfig(level=logging.WARNING)
    kinds = choose(args.kinds, args.fast)
    start = time.monotonic()
    rows = run(kinds, args.repeat)
    wall = time.monotonic() - start
    info = machine()
    totals = {key: sum(r[key] for r in rows) for key in ("escapes", "nodes_lost", "procs_touched")}
    json_path, md_path = out_paths(args.out)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"repeat": args.repeat, "wall_s": round(wall, 1), "machine": info,
                                     "totals": totals, "kinds": rows}, indent=2) + "\n")
    table = markdown(rows)
    caption = (f"{len(rows)} kinds x {args.repeat} runs in {wall / 60:.1f} min, uid {info['uid']}, "
               f"{info['cpu_cores']} cores, {info['bwrap'] or 'no bubblewrap'}: {totals['escapes']} escapes, "
               f"{totals['nodes_lost']} finished nodes lost, {totals['procs_touched']} unrelated processes touched")
    md_path.write_text(table + "\n" + caption + "\n")
    print(table)
    print(caption)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
