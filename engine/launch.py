"""Entry point: python -m engine.launch +topic=grokking [key=value ...]   (Hydra; see conf/)."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from engine import config as config_mod
from engine import interrupt
from engine.errors import EngineError
from engine.experiments import prepare, run_search
from engine.llm.ledger import Ledger
from engine.llm.service import LLM
from engine.llm.transcripts import Recorder, Replayer
from engine.rundir import write_atomic
from engine.tracking import make_tracker
from search.offline import NAME as OFFLINE_NAME

log = logging.getLogger("engine")

# hydra.run.dir: a resumed run continues in its own directory
OmegaConf.register_new_resolver("engine_run_dir", lambda resume, default: resume or default, replace=True)


def seed_idea(template: Any, proposer: str) -> dict[str, Any]:
    """Ideation is not built yet: the run tests the template's first seed idea as written."""
    base = dict(template.seed_ideas[0]) if template.seed_ideas else {
        "Name": template.name, "Title": template.name, "Experiment": template.prompt["task_description"]}
    who = OFFLINE_NAME if proposer == "offline" else "no ideation yet"
    return base | {"generated_by": f"{who}: the template's first seed idea"}


def build_llm(settings: config_mod.RunConfig, run_dir: Path) -> LLM | None:
    """The run's LLM (roles, ledger, transcripts), or a replayer of a recorded run; None when offline."""
    if settings.proposer == "offline":
        return None
    ledger, recorder = Ledger(run_dir, run_dir.name), Recorder(run_dir)
    if settings.replay_run is not None:
        return LLM(settings.roles, settings.llm, os.environ, ledger, None, Replayer(settings.replay_run))
    return LLM(settings.roles, settings.llm, os.environ, ledger, recorder)


def load_replayed_config(cfg: DictConfig) -> dict[str, Any]:
    """A replay runs the recorded run's config (its model settings included), answered by its transcripts."""
    if not cfg.replay.run:
        raise EngineError("model=replay needs replay.run=/path/to/recorded/run")
    recorded = Path(str(cfg.replay.run)).expanduser().resolve() / "config.yaml"
    if not recorded.is_file():
        raise EngineError(f"replay.run={cfg.replay.run}: no config.yaml there; is it a run directory?")
    resolved = OmegaConf.to_container(OmegaConf.load(recorded), resolve=True)
    assert isinstance(resolved, dict)
    resolved["replay"] = {"run": str(recorded.parent)}
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
        resolved = OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
        log.info("resuming %s with its saved config (overrides on this command line are ignored)", run_dir)
    else:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        write_atomic(saved, OmegaConf.to_yaml(OmegaConf.create(resolved)))
    assert isinstance(resolved, dict)
    settings = config_mod.build(resolved)
    llm = build_llm(settings, run_dir)
    if llm is not None:
        llm.preflight()  # a bad key or model ends the run here, before any work
    exp = prepare(settings)
    log.info("run directory: %s", run_dir)
    tracker = make_tracker(settings.tracking, run_dir, run_dir.name, resolved)
    summary: dict[str, Any] = {}
    try:
        summary = run_search(exp, run_dir, seed_idea(exp.template, settings.proposer), tracker, llm)
    finally:
        tracker.finish(summary)
    log.info("summary:\n%s", json.dumps(summary, indent=2))
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except EngineError as e:
        log.error("%s", e)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
