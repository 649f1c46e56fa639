"""Config defaults live in one place, conf/: the typed settings have none of their own (they drifted once:
stages.tie_break_tolerance was 0.01 in the YAML and 0.0 in the code), and a run saved before a key existed
resumes with that key's shipped default."""
import dataclasses
import math

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from engine import config as config_mod
from engine.budget.settings import BudgetSettings
from engine.ideas.config import IdeasConfig
from engine.inputs.startup import with_new_keys
from engine.literature.config import LiteratureConfig
from engine.llm.service import LLMSettings
from engine.nodes.config import ClusterConfig
from engine.nodes.node_exec import NodeJob
from engine.phase import PipelineSettings
from engine.review.config import ReviewConfig
from engine.sandbox.config import SandboxConfig
from engine.sweep import SweepSettings
from engine.tracking import TrackingConfig
from engine.writeup.config import WriteupConfig
from search.policy import PolicyConfig
from stages.spec import StagesConfig, StageSettings
from tests.conftest import REPO, run_config

SETTINGS = (PolicyConfig, StagesConfig, StageSettings, LLMSettings, TrackingConfig, ClusterConfig, SandboxConfig,
            IdeasConfig, LiteratureConfig, WriteupConfig, ReviewConfig, PipelineSettings, SweepSettings, NodeJob,
            BudgetSettings)


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_the_typed_settings_have_no_defaults_of_their_own(cls):
    with_default = [f.name for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert with_default == [], f"{cls.__name__} has defaults {with_default}: they belong in conf/"


def test_the_shipped_values_are_the_yaml_values():
    stages = yaml.safe_load((REPO / "conf" / "stages" / "default.yaml").read_text())
    search = yaml.safe_load((REPO / "conf" / "search" / "bfts.yaml").read_text())
    cfg = run_config()
    shipped = config_mod.shipped_stages()
    assert cfg.stages.tie_break_tolerance == stages["tie_break_tolerance"] == shipped.tie_break_tolerance
    assert cfg.stages.noise_z == stages["noise_z"] and cfg.policy.num_drafts == search["num_drafts"]
    assert cfg.policy == config_mod.shipped_policy() and cfg.llm == config_mod.shipped_llm()


def test_a_run_saved_before_a_key_existed_resumes_with_its_shipped_default():
    import engine.launch  # noqa: F401 - the config's resolvers

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("config", overrides=["+topic=grokking", "tracking=none"])
    saved = OmegaConf.to_container(cfg, resolve=True)
    del saved["stages"]["noise_z"], saved["search"]["lookahead"], saved["sandbox"]["max_files"]
    saved["stages"]["num_seeds"] = 5  # a saved value wins
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        resume_cfg = compose("config", overrides=["resume=/some/run"])
    filled = with_new_keys(saved, resume_cfg)
    built = config_mod.build(filled)
    assert built.stages.noise_z == 2.0 and built.policy.lookahead is None and built.sandbox.max_files == 100000
    assert built.stages.num_seeds == 5 and built.topic.name == "grokking"


def test_the_sandbox_fallbacks_are_the_yaml_values():
    """A template that declares no limits runs under conf/sandbox's default_timeout_s and default_memory_gb."""
    sandbox = yaml.safe_load((REPO / "conf" / "sandbox" / "default.yaml").read_text())
    cfg = run_config()
    assert cfg.sandbox.timeout_s is None and cfg.sandbox.memory_gb is None
    resolved = cfg.sandbox.for_template(None, None)
    assert resolved.timeout_s == sandbox["default_timeout_s"] and resolved.memory_gb == sandbox["default_memory_gb"]
    assert cfg.sandbox.for_template(12.0, 2.0).timeout_s == 12.0
    plots = cfg.sandbox.for_plots()
    assert plots.timeout_s == sandbox["plot_timeout_s"] and plots.memory_gb == sandbox["default_memory_gb"]


def test_no_limit_is_null_at_the_end_of_the_chain_and_inf_over_a_templates_own():
    """sandbox.timeout_s / memory_gb: a number, else the template's resources, else the defaults; null for a
    default is no limit; inf lifts the limit whatever the template says. The other limits take null for none."""
    lifted = run_config("sandbox.default_timeout_s=null", "sandbox.default_memory_gb=null", "sandbox.max_procs=null",
                        "sandbox.max_file_gb=null", "sandbox.max_dir_gb=null", "sandbox.max_files=null",
                        "sandbox.max_artifact_mb=null", "sandbox.plot_timeout_s=null").sandbox
    free = lifted.for_template(None, None)
    assert free.limit_s == math.inf and free.memory_gb is None and free.plot_timeout_s == math.inf
    assert (free.max_procs, free.max_file_gb, free.max_dir_gb, free.max_files, free.max_artifact_mb) == (None,) * 5
    assert lifted.for_template(12.0, 2.0).limit_s == 12.0 and lifted.for_template(12.0, 2.0).memory_gb == 2.0
    over = run_config("sandbox.timeout_s=inf", "sandbox.memory_gb=inf").sandbox.for_template(12.0, 2.0)
    assert over.limit_s == math.inf and over.memory_gb is None
    assert run_config("llm.timeout_s=null", "literature.timeout_s=null").llm.timeout_s is None
