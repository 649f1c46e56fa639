"""A control group of its own for each sandboxed program: memory and process limits the kernel enforces.

Two layouts are handled. cgroup v2 (one unified tree, `/sys/fs/cgroup/cgroup.controllers` exists): the node's
group is made under this process's own group, which must have `memory` and `pids` in its
`cgroup.subtree_control` (or accept them there: the root group, or a subtree delegated by systemd); it gets
`memory.max`, `memory.swap.max=0`, `pids.max`, and is torn down with `cgroup.kill`. cgroup v1 (one tree per
controller under /sys/fs/cgroup/<controller>/): `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes` when
swap is accounted), `pids.max`, and a `freezer` group, when mounted, so every task can be killed without a race
against fork. Either way shared memory, tmpfs files and memfd count against the memory limit, and the node's
processes join the group before the program starts (`join_files`, written by the child itself).

Where neither works (no permission, controllers missing) `create` returns None and the sandbox falls back to
rlimits and its watchdog. `mode()` names what is in force, and it is logged once.
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
ROOT = Path("/sys/fs/cgroup")
PREFIX = "engine-node-"
_mode: str | None = None  # "v2", "v1" or "none", found on first use


@dataclass
class NodeCgroup:
    """One node's group: `dirs` maps a controller ("memory", "pids", "freezer"; "unified" on v2) to its folder."""
    version: int
    dirs: dict[str, Path]
    join_files: list[str] = field(default_factory=list)  # cgroup.procs files the child writes its pid to

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs.values():
            found |= set(_read_pids(d / "cgroup.procs"))
        return sorted(found)

    def oom_killed(self) -> bool:
        """True once the kernel's OOM killer has killed a process of the group."""
        if self.version == 2:
            return _counter(self.dirs["unified"] / "memory.events", "oom_kill") > 0
        return "memory" in self.dirs and _counter(self.dirs["memory"] / "memory.oom_control", "oom_kill") > 0

    def pids_refused(self) -> bool:
        """True once a fork or clone was refused because the group was at pids.max."""
        d = self.dirs.get("unified" if self.version == 2 else "pids")
        return d is not None and _counter(d / "pids.events", "max") > 0

    def kill(self) -> None:
        """SIGKILL every process in the group."""
        if self.version == 2 and (self.dirs["unified"] / "cgroup.kill").exists():
            _write(self.dirs["unified"] / "cgroup.kill", "1")
            return
        freezer = self.dirs.get("freezer")
        if freezer is not None:  # frozen tasks can neither fork nor exit, so the list read below stays true
            try:
                _write(freezer / "freezer.state", "FROZEN")
            except FileNotFoundError:
                return  # the group was removed meanwhile (its node finished): nothing is left to kill
            deadline = time.monotonic() + 1.0
            while _read(freezer / "freezer.state").strip() != "FROZEN" and time.monotonic() < deadline:
                time.sleep(0.01)
        for _ in range(20):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if freezer is not None:
                break
            time.sleep(0.01)
        if freezer is not None:
            try:
                _write(freezer / "freezer.state", "THAWED")
            except FileNotFoundError:
                pass  # removed while it was being killed

    def remove(self, wait_s: float = 5.0) -> None:
        """Kill what is left and delete the group's folders (a group is removable once its tasks are gone)."""
        deadline = time.monotonic() + wait_s
        for d in self.dirs.values():
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        log.warning("could not remove the node's cgroup %s: %s", d, e)
                        break
                    self.kill()
                    time.sleep(0.02)


def mode() -> str:
    """What this process can use: "v2", "v1" or "none" (logged the first time)."""
    global _mode
    if _mode is None:
        _mode = _probe()
        what = {"v2": "cgroup v2 (memory.max, pids.max, cgroup.kill)",
                "v1": "cgroup v1 (memory.limit_in_bytes, pids.max, freezer)",
                "none": "no cgroups (not permitted or not mounted): rlimits and the watchdog"}[_mode]
        log.info("node limits: %s", what)
    return _mode


def create(memory_bytes: int | None, max_procs: int | None, root: Path = ROOT) -> NodeCgroup | None:
    """A new group with these limits, or None where cgroups cannot be used."""
    if root == ROOT and mode() == "none":
        return None
    return _make(root, memory_bytes, max_procs)


def _make(root: Path, memory_bytes: int | None, max_procs: int | None) -> NodeCgroup | None:
    name = PREFIX + uuid.uuid4().hex[:12]
    if (root / "cgroup.controllers").exists():
        return _create_v2(root, name, memory_bytes, max_procs)
    return _create_v1(root, name, memory_bytes, max_procs)


def _probe() -> str:
    try:
        cg = _make(ROOT, 2**30, 64)
    except OSError as e:
        log.debug("cgroups unusable: %s", e)
        return "none"
    if cg is None:
        return "none"
    cg.remove()
    return f"v{cg.version}"


def _own_path(controller: str | None) -> str:
    """This process's group in the hierarchy of `controller` (None: the v2 unified one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (controller is None and names == "") or (controller is not None and controller in names.split(",")):
            return path.lstrip("/")
    raise OSError(errno.ENOENT, f"this process is in no {controller or 'unified'} cgroup")


def _create_v2(root: Path, name: str, memory_bytes: int | None, max_procs: int | None) -> NodeCgroup | None:
    base = root / _own_path(None) if root == ROOT else root
    enabled = set(_read(base / "cgroup.subtree_control").split())
    if not {"memory", "pids"} <= enabled:
        try:  # allowed in the root group, or when this group holds no process of its own
            _write(base / "cgroup.subtree_control", "+memory +pids")
        except OSError:
            return None
    _sweep(base)
    d = base / name
    d.mkdir()
    cg = NodeCgroup(2, {"unified": d}, [str(d / "cgroup.procs")])
    try:
        if memory_bytes is not None:
            _write(d / "memory.max", str(memory_bytes))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
        _write(d / "pids.max", "max" if max_procs is None else str(max_procs))
    except OSError:
        cg.remove()
        raise
    return cg


def _create_v1(root: Path, name: str, memory_bytes: int | None, max_procs: int | None) -> NodeCgroup | None:
    if not (root / "memory").is_dir() or not (root / "pids").is_dir():
        return None
    dirs: dict[str, Path] = {}
    cg = NodeCgroup(1, dirs)
    try:
        for controller in ("memory", "pids", "freezer"):
            if not (root / controller / "cgroup.procs").exists():
                continue
            parent = root / controller / (_own_path(controller) if root == ROOT else "")
            _sweep(parent)
            d = parent / name
            d.mkdir()
            dirs[controller] = d
            cg.join_files.append(str(d / "cgroup.procs"))
        if memory_bytes is not None:
            _write(dirs["memory"] / "memory.limit_in_bytes", str(memory_bytes))
            if (dirs["memory"] / "memory.memsw.limit_in_bytes").exists():  # swap counted too: none allowed
                _write(dirs["memory"] / "memory.memsw.limit_in_bytes", str(memory_bytes))
        _write(dirs["pids"] / "pids.max", "max" if max_procs is None else str(max_procs))
    except OSError:
        cg.remove()
        raise
    return cg


def _sweep(parent: Path, min_age_s: float = 120.0) -> None:
    """Remove the empty node groups a killed engine process left behind (old enough not to be starting up)."""
    now = time.time()
    for d in parent.glob(PREFIX + "*"):
        try:
            if now - d.stat().st_mtime > min_age_s and not _read(d / "cgroup.procs").strip():
                d.rmdir()
        except OSError:
            continue


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_pids(path: Path) -> list[int]:
    return [int(x) for x in _read(path).split()]


def _counter(path: Path, key: str) -> int:
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return 0
