"""Entry point: python -m engine.launch +topic=grokking [key=value ...]   (Hydra; see conf/)."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from engine import config as config_mod
from engine import interrupt
from engine.errors import EngineError
from engine.llm.ledger import Ledger
from engine.llm.service import LLM
from engine.llm.transcripts import Recorder, Replayer
from engine.phase import PhaseContext
from engine.pipeline import preflight, run_pipeline
from engine.rundir import read_json, write_atomic
from engine.tracking import NullTracker, make_tracker

log = logging.getLogger("engine")

# hydra.run.dir: a resumed run continues in its own directory
OmegaConf.register_new_resolver("engine_run_dir", lambda resume, default: resume or default, replace=True)
# a topic file names its run after the file: topics/weight_decay.md -> weight_decay
OmegaConf.register_new_resolver("engine_stem", lambda path: Path(str(path)).stem, replace=True)


def build_llm(settings: config_mod.RunConfig, run_dir: Path) -> LLM | None:
    """The run's LLM (roles, ledger, transcripts), or a replayer of a recorded run; None when offline."""
    if settings.proposer == "offline":
        return None
    ledger, recorder = Ledger(run_dir, run_dir.name), Recorder(run_dir)
    if settings.replay_run is not None:
        # the replay's own transcripts say what it served (replayed or, with replay.fallback=live, asked)
        return LLM(settings.roles, settings.llm, os.environ, ledger, recorder, Replayer(settings.replay_run),
                   replay_fallback=settings.replay_fallback)
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
        resolved = OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
        assert isinstance(resolved, dict)
        # which phases to run is the one thing a resume takes from the command line
        given = {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}
        for key in ("phases", "redo"):
            if f"pipeline.{key}" in given:
                resolved.setdefault("pipeline", {})[key] = OmegaConf.to_container(cfg.pipeline[key])
        log.info("resuming %s with its saved config (overrides on this command line are ignored, except "
                 "pipeline.phases and pipeline.redo)", run_dir)
    else:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        write_atomic(saved, OmegaConf.to_yaml(OmegaConf.create(resolved)))
    assert isinstance(resolved, dict)
    settings = config_mod.build(resolved)
    llm = build_llm(settings, run_dir)
    ctx = PhaseContext(run_dir, settings, llm, NullTracker())
    preflight(ctx)  # tools, models and keys are checked before any work or money is spent
    log.info("run directory: %s; phases: %s", run_dir, ", ".join(settings.phases))
    ctx.tracker = make_tracker(settings.tracking, run_dir, run_dir.name, resolved)
    summary: dict[str, Any] = {}
    try:
        summary = run_pipeline(ctx)
    except KeyboardInterrupt:
        sig = interrupt.received()
        log.warning("interrupted by %s: nothing finished is lost; resume with\n    python -m engine.launch resume=%s",
                    signal.Signals(sig).name if sig else "Ctrl-C", run_dir)
        raise
    finally:
        ctx.tracker.finish(summary or (read_json(run_dir / "summary.json") or {}))
    log.info("summary:\n%s", json.dumps(summary, indent=2))
    return summary


# conf/ is found through the package (engine/conf, a link to the repository's conf/ in a checkout, a copy in an
# installed wheel), so `pip install .` works from any directory
@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except EngineError as e:
        log.error("%s", e)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(128 + (interrupt.received() or signal.SIGINT))  # 130 for Ctrl-C, 143 for SIGTERM


if __name__ == "__main__":
    main()
