"""The runs of sweeps, one row each, for the scaling analysis (benchmarks/scaling.py).

Every file is read with one clear error naming it when it is missing where it must be, not UTF-8, malformed or of
the wrong shape (a run's config.yaml, summary.json and ledger, a sweep's sweep.json, a reviewer benchmark's
metrics.json); a key a file may lack is read as unknown, never by bare indexing.
"""
from __future__ import annotations

from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import EngineError
from engine.inputs.files import input_folder, read_json, read_yaml
from engine.llm.ledger import SCHEMA as LEDGER_SCHEMA
from engine.llm.ledger import cost_summary
from engine.sweep import RECORD
from search.metric import finite_number

COLUMNS = pa.schema([
    ("sweep", pa.string()), ("run", pa.string()), ("status", pa.string()), ("model", pa.string()),
    ("reviewer", pa.string()), ("release_date", pa.string()), ("budget_scale", pa.float64()), ("seed", pa.int64()),
    ("overall", pa.float64()), ("decision", pa.string()), ("best_metric", pa.float64()), ("metric", pa.string()),
    ("direction", pa.string()), ("nodes", pa.int64()), ("tokens", pa.int64()), ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()), ("cost_usd", pa.float64()), ("llm_calls", pa.int64()),
    ("wall_time_s", pa.float64()), ("why_no_review", pa.string()), ("run_dir", pa.string()),
])
BENCHMARK_FIGURES = ("balanced_accuracy", "accuracy", "f1", "roc_auc")


def find_runs(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(sweep dir, run dir) of every run under the given sweep directories (or run directories themselves)."""
    found = []
    for path in paths:
        path = input_folder(path, f"{path} (a sweep directory, e.g. multirun/<sweep>, or a run directory)")
        if (path / "config.yaml").is_file():
            found.append((path.parent, path))
            continue
        runs = sorted(d for d in path.iterdir() if d.is_dir() and (d / "config.yaml").is_file())
        if not runs and not (path / RECORD).is_file():
            raise EngineError(f"{path}: holds no runs (no <run>/config.yaml) and no {RECORD}")
        found += [(path, d) for d in runs]
    return found


def collect(paths: list[Path]) -> list[dict[str, Any]]:
    rows = [run_row(sweep, run) for sweep, run in find_runs(paths)]
    seen = {(r["sweep"], r["run"]) for r in rows}
    for path in paths:  # points the sweep recorded that never got a run directory (their config did not compose)
        for name, point in _points(path.resolve()).items():
            if (path.resolve().name, name) not in seen and point.get("status") != "finished":
                rows.append({"sweep": path.resolve().name, "run": name, "status": point.get("status"),
                             "why_no_review": point.get("error") or "no run directory",
                             "run_dir": point.get("run_dir")})
    return [{c: r.get(c) for c in COLUMNS.names} for r in rows]


def run_row(sweep_dir: Path, run_dir: Path) -> dict[str, Any]:
    config = mapping(read_yaml(run_dir / "config.yaml") or {}, run_dir / "config.yaml")
    summary = read_mapping(run_dir / "summary.json")
    record = _points(sweep_dir).get(run_dir.name) or {}
    model, review = _section(config, "model"), _section(summary, "review")
    roles = _section(_section(config, "llm"), "roles")
    costs = cost_summary(read_ledger(run_dir))
    phases = [p for p in summary.get("phases") or [] if isinstance(p, dict)]
    status = summary.get("status") or record.get("status") or "not started"
    if record.get("status") in ("failed", "interrupted") and status in ("running", "pending"):
        status = record["status"]
    return {
        "sweep": sweep_dir.name, "run": run_dir.name, "status": status,
        "model": model.get("name") or "offline", "reviewer": roles.get("review") or model.get("name"),
        "release_date": _iso_date(model.get("release_date"), run_dir),
        "budget_scale": finite_number(_section(config, "search").get("budget_scale", 1.0)), "seed": config.get("seed"),
        "overall": finite_number(review.get("Overall")), "decision": review.get("Decision"),
        "best_metric": finite_number(_section(summary, "best").get("value")),
        "metric": _section(summary, "primary_metric").get("name"),
        "direction": _section(summary, "primary_metric").get("direction"),
        "nodes": _section(summary, "nodes").get("total"),
        "tokens": costs["tokens"]["input"] + costs["tokens"]["output"], "input_tokens": costs["tokens"]["input"],
        "output_tokens": costs["tokens"]["output"], "cost_usd": costs["cost_usd"], "llm_calls": costs["llm_calls"],
        "wall_time_s": round(sum(finite_number(p.get("wall_time_s")) or 0 for p in phases), 1) if phases else None,
        "why_no_review": None if review.get("Overall") is not None else _why_no_review(phases, record, status),
        "run_dir": str(run_dir),
    }


def read_mapping(path: Path) -> dict[str, Any]:
    """A JSON object, {} when the file is not there; EngineError naming it when it is not readable JSON."""
    return mapping(read_json(path), path) if path.is_file() else {}


def mapping(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise EngineError(f"{path}: expected a mapping of keys to values, found {type(data).__name__}")
    return data


def read_ledger(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for part in sorted((run_dir / "llm" / "ledger").glob("*.parquet")):
        try:
            rows += pq.read_table(part, schema=LEDGER_SCHEMA).to_pylist()
        except (OSError, pa.ArrowException) as e:
            raise EngineError(f"{part}: not a readable ledger part ({str(e).splitlines()[0]})") from None
    return rows


def benchmark_metrics(path: Path) -> dict[str, Any]:
    """A reviewer benchmark's metrics.json (python -m benchmarks.iclr_review), with its headline figures."""
    m = mapping(read_json(path), path)
    missing = [k for k in BENCHMARK_FIGURES if not isinstance(m.get(k), (int, float))]
    if missing:
        raise EngineError(f"{path}: not the metrics.json of benchmarks.iclr_review: no number {missing[0]!r}")
    return m


@cache
def canonical_model(name: str) -> str:
    """The provider's name of a model: a conf/model entry's (gpt-4o -> gpt-4o-2024-08-06), else the name itself."""
    from engine.review.reviewer import spec_for

    return spec_for(name, "openai").name


def _points(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    points = read_mapping(sweep_dir / RECORD).get("points") or {}
    return {k: v for k, v in points.items() if isinstance(v, dict)} if isinstance(points, dict) else {}


def _section(d: dict[str, Any], key: str) -> dict[str, Any]:
    value = d.get(key)
    return value if isinstance(value, dict) else {}


def _iso_date(value: Any, run_dir: Path) -> str | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise EngineError(f"{run_dir / 'config.yaml'}: model.release_date={value!r} is not a date "
                          "(YYYY-MM-DD)") from None


def _why_no_review(phases: list[dict[str, Any]], record: dict[str, Any], status: str) -> str:
    for p in phases:
        if p.get("name") == "review" and p.get("status") != "done":
            return f"review {p.get('status')}: {p.get('why') or 'see phases/review.json'}"
    failed = next((p for p in phases if p.get("status") in ("failed", "crashed", "interrupted")), None)
    if failed:
        return f"{failed.get('name')} {failed['status']}: {failed.get('why')}"
    if record.get("error"):
        return str(record["error"])
    return "the review phase was not run (pipeline.phases)" if phases else f"no phase ran ({status})"


