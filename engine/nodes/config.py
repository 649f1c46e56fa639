"""Where nodes run: cluster.* (conf/cluster/ holds the values and their meaning)."""
from __future__ import annotations

from dataclasses import dataclass

CLUSTER_KINDS = ("local", "ray", "threads")


@dataclass(frozen=True)
class ClusterConfig:
    """cluster.* (engine.config.cluster_config builds it)."""

    kind: str
    slots: int
    threads_per_node: int
    scratch_dir: str | None
    address: str | None
    num_cpus: float | None
    num_gpus: float | None
    runner_num_cpus: float
    runner_gpu_fraction: float | None  # None: the template's resources.gpus when the cluster has GPUs

    def __post_init__(self) -> None:
        if self.kind not in CLUSTER_KINDS:
            raise ValueError(f"cluster.kind must be local, ray or threads, got {self.kind!r}")
        if self.slots < 1 or self.threads_per_node < 1:
            raise ValueError("cluster.slots and cluster.threads_per_node must be >= 1")
