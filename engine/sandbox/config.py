"""The sandbox's settings (conf/sandbox/), one class for the config and for a node's run."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

BWRAP_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class SandboxConfig:
    """sandbox.* (conf/sandbox/default.yaml holds the values and their meaning). `timeout_s` and `memory_gb` may
    be None in the config (the template's resources decide); `for_template` resolves them before a node runs."""

    use_bwrap: str  # always: refuse to run without bubblewrap | auto: when installed | never: no isolation
    timeout_s: float | None  # wall-clock limit of a node's program
    plot_timeout_s: float  # of its plot.py
    memory_gb: float | None  # cgroup memory limit (else address-space cap and RSS watchdog)
    default_timeout_s: float  # when neither the config nor the template sets a time limit
    default_memory_gb: float  # ... nor a memory limit
    max_procs: int  # processes and threads
    max_file_gb: float
    max_dir_gb: float  # what the working directory may hold, in size ...
    max_files: int  # ... and in files and folders
    max_artifact_mb: float  # what one node may bring back to the run directory
    uid: int | None  # who the program runs as when the engine is root (None: stay root)
    gid: int
    threads: int  # OMP/MKL threads the program is told to use (cluster.threads_per_node)
    tail_chars: int  # of stdout and stderr kept in the node's record
    poll_s: float  # how often the watchdog looks

    def __post_init__(self) -> None:
        if self.use_bwrap not in BWRAP_MODES:
            raise ValueError(f"sandbox.use_bwrap must be auto, always or never, got {self.use_bwrap!r}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"sandbox.timeout_s must be positive, got {self.timeout_s}")
        if self.uid == 0 or self.max_dir_gb <= 0 or self.max_files < 1:
            raise ValueError("sandbox.uid must not be 0 (null: keep the engine's user); sandbox.max_dir_gb and "
                             "sandbox.max_files must be positive")

    @classmethod
    def from_dict(cls, raw: dict[str, Any], threads: int) -> SandboxConfig:
        """From the resolved `sandbox` section; ValueError names the key at fault."""
        return cls(str(raw["use_bwrap"]), _opt_float(raw["timeout_s"]), float(raw["plot_timeout_s"]),
                   _opt_float(raw["memory_gb"]), float(raw["default_timeout_s"]), float(raw["default_memory_gb"]),
                   int(raw["max_procs"]), float(raw["max_file_gb"]), float(raw["max_dir_gb"]), int(raw["max_files"]),
                   float(raw["max_artifact_mb"]), None if raw["uid"] is None else int(raw["uid"]), int(raw["gid"]),
                   int(threads), int(raw["tail_chars"]), float(raw["poll_s"]))

    def for_template(self, timeout_s: float | None, memory_gb: float | None) -> SandboxConfig:
        """The limits a node runs under: the config's, else the template's resources, else the defaults."""
        return replace(self, timeout_s=self.timeout_s or timeout_s or self.default_timeout_s,
                       memory_gb=self.memory_gb or memory_gb or self.default_memory_gb)

    def for_plots(self) -> SandboxConfig:
        """The limits of a plotting program (the writeup's figures): the plot time limit."""
        return replace(self, timeout_s=self.plot_timeout_s, memory_gb=self.memory_gb or self.default_memory_gb)

    @property
    def limit_s(self) -> float:
        """The resolved time limit; a config not yet resolved for a template is an engine fault."""
        if self.timeout_s is None:
            raise ValueError("sandbox.timeout_s is not resolved: call for_template() first")
        return self.timeout_s


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
