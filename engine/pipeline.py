"""A run is an ordered list of phases: ideas -> experiments -> writeup -> review.

Each phase is a module with one entry point, `run_phase(ctx) -> outputs` (engine/phase.py). The pipeline runs
the configured phases in order and keeps a done-marker per phase in `phases/<name>.json` (status, outputs,
timings, cost). A resumed run skips phases marked done and runs the unfinished one again, which continues from
its own checkpoints (the ideas' rounds, the experiments' journal, the paper's files, the literature cache).
`summary.json` gets a `phases` list: name, status, wall_time_s, cost_usd, and why when skipped or failed.
"""
from __future__ import annotations

import importlib
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.errors import EngineError
from engine.llm.ledger import cost_summary
from engine.phase import PHASES, PhaseContext, PhaseSkipped, PipelineSettings, marker_path, read_marker
from engine.rundir import RunDir, read_json, write_json
from engine.viewer import write_viewer
from search.journal import Journal

log = logging.getLogger(__name__)

ENTRY_POINTS = {  # phase -> the module holding its run_phase
    "ideas": "engine.ideas",
    "experiments": "engine.experiments.phase",
    "writeup": "engine.writeup",
    "review": "engine.review.phase",
}
# phase -> what reads the user's files that phase needs (EngineError naming the file) before the launch makes a
# run directory; a light module, so that a refused launch ends in seconds
INPUT_CHECKS = {
    "ideas": "engine.ideas.topic",
    "experiments": "engine.experiments.template",
}
# what pipeline.redo=[<phase>] clears first, so the phase starts afresh instead of continuing its checkpoints;
# the experiments are never cleared (their journal is the run's record): start a new run to search again
REDO_CLEARS = {"ideas": ("ideas", "ideas.json", "idea.json"), "writeup": ("paper",), "review": ("review.json",)}
# a phase that needs an earlier phase's outputs, and what it says when they are missing
NEEDS = {"experiments": None, "writeup": "experiments", "review": "writeup", "ideas": None}


def entry_point(name: str) -> Callable[[PhaseContext], dict[str, Any]]:
    return importlib.import_module(ENTRY_POINTS[name]).run_phase


def check_inputs(cfg: RunConfig, run_dir: Path | None = None) -> None:
    """Read the inputs of every phase this launch will run (of a resumed run in `run_dir`, the phases not done or
    to be redone), before any run directory, model call or node."""
    settings = PipelineSettings.of(cfg)
    for name in settings.phases:
        marker = read_marker(run_dir, name) if run_dir is not None and run_dir.is_dir() else None
        if name in INPUT_CHECKS and not (marker and marker.get("status") == "done" and name not in settings.redo):
            importlib.import_module(INPUT_CHECKS[name]).check_inputs(cfg)


def preflight(ctx: PhaseContext) -> None:
    """What can be checked before any money is spent: the TeX toolchain when a paper is to be written, a model
    when the topic has no template, then one cheap call per configured model."""
    cfg = ctx.cfg
    if "writeup" in PipelineSettings.of(cfg).phases:
        from engine.writeup.preflight import check_tools
        check_tools()
    if cfg.topic.path is None and ctx.offline and {"ideas", "experiments"} & set(PipelineSettings.of(cfg).phases):
        raise EngineError(f"topic file {cfg.topic.file} has no template, so a model must write the first program "
                          "from the idea: set model=<name> (conf/model/) or model.base_url=URL model.name=NAME; "
                          "offline, only a template can run (e.g. +topic=grokking)")
    if ctx.llm is not None:
        ctx.llm.preflight()  # a bad key or model ends the run here, before any work


def run_pipeline(ctx: PhaseContext) -> dict[str, Any]:
    """Run the configured phases in order; returns the final summary. EngineError from a phase is raised after
    its marker and the summary say it failed (later phases are then recorded as skipped)."""
    failed: tuple[str, EngineError] | None = None
    carry_on = _carry_on(ctx)
    for name in PHASES:
        if name not in PipelineSettings.of(ctx.cfg).phases:
            continue
        marker = read_marker(ctx.run_dir, name)
        redo = name in PipelineSettings.of(ctx.cfg).redo or (name in carry_on and name != "experiments")
        if marker and marker["status"] == "done" and not redo and name not in carry_on:
            log.info("phase %s: done before (phases/%s.json); pipeline.redo=[%s] runs it again", name, name, name)
            continue
        if marker and redo:
            _clear(ctx, name)
        if failed is not None:
            _finish(ctx, name, "skipped", [], {}, why=f"the {failed[0]} phase failed")
            continue
        need = NEEDS[name]
        if need is not None and need not in PipelineSettings.of(ctx.cfg).phases and not _has_outputs(ctx, need):
            _finish(ctx, name, "skipped", [], {}, why=f"needs the {need} phase's outputs, and this run has none")
            continue
        try:
            _run_one(ctx, name, marker)
        except EngineError as e:
            failed = (name, e)
    summary = write_summary(ctx)
    if failed is not None:
        raise failed[1]
    return summary


def _carry_on(ctx: PhaseContext) -> set[str]:
    """On resume, the phases to run again because the budget cut them short and the budget now has room: from the
    first such phase on (the experiments continue their search; a later phase is redone on the new results). The
    ideas are not redone once the experiments have tested one."""
    if ctx.budget is None:
        return set()
    names = [n for n in PHASES if n in PipelineSettings.of(ctx.cfg).phases]
    stopped = {n: (read_marker(ctx.run_dir, n) or {}).get("budget_stopped") for n in names}
    for n, why in stopped.items():
        if why:
            ctx.budget.stops[n] = why  # the run is still cut short unless the phase runs again
    if read_marker(ctx.run_dir, "experiments") is not None:
        names = [n for n in names if n != "ideas"]
    first = next((i for i, n in enumerate(names) if stopped.get(n) and ctx.budget.has_room(n)), None)
    if first is None:
        return set()
    again = {n for n in names[first:] if read_marker(ctx.run_dir, n) is not None}
    log.info("the budget now has room: phases %s run again, from where the budget stopped them",
             ", ".join(n for n in names if n in again))
    for n in again:
        ctx.budget.clear_stop(n)
    return again


def _has_outputs(ctx: PhaseContext, name: str) -> bool:
    if ctx.done(name) is not None:
        return True
    # a run directory from before the phases existed: its finished search counts as the experiments' outputs
    summary = read_json(ctx.run_dir / "summary.json") or {}
    return name == "experiments" and summary.get("status") == "finished" and bool(summary.get("best"))


def _clear(ctx: PhaseContext, name: str) -> None:
    for rel in REDO_CLEARS.get(name, ()):
        path = ctx.run_dir / rel
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    marker_path(ctx.run_dir, name).unlink(missing_ok=True)
    log.info("phase %s: its earlier outputs were removed (pipeline.redo)", name)


def _run_one(ctx: PhaseContext, name: str, marker: dict[str, Any] | None) -> None:
    attempts = list(marker.get("attempts", [])) if marker else []
    attempts.append({"started_at": time.time(), "finished_at": None})
    write_json(marker_path(ctx.run_dir, name), {"name": name, "status": "running", "attempts": attempts})
    write_summary(ctx)
    log.info("=== phase %s%s", name, " (continuing)" if len(attempts) > 1 else "")
    ctx.tracker.log_event("phase_start", {"phase": name})
    if ctx.budget is not None:
        ctx.budget.phase = name  # its model calls are counted against this phase's cap
    try:
        outputs = entry_point(name)(ctx)
    except PhaseSkipped as e:
        _finish(ctx, name, "skipped", attempts, {}, why=str(e))
        return
    except KeyboardInterrupt:
        _finish(ctx, name, "interrupted", attempts, {}, why="interrupted (Ctrl-C or SIGTERM)")
        raise
    except EngineError as e:
        _finish(ctx, name, "failed", attempts, {}, why=str(e).splitlines()[0])
        raise
    except BaseException as e:
        _finish(ctx, name, "crashed", attempts, {}, why=f"{type(e).__name__}: {e}")
        raise
    _finish(ctx, name, "done", attempts, outputs or {})


def _finish(ctx: PhaseContext, name: str, status: str, attempts: list[dict[str, Any]], outputs: dict[str, Any],
            why: str | None = None) -> None:
    if attempts:
        attempts[-1]["finished_at"] = time.time()
    wall = sum((a["finished_at"] or time.time()) - a["started_at"] for a in attempts)
    marker = {"name": name, "status": status, "why": why, "outputs": outputs, "attempts": attempts,
              "wall_time_s": round(wall, 1), "cost_usd": _phase_cost(ctx, name, attempts),
              # why the budget cut this phase short (it then ran what it could pay for, or its offline path)
              "budget_stopped": ctx.budget.stopped_in(name) if ctx.budget is not None else None}
    write_json(marker_path(ctx.run_dir, name), marker)
    (log.info if status in ("done", "skipped") else log.warning)(
        "=== phase %s %s%s (%.0f s)", name, status, f": {why}" if why else "", wall)
    ctx.tracker.log_event("phase_end", {"phase": name, "status": status, "wall_time_s": marker["wall_time_s"],
                                        "cost_usd": marker["cost_usd"]})
    write_summary(ctx)


def _phase_cost(ctx: PhaseContext, name: str, attempts: list[dict[str, Any]]) -> float | None:
    """The model calls the phase made (by the ledger's phase; a ledger from before it had one: the calls made while
    the phase ran, as phases run one after another)."""
    if ctx.llm is None or ctx.llm.ledger is None or not attempts:
        return 0.0 if ctx.llm is None else None
    rows = [r for r in ctx.llm.ledger.rows() if r.get("phase") == name or r.get("phase") is None and
            any(a["started_at"] <= r["time"] <= (a["finished_at"] or time.time()) for a in attempts)]
    return cost_summary(rows)["cost_usd"]


def phase_rows(ctx: PhaseContext) -> list[dict[str, Any]]:
    """One row per phase, in pipeline order: those configured, and any an earlier invocation ran."""
    rows = []
    for name in PHASES:
        marker = read_marker(ctx.run_dir, name)
        if marker is None:
            if name in PipelineSettings.of(ctx.cfg).phases:
                rows.append({"name": name, "status": "pending", "wall_time_s": None, "cost_usd": None})
            continue
        row = {"name": name, "status": marker["status"], "wall_time_s": marker.get("wall_time_s"),
               "cost_usd": marker.get("cost_usd")}
        if marker.get("why"):
            row["why"] = marker["why"]
        rows.append(row)
    return rows


def write_summary(ctx: PhaseContext) -> dict[str, Any]:
    """summary.json with the pipeline's keys (phases, idea, paper, review) over what the experiments wrote."""
    path = ctx.run_dir / "summary.json"
    summary = read_json(path) or {"topic": ctx.cfg.topic.name, "run_dir": str(ctx.run_dir)}
    summary["phases"] = phase_rows(ctx)
    if (ideas := ctx.done("ideas")) is not None:
        summary["idea"] = {k: ideas.get(k) for k in ("chosen", "num_ideas", "num_novel", "source")}
    if (paper := ctx.done("writeup")) is not None:
        summary["paper"] = paper
    if (review := ctx.done("review")) is not None:
        summary["review"] = {k: review.get(k) for k in ("Overall", "Decision", "file")}
    statuses = [r["status"] for r in summary["phases"]]
    # the run's status: the worst of its phases' (a phase not yet run leaves the run "running")
    summary["status"] = next((s for s in ("crashed", "failed", "interrupted", "running", "pending")
                              if s in statuses), "finished")
    if ctx.llm is not None and ctx.llm.ledger is not None:
        summary |= cost_summary(ctx.llm.ledger.rows())
    if ctx.budget is not None:
        summary["budget"], summary["compute"] = ctx.budget.summary(), ctx.budget.compute_summary()
    write_json(path, summary)
    run = RunDir(ctx.run_dir)
    write_viewer(run, Journal(run.load_nodes()), summary)
    return summary
