"""What a run claims, as summary.json states it: `result` (the chosen node measured on fresh seeds, against its
baseline on the same seeds, with the held-out metrics) and `ablations` (each ablation's paired effect)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search.journal import Journal
from search.metric import MetricSpec
from search.node import Node
from stages import effects
from stages.ablations import AblationPolicy
from stages.result import SINGLE_RUN, FinalEvaluation


def result_record(final: FinalEvaluation, spec: MetricSpec, journal: Journal) -> dict[str, Any]:
    """The `result` of summary.json; values not in yet are left out of the statistics (`pending` counts them)."""
    node, repeated = final.result, final.param is not None
    values = final.values(final.result_runs) if repeated else [node.metric]
    base_values = final.values(final.baseline_runs) if repeated and final.baseline_runs.runs else []
    pending = sum(1 for n in final.result_runs.runs + final.baseline_runs.runs if n.id not in journal)
    rec: dict[str, Any] = {
        "node_id": node.id, "step": node.step, "stage": node.stage, "metric": spec.name,
        "direction": spec.direction, **effects.interval(values),
        "seeds": final.fresh, "selection_seeds": final.choice.get("selection_seeds", []),
        "chosen_by": final.choice.get("chosen_by"), "reason": final.choice.get("reason"),
        "candidates": final.choice.get("candidates", []), "pending_runs": pending,
        "single_run": None if repeated else SINGLE_RUN,
        "baseline": None, "improvement": None, "held_out": held_out(final.result_runs.runs if repeated else [node]),
    }
    if final.baseline is not None and final.baseline.code == node.code:
        rec["baseline"] = {"node_id": final.baseline.id, "step": final.baseline.step, **effects.interval(values)}
        rec["improvement"] = {"mean": 0.0, "ci95": None, "n": rec["n"], "significant": False,
                              "text": "the result is the baseline's own program: no change beat it on the seed means"}
    elif final.baseline is not None and base_values:
        rec["baseline"] = {"node_id": final.baseline.id, "step": final.baseline.step, **effects.interval(base_values)}
        # the result minus the baseline, seed by seed, in the metric's units (its direction says which sign is better)
        diff = effects.paired(values, base_values)
        rec["improvement"] = diff | {"text": effects.improvement_text(diff, spec.maximize, spec.name)}
    elif final.baseline is not None:
        rec["baseline"] = {"node_id": final.baseline.id, "step": final.baseline.step,
                           "skipped": final.baseline_runs.plan.get("skipped")}
    return rec


def held_out(runs: Sequence[Node]) -> dict[str, Any]:
    """Each held-out metric over the final evaluation's runs: mean, stderr, ci95, n."""
    names = sorted({k for n in runs if n.held_out for k in n.held_out})
    return {name: effects.interval([n.held_out.get(name) for n in runs if n.held_out and not n.is_buggy])
            for name in names}


def ablation_records(stage: AblationPolicy, final: FinalEvaluation, spec: MetricSpec,
                     journal: Journal) -> list[dict[str, Any]]:
    """Each ablation's effect: its metric on the fresh seeds minus the result's, seed by seed."""
    result_values = final.values(final.result_runs) if final.param is not None else [final.result.metric]
    rows = []
    for node in sorted(stage.ablations(), key=lambda n: n.step):
        ev = stage.effect_runs.get(node.id)
        own = None if node.is_buggy else node.metric
        values = [own] + ([None if r.is_buggy or r.id not in journal else r.metric for r in ev.runs] if ev else [])
        stats = effects.interval(values)
        delta = effects.paired(values, result_values[:len(values)])
        rows.append({"name": node.change or (node.plan.splitlines()[0][:80] if node.plan else f"node {node.step}"),
                     "node_id": node.id, "step": node.step, "change": node.change, "buggy": bool(node.is_buggy),
                     "mean": stats["mean"], "stderr": stats["stderr"], "n": stats["n"], "delta": delta["mean"],
                     "ci95_delta": delta["ci95"], "significant": delta["significant"],
                     "verdict": "failed to run" if node.is_buggy else effects.verdict(delta, spec.maximize)})
    return rows


def result_line(result: dict[str, Any]) -> str:
    """The run's result in one line: the fresh-seed mean with its interval, and how it compares with the baseline."""
    if not result or result.get("mean") is None:
        return "result: none (no working node)"
    metric, n = result.get("metric"), result.get("n")
    if n and n > 1 and result.get("ci95"):
        lo, hi = result["ci95"]
        value = f"{result['mean']:.4g} ± {result['stderr']:.2g} (95% CI {lo:.4g} to {hi:.4g}; {n} fresh seeds)"
    else:
        value = f"{result['mean']:.4g} ({result.get('single_run') or 'one run'})"
    versus = (result.get("improvement") or {}).get("text") or "no baseline to compare with"
    return f"result: node {result['step']} (stage {result['stage']}): {metric} = {value}; {versus}"
