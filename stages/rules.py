"""When a stage is complete, what it asks the proposer for, and the account of a stage that failed."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from search.journal import Journal
from search.metric import MetricSpec, MetricValue
from search.node import Node, node_record
from search.operators import StageBrief
from stages.evaluation import Evidence
from stages.spec import StageSettings, stage_goal


def completion(stage: StageSettings, view: Journal, start: Node | None, spec: MetricSpec,
               critique: bool, evidence: Evidence | None = None, z: float = 0.0) -> str | None:
    """Why the stage is complete before its budget, or None. `view` holds the stage's nodes (and its start);
    `critique` tells whether a vision model judges plots (the stage-2 stability check needs it); `evidence` is the
    starting node's seed evaluation: with it (and z > 0) a node beats the start only by more than the noise."""
    if stage.run_to_budget:
        return None
    if stage.name == "initial":
        good = view.best_node(spec)
        return None if good is None else f"node {good.step} works ({spec.name} = {good.metric:.4g})"
    if stage.name == "tuning" and start is not None:
        base = MetricValue(start.metric, spec)
        noisy = evidence is not None and z > 0
        for node in view.ranked_good_nodes(spec):
            if node.id == start.id or not MetricValue(node.metric, spec) > base:
                continue
            if noisy:
                above, account = beats(node, evidence, spec, z)
                if not above:
                    continue
                vs = f"{node.metric:.4g}, {account}"
            else:
                vs = f"{node.metric:.4g} vs {start.metric:.4g}" + ("" if z <= 0 else "; the start's seed spread is "
                                                                    "unknown, so the single runs were compared")
            if not critique:
                return (f"node {node.step} ({node.change or 'a change'}) beats the starting node on {spec.name} "
                        f"({vs}); curve stability not judged: no vision model")
            if node.plots_valid:
                return (f"node {node.step} ({node.change or 'a change'}) beats the starting node on {spec.name} "
                        f"({vs}) and its curves were judged stable")
    return None  # stages 3 and 4 run to their budget (or until no named change is left)


def beats(node: Node, evidence: Evidence, spec: MetricSpec, z: float) -> tuple[bool, str]:
    """Whether one run of `node` is better than the start's seed mean by more than the noise margin, and the
    account (the evidence the decision rests on)."""
    margin = evidence.margin(z)
    gain = (node.metric - evidence.mean) if spec.maximize else (evidence.mean - node.metric)
    verdict = "above" if gain > margin else "within"
    return gain > margin, (f"start {evidence.text()}; difference {gain:+.4g} {verdict} the noise margin "
                           f"{margin:.3g} = {z:g} sd x sqrt(1 + 1/{evidence.n})")


def near_best(view: Journal, spec: MetricSpec, tolerance: float) -> list[Node]:
    """The good nodes within `tolerance` (relative) of the best, best first: candidates for a model tie-break."""
    ranked = view.ranked_good_nodes(spec)
    if not ranked or tolerance <= 0:
        return ranked[:1]
    top = ranked[0].metric
    return [n for n in ranked if abs(n.metric - top) <= tolerance * max(abs(top), 1e-12)]


def brief(stage: StageSettings, view: Journal, pending: Sequence[Node], suggestions: Sequence[str] = (),
          notes: str = "") -> StageBrief:
    """What the proposer is asked for now; `taken` counts running nodes too, so two never pick one name."""
    taken = frozenset(n.change for n in list(view) + list(pending)
                      if n.change and n.operator in ("improve", "debug"))
    return StageBrief(stage.name, stage_goal(stage.name), stage.change_kind, taken, tuple(suggestions), notes)


def scale_up_note(best: Node | None, timeout_s: float, fraction: float) -> str:
    """The stage-3 signal: runs finish far below the time limit, so there is room for a larger experiment
    (none without a time limit: timeout_s is math.inf)."""
    if best is None or best.exec.exec_time_s <= 0 or best.exec.exec_time_s >= fraction * timeout_s \
            or timeout_s == float("inf"):
        return ""
    return (f"Runs finish far below the time limit: the best run took {best.exec.exec_time_s:.0f} s of "
            f"{timeout_s:.0f} s. Scale up (more training steps, data or model size) where it serves the idea.")


def failure_account(view: Journal, budget: int) -> str:
    """Why no node of a stage worked: the causes, most common first, with the latest message of each."""
    buggy = sorted(view.buggy_nodes, key=lambda n: n.step)
    if not buggy:
        return f"no node produced the primary metric in {budget} tries"
    causes = Counter(_cause(n) for n in buggy)
    latest = {_cause(n): n for n in buggy}
    lines = [f"no working node in {len(view)} tries (budget {budget}):"]
    for cause, count in causes.most_common():
        n = latest[cause]
        lines.append(f"  {count} x {cause}; latest, node {n.step}: {n.bug_reason[:300]}")
    return "\n".join(lines)


def _cause(node: Node) -> str:
    if node.exec.killed_reason:
        return f"killed ({node.exec.killed_reason})"
    return node.exec.exc_type or node.bug_reason.split(":", 1)[0] or "unknown"


def history(view: Journal, start: Node | None, spec: MetricSpec) -> list[dict]:
    """Every node of the stage in order: what it tried and what it gave, relative to the starting node (the node
    record's fields, search/node.py, with the value and the gain over the start)."""
    rows = []
    for n in sorted(view, key=lambda n: n.step):
        delta = None
        if start is not None and n.metric is not None and start.metric is not None and not n.is_buggy:
            delta = (n.metric - start.metric) if spec.maximize else (start.metric - n.metric)
        rec = node_record(n, ("step", "id", "operator", "change", "plan", "bug_reason", "plots_valid"))
        rows.append(rec | {"plan": n.plan.splitlines()[0][:200] if n.plan else "", "bug_reason": n.bug_reason[:200],
                           "value": None if n.is_buggy else n.metric, "improvement_over_start": delta,
                           "buggy": bool(n.is_buggy)})
    return rows
