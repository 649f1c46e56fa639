"""The ideas phase end to end: an in-process scripted model (the engine's own OpenAI provider around it), a
fake literature. The wire format has tests of its own (tests/engine/test_llm.py, the pipeline runs)."""
import json
import logging
import re
import socket
from collections import Counter

import pytest

from engine.errors import EngineError
from engine.ideas import OFFLINE_LABEL, run_phase
from engine.literature import LiteratureConfig, LiteratureError
from tests.ideas.helpers import FIXTURES, FakeLiterature, IdeaModel, Killer, contents, context, make_llm, run_config
from tests.scripted_model import ScriptedModel

V2 = ("Name", "Title", "Short Hypothesis", "Related Work", "Abstract", "Experiments", "Risk Factors and Limitations")
V1 = ("Experiment", "Interestingness", "Feasibility", "Novelty", "novel")


def tool_of(body):
    return body["tools"][0]["function"]["name"]


def read(run_dir, name):
    return json.loads((run_dir / name).read_text())


def test_generation_search_drift_duplicates_and_novelty(tmp_path):
    model = IdeaModel(done_at=2, shared=(1, 2), off_topic=(3,), not_novel=("idea_1_alt", "idea_2_alt"))
    lit = FakeLiterature()
    with ScriptedModel(responder=model) as scripted:
        ctx = context(tmp_path, run_config(num_ideas=3, num_reflections=3, novelty_rounds=3), make_llm(scripted), lit)
        out = run_phase(ctx)
        requests = [body for _, body, _ in scripted.requests]

    data = read(tmp_path, "ideas.json")
    ideas, dropped = data["ideas"], data["dropped"]
    # slots 1 and 2 both drafted "shared_idea": one keeps it, the other was told and gave another idea
    names = [i["Name"] for i in ideas]
    assert len(names) == 2 and "shared_idea" in names
    other = next(n for n in names if n != "shared_idea")
    assert re.fullmatch(r"idea_[12]_alt", other)
    fixes = [contents(b)[-1] for b in requests if contents(b)[-1].startswith("That answer cannot be used")]
    assert len(fixes) == 1 and "is already taken (shared_idea: Shared Idea)" in fixes[0]
    # slot 3 drifted off the topic: dropped, with the reason, not lost
    [drop] = dropped
    assert drop["Name"] == "idea_3" and drop["reason"] == "off topic: it studies cooking"
    assert drop["idea"]["Title"] == "Off Topic Idea 3"
    # both field sets, the model's scores, the novelty decisions with the papers they rest on
    for idea in ideas:
        assert all(idea[k] for k in V2) and all(k in idea for k in V1)
        assert idea["Experiment"] == idea["Experiments"] and idea["generated_by"] == "fake-model"
        nov = idea["novelty"]
        assert nov["queries"] == [f"novelty {idea['Name']}"] and nov["rounds"] == 2
        assert [p["title"] for p in nov["papers"]] == [f"Paper 0 on novelty {idea['Name']}",
                                                       f"Paper 1 on novelty {idea['Name']}"]
    by_name = {i["Name"]: i for i in ideas}
    assert by_name["shared_idea"]["novelty"]["decision"] == "novel" and by_name["shared_idea"]["novel"] is True
    assert by_name[other]["novel"] is False and by_name[other]["novelty"]["decision"] == "not novel"
    # the chosen idea is the novel one
    assert out | {"generated_by": None} == {
        "ideas": "ideas.json", "idea": "idea.json", "chosen": "shared_idea", "num_ideas": 2, "num_novel": 1,
        "dropped": 1, "source": "generated", "generated_by": None}
    assert read(tmp_path, "idea.json") == by_name["shared_idea"] and data["chosen"] == "shared_idea"
    # a search the model asked for reached the next prompt of that round
    for body in requests:
        texts = contents(body)
        for query in re.findall(r'"query": "(query idea \d round \d)"', "\n".join(texts)):
            assert f"Paper 0 on {query}" in "\n".join(texts)
    assert {q for q in lit.queries if q.startswith("query idea")} == {
        f"query idea {s} round {r}" for s in (1, 2, 3) for r in (1, 2)}
    # refinement stopped when the model said done (round 2 of 3); the template's code was shown
    assert not any("round 3 of 3" in contents(b)[0] for b in requests if tool_of(b) == "propose_idea")
    first_draft = next(b for b in requests if tool_of(b) == "propose_idea")
    assert "# The code the experiments start from" in contents(first_draft)[0]
    assert "batch_size_grokking" in contents(first_draft)[0]  # seed ideas as examples
    rows = ctx.tracker.tables["ideas"]
    assert {r["name"]: r["decision"] for r in rows} == {"shared_idea": "novel", other: "not novel"}


def full_run(run_dir, responder, lit, **ideas):
    with ScriptedModel(responder=responder) as scripted:
        out = run_phase(context(run_dir, run_config(concurrency=1, **ideas), make_llm(scripted, 1), lit))
        return out, len(scripted.requests)


# killed: 2 mid-round after a search, 7 at the topic check, 9 at the novelty decision after its search,
# 13 in the second idea's second round
@pytest.mark.parametrize("kill_at", [2, 7, 9, 13])
def test_a_rerun_after_a_kill_repeats_no_finished_call_or_query(tmp_path, kill_at):
    settings = {"num_ideas": 2, "num_reflections": 3, "novelty_rounds": 3}
    model = IdeaModel(done_at=3)
    ref_lit = FakeLiterature()
    ref_out, ref_calls = full_run(tmp_path / "ref", model, ref_lit, **settings)
    assert ref_calls == 18  # per idea: 3 rounds x (search + idea), the topic check, novelty search + decision

    run_dir, lit = tmp_path / "run", FakeLiterature()
    killer = Killer(model, after=kill_at)
    with pytest.raises(EngineError, match="rejected the key"):
        full_run(run_dir, killer, lit, **settings)
    assert killer.count == kill_at and list((run_dir / "ideas").glob("idea-*.json"))
    out, calls = full_run(run_dir, model, lit, **settings)
    assert (kill_at - 1) + calls == ref_calls  # only the call that failed is made again
    assert Counter(lit.queries) == Counter(ref_lit.queries) and max(Counter(lit.queries).values()) == 1
    assert out == ref_out
    assert read(run_dir, "ideas.json") == read(tmp_path / "ref", "ideas.json")


def test_literature_down_novelty_unchecked_and_the_run_goes_on(tmp_path, caplog):
    lit = FakeLiterature(fail=LiteratureError("q", {"semantic_scholar": "429 x3", "arxiv": "timeout"}, "Try later."))
    caplog.set_level(logging.WARNING)
    with ScriptedModel(responder=IdeaModel(done_at=1)) as scripted:
        out = run_phase(context(tmp_path, run_config(num_ideas=2, num_reflections=2, novelty_rounds=3),
                                make_llm(scripted), lit))
        requests = [body for _, body, _ in scripted.requests]
    ideas = read(tmp_path, "ideas.json")["ideas"]
    assert out["num_ideas"] == 2 and out["num_novel"] == 0
    for idea in ideas:
        assert idea["novel"] is None and idea["novelty"]["decision"] == "unchecked"
        assert idea["novelty"]["reason"].startswith("literature search failed: literature search for 'q' failed on "
                                                    "every engine: semantic_scholar: 429 x3; arxiv: timeout")
    assert len(lit.queries) == 1  # once down, the search is not tried again for every idea
    assert any("The literature search is unavailable" in t for b in requests for t in contents(b))
    assert "literature search failed" in caplog.text
    assert read(tmp_path, "idea.json")["Name"] == ideas[0]["Name"]  # none novel: the first


def test_the_real_literature_client_failing_leaves_novelty_unchecked(tmp_path):
    """ctx.literature() builds the real client (cache under run_dir/literature/); no engine answers."""
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lit_cfg = LiteratureConfig.from_dict({
        "engines": ["arxiv"], "results_per_query": 10, "timeout_s": 5, "max_attempts": 1, "max_wait_s": 1,
        "breaker_failures": 3, "arxiv": {"base_url": f"http://127.0.0.1:{port}", "requests_per_s": 100}})
    cfg = run_config(num_ideas=1, num_reflections=1, novelty_rounds=2).with_section("literature", lit_cfg)
    with ScriptedModel(responder=IdeaModel(done_at=1)) as scripted:
        run_phase(context(tmp_path, cfg, make_llm(scripted)))
    [idea] = read(tmp_path, "ideas.json")["ideas"]
    assert idea["novelty"]["decision"] == "unchecked" and idea["novel"] is None
    assert "arxiv: connection error" in idea["novelty"]["reason"]


def test_topic_file_without_template(tmp_path):
    with ScriptedModel(responder=IdeaModel(done_at=1)) as scripted:
        cfg = run_config(FIXTURES / "topic.md", num_ideas=1, num_reflections=1, check_novelty=False)
        out = run_phase(context(tmp_path, cfg, make_llm(scripted), FakeLiterature()))
        draft = next(body for _, body, _ in scripted.requests if tool_of(body) == "propose_idea")
    assert "Title: Compositional Generalisation in Small Transformers" in contents(draft)[0]
    assert "# The code the experiments start from" not in contents(draft)[0]
    [idea] = read(tmp_path, "ideas.json")["ideas"]
    assert out["chosen"] == idea["Name"] == "idea_1"
    assert idea["novelty"]["decision"] == "unchecked" and "check_novelty=false" in idea["novelty"]["reason"]


def test_offline_with_a_template_uses_the_seed_ideas_labelled(tmp_path):
    out = run_phase(context(tmp_path, run_config(), None))
    data = read(tmp_path, "ideas.json")
    assert [i["Name"] for i in data["ideas"]] == ["batch_size_grokking", "weight_decay_grokking"]
    for idea in data["ideas"]:
        assert idea["generated_by"] == OFFLINE_LABEL and idea["novel"] is None
        assert idea["novelty"] == {"decision": "unchecked", "reason": "offline (no model)", "rounds": 0,
                                   "queries": [], "papers": []}
        assert idea["Experiments"] == idea["Experiment"]
    assert out["source"] == OFFLINE_LABEL and out["chosen"] == "batch_size_grokking"
    assert read(tmp_path, "idea.json")["Name"] == "batch_size_grokking"


def test_offline_without_template_needs_a_model(tmp_path):
    with pytest.raises(EngineError, match=r"needs a model .* model=<name>"):
        run_phase(context(tmp_path, run_config(FIXTURES / "topic.md"), None))


def test_ideas_index_picks_and_out_of_range_is_an_error(tmp_path):
    assert run_phase(context(tmp_path, run_config(index=1), None))["chosen"] == "weight_decay_grokking"
    assert read(tmp_path, "idea.json")["Name"] == "weight_decay_grokking"
    with pytest.raises(EngineError, match=r"ideas.index=2 but there are 2 ideas"):
        run_phase(context(tmp_path / "b", run_config(index=2), None))


def test_loaded_ideas_unchanged_and_checked_with_a_model(tmp_path):
    raw = json.loads((FIXTURES / "v1_seed_ideas.json").read_text())
    lit = FakeLiterature()
    with ScriptedModel(responder=IdeaModel()) as scripted:
        out = run_phase(context(tmp_path, run_config(load=FIXTURES / "v1_seed_ideas.json"), make_llm(scripted), lit))
        tools = [tool_of(body) for _, body, _ in scripted.requests]
    ideas = read(tmp_path, "ideas.json")["ideas"]
    assert set(tools) == {"novelty_step"}  # no generation; the idea that carries a decision is not re-checked
    assert lit.queries == ["novelty embedding_norm"]
    assert ideas[0]["novelty"]["reason"].startswith("as recorded in") and ideas[0]["novel"] is True
    assert {k: ideas[0][k] for k in raw[0]} == raw[0]
    assert ideas[1]["novelty"]["decision"] == "novel" and ideas[1]["novel"] is True
    assert {k: ideas[1][k] for k in raw[1]} == raw[1]
    # both novel: the higher Interestingness + Feasibility + Novelty (7+8+6 > 6+9+4)
    assert out["chosen"] == "embedding_norm" and out["source"] == "loaded"
    assert ideas[1]["generated_by"].startswith("loaded from ") and ideas[1]["source"] == "v1"


def test_loaded_ideas_offline_are_kept_as_written(tmp_path):
    raw = json.loads((FIXTURES / "v2_ideas.json").read_text())
    out = run_phase(context(tmp_path, run_config(load=FIXTURES / "v2_ideas.json"), None))
    ideas = read(tmp_path, "ideas.json")["ideas"]
    for idea, original in zip(ideas, raw):
        assert {k: idea[k] for k in original} == original
        assert idea["novelty"]["reason"] == "offline (no model)"
    assert out["chosen"] == "curriculum_grokking" and out["num_novel"] == 0
