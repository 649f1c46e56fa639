"""Every key in conf/ takes the values it allows and refuses every other one in one line that names it (issue 25).

CONTRACT below says, for each key, what a launch from the shipped defaults must accept. Every key is tried with every
value of PROBES (wrong types, boundaries, zero, negatives, NaN and infinities, empty and unknown names, and the
key's valid values), then a property test draws keys and values at random; each runs the check a launch makes before
Hydra makes the run directory (engine/inputs/startup.py) on the shipped config with that one value changed. An accepted
value must be allowed, a refused one must not be, and a refusal is an EngineError of one line that names the key.
Another test makes sure CONTRACT covers every key the shipped conf/ has, so a key added without a check fails here.
A few real launches show the same refusal from the command line: exit status 2, one line on stderr, no traceback,
no run directory, within seconds.
"""
import copy
import datetime as dt
import math
import string
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from engine import config as config_mod
from engine.errors import EngineError
from engine.inputs.startup import check_task
from engine.inputs.values import is_int, is_number
from stages.spec import STAGE_NAMES
from tests.conftest import FIXTURES, REPO, launch

# the conf/model entries a role can name: every one with a model name (the local-server presets have none until
# the user gives one)
MODELS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml") if yaml.safe_load(p.read_text())["name"])
TOPIC_FILE = str(FIXTURES / "topics" / "tiny_regression.md")


def ints(at_least=None, at_most=None, null=False):
    return lambda v: (null and v is None) or (is_int(v) and (at_least is None or v >= at_least)
                                               and (at_most is None or v <= at_most))


def nums(at_least=None, above=None, at_most=None, null=False, inf=False):
    return lambda v: (null and v is None) or (inf and v == math.inf) or (
        is_number(v) and math.isfinite(v) and (at_least is None or v >= at_least)
        and (above is None or v > above) and (at_most is None or v <= at_most))


def text(null=False):
    return lambda v: (null and v is None) or is_int(v) or (isinstance(v, str) and v.strip() != "")


def one_of(*options, null=False):
    return lambda v: (null and v is None) or (isinstance(v, str) and v in options)


def flag(v):
    return isinstance(v, bool)


def only(*values):
    return lambda v: any(v == x and type(v) is type(x) for x in values)


def names(options, empty_ok=False, but=()):
    def allowed(v):
        listed = [v] if isinstance(v, str) else v
        return isinstance(listed, list) and (empty_ok or listed) and len(set(map(str, listed))) == len(listed) \
            and all(isinstance(n, str) and n in options and n not in but for n in listed)
    return allowed


def stage_prefix(v):
    listed = [v] if isinstance(v, str) else v
    return isinstance(listed, list) and listed != [] and listed == list(STAGE_NAMES[:len(listed)])


def gpu_fraction(v):
    return nums(at_least=0, null=True)(v) and (v is None or v <= 1 or v == int(v))


def release_date(v):
    try:
        return v is None or (isinstance(v, str) and dt.date.fromisoformat(v) is not None)
    except ValueError:
        return False


def token_range(v):
    return isinstance(v, list) and len(v) == 2 and all(is_int(x) and x >= 1 for x in v) and v[0] <= v[1]


def url(v):
    return isinstance(v, str) and v.startswith(("http://", "https://"))


STAGE = {"max_nodes": ints(1), "offline_max_nodes": ints(1), "run_to_budget": flag}
ENGINE = {"base_url": url, "api_key_env": text(null=True), "requests_per_s": nums(above=0)}
# what a launch from the shipped defaults (+topic=grokking, no model) accepts for each key, the others as shipped
CONTRACT = {
    "resume": only(None), "proposer": one_of("auto", "offline"), "seed": ints(0, 2**32 - 1),
    "topic.name": text(), "topic.path": only("templates/grokking"), "topic.profile": one_of("cpu", "full", "smoke",
                                                                                           null=True),
    "topic.metric": text(null=True), "topic.direction": one_of("maximize", "minimize", null=True),
    "topic.file": only(TOPIC_FILE),
    "search.num_drafts": ints(1), "search.debug_prob": nums(0, at_most=1), "search.max_debug_depth": ints(0),
    "search.lookahead": ints(0, null=True), "search.budget_scale": nums(above=0),
    "stages.run": stage_prefix, "stages.num_seeds": ints(1), "stages.critique_max_plots": ints(1),
    "stages.scale_up_fraction": nums(0, at_most=1), "stages.tie_break_tolerance": nums(0), "stages.noise_z": nums(0),
    "stages.final_seeds": ints(2),
    **{f"stages.{s}.{k}": ok for s in STAGE_NAMES for k, ok in STAGE.items()},
    "cluster.kind": one_of("local", "ray", "threads"), "cluster.slots": ints(1), "cluster.threads_per_node": ints(1),
    "cluster.num_cpus": nums(above=0, null=True), "cluster.num_gpus": nums(0, null=True),
    "cluster.address": text(null=True), "cluster.scratch_dir": text(null=True),
    "cluster.runner.num_cpus": nums(0), "cluster.runner.gpu_fraction": gpu_fraction,
    "sandbox.use_bwrap": one_of("auto", "always", "never"), "sandbox.timeout_s": nums(above=0, null=True, inf=True),
    "sandbox.plot_timeout_s": nums(above=0, null=True), "sandbox.memory_gb": nums(above=0, null=True, inf=True),
    "sandbox.default_timeout_s": nums(above=0, null=True), "sandbox.default_memory_gb": nums(above=0, null=True),
    "sandbox.max_procs": ints(1, null=True), "sandbox.max_file_gb": nums(above=0, null=True),
    "sandbox.max_dir_gb": nums(above=0, null=True), "sandbox.max_files": ints(1, null=True),
    "sandbox.uid": ints(1, null=True), "sandbox.gid": ints(0), "sandbox.max_artifact_mb": nums(above=0, null=True),
    "sandbox.tail_chars": ints(0), "sandbox.poll_s": nums(above=0, at_most=60),
    "tracking.kind": one_of("wandb", "none"), "tracking.project": text(null=True), "tracking.entity": text(null=True),
    "tracking.group": text(null=True), "tracking.mode": one_of("online", "offline", "disabled", null=True),
    "tracking.job_type": text(),
    "model.name": lambda v: text(null=True)(v) and v != "replay",
    "model.provider": one_of("openai", "anthropic", "bedrock", "vertex", null=True), "model.base_url": only(None),
    "model.api_key_env": text(null=True), **{f"model.prices.{k}": nums(0, null=True)
                                             for k in ("input", "output", "cached_input")},
    "model.release_date": release_date, "model.vision": flag, "model.tool_calling": flag,
    "model.structured_output": flag, "model.max_output_tokens": ints(1), "model.context_window": ints(1, null=True),
    "model.quirks.system_message": flag,
    "model.quirks.temperature": flag,
    "ideas._settings_": only("engine.ideas.config:IdeasConfig"), "ideas.num_ideas": ints(1),
    "ideas.num_reflections": ints(1), "ideas.novelty_rounds": ints(1), "ideas.check_novelty": flag,
    "ideas.load": only(None), "ideas.index": ints(0, null=True),
    "literature._settings_": only("engine.literature.config:LiteratureConfig"),
    "literature.engines": names(("semantic_scholar", "openalex", "arxiv")),
    "literature.results_per_query": ints(1, 100), "literature.timeout_s": nums(above=0, null=True),
    "literature.max_attempts": ints(1), "literature.max_wait_s": nums(0), "literature.breaker_failures": ints(1),
    **{f"literature.{e}.{k}": ok for e in ("semantic_scholar", "openalex", "arxiv") for k, ok in ENGINE.items()},
    "writeup._settings_": only("engine.writeup.config:WriteupConfig"),
    "writeup.format": one_of("workshop", "conference"), "writeup.page_limit": ints(1, null=True),
    "writeup.max_figures": ints(1), "writeup.num_cite_rounds": ints(0), "writeup.compile_rounds": ints(0),
    "writeup.plot_retries": ints(0), "writeup.latex_timeout_s": nums(above=0, null=True),
    "review._settings_": only("engine.review.config:ReviewConfig"), "review.num_reflections": ints(1),
    "review.num_fs_examples": ints(0), "review.num_reviews_ensemble": ints(1), "review.temperature": nums(0, at_most=2),
    "review.figure_review": flag, "review.on_hidden_text": one_of("reject", "flag"),
    "sweep._settings_": only("engine.sweep:SweepSettings"), "sweep.max_concurrent_runs": ints(1),
    "sweep.fair_share": flag, "sweep.stop_grace_s": nums(0),
    "pipeline._settings_": only("engine.phase:PipelineSettings"),
    "pipeline.phases": names(("ideas", "experiments", "writeup", "review")),
    "pipeline.redo": names(("ideas", "experiments", "writeup", "review"), empty_ok=True, but=("experiments",)),
    "pipeline.dry_run": flag,
    "budget._settings_": only("engine.budget.settings:BudgetSettings"), "budget.max_usd": nums(above=0, null=True),
    **{f"budget.phase_max_usd.{p}": nums(above=0, null=True) for p in ("ideas", "experiments", "writeup", "review")},
    "budget.max_gpu_hours": nums(above=0, null=True), "budget.chars_per_token": nums(above=0),
    "budget.image_tokens": ints(1),
    **{f"budget.tokens_per_call.{r}.{side}": token_range for r in ("code", "feedback", "vision", "select", "summary",
                                                                    "review", "ideation", "citation", "writeup")
       for side in ("input", "output")},
    "llm.max_concurrency": ints(1), "llm.max_retries": ints(0), "llm.timeout_s": nums(above=0, null=True),
    "llm.reask": ints(0), "llm.temperature": nums(0, at_most=2), "llm.max_tokens": ints(1),
    "llm.roles.code": lambda v: v is None or (isinstance(v, str) and v in MODELS),
    **{f"llm.roles.{r}": only(None) for r in ("feedback", "vision", "select", "summary", "review", "ideation",
                                              "citation", "writeup")},
    "replay.run": only(None), "replay.fallback": one_of("error", "live"),
}

WORDS = ["abc", "two", "", " ", "1e3", "null", "none", "true", "-1", "auto", "offline", "llm", "cpu", "smoke",
         "maximize", "minimize", "local", "ray", "threads", "always", "never", "wandb", "online", "disabled",
         "openai", "anthropic", "workshop", "conference", "error", "live", "http://127.0.0.1:9/v1", "2024-10-22",
         "2024-13-01", "engine.inputs.values:Section", "gpt-4o", "replay", "templates", ".", *STAGE_NAMES, "arxiv",
         "openalex", "semantic_scholar", "ideas", "experiments", "writeup", "review"]
SAFE = st.text(alphabet=string.ascii_letters + string.digits + " _-./:", max_size=12)  # no ${...} or ???: Hydra's
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.5, 0.5, 1.5, 2.0, 60.5, 100.0, 101,
                                                                      2**32, math.inf, -math.inf, math.nan]),
    SAFE, st.sampled_from(WORDS), st.lists(st.sampled_from(WORDS), max_size=4),
    st.lists(st.sampled_from([*STAGE_NAMES, "ideas", "arxiv", "openalex"]), min_size=1, max_size=4).map(list),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2))


def shipped(topic: str, *overrides: str) -> dict:
    from hydra import compose, initialize_config_dir

    import engine.launch  # noqa: F401 - the config's resolvers

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("config", overrides=[f"+topic={topic}", "tracking=none", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


GROKKING = shipped("grokking")
TOPIC_RUN = shipped("file", f"topic.file={TOPIC_FILE}")


def leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in d.items():
        out += leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value else [f"{prefix}{key}"]
    return out


def with_value(base: dict, key: str, value) -> dict:
    """`base` with `key` set to `value` (the sections on the key's path copied, the rest shared)."""
    cfg = dict(base)
    *path, last = key.split(".")
    node = cfg
    for part in path:
        node[part] = dict(node[part])
        node = node[part]
    node[last] = copy.deepcopy(value)
    return cfg


NEVER_MADE = REPO / "runs" / "never-made"


def check(cfg: dict):
    """The launch's check (engine/inputs/startup.py): the config as Hydra hands it over, the settings, the input
    files."""
    return check_task(OmegaConf.create(cfg), NEVER_MADE, [])


def build_check(cfg: dict):
    """The settings' part of the check, without OmegaConf's round trip (which gives these plain values back as
    they are): the sweep over every key and probe stays within seconds."""
    return config_mod.build(cfg)


def build_then_check(cfg: dict):
    """For the keys that the config's resolution or the input checks read: the whole check once the build passed."""
    return build_check(cfg) and check(cfg)


# keys checked beyond the config's build: by the launch's resolution of the config, or by the phases' input checks
FULL_CHECK = {"resume", "topic.path", "topic.profile", "topic.file", "pipeline.phases", "ideas.load"}
PROBES = [None, True, False, 0, 1, -1, 2, 3, 100, 101, 2**32 - 1, 2**32, 0.0, 0.5, -0.5, 1.0, 1.5, 2.5, 60.0, 60.5,
          math.inf, -math.inf, math.nan, "", " ", "abc", "1e3", "null", "true", [], {}, {"a": 1}, [1], ["abc"], [1, 2],
          [2, 1], [0, 5], [1.0, 2.0], "reject", "flag"]


def verdict(key: str, value, run) -> str | None:
    """What is wrong with the check's answer to key=value, or None."""
    allowed = bool(CONTRACT[key](value))
    try:
        run(with_value(TOPIC_RUN if key == "topic.file" else GROKKING, key, value))
    except EngineError as e:
        message = str(e)
        if allowed:
            return f"{key}={value!r} is allowed, but was refused: {message}"
        if key not in message:
            return f"{key}={value!r}: the refusal does not name the key: {message}"
        if "\n" in message.strip():
            return f"{key}={value!r}: more than one line: {message}"
        return None
    return None if allowed else f"{key}={value!r} was accepted"


def test_the_contract_names_every_key_of_the_shipped_config():
    keys = set(leaves(GROKKING)) | set(leaves(TOPIC_RUN))
    assert keys - set(CONTRACT) == set(), "a key without a contract: say what it allows in CONTRACT"
    assert set(CONTRACT) - keys == set(), "a contract for a key conf/ no longer has"


def test_the_shipped_config_passes():
    check(GROKKING)
    check(TOPIC_RUN)


def test_every_key_with_every_probe():
    """Each key against every probe and its own valid values: all wrongly accepted or wrongly refused values at once."""
    wrong = []
    for key in sorted(CONTRACT):
        run = build_then_check if key in FULL_CHECK else build_check
        own = [value for value in WORDS if CONTRACT[key](value)]
        wrong += [w for value in PROBES + own if (w := verdict(key, value, run))]
    assert wrong == [], f"{len(wrong)} wrong answers:\n" + "\n".join(wrong[:40])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(CONTRACT)), value=VALUES)
def test_random_keys_and_values_through_the_whole_check(key, value):
    """Values beyond the probes (any integer, float, text, list or mapping) and the whole check for every key."""
    assert verdict(key, value, check) is None


def test_a_key_taken_out_of_a_saved_config_is_named():
    cfg = copy.deepcopy(GROKKING)
    del cfg["sandbox"]["max_procs"]
    with pytest.raises(EngineError, match=r"sandbox\.max_procs: missing"):
        check(cfg)


@pytest.mark.parametrize("override, key", [
    ("sandbox.timeout_s=-5", "sandbox.timeout_s=-5"),
    ("cluster.slots=two", "cluster.slots='two'"),
    ("literature.engines=[]", "literature.engines=[]"),
    ("search.budget_scale=abc", "search.budget_scale='abc'"),
])
def test_a_launch_refuses_in_one_line_with_exit_2_and_leaves_no_run_directory(tmp_path, override, key):
    start = time.monotonic()
    res = launch("+topic=grokking", override, f"hydra.run.dir={tmp_path / 'run'}")
    took = time.monotonic() - start
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == "", res.stderr
    assert key in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()
    assert took < 60, f"refused after {took:.0f} s"  # a few seconds, even on a loaded 2-core machine


def test_a_sweep_checks_every_point_before_it_makes_its_folder_or_starts_ray(tmp_path):
    res = launch("-m", "+topic=grokking", "seed=0,1", "sandbox.max_procs=4,0", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert res.returncode == 2, res.stderr
    assert "error: sweep point seed=0,sandbox.max_procs=0: bad config value: sandbox.max_procs=0" in res.stderr
    assert "Traceback" not in res.stderr and "sweep: started" not in res.stderr
    assert not (tmp_path / "sweep").exists()
