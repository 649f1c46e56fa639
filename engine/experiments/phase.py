"""The experiment phase of a run: template -> proposer -> tree search -> journal, best node, summary."""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.errors import EngineError
from engine.experiments.llm_proposer import Context, LLMFeedback, LLMProposer, LLMSelector
from engine.experiments.plot_critique import PlotCritic, vision_unavailable
from engine.experiments.stage_records import StageRecords
from engine.experiments.template import Template, template_and_code
from engine.llm.ledger import cost_summary
from engine.llm.service import LLM
from engine.nodes.cluster import start_executor
from engine.nodes.driver import Driver, SearchState, slot_utilization
from engine.nodes.node_exec import NodeJob, NodeOutcome
from engine.phase import PhaseContext
from engine.rundir import RunDir, read_json, write_json
from engine.sandbox.config import SandboxConfig
from engine.sandbox.run import bwrap_path
from engine.tracking import Tracker
from engine.viewer import write_viewer
from search.journal import Journal
from search.metric import MetricSpec, guess_direction, metric_names
from search.node import TREE_FIELDS, Node, node_record
from search.offline import NAME as OFFLINE_NAME
from search.offline import OfflineProposer, specs_from_code
from search.operators import BaselineFirst
from stages.policy import StagePlan, StageSetup

log = logging.getLogger(__name__)
PIPELINE_KEYS = ("phases", "idea", "paper", "review")


@dataclass
class Experiment:
    """Everything fixed about a run's search, derived once from config and template."""

    cfg: RunConfig
    template: Template
    profile: str | None
    base_code: str
    spec: MetricSpec | None  # None: inferred from the baseline
    sandbox: SandboxConfig
    support_files: dict[str, bytes]  # read once: runners get bytes, never the template's path


def prepare(cfg: RunConfig) -> Experiment:
    if cfg.topic.path is None and cfg.proposer == "offline":  # a topic file without a template
        raise EngineError(f"topic file {cfg.topic.file} has no template: a model must draft the first program "
                          "(model=<name>, or model.base_url=URL model.name=NAME)")
    template, profile, base_code = template_and_code(cfg)
    manifest = template.manifest
    spec = _metric_spec(cfg, template)
    res = manifest.resources if manifest else None
    sandbox = cfg.sandbox.for_template(res.timeout_s if res else None, res.memory_gb if res else None)
    bwrap_path(sandbox)  # warn (or refuse, with use_bwrap=always) before any work
    support = template.support_files() if template.experiment_code else {}
    return Experiment(cfg, template, profile, base_code, spec, sandbox, support)


def run_phase(ctx: PhaseContext) -> dict[str, Any]:
    """The experiment phase: the four-stage tree search on the idea the ideas phase chose (idea.json)."""
    exp = prepare(ctx.cfg)
    idea = read_json(ctx.run_dir / "idea.json")
    if idea is None:  # the ideas phase did not run (pipeline.phases=[experiments] on a fresh run directory)
        idea = seed_idea(exp.template, ctx.cfg.proposer)
    summary = run_search(exp, ctx.run_dir, idea, ctx.tracker, ctx.llm)
    best = summary.get("best") or {}
    return {"summary": "summary.json", "tree": "tree.json", "best_node": best.get("node_id"),
            "best_value": best.get("value"), "primary_metric": summary["primary_metric"],
            "nodes": summary["nodes"]["total"], "stages": [r["name"] for r in summary.get("stages", [])]}


def seed_idea(template: Template, proposer: str) -> dict[str, Any]:
    """Without the ideas phase the run tests the template's first seed idea as written."""
    base = dict(template.seed_ideas[0]) if template.seed_ideas else {
        "Name": template.name, "Title": template.name, "Experiment": template.prompt["task_description"]}
    who = OFFLINE_NAME if proposer == "offline" else "no ideas phase"
    return base | {"generated_by": f"{who}: the template's first seed idea"}


def _metric_spec(cfg: RunConfig, template: Template) -> MetricSpec | None:
    manifest_metric = template.manifest.metric if template.manifest else None
    if cfg.topic.metric:
        direction = cfg.topic.direction or (manifest_metric.direction if manifest_metric else "maximize")
        return MetricSpec(cfg.topic.metric, direction)
    if manifest_metric:
        if cfg.topic.direction:
            return MetricSpec(manifest_metric.name, cfg.topic.direction)
        return manifest_metric
    if template.baseline_final_info is not None:
        return _first_metric(template.baseline_final_info, cfg, "the template's run_0/final_info.json")
    return None


def _first_metric(final_info: dict[str, Any], cfg: RunConfig, source: str) -> MetricSpec:
    try:
        name = metric_names(final_info)[0]
    except ValueError as e:
        raise EngineError(f"{source}: {e}") from None
    direction = cfg.topic.direction or guess_direction(name)
    log.warning("no primary metric declared: using %r, %s (%s), the first metric of %s; set topic.metric=NAME "
                "topic.direction=maximize|minimize to choose", name, direction,
                "given" if cfg.topic.direction else "guessed from its name", source)
    return MetricSpec(name, direction)


def run_search(exp: Experiment, run_dir: Path, idea: dict[str, Any], tracker: Tracker,
               llm: LLM | None = None) -> dict[str, Any]:
    """Run (or resume) the tree search in `run_dir`; returns the summary written to summary.json."""
    cfg, run = exp.cfg, RunDir(run_dir)
    finished = run.load_nodes()
    unfinished = run.load_pending()
    previous = _read_summary(run_dir)
    if finished or unfinished:
        log.info("resuming %s: %d finished nodes kept, %d unfinished nodes to run again",
                 run_dir, len(finished), len(unfinished))
    spec = exp.spec or (previous_spec(previous) if previous else None)
    if spec is None and finished:
        spec = _first_metric(finished[0].exec.final_info or {}, cfg, "the baseline node")
    if not (run_dir / "idea.json").exists():
        write_json(run_dir / "idea.json", idea)

    state = SearchState(Journal(finished), spec,
                        next_step=1 + max((n.step for n in finished + unfinished), default=-1))
    proposer, feedback, critic_on = _proposer(exp, llm, state, idea, unfinished)
    started, prior_wall = time.monotonic(), float(previous.get("wall_time_s", 0.0)) if previous else 0.0
    prior_search_wall = float((previous or {}).get("search_wall_s") or 0.0)

    def make_job(node: Node) -> NodeJob:
        return NodeJob(node.id, node.code, exp.support_files, exp.sandbox, cfg.cluster.scratch_dir, None)

    def infer(node: Node) -> MetricSpec | None:
        if exp.base_code and node.code != exp.base_code:
            return None  # with a template, its own code (the baseline) names the metric: other drafts wait for it
        if node.exec.final_info is None and not exp.base_code:
            log.info("no working program yet (template-free): the primary metric comes from the first one")
            return None
        if node.exec.final_info is None:
            raise EngineError("the baseline (the template's experiment.py, unchanged) failed, so no metric "
                              f"can be chosen: {node.exec.exc_type}: {node.exec.exc_message}\n"
                              f"{node.exec.stderr_tail[-2000:]}")
        return _first_metric(node.exec.final_info, cfg, "the baseline run")

    plan: StagePlan | None = None  # made once the executor is up; the status files list its stages
    driver: Driver | None = None

    def write_status(status: str) -> dict[str, Any]:
        # the best node as the stage records chose it (metric, or the model's tie-break), in one place
        chosen = plan.chosen() if plan else None
        wall = prior_wall + time.monotonic() - started
        summary = make_summary(exp, state, wall, status, str(run_dir), proposer.name, chosen)
        summary["stages"] = plan.rows() if plan else []
        search_wall = prior_search_wall + (time.monotonic() - driver.started if driver else 0.0)
        summary["search_wall_s"] = round(search_wall, 1)
        summary["slots"] = cfg.cluster.slots
        summary["slot_utilization"] = slot_utilization(state.journal.nodes, cfg.cluster.slots, search_wall)
        overhead = (previous or {}).get("driver_overhead_ms_median") if driver is None or not driver.overhead_s \
            else round(1000 * statistics.median(driver.overhead_s), 2)
        summary["driver_overhead_ms_median"] = overhead
        summary["dropped_proposals"] = len(run.dropped_ids())
        summary |= cost_summary(llm.ledger.rows() if llm and llm.ledger else [], run.dropped_ids())
        # the pipeline's keys (phases, idea, paper, review) stay as the pipeline wrote them
        summary = {k: v for k, v in (_read_summary(run_dir) or {}).items() if k in PIPELINE_KEYS} | summary
        write_json(run_dir / "summary.json", summary)
        write_json(run_dir / "tree.json", tree_json(state))
        write_viewer(run, state.journal, summary)
        best = chosen[0] if chosen else state.journal.best_node(state.spec) if state.spec else None
        if best is not None:
            run.write_best(best)
        return summary

    def on_record(node: Node, outcome: NodeOutcome) -> None:
        best = state.journal.best_node(state.spec) if state.spec else None
        tracker.log_node(node, best.metric if best else None)
        write_status("running")

    manifest = exp.template.manifest
    res = manifest.resources if manifest else None
    executor = start_executor(cfg.cluster, template_gpus=res.gpus if res else 0.0)
    setup = StageSetup(
        stages=cfg.stages, policy=cfg.policy, offline=llm is None, critique=critic_on, seed=cfg.seed,
        timeout_s=exp.sandbox.limit_s, tunables=tuple(manifest.tunables) if manifest else (),
        ablations=tuple(manifest.ablations) if manifest else (), seed_param=manifest.seed_param if manifest else None,
        select=LLMSelector(llm) if llm is not None and llm.has("select") else None)
    records = StageRecords(run, state.journal, lambda: state.spec, tracker, critic_on)
    plan = StagePlan.resume(setup, lambda: state.spec, state.journal, state.new_step, records.saved, unfinished)
    for stage in plan.stages:
        if stage.status == "done":
            log.info("stage %s finished before the resume: %s", stage.name, (stage.decision or {}).get("why"))
        elif stage.status == "seeding":
            log.info("stage %s decided before the resume: its seed runs continue", stage.name)
    # proposals written ahead of the free slots: with a model, one per slot by default (a freed slot finds a
    # ready program); the offline proposer writes at once, so none ahead
    lookahead = cfg.policy.lookahead if cfg.policy.lookahead is not None else (0 if llm is None else cfg.cluster.slots)
    driver = Driver(run, state, proposer, executor, make_job, plan, feedback=feedback, lookahead=lookahead,
                    proposal_concurrency=cfg.llm.max_concurrency, infer_spec=infer, on_record=on_record,
                    on_events=records)
    log.info("searching with the %s proposer: stages %s, %d slots, %d proposals ahead, primary metric %s",
             proposer.name, ", ".join(f"{n} ({cfg.stages.settings[n].budget(llm is None)} nodes)"
                                      for n in cfg.stages.run),
             cfg.cluster.slots, lookahead, f"{spec.name} ({spec.direction})" if spec else "from the baseline")
    try:
        driver.search(resumed=unfinished)
    except KeyboardInterrupt:
        executor.shutdown()
        write_status("interrupted")
        raise
    except BaseException:
        executor.shutdown()
        write_status("crashed")
        raise
    executor.shutdown()
    failed = plan.failed
    summary = write_status("no working node" if failed else "finished")
    if failed is not None:
        why = (failed.decision or {}).get("why")
        raise EngineError(f"stage {failed.name} found no working node, so the run stops; {why}\n"
                          f"(run directory: {run_dir})")
    return summary


def _proposer(exp: Experiment, llm: LLM | None, state: SearchState, idea: dict[str, Any], unfinished: list[Node]):
    """The offline proposer, or the model's operators with the model's feedback on each run."""
    base_first = BaselineFirst(exp.base_code, already_proposed=tuple(n.code for n in unfinished))
    if not exp.base_code:  # template-free: there is no baseline program, the model's first draft starts
        base_first.proposed += ("",)
    if llm is None:
        tunables = exp.template.manifest.tunables if exp.template.manifest and exp.template.manifest.tunables \
            else specs_from_code(exp.base_code)
        try:
            offline = OfflineProposer(exp.base_code, tunables, already_proposed=base_first.proposed,
                                      ablations=exp.template.manifest.ablations if exp.template.manifest else None)
        except ValueError as e:
            raise EngineError(f"{exp.template.path}: {e}") from None
        if offline.nothing_to_change:  # the baseline still runs; each stage then ends with this reason
            log.warning("%s: %s", exp.template.path, offline.nothing_to_change)
        log.info("plot critique skipped: no model configured (plots are still drawn)")
        return base_first.wrap(offline), None, False
    ctx = Context(exp.template.prompt["task_description"], idea, exp.base_code, sorted(exp.support_files),
                  lambda: state.spec, exp.sandbox.limit_s)
    feedback = LLMFeedback(llm, lambda: state.spec)
    unavailable = vision_unavailable(llm)
    if unavailable:
        log.info("plot critique skipped: %s (plots are still drawn)", unavailable)
        return base_first.wrap(LLMProposer(llm, ctx)), feedback, False
    critic = PlotCritic(llm, exp.cfg.stages.critique_max_plots)

    def critique_and_feedback(node: Node, outcome: NodeOutcome) -> tuple[bool, str]:
        try:
            critic(node, outcome)
        except EngineError:
            raise  # a configuration problem (a rejected key, a replay that does not match), not a bad plot
        except Exception as e:  # noqa: BLE001 - a failed critique leaves the node unjudged, not buggy
            log.warning("plot critique of node %d failed: %s", node.step, e)
        return feedback(node, outcome)

    return base_first.wrap(LLMProposer(llm, ctx)), critique_and_feedback, True


def previous_spec(summary: dict[str, Any]) -> MetricSpec | None:
    pm = summary.get("primary_metric")
    return MetricSpec(pm["name"], pm["direction"]) if pm and pm.get("name") else None


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    return read_json(run_dir / "summary.json")


def make_summary(exp: Experiment, state: SearchState, wall_s: float, status: str, run_dir: str,
                 proposer: str, chosen: tuple[Node, dict[str, str]] | None = None) -> dict:
    """`chosen`: the best node and the rule that chose it (StagePlan.chosen); None: the best metric."""
    j, spec = state.journal, state.spec
    best, choice = chosen if chosen else (j.best_node(spec) if spec else None, {})
    if best is not None and not choice and spec is not None:
        choice = {"chosen_by": "metric", "reason": f"the best {spec.name} of the run"}
    searched = [n for n in j if n.operator not in ("copy", "seed")]
    baseline, source = None, None
    if exp.template.baseline_final_info is not None and spec is not None:
        try:
            baseline, source = spec.extract(exp.template.baseline_final_info), "template run_0/final_info.json"
        except (KeyError, ValueError):
            baseline = None
    if baseline is None:
        first = min(j, key=lambda n: n.step, default=None)
        if first is not None and first.operator == "draft" and first.code == exp.base_code:
            baseline, source = first.metric, f"node {first.step} (the template's code, unchanged)"
    improvement = None
    if baseline is not None and best is not None and spec is not None:
        improvement = (best.metric - baseline) if spec.maximize else (baseline - best.metric)
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
        "best": None if best is None else {"node_id": best.id, "step": best.step, "value": best.metric,
                                           "stage": best.stage, "plan": best.plan} | choice,
        "improvement_over_baseline": improvement,
        # the programs the search wrote and ran; a stage's starting copies and the seed re-runs are counted apart
        "nodes": {"total": len(searched), "good": sum(1 for n in searched if n.is_buggy is False),
                  "buggy": sum(1 for n in searched if n.is_buggy),
                  "copies": sum(1 for n in j if n.operator == "copy"),
                  "seed_runs": sum(1 for n in j if n.operator == "seed")},
        "wall_time_s": round(wall_s, 1),
    }


def tree_json(state: SearchState) -> dict[str, Any]:
    return {
        "primary_metric": None if state.spec is None else {"name": state.spec.name,
                                                          "direction": state.spec.direction},
        "nodes": [node_record(n, TREE_FIELDS) | {"children": [c.id for c in state.journal.children(n.id)]}
                  for n in state.journal],
    }
