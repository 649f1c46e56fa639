"""Execute one node: fresh scratch directory, sandboxed experiment.py and plot.py, artifacts back as bytes.

Nothing here writes the run directory: the result travels back to the driver as plain data, so a runner on
another machine (no shared filesystem) returns the same thing.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.sandbox import SandboxConfig, run_sandboxed
from search.node import ExecResult

OUT_DIR = "run_0"  # v1 plot.py scripts label run_0, so each node's own run is run_0 of its folder


@dataclass(frozen=True)
class NodeJob:
    node_id: str
    code: str
    support_files: dict[str, bytes]
    sandbox: SandboxConfig
    plot_timeout_s: float = 300.0
    max_artifact_mb: float = 50.0
    scratch_root: str | None = None
    python: str | None = None  # None: the interpreter of the process that executes the job


@dataclass
class NodeOutcome:
    node_id: str
    result: ExecResult
    artifacts: dict[str, bytes] = field(default_factory=dict)  # relative path -> content
    plot_error: str | None = None
    runner: dict | None = None  # where it ran (host, pid, GPU ids), when a Ray runner ran it


def execute_node(job: NodeJob, extra_files: dict[str, bytes] | None = None,
                 extra_env: dict[str, str] | None = None) -> NodeOutcome:
    """Run the job in a new scratch directory; `extra_files`/`extra_env` come from the runner (GPU share)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"node-{job.node_id}-", dir=job.scratch_root))
    try:
        return _execute_in(job, workdir, extra_files or {}, extra_env or {})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _execute_in(job: NodeJob, workdir: Path, extra_files: dict[str, bytes], env: dict[str, str]) -> NodeOutcome:
    python = job.python or sys.executable
    for rel, content in (job.support_files | extra_files).items():
        dest = workdir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
    (workdir / "experiment.py").write_text(job.code)
    started_at = time.time()
    run = run_sandboxed([python, "experiment.py", f"--out_dir={OUT_DIR}"], workdir, job.sandbox, extra_env=env)
    result = ExecResult(started_at=started_at, exit_code=run.exit_code, stdout_tail=run.stdout,
                        stderr_tail=run.stderr,
                        exc_type=run.exc_type, exc_message=run.exc_message, exec_time_s=run.elapsed_s,
                        timed_out=run.killed_reason == "timeout", killed_reason=run.killed_reason)
    if result.exit_code not in (0, None) and result.exc_type is None and result.killed_reason is None:
        result.exc_type = "ExitStatus"
        result.exc_message = _status_text(result.exit_code)
    info_file = workdir / OUT_DIR / "final_info.json"
    if result.ok and info_file.is_file():
        try:
            result.final_info = json.loads(info_file.read_text())
        except json.JSONDecodeError as e:
            result.exc_type, result.exc_message = "InvalidFinalInfo", f"final_info.json is not JSON: {e}"

    plot_error = None
    if result.final_info is not None and (workdir / "plot.py").is_file():
        plot = run_sandboxed([python, "plot.py"], workdir, job.sandbox, timeout_s=job.plot_timeout_s,
                             extra_env=env, log_prefix="plot_")
        if plot.exit_code != 0:
            plot_error = f"plot.py failed: {plot.exc_type or 'exit ' + str(plot.exit_code)}: {plot.exc_message}"
    artifacts = _collect(workdir, job.max_artifact_mb)
    result.plots = sorted(rel for rel in artifacts if rel.lower().endswith(".png"))
    return NodeOutcome(job.node_id, result, artifacts, plot_error)


def _collect(workdir: Path, max_mb: float) -> dict[str, bytes]:
    """The node's code, logs, its run folder and any PNG it drew, up to `max_mb` in all."""
    budget = int(max_mb * 2**20)
    picked: dict[str, bytes] = {}
    candidates = [workdir / n for n in ("experiment.py", "stdout.txt", "stderr.txt",
                                         "plot_stdout.txt", "plot_stderr.txt")]
    candidates += sorted((workdir / OUT_DIR).rglob("*")) if (workdir / OUT_DIR).is_dir() else []
    candidates += sorted(p for p in workdir.rglob("*.png") if OUT_DIR not in p.relative_to(workdir).parts)
    for path in candidates:
        if not path.is_file() or path.is_symlink():
            continue
        size = path.stat().st_size
        if size > budget:
            continue
        budget -= size
        picked[path.relative_to(workdir).as_posix()] = path.read_bytes()
    return picked


def _status_text(code: int) -> str:
    if code < 0:
        import signal
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
