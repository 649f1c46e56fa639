"""Everything fixed about a run's search, derived once from config and template: the template at its size
profile, the primary metric, the sandbox's limits."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from engine.config import RunConfig
from engine.errors import EngineError
from engine.experiments.template import Template, template_and_code
from engine.sandbox.config import SandboxConfig
from engine.sandbox.run import bwrap_path
from search import held_out
from search.metric import MetricSpec, guess_direction, metric_names

log = logging.getLogger(__name__)


@dataclass
class Experiment:
    """Everything fixed about a run's search, derived once from config and template."""

    cfg: RunConfig
    template: Template
    profile: str | None
    base_code: str
    spec: MetricSpec | None  # None: inferred from the baseline
    sandbox: SandboxConfig
    support_files: dict[str, bytes]  # read once: runners get bytes, never the template's path

    @property
    def held_out(self) -> tuple[str, ...]:
        """Metrics the search never sees (the manifest's held_out)."""
        return self.template.manifest.held_out if self.template.manifest else ()


def prepare(cfg: RunConfig) -> Experiment:
    if cfg.topic.path is None and cfg.proposer == "offline":  # a topic file without a template
        raise EngineError(f"topic file {cfg.topic.file} has no template: a model must draft the first program "
                          "(model=<name>, or model.base_url=URL model.name=NAME)")
    template, profile, base_code = template_and_code(cfg)
    manifest = template.manifest
    spec = _metric_spec(cfg, template)
    if spec is not None and manifest is not None and spec.name in manifest.held_out:
        raise EngineError(f"the primary metric {spec.name!r} is held out in {template.path / 'manifest.yaml'} "
                          "(held_out): the search decides on the primary metric, so choose another (topic.metric)")
    res = manifest.resources if manifest else None
    sandbox = cfg.sandbox.for_template(res.timeout_s if res else None, res.memory_gb if res else None)
    bwrap_path(sandbox)  # warn (or refuse, with use_bwrap=always) before any work
    support = template.support_files() if template.experiment_code else {}
    return Experiment(cfg, template, profile, base_code, spec, sandbox, support)


def _metric_spec(cfg: RunConfig, template: Template) -> MetricSpec | None:
    manifest_metric = template.manifest.metric if template.manifest else None
    if cfg.topic.metric:
        direction = cfg.topic.direction or (manifest_metric.direction if manifest_metric else "maximize")
        return MetricSpec(cfg.topic.metric, direction)
    if manifest_metric:
        if cfg.topic.direction:
            return MetricSpec(manifest_metric.name, cfg.topic.direction)
        return manifest_metric
    if template.baseline_final_info is not None:
        visible, _ = held_out.split(template.baseline_final_info, template.manifest.held_out if template.manifest
                                    else ())
        return first_metric(visible, cfg, "the template's run_0/final_info.json")
    return None


def first_metric(final_info: dict[str, Any], cfg: RunConfig, source: str) -> MetricSpec:
    try:
        name = metric_names(final_info)[0]
    except ValueError as e:
        raise EngineError(f"{source}: {e}") from None
    direction = cfg.topic.direction or guess_direction(name)
    log.warning("no primary metric declared: using %r, %s (%s), the first metric of %s; set topic.metric=NAME "
                "topic.direction=maximize|minimize to choose", name, direction,
                "given" if cfg.topic.direction else "guessed from its name", source)
    return MetricSpec(name, direction)


