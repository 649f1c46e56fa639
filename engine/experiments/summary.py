"""What the experiments phase says about itself while it runs and at its end: summary.json, tree.json, the viewer,
best/. Written after every result and at every stage event and exit."""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.experiments.setup import Experiment
from engine.llm.ledger import cost_summary
from engine.llm.service import LLM
from engine.nodes.driver import Driver, SearchState
from engine.rundir import RunDir, read_json, write_json
from engine.viewer import write_viewer
from search.measures import slot_utilization
from search.metric import MetricSpec
from search.node import RERUNS, TREE_FIELDS, Node, node_record
from stages.plan import StagePlan

log = logging.getLogger(__name__)
# summary.json keys the pipeline writes, kept as they are
PIPELINE_KEYS = ("phases", "idea", "paper", "review", "budget", "compute")


@dataclass
class Status:
    """Writes the status files of one search; `previous` is the summary of the run before a resume."""

    exp: Experiment
    run: RunDir
    state: SearchState
    proposer: str
    llm: LLM | None
    previous: dict[str, Any] | None
    plan: StagePlan | None = None  # set once the executor is up; the status files list its stages
    driver: Driver | None = None
    started: float = field(default_factory=time.monotonic)

    def write(self, status: str) -> dict[str, Any]:
        chosen = self.plan.chosen() if self.plan else None  # the best node as the stage records chose it
        prior = self.previous or {}
        wall = float(prior.get("wall_time_s", 0.0)) + time.monotonic() - self.started
        summary = make_summary(self.exp, self.state, wall, status, str(self.run.path), self.proposer, chosen)
        summary["stages"] = self.plan.rows() if self.plan else []
        for row in summary["stages"] if self.driver is not None and self.driver.stopped else []:
            if row["why"] == "running":  # a stage the budget stopped: undecided, a resume continues it
                row["why"] = f"stopped by the budget: {self.driver.stopped}"
        summary |= self.plan.outcome() if self.plan else {"result": None, "ablations": None}
        summary |= self._search_figures(prior)
        summary["dropped_proposals"] = len(self.run.dropped_ids())
        summary |= cost_summary(self.llm.ledger.rows() if self.llm and self.llm.ledger else [], self.run.dropped_ids())
        # the pipeline's keys (phases, idea, paper, review) stay as the pipeline wrote them
        saved = read_json(self.run.path / "summary.json") or {}
        summary = {k: v for k, v in saved.items() if k in PIPELINE_KEYS} | summary
        write_json(self.run.path / "summary.json", summary)
        write_json(self.run.path / "tree.json", tree_json(self.state))
        write_viewer(self.run, self.state.journal, summary)
        best = chosen[0] if chosen else self.state.journal.best_node(self.state.spec) if self.state.spec else None
        if best is not None:
            self.run.write_best(best)
        return summary

    def _search_figures(self, prior: dict[str, Any]) -> dict[str, Any]:
        """The search's wall time, slot use and driver overhead, continued across resumes."""
        slots = self.exp.cfg.cluster.slots
        driver = self.driver
        search_wall = float(prior.get("search_wall_s") or 0.0) + (time.monotonic() - driver.started if driver else 0)
        overhead = prior.get("driver_overhead_ms_median") if driver is None or not driver.overhead_s \
            else round(1000 * statistics.median(driver.overhead_s), 2)
        return {"search_wall_s": round(search_wall, 1), "slots": slots,
                "slot_utilization": slot_utilization(self.state.journal.nodes, slots, search_wall),
                "program_slot_utilization": slot_utilization(self.state.journal.nodes, slots, search_wall, "program"),
                "driver_overhead_ms_median": overhead}


def previous_spec(summary: dict[str, Any]) -> MetricSpec | None:
    pm = summary.get("primary_metric")
    return MetricSpec(pm["name"], pm["direction"]) if pm and pm.get("name") else None


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    return read_json(run_dir / "summary.json")


def make_summary(exp: Experiment, state: SearchState, wall_s: float, status: str, run_dir: str,
                 proposer: str, chosen: tuple[Node, dict[str, str]] | None = None) -> dict:
    """`chosen`: the best node and the rule that chose it (StagePlan.chosen); None: the best metric."""
    j, spec = state.journal, state.spec
    best, choice = chosen if chosen else (j.best_node(spec) if spec else None, {})
    if best is not None and not choice and spec is not None:
        choice = {"chosen_by": "metric", "reason": f"the best {spec.name} of the run"}
    searched = [n for n in j if n.operator not in ("copy", *RERUNS)]
    baseline, source = _baseline(exp, state)
    return {
        "topic": exp.cfg.topic.name,
        "template": str(exp.template.path),
        "profile": exp.profile,
        "proposer": proposer,
        "status": status,
        "run_dir": run_dir,
        "primary_metric": {"name": spec.name if spec else None, "direction": spec.direction if spec else None},
        "baseline": baseline,
        "baseline_source": source,
        # the node the search chose and ONE run of it; what the run claims is `result` (fresh seeds, an interval)
        "best": None if best is None else {"node_id": best.id, "step": best.step, "value": best.metric,
                                           "value_is": "a single run", "stage": best.stage, "plan": best.plan}
        | choice,
        # the programs the search wrote and ran; a stage's starting copies and the seed re-runs are counted apart
        "nodes": {"total": len(searched), "good": sum(1 for n in searched if n.is_buggy is False),
                  "buggy": sum(1 for n in searched if n.is_buggy),
                  "copies": sum(1 for n in j if n.operator == "copy"),
                  "seed_runs": sum(1 for n in j if n.operator == "seed"),
                  "final_runs": sum(1 for n in j if n.operator == "eval")},
        "wall_time_s": round(wall_s, 1),
    }


def _baseline(exp: Experiment, state: SearchState) -> tuple[float | None, str | None]:
    """The baseline's value and where it comes from: the template's run_0, else the template's code as node 0."""
    spec = state.spec
    if exp.template.baseline_final_info is not None and spec is not None:
        try:
            return spec.extract(exp.template.baseline_final_info), "template run_0/final_info.json"
        except (KeyError, ValueError):
            pass
    first = min(state.journal, key=lambda n: n.step, default=None)
    if first is not None and first.operator == "draft" and first.code == exp.base_code:
        return first.metric, f"node {first.step} (the template's code, unchanged)"
    return None, None


def tree_json(state: SearchState) -> dict[str, Any]:
    return {
        "primary_metric": None if state.spec is None else {"name": state.spec.name,
                                                          "direction": state.spec.direction},
        "nodes": [node_record(n, TREE_FIELDS) | {"children": [c.id for c in state.journal.children(n.id)]}
                  for n in state.journal],
    }
