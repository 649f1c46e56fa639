import json
from pathlib import Path

import pytest

from engine.errors import TemplateError
from engine.experiments.template import load_template
from search.code_edit import find_tunables

REPO = Path(__file__).resolve().parents[2]


def test_v1_template_loads_without_manifest(v1_template):
    t = load_template(v1_template)
    assert t.manifest is None and t.baseline_final_info is None
    assert t.code_for_profile(None) == t.experiment_code
    assert set(t.support_files()) == {"plot.py", "prompt.json", "seed_ideas.json"}


def test_shipped_run_0_is_read_as_baseline(v1_template):
    (v1_template / "run_0").mkdir()
    (v1_template / "run_0" / "final_info.json").write_text('{"toy": {"means": {"val_loss": 3.0}}}')
    t = load_template(v1_template)
    assert t.baseline_final_info == {"toy": {"means": {"val_loss": 3.0}}}
    assert not any(k.startswith("run_0") for k in t.support_files())


def test_grokking_profiles_rewrite_hyperparameters():
    t = load_template(REPO / "templates" / "grokking")
    assert t.manifest.metric.name == "step_val_acc_99" and t.manifest.metric.direction == "minimize"
    smoke = find_tunables(t.code_for_profile("smoke"))
    assert smoke["prime"].value == 23 and smoke["num_steps"].value == 150
    full = find_tunables(t.code_for_profile("full"))
    assert (full["prime"].value, full["num_steps"].value, full["dim_model"].value) == (97, 7500, 128)
    with pytest.raises(TemplateError, match="no profile 'huge'"):
        t.code_for_profile("huge")


@pytest.mark.parametrize("filename, content, field", [
    ("prompt.json", '{"system": "s"}', "task_description"),
    ("prompt.json", '{"system": ', "line 1"),
    ("seed_ideas.json", '[{"Title": "no name"}]', "[0].Name"),
    ("experiment.py", "def broken(:\n", "line 1"),
    ("manifest.yaml", "metric: {name: val_loss, direction: sideways}\n", "metric.direction"),
    ("manifest.yaml", "tunables: {lr: {low: 0.1, high: 1}}\n", "tunables.lr"),
    ("manifest.yaml", "tunables: {LEARNING_RATE: {low: 1, high: 0.1}}\n", "tunables.LEARNING_RATE"),
    ("manifest.yaml", "profiles: {small: {NUM_UNITS: 2, nope: 1}}\n", "profiles.small.nope"),
    ("manifest.yaml", "metrics: {}\n", "metrics"),
    ("manifest.yaml", "resources: {gpu: 1}\n", "resources"),
])
def test_malformed_template_names_file_and_field(v1_template, filename, content, field):
    (v1_template / filename).write_text(content)
    with pytest.raises(TemplateError) as err:
        load_template(v1_template)
    assert err.value.field == field
    assert filename in str(err.value.path)


def test_missing_files(tmp_path, v1_template):
    with pytest.raises(TemplateError, match="not a folder"):
        load_template(tmp_path / "nowhere")
    (v1_template / "seed_ideas.json").unlink()
    with pytest.raises(TemplateError, match="seed_ideas.json: seed_ideas.json: missing"):
        load_template(v1_template)


def test_manifest_values_are_checked_against_code(v1_template):
    (v1_template / "manifest.yaml").write_text(
        "metric: {name: val_loss, direction: minimize}\n"
        "tunables: {LEARNING_RATE: {low: 0.001, high: 1.0, log: true}, NUM_UNITS: {values: [4, 8, 16]}}\n"
        "profiles: {tiny: {NUM_UNITS: 2}}\ndefault_profile: tiny\n")
    t = load_template(v1_template)
    assert t.manifest.tunables["NUM_UNITS"].integer and t.manifest.tunables["LEARNING_RATE"].log
    assert find_tunables(t.code_for_profile("tiny"))["NUM_UNITS"].value == 2
    assert json.loads((v1_template / "prompt.json").read_text())["system"]


def test_a_held_out_metric_is_never_the_primary_one_and_an_evaluator_needs_its_names(v1_template):
    (v1_template / "manifest.yaml").write_text("metric: {name: val_loss, direction: minimize}\nheld_out: [val_loss]\n")
    with pytest.raises(TemplateError, match="is the primary metric") as err:
        load_template(v1_template)
    assert err.value.field == "held_out"
    (v1_template / "manifest.yaml").write_text("metric: {name: val_loss, direction: minimize}\n")
    (v1_template / "held_out.py").write_text("print('evaluating')\n")
    with pytest.raises(TemplateError, match="names no held_out metrics"):
        load_template(v1_template)
    (v1_template / "manifest.yaml").write_text("metric: {name: val_loss, direction: minimize}\nheld_out: [test_acc]\n")
    template = load_template(v1_template)
    assert template.manifest.held_out == ("test_acc",) and template.held_out_code == "print('evaluating')\n"
    assert "held_out.py" not in template.support_files()  # never given to the search's runs
