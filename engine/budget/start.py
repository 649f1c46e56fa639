"""The budget at start-up, before any call: the projection is printed, and caps that cannot work are refused
(a model without prices under a dollar cap, a cap smaller than one call). `pipeline.dry_run=true` prints the plan
and the projection and stops there."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from engine.budget.guard import Budget
from engine.budget.projection import Line, Projection, project
from engine.budget.settings import BudgetSettings
from engine.errors import EngineError
from engine.llm.ledger import SCHEMA
from engine.phase import PipelineSettings

if TYPE_CHECKING:
    from engine.config import RunConfig

log = logging.getLogger(__name__)


def open_budget(cfg: RunConfig, run_dir: Path) -> Budget:
    """The run's budget, with what earlier invocations of the run spent; EngineError for a cap that cannot work."""
    settings = cfg.section("budget", BudgetSettings)
    projection = project(cfg, settings, run_dir.parent, run_dir)
    check_caps(cfg, settings, projection)
    budget = Budget(settings, run_dir, ledger_rows(run_dir))
    budget.projection = projection.to_dict()
    budget.floors = {p: min(f for f, ln in call_floors(cfg, projection) if ln.phase == p)
                     for p in {ln.phase for ln in projection.lines}}
    if projection.lines:
        log.info("%s", projection.text())
    total = projection.total_usd()
    if settings.max_usd is not None and total is not None and total[1] > settings.max_usd:
        log.warning("the projected cost ($%.2f - $%.2f) is above budget.max_usd=%g: the run stops spending at the cap "
                    "(running nodes finish; the phases left take their offline path), and a resume with a larger "
                    "cap carries on", total[0], total[1], settings.max_usd)
    if budget.spent() > 0:
        log.info("budget: $%.4f spent by this run before this invocation", budget.spent())
    return budget


def check_caps(cfg: RunConfig, settings: BudgetSettings, projection: Projection) -> None:
    """Refuse a dollar cap over models without prices, and a cap smaller than one call, naming the key."""
    caps = ([("budget.max_usd", settings.max_usd, None)] if settings.max_usd is not None else []) + \
        [(f"budget.phase_max_usd.{p}", cap, p) for p, cap in settings.phase_max_usd.items()]
    for key, cap, phase in caps:
        lines = [ln for ln in projection.lines if phase is None or ln.phase == phase]
        unpriced = next((ln.model for ln in lines if ln.usd is None), None)
        if unpriced is not None:
            raise EngineError(f"no prices known for {unpriced}: set model.prices.* (or the prices in its conf/model "
                              f"file) or remove {key}; a cap cannot count a model whose cost is unknown")
        floors = [(f, ln) for f, ln in call_floors(cfg, projection) if phase is None or ln.phase == phase]
        if floors:
            floor, ln = min(floors, key=lambda f: f[0])
            if cap < floor:
                out = cfg.roles[ln.calls.role].output_limit(cfg.llm.max_tokens)
                raise EngineError(
                    f"{key}={cap:g} is smaller than one call: the cheapest call of this run (role {ln.calls.role}, "
                    f"model {ln.model}) may cost up to ${floor:.4f} ({ln.tokens.input[0]} input tokens and up to "
                    f"{out} output tokens, llm.max_tokens); raise the cap or lower llm.max_tokens\n"
                    f"{projection.text()}")


def call_floors(cfg: RunConfig, projection: Projection) -> list[tuple[float, Line]]:
    """For each line of the projection, the most one of its calls may cost (the budget's bound of a call: its low
    input and its whole output limit)."""
    out = []
    for ln in projection.lines:
        spec = cfg.roles[ln.calls.role]
        out.append((spec.prices.cost(ln.tokens.input[0], spec.output_limit(cfg.llm.max_tokens), 0) or 0.0, ln))
    return out


def ledger_rows(run_dir: Path) -> list[dict]:
    """The model calls this run made before (a resume), without creating a ledger for an offline run."""
    folder = run_dir / "llm" / "ledger"
    parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    return pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in parts]).to_pylist() if parts else []


def dry_run_text(cfg: RunConfig, projection: Projection) -> str:
    """The plan of a run without running it: phases, stages and their budgets, the model of each role, the caps
    and the projection."""
    settings = cfg.section("budget", BudgetSettings)
    offline = not cfg.roles
    lines = ["dry run (pipeline.dry_run=true): nothing runs and no model is called", "",
             f"topic: {cfg.topic.name}; phases: {', '.join(PipelineSettings.of(cfg).phases)}; proposer: "
             f"{cfg.proposer}; {cfg.cluster.slots} slots ({cfg.cluster.kind})"]
    lines.append("stages (node budget " + ("offline" if offline else "with a model") + "): " + ", ".join(
        f"{n} {cfg.stages.settings[n].budget(offline)}" for n in cfg.stages.run) +
        f"; {cfg.stages.num_seeds} seeds per stage's best")
    lines.append("models by role:" if cfg.roles else "models: none (offline: the template's seed ideas, the offline "
                                                      "proposer, a results report, no review)")
    for role, spec in cfg.roles.items():
        p = spec.prices
        price = "no prices" if p.input is None or p.output is None else \
            f"${p.input:g} / ${p.output:g} per million input / output tokens"
        lines.append(f"  {role:9s} {spec.name} ({spec.base_url or spec.provider}; {price})")
    caps = [f"budget.max_usd={settings.max_usd:g}" if settings.max_usd is not None else "no dollar cap"]
    caps += [f"budget.phase_max_usd.{p}={c:g}" for p, c in settings.phase_max_usd.items()]
    caps += [f"budget.max_gpu_hours={settings.max_gpu_hours:g}"] if settings.max_gpu_hours is not None else []
    lines += [f"budget: {'; '.join(caps)}", "",
              projection.text() if projection.lines else "projected cost: $0 (no model calls)"]
    try:
        check_caps(cfg, settings, projection)
    except EngineError as e:
        lines += ["", f"this run would be refused at start-up: {str(e).splitlines()[0]}"]
    total = projection.total_usd()
    if settings.max_usd is not None and total is not None and total[1] > settings.max_usd:
        lines += ["", f"the projection is above budget.max_usd={settings.max_usd:g}: the run would stop spending at "
                      "the cap and wind down (a resume with a larger cap carries on)"]
    return "\n".join(lines)
