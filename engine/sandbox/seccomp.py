"""The seccomp filter bubblewrap installs before it starts a node's program (`bwrap --seccomp FD`).

Everything is allowed except the calls a training program never needs and an escape always does: mounting
(old and new mount API), namespaces, tracing other processes, kernel modules and keys, BPF, reboot, swap,
perf events, and opening files by handle. They fail with EPERM. `clone` with a namespace flag fails the same
way; `clone3`, whose flags the filter cannot see, fails with ENOSYS, which makes the C library fall back to
`clone`. Built with libseccomp (the `pyseccomp` binding), once per process.
"""
from __future__ import annotations

import errno
import os
import tempfile

from engine.errors import EngineError

REFUSED = (
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig", "fspick", "move_mount",
    "open_tree", "mount_setattr", "unshare", "setns", "ptrace", "process_vm_readv", "process_vm_writev", "bpf",
    "keyctl", "add_key", "request_key", "init_module", "finit_module", "delete_module", "reboot", "kexec_load",
    "kexec_file_load", "swapon", "swapoff", "perf_event_open", "open_by_handle_at", "userfaultfd", "acct",
)
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)
_program: bytes | None = None


def program() -> bytes:
    """The filter as a BPF program (what `bwrap --seccomp` reads)."""
    global _program
    if _program is None:
        _program = _build()
    return _program


def _build() -> bytes:
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as e:  # OSError: the binding is there, libseccomp is not
        raise EngineError(f"the sandbox needs libseccomp and its Python binding ({e}): apt-get install "
                          "libseccomp2 and pip install pyseccomp, or set sandbox.use_bwrap=never to run without "
                          "isolation") from None
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in REFUSED:
        try:
            f.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (ValueError, RuntimeError, OSError):  # a call this architecture does not have
            continue
    for flag in NAMESPACE_FLAGS:
        f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def program_fd() -> int:
    """A new file descriptor at the start of the program (the caller passes it to bwrap and closes it)."""
    return data_fd("seccomp", program())


def data_fd(name: str, data: bytes) -> int:
    """An anonymous in-memory file holding `data`, positioned at its start."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
