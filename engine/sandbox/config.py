"""The sandbox's settings (conf/sandbox/), one class for the config and for a node's run."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from engine.inputs.values import Section

BWRAP_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class SandboxConfig:
    """sandbox.* (conf/sandbox/default.yaml holds the values and their meaning).

    No limit: a time limit of math.inf, a size or count limit of None. `timeout_s` and `memory_gb` are None in the
    config when the template's resources decide (else default_timeout_s / default_memory_gb); `for_template`
    resolves them before a node runs."""

    use_bwrap: str  # always: refuse to run without bubblewrap | auto: when installed | never: no isolation
    timeout_s: float | None  # wall-clock limit of a node's program (math.inf: none)
    plot_timeout_s: float  # of its plot.py (math.inf: none)
    memory_gb: float | None  # cgroup memory limit (else address-space cap and RSS watchdog)
    default_timeout_s: float  # when neither the config nor the template sets a time limit (math.inf: none)
    default_memory_gb: float | None  # ... nor a memory limit (None: none)
    max_procs: int | None  # processes and threads (None: no limit)
    max_file_gb: float | None
    max_dir_gb: float | None  # what the working directory may hold, in size ...
    max_files: int | None  # ... and in files and folders
    max_artifact_mb: float | None  # what one node may bring back to the run directory
    uid: int | None  # who the program runs as when the engine is root (None: stay root)
    gid: int
    threads: int  # OMP/MKL threads the program is told to use (cluster.threads_per_node)
    tail_chars: int  # of stdout and stderr kept in the node's record
    poll_s: float  # how often the watchdog looks

    def __post_init__(self) -> None:
        if self.use_bwrap not in BWRAP_MODES:
            raise ValueError(f"sandbox.use_bwrap must be auto, always or never, got {self.use_bwrap!r}")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError(f"sandbox.timeout_s must be positive, got {self.timeout_s}")
        if self.uid == 0:
            raise ValueError("sandbox.uid must not be 0 (null: keep the engine's user)")

    @classmethod
    def from_dict(cls, raw: dict[str, Any], threads: int) -> SandboxConfig:
        """From the resolved `sandbox` section; ValueError names the key, the value and what is allowed."""
        s = Section(raw, "sandbox")
        none = "no limit"
        return cls(
            s.choice("use_bwrap", BWRAP_MODES),
            s.number("timeout_s", above=0, inf=none, null="the template's resources.timeout_s, else "
                     "sandbox.default_timeout_s"),
            _no_limit(s.number("plot_timeout_s", above=0, null=none)),
            s.number("memory_gb", above=0, inf=none, null="the template's resources.memory_gb, else "
                     "sandbox.default_memory_gb"),
            _no_limit(s.number("default_timeout_s", above=0, null=none)),
            s.number("default_memory_gb", above=0, null=none), s.integer("max_procs", at_least=1, null=none),
            s.number("max_file_gb", above=0, null=none), s.number("max_dir_gb", above=0, null=none),
            s.integer("max_files", at_least=1, null=none), s.number("max_artifact_mb", above=0, null=none),
            s.integer("uid", at_least=1, null="stay root (not advised)"), s.integer("gid", at_least=0),
            int(threads), s.integer("tail_chars", at_least=0), s.number("poll_s", above=0, at_most=60))

    def for_template(self, timeout_s: float | None, memory_gb: float | None) -> SandboxConfig:
        """The limits a node runs under: the config's, else the template's resources, else the defaults."""
        timeout = _first(self.timeout_s, timeout_s, self.default_timeout_s)
        memory = _first(self.memory_gb, memory_gb, self.default_memory_gb)
        return replace(self, timeout_s=timeout, memory_gb=None if memory == math.inf else memory)

    def for_plots(self) -> SandboxConfig:
        """The limits of a plotting program (the writeup's figures): the plot time limit."""
        memory = _first(self.memory_gb, self.default_memory_gb)
        return replace(self, timeout_s=self.plot_timeout_s, memory_gb=None if memory == math.inf else memory)

    @property
    def limit_s(self) -> float:
        """The resolved time limit (math.inf: none); a config not yet resolved for a template is an engine fault."""
        if self.timeout_s is None:
            raise ValueError("sandbox.timeout_s is not resolved: call for_template() first")
        return self.timeout_s


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _no_limit(value: float | None) -> float:
    """A time limit, math.inf for none (null in the config)."""
    return math.inf if value is None else value
