"""Every model call, one Parquet row each (append-only, crash-safe), and the run's cost summary."""
from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([
    ("run", pa.string()), ("seq", pa.int64()), ("node", pa.string()), ("step", pa.int64()),
    ("stage", pa.string()), ("role", pa.string()), ("model", pa.string()), ("provider", pa.string()),
    ("input_tokens", pa.int64()), ("output_tokens", pa.int64()), ("cached_tokens", pa.int64()),
    ("cost_usd", pa.float64()), ("latency_s", pa.float64()), ("ok", pa.bool_()), ("error", pa.string()),
    ("replayed", pa.bool_()), ("time", pa.float64()), ("phase", pa.string()), ("cost_estimated", pa.bool_()),
])  # (a ledger written before `phase` and `cost_estimated` existed reads them as null)


@dataclass
class CallRecord:
    run: str
    seq: int
    node: str | None
    step: int | None
    stage: str | None
    role: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float | None
    latency_s: float
    ok: bool
    error: str | None
    replayed: bool
    time: float
    phase: str | None = None  # the pipeline phase that made the call
    cost_estimated: bool = False  # a call that failed without a reply (a timeout): its cost is its bound


class Ledger:
    def __init__(self, run_dir: Path, run_name: str):
        self.dir = run_dir / "llm" / "ledger"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run = run_name
        start = max((int(p.name.split("-")[0]) for p in self.dir.glob("*.parquet")), default=-1) + 1
        self._seq = itertools.count(start)
        self._lock = threading.Lock()

    def next_seq(self) -> int:
        with self._lock:
            return next(self._seq)

    def append(self, record: CallRecord) -> None:
        table = pa.Table.from_pylist([asdict(record)], schema=SCHEMA)
        path = self.dir / f"{record.seq:06d}-{record.role}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)

    def rows(self) -> list[dict[str, Any]]:
        parts = sorted(self.dir.glob("*.parquet"))
        return pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in parts]).to_pylist() if parts else []


def cost_summary(rows: list[dict[str, Any]], dropped: set[str] = frozenset()) -> dict[str, Any]:
    """`cost_usd` and `tokens`, in total, by role, by stage and by label. A cost with an unknown price is null.
    `dropped`: ids of proposals written but never run (their basis changed): their calls are labelled
    "dropped proposal", every other call by its role."""
    def total(group: list[dict]) -> dict[str, Any]:
        unknown = sum(1 for r in group if r["cost_usd"] is None and r["ok"])
        cost = sum(r["cost_usd"] or 0.0 for r in group)
        return {"cost_usd": None if unknown else round(cost, 6), "calls": len(group),
                "calls_with_unknown_price": unknown,
                "input_tokens": sum(r["input_tokens"] for r in group),
                "output_tokens": sum(r["output_tokens"] for r in group),
                "cached_tokens": sum(r["cached_tokens"] for r in group)}

    def by(key: str) -> dict[str, Any]:
        groups: dict[str, list[dict]] = {}
        for r in rows:
            groups.setdefault(r[key] or "none", []).append(r)
        return {k: total(v) for k, v in sorted(groups.items())}

    for r in rows:
        r["label"] = "dropped proposal" if r.get("node") in dropped else r["role"]
    overall = total(rows)
    return {"cost_usd": overall["cost_usd"],
            "tokens": {"input": overall["input_tokens"], "output": overall["output_tokens"],
                       "cached": overall["cached_tokens"]},
            "llm_calls": overall["calls"], "llm_calls_unknown_price": overall["calls_with_unknown_price"],
            "llm_by_role": by("role"), "llm_by_stage": by("stage"), "llm_by_label": by("label")}


def now() -> float:
    return time.time()
