"""Load an experiment template: the v1 format plus our optional manifest.yaml.

v1 format: experiment.py (runs as `python experiment.py --out_dir=run_i`, writes run_i/final_info.json),
plot.py, prompt.json {"system", "task_description"}, seed_ideas.json (list of ideas), latex/template.tex,
and optionally a run_0/ baseline. The manifest adds the primary metric and its direction, size profiles,
tunable hyperparameters, ablation switches and resource needs.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from engine.errors import TemplateError
from engine.inputs.files import read_text
from engine.inputs.values import Section, is_number, show
from search import code_edit
from search.code_edit import Scalar
from search.metric import MetricSpec
from search.offline import TunableSpec

if TYPE_CHECKING:
    from engine.config import RunConfig

log = logging.getLogger(__name__)

# Files and folders of a template that a node does not need in its working directory.
# held_out.py (the sealed evaluator of held-out metrics) goes to the final evaluation's runs only
NOT_COPIED = {"experiment.py", "manifest.yaml", "latex", "__pycache__", ".git", "held_out.py"}
MAX_SUPPORT_BYTES = 20 * 2**20


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class Manifest:
    metric: MetricSpec | None = None
    profiles: dict[str, dict[str, Scalar]] = field(default_factory=dict)
    default_profile: str | None = None
    tunables: dict[str, TunableSpec] = field(default_factory=dict)
    ablations: dict[str, dict[str, Scalar]] = field(default_factory=dict)
    resources: Resources = Resources()
    seed_param: str | None = None  # the hyperparameter that sets the random seed (multi-seed evaluation)
    held_out: tuple[str, ...] = ()  # metrics the search never sees, reported from the final evaluation only


@dataclass(frozen=True)
class Template:
    path: Path
    name: str
    experiment_code: str
    prompt: dict[str, str]
    seed_ideas: list[dict[str, Any]]
    plot_code: str | None
    latex_path: Path | None
    manifest: Manifest | None
    baseline_final_info: dict[str, Any] | None  # from a run_0/ shipped with the template, if any
    held_out_code: str | None = None  # held_out.py: computes the held-out metrics in final evaluation runs only

    def code_for_profile(self, profile: str | None) -> str:
        """experiment.py with the profile's hyperparameter values written into it."""
        if profile is None:
            return self.experiment_code
        profiles = self.manifest.profiles if self.manifest else {}
        if profile not in profiles:
            raise TemplateError(self.path / "manifest.yaml", "profiles",
                                f"no profile {profile!r} (topic.profile={profile}); available: "
                                f"{', '.join(sorted(profiles)) or 'none'}")
        try:
            return code_edit.set_values(self.experiment_code, profiles[profile])
        except KeyError as e:
            raise TemplateError(self.path / "manifest.yaml", f"profiles.{profile}", str(e.args[0])) from None

    def support_files(self) -> dict[str, bytes]:
        """Everything besides experiment.py that a node's working directory gets (plot.py, data files)."""
        files: dict[str, bytes] = {}
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path)
            if not p.is_file() or rel.parts[0] in NOT_COPIED or rel.parts[0].startswith("run_"):
                continue
            if any(part == "__pycache__" for part in rel.parts):
                continue
            files[rel.as_posix()] = p.read_bytes()
        total = sum(len(b) for b in files.values())
        if total > MAX_SUPPORT_BYTES:
            raise TemplateError(self.path, "files", f"{total / 2**20:.0f} MiB of support files; keep large "
                                "data outside the template and read it by absolute path")
        return files


def template_free(topic_file: Path) -> Template:
    """A topic without a template: no program to start from (the model drafts it from the idea), no support
    files; the topic file's text is the task description."""
    return Template(path=topic_file.parent, name=topic_file.stem, experiment_code="",
                    prompt={"system": "", "task_description": read_text(topic_file, f"topic file {topic_file}")},
                    seed_ideas=[],
                    plot_code=None, latex_path=None, manifest=None, baseline_final_info=None)


def template_and_code(cfg: RunConfig) -> tuple[Template, str | None, str]:
    """The run's template (a template-free stand-in for a topic file), its size profile and its code at that
    profile; TemplateError naming the file and the field."""
    if cfg.topic.path is None:  # a topic file without a template
        assert cfg.topic.file is not None
        template = template_free(cfg.topic.file)
    else:
        template = load_template(cfg.topic.path)
    manifest = template.manifest
    profile = cfg.topic.profile or (manifest.default_profile if manifest else None)
    if profile is not None and manifest is None:
        raise TemplateError(template.path, "topic.profile", f"topic.profile={profile} but the template has no "
                            "manifest.yaml with profiles; set topic.profile=null")
    return template, profile, template.code_for_profile(profile)


def check_inputs(cfg: RunConfig) -> None:
    """What the experiments read from the user, read before the launch makes a run directory."""
    template_and_code(cfg)


def load_template(path: str | Path) -> Template:
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise TemplateError(path, "path", "not a folder (set topic.path=/abs/path/to/template)")
    experiment = path / "experiment.py"
    if not experiment.is_file():
        raise TemplateError(experiment, "experiment.py", "missing: a template needs experiment.py (is topic.path a "
                            "template folder?)")
    code = read_text(experiment)
    try:
        compile(code, str(experiment), "exec")
    except SyntaxError as e:
        raise TemplateError(experiment, f"line {e.lineno}", f"syntax error: {e.msg}") from None

    prompt = _read_json(path / "prompt.json", dict)
    for key in ("system", "task_description"):
        if not isinstance(prompt.get(key), str):
            raise TemplateError(path / "prompt.json", key, "missing or not a string")
    seed_ideas = _read_json(path / "seed_ideas.json", list)
    for i, idea in enumerate(seed_ideas):
        if not isinstance(idea, dict) or not isinstance(idea.get("Name"), str):
            raise TemplateError(path / "seed_ideas.json", f"[{i}].Name", "each idea needs a string Name")

    plot = path / "plot.py"
    if not plot.is_file():
        log.warning("%s has no plot.py: nodes will have no plots", path)
    latex = path / "latex" / "template.tex"
    if not latex.is_file():
        log.warning("%s has no latex/template.tex: the writeup phase will not be able to run", path)

    baseline = None
    baseline_file = path / "run_0" / "final_info.json"
    if baseline_file.is_file():
        baseline = _read_json(baseline_file, dict)

    manifest_file = path / "manifest.yaml"
    manifest = _load_manifest(manifest_file, code) if manifest_file.is_file() else None
    evaluator = path / "held_out.py"
    if evaluator.is_file() and not (manifest and manifest.held_out):
        raise TemplateError(evaluator, "held_out.py", "the template has a held-out evaluator but its manifest.yaml "
                            "names no held_out metrics: list the metrics it writes (held_out: [name, ...])")
    return Template(path=path, name=path.name, experiment_code=code, prompt=prompt, seed_ideas=seed_ideas,
                    plot_code=read_text(plot) if plot.is_file() else None,
                    latex_path=latex if latex.is_file() else None, manifest=manifest,
                    baseline_final_info=baseline, held_out_code=read_text(evaluator) if evaluator.is_file() else None)


def _read_json(file: Path, kind: type) -> Any:
    if not file.is_file():
        raise TemplateError(file, file.name, "missing")
    try:
        data = json.loads(read_text(file))
    except json.JSONDecodeError as e:
        raise TemplateError(file, f"line {e.lineno}", f"invalid JSON: {e.msg}") from None
    if not isinstance(data, kind):
        raise TemplateError(file, "top level", f"expected a JSON {'object' if kind is dict else 'list'}")
    return data


def _load_manifest(file: Path, code: str) -> Manifest:
    try:
        raw = yaml.safe_load(read_text(file)) or {}
    except yaml.YAMLError as e:
        raise TemplateError(file, "yaml", str(e).replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise TemplateError(file, "top level", "expected a mapping")
    known = {"metric", "profiles", "default_profile", "tunables", "ablations", "resources", "seed_param", "held_out"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TemplateError(file, unknown[0], f"unknown field; known fields: {', '.join(sorted(known))}")
    hyper = code_edit.find_tunables(code)

    metric = None
    if "metric" in raw:
        m = raw["metric"]
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            raise TemplateError(file, "metric.name", "expected metric: {name: ..., direction: maximize|minimize}")
        try:
            metric = MetricSpec(m["name"], m.get("direction", "maximize"))
        except ValueError as e:
            raise TemplateError(file, "metric.direction", str(e)) from None

    profiles = _settings_map(file, "profiles", raw.get("profiles", {}), hyper)
    default_profile = raw.get("default_profile")
    if default_profile is not None and default_profile not in profiles:
        raise TemplateError(file, "default_profile", f"{default_profile!r} is not one of the profiles")
    ablations = _settings_map(file, "ablations", raw.get("ablations", {}), hyper)

    tunables = _tunables(file, raw.get("tunables") or {}, hyper)

    resources = _resources(file, raw.get("resources") or {})
    seed_param = raw.get("seed_param")
    if seed_param is not None and seed_param not in hyper:
        raise TemplateError(file, "seed_param", f"{seed_param!r} is not a hyperparameter of experiment.py")
    held_out = raw.get("held_out") or []
    if not isinstance(held_out, list) or not all(isinstance(n, str) and n for n in held_out):
        raise TemplateError(file, "held_out", "expected a list of metric names (keys of final_info.json's means)")
    if metric is not None and metric.name in held_out:
        raise TemplateError(file, "held_out", f"{metric.name!r} is the primary metric: the search decides on it, "
                            "so it cannot be held out")
    return Manifest(metric, profiles, default_profile, tunables, ablations, resources, seed_param, tuple(held_out))


def _tunables(file: Path, raw: dict[str, Any], hyper: dict) -> dict[str, TunableSpec]:
    """The manifest's tunables: each a hyperparameter of experiment.py, with values or a [low, high] range."""
    tunables: dict[str, TunableSpec] = {}
    for name, spec in raw.items():
        where = f"tunables.{name}"
        if name not in hyper:
            raise TemplateError(file, where, "not a hyperparameter of experiment.py (argparse default, "
                                "module constant or function default)")
        if not isinstance(spec, dict):
            raise TemplateError(file, where, "expected {values: [...]} or {low: .., high: .., log: bool}")
        values = spec.get("values", ())
        low, high = spec.get("low"), spec.get("high")
        if not isinstance(values, list) and values != ():
            raise TemplateError(file, f"{where}.values", "expected a list of values")
        values = tuple(values)
        if not values and (low is None or high is None):
            raise TemplateError(file, where, "give either values: [...] or both low and high")
        if any(v is not None and not is_number(v) for v in (low, high)):
            raise TemplateError(file, where, f"low and high must be numbers, got {show(low)} and {show(high)}")
        if low is not None and high is not None and not float(low) <= float(high):
            raise TemplateError(file, where, f"low ({low}) must not exceed high ({high})")
        current = hyper[name].value
        tunables[name] = TunableSpec(name, values, None if low is None else float(low),
                                     None if high is None else float(high), bool(spec.get("log", False)),
                                     isinstance(current, int) and not isinstance(current, bool))
    return tunables


def _resources(file: Path, raw: Any) -> Resources:
    known = ("cpus", "gpus", "memory_gb", "timeout_s")
    if isinstance(raw, dict) and set(raw) - set(known):
        raise TemplateError(file, "resources", f"unknown field {sorted(set(raw) - set(known))[0]!r}; known: "
                            f"{', '.join(known)}")
    try:
        r = Section(raw, "resources")
        return Resources(r.number("cpus", at_least=0, default=1.0), r.number("gpus", at_least=0, default=0.0),
                         r.number("memory_gb", above=0, null="the config's", default=None),
                         r.number("timeout_s", above=0, null="the config's", default=None))
    except ValueError as e:
        raise TemplateError(file, "resources", str(e)) from None


def _settings_map(file: Path, section: str, raw: Any, hyper: dict) -> dict[str, dict[str, Scalar]]:
    if not isinstance(raw, dict):
        raise TemplateError(file, section, "expected a mapping of name -> {hyperparameter: value}")
    out = {}
    for name, settings in raw.items():
        settings = settings or {}
        if not isinstance(settings, dict):
            raise TemplateError(file, f"{section}.{name}", "expected a mapping {hyperparameter: value}")
        for key in settings:
            if key not in hyper:
                raise TemplateError(file, f"{section}.{name}.{key}", "not a hyperparameter of experiment.py")
        out[str(name)] = dict(settings)
    return out
