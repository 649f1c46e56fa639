"""The bubblewrap command line for one sandboxed program, and what its child process does before exec.

The program's root is an empty read-only tmpfs holding only what a Python program needs, each read-only: /usr
(and /bin, /lib*, /sbin: symlinks into it on a merged-/usr system), a few files of /etc (the loader's cache,
certificates, fonts, time zone, name-service switch; passwd and group written for the occasion), the
interpreter's prefixes (the virtual environment and the Python it was made from, and any other site-packages
on its path), new /dev and /proc, an empty
/tmp, and the node's own directory, the only writable place. Home directories, /root, /run, /var, /sys, the
project, the run directory and every other node stay invisible. GPU nodes get their own /dev/nvidiaN only.

bwrap always runs unprivileged: as the engine's user, or, when the engine is root, as `uid`/`gid` (nobody by
default), which the child switches to before exec. It makes a user namespace (in which nothing can make another:
--disable-userns), drops every capability, sets no-new-privileges, and installs the seccomp filter of
engine/sandbox/seccomp.py. A path that user cannot reach (a virtual environment under /root, a run directory
under a private folder) is first bind-mounted by the child, while still root, onto a mount point it can reach,
in a mount namespace of the child's own, and bwrap binds it from there.
"""
from __future__ import annotations

import ctypes
import os
import pwd
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.sandbox.seccomp import data_fd, program_fd

ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates", "ca-certificates.conf", "fonts",
       "nsswitch.conf", "localtime", "timezone", "hosts", "alternatives", "matplotlibrc", "os-release")
TOP = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
NVIDIA_SHARED = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
_CLONE_NEWNS, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x00020000, 4096, 16384, 1 << 18
_LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass
class BwrapPlan:
    argv: list[str]  # the bwrap command up to and including "--"
    fds: list[int]  # to pass to the child (and close afterwards)
    stage: list[tuple[str, str]] = field(default_factory=list)  # (source, mount point) the child binds first
    stage_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)  # variables to change inside (CUDA_VISIBLE_DEVICES)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        if self.stage_dir is not None:
            for _, point in self.stage:
                os.rmdir(point)
            os.rmdir(self.stage_dir)
            self.stage_dir = None


def build(bwrap: str, workdir: Path, identity: tuple[int, int] | None, visible_gpus: str | None) -> BwrapPlan:
    """The plan for running in `workdir` as `identity` (None: as the engine's own user), with the GPUs named by
    CUDA_VISIBLE_DEVICES=`visible_gpus` (None: unset, every GPU; "": none)."""
    uid, gid = identity if identity is not None else (os.getuid(), os.getgid())
    plan = BwrapPlan([bwrap], [])
    args = plan.argv
    try:
        args += ["--dir", "/tmp", "--ro-bind", "/usr", "/usr"]
        for name in TOP:
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for name in ETC:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        passwd, group = _identity_files(uid, gid, workdir)
        for dest, text in (("/etc/passwd", passwd), ("/etc/group", group)):
            plan.fds.append(data_fd(dest, text.encode()))
            args += ["--ro-bind-data", str(plan.fds[-1]), dest]
        for prefix in interpreter_dirs():
            args += ["--ro-bind", _source(plan, prefix, identity), prefix]
        args += ["--dev", "/dev", "--proc", "/proc"]
        devices, renumbered = gpu_devices(visible_gpus)
        for dev in devices:
            args += ["--dev-bind", str(dev), str(dev)]
        if renumbered is not None:
            plan.env["CUDA_VISIBLE_DEVICES"] = renumbered
        args += ["--bind", _source(plan, str(workdir), identity), str(workdir), "--remount-ro", "/"]
        plan.fds.append(program_fd())
        args += ["--seccomp", str(plan.fds[-1]), "--chdir", str(workdir), "--unshare-user", "--disable-userns",
                 "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                 "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--"]
    except BaseException:
        plan.close()
        raise
    return plan


def interpreter_dirs() -> list[str]:
    """The interpreter's prefixes, and the library folders outside them that it has on its path (a .pth file
    naming another environment's site-packages, the user's site-packages); never the project's own folder."""
    prefixes = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix})
    extra = {os.path.abspath(p) for p in sys.path
             if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p)}
    extra = {p for p in extra if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in prefixes)}
    return prefixes + sorted(extra)


def gpu_devices(visible: str | None, dev: Path = Path("/dev"),
                gpus: Path = Path("/proc/driver/nvidia/gpus")) -> tuple[list[Path], str | None]:
    """The device files a program may open and, when they change, the CUDA_VISIBLE_DEVICES it should see.

    The runner names GPUs by index (the driver's order, by PCI bus); each is the /dev/nvidiaN whose minor
    number /proc/driver/nvidia/gpus/<bus>/information gives. Inside, only those exist, so they are 0..k-1 there.
    Names that are not indices (UUIDs, MIG) cannot be mapped here: every GPU is bound and the names are kept."""
    cards = sorted(p for p in dev.glob("nvidia*") if p.name[6:].isdigit())
    if not cards or visible == "":
        return [], None
    shared = [dev / n for n in NVIDIA_SHARED if (dev / n).exists()]
    wanted = [v.strip() for v in (visible or "").split(",") if v.strip()]
    if visible is None or not all(v.isdigit() for v in wanted):
        return cards + shared, None
    minors = _minor_numbers(gpus)
    picked = [dev / f"nvidia{minors[int(v)] if int(v) < len(minors) else int(v)}" for v in wanted]
    return [p for p in picked if p.exists()] + shared, ",".join(str(i) for i in range(len(wanted)))


def _minor_numbers(gpus: Path) -> list[int]:
    """The device minor of each GPU, in the driver's (PCI bus) order; empty when the driver does not say."""
    minors = []
    for info in sorted(gpus.glob("*/information")):
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Device Minor:"):
                minors.append(int(line.split(":", 1)[1]))
    return minors


def _identity_files(uid: int, gid: int, home: Path) -> tuple[str, str]:
    """Minimal passwd and group files: root, nobody, and the program's own user (which getpass needs)."""
    try:
        name = pwd.getpwuid(uid).pw_name if uid not in (0, 65534) else None
    except KeyError:
        name = None
    passwd = ["root:x:0:0:root:/root:/usr/sbin/nologin", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"]
    group = ["root:x:0:", "nogroup:x:65534:"]
    if uid not in (0, 65534):
        passwd.append(f"{name or 'node'}:x:{uid}:{gid}:node:{home}:/usr/sbin/nologin")
    if gid not in (0, 65534):
        group.append(f"node:x:{gid}:")
    return "\n".join(passwd) + "\n", "\n".join(group) + "\n"


def _source(plan: BwrapPlan, path: str, identity: tuple[int, int] | None) -> str:
    """Where bwrap finds `path`: itself, or a mount point the child binds it to when `identity` cannot reach it."""
    if identity is None or reachable(path, *identity):
        return path
    if plan.stage_dir is None:
        _sweep_stage_dirs(Path(tempfile.gettempdir()))
        plan.stage_dir = Path(tempfile.mkdtemp(prefix="engine-stage-"))
        plan.stage_dir.chmod(0o711)
    point = plan.stage_dir / str(len(plan.stage))
    point.mkdir(mode=0o700)
    plan.stage.append((path, str(point)))
    return str(point)


def _sweep_stage_dirs(parent: Path, min_age_s: float = 600.0) -> None:
    """Remove the (empty) mount points a killed engine process left; a child uses them for milliseconds only."""
    now = time.time()
    for d in parent.glob("engine-stage-*"):
        try:
            if now - d.stat().st_mtime < min_age_s:
                continue
            for point in d.iterdir():
                point.rmdir()
            d.rmdir()
        except OSError:
            continue


def reachable(path: str, uid: int, gid: int) -> bool:
    """Whether `uid`/`gid` (without supplementary groups) may look up `path`: search permission on each parent."""
    parent = Path(path).parent
    for d in [parent, *parent.parents]:
        st = d.stat()
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid == gid else stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def stage_mounts(pairs: list[tuple[str, str]]) -> None:
    """In the child, still root: a mount namespace of its own, where each source is bound onto its mount point."""
    if not pairs:
        return
    if _LIBC.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if _LIBC.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "making / private")
    for source, point in pairs:
        if _LIBC.mount(source.encode(), point.encode(), None, _MS_BIND | _MS_REC, None) != 0:
            raise OSError(ctypes.get_errno(), f"binding {source} onto {point}")
