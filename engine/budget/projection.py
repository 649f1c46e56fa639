"""What a run is expected to cost, before its first call: a range per phase and in total.

Each phase says how many calls of each role it makes, at least and at most, from the configured budgets (ideas,
reflections, stage nodes, re-asks, citation and compile rounds, reviews): its `call_plan(cfg)` (engine/ideas/calls.py
and its siblings). Tokens per call come from the ledgers of earlier runs in the same runs folder when they hold
enough calls of a role (median and 90th percentile), else from budget.tokens_per_call. The low end is the fewest
calls at the low tokens, the high end the most calls at the high tokens; prices are the role's model's (cached
input is not assumed, so the high end errs high). A projection, not a measurement: the ledger says what was spent.
"""
from __future__ import annotations

import importlib
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.budget.settings import BudgetSettings, TokenRange
from engine.llm.ledger import SCHEMA
from engine.phase import PipelineSettings

if TYPE_CHECKING:
    from engine.config import RunConfig

CALL_PLANS = {"ideas": "engine.ideas.calls", "experiments": "engine.experiments.calls",
              "writeup": "engine.writeup.calls", "review": "engine.review.calls"}
MIN_CALLS = 3  # calls of a role in earlier ledgers before their tokens replace the defaults
MAX_EARLIER_RUNS = 50  # the most recent run directories read


@dataclass(frozen=True)
class Calls:
    """How many calls of `role` a phase makes: at least `low`, at most `high`; `what` they are for."""

    role: str
    low: int
    high: int
    what: str


@dataclass(frozen=True)
class Line:
    phase: str
    calls: Calls
    model: str
    tokens: TokenRange
    usd: tuple[float, float] | None  # None: the model has no prices


@dataclass
class Projection:
    lines: list[Line]
    tokens_source: str
    phases: tuple[str, ...] = field(default_factory=tuple)

    def phase_usd(self, phase: str) -> tuple[float, float] | None:
        """(low, high) USD of a phase; None when a model it calls has no prices."""
        mine = [ln for ln in self.lines if ln.phase == phase]
        if any(ln.usd is None for ln in mine):
            return None
        return sum(ln.usd[0] for ln in mine), sum(ln.usd[1] for ln in mine)  # type: ignore[index]

    def total_usd(self) -> tuple[float, float] | None:
        per = [self.phase_usd(p) for p in self.phases]
        if any(u is None for u in per):
            return None
        return sum(u[0] for u in per), sum(u[1] for u in per)  # type: ignore[index]

    def to_dict(self) -> dict[str, Any]:
        def pair(u: tuple[float, float] | None) -> list[float] | None:
            return None if u is None else [round(u[0], 4), round(u[1], 4)]

        return {"usd": pair(self.total_usd()), "by_phase": {p: pair(self.phase_usd(p)) for p in self.phases},
                "tokens_per_call": self.tokens_source}

    def text(self) -> str:
        rows = [("phase", "role", "for", "model", "calls", "tokens in / out per call", "USD")]
        for ln in self.lines:
            t = ln.tokens
            rows.append((ln.phase, ln.calls.role, ln.calls.what, ln.model, f"{ln.calls.low}-{ln.calls.high}",
                         f"{t.input[0]}-{t.input[1]} / {t.output[0]}-{t.output[1]}", _usd(ln.usd)))
        for p in self.phases:
            rows.append((p, "(phase)", "", "", "", "", _usd(self.phase_usd(p))))
        rows.append(("total", "", "", "", "", "", _usd(self.total_usd())))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        body = "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
        return f"projected cost of the model calls (a projection; tokens per call: {self.tokens_source}):\n{body}"


def _usd(u: tuple[float, float] | None) -> str:
    return "unknown (no prices)" if u is None else f"${u[0]:.2f} - ${u[1]:.2f}"


def call_plan(phase: str, cfg: RunConfig) -> list[Calls]:
    return importlib.import_module(CALL_PLANS[phase]).call_plan(cfg)


def project(cfg: RunConfig, settings: BudgetSettings, runs_dir: Path | None = None,
            this_run: Path | None = None) -> Projection:
    """The projection of a run of `cfg`; tokens per call from earlier runs in `runs_dir` (not `this_run`)."""
    earlier, source = earlier_tokens(runs_dir, this_run) if runs_dir is not None else ({}, "")
    phases = PipelineSettings.of(cfg).phases
    lines = []
    for phase in phases:
        for calls in call_plan(phase, cfg):
            if calls.high <= 0 or calls.role not in cfg.roles:
                continue
            spec = cfg.roles[calls.role]
            tokens = earlier.get(calls.role) or settings.tokens_per_call.get(calls.role)
            if tokens is None:
                raise ValueError(f"budget.tokens_per_call.{calls.role}: missing (tokens per call of that role)")
            lo = spec.prices.cost(tokens.input[0], tokens.output[0], 0)
            hi = spec.prices.cost(tokens.input[1], tokens.output[1], 0)
            usd = None if lo is None or hi is None else (calls.low * lo, calls.high * hi)
            lines.append(Line(phase, calls, spec.name, tokens, usd))
    if not earlier:
        source = "the defaults in budget.tokens_per_call (no earlier run in this runs folder has enough calls)"
    return Projection(lines, source, phases)


def earlier_tokens(runs_dir: Path, this_run: Path | None) -> tuple[dict[str, TokenRange], str]:
    """Tokens per call of each role in the ledgers of earlier runs of `runs_dir` (ok, live calls), as (median,
    90th percentile), for roles with at least MIN_CALLS calls."""
    ledgers = sorted((p for p in runs_dir.glob("*/llm/ledger") if this_run is None or p.parents[1] != this_run),
                     key=lambda p: p.stat().st_mtime)[-MAX_EARLIER_RUNS:] if runs_dir.is_dir() else []
    calls: dict[str, list[tuple[int, int]]] = {}
    runs = 0
    for ledger in ledgers:
        parts = sorted(ledger.glob("*.parquet"))
        if not parts:
            continue
        runs += 1
        for r in pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in parts]).to_pylist():
            if r["ok"] and not r["replayed"]:
                calls.setdefault(r["role"], []).append((r["input_tokens"], r["output_tokens"]))
    out = {role: TokenRange(_spread([c[0] for c in cs]), _spread([c[1] for c in cs]))
           for role, cs in calls.items() if len(cs) >= MIN_CALLS}
    used = sum(len(calls[r]) for r in out)
    return out, (f"{used} calls in the ledgers of {runs} earlier runs in {runs_dir} for {', '.join(sorted(out))}; "
                 "the defaults in budget.tokens_per_call for other roles") if out else ""


def _spread(values: list[int]) -> tuple[int, int]:
    """(median, 90th percentile)."""
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return int(statistics.median(ordered)), int(p90)


def phase_low(projection: Projection, phase: str) -> float | None:
    """The low end of a phase's projection (what it costs at least), or None."""
    u = projection.phase_usd(phase)
    return None if u is None else u[0]
