"""Entry point: python -m engine.launch +topic=grokking [key=value ...]   (Hydra; see conf/)."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from engine import config as config_mod
from engine.errors import EngineError
from engine.experiments import prepare, run_search
from engine.rundir import write_atomic
from engine.tracking import make_tracker
from search.offline import NAME as OFFLINE_NAME

log = logging.getLogger("engine")

# hydra.run.dir: a resumed run continues in its own directory
OmegaConf.register_new_resolver("engine_run_dir", lambda resume, default: resume or default, replace=True)


def offline_idea(template: Any) -> dict[str, Any]:
    """Without a model there is no ideation: the run tests the template's first seed idea as written."""
    base = dict(template.seed_ideas[0]) if template.seed_ideas else {
        "Name": template.name, "Title": template.name, "Experiment": template.prompt["task_description"]}
    return base | {"generated_by": f"{OFFLINE_NAME}: no ideation, the template's first seed idea"}


def run(cfg: DictConfig) -> dict[str, Any]:
    run_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
    saved = run_dir / "config.yaml"
    if cfg.get("resume"):
        if not saved.is_file():
            raise EngineError(f"resume={cfg.resume}: no config.yaml there; is it a run directory of this engine?")
        resolved = OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
        log.info("resuming %s with its saved config (overrides on this command line are ignored)", run_dir)
    else:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        write_atomic(saved, OmegaConf.to_yaml(OmegaConf.create(resolved)))
    assert isinstance(resolved, dict)
    settings = config_mod.build(resolved)
    exp = prepare(settings)
    log.info("run directory: %s", run_dir)
    tracker = make_tracker(settings.tracking, run_dir, run_dir.name, resolved)
    summary: dict[str, Any] = {}
    try:
        summary = run_search(exp, run_dir, offline_idea(exp.template), tracker)
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
