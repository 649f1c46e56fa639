"""What a launch settles before Hydra makes the run directory: the config the run will use (the command line's, a
resumed run's saved one, or a recorded run's for a replay), every setting in it checked (engine/config.py), and the
files the phases to run will read (engine/pipeline.py, check_inputs). A refusal is one line on stderr and exit
status 2, and leaves nothing on disk.

Hydra calls `CheckFirst.on_run_start` (named in conf/config.yaml, hydra.callbacks) once it has composed the config
and before it makes the run directory, .hydra/ and launch.log. What fails later in the launch (a missing TeX
toolchain, a rejected API key) still ends with one line; `forget_run_dir` then removes the run directory when this
launch made it and it holds nothing but what the launch wrote.
"""
from __future__ import annotations

import copy
import logging
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from engine import config as config_mod
from engine.errors import EngineError
from engine.inputs.values import show
from engine.pipeline import check_inputs

# what a launch writes in a run directory before the pipeline starts (Hydra's folder and log, the resolved config)
LAUNCH_FILES = {".hydra", "launch.log", "config.yaml"}
_made_by_this_launch: list[Path] = []  # the run directory, when it did not exist before this launch


class CheckFirst(Callback):
    """Hydra's callback that checks a single run's config and inputs before its run directory exists."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # (Hydra turns an exception raised here into a warning and goes on: a refusal exits here, with status 2)
        run_dir = check_or_exit(config)
        if not run_dir.exists():
            _made_by_this_launch.append(run_dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # a sweep's points are checked by its launcher (hydra_plugins/engine_ray_launcher), after Hydra's sweeper
        # made the sweep's folder and wrote multirun.yaml in it
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        if not sweep_dir.exists():
            _made_by_this_launch.append(sweep_dir)


def check_or_exit(config: DictConfig, run_dir: Path | None = None, what: str = "",
                  sweep_dir: Path | None = None) -> Path:
    """`check` (the run directory: `run_dir`, else hydra.run.dir); a refusal prints one line, prefixed with `what`,
    and ends the process with exit status 2."""
    try:
        with _quiet():
            run_dir = run_dir or Path(str(config.hydra.run.dir)).resolve()
            check(config, run_dir)
        return run_dir
    except OmegaConfBaseException as e:
        refuse(unresolved(e), what, sweep_dir)
    except EngineError as e:
        refuse(e, what, sweep_dir)
    raise AssertionError("unreachable")


def refuse(error: Exception, what: str = "", sweep_dir: Path | None = None) -> None:
    """One line on stderr, exit status 2; a sweep's folder goes if this launch made it and wrote only
    multirun.yaml there."""
    if sweep_dir is not None:
        forget_run_dir(sweep_dir, {"multirun.yaml"})
    sys.stderr.write(f"error: {what}{error}\n")
    sys.exit(2)


def check(config: DictConfig, run_dir: Path) -> config_mod.RunConfig:
    """The run's settings, checked with its inputs; EngineError naming the key or the file."""
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):  # as Hydra gives the task its config
        del task["hydra"]
    return check_task(task, run_dir, list(config.hydra.overrides.task))


def check_task(task: DictConfig, run_dir: Path, overrides: list[str]) -> config_mod.RunConfig:
    """What `check` does with the task's config (the composed config less Hydra's own section)."""
    settings = config_mod.build(resolved_config(task, run_dir, overrides, None))
    check_inputs(settings, run_dir if task.get("resume") else None)
    return settings


def resolved_config(cfg: DictConfig, run_dir: Path, overrides: list[str], sweep_dir: Path | None) -> dict[str, Any]:
    """The config the run uses: a replayed run's, a resumed run's saved one (the command line may change only
    pipeline.phases, pipeline.redo, pipeline.dry_run and budget.*), or this command's; EngineError when it cannot
    be had."""
    resume = cfg.get("resume")
    if resume is not None and (not isinstance(resume, str) or not resume.strip()):
        raise EngineError(f"resume={show(resume)}: must be the path of a run directory, or null (a new run)")
    if cfg.model.get("name") == "replay" and not resume:
        return load_replayed_config(cfg)
    if resume:
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise EngineError(f"resume={cfg.resume}: no config.yaml there; is it a run directory of this engine?")
        resolved = with_new_keys(saved_config(saved, f"resume={cfg.resume}"), cfg)
        # which phases to run, and what the run may spend, are what a resume takes from the command line
        for key in (o.split("=", 1)[0].lstrip("+~") for o in overrides):
            if key in ("pipeline.phases", "pipeline.redo", "pipeline.dry_run") or key.startswith("budget."):
                _set_path(resolved, key, plain(cfg))
        return resolved
    resolved = plain(cfg)
    if sweep_dir is not None and isinstance(resolved.get("tracking"), dict) and not resolved["tracking"].get("group"):
        resolved["tracking"]["group"] = sweep_dir.name  # the runs of a sweep are one wandb group, named after it
    return resolved


def _set_path(into: dict[str, Any], dotted: str, source: dict[str, Any]) -> None:
    """into[a][b] = source[a][b] for dotted = "a.b" (a key the command line gave)."""
    *parents, last = dotted.split(".")
    for part in parents:
        source = source[part]
        into = into.setdefault(part, {})
    into[last] = source[last]


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain values; EngineError naming a key that has no value or does not resolve."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        raise unresolved(e) from None
    assert isinstance(resolved, dict)
    return resolved


def unresolved(e: OmegaConfBaseException) -> EngineError:
    """A value the composed config has not got (`???`), or one that does not resolve, as one line naming it."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    key = getattr(e, "full_key", None)
    missing = re.search(r"resolving interpolation: Missing mandatory value: ([\w.]+)", text)
    if missing or isinstance(e, MissingMandatoryValue):
        key = missing.group(1) if missing else key
        return EngineError(f"{key}: no value given; add {key}=... to the command")
    return EngineError(f"{key or 'the config'}: {text}")


def saved_config(path: Path, label: str) -> dict[str, Any]:
    """A run's saved config.yaml; EngineError naming it, with what to do, when it is not readable YAML."""
    hint = f"{label}: {path} is the run's resolved config; fix it by hand, or start a new run"
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except UnicodeDecodeError:
        raise EngineError(f"{hint} (it is not UTF-8 text)") from None
    except OSError as e:
        raise EngineError(f"{label}: cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # the YAML parser's and OmegaConf's errors: a corrupt file
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or (str(e).splitlines()[0] if str(e) else type(e).__name__)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise EngineError(f"{hint} (not valid YAML: {where}{problem})") from None
    if not isinstance(data, dict):
        raise EngineError(f"{hint} (a mapping of sections was expected)")
    return data


def with_new_keys(saved: dict[str, Any], cfg: DictConfig) -> dict[str, Any]:
    """A saved run's config with every key it predates taken from this command's composition (the shipped
    defaults): the saved values win, and defaults stay written in one place, conf/."""
    current = plain(cfg)

    def fill(into: dict[str, Any], defaults: dict[str, Any]) -> None:
        for key, value in defaults.items():
            if key not in into:
                into[key] = value
            elif isinstance(into[key], dict) and isinstance(value, dict):
                fill(into[key], value)

    fill(saved, {k: v for k, v in current.items() if k not in ("resume", "topic", "model", "replay")})
    return saved


def load_replayed_config(cfg: DictConfig) -> dict[str, Any]:
    """A replay runs the recorded run's config (its model settings included), answered by its transcripts."""
    if not cfg.replay.run:
        raise EngineError("model=replay needs replay.run=/path/to/recorded/run")
    recorded = Path(str(cfg.replay.run)).expanduser().resolve() / "config.yaml"
    if not recorded.is_file():
        raise EngineError(f"replay.run={cfg.replay.run}: no config.yaml there; is it a run directory?")
    resolved = with_new_keys(saved_config(recorded, f"replay.run={cfg.replay.run}"), cfg)
    resolved["replay"] = {"run": str(recorded.parent), "fallback": str(cfg.replay.get("fallback") or "error")}
    resolved["proposer"] = "llm"
    resolved["tracking"] = OmegaConf.to_container(cfg.tracking, resolve=True)
    return resolved


def forget_run_dir(run_dir: Path, launch_files: set[str] = LAUNCH_FILES) -> None:
    """After a launch that failed before its pipeline started: remove the run directory if this launch made it and
    it holds no file but the launch's own (empty folders, such as the model ledger's, aside)."""
    run_dir = run_dir.resolve()
    if run_dir in _made_by_this_launch and run_dir.is_dir() and all(
            p.relative_to(run_dir).parts[0] in launch_files for p in run_dir.rglob("*") if not p.is_dir()):
        logging.shutdown()  # launch.log is closed before it goes
        shutil.rmtree(run_dir, ignore_errors=True)


class _quiet:
    """The checks' own warnings (a template without plot.py) are said again when the run starts: not twice."""

    def __enter__(self) -> None:
        self.level = logging.root.manager.disable
        logging.disable(logging.WARNING)

    def __exit__(self, *exc: Any) -> None:
        logging.disable(self.level)
