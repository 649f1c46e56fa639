"""The test suite's wall time as shipped (pyproject.toml: two pytest-xdist workers, a file at a time, files with slow
tests first) against one worker, back to back on the same machine, from a checkout with its .venv.

    python -m benchmarks.suite_time [--runs N] [--out FILE.json] [-- EXTRA PYTEST ARGS]

Each run is the whole suite (`python -m pytest -q -p no:cacheprovider`) in a fresh base temporary directory; the
shipped and the one-worker configuration alternate, so a machine that gets busier or quieter affects both. The JSON
printed (and written to --out) has every run's wall time, its pytest result line and the load average when it
started, and the ratio of the medians (one worker / shipped). About 11 minutes per pair on the project's 2-core
machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {"shipped": [], "one_worker": ["-n", "0"]}


def run_suite(extra: list[str], pytest_args: list[str]) -> dict:
    if not (REPO / "tests").is_dir():
        raise SystemExit(f"error: the test suite is not here ({REPO / 'tests'}): this benchmark times the suite of a "
                         "source checkout, not of an installed wheel")
    with tempfile.TemporaryDirectory(prefix="suite-") as tmp:
        load = os.getloadavg()[0]
        start = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp}/t",
                              *extra, *pytest_args], cwd=REPO, capture_output=True, text=True)
        wall = time.monotonic() - start
    lines = [ln for ln in res.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    return {"wall_s": round(wall, 1), "returncode": res.returncode, "result": lines[-1].strip("= ") if lines else None,
            "load_before": round(load, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.suite_time", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1, help="pairs of runs (shipped, one worker)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("pytest_args", nargs="*", help="after --: passed to both configurations")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    for i in range(args.runs):
        for name, extra in CONFIGS.items():
            print(f"run {i + 1}/{args.runs}: {name} ...", file=sys.stderr, flush=True)
            runs[name].append(run_suite(extra, args.pytest_args))
            print(f"  {json.dumps(runs[name][-1])}", file=sys.stderr, flush=True)
    median = {name: statistics.median(r["wall_s"] for r in rs) for name, rs in runs.items()}
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "host": platform.node()},
              "runs": runs, "median_wall_s": median,
              "speedup_vs_one_worker": round(median["one_worker"] / median["shipped"], 2),
              "all_passed": all(r["returncode"] == 0 for rs in runs.values() for r in rs)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
