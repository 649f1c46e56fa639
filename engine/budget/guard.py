"""The run's budget, checked before every model call and before every node starts.

Money: the ledger's spending so far (every phase, every earlier invocation of the run: a resume counts what was
spent before it), the calls in flight at their bound, and the next call's bound must stay within `budget.max_usd`
and the phase's `budget.phase_max_usd`. A call's bound is its input (estimated from its characters and images) and
its whole output limit at the model's prices, so a cap is never crossed by a call the guard let through. A call it
cannot pay for is not made: BudgetExhausted, which the search treats as "stop proposing" and the phases as a model
call that failed (their offline path). Compute: the GPU-hours of the nodes that ran, those running at their time
limit, and the next node's at its time limit must stay within `budget.max_gpu_hours`.
"""
from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.budget.compute import ComputeLedger, NodeHours, compute_summary
from engine.budget.settings import BudgetSettings
from engine.llm.models import ModelSpec
from engine.llm.providers import Request
from engine.llm.service import LLMCallError
from engine.phase import PHASES
from search.operators import StopSearch

log = logging.getLogger(__name__)


class BudgetExhausted(LLMCallError, StopSearch):
    """A model call the budget cannot pay for; it was not made and costs nothing."""


@dataclass(frozen=True)
class Reservation:
    phase: str | None
    usd: float


class Budget:
    def __init__(self, settings: BudgetSettings, run_dir: Path, llm_rows: list[dict[str, Any]] = ()):
        self.settings = settings
        self.phase: str | None = None  # the phase running now (the pipeline says)
        self._lock = threading.Lock()
        self._spent: dict[str | None, float] = {}
        for r in llm_rows:  # earlier invocations of this run (a resume); replayed calls cost nothing
            if not r.get("replayed") and r.get("cost_usd"):
                self._spent[r.get("phase")] = self._spent.get(r.get("phase"), 0.0) + float(r["cost_usd"])
        self._reserved: dict[int, Reservation] = {}
        self._tickets = iter(range(1 << 62))
        self.stops: dict[str, str] = {}  # phase -> why the budget cut it short
        self.compute = ComputeLedger(run_dir)
        self._gpu_spent = sum(r["gpu_hours"] for r in self.compute.rows())
        self._gpu_reserved: dict[str, float] = {}
        self.projection: dict[str, Any] | None = None  # the start-up projection, for summary.json
        self.floors: dict[str, float] = {}  # phase -> the most its cheapest call may cost (start.py sets it)

    # -- money -----------------------------------------------------------------------------------------
    def bound(self, spec: ModelSpec, req: Request) -> float | None:
        """The most a call can cost: its estimated input and its whole output limit (None: no prices)."""
        chars = len(req.system) + sum(len(str(m.get("content", ""))) for m in req.messages)
        if req.tool is not None:
            chars += len(req.tool.description) + len(json.dumps(req.tool.parameters))
        if req.json_schema is not None:
            chars += len(json.dumps(req.json_schema))
        images = sum(len(m.get("images") or ()) for m in req.messages)
        tokens_in = math.ceil(chars / self.settings.chars_per_token) + images * self.settings.image_tokens
        return spec.prices.cost(tokens_in, spec.output_limit(req.max_tokens), 0)

    def reserve(self, role: str, spec: ModelSpec, req: Request) -> int:
        """A ticket for a call that fits the caps (settle it with the call's cost); BudgetExhausted otherwise."""
        usd = self.bound(spec, req) or 0.0
        with self._lock:
            why = self._refusal(self.phase, usd, f"the next call (role {role}, model {spec.name}) could cost up "
                                                 f"to ${usd:.4f}")
            if why is not None:
                self._stop(self.phase, why)
                raise BudgetExhausted(why)
            ticket = next(self._tickets)
            self._reserved[ticket] = Reservation(self.phase, usd)
            return ticket

    def settle(self, ticket: int, cost_usd: float | None) -> None:
        with self._lock:
            res = self._reserved.pop(ticket)
            self._spent[res.phase] = self._spent.get(res.phase, 0.0) + (cost_usd or 0.0)

    def _refusal(self, phase: str | None, usd: float, what: str) -> str | None:
        for key, cap, spent, reserved in self._caps(phase):
            if spent + reserved + usd > cap:
                return (f"{key}={cap:g} reached: ${spent:.4f} spent, ${reserved:.4f} in calls in flight, and {what}")
        return None

    def _caps(self, phase: str | None) -> list[tuple[str, float, float, float]]:
        """(key, cap, spent, reserved in flight) of each cap that applies to `phase`."""
        caps = []
        if self.settings.max_usd is not None:
            caps.append(("budget.max_usd", self.settings.max_usd, sum(self._spent.values()),
                         sum(r.usd for r in self._reserved.values())))
        cap = self.settings.phase_max_usd.get(phase or "")
        if cap is not None:
            caps.append((f"budget.phase_max_usd.{phase}", cap, self._spent.get(phase, 0.0),
                         sum(r.usd for r in self._reserved.values() if r.phase == phase)))
        return caps

    def remaining(self, phase: str | None) -> float:
        """USD left to `phase` under every cap that applies (inf without a cap)."""
        with self._lock:
            return min((cap - spent - reserved for _, cap, spent, reserved in self._caps(phase)), default=math.inf)

    def afford(self, phase: str, low_usd: float | None, what: str) -> str | None:
        """Before a phase spends: None when `what`, projected to cost at least `low_usd`, fits what is left to the
        phase; else why not (and the phase is recorded as cut short by the budget)."""
        left = self.remaining(phase)
        if low_usd is None or low_usd <= left:
            return None
        why = (f"{what} is projected to cost at least ${low_usd:.4f} and ${max(left, 0.0):.4f} is left under "
               f"the budget")
        with self._lock:
            self._stop(phase, why)
        return why

    def afford_phase(self, phase: str, what: str) -> str | None:
        """afford() with the phase's own low projection."""
        usd = ((self.projection or {}).get("by_phase") or {}).get(phase)
        return self.afford(phase, usd[0] if usd else None, what)

    def _stop(self, phase: str | None, why: str) -> None:
        if phase is not None and phase not in self.stops:
            self.stops[phase] = why
            log.warning("budget: phase %s stops spending: %s", phase, why)

    def has_room(self, phase: str) -> bool:
        """Whether `phase` can pay for at least its cheapest call now."""
        left = self.remaining(phase)
        return left > 0 and left >= self.floors.get(phase, 0.0)

    def stopped_in(self, phase: str) -> str | None:
        return self.stops.get(phase)

    def clear_stop(self, phase: str) -> None:
        self.stops.pop(phase, None)

    def spent(self) -> float:
        with self._lock:
            return sum(self._spent.values())

    # -- compute ---------------------------------------------------------------------------------------
    def admit_node(self, node_id: str, gpu_share: float, limit_s: float) -> str | None:
        """None when a node holding `gpu_share` for up to `limit_s` fits budget.max_gpu_hours; else why not."""
        cap = self.settings.max_gpu_hours
        if cap is None or gpu_share <= 0:
            return None
        need = gpu_share * limit_s / 3600
        with self._lock:
            held = sum(self._gpu_reserved.values())
            if self._gpu_spent + held + need > cap:
                why = (f"budget.max_gpu_hours={cap:g} reached: {self._gpu_spent:.3f} GPU-hours used, {held:.3f} "
                       f"held by running nodes at their time limit, and the next node could use {need:.3f}")
                self._stop(self.phase, why)
                return why
            self._gpu_reserved[node_id] = need
        return None

    def node_done(self, node: Any, cpus: float, gpu_share: float) -> None:
        """A node program that ran (search.node.Node): its hours go in the compute ledger."""
        with self._lock:
            self._gpu_reserved.pop(node.id, None)
        if node.operator == "copy" or node.submitted_at is None:
            return  # a stage's starting copy, or a proposal that never ran
        row = NodeHours.of(node, cpus, gpu_share)
        self.compute.append(row)
        with self._lock:
            self._gpu_spent += row.gpu_hours

    # -- the record --------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """summary.json's `budget`: the caps, what was spent (in total and by phase), and whether and why the
        budget cut the run short."""
        s = self.settings
        with self._lock:
            spent = dict(self._spent)
        phases = [p for p in PHASES if p in spent or p in s.phase_max_usd or p in self.stops]
        stop = next((self.stops[p] for p in PHASES if p in self.stops), None)
        return {
            "max_usd": s.max_usd, "spent_usd": round(sum(spent.values()), 6),
            "max_gpu_hours": s.max_gpu_hours, "gpu_hours": round(self._gpu_spent, 4),
            "stopped": stop is not None, "why": stop,
            "by_phase": {p: {"spent_usd": round(spent.get(p, 0.0), 6), "max_usd": s.phase_max_usd.get(p),
                             "stopped": self.stops.get(p)} for p in phases},
            "projection": self.projection,
        }

    def compute_summary(self) -> dict[str, Any]:
        return compute_summary(self.compute.rows())
