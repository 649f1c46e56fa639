"""Run one program in a directory of its own, under bubblewrap when it is installed.

Inside bubblewrap the program sees a read-only system, an empty read-only /tmp, no network and its own PID
namespace; only its working directory is writable (TMPDIR points inside it). Without bwrap the same limits
apply, but not the namespaces. Either way: rlimits on address space, file size and core dumps; a watchdog
that stops the program when its process tree grows past `max_procs` or its resident memory past `memory_gb`;
and a wall-clock timeout that kills the whole process tree (process group, and every descendant that left it).
"""
from __future__ import annotations

import ctypes
import logging
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)
_warned_no_bwrap = False
_live: set[subprocess.Popen] = set()  # running sandboxed processes, killed by kill_all_running()
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class SandboxConfig:
    use_bwrap: str = "auto"  # "auto": when installed; "always": refuse to run without; "never"
    timeout_s: float = 3600.0
    memory_gb: float | None = 16.0  # address-space cap and resident-memory watchdog; null for none
    max_procs: int = 256
    max_file_gb: float = 4.0
    threads: int = 1  # OMP/MKL threads the program is told to use
    tail_chars: int = 5000
    poll_s: float = 0.1

    def __post_init__(self) -> None:
        if self.use_bwrap not in ("auto", "always", "never"):
            raise ValueError(f"sandbox.use_bwrap must be auto, always or never, got {self.use_bwrap!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"sandbox.timeout_s must be positive, got {self.timeout_s}")


@dataclass
class ProcessOutcome:
    exit_code: int | None
    stdout: str
    stderr: str
    elapsed_s: float
    killed_reason: str | None  # "timeout", "memory" or "processes"
    exc_type: str | None
    exc_message: str | None


def bwrap_path(cfg: SandboxConfig) -> str | None:
    """bubblewrap's path, None to run without it; warns once, or refuses when cfg says always."""
    global _warned_no_bwrap
    if cfg.use_bwrap == "never":
        return None
    path = shutil.which("bwrap")
    if path is None:
        if cfg.use_bwrap == "always":
            raise RuntimeError("sandbox.use_bwrap=always but bubblewrap is not installed "
                               "(apt-get install bubblewrap)")
        if not _warned_no_bwrap:
            log.warning("bubblewrap not found: node programs run without network/PID isolation "
                        "(apt-get install bubblewrap to sandbox them)")
            _warned_no_bwrap = True
    return path


def run_sandboxed(argv: list[str], workdir: Path, cfg: SandboxConfig, timeout_s: float | None = None,
                  extra_env: dict[str, str] | None = None, log_prefix: str = "") -> ProcessOutcome:
    """Run `argv` in `workdir` (which must exist); stdout/stderr go to `<log_prefix>stdout.txt` /
    `<log_prefix>stderr.txt` there, and their tails are returned."""
    workdir = workdir.resolve()
    timeout = timeout_s if timeout_s is not None else cfg.timeout_s
    env = _child_env(workdir, cfg, extra_env or {})
    (workdir / ".tmp").mkdir(exist_ok=True)
    bwrap = bwrap_path(cfg)
    cmd = _bwrap_prefix(bwrap, workdir) + argv if bwrap else argv
    out_path, err_path = workdir / f"{log_prefix}stdout.txt", workdir / f"{log_prefix}stderr.txt"
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True, preexec_fn=_limits(cfg, _nproc_cap(cfg)))
        _live.add(proc)
        try:
            killed = _watch(proc, cfg, timeout)
        finally:
            _live.discard(proc)
    elapsed = time.monotonic() - start
    stdout, stderr = _tail(out_path, cfg.tail_chars), _tail(err_path, cfg.tail_chars)
    exc_type, exc_message = parse_exception(stderr)
    if killed == "timeout":
        exc_type, exc_message = "TimeoutError", f"killed after the {timeout:.0f}s time limit"
    elif killed == "memory":
        exc_type, exc_message = "MemoryError", f"killed: resident memory above {cfg.memory_gb} GB"
    elif killed == "processes":
        exc_type, exc_message = "ProcessLimit", f"killed: more than {cfg.max_procs} processes"
    return ProcessOutcome(proc.returncode, stdout, stderr, elapsed, killed, exc_type, exc_message)


def _watch(proc: subprocess.Popen, cfg: SandboxConfig, timeout: float) -> str | None:
    """Wait for `proc`, enforcing the limits; returns why it was killed, or None.

    The program is left unreaped (a zombie) until its process tree has been killed, so its PID, and the
    process group named after it, cannot be reused by an unrelated process we would then hit.
    """
    deadline = time.monotonic() + timeout
    try:
        root = psutil.Process(proc.pid)
    except psutil.NoSuchProcess:
        root = None
    exited = _exit_waiter(proc.pid)
    reason = None
    while not exited(cfg.poll_s):
        if time.monotonic() > deadline:
            reason = "timeout"
        elif root is not None:
            tree = _tree(root)
            if len(tree) > cfg.max_procs:
                reason = "processes"
            elif cfg.memory_gb is not None and _rss(tree) > cfg.memory_gb * 2**30:
                reason = "memory"
        if reason:
            break
    # killed for a reason, or finished: either way nothing it started may outlive it
    kill_tree(proc, root)
    proc.wait()
    return reason


def _exit_waiter(pid: int):
    """A function waiting up to `timeout` seconds for `pid` to exit, without reaping it."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None

    def exited(timeout: float) -> bool:
        if fd is not None:
            ready, _, _ = select.select([fd], [], [], timeout)
            if ready:
                os.close(fd)
            return bool(ready)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:
                return True
            time.sleep(0.01)
        return False

    return exited


def kill_all_running() -> None:
    """Kill every sandboxed program this process started that is still running (on Ctrl-C or shutdown)."""
    for proc in list(_live):
        try:
            kill_tree(proc, psutil.Process(proc.pid))
        except psutil.NoSuchProcess:
            pass


def kill_tree(proc: subprocess.Popen, root: psutil.Process | None) -> None:
    """SIGKILL the process group and every descendant, including those that called setsid()."""
    victims = _tree(root) if root is not None else []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for p in victims:
        try:
            p.kill()
        except psutil.Error:
            pass


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _nproc_cap(cfg: SandboxConfig) -> int:
    """RLIMIT_NPROC counts every task of the user, so the cap is what the user runs now plus max_procs."""
    uid, tasks = os.getuid(), 0
    for p in psutil.process_iter(["uids", "num_threads"]):
        if p.info["uids"] is not None and p.info["uids"].real == uid:
            tasks += p.info["num_threads"] or 1
    return tasks + cfg.max_procs


def _limits(cfg: SandboxConfig, nproc: int):
    def apply() -> None:
        # die with the thread that started us, even if the driver is killed with SIGKILL
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if cfg.memory_gb is not None:
            cap = int(cfg.memory_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        size = int(cfg.max_file_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # enforced by the kernel for unprivileged users only; the watchdog covers root
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    return apply


def _child_env(workdir: Path, cfg: SandboxConfig, extra: dict[str, str]) -> dict[str, str]:
    """A minimal environment: no API keys or credentials reach generated code."""
    threads = str(cfg.threads)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir), "MPLCONFIGDIR": str(workdir / ".mpl"), "TMPDIR": str(workdir / ".tmp"),
        "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
    }
    for key in ("CUDA_VISIBLE_DEVICES", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra)
    return env


def _bwrap_prefix(bwrap: str, workdir: Path) -> list[str]:
    """Read-only system; /tmp and the scratch root are empty and read-only (other nodes' folders are hidden);
    only `workdir` is writable."""
    prefixes = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix})
    hidden = ["/tmp"]
    parent = str(workdir.parent)
    if parent not in ("/", "/tmp") and not parent.startswith("/tmp/") \
            and not any(p == parent or p.startswith(parent + "/") for p in prefixes):
        hidden.append(parent)
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for d in hidden:
        args += ["--tmpfs", d]
    # the interpreter may live under a hidden folder (a virtual environment in /tmp)
    for prefix in prefixes:
        if any(prefix == d or prefix.startswith(d + "/") for d in hidden):
            args += ["--ro-bind", prefix, prefix]
    for dev in sorted(Path("/dev").glob("nvidia*")) + [Path("/dev/dri")]:
        if dev.exists():
            args += ["--dev-bind", str(dev), str(dev)]
    args += ["--bind", str(workdir), str(workdir)]
    for d in hidden:
        args += ["--remount-ro", d]
    args += ["--chdir", str(workdir), "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
             "--die-with-parent", "--new-session", "--"]
    return args


def _tail(path: Path, chars: int) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - chars * 4))
        text = f.read().decode("utf-8", errors="replace")
    return text[-chars:]


_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Fault)?)(?::\s?(.*))?$")


def parse_exception(stderr: str) -> tuple[str | None, str | None]:
    """The exception type and message of the last Python traceback in `stderr`."""
    idx = stderr.rfind("Traceback (most recent call last):")
    if idx < 0:
        return None, None
    for line in reversed(stderr[idx:].strip().splitlines()):
        if line.startswith((" ", "\t")) or not line.strip():
            continue
        m = _EXC_LINE.match(line.strip())
        if m:
            return m.group(1).rsplit(".", 1)[-1], (m.group(2) or "").strip()
        break
    return None, None
