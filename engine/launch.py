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
from engine.llm.ledger import Ledger
from engine.llm.service import LLM
from engine.llm.transcripts import Recorder, Replayer
from engine.phase import PhaseContext, PipelineSettings
from engine.pipeline import preflight, run_pipeline
from engine.rundir import read_json, write_atomic
from engine.sweep import LAUNCHER
from engine.tracking import NullTracker, make_tracker
from stages.outcome import result_line

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


def with_new_keys(saved: Any, cfg: DictConfig) -> dict[str, Any]:
    """A saved run's config with every key it predates taken from this command's composition (the shipped
    defaults): the saved values win, and defaults stay written in one place, conf/."""
    assert isinstance(saved, dict)
    current = OmegaConf.to_container(cfg, resolve=True)

    def fill(into: dict[str, Any], defaults: dict[str, Any]) -> None:
        for key, value in defaults.items():
            if key not in into:
                into[key] = value
            elif isinstance(into[key], dict) and isinstance(value, dict):
                fill(into[key], value)

    assert isinstance(current, dict)
    fill(saved, {k: v for k, v in current.items() if k not in ("resume", "topic", "model", "replay")})
    return saved


def load_replayed_config(cfg: DictConfig) -> dict[str, Any]:
    """A replay runs the recorded run's config (its model settings included), answered by its transcripts."""
    if not cfg.replay.run:
        raise EngineError("model=replay needs replay.run=/path/to/recorded/run")
    recorded = Path(str(cfg.replay.run)).expanduser().resolve() / "config.yaml"
    if not recorded.is_file():
        raise EngineError(f"replay.run={cfg.replay.run}: no config.yaml there; is it a run directory?")
    resolved = with_new_keys(OmegaConf.to_container(OmegaConf.load(recorded), resolve=True), cfg)
    resolved["replay"] = {"run": str(recorded.parent), "fallback": str(cfg.replay.get("fallback") or "error")}
    resolved["proposer"] = "llm"
    resolved["tracking"] = OmegaConf.to_container(cfg.tracking, resolve=True)
    return resolved


def run(cfg: DictConfig) -> dict[str, Any]:
    interrupt.install()
    run_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
    saved = run_dir / "config.yaml"
    if cfg.model.get("name") == "replay" and not cfg.get("resume"):
        resolved = load_replayed_config(cfg)
        write_atomic(saved, OmegaConf.to_yaml(OmegaConf.create(resolved)))
    elif cfg.get("resume"):
        if not saved.is_file():
            raise EngineError(f"resume={cfg.resume}: no config.yaml there; is it a run directory of this engine?")
        resolved = with_new_keys(OmegaConf.to_container(OmegaConf.load(saved), resolve=True), cfg)
        # which phases to run, and what the run may spend, are what a resume takes from the command line
        given = [o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task]
        for key in given:
            if key in ("pipeline.phases", "pipeline.redo", "pipeline.dry_run") or key.startswith("budget."):
                _set_path(resolved, key, OmegaConf.to_container(cfg, resolve=True))
        log.info("resuming %s with its saved config (overrides on this command line are ignored, except "
                 "pipeline.phases, pipeline.redo, pipeline.dry_run and budget.*)", run_dir)
    else:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(resolved, dict)
        if sweeping() and not (resolved.get("tracking") or {}).get("group"):
            # the runs of a sweep are one wandb group, named after the sweep's folder
            resolved["tracking"]["group"] = Path(str(HydraConfig.get().sweep.dir)).name
        write_atomic(saved, OmegaConf.to_yaml(OmegaConf.create(resolved)))
    assert isinstance(resolved, dict)
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
        log.info("%s", result_line(summary["result"]))  # the last line: what the run claims
    return summary


def _set_path(into: dict[str, Any], dotted: str, source: dict[str, Any]) -> None:
    """into[a][b] = source[a][b] for dotted = "a.b" (a key the command line gave)."""
    *parents, last = dotted.split(".")
    for part in parents:
        source = source[part]
        into = into.setdefault(part, {})
    into[last] = source[last]


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
