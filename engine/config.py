"""Typed settings built once from the resolved Hydra config; nothing below reads Hydra or the environment."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cluster import ClusterConfig
from engine.errors import EngineError
from engine.llm.models import ModelSpec, resolve_roles
from engine.llm.service import LLMSettings
from engine.tracking import TrackingConfig
from search.policy import PolicyConfig
from stages.spec import STAGE_NAMES, StagesConfig, StageSettings

if TYPE_CHECKING:  # the phases' settings live in their packages, which import this module
    from engine.ideas.config import IdeasConfig
    from engine.literature.config import LiteratureConfig
    from engine.review.config import ReviewConfig
    from engine.writeup.config import WriteupConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = Path(__file__).parent  # engine/: its templates/ and conf/ (links in a checkout, copies when installed)
PHASES = ("ideas", "experiments", "writeup", "review")  # the pipeline's phases, in their only order


@dataclass(frozen=True)
class TopicConfig:
    name: str
    path: Path | None  # the template folder; None: a topic file without a template (template-free)
    profile: str | None
    metric: str | None
    direction: str | None
    file: Path | None = None  # a v2 topic file (# Title, ## Keywords, ## TL;DR, ## Abstract)


@dataclass(frozen=True)
class SandboxSettings:
    use_bwrap: str
    timeout_s: float | None
    plot_timeout_s: float
    memory_gb: float | None
    max_procs: int
    max_file_gb: float
    max_artifact_mb: float
    max_dir_gb: float
    max_files: int
    uid: int | None
    gid: int


@dataclass(frozen=True)
class RunConfig:
    topic: TopicConfig
    policy: PolicyConfig
    stages: StagesConfig
    cluster: ClusterConfig
    sandbox: SandboxSettings
    tracking: TrackingConfig
    proposer: str
    seed: int
    llm: LLMSettings
    roles: dict[str, ModelSpec]  # empty: no model configured
    replay_run: Path | None
    phases: tuple[str, ...]
    redo: tuple[str, ...]
    ideas: IdeasConfig
    literature: LiteratureConfig
    writeup: WriteupConfig
    review: ReviewConfig
    replay_fallback: str = "error"  # a replayed request the recorded run never made: error (stop) or live (ask)


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
    from engine.ideas.config import IdeasConfig
    from engine.literature.config import LiteratureConfig
    from engine.review.config import ReviewConfig
    from engine.writeup.config import WriteupConfig

    if "topic" not in cfg or cfg["topic"] is None:
        raise EngineError("no topic given: add +topic=grokking, or +topic=template topic.path=/abs/path")
    t, s, c, x, w = cfg["topic"], cfg["search"], cfg["cluster"], cfg["sandbox"], cfg["tracking"]
    try:
        topic_file = resolve_path(str(t["file"]), launch_dir) if t.get("file") else None
        if topic_file is not None and not topic_file.is_file():
            raise ValueError(f"topic.file={t['file']}: no such file")
        if t.get("path") is None and topic_file is None:
            raise ValueError("the topic has neither a template (topic.path) nor a topic file (topic.file)")
        topic = TopicConfig(str(t["name"]), resolve_path(str(t["path"]), launch_dir) if t.get("path") else None,
                            t.get("profile"), t.get("metric"), t.get("direction"), topic_file)
        if topic.direction not in (None, "maximize", "minimize"):
            raise ValueError(f"topic.direction must be maximize or minimize, got {topic.direction!r}")
        policy = policy_config(s)
        stages = _stages(cfg["stages"], float(s["budget_scale"]))
        runner = c["runner"]
        cluster = ClusterConfig(str(c["kind"]), int(c["slots"]), int(c["threads_per_node"]), c["scratch_dir"],
                                c["address"], _opt_float(c["num_cpus"]), _opt_float(c["num_gpus"]),
                                float(runner["num_cpus"]), _opt_float(runner["gpu_fraction"]))
        tracking = TrackingConfig(str(w["kind"]), str(w["project"]), w["entity"], w["group"], w["mode"],
                                  str(w["job_type"]))
        m = cfg["llm"]
        llm = llm_settings(m)
        model = dict(cfg.get("model") or {})
        replay = (cfg.get("replay") or {}).get("run")
        if model.get("name") == "replay":
            raise ValueError("model=replay needs replay.run=/path/to/recorded/run")
        # a replay keeps the recorded run's model settings (names, prices) and serves its recorded replies
        replay_run = resolve_path(str(replay), launch_dir) if replay else None
        replay_fallback = str((cfg.get("replay") or {}).get("fallback") or "error")
        if replay_fallback not in ("error", "live"):
            raise ValueError(f"replay.fallback must be error or live, got {replay_fallback!r}")
        roles = resolve_roles(model, dict(m.get("roles") or {}))
        proposer = str(cfg["proposer"])
        if proposer not in ("auto", "offline", "llm"):
            raise ValueError(f"proposer must be auto, offline or llm, got {proposer!r}")
        if proposer == "llm" and not roles and replay_run is None:
            raise ValueError("proposer=llm but no model is configured: set model=<name> (conf/model/) or "
                             "model.base_url=URL model.name=NAME")
        if proposer == "auto":
            proposer = "llm" if roles or replay_run else "offline"
        sandbox = SandboxSettings(str(x["use_bwrap"]), _opt_float(x["timeout_s"]), float(x["plot_timeout_s"]),
                                  _opt_float(x["memory_gb"]), int(x["max_procs"]), float(x["max_file_gb"]),
                                  float(x["max_artifact_mb"]), float(x["max_dir_gb"]), int(x["max_files"]),
                                  _opt_int(x["uid"]), int(x["gid"]))
        if sandbox.use_bwrap not in ("auto", "always", "never"):
            raise ValueError(f"sandbox.use_bwrap must be auto, always or never, got {sandbox.use_bwrap!r}")
        if sandbox.uid == 0 or sandbox.max_dir_gb <= 0 or sandbox.max_files < 1:
            raise ValueError("sandbox.uid must not be 0 (null: keep the engine's user); sandbox.max_dir_gb and "
                             "sandbox.max_files must be positive")
        p = cfg["pipeline"]
        phases, redo = _phase_list(p["phases"], "pipeline.phases"), _phase_list(p.get("redo") or [], "pipeline.redo")
        if "experiments" in redo:
            raise ValueError("pipeline.redo: the experiments cannot be redone in place (the journal is the run's "
                             "record); start a new run, or resume this one")
        i = cfg["ideas"]
        ideas = IdeasConfig.from_dict(i, resolve_path(str(i["load"]), launch_dir) if i.get("load") else None)
        return RunConfig(topic, policy, stages, cluster, sandbox, tracking, proposer, int(cfg["seed"]), llm, roles,
                         replay_run, phases, redo, ideas, LiteratureConfig.from_dict(cfg["literature"]),
                         WriteupConfig.from_dict(cfg["writeup"]), ReviewConfig.from_dict(cfg["review"]),
                         replay_fallback)
    except KeyError as e:
        raise EngineError(f"missing config value: {e.args[0]}") from None
    except (TypeError, ValueError) as e:
        raise EngineError(f"bad config value: {e}") from None


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
                        float(raw["tie_break_tolerance"]), float(raw["noise_z"]))


def policy_config(s: dict[str, Any]) -> PolicyConfig:
    return PolicyConfig(int(s["num_drafts"]), float(s["debug_prob"]), int(s["max_debug_depth"]),
                        _opt_int(s["lookahead"]))


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


def shipped_llm(**overrides: Any) -> LLMSettings:
    return llm_settings(shipped("llm") | overrides)


def shipped_policy(**overrides: Any) -> PolicyConfig:
    return policy_config(shipped("search", "bfts") | overrides)


def shipped_stages(budget_scale: float = 1.0, **overrides: Any) -> StagesConfig:
    return _stages(shipped("stages") | overrides, budget_scale)


def stages_config(run: tuple[str, ...] | list[str], settings: dict[str, StageSettings],
                  **overrides: Any) -> StagesConfig:
    """Stages `run` with `settings`, the rest as shipped (or as overridden)."""
    return replace(shipped_stages(), run=tuple(run), settings=dict(settings), **overrides)


def shipped_tracking(option: str = "wandb", **overrides: Any) -> TrackingConfig:
    w = shipped("tracking", option) | overrides
    return TrackingConfig(str(w["kind"]), str(w["project"]), w["entity"], w["group"], w["mode"], str(w["job_type"]))


def _scaled(nodes: Any, scale: float) -> int:
    n = int(nodes)  # a budget below 1 stays as given, so StageSettings names the key at fault
    return n if n < 1 else max(1, math.floor(n * scale + 0.5))  # half up: 0.5 x 3 nodes is 2


def _phase_list(raw: Any, key: str) -> tuple[str, ...]:
    names = [raw] if isinstance(raw, str) else list(raw)
    unknown = [n for n in names if n not in PHASES]
    if unknown:
        raise ValueError(f"{key}: unknown phase {unknown[0]!r}; phases, in order: {', '.join(PHASES)}")
    return tuple(n for n in PHASES if n in names)  # always in pipeline order


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
