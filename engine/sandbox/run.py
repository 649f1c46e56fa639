"""Run one program in a directory of its own, confined by bubblewrap (engine/sandbox/bwrap.py).

Inside bubblewrap the program sees a minimal read-only system, an empty read-only /tmp, no network, its own
PID namespace, a user namespace without capabilities, and a seccomp filter; only its working directory is
writable (TMPDIR points inside it). When the engine runs as root, the program runs as `uid`/`gid` (nobody), which
owns that directory and nothing else. Limits: a control group of its own where cgroups can be used
(engine/sandbox/cgroups.py: memory, counting shared memory and memfd, and processes, enforced by the kernel); otherwise
rlimits (address space, except on GPU nodes, where CUDA needs a huge virtual range) and a watchdog on the
process tree's size and resident memory. Always: file size and core dump rlimits, a watchdog on the size and
file count of the directory, and a wall-clock timeout that kills the whole process tree.
`use_bwrap=never` is the explicit opt-out: no isolation at all, only the limits.
"""
from __future__ import annotations

import ctypes
import logging
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from engine.errors import EngineError
from engine.sandbox import bwrap, cgroups, seccomp
from engine.sandbox.config import SandboxConfig
from engine.sandbox.watch import kill_tree, watch

log = logging.getLogger(__name__)
_warned: set[str] = set()
_live: dict[subprocess.Popen, cgroups.NodeCgroup | None] = {}  # running programs, killed by kill_all_running()
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass
class ProcessOutcome:
    exit_code: int | None
    stdout: str
    stderr: str
    elapsed_s: float
    killed_reason: str | None  # "timeout", "memory", "processes" or "disk"
    exc_type: str | None
    exc_message: str | None
    removed: list[str] = field(default_factory=list)  # links and special files it left, removed afterwards


def bwrap_path(cfg: SandboxConfig) -> str | None:
    """bubblewrap's path, None to run without it; warns once, or refuses (EngineError) when cfg says always
    (or when the seccomp filter cannot be built)."""
    if cfg.use_bwrap == "never":
        _warn_once("never", "sandbox.use_bwrap=never: node programs run WITHOUT isolation (they can read and "
                            "write whatever this user can); only the resource limits apply")
        return None
    path = shutil.which("bwrap")
    if path is None:
        if cfg.use_bwrap == "always":
            where = "apt-get install bubblewrap (dnf install bubblewrap)" if sys.platform.startswith("linux") \
                else "it exists on Linux only"
            raise EngineError(f"sandbox.use_bwrap=always but the bubblewrap package (bwrap) is not installed: "
                              f"{where}; or set sandbox.use_bwrap=never to run node programs without isolation")
        _warn_once("missing", "bubblewrap not found: node programs run without isolation "
                              "(apt-get install bubblewrap to sandbox them)")
    else:
        seccomp.program()  # EngineError now, not in every node, when libseccomp is missing
    return path


def run_sandboxed(argv: list[str], workdir: Path, cfg: SandboxConfig, timeout_s: float | None = None,
                  extra_env: dict[str, str] | None = None, log_prefix: str = "") -> ProcessOutcome:
    """Run `argv` in `workdir` (which must exist); stdout/stderr go to `<log_prefix>stdout.txt` /
    `<log_prefix>stderr.txt` there, and their tails are returned."""
    workdir = workdir.resolve()
    timeout = timeout_s if timeout_s is not None else cfg.limit_s
    env = _child_env(workdir, cfg, extra_env or {})
    (workdir / ".tmp").mkdir(exist_ok=True)
    bwrap_exe = bwrap_path(cfg)
    identity = (cfg.uid, cfg.gid) if bwrap_exe and cfg.uid is not None and os.geteuid() == 0 else None
    plan = bwrap.build(bwrap_exe, workdir, identity, env.get("CUDA_VISIBLE_DEVICES")) if bwrap_exe else None
    if plan is not None and "isolation" not in _warned:
        _warned.add("isolation")
        log.info("node programs run in bubblewrap (user namespace, no capabilities, seccomp, minimal read-only "
                 "system) as uid %d", identity[0] if identity else os.getuid())
    cg = None
    try:
        if plan is not None:
            env.update(plan.env)
        if identity is not None:
            _chown_tree(workdir, *identity)
        try:
            cg = cgroups.create(int(cfg.memory_gb * 2**30) if cfg.memory_gb else None, cfg.max_procs)
        except OSError as e:  # usable when probed, not now (a full hierarchy, a changed permission)
            _warn_once("cgroup", f"no cgroup for a node ({e}): rlimits and the watchdog apply instead")
        gpu = _gets_gpu(env)
        as_cap = cfg.memory_gb if cg is None and not gpu else None
        setup = _child_setup(cfg, identity, cg, plan.stage if plan else [], as_cap)
        cmd = plan.argv + argv if plan else argv
        out_path, err_path = workdir / f"{log_prefix}stdout.txt", workdir / f"{log_prefix}stderr.txt"
        start = time.monotonic()
        # the tails are read back from these descriptors: the program may replace the files by links
        with _fresh(out_path) as out, _fresh(err_path) as err:
            proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, preexec_fn=setup, pass_fds=plan.fds if plan else ())
            _live[proc] = cg
            try:
                killed = watch(proc, cfg, timeout, workdir, cg)
            finally:
                _live.pop(proc, None)
            elapsed = time.monotonic() - start
            stdout, stderr = _tail(out, cfg.tail_chars), _tail(err, cfg.tail_chars)
        unsafe = remove_special_files(workdir)
    finally:
        if cg is not None:
            cg.remove()
        if plan is not None:
            plan.close()
    exc_type, exc_message = parse_exception(stderr)
    if killed == "timeout":
        exc_type, exc_message = "TimeoutError", f"killed after the {timeout:.0f}s time limit"
    elif killed == "memory":
        exc_type, exc_message = "MemoryError", f"killed: memory above {cfg.memory_gb} GB"
    elif killed == "processes":
        exc_type, exc_message = "ProcessLimit", f"killed: more than {cfg.max_procs} processes"
    elif killed == "disk":
        exc_type, exc_message = "DiskLimit", (f"killed: its directory grew past {cfg.max_dir_gb} GB or "
                                              f"{cfg.max_files} files")
    return ProcessOutcome(proc.returncode, stdout, stderr, elapsed, killed, exc_type, exc_message, unsafe)


def kill_all_running() -> None:
    """Kill every sandboxed program this process started that is still running (on Ctrl-C or shutdown)."""
    for proc, cg in list(_live.items()):
        try:
            kill_tree(proc, psutil.Process(proc.pid), cg)
        except psutil.NoSuchProcess:
            pass


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give the program's user its directory (links themselves, never what they point to)."""
    os.lchown(root, uid, gid)
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(base, name), uid, gid)


def _gets_gpu(env: dict[str, str]) -> bool:
    """Whether the program may use a GPU: one is named, or a GPU share is given, or none is named and the
    machine has one (no runner assigned GPUs)."""
    try:
        share = float(env.get("ENGINE_GPU_FRACTION") or 0)
    except ValueError:
        share = 0.0
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return visible.strip() != "" or share > 0
    return share > 0 or any(p.name[6:].isdigit() for p in Path("/dev").glob("nvidia*"))


# Room left under RLIMIT_NPROC for the user's other tasks to grow while a node runs (a Ray worker or instance
# starting beside it adds a hundred threads or more in a second).
NPROC_ROOM = 256


def _nproc_cap(cfg: SandboxConfig, uid: int) -> int | None:
    """RLIMIT_NPROC counts every task of the user, so the cap is what the user runs now plus max_procs plus
    NPROC_ROOM: a fork bomb must pass max_procs, and be seen by the watchdog and named, before the kernel refuses
    its forks, even when the user's other processes grow meanwhile. (With a margin of 16, one full test run as a
    normal user, without cgroups, beside a second test worker, saw a bomb end at its time limit instead of being
    named; the likely cause is that room taken by the other worker. Not reproduced in 50 tries beside Ray starts.)
    The kernel's cap only backs the watchdog up, which kills the tree within cfg.poll_s. None: no limit."""
    if cfg.max_procs is None:
        return None
    tasks = 0
    for p in psutil.process_iter(["uids", "num_threads"]):
        if p.info["uids"] is not None and p.info["uids"].real == uid:
            tasks += p.info["num_threads"] or 1
    return tasks + cfg.max_procs + NPROC_ROOM


def _child_setup(cfg: SandboxConfig, identity: tuple[int, int] | None, cg: cgroups.NodeCgroup | None,
                 stage: list[tuple[str, str]], as_cap_gb: float | None):
    """What the child does between fork and exec: join its cgroup, bind what its user cannot reach, set the
    rlimits, become that user, and die with the thread that started it."""
    uid = identity[0] if identity else os.getuid()
    nproc = _nproc_cap(cfg, uid) if cg is None else None  # with a cgroup, pids.max is per node

    def apply() -> None:
        for path in cg.join_files if cg else []:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
        bwrap.stage_mounts(stage)
        if as_cap_gb is not None:
            cap = int(as_cap_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        if cfg.max_file_gb is not None:
            size = int(cfg.max_file_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:  # enforced by the kernel for unprivileged users only; the watchdog covers root
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if identity is not None:
            os.setgroups([])
            os.setgid(identity[1])
            os.setuid(identity[0])
        # after the switch of user, which clears it: die with the thread that started us, even on SIGKILL
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
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


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def _tail(f, chars: int) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - chars * 4))
    return f.read().decode("utf-8", errors="replace")[-chars:]


def _fresh(path: Path):
    """A new, empty log file at `path`, whatever was there (a link to a host file is removed, not followed)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    return os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), "w+b")


def remove_special_files(root: Path, keep: int = 50) -> list[str]:
    """Remove every symbolic link, FIFO, socket and device file under `root` (the program is gone; what it
    left is read by the engine, as root perhaps); returns up to `keep` of their relative paths."""
    removed: list[str] = []
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            try:
                mode = os.lstat(path).st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    os.unlink(path)
                    if len(removed) < keep:
                        removed.append(os.path.relpath(path, root))
            except FileNotFoundError:
                continue
    return removed


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
