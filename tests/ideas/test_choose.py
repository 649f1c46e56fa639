"""Which idea the experiments test, and how a model's idea is checked."""
import pytest

from engine.errors import EngineError
from engine.ideas.output import choose
from engine.ideas.schema import clean_model_idea
from tests.ideas.helpers import idea_json


def idea(novel, *scores):
    return {"novel": novel, "Interestingness": scores[0], "Feasibility": scores[1], "Novelty": scores[2]}


def test_novel_first_then_the_score_sum_then_the_earlier():
    ideas = [idea(False, 10, 10, 10), idea(True, 3, 3, 3), idea(None, 9, 9, 9), idea(True, 5, 4, 3),
             idea(True, 4, 4, 4)]
    assert choose(ideas, None) == 3  # 12 = 12: the earlier one
    assert choose([idea(False, 9, 9, 9), idea(None, 1, 1, 1)], None) == 0  # none novel: the first
    assert choose([idea(True, None, None, None), idea(True, 1, None, 1)], None) == 1  # a missing score counts 0
    assert choose(ideas, 2) == 2
    with pytest.raises(EngineError, match="ideas.index=5 but there are 5 ideas"):
        choose(ideas, 5)


def test_model_idea_is_cleaned_and_problems_named():
    raw = idea_json("Label Noise!", "Grokking Under Noise") | {"Interestingness": 11, "Novelty": "7",
                                                                "Experiments": ["one", "two"]}
    idea, problems = clean_model_idea(raw)
    assert problems == []
    assert idea["Name"] == "label_noise" and idea["Experiment"] == idea["Experiments"] == "- one\n- two"
    assert (idea["Interestingness"], idea["Feasibility"], idea["Novelty"], idea["novel"]) == (None, 8, 7, None)
    _, problems = clean_model_idea({"Name": "x", "Title": "T", "Abstract": "a"})
    assert problems == ["the idea lacks the fields ['Short Hypothesis', 'Related Work', 'Experiments', "
                        "'Risk Factors and Limitations']"]
    assert clean_model_idea(None)[1] == ["the answer has no idea object"]
