"""Topic files (v2 format) and templates as the topic of ideation."""
import pytest

from engine.errors import EngineError
from engine.experiments.template import load_template
from engine.ideas.topic import parse_topic_file, topic_from_template
from tests.conftest import REPO
from tests.ideas.helpers import FIXTURES


def test_topic_file_sections():
    topic = parse_topic_file(FIXTURES / "topic.md")
    assert topic.title == "Compositional Generalisation in Small Transformers"  # "Title:" dropped
    assert topic.keywords == ["compositional generalization", "transformers", "algorithmic tasks"]
    assert topic.tldr.startswith("Which training choices")
    assert topic.abstract.startswith("Small Transformers") and topic.abstract.endswith("on one GPU.")
    assert topic.code == "" and topic.seed_ideas == []
    assert "Keywords: compositional generalization, transformers" in topic.describe()


def test_missing_section_names_the_file_and_the_section(tmp_path):
    with pytest.raises(EngineError, match=r"topic_no_abstract\.md: section '## Abstract' is missing"):
        parse_topic_file(FIXTURES / "topic_no_abstract.md")
    f = tmp_path / "empty_tldr.md"
    f.write_text("# A title\n## Keywords\na, b\n## TL;DR\n\n## Abstract\nText.\n")
    with pytest.raises(EngineError, match=r"empty_tldr\.md: section '## TL;DR' is empty"):
        parse_topic_file(f)
    f.write_text("## Keywords\na\n## TL;DR\nb\n## Abstract\nc\n")
    with pytest.raises(EngineError, match=r"no '# Title' heading"):
        parse_topic_file(f)


def test_bullet_keywords(tmp_path):
    f = tmp_path / "t.md"
    f.write_text("# T\n## Keywords\n- one\n- two words\n## TL;DR\nx\n## Abstract\ny\n")
    assert parse_topic_file(f).keywords == ["one", "two words"]


def test_template_topic_shows_task_code_at_the_profile_and_seed_ideas():
    template = load_template(REPO / "templates" / "grokking")
    topic = topic_from_template(template, "smoke")
    assert topic.task_description == template.prompt["task_description"] == topic.abstract
    assert topic.system == template.prompt["system"]
    assert topic.code == template.code_for_profile("smoke") != template.experiment_code
    assert [i["Name"] for i in topic.seed_ideas] == [i["Name"] for i in template.seed_ideas]
