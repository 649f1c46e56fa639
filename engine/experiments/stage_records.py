"""The stage records of a run directory, written as the stage plan reports its events.

    stages/<name>/search.json    the stage's decision (the node it hands on, why, on what evidence), written when its
                                 search is over: a resumed run does not decide again
    stages/<name>/summary.json   the finished stage's record, written when its seed runs are in (marks it done)
    stages/<name>/seeds.png, seeds.parquet   the seed evaluation
    final/search.json            the run's result as chosen (on seed means) and the fresh seeds it is measured on
    final/summary.json           the result and the ablations once every run is in (summary.json quotes them)

The decisions themselves are made in stages/ (policy.py, plan.py, result.py); this module only writes them down,
plots the seeds and tells the tracker.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.experiments.seed_plot import plot_seeds
from engine.rundir import RunDir, read_json, write_json
from engine.tracking import Tracker
from search.journal import Journal
from search.metric import MetricSpec, flatten_final_info
from stages import rules, seeds
from stages.outcome import result_line
from stages.plan import Concluded, Decided, Finished, ResultChosen, Started
from stages.policy import StagePolicy
from stages.result import FinalEvaluation
from stages.spec import stage_goal

log = logging.getLogger(__name__)


class StageRecords:
    def __init__(self, run: RunDir, journal: Journal, spec: Callable[[], MetricSpec | None], tracker: Tracker,
                 critique: bool):
        self.run, self.journal, self.spec, self.tracker, self.critique = run, journal, spec, tracker, critique

    def folder(self, name: str) -> Path:
        """stages/<name>/, or final/ for the run's result (`name` "final")."""
        return self.run.path / "final" if name == "final" else self.run.path / "stages" / name

    def saved(self, name: str) -> tuple[dict | None, dict | None]:
        """(record, decision) saved for a stage: summary.json and search.json, either None."""
        return read_json(self.folder(name) / "summary.json"), read_json(self.folder(name) / "search.json")

    def __call__(self, events: list[Any]) -> None:
        for ev in events:
            if isinstance(ev, ResultChosen):
                self._result_chosen(ev.final)
                continue
            if isinstance(ev, Concluded):
                self._concluded(ev.record)
                continue
            stage: StagePolicy = ev.stage
            if isinstance(ev, Started):
                start = stage.start
                self.tracker.log_event("stage_start", {"stage": stage.name, "budget": stage.budget,
                                                       "start_value": start.metric if start else None})
                log.info("=== stage %s (%s): up to %d nodes%s", stage.name, stage.settings.title, stage.budget,
                         f", starting from node {ev.copy_of.step} ({start.metric:.4g})"
                         if ev.copy_of is not None and start is not None and start.metric is not None else "")
            elif isinstance(ev, Decided):
                write_json(self.folder(stage.name) / "search.json", stage.decision)
                log.info("=== stage %s decided: %s%s", stage.name, (stage.decision or {}).get("why"),
                         "" if stage.best is None else f"; hands on node {stage.best.step}")
            elif isinstance(ev, Finished):
                stage.record = self._record(stage)
                write_json(self.folder(stage.name) / "summary.json", stage.record)
                rec = stage.record
                self.tracker.log_event("stage_end", {"stage": stage.name, "completed": rec["completed"],
                                                     "nodes": rec["nodes"], "best": rec["best_value"],
                                                     "seed_mean": rec["seed_mean"], "seed_stderr": rec["seed_stderr"]})
                log.info("=== stage %s %s: %s", stage.name, "complete" if rec["completed"] else "ended", rec["why"])

    def _record(self, stage: StagePolicy) -> dict[str, Any]:
        d, spec, start = stage.decision or {}, self.spec(), stage.start
        best = stage.best
        seed_info = self._seeds(stage) if best is not None else \
            dict(stage.seed_plan) or {"skipped": "no working node to evaluate"}
        return {
            "name": stage.name, "title": stage.settings.title, "goal": stage_goal(stage.name), "budget": stage.budget,
            "nodes": len(stage.ran), "completed": d.get("completed"), "why": d.get("why"),
            "started_from": None if start is None else {"node_id": start.copied_from, "copy_id": start.id,
                                                        "value": start.metric},
            "start_evidence": d.get("start_evidence"),
            "best": d.get("best"), "best_value": best.metric if best else None, "tie_break": d.get("tie_break"),
            "seed_mean": seed_info.get("mean"), "seed_stderr": seed_info.get("stderr"), "seeds": seed_info,
            "plot_critique": "on" if self.critique else "skipped: no vision-capable model configured",
            "history": rules.history(stage.view, start, spec) if spec else [],
        }

    def _result_chosen(self, final: FinalEvaluation) -> None:
        """The result's choice, saved so that a resume measures the same node on the same fresh seeds."""
        write_json(self.folder("final") / "search.json", final.saved())
        node = final.result
        self.tracker.log_event("result_chosen", {"node": node.step, "stage": node.stage, "fresh_seeds": final.fresh})
        fresh = (f"now measured with the baseline on fresh seeds {final.param}={final.fresh}" if final.param
                 else "its program has no seed parameter: a single run, not repeated")
        log.info("=== result: node %d (stage %s), chosen on %s; %s", node.step, node.stage,
                 final.choice["chosen_by"], fresh)

    def _concluded(self, record: dict[str, Any]) -> None:
        write_json(self.folder("final") / "summary.json", record)
        result = record.get("result") or {}
        self.tracker.log_event("result", {k: result.get(k) for k in ("mean", "stderr", "n")} |
                               {"ci95_lo": (result.get("ci95") or [None])[0],
                                "ci95_hi": (result.get("ci95") or [None, None])[1]})
        log.info("=== %s", result_line(result))

    def _seeds(self, stage: StagePolicy) -> dict[str, Any]:
        plan, best, spec = stage.seed_plan, stage.best, self.spec()
        assert best is not None and spec is not None
        if "skipped" in plan or not plan:
            if plan.get("skipped"):
                log.warning("stage %s: multi-seed evaluation skipped: %s", stage.name, plan["skipped"])
            return dict(plan)
        param, asked = plan["param"], plan["asked"]
        members = [(plan["own_seed"], best)] + list(zip(plan["seeds"][1:], stage.seed_runs))
        ok = [(v, n) for v, n in members if not n.is_buggy and n.exec.final_info is not None]
        failed = [f"{param}={v}: {n.bug_reason[:200]}" for v, n in members if n.is_buggy]
        mean, stderr = seeds.mean_stderr([n.metric for _, n in ok])
        # the primary metric (as the stage compares nodes) first, then every metric of final_info.json
        primary = f"{spec.name} (primary, {spec.direction})"
        per_seed = [{primary: n.metric, **flatten_final_info(n.exec.final_info)} for _, n in ok]
        aggregate = {primary: {"mean": mean, "stderr": stderr, "n": len(ok)},
                     **seeds.aggregate([n.exec.final_info for _, n in ok])}
        folder = self.folder(stage.name)
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([{"seed": v, "node_id": n.id, "step": n.step, **row}
                                      for (v, n), row in zip(ok, per_seed)])
        pq.write_table(table, folder / "seeds.parquet")
        plot = plot_seeds(per_seed, aggregate, f"stage {stage.name}: node {best.step} over {len(ok)} seeds",
                          folder / "seeds.png") if ok else None
        if len(ok) < asked:
            log.warning("stage %s: %d of %d seeds succeeded; failed: %s", stage.name, len(ok), asked,
                        "; ".join(failed))
        log.info("stage %s: node %d over %d seeds: %s = %.4g ± %s", stage.name, best.step, len(ok), spec.name,
                 mean, "n/a" if stderr is None else f"{stderr:.3g}")
        return {"param": param, "asked": asked, "ok": len(ok), "seeds": [v for v, _ in members],
                "values": [n.metric for _, n in members], "node_ids": [n.id for _, n in members],
                "mean": mean, "stderr": stderr, "failed": failed, "aggregate": aggregate,
                "plot": None if plot is None else plot.relative_to(self.run.path).as_posix(),
                "table": (folder / "seeds.parquet").relative_to(self.run.path).as_posix()}

