"""Typed settings built once from the resolved Hydra config; nothing below reads Hydra or the environment.

The frame's own sections (topic, search, stages, cluster, sandbox, tracking, llm, model) are built here. Every
other section names the class that reads it (`_settings_: package.module:Class` in its conf/ group, e.g.
conf/writeup/default.yaml): a phase or wing owns its settings, and a new one adds a folder and a conf group
without editing this module. Each such class has `from_dict(raw, resolve)` (`resolve` turns a path the user
wrote into an absolute one) and raises ValueError naming the key at fault.
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import EngineError
from engine.llm.models import ModelSpec, resolve_roles
from engine.llm.service import LLMSettings
from engine.nodes.config import ClusterConfig
from engine.sandbox.config import SandboxConfig
from engine.tracking import TrackingConfig
from search.policy import PolicyConfig
from stages.spec import STAGE_NAMES, StagesConfig, StageSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = Path(__file__).parent  # engine/: its templates/ and conf/ (links in a checkout, copies when installed)
SETTINGS_KEY = "_settings_"  # in a conf section: the class that reads it
S = TypeVar("S")


@dataclass(frozen=True)
class TopicConfig:
    name: str
    path: Path | None  # the template folder; None: a topic file without a template (template-free)
    profile: str | None
    metric: str | None
    direction: str | None
    file: Path | None  # a v2 topic file (# Title, ## Keywords, ## TL;DR, ## Abstract)


@dataclass(frozen=True)
class RunConfig:
    topic: TopicConfig
    policy: PolicyConfig
    stages: StagesConfig
    cluster: ClusterConfig
    sandbox: SandboxConfig
    tracking: TrackingConfig
    proposer: str
    seed: int
    llm: LLMSettings
    roles: dict[str, ModelSpec]  # empty: no model configured
    replay_run: Path | None
    replay_fallback: str  # a replayed request the recorded run never made: error (stop) or live (ask)
    sections: Mapping[str, Any]  # the sections that name their own settings class: pipeline, ideas, writeup, ...

    def section(self, name: str, kind: type[S]) -> S:
        """The settings of section `name` (conf/<name>/), of the class that reads it."""
        value = self.sections.get(name)
        if not isinstance(value, kind):
            raise EngineError(f"config section {name!r} is missing or not {kind.__name__} (its conf group must "
                              f"name {kind.__module__}:{kind.__name__} as {SETTINGS_KEY})")
        return value

    def with_section(self, name: str, value: Any) -> RunConfig:
        return replace(self, sections={**self.sections, name: value})


def resolve_path(path: str, base: Path | None = None) -> Path:
    """An absolute path; a relative one is looked up from `base` (the launch directory), then the package (the
    shipped templates, e.g. templates/grokking), then the repository."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    for root in (base or Path.cwd(), PACKAGE_ROOT, REPO_ROOT):
        if (root / p).exists():
            return (root / p).resolve()
    return (base or Path.cwd()).joinpath(p).resolve()


def build(cfg: dict[str, Any], launch_dir: Path | None = None) -> RunConfig:
    """RunConfig from the resolved config (a plain dict); EngineError naming the key on a bad value."""
    if "topic" not in cfg or cfg["topic"] is None:
        raise EngineError("no topic given: add +topic=grokking, or +topic=template topic.path=/abs/path")
    resolve = partial(resolve_path, base=launch_dir)
    try:
        cluster = cluster_config(cfg["cluster"])
        replay_run, replay_fallback = _replay(cfg, resolve)
        roles = resolve_roles(dict(cfg.get("model") or {}), dict(cfg["llm"].get("roles") or {}))
        return RunConfig(
            topic=_topic(cfg["topic"], resolve), policy=policy_config(cfg["search"]),
            stages=_stages(cfg["stages"], float(cfg["search"]["budget_scale"])), cluster=cluster,
            sandbox=SandboxConfig.from_dict(cfg["sandbox"], cluster.threads_per_node),
            tracking=tracking_config(cfg["tracking"]), proposer=_proposer(str(cfg["proposer"]), roles, replay_run),
            seed=int(cfg["seed"]), llm=llm_settings(cfg["llm"]), roles=roles, replay_run=replay_run,
            replay_fallback=replay_fallback, sections=build_sections(cfg, resolve))
    except KeyError as e:
        raise EngineError(f"missing config value: {e.args[0]}") from None
    except (TypeError, ValueError) as e:
        raise EngineError(f"bad config value: {e}") from None


def build_sections(cfg: dict[str, Any], resolve: Callable[[str], Path]) -> dict[str, Any]:
    """Every section that names its settings class, built by that class."""
    out = {}
    for name, raw in cfg.items():
        if isinstance(raw, dict) and raw.get(SETTINGS_KEY):
            out[name] = settings_class(str(raw[SETTINGS_KEY]), name).from_dict(raw, resolve)
    return out


def settings_class(target: str, section: str) -> Any:
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ValueError(f"{section}.{SETTINGS_KEY}={target}: no such class (module:Class)") from None


def _topic(t: dict[str, Any], resolve: Callable[[str], Path]) -> TopicConfig:
    topic_file = resolve(str(t["file"])) if t.get("file") else None
    if topic_file is not None and not topic_file.is_file():
        raise ValueError(f"topic.file={t['file']}: no such file")
    if t.get("path") is None and topic_file is None:
        raise ValueError("the topic has neither a template (topic.path) nor a topic file (topic.file)")
    topic = TopicConfig(str(t["name"]), resolve(str(t["path"])) if t.get("path") else None,
                        t.get("profile"), t.get("metric"), t.get("direction"), topic_file)
    if topic.direction not in (None, "maximize", "minimize"):
        raise ValueError(f"topic.direction must be maximize or minimize, got {topic.direction!r}")
    return topic


def _replay(cfg: dict[str, Any], resolve: Callable[[str], Path]) -> tuple[Path | None, str]:
    """A replay keeps the recorded run's model settings (names, prices) and serves its recorded replies."""
    replay = cfg.get("replay") or {}
    if (cfg.get("model") or {}).get("name") == "replay":
        raise ValueError("model=replay needs replay.run=/path/to/recorded/run")
    fallback = str(replay.get("fallback") or "error")
    if fallback not in ("error", "live"):
        raise ValueError(f"replay.fallback must be error or live, got {fallback!r}")
    return (resolve(str(replay["run"])) if replay.get("run") else None), fallback


def _proposer(proposer: str, roles: dict[str, ModelSpec], replay_run: Path | None) -> str:
    if proposer not in ("auto", "offline", "llm"):
        raise ValueError(f"proposer must be auto, offline or llm, got {proposer!r}")
    if proposer == "llm" and not roles and replay_run is None:
        raise ValueError("proposer=llm but no model is configured: set model=<name> (conf/model/) or "
                         "model.base_url=URL model.name=NAME")
    if proposer == "auto":
        return "llm" if roles or replay_run else "offline"
    return proposer


def _stages(raw: dict[str, Any], budget_scale: float = 1.0) -> StagesConfig:
    """The stages' settings, every node budget multiplied by `budget_scale` (search.budget_scale; at least 1)."""
    if not budget_scale > 0:
        raise ValueError(f"search.budget_scale must be > 0, got {budget_scale}")
    run = raw.get("run")
    if isinstance(run, str):
        run = [run]
    settings = {}
    for name in run or ():
        if name not in STAGE_NAMES:
            raise ValueError(f"stages.run: unknown stage {name!r}; stages, in order: {', '.join(STAGE_NAMES)}")
        st = raw.get(name)
        if not isinstance(st, dict):
            raise ValueError(f"stages.{name}: missing (max_nodes, offline_max_nodes)")
        settings[str(name)] = StageSettings(str(name), _scaled(st["max_nodes"], budget_scale),
                                            _scaled(st["offline_max_nodes"], budget_scale),
                                            bool(st["run_to_budget"]))
    return StagesConfig(tuple(str(n) for n in run or ()), settings, int(raw["num_seeds"]),
                        int(raw["critique_max_plots"]), float(raw["scale_up_fraction"]),
                        float(raw["tie_break_tolerance"]), float(raw["noise_z"]), int(raw["final_seeds"]))


def policy_config(s: dict[str, Any]) -> PolicyConfig:
    return PolicyConfig(int(s["num_drafts"]), float(s["debug_prob"]), int(s["max_debug_depth"]),
                        _opt_int(s["lookahead"]))


def cluster_config(c: dict[str, Any]) -> ClusterConfig:
    runner = c["runner"]
    return ClusterConfig(str(c["kind"]), int(c["slots"]), int(c["threads_per_node"]), c["scratch_dir"],
                         c["address"], _opt_float(c["num_cpus"]), _opt_float(c["num_gpus"]),
                         float(runner["num_cpus"]), _opt_float(runner["gpu_fraction"]))


def tracking_config(w: dict[str, Any]) -> TrackingConfig:
    return TrackingConfig(str(w["kind"]), str(w["project"]), w["entity"], w["group"], w["mode"], str(w["job_type"]))


def llm_settings(m: dict[str, Any]) -> LLMSettings:
    llm = LLMSettings(int(m["max_concurrency"]), int(m["max_retries"]), float(m["timeout_s"]), int(m["reask"]),
                      float(m["temperature"]), int(m["max_tokens"]))
    if llm.max_concurrency < 1 or llm.max_retries < 0 or llm.reask < 0:
        raise ValueError("llm.max_concurrency must be >= 1, llm.max_retries and llm.reask >= 0")
    return llm


# -- the shipped defaults, for code that runs outside a Hydra run ---------------------------------------------
# Every default lives once, in conf/ (the YAML files, with their comments); the dataclasses above have none.
# Entry points that compose no config (the review CLI, the benchmarks, tests) take their values from here.

def shipped(group: str, option: str = "default") -> dict[str, Any]:
    """The values of conf/<group>/<option>.yaml, or of a section of conf/config.yaml when `group` is one."""
    from omegaconf import OmegaConf

    conf = PACKAGE_ROOT / "conf"
    path = conf / group / f"{option}.yaml"
    if path.is_file():
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]
    section = OmegaConf.load(conf / "config.yaml").get(group)
    if section is None:
        raise KeyError(f"no config group or section {group!r} in {conf}")
    return OmegaConf.to_container(section, resolve=True)  # type: ignore[return-value]


def shipped_section(group: str, option: str = "default", **overrides: Any) -> Any:
    """A section that names its own settings class (conf/<group>/<option>.yaml), built by that class."""
    raw = shipped(group, option) | overrides
    return settings_class(str(raw[SETTINGS_KEY]), group).from_dict(raw, resolve_path)


def shipped_llm(**overrides: Any) -> LLMSettings:
    return llm_settings(shipped("llm") | overrides)


def shipped_policy(**overrides: Any) -> PolicyConfig:
    return policy_config(shipped("search", "bfts") | overrides)


def shipped_stages(budget_scale: float = 1.0, **overrides: Any) -> StagesConfig:
    return _stages(shipped("stages") | overrides, budget_scale)


def shipped_sandbox(**overrides: Any) -> SandboxConfig:
    """The shipped sandbox limits, resolved as for a template that declares none, with `overrides` applied."""
    threads = int(shipped("cluster", "local")["threads_per_node"])
    return replace(SandboxConfig.from_dict(shipped("sandbox"), threads).for_template(None, None), **overrides)


def stages_config(run: tuple[str, ...] | list[str], settings: dict[str, StageSettings],
                  **overrides: Any) -> StagesConfig:
    """Stages `run` with `settings`, the rest as shipped (or as overridden)."""
    return replace(shipped_stages(), run=tuple(run), settings=dict(settings), **overrides)


def shipped_tracking(option: str = "wandb", **overrides: Any) -> TrackingConfig:
    return tracking_config(shipped("tracking", option) | overrides)


def _scaled(nodes: Any, scale: float) -> int:
    n = int(nodes)  # a budget below 1 stays as given, so StageSettings names the key at fault
    return n if n < 1 else max(1, math.floor(n * scale + 0.5))  # half up: 0.5 x 3 nodes is 2


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
