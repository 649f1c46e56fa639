"""The experiment phase of a run: template -> proposer -> tree search -> journal, best node, summary."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError
from engine.experiments.llm_proposer import Context, LLMFeedback, LLMProposer, LLMSelector
from engine.experiments.plot_critique import PlotCritic, vision_unavailable
from engine.experiments.setup import Experiment, first_metric, prepare
from engine.experiments.stage_records import StageRecords
from engine.experiments.summary import Status, previous_spec, read_summary
from engine.experiments.template import Template
from engine.llm.service import LLM
from engine.nodes.cluster import start_executor
from engine.nodes.driver import Driver, SearchState
from engine.nodes.node_exec import NodeJob, NodeOutcome
from engine.phase import PhaseContext
from engine.rundir import RunDir, read_json, write_json
from engine.tracking import Tracker
from search.journal import Journal
from search.metric import MetricSpec
from search.node import Node
from search.offline import NAME as OFFLINE_NAME
from search.offline import OfflineProposer, specs_from_code
from search.operators import BaselineFirst
from stages.plan import StagePlan
from stages.policy import StageSetup

if TYPE_CHECKING:
    from engine.budget.guard import Budget

log = logging.getLogger(__name__)


def run_phase(ctx: PhaseContext) -> dict[str, Any]:
    """The experiment phase: the four-stage tree search on the idea the ideas phase chose (idea.json)."""
    exp = prepare(ctx.cfg)
    idea = read_json(ctx.run_dir / "idea.json")
    if idea is None:  # the ideas phase did not run (pipeline.phases=[experiments] on a fresh run directory)
        idea = seed_idea(exp.template, ctx.cfg.proposer)
    summary = run_search(exp, ctx.run_dir, idea, ctx.tracker, ctx.llm, ctx.budget)
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


def run_search(exp: Experiment, run_dir: Path, idea: dict[str, Any], tracker: Tracker,
               llm: LLM | None = None, budget: Budget | None = None) -> dict[str, Any]:
    """Run (or resume) the tree search in `run_dir`; returns the summary written to summary.json."""
    cfg, run = exp.cfg, RunDir(run_dir)
    finished, unfinished, previous = run.load_nodes(), run.load_pending(), read_summary(run_dir)
    if finished or unfinished:
        log.info("resuming %s: %d finished nodes kept, %d unfinished nodes to run again",
                 run_dir, len(finished), len(unfinished))
    spec = exp.spec or (previous_spec(previous) if previous else None)
    if spec is None and finished:
        spec = first_metric(finished[0].exec.final_info or {}, cfg, "the baseline node")
    if not (run_dir / "idea.json").exists():
        write_json(run_dir / "idea.json", idea)
    state = SearchState(Journal(finished), spec,
                        next_step=1 + max((n.step for n in finished + unfinished), default=-1))
    proposer, feedback, critic_on = _proposer(exp, llm, state, idea, unfinished)
    status = Status(exp, run, state, proposer.name, llm, previous)
    warned: set[str] = set()

    def on_record(node: Node, outcome: NodeOutcome) -> None:
        _check_held_out(exp, node, warned)
        best = state.journal.best_node(state.spec) if state.spec else None
        tracker.log_node(node, best.metric if best else None)
        status.write("running")

    executor, recorded, admit = _executor(exp, budget, on_record)
    records = StageRecords(run, state.journal, lambda: state.spec, tracker, critic_on)
    status.plan = plan = StagePlan.resume(_stage_setup(exp, llm, critic_on), lambda: state.spec, state.journal,
                                          state.new_step, records.saved, unfinished)
    _log_resumed(plan)
    # proposals written ahead of the free slots: with a model, one per slot by default (a freed slot finds a
    # ready program); the offline proposer writes at once, so none ahead
    lookahead = cfg.policy.lookahead if cfg.policy.lookahead is not None else (0 if llm is None else cfg.cluster.slots)
    status.driver = driver = Driver(
        run, state, proposer, executor, lambda node: NodeJob(
            node.id, node.code, exp.support_files, exp.sandbox, cfg.cluster.scratch_dir, None,
            exp.template.held_out_code if node.operator == "eval" else None),
        plan, feedback=feedback, lookahead=lookahead, proposal_concurrency=cfg.llm.max_concurrency,
        infer_spec=lambda node: _infer_spec(exp, node), on_record=recorded, on_events=records,
        held_out=exp.held_out, admit=admit)
    _log_start(exp, proposer.name, llm is None, lookahead, spec)
    try:
        driver.search(resumed=unfinished)
    except KeyboardInterrupt:
        executor.shutdown()
        status.write("interrupted")
        raise
    except BaseException:
        executor.shutdown()
        status.write("crashed")
        raise
    executor.shutdown()
    summary = status.write("no working node" if plan.failed else "finished")
    if plan.failed is not None:
        why = (plan.failed.decision or {}).get("why")
        raise EngineError(f"stage {plan.failed.name} found no working node, so the run stops; {why}\n"
                          f"(run directory: {run_dir})")
    return summary


def _log_start(exp: Experiment, proposer: str, offline: bool, lookahead: int, spec: MetricSpec | None) -> None:
    cfg = exp.cfg
    log.info("searching with the %s proposer: stages %s, %d slots, %d proposals ahead, primary metric %s%s",
             proposer, ", ".join(f"{n} ({cfg.stages.settings[n].budget(offline)} nodes)" for n in cfg.stages.run),
             cfg.cluster.slots, lookahead, f"{spec.name} ({spec.direction})" if spec else "from the baseline",
             f"; held out from the search: {', '.join(exp.held_out)}" if exp.held_out else "")


def _check_held_out(exp: Experiment, node: Node, warned: set[str]) -> None:
    """A held-out metric that a final evaluation run lacks is named once, with the template."""
    if node.operator != "eval" or node.is_buggy or not exp.held_out:
        return
    missing = [name for name in exp.held_out if name not in (node.held_out or {}) and name not in warned]
    if missing:
        warned.update(missing)
        where = "its held_out.py" if exp.template.held_out_code else "its experiment.py (final_info.json)"
        log.warning("held-out metric %s is not written by the template %s (%s): result.held_out will lack it",
                    ", ".join(missing), exp.template.path, where)


def _executor(exp: Experiment, budget: Budget | None, on_record: Callable[[Node, NodeOutcome], None]):
    """(executor, on_record, admit) with the run's budget: each finished node goes into the compute ledger before
    `on_record`, and the GPU-hour cap is asked before a node starts (a Ray executor's runners hold their CPUs and
    GPU share; without Ray, nodes hold no GPU)."""
    res = exp.template.manifest.resources if exp.template.manifest else None
    executor = start_executor(exp.cfg.cluster, template_gpus=res.gpus if res else 0.0)
    if budget is None:
        return executor, on_record, None
    runner = getattr(executor, "spec", None)
    cpus, share = (runner.num_cpus, runner.gpu_fraction) if runner else (exp.cfg.cluster.runner_num_cpus, 0.0)

    def recorded(node: Node, outcome: NodeOutcome) -> None:
        budget.node_done(node, cpus, share)  # node-hours, CPU-hours, GPU-hours
        on_record(node, outcome)

    return executor, recorded, lambda node: budget.admit_node(node.id, share, exp.sandbox.limit_s)


def _stage_setup(exp: Experiment, llm: LLM | None, critique: bool) -> StageSetup:
    cfg, manifest = exp.cfg, exp.template.manifest
    return StageSetup(
        stages=cfg.stages, policy=cfg.policy, offline=llm is None, critique=critique, seed=cfg.seed,
        timeout_s=exp.sandbox.limit_s, tunables=tuple(manifest.tunables) if manifest else (),
        ablations=tuple(manifest.ablations) if manifest else (), seed_param=manifest.seed_param if manifest else None,
        select=LLMSelector(llm) if llm is not None and llm.has("select") else None, base_code=exp.base_code)


def _log_resumed(plan: StagePlan) -> None:
    for stage in plan.stages:
        if stage.status == "done":
            log.info("stage %s finished before the resume: %s", stage.name, (stage.decision or {}).get("why"))
        elif stage.status == "seeding":
            log.info("stage %s decided before the resume: its seed runs continue", stage.name)


def _infer_spec(exp: Experiment, node: Node) -> MetricSpec | None:
    """The primary metric from the baseline's results, when neither the config nor the manifest names one."""
    if exp.base_code and node.code != exp.base_code:
        return None  # with a template, its own code (the baseline) names the metric: other drafts wait for it
    if node.exec.final_info is None and not exp.base_code:
        log.info("no working program yet (template-free): the primary metric comes from the first one")
        return None
    if node.exec.final_info is None:
        raise EngineError("the baseline (the template's experiment.py, unchanged) failed, so no metric "
                          f"can be chosen: {node.exec.exc_type}: {node.exec.exc_message}\n"
                          f"{node.exec.stderr_tail[-2000:]}")
    return first_metric(node.exec.final_info, exp.cfg, "the baseline run")


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


