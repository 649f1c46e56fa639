"""The four stages in order, each a tree search of its own seeded with the previous stage's best node.

Per stage: copy the previous best in (not run again), run a Driver over a journal view of the stage's nodes
until its completion rule or budget, re-run the stage's best with other seeds on the free slots, aggregate,
and write the stage's record to stages/<name>/summary.json. That file marks the stage as done: a resumed run
skips finished stages and continues the one without it.
"""
from __future__ import annotations

import copy
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine import interrupt
from engine.driver import Driver, SearchState
from engine.errors import EngineError
from engine.executor import Executor
from engine.node_exec import NodeJob, NodeOutcome
from engine.rundir import RunDir, write_json
from engine.seed_plot import plot_seeds
from engine.tracking import Tracker
from search.journal import Journal
from search.judge import judge
from search.metric import MetricSpec, MetricValue, flatten_final_info
from search.node import Node
from search.operators import Proposer, StageBrief
from search.policy import PolicyConfig
from stages import rules, seeds
from stages.spec import StagesConfig, StageSettings, stage_goal

log = logging.getLogger(__name__)


@dataclass
class StageContext:
    """What every stage of a run shares (built once by engine.experiments)."""

    run: RunDir
    state: SearchState  # the whole run: every node of every stage
    proposer: Proposer
    reviewer: Callable[[Node, NodeOutcome], tuple[bool, str]] | None
    executor: Executor
    make_job: Callable[[Node], NodeJob]
    infer_spec: Callable[[Node], MetricSpec | None]  # None: template-free and no working program yet
    on_finish: Callable[[Node, NodeOutcome], None]  # tracking and status files, after a node is recorded
    tracker: Tracker
    policy: PolicyConfig
    stages: StagesConfig
    offline: bool
    critique: bool  # a vision model judges plots
    seed: int
    proposal_concurrency: int
    timeout_s: float
    tunables: tuple[str, ...]  # names the template declares: suggestions for stage 2
    ablations: tuple[str, ...]  # ablation switches of the template: suggestions for stage 4
    seed_param: str | None  # the manifest's seed hyperparameter (None: look for a usual name)
    select: Callable[[list[Node], MetricSpec, str], tuple[Node, str]] | None = None  # model tie-break, if any


class StageRunner:
    def __init__(self, ctx: StageContext):
        self.ctx = ctx
        self.records: list[dict[str, Any]] = []  # finished stages
        self.current: dict[str, Any] | None = None  # the stage in progress, for the live summary
        self.overhead_s: list[float] = []  # driver time from a result to the next submission, every stage

    # -- the run ---------------------------------------------------------------------------------------
    def run(self, unfinished: list[Node]) -> list[dict[str, Any]]:
        """Run (or resume) every configured stage; stops after a stage that found no working node."""
        previous: Node | None = None
        for name in self.ctx.stages.run:
            settings = self.ctx.stages.settings[name]
            saved = self._record_file(name)
            if saved.is_file():
                record = json.loads(saved.read_text())
                log.info("stage %s finished before the resume: %s", name, record["why"])
            else:
                record = self._run_stage(settings, previous, [n for n in unfinished if n.stage == name])
            self.records.append(record)
            self.current = None
            if record["best"] is None:
                break
            previous = self.ctx.state.journal.get(record["best"]["node_id"])
        return self.records

    def summary_rows(self) -> list[dict[str, Any]]:
        keys = ("name", "title", "nodes", "best_value", "seed_mean", "seed_stderr", "completed", "why")
        rows = [{k: r.get(k) for k in keys} for r in self.records]
        if self.current is not None:
            rows.append(self.current)
        return rows

    # -- one stage -----------------------------------------------------------------------------------
    def _run_stage(self, settings: StageSettings, previous: Node | None, unfinished: list[Node]) -> dict[str, Any]:
        ctx, name = self.ctx, settings.name
        mine = [n for n in ctx.state.journal if n.stage == name and n.operator != "seed"]
        start = next((n for n in mine if n.operator == "copy"), None)
        if previous is not None and start is None:
            start = self._copy(previous, settings)
            mine.append(start)
        view = Journal(sorted(mine, key=lambda n: n.step))
        budget = settings.budget(ctx.offline)
        self.current = {"name": name, "title": settings.title, "nodes": 0, "best_value": None, "seed_mean": None,
                        "seed_stderr": None, "completed": None, "why": "running"}
        ctx.tracker.log_event("stage_start", {"stage": name, "budget": budget,
                                              "start_value": start.metric if start else None})
        log.info("=== stage %s (%s): up to %d nodes%s", name, settings.title, budget,
                 f", starting from node {start.step} ({start.metric:.4g})" if start and start.metric is not None
                 else "")

        stage_state = SearchState(view, ctx.state.spec, ctx.state.next_step)
        search_nodes = [n for n in unfinished if n.operator != "seed"]
        driver = self._driver(settings, stage_state, start, budget + (1 if start else 0))
        try:
            driver.search(resumed=search_nodes)
        finally:
            self.overhead_s += driver.overhead_s
            ctx.state.next_step = max(ctx.state.next_step, stage_state.next_step)
            ctx.state.spec = ctx.state.spec or stage_state.spec
        spec = ctx.state.spec
        assert spec is not None, "the first node names the metric, or the run stops with the reason"

        best, tie_break, choice = self._choose_best(view, spec, name)
        ran = [n for n in view if n.operator != "copy"]
        completed, why = self._verdict(settings, driver.stop_reason, driver.stopped_by_rule, view, start, budget,
                                       len(ran))
        self.current |= {"nodes": len(ran), "best_value": best.metric if best else None, "why": why}
        seed_info = self._seeds(settings, best, [n for n in unfinished if n.operator == "seed"]) if best else \
            {"skipped": "no working node to evaluate"}
        record = {
            "name": name, "title": settings.title, "goal": stage_goal(name), "budget": budget,
            "nodes": len(ran), "completed": completed, "why": why,
            "started_from": None if start is None else {"node_id": start.copied_from, "copy_id": start.id,
                                                        "value": start.metric},
            "best": None if best is None else {"node_id": best.id, "step": best.step, "value": best.metric,
                                               "change": best.change, "plan": best.plan} | choice,
            "best_value": best.metric if best else None, "tie_break": tie_break,
            "seed_mean": seed_info.get("mean"), "seed_stderr": seed_info.get("stderr"), "seeds": seed_info,
            "plot_critique": "on" if ctx.critique else "skipped: no vision-capable model configured",
            "history": rules.history(view, start, spec),
        }
        write_json(self._record_file(name), record)
        ctx.tracker.log_event("stage_end", {"stage": name, "completed": completed, "nodes": len(ran),
                                            "best": record["best_value"], "seed_mean": record["seed_mean"],
                                            "seed_stderr": record["seed_stderr"]})
        log.info("=== stage %s %s: %s", name, "complete" if completed else "ended", why)
        return record

    def _driver(self, settings: StageSettings, state: SearchState, start: Node | None, max_nodes: int) -> Driver:
        ctx = self.ctx
        policy = ctx.policy if start is None else replace(ctx.policy, num_drafts=1)  # the copy is the one root
        suggestions = {"tuning": ctx.tunables, "ablations": ctx.ablations}.get(settings.name, ())

        def brief(view: Journal, pending: list[Node]) -> StageBrief:
            notes = ""
            if settings.name == "agenda" and state.spec is not None:
                notes = rules.scale_up_note(view.best_node(state.spec), ctx.timeout_s, ctx.stages.scale_up_fraction)
            return rules.brief(settings, view, pending, suggestions, notes)

        def should_stop(view: Journal) -> str | None:
            return None if state.spec is None else rules.completion(settings, view, start, state.spec, ctx.critique)

        def infer(node: Node) -> MetricSpec | None:
            ctx.state.spec = ctx.infer_spec(node)
            return ctx.state.spec

        def on_finish(node: Node, outcome: NodeOutcome) -> None:
            ctx.state.journal.add(node)
            if self.current is not None and node.operator != "copy":
                self.current["nodes"] += 1
            ctx.on_finish(node, outcome)

        rng = random.Random(f"{ctx.seed}-{settings.name}-{len(state.journal)}")
        return Driver(ctx.run, state, ctx.proposer, policy, ctx.executor, ctx.make_job, max_nodes, settings.name,
                      rng, infer_spec=infer, on_finish=on_finish, proposal_concurrency=ctx.proposal_concurrency,
                      reviewer=ctx.reviewer, brief=brief, should_stop=should_stop,
                      anchor=start.id if settings.name == "ablations" and start else None)

    def _choose_best(self, view: Journal, spec: MetricSpec, stage: str) \
            -> tuple[Node | None, str | None, dict[str, str]]:
        """(best node, the tie-break's account or None, which rule chose it): the best node on the primary
        metric; among near-equal ones the select model may choose (once)."""
        near = rules.near_best(view, spec, self.ctx.stages.tie_break_tolerance)
        if not near:
            return None, None, {}
        by_metric = {"chosen_by": "metric", "reason": f"the best {spec.name} of stage {stage} ({near[0].metric:.6g})"}
        if len(near) < 2 or self.ctx.select is None:
            return near[0], None, by_metric
        try:
            chosen, reason = self.ctx.select(near, spec, stage)
        except EngineError:
            raise  # a configuration problem (a rejected key, a replay that does not match): stop the run
        except Exception as e:  # noqa: BLE001 - without the model's choice the metric decides
            log.warning("stage %s: model tie-break failed (%s); the best metric decides", stage, e)
            return near[0], None, by_metric | {"reason": f"{by_metric['reason']}; the model tie-break failed: {e}"}
        why = (f"the model chose node {chosen.step} among {len(near)} nodes within "
               f"{self.ctx.stages.tie_break_tolerance:.0%} of the best: {reason}")
        log.info("stage %s: %s", stage, why)
        return chosen, why, {"chosen_by": "model tie-break", "reason": why}

    def chosen_best(self) -> tuple[Node, dict[str, str]] | None:
        """The run's best node and the rule that chose it, as the stage records say: the choice of the last
        finished stage (every stage starts from the one before, so it carries the run's best forward), unless a
        node of the stage still running beats it on the metric. Before any stage has finished: the metric."""
        journal, spec = self.ctx.state.journal, self.ctx.state.spec
        if spec is None:
            return None
        done = [r for r in self.records if r.get("best")]
        chosen = journal.get(done[-1]["best"]["node_id"]) if done and done[-1]["best"]["node_id"] in journal \
            else None
        finished = {r["name"] for r in self.records}
        later = Journal([n for n in journal if n.stage not in finished and n.operator != "seed"])
        running_best = later.best_node(spec)
        if chosen is not None and (running_best is None or
                                   not MetricValue(running_best.metric, spec) > MetricValue(chosen.metric, spec)):
            best = done[-1]["best"]
            # records written before this account existed: the tie-break key tells
            rule = best.get("chosen_by") or ("model tie-break" if done[-1].get("tie_break") else "metric")
            return chosen, {"chosen_by": rule, "reason": best.get("reason") or done[-1].get("tie_break") or
                            f"the best {spec.name} of stage {done[-1]['name']}"}
        if running_best is None:
            return None
        return running_best, {"chosen_by": "metric",
                              "reason": f"the best {spec.name} so far (stage {running_best.stage} running)"}

    def _verdict(self, settings: StageSettings, stop: str | None, by_rule: bool, view: Journal,
                 start: Node | None, budget: int, ran: int) -> tuple[bool, str]:
        """(completed, why): stages 1 and 2 are complete when their goal is met; 3 and 4 when they ran their course."""
        spec = self.ctx.state.spec
        if settings.name == "initial" and view.best_node(spec) is None:
            return False, rules.failure_account(view, budget)
        why = stop or f"budget of {budget} nodes used ({ran} ran)"
        if settings.name in ("initial", "tuning"):
            goal = rules.completion(replace(settings, run_to_budget=False), view, start, spec, self.ctx.critique)
            if goal is None:
                return False, f"{why}; no node beat the starting node" + (
                    " with curves judged stable" if self.ctx.critique else "")
            return True, goal if by_rule else f"{why}; {goal}"  # the rule's words, about the final best
        return True, why

    def _copy(self, previous: Node, settings: StageSettings) -> Node:
        """The stage's starting node: the previous stage's best, carried over with its results (not re-run)."""
        ctx = self.ctx
        node = Node(code=previous.code, operator="copy", stage=settings.name, step=ctx.state.next_step,
                    plan=f"Start of stage {settings.name}: node {previous.step}, the best of stage {previous.stage}, "
                         "carried over (not run again).",
                    proposer=previous.proposer, metric=previous.metric, is_buggy=False, analysis=previous.analysis,
                    copied_from=previous.id, plot_feedback=previous.plot_feedback,
                    plots_valid=previous.plots_valid, exec=copy.deepcopy(previous.exec), finished_at=time.time())
        ctx.state.next_step += 1
        artifacts = ctx.run.read_artifacts(previous)
        ctx.run.record(node, artifacts)
        ctx.state.journal.add(node)
        ctx.on_finish(node, NodeOutcome(node.id, node.exec, artifacts))
        return node

    # -- multi-seed evaluation -------------------------------------------------------------------------
    def _seeds(self, settings: StageSettings, best: Node, unfinished: list[Node]) -> dict[str, Any]:
        ctx, spec = self.ctx, self.ctx.state.spec
        assert spec is not None
        asked = ctx.stages.num_seeds
        if asked <= 1:
            return {"skipped": "stages.num_seeds=1", "asked": 1}
        param = seeds.seed_param(best.code, ctx.seed_param)
        if param is None:
            why = (f"the best node's code has no seed parameter {ctx.seed_param}" if ctx.seed_param else
                   f"the best node's code has no seed parameter (one of {', '.join(seeds.SEED_NAMES)}; "
                   "declare seed_param in the template's manifest.yaml)")
            log.warning("stage %s: multi-seed evaluation skipped: %s", settings.name, why)
            return {"skipped": why, "asked": asked}
        try:
            variants = seeds.seed_variants(best.code, param, asked)
        except ValueError as e:
            return {"skipped": str(e), "asked": asked}
        own_seed = seeds.seed_value(best.code, param)

        # a seed run of the same program in an earlier stage (the copy stayed best) is reused, not run again
        done = {n.code: n for n in ctx.state.journal if n.operator == "seed" and not n.is_buggy}
        waiting = {n.code: n for n in unfinished}
        runs: list[Node] = []
        for value, code in variants:
            node = done.get(code) or waiting.get(code)
            if node is None:
                node = Node(code=code, operator="seed", parent_id=best.id, stage=settings.name,
                            step=ctx.state.next_step, proposer="seed evaluation", change=f"{param}={value}",
                            plan=f"Node {best.step} again with {param}={value} (multi-seed evaluation).")
                ctx.state.next_step += 1
            runs.append(node)
        self._execute([n for n in runs if n.code not in done])

        members = [(own_seed, best)] + [(v, n) for (v, _), n in zip(variants, runs)]
        ok = [(v, n) for v, n in members if not n.is_buggy and n.exec.final_info is not None]
        failed = [f"{param}={v}: {n.bug_reason[:200]}" for v, n in members if n.is_buggy]
        mean, stderr = seeds.mean_stderr([n.metric for _, n in ok])
        # the primary metric (as the stage compares nodes) first, then every metric of final_info.json
        primary = f"{spec.name} (primary, {spec.direction})"
        per_seed = [{primary: n.metric, **flatten_final_info(n.exec.final_info)} for _, n in ok]
        aggregate = {primary: {"mean": mean, "stderr": stderr, "n": len(ok)},
                     **seeds.aggregate([n.exec.final_info for _, n in ok])}
        folder = ctx.run.path / "stages" / settings.name
        table = pa.Table.from_pylist([{"seed": v, "node_id": n.id, "step": n.step, **row}
                                      for (v, n), row in zip(ok, per_seed)])
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "seeds.parquet")
        plot = plot_seeds(per_seed, aggregate, f"stage {settings.name}: node {best.step} over {len(ok)} seeds",
                          folder / "seeds.png") if ok else None
        if len(ok) < asked:
            log.warning("stage %s: %d of %d seeds succeeded; failed: %s", settings.name, len(ok), asked,
                        "; ".join(failed))
        log.info("stage %s: node %d over %d seeds: %s = %.4g ± %s", settings.name, best.step, len(ok), spec.name,
                 mean, "n/a" if stderr is None else f"{stderr:.3g}")
        return {"param": param, "asked": asked, "ok": len(ok), "seeds": [v for v, _ in members],
                "values": [n.metric for _, n in members], "node_ids": [n.id for _, n in members],
                "mean": mean, "stderr": stderr, "failed": failed, "aggregate": aggregate,
                "plot": None if plot is None else plot.relative_to(ctx.run.path).as_posix(),
                "table": (folder / "seeds.parquet").relative_to(ctx.run.path).as_posix()}

    def _execute(self, nodes: list[Node]) -> None:
        """Run `nodes` on the executor's slots, recording each as it finishes."""
        ctx, queue, running = self.ctx, list(nodes), {}
        while queue or running:
            interrupt.check()
            while queue and len(running) < ctx.executor.slots:
                node = queue.pop(0)
                ctx.run.add_pending(node)
                running[node.id] = node
                ctx.executor.submit(ctx.make_job(node))
            for outcome in ctx.executor.wait_any(1.0):
                node = running.pop(outcome.node_id)
                node.finished_at = time.time()
                judge(node, outcome.result, ctx.state.spec)
                node.analysis = f"Seed run of node {node.parent_id}: " + (
                    f"{ctx.state.spec.name} = {node.metric:.4g}" if not node.is_buggy else f"buggy: {node.bug_reason}")
                ctx.run.record(node, outcome.artifacts)
                ctx.state.journal.add(node)
                ctx.on_finish(node, outcome)

    def _record_file(self, name: str) -> Path:
        return self.ctx.run.path / "stages" / name / "summary.json"
