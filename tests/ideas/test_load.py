"""v1 seed_ideas.json and v2 ideas JSON files load unchanged, with the other format's fields added."""
import json

import pytest

from engine.errors import EngineError
from engine.ideas.load import load_ideas
from tests.ideas.helpers import FIXTURES


def test_v1_file_loads_unchanged_with_v2_fields_added():
    original = json.loads((FIXTURES / "v1_seed_ideas.json").read_text())
    ideas = load_ideas(FIXTURES / "v1_seed_ideas.json")
    assert len(ideas) == 2
    for idea, raw in zip(ideas, original):
        assert {k: idea[k] for k in raw} == raw  # every original key and value
        assert idea["source"] == "v1"
        assert idea["Experiments"] == raw["Experiment"]
        assert idea["Short Hypothesis"] is None and idea["Abstract"] is None and idea["Related Work"] is None
    assert ideas[0]["novel"] is True and ideas[1]["novel"] is None


def test_v2_file_loads_unchanged_with_v1_fields_added():
    original = json.loads((FIXTURES / "v2_ideas.json").read_text())
    ideas = load_ideas(FIXTURES / "v2_ideas.json")
    for idea, raw in zip(ideas, original):
        assert {k: idea[k] for k in raw} == raw
        assert idea["source"] == "v2"
        for score in ("Interestingness", "Feasibility", "Novelty"):
            assert idea[score] is None  # never invented
        assert idea["novel"] is None
    # a list of experiments becomes one text, one line each; a text is taken as it is
    assert ideas[0]["Experiment"].splitlines() == [f"- {e}" for e in original[0]["Experiments"]]
    assert ideas[1]["Experiment"] == original[1]["Experiments"]
    assert ideas[0]["Code"] == "unrelated extra key kept as it is"


def test_a_dict_wrapping_the_list_loads(tmp_path):
    raw = json.loads((FIXTURES / "v2_ideas.json").read_text())
    f = tmp_path / "wrapped.json"
    f.write_text(json.dumps({"ideas": raw, "dropped": [{"Name": "x"}]}))
    assert [i["Name"] for i in load_ideas(f)] == ["curriculum_grokking", "label_noise_grokking"]


@pytest.mark.parametrize("content, match", [
    ("{not json", r"bad\.json: not valid JSON \(line 1"),
    ('{"a": 1}', r"bad\.json: a JSON object that does not hold one list of ideas"),
    ("[]", r"bad\.json: expected a non-empty JSON list"),
    ('[{"Name": "a", "Title": "A"}, 3]', r"bad\.json: idea \[1\] is a int"),
    ('[{"Name": "a", "Title": "A"}, {"Title": "B"}]', r"bad\.json: idea \[1\] has no Name"),
    ('[{"Name": "a"}]', r"bad\.json: idea \[0\] has no Title"),
])
def test_malformed_files_name_the_file_and_the_entry(tmp_path, content, match):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(EngineError, match=match):
        load_ideas(f)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(EngineError, match="nope.json: no such file"):
        load_ideas(tmp_path / "nope.json")
