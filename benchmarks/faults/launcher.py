"""The real entry point, `python -m engine.launch`, run as a subprocess on the v1 toy template (benchmarks/data/, the
tests' fixture, shipped with the package so that the benchmark runs from an installed wheel)."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.faults.record import Sentinel, Trial

TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "v1_template"


def env(**extra: str) -> dict[str, str]:
    return os.environ | {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
                         "WANDB_MODE": "offline", **extra}


def template(folder: Path, sleep_s: float = 0.0) -> Path:
    """A writable copy of the toy template; each node sleeps `sleep_s` seconds."""
    dest = folder / "template"
    shutil.copytree(TEMPLATE, dest)
    if sleep_s:
        code = (dest / "experiment.py").read_text().replace("SLEEP_S = 0.0", f"SLEEP_S = {sleep_s}")
        (dest / "experiment.py").write_text(code)
    return dest


def one_stage(max_nodes: int) -> list[str]:
    """Overrides for the experiments phase only, stage 1 only, exactly `max_nodes` nodes."""
    return ["pipeline.phases=[experiments]", "stages.run=[initial]", f"stages.initial.max_nodes={max_nodes}",
            f"stages.initial.offline_max_nodes={max_nodes}", "stages.initial.run_to_budget=true",
            "stages.num_seeds=1", "topic.metric=val_loss", "topic.direction=minimize"]


def command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "engine.launch", "tracking=none", *overrides]


def launch(*overrides: str, timeout: float = 300, **extra_env: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    res = subprocess.run(command(*overrides), capture_output=True, text=True, timeout=timeout, env=env(**extra_env))
    return res, time.monotonic() - start


def expect_clear_error(res: subprocess.CompletedProcess, seconds: float, trial: Trial, needle: str = "") -> None:
    """A fault that should end the run at once: exit status 2, one error line, no traceback."""
    errors = [line for line in res.stderr.splitlines() if "[ERROR]" in line or line.startswith("error")]
    clear = res.returncode == 2 and "Traceback" not in res.stderr and errors and needle in errors[-1]
    if clear:
        trial.finished, trial.error_s = "expected error", seconds
        message = errors[-1].split(" - ", 1)[-1]
        message = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", re.sub(r"/\S*/faults-[^/]+/", "<tmp>/", message))
        trial.note(message[:100])
    else:
        trial.finished = "no"
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        trial.note(f"no clear error: exit {res.returncode}: {last[:90]}")


def journal(run_dir: Path) -> dict[str, dict]:
    if not (run_dir / "journal").is_dir() or not list((run_dir / "journal").glob("*.parquet")):
        return {}
    return {r["id"]: r for r in pq.read_table(run_dir / "journal").to_pylist()}


def summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def finished_run(res: subprocess.CompletedProcess, run_dir: Path, trial: Trial, nodes: int) -> dict[str, dict]:
    """Record whether the run finished with its `nodes`; returns its journal."""
    rows, s = journal(run_dir), summary(run_dir)
    if res.returncode == 0 and s.get("status") == "finished":
        trial.finished = "yes"
    else:
        trial.finished = "no"
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        trial.note(f"exit {res.returncode}: {last[:90]}")
    if len(rows) < nodes:
        trial.note(f"{len(rows)} of {nodes} nodes in the journal")
    return rows


def guarded(scenario):
    """A kind's trial function: `scenario(trial, folder)` in a temporary folder, with a sentinel process that
    must live through it untouched."""
    def run(trial: Trial) -> None:
        sentinel = Sentinel(f"SENTINEL-{secrets.token_hex(8)}")
        start = time.monotonic()
        try:
            with tempfile.TemporaryDirectory(prefix="faults-") as folder:
                scenario(trial, Path(folder))
        finally:
            trial.seconds = time.monotonic() - start
            touched = sentinel.touched()
            if touched:
                trial.procs_touched += 1
                trial.note(touched)
            sentinel.close()
    return run
