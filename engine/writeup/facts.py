"""The run's facts, read from the run directory only: what the writeup may state, and every number it may quote.

`collect_facts(run_dir)` reads idea.json, summary.json (with its `result` and `ablations` when the run wrote
them), stages/<name>/summary.json, the nodes' final_info.json files, tree.json and the best program's settings.
`RunFacts.ledger` holds every number found there with its meaning (ledger.py); the integrity check traces the
paper's numbers back to it (tracing.py)."""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.rundir import read_json
from engine.writeup.ledger import Ledger, build_ledger
from search.metric import finite_number


@dataclass(frozen=True)
class Change:
    """One node of a stage: what it tried and what it gave."""
    step: int
    operator: str
    change: str
    plan: str
    value: float | None
    buggy: bool
    bug_reason: str


@dataclass(frozen=True)
class StageFacts:
    name: str
    title: str
    goal: str
    budget: int | None
    nodes: int
    best_value: float | None
    best_step: int | None
    completed: bool
    why: str
    start_value: float | None
    history: tuple[Change, ...]
    seed_mean: float | None
    seed_stderr: float | None
    seeds_ok: int | None
    seeds_asked: int | None
    seed_note: str  # "" when seeds ran; else why not ("skipped: stages.num_seeds=1")
    seed_param: str | None
    seed_aggregate: dict[str, dict[str, float]]
    seed_plot: str | None


@dataclass
class RunFacts:
    run_dir: Path
    topic: str
    profile: str | None
    proposer: str
    idea: dict[str, Any]
    metric: str
    direction: str
    baseline: float | None
    baseline_source: str
    best: dict[str, Any]
    improvement: float | None
    nodes: dict[str, Any]
    wall_time_s: float | None
    cost_usd: float | None
    stages: list[StageFacts]
    node_metrics: dict[str, dict[str, Any]]  # node folder -> its final_info.json
    settings: dict[str, Any]  # the best program's hyperparameters (argparse defaults / constants)
    ledger: Ledger  # every number of the records with its meaning
    result: dict[str, Any] | None  # summary.json `result`: the chosen node on fresh seeds (None in older runs)
    ablations: list[dict[str, Any]]  # summary.json `ablations`: each ablation's effect ([] in older runs)

    def best_metrics(self) -> dict[str, Any]:
        """final_info.json of the best node, or {}."""
        node_id = str(self.best.get("node_id") or "")
        return next((info for folder, info in self.node_metrics.items() if folder.endswith(node_id) and node_id),
                    {})

    def prompt_text(self) -> str:
        """The facts as a compact text for the model (every number in it can be quoted)."""
        lines = self.outcome_lines() + [
            f"Primary metric: {self.metric} ({self.direction}). Single runs: the baseline program "
            f"{fmt(self.baseline)} ({self.baseline_source}); the chosen node {fmt(self.best.get('value'))} "
            f"(one run, stage {self.best.get('stage')}, node step {self.best.get('step')}): "
            f"{self.best.get('plan', '')}",
            f"Nodes: {self.nodes.get('total')} programs in all, {self.nodes.get('good')} good, "
            f"{self.nodes.get('buggy')} buggy. Proposer: {self.proposer}. Template profile: {self.profile}. "
            f"Wall time: {fmt(self.wall_time_s)} s."]
        if self.settings:
            lines.append("Settings of the best program: " + ", ".join(f"{k} = {v}" for k, v in self.settings.items()))
        for s in self.stages:
            seeds = (f"{fmt(s.seed_mean)} ± {fmt(s.seed_stderr)} (mean ± stderr over {s.seeds_ok} seeds)"
                     if s.seed_mean is not None else s.seed_note or "none")
            lines.append(f"\nStage {s.name} ({s.title}): budget {s.budget}, {s.nodes} nodes, best {fmt(s.best_value)}, "
                         f"started from {fmt(s.start_value)}; seeds: {seeds}; ended: {s.why}")
            for c in s.history:
                what = c.change or c.operator
                bug = f" BUGGY: {c.bug_reason}" if c.buggy else ""
                lines.append(f"  - step {c.step} {c.operator} [{what}]: {c.plan} -> {fmt(c.value)}{bug}")
            for metric, agg in s.seed_aggregate.items():
                lines.append(f"  seed aggregate {metric}: {fmt(agg.get('mean'))} ± {fmt(agg.get('stderr'))} "
                             f"(n={agg.get('n')})")
        best = self.best_metrics()
        if best:
            lines.append("\nMetrics of the best node (final_info.json, means ± stderrs):")
            for group, block in best.items():
                if isinstance(block, dict) and isinstance(block.get("means"), dict):
                    errs = block.get("stderrs") or {}
                    lines.append(f"  {group}: " + ", ".join(
                        f"{k} {fmt(v)} ± {fmt(errs.get(k))}" for k, v in block["means"].items()))
        return "\n".join(lines)


    def outcome_lines(self) -> list[str]:
        """The run's result on fresh seeds and its ablations (summary.json `result`, `ablations`), when recorded."""
        lines = []
        r = self.result or {}
        if r:
            base = r.get("baseline") or {}
            lines.append(f"The run's result (what the paper claims): node step {r.get('step')}, stage "
                         f"{r.get('stage')}, chosen on {r.get('chosen_by')}, measured on {r.get('n')} fresh seeds "
                         "that no decision saw: "
                         f"{r.get('metric') or self.metric} mean {fmt(r.get('mean'))} ± {fmt(r.get('stderr'))} "
                         f"(stderr), 95% CI {_interval(r.get('ci95'))}; the baseline on the same seeds: mean "
                         f"{fmt(base.get('mean'))} ± {fmt(base.get('stderr'))}, 95% CI {_interval(base.get('ci95'))}. "
                         f"Against the baseline: {(r.get('improvement') or {}).get('text') or 'not compared'}."
                         + (f" ({r['single_run']}.)" if r.get("single_run") else ""))
            for name, held in (r.get("held_out") or {}).items():
                lines.append(f"  held-out metric {name}: mean {fmt(held.get('mean'))} ± {fmt(held.get('stderr'))}, "
                             f"95% CI {_interval(held.get('ci95'))}")
        for a in self.ablations:
            lines.append(f"Ablation {a.get('name')} ({a.get('change')}): mean {fmt(a.get('mean'))} ± "
                         f"{fmt(a.get('stderr'))} over {a.get('n')} seeds, delta against the result "
                         f"{fmt(a.get('delta'))} (95% CI {_interval(a.get('ci95_delta'))}): {a.get('verdict')}")
        return lines


def _interval(ci: Any) -> str:
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 else "n/a"


def fmt(x: Any) -> str:
    """A number as the writeup prints it: integers whole, others to 4 significant digits (no exponent >= 1e-4)."""
    if x is None:
        return "n/a"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if not math.isfinite(x):
        return str(x)
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    if abs(x) >= 1000:
        return f"{x:.1f}"
    return f"{x:.4g}"


def collect_facts(run_dir: Path) -> RunFacts:
    """The facts of the run in `run_dir`; EngineError when it has no experiment summary."""
    summary = read_json(run_dir / "summary.json")
    if not summary or "primary_metric" not in summary:
        raise EngineError(f"{run_dir}: no experiment results (summary.json missing or incomplete): run the "
                          "experiments phase first")
    stages, records = [], {}
    for st in summary.get("stages") or []:
        record = read_json(run_dir / "stages" / str(st["name"]) / "summary.json") or {}
        records[str(st["name"])] = record
        stages.append(_stage(st, record))
    node_metrics: dict[str, dict[str, Any]] = {}
    for info in sorted((run_dir / "nodes").glob("*/run_*/final_info.json")) + \
            sorted((run_dir / "nodes").glob("*/final_info.json")):
        data = read_json(info)
        if isinstance(data, dict):
            node_metrics.setdefault(info.relative_to(run_dir / "nodes").parts[0], data)
    settings = program_settings(run_dir / "best" / "experiment.py")
    metric = summary["primary_metric"]
    result = summary.get("result") if isinstance(summary.get("result"), dict) else None
    ablations = [a for a in summary.get("ablations") or [] if isinstance(a, dict)]
    programs = {"best/experiment.py": settings}
    base = re.search(r"node (\d+)", str(summary.get("baseline_source") or ""))
    for code in sorted((run_dir / "nodes").glob(f"{int(base.group(1)):04d}-*/experiment.py")) if base else []:
        programs[str(code.relative_to(run_dir))] = program_settings(code)  # the setup a paper describes
    ledger = build_ledger(summary, records, node_metrics, read_json(run_dir / "tree.json"), programs)
    return RunFacts(run_dir=run_dir, topic=str(summary.get("topic", "")), profile=summary.get("profile"),
                    proposer=str(summary.get("proposer", "")), idea=read_json(run_dir / "idea.json") or {},
                    metric=str(metric.get("name")), direction=str(metric.get("direction")),
                    baseline=summary.get("baseline"), baseline_source=str(summary.get("baseline_source", "")),
                    best=summary.get("best") or {}, improvement=summary.get("improvement_over_baseline"),
                    nodes=summary.get("nodes") or {}, wall_time_s=summary.get("wall_time_s"),
                    cost_usd=summary.get("cost_usd"), stages=stages, node_metrics=node_metrics, settings=settings,
                    ledger=ledger, result=result, ablations=ablations)


def program_settings(path: Path) -> dict[str, Any]:
    """A program's hyperparameters: argparse defaults (`--name ... default=value`) and UPPER_CASE constants."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return {}
    found: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args:
            name = node.args[0]
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            if isinstance(name, ast.Constant) and isinstance(default, ast.Constant) \
                    and isinstance(default.value, (int, float, str)) and not isinstance(default.value, bool):
                found[str(name.value).lstrip("-")] = default.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id.isupper() and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, (int, float)) and not isinstance(node.value.value, bool):
            found[node.targets[0].id] = node.value.value
    return {k: v for k, v in found.items() if k not in ("out_dir",)}


def _stage(st: dict[str, Any], rec: dict[str, Any]) -> StageFacts:
    seeds = rec.get("seeds") or {}
    history = tuple(Change(int(h.get("step", -1)), str(h.get("operator", "")), str(h.get("change") or ""),
                           str(h.get("plan") or ""), finite_number(h.get("value")), bool(h.get("buggy")),
                           str(h.get("bug_reason") or "")) for h in rec.get("history") or [])
    best = rec.get("best") or {}
    start = rec.get("started_from") or {}
    return StageFacts(
        name=str(st["name"]), title=str(st.get("title") or rec.get("title") or st["name"]),
        goal=str(rec.get("goal", "")), budget=rec.get("budget"), nodes=int(st.get("nodes") or rec.get("nodes") or 0),
        best_value=finite_number(st.get("best_value")), best_step=best.get("step"),
        completed=bool(st.get("completed")), why=str(st.get("why") or rec.get("why") or ""),
        start_value=finite_number(start.get("value")), history=history, seed_mean=finite_number(st.get("seed_mean")),
        seed_stderr=finite_number(st.get("seed_stderr")), seeds_ok=seeds.get("ok"), seeds_asked=seeds.get("asked"),
        seed_note=f"skipped: {seeds['skipped']}" if seeds.get("skipped") else "",
        seed_param=seeds.get("param"), seed_aggregate=dict(seeds.get("aggregate") or {}), seed_plot=seeds.get("plot"))


