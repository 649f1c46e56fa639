"""Entry point: python -m engine.launch +topic=grokking [key=value ...]   (Hydra; see conf/)."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from engine import config as config_mod
from engine import interrupt
from engine.budget.guard import Budget
from engine.budget.projection import project
from engine.budget.settings import BudgetSettings
from engine.budget.start import dry_run_text, open_budget
from engine.errors import EngineError
from engine.inputs import startup
from engine.llm.ledger import Ledger
from engine.llm.service import LLM
from engine.llm.transcripts import Recorder, Replayer
from engine.phase import PhaseContext, PipelineSettings
from engine.pipeline import preflight, run_pipeline
from engine.rundir import read_json, write_atomic
from engine.sweep import LAUNCHER
from engine.tracking import NullTracker, make_tracker

log = logging.getLogger("engine")

# hydra.run.dir: a resumed run continues in its own directory
OmegaConf.register_new_resolver("engine_run_dir", lambda resume, default: resume or default, replace=True)
# a topic file names its run after the file: topics/weight_decay.md -> weight_decay
OmegaConf.register_new_resolver("engine_stem", lambda path: Path(str(path)).stem, replace=True)
# the sweep launcher (`-m`; hydra_plugins/engine_ray_launcher registers the same node when Hydra finds it): named
# here too, so that a single run composes even where the plugin package cannot be imported
ConfigStore.instance().store(group="hydra/launcher", name="engine_ray", node={"_target_": LAUNCHER},
                             provider="ai-scientist-engine")


def build_llm(settings: config_mod.RunConfig, run_dir: Path, budget: Budget | None = None) -> LLM | None:
    """The run's LLM (roles, ledger, transcripts, the budget's check before each call), or a replayer of a recorded
    run; None when offline."""
    if settings.proposer == "offline":
        return None
    ledger, recorder = Ledger(run_dir, run_dir.name), Recorder(run_dir)
    if settings.replay_run is not None:
        # the replay's own transcripts say what it served (replayed or, with replay.fallback=live, asked)
        return LLM(settings.roles, settings.llm, os.environ, ledger, recorder, Replayer(settings.replay_run),
                   replay_fallback=settings.replay_fallback, budget=budget)
    return LLM(settings.roles, settings.llm, os.environ, ledger, recorder, budget=budget)


def run(cfg: DictConfig) -> dict[str, Any]:
    interrupt.install()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir).resolve()
    resolved = startup.resolved_config(cfg, run_dir, list(hydra_cfg.overrides.task),
                                       Path(str(hydra_cfg.sweep.dir)) if sweeping() else None)
    if cfg.get("resume"):
        log.info("resuming %s with its saved config (overrides on this command line are ignored, except "
                 "pipeline.phases, pipeline.redo, pipeline.dry_run and budget.*)", run_dir)
    else:
        write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(resolved)))
    settings = config_mod.build(resolved)
    if PipelineSettings.of(settings).dry_run:
        projection = project(settings, settings.section("budget", BudgetSettings), run_dir.parent, run_dir)
        print(dry_run_text(settings, projection), flush=True)
        return {}
    budget = open_budget(settings, run_dir)  # the projection is said, and a cap that cannot work refused, here
    llm = build_llm(settings, run_dir, budget)
    ctx = PhaseContext(run_dir, settings, llm, NullTracker(), budget)
    preflight(ctx)  # tools, models and keys are checked before any work or money is spent
    log.info("run directory: %s; phases: %s", run_dir, ", ".join(PipelineSettings.of(settings).phases))
    ctx.tracker = make_tracker(settings.tracking, run_dir, run_dir.name, resolved)
    summary: dict[str, Any] = {}
    try:
        summary = run_pipeline(ctx)
    except KeyboardInterrupt:
        sig = interrupt.received()
        how = (f"the sweep's command, with hydra.sweep.dir={run_dir.parent}" if sweeping() else
               f"\n    python -m engine.launch resume={run_dir}")
        log.warning("interrupted by %s: nothing finished is lost; resume with %s",
                    signal.Signals(sig).name if sig else "Ctrl-C", how)
        raise
    finally:
        ctx.tracker.finish(summary or (read_json(run_dir / "summary.json") or {}))
    log.info("summary:\n%s", json.dumps(summary, indent=2))
    if summary.get("result") is not None:
        from stages.outcome import result_line  # (scipy: not imported by a launch that is refused at start-up)
        log.info("%s", result_line(summary["result"]))  # the last line: what the run claims
    return summary


def sweeping() -> bool:
    """True in a run of a sweep (`-m`), which hands its errors to the sweep rather than ending the process."""
    return HydraConfig.get().mode == RunMode.MULTIRUN


# conf/ is found through the package (engine/conf, a link to the repository's conf/ in a checkout, a copy in an
# installed wheel), so `pip install .` works from any directory
@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except EngineError as e:
        log.error("%s", e)
        if sweeping():
            raise  # the sweep records this point as failed and goes on with the others
        startup.forget_run_dir(Path(HydraConfig.get().runtime.output_dir))
        sys.exit(2)
    except KeyboardInterrupt:
        if sweeping():
            raise
        sys.exit(128 + (interrupt.received() or signal.SIGINT))  # 130 for Ctrl-C, 143 for SIGTERM


def check_sweep_launcher() -> None:
    """A sweep needs the launcher package beside the engine; an install from before it existed lacks it."""
    try:
        found = importlib.util.find_spec(LAUNCHER.rsplit(".", 2)[0]) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        sys.exit("error: the sweep launcher (hydra_plugins/engine_ray_launcher) cannot be imported: install the "
                 "engine again (bash scripts/setup.sh, or pip install -e .), or run from the repository's root")


if __name__ == "__main__":
    if {"-m", "--multirun"} & set(sys.argv[1:]):
        check_sweep_launcher()
    main()
