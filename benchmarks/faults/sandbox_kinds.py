"""The sandbox faults: one hostile node program each, run through `execute_node` with the engine's default
sandbox (limits scaled down, see attack.sandbox_config).

An escape is a planted secret or marker in what the engine keeps of the node, a file outside the node
directory, a connection to a host listener, a process that outlives the node, or a limit not enforced (the
program got past it and printed its marker). Privileged calls the kernel allowed (mount, unshare, setns,
ptrace) are listed in the note: the sandbox should refuse them even where they lead nowhere.
"""
from __future__ import annotations

from benchmarks.faults.attack import FILE_GB, MEMORY_GB, Plant, run_attack, sandbox_config
from benchmarks.faults.record import Kind, Trial
from engine.config import shipped_sandbox
from engine.nodes.node_exec import NodeOutcome
from engine.sandbox.config import SandboxConfig

HOLD_BYTES = int(1.5 * 2**30)


def attack(program: str, cfg: SandboxConfig | None = None, check=None, **params):
    """A kind's trial function: run `program` with `params` and the default (or given) sandbox."""
    def run(trial: Trial) -> None:
        run_attack(program, params, cfg or sandbox_config(), trial, check)
    return run


def survived(what: str):
    """A check: the program printed its marker after getting past the limit named by `what`."""
    def check(plant: Plant, outcome: NodeOutcome, trial: Trial) -> None:
        r = outcome.result
        if f"MARK-{plant.token}" in r.stdout_tail:
            trial.escape(what)
        elif r.killed_reason or r.exc_type:
            trial.error_s = r.exec_time_s
            trial.note(f"stopped: {r.killed_reason or r.exc_type}")
    return check


def huge_stdout_check(plant: Plant, outcome: NodeOutcome, trial: Trial) -> None:
    survived("wrote 4 GB of stdout past the file-size cap")(plant, outcome, trial)
    cfg = sandbox_config()
    if trial.figures["peak_disk_mb"] > FILE_GB * 1024 * 1.1 + 64:
        trial.escape(f"node directory grew to {trial.figures['peak_disk_mb']:.0f} MB")
    if len(outcome.result.stdout_tail) > cfg.tail_chars:
        trial.escape(f"stdout tail of {len(outcome.result.stdout_tail)} chars kept")


def timeout_check(plant: Plant, outcome: NodeOutcome, trial: Trial) -> None:
    r = outcome.result
    trial.error_s = r.exec_time_s
    if r.killed_reason != "timeout" or r.exec_time_s > 3 + 5:
        trial.escape(f"not stopped by the 3 s timeout ({r.killed_reason}, {r.exec_time_s:.1f} s)")
    else:
        trial.note("stopped: timeout")


def final_info_check(what: str, breach: bool):
    """A malformed final_info must make one buggy node with a reason; accepting it is noted (a breach of the
    collector's caps when `breach`)."""
    def check(plant: Plant, outcome: NodeOutcome, trial: Trial) -> None:
        r = outcome.result
        if r.final_info is not None and r.exc_type is None:
            (trial.escape if breach else trial.note)(f"{what} accepted as a result")
        else:
            trial.error_s = trial.seconds
            trial.note(f"buggy node: {(r.exc_type or 'no result')}")
    return check


def symlink_check(plant: Plant, outcome: NodeOutcome, trial: Trial) -> None:
    r = outcome.result
    trial.note(f"buggy node: {r.exc_type or 'no result'}" if r.final_info is None or r.exc_type
               else "linked result accepted")


KINDS = [
    Kind("home", "read a secret in the home directory", "sandbox", attack("read_secrets.py"), fast=True),
    Kind("shadow", "read /etc/shadow", "sandbox", attack("read_secrets.py", paths=["/etc/shadow"]), fast=True),
    Kind("write", "write outside the node directory", "sandbox", attack("write_outside.py"), fast=True),
    Kind("mount", "mount / umount / remount", "sandbox", attack("mount_escape.py")),
    Kind("unshare", "unshare / setns", "sandbox", attack("unshare_setns.py")),
    Kind("ptrace", "ptrace / signal another process", "sandbox", attack("ptrace_other.py")),
    Kind("unix", "connect to a host unix socket", "sandbox", attack("connect_out.py", tcp=[]), fast=True),
    Kind("tcp", "connect to a loopback TCP listener", "sandbox", attack("connect_out.py", unix=[]), fast=True),
    Kind("link", "final_info.json a symlink to a host file", "sandbox",
         attack("symlink_result.py", check=symlink_check, mode="file"), fast=True),
    Kind("linkdir", "run_0 a symlink to a host folder", "sandbox",
         attack("symlink_result.py", check=symlink_check, mode="dir")),
    Kind("memfd", "memory held in a memfd", "sandbox",
         attack("hold_memory.py", check=survived(f"held 1.5 GB in a memfd past the {MEMORY_GB:g} GB limit"),
                mode="memfd", bytes=HOLD_BYTES, hold_s=1)),
    Kind("shm", "memory held in /dev/shm", "sandbox",
         attack("hold_memory.py", check=survived(f"held 1.5 GB in /dev/shm past the {MEMORY_GB:g} GB limit"),
                mode="shm", bytes=HOLD_BYTES, hold_s=1)),
    Kind("oom", "node out of memory", "sandbox",
         attack("hold_memory.py", check=survived(f"held 1.5 GB past the {MEMORY_GB:g} GB limit"),
                mode="rss", bytes=HOLD_BYTES, hold_s=1)),
    Kind("fork", "fork bomb", "sandbox",
         attack("exhaust.py", check=survived("forked past max_procs"), mode="fork",
                count=4 * shipped_sandbox().max_procs)),
    Kind("loop", "endless loop", "sandbox",
         attack("exhaust.py", cfg=sandbox_config(timeout_s=3.0), check=timeout_check, mode="loop")),
    Kind("stdout", "huge stdout", "sandbox",
         attack("exhaust.py", cfg=sandbox_config(timeout_s=60.0), check=huge_stdout_check,
                mode="stdout", mb=4096)),
    Kind("disk", "fill the disk in the node directory", "sandbox",
         attack("exhaust.py", cfg=sandbox_config(timeout_s=60.0),
                check=survived("wrote 1 GB into the node directory (no size cap)"), mode="disk", mb=1024)),
    Kind("deep", "final_info.json nested 200000 deep", "sandbox",
         attack("bad_final_info.py", check=final_info_check("a 200000-deep final_info", True),
                mode="deep"), fast=True),
    Kind("utf8", "final_info.json with invalid UTF-8", "sandbox",
         attack("bad_final_info.py", check=final_info_check("invalid UTF-8", False), mode="utf8")),
    Kind("big", "final_info.json of 200 MB", "sandbox",
         attack("bad_final_info.py", check=final_info_check("a 200 MB final_info", True), mode="big",
                mb=200)),
]
