"""The compute ledger: one Parquet row per node program that ran (append-only, like the model calls' ledger), with
the device kind it ran on and its node-hours, CPU-hours and GPU-hours.

A node's time is its slot time, from its submission to its result (the slot was held for all of it), else its
program's run time. GPU-hours are that time times the GPU share its runner held (0.25: a quarter of a GPU);
CPU-hours, times the runner's CPUs. A node on a runner with a GPU share is of kind "gpu", else "cpu"."""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([
    ("node", pa.string()), ("step", pa.int64()), ("stage", pa.string()), ("operator", pa.string()),
    ("kind", pa.string()), ("cpus", pa.float64()), ("gpu_share", pa.float64()), ("wall_s", pa.float64()),
    ("node_hours", pa.float64()), ("cpu_hours", pa.float64()), ("gpu_hours", pa.float64()), ("time", pa.float64()),
])


@dataclass
class NodeHours:
    node: str
    step: int
    stage: str | None
    operator: str
    kind: str  # "cpu" | "gpu"
    cpus: float
    gpu_share: float
    wall_s: float
    node_hours: float
    cpu_hours: float
    gpu_hours: float
    time: float

    @classmethod
    def of(cls, node: Any, cpus: float, gpu_share: float) -> NodeHours:
        """The hours of a finished node (search.node.Node)."""
        held = None
        if node.submitted_at is not None and node.finished_at is not None:
            held = max(0.0, node.finished_at - node.submitted_at)
        wall = held if held is not None else float(node.exec.exec_time_s or 0.0)
        hours = wall / 3600
        return cls(node.id, node.step, node.stage, node.operator, "gpu" if gpu_share > 0 else "cpu", cpus, gpu_share,
                   round(wall, 3), hours, hours * cpus, hours * gpu_share, time.time())


class ComputeLedger:
    def __init__(self, run_dir: Path):
        self.dir = run_dir / "compute" / "ledger"
        self.dir.mkdir(parents=True, exist_ok=True)

    def append(self, row: NodeHours) -> None:
        path = self.dir / f"{row.step:06d}-{row.node}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(pa.Table.from_pylist([asdict(row)], schema=SCHEMA), tmp)
        os.replace(tmp, path)  # a node recorded twice (a resume) keeps one row

    def rows(self) -> list[dict[str, Any]]:
        parts = sorted(self.dir.glob("*.parquet"))
        return pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in parts]).to_pylist() if parts else []


def compute_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """summary.json's `compute`: node-hours per device kind, CPU-hours and GPU-hours, over the node programs run."""
    by_kind: dict[str, float] = {}
    for r in rows:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0.0) + r["node_hours"]
    return {"nodes": len(rows), "node_hours": {k: round(v, 4) for k, v in sorted(by_kind.items())},
            "cpu_hours": round(sum(r["cpu_hours"] for r in rows), 4),
            "gpu_hours": round(sum(r["gpu_hours"] for r in rows), 4)}
