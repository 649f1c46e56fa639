"""The watchdog of a sandboxed program: waits for it, stops it at a limit, and kills everything it started.

What the kernel enforces (a cgroup's memory and pids limits) is read back from the group's counters; where
there is no cgroup, the process tree is counted and its resident memory summed. The size and file count of the
program's directory are checked on every platform, at most about once a second (less often when a scan takes
long).
"""
from __future__ import annotations

import math
import os
import select
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from engine.sandbox import cgroups

if TYPE_CHECKING:
    from engine.sandbox.config import SandboxConfig


def watch(proc: subprocess.Popen, cfg: SandboxConfig, timeout: float, workdir: Path,
           cg: cgroups.NodeCgroup | None) -> str | None:
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
    reason, next_disk_check = None, time.monotonic() + 1.0
    while not exited(cfg.poll_s):
        now = time.monotonic()
        if now > deadline:
            reason = "timeout"
        elif cg is not None and cg.oom_killed():
            reason = "memory"
        elif cg is not None and cg.pids_refused():
            reason = "processes"
        elif root is not None:
            tree = _tree(root)
            if cfg.max_procs is not None and len(tree) > cfg.max_procs:
                reason = "processes"
            elif cg is None and cfg.memory_gb is not None and _rss(tree) > cfg.memory_gb * 2**30:
                reason = "memory"
        if reason is None and now >= next_disk_check:
            max_bytes = math.inf if cfg.max_dir_gb is None else cfg.max_dir_gb * 2**30
            if (cfg.max_dir_gb, cfg.max_files) != (None, None) and \
                    _dir_over(workdir, max_bytes, math.inf if cfg.max_files is None else cfg.max_files):
                reason = "disk"
            # a scan of a big directory is not repeated more often than ten times its own duration
            next_disk_check = time.monotonic() + max(1.0, 10 * (time.monotonic() - now))
        if reason:
            break
    # killed for a reason, or finished: either way nothing it started may outlive it
    kill_tree(proc, root, cg)
    proc.wait()
    if reason is None and proc.returncode != 0 and cg is not None:
        reason = "memory" if cg.oom_killed() else "processes" if cg.pids_refused() else None
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


def kill_tree(proc: subprocess.Popen, root: psutil.Process | None, cg: cgroups.NodeCgroup | None = None) -> None:
    """SIGKILL the control group, the process group and every descendant, including those that called setsid()."""
    if cg is not None:
        cg.kill()
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


def _dir_over(root: Path, max_bytes: float, max_files: float) -> bool:
    """Whether the directory holds more than `max_files` entries or `max_bytes` of disk (links not followed)."""
    stack, entries, size = [str(root)], 0, 0
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                entries += 1
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                size += st.st_blocks * 512
                if entries > max_files or size > max_bytes:
                    return True
    return False
