"""Execute one node: fresh scratch directory, sandboxed experiment.py and plot.py, artifacts back as bytes.

Nothing here writes the run directory: the result travels back to the driver as plain data, so a runner on
another machine (no shared filesystem) returns the same thing.

The program owned its directory, so nothing in it is trusted: files are opened relative to the directory with
O_NOFOLLOW (a symbolic link is never followed, only regular files are read, each within a size cap), the
template's plot.py is written again from the template's bytes before the plot run, and a result that is a link,
too big, not UTF-8, not JSON, too deeply nested or not an object makes the node buggy with the reason. Whatever
goes wrong while collecting one node makes that node buggy; no exception leaves `execute_node`.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.sandbox.config import SandboxConfig
from engine.sandbox.run import run_sandboxed
from search.node import ExecResult

OUT_DIR = "run_0"  # v1 plot.py scripts label run_0, so each node's own run is run_0 of its folder
INFO = "final_info.json"
MAX_INFO_BYTES = 2**20
MAX_INFO_DEPTH = 32
MAX_ARTIFACT_FILES = 2000
LOGS = ("experiment.py", "stdout.txt", "stderr.txt", "plot_stdout.txt", "plot_stderr.txt", "held_out_stdout.txt",
        "held_out_stderr.txt")


@dataclass(frozen=True)
class NodeJob:
    node_id: str
    code: str
    support_files: dict[str, bytes]
    sandbox: SandboxConfig
    scratch_root: str | None  # where its scratch directory goes (None: the system's temp dir)
    python: str | None  # None: the interpreter of the process that executes the job
    held_out_code: str | None  # the template's held_out.py, run after the program: final evaluation runs only


@dataclass
class NodeOutcome:
    node_id: str
    result: ExecResult
    artifacts: dict[str, bytes] = field(default_factory=dict)  # relative path -> content
    plot_error: str | None = None
    runner: dict | None = None  # where it ran (host, pid, GPU ids), when a Ray runner ran it


class UnsafeResult(Exception):
    """A result file the engine refuses to read (a link, not a regular file, too big)."""


def execute_node(job: NodeJob, extra_files: dict[str, bytes] | None = None,
                 extra_env: dict[str, str] | None = None) -> NodeOutcome:
    """Run the job in a new scratch directory; `extra_files`/`extra_env` come from the runner (GPU share).
    Never raises for something the node did: a node that breaks its own collection comes back buggy."""
    workdir = Path(tempfile.mkdtemp(prefix=f"node-{job.node_id}-", dir=job.scratch_root))
    try:
        return _execute_in(job, workdir, extra_files or {}, extra_env or {})
    except Exception as e:  # noqa: BLE001 - one broken node must not stop the search; the reason is kept
        result = ExecResult(started_at=time.time(), exc_type="CollectionError",
                            exc_message=f"the engine could not run or collect this node: {type(e).__name__}: {e}")
        return NodeOutcome(job.node_id, result)
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
    refused = [rel for rel in run.removed if rel in (OUT_DIR, f"{OUT_DIR}/{INFO}")]
    if result.ok and refused:  # the sandbox removed them; the node still tried
        result.exc_type, result.exc_message = "UnsafeResult", f"{refused[0]} was a symbolic link: refused"
    elif result.ok:
        try:
            result.final_info = read_final_info(workdir)
        except (UnsafeResult, ValueError) as e:  # ValueError: JSON, UTF-8, shape
            result.exc_type = "UnsafeResult" if isinstance(e, UnsafeResult) else "InvalidFinalInfo"
            result.exc_message = f"{OUT_DIR}/{INFO}: {e}"

    plot_error = held_out_error = None
    if result.final_info is not None and job.held_out_code is not None:
        held_out_error = _evaluate_held_out(job, workdir, result, python, env)
    if result.final_info is not None and "plot.py" in job.support_files:
        restore(workdir, "plot.py", job.support_files["plot.py"])  # the node may have changed it
        plot = run_sandboxed([python, "plot.py"], workdir, job.sandbox, timeout_s=job.sandbox.plot_timeout_s,
                             extra_env=env, log_prefix="plot_")
        if plot.exit_code != 0:
            plot_error = f"plot.py failed: {plot.exc_type or 'exit ' + str(plot.exit_code)}: {plot.exc_message}"
    artifacts = collect(workdir, job.sandbox.max_artifact_mb)
    result.plots = sorted(rel for rel in artifacts if rel.lower().endswith(".png"))
    errors = " ".join(e for e in (held_out_error, plot_error) if e) or None
    return NodeOutcome(job.node_id, result, artifacts, errors)


def _evaluate_held_out(job: NodeJob, workdir: Path, result: ExecResult, python: str, env: dict[str, str]) -> str | None:
    """The template's sealed evaluator (held_out.py, never shown to a model nor given to the search's runs) reads
    what the program left and writes run_0/held_out.json {metric: number}; merged into final_info as the group
    `held_out`, from which the driver takes the values out before anything else reads the result."""
    assert job.held_out_code is not None and result.final_info is not None
    restore(workdir, "held_out.py", job.held_out_code.encode())
    run = run_sandboxed([python, "held_out.py"], workdir, job.sandbox, timeout_s=job.sandbox.plot_timeout_s,
                        extra_env=env, log_prefix="held_out_")
    if run.exit_code != 0:
        return f"held_out.py failed: {run.exc_type or 'exit ' + str(run.exit_code)}: {run.exc_message}"
    try:
        values = json.loads(read_file(workdir, f"{OUT_DIR}/held_out.json", MAX_INFO_BYTES).decode("utf-8"))
    except (FileNotFoundError, UnsafeResult, ValueError) as e:
        return f"held_out.py wrote no readable {OUT_DIR}/held_out.json: {type(e).__name__}: {e}"
    numbers = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)} \
        if isinstance(values, dict) else {}
    result.final_info = dict(result.final_info) | {"held_out": {"means": numbers}}
    return None


def read_final_info(workdir: Path) -> dict | None:
    """run_0/final_info.json as a dict; None when the program wrote none. UnsafeResult for a link or a file
    that is not regular or too big; ValueError for anything that is not a small JSON object."""
    try:
        data = read_file(workdir, f"{OUT_DIR}/{INFO}", MAX_INFO_BYTES)
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        info = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(info, dict):
        raise ValueError(f"must hold a JSON object, not {type(info).__name__}")
    if _depth(info) > MAX_INFO_DEPTH:
        raise ValueError(f"nested more than {MAX_INFO_DEPTH} levels deep")
    return info


def read_file(workdir: Path, rel: str, max_bytes: int) -> bytes:
    """The bytes of `rel` under `workdir`, no component a link; FileNotFoundError when it is not there."""
    fd = _open_nofollow(workdir, rel, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeResult("not a regular file")
        if st.st_size > max_bytes:
            raise UnsafeResult(f"{st.st_size} bytes, above the {max_bytes}-byte limit")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(min(max_bytes, st.st_size) + 1)  # what the file holds, not a max_bytes allocation
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnsafeResult(f"above the {max_bytes}-byte limit")
    return data


def _open_nofollow(workdir: Path, rel: str, flags: int) -> int:
    """Open `rel` walking one component at a time, each with O_NOFOLLOW (UnsafeResult on a link)."""
    parts = rel.split("/")
    dir_fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            mode = (flags | os.O_NONBLOCK) if last else (os.O_RDONLY | os.O_DIRECTORY)
            try:
                fd = os.open(part, mode | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError as e:
                if e.errno == errno.ELOOP or (e.errno == errno.ENOTDIR and os.path.islink(
                        os.path.join(workdir, *parts[:i + 1]))):
                    raise UnsafeResult(f"{'/'.join(parts[:i + 1])} is a symbolic link") from None
                raise
            os.close(dir_fd)
            dir_fd = fd
        return dir_fd
    except BaseException:
        os.close(dir_fd)
        raise


def restore(workdir: Path, rel: str, content: bytes) -> None:
    """Write `rel` afresh: whatever the program left at that name (a link, a folder) is removed first."""
    path = workdir / rel
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(content)


def collect(workdir: Path, max_mb: float | None) -> dict[str, bytes]:
    """The node's code, logs, its run folder and any PNG it drew, up to `max_mb` in all (None: no limit); only
    regular files, no link followed, at most MAX_ARTIFACT_FILES looked at."""
    budget = sys.maxsize if max_mb is None else int(max_mb * 2**20)
    picked: dict[str, bytes] = {}
    names = list(LOGS) + [rel for rel in _walk(workdir, OUT_DIR)]
    names += [rel for rel in _walk(workdir, "") if rel.lower().endswith(".png") and not rel.startswith(OUT_DIR + "/")]
    for rel in names[:MAX_ARTIFACT_FILES]:
        if rel in picked:
            continue
        try:
            data = read_file(workdir, rel, budget)
        except (OSError, UnsafeResult):
            continue
        budget -= len(data)
        picked[rel] = data
    return picked


def _walk(workdir: Path, top: str) -> list[str]:
    """Regular files under `top` (relative paths), sorted; links and hidden folders are not entered."""
    found: list[str] = []
    if top and (workdir / top).is_symlink():
        return found
    stack = [top]
    while stack and len(found) < MAX_ARTIFACT_FILES:
        rel = stack.pop()
        try:
            entries = sorted(os.scandir(workdir / rel), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if not entry.name.startswith("."):
                    stack.append(child)
            elif entry.is_file(follow_symlinks=False):
                found.append(child)
    return sorted(found)


def _depth(value: object) -> int:
    """How deeply lists and objects nest in `value` (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d <= MAX_INFO_DEPTH:
                stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def _status_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
