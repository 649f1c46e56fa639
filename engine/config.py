"""Typed settings built once from the resolved Hydra config; nothing below reads Hydra or the environment.

The frame's own sections (topic, search, stages, cluster, sandbox, tracking, llm, model) are built here. Every
other section names the class that reads it (`_settings_: package.module:Class` in its conf/ group, e.g.
conf/writeup/default.yaml): a phase or wing owns its settings, and a new one adds a folder and a conf group
without editing this module. Each such class has `from_dict(raw, resolve)` (`resolve` turns a path the user
wrote into an absolute one) and raises ValueError naming the key at fault.

Every key is checked for its type and range here, before a run directory, a model call or a node exists (the
launch calls `build` before Hydra makes the run directory: engine/inputs/startup.py): one line names the key, the
value and what is allowed (engine/inputs/values.py), and the launch ends with exit status 2.
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
from engine.inputs.values import Section
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
        top = Section(cfg, "")
        if top.get("resume") is not None and not isinstance(top.get("resume"), str):
            raise top.refuse("resume", top.get("resume"), "the path of a run directory, or null (a new run)")
        cluster = cluster_config(cfg["cluster"])
        replay_run, replay_fallback = _replay(cfg, resolve)
        roles = resolve_roles(top.get("model", None), top.section("llm").get("roles", None))
        budget_scale = Section(cfg["search"], "search").number("budget_scale", above=0)
        return RunConfig(
            topic=_topic(cfg["topic"], resolve), policy=policy_config(cfg["search"]),
            stages=_stages(cfg["stages"], budget_scale), cluster=cluster,
            sandbox=SandboxConfig.from_dict(cfg["sandbox"], cluster.threads_per_node),
            tracking=tracking_config(cfg["tracking"]),
            proposer=_proposer(top.choice("proposer", ("auto", "offline", "llm")), roles, replay_run),
            seed=top.integer("seed", at_least=0, at_most=2**32 - 1), llm=llm_settings(cfg["llm"]), roles=roles,
            replay_run=replay_run, replay_fallback=replay_fallback, sections=build_sections(cfg, resolve))
    except KeyError as e:
        raise EngineError(f"missing config value: {e.args[0]}") from None
    except (TypeError, ValueError) as e:
        raise EngineError(f"bad config value: {e}") from None


def build_sections(cfg: dict[str, Any], resolve: Callable[[str], Path]) -> dict[str, Any]:
    """Every section that names its settings class, built by that class."""
    out = {}
    for name, raw in cfg.items():
        if isinstance(raw, dict) and SETTINGS_KEY in raw:
            target = Section(raw, name).text(SETTINGS_KEY)
            out[name] = settings_class(target, name).from_dict(raw, resolve)
    return out


def settings_class(target: str, section: str) -> Any:
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError, TypeError):  # no such module or class; not a module's name
        raise ValueError(f"{section}.{SETTINGS_KEY}={target}: no such class (module:Class)") from None


def _topic(raw: dict[str, Any], resolve: Callable[[str], Path]) -> TopicConfig:
    t = Section(raw, "topic")
    file = t.text("file", null="no topic file", default=None)
    path = t.text("path", null="no template: a topic file", default=None)
    topic_file = resolve(file) if file else None
    if topic_file is not None and not topic_file.is_file():
        raise ValueError(f"topic.file={file}: no such file")
    if path is None and topic_file is None:
        raise ValueError("the topic has neither a template (topic.path) nor a topic file (topic.file)")
    return TopicConfig(t.text("name"), resolve(path) if path else None,
                       t.text("profile", null="the manifest's default_profile"),
                       t.text("metric", null="the manifest's, else the baseline's first metric"),
                       t.choice("direction", ("maximize", "minimize"), null="the manifest's, else maximize"),
                       topic_file)


def _replay(cfg: dict[str, Any], resolve: Callable[[str], Path]) -> tuple[Path | None, str]:
    """A replay keeps the recorded run's model settings (names, prices) and serves its recorded replies."""
    replay = Section(cfg.get("replay") or {"run": None, "fallback": "error"}, "replay")
    run = replay.text("run", null="no replay")
    fallback = replay.choice("fallback", ("error", "live"), default="error")  # (a run saved before the key)
    if (cfg.get("model") or {}).get("name") == "replay":
        raise ValueError("model=replay needs replay.run=/path/to/recorded/run")
    if run and not (resolve(run) / "llm" / "transcripts").is_dir():
        raise ValueError(f"replay.run={run}: no llm/transcripts there; is it a run directory of a run with a model?")
    return (resolve(run) if run else None), fallback


def _proposer(proposer: str, roles: dict[str, ModelSpec], replay_run: Path | None) -> str:
    if proposer == "llm" and not roles and replay_run is None:
        raise ValueError("proposer=llm but no model is configured: set model=<name> (conf/model/) or "
                         "model.base_url=URL model.name=NAME")
    if proposer == "auto":
        return "llm" if roles or replay_run else "offline"
    return proposer


def _stages(raw: dict[str, Any], budget_scale: float = 1.0) -> StagesConfig:
    """The stages' settings, every node budget multiplied by `budget_scale` (search.budget_scale; at least 1).
    Every stage's settings are checked, also those of a stage this run leaves out."""
    s = Section(raw, "stages")
    run = raw.get("run")
    for name in [run] if isinstance(run, str) else run if isinstance(run, list) else ():
        if name not in STAGE_NAMES:
            raise ValueError(f"stages.run: unknown stage {name!r}; stages, in order: {', '.join(STAGE_NAMES)}")
    run = s.names("run", STAGE_NAMES)
    settings = {}
    for name in STAGE_NAMES:
        if name not in raw and name not in run:
            continue
        st = s.section(name)
        stage = StageSettings(name, _scaled(st.integer("max_nodes", at_least=1), budget_scale),
                              _scaled(st.integer("offline_max_nodes", at_least=1), budget_scale),
                              st.flag("run_to_budget"))
        if name in run:
            settings[name] = stage
    return StagesConfig(run, settings, s.integer("num_seeds", at_least=1), s.integer("critique_max_plots", at_least=1),
                        s.number("scale_up_fraction", at_least=0, at_most=1),
                        s.number("tie_break_tolerance", at_least=0), s.number("noise_z", at_least=0),
                        s.integer("final_seeds", at_least=2))


def policy_config(raw: dict[str, Any]) -> PolicyConfig:
    s = Section(raw, "search")
    return PolicyConfig(s.integer("num_drafts", at_least=1), s.number("debug_prob", at_least=0, at_most=1),
                        s.integer("max_debug_depth", at_least=0),
                        s.integer("lookahead", at_least=0, null="one per slot with a model, none offline"))


def cluster_config(raw: dict[str, Any]) -> ClusterConfig:
    c = Section(raw, "cluster")
    runner = c.section("runner")
    fraction = runner.number("gpu_fraction", at_least=0, null="the template's resources.gpus")
    if fraction is not None and fraction > 1 and fraction != int(fraction):
        raise runner.refuse("gpu_fraction", fraction, "a share of one GPU (0 to 1) or a whole number of GPUs")
    return ClusterConfig(c.choice("kind", ("local", "ray", "threads")), c.integer("slots", at_least=1),
                         c.integer("threads_per_node", at_least=1),
                         c.text("scratch_dir", null="the system's temporary directory"),
                         c.text("address", null="a private Ray instance"),
                         c.number("num_cpus", above=0, null="all of them"),
                         c.number("num_gpus", at_least=0, null="the real GPUs found"),
                         runner.number("num_cpus", at_least=0), fraction)


def tracking_config(raw: dict[str, Any]) -> TrackingConfig:
    w = Section(raw, "tracking")
    return TrackingConfig(w.choice("kind", ("wandb", "none")), w.text("project", null="wandb's default project"),
                          w.text("entity", null="your wandb default"), w.text("group", null="no group"),
                          w.choice("mode", ("online", "offline", "disabled"),
                                   null="online with WANDB_API_KEY, else offline"), w.text("job_type"))


def llm_settings(raw: dict[str, Any]) -> LLMSettings:
    m = Section(raw, "llm")
    return LLMSettings(m.integer("max_concurrency", at_least=1), m.integer("max_retries", at_least=0),
                       m.number("timeout_s", above=0, null="no limit"), m.integer("reask", at_least=0),
                       m.number("temperature", at_least=0, at_most=2), m.integer("max_tokens", at_least=1))


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


def _scaled(nodes: int, scale: float) -> int:
    return max(1, math.floor(nodes * scale + 0.5))  # half up: 0.5 x 3 nodes is 2
