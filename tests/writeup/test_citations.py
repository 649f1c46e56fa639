"""Citation rounds: the model asks, the literature answers, the model picks by number; BibTeX from the search
results; state saved after every round; a failing search ends the rounds with a warning."""
import json

from engine.literature.errors import LiteratureError
from engine.writeup.citations import gather_citations
from tests.writeup.support import PAPERS, FakeLiterature


class ScriptedLLM:
    """Stands in for engine.llm.service.LLM: answers ask_json from a list per tool."""

    def __init__(self, queries, picks):
        self.queries, self.picks, self.prompts = list(queries), list(picks), []

    def has(self, role):
        return role == "writeup"

    def ask_json(self, role, system, messages, tool, ctx):
        assert role == "writeup" and ctx.stage == "writeup"
        self.prompts.append(messages[0]["content"])
        if tool.name == "next_search":
            q = self.queries.pop(0)
            return {"done": True} if q is None else {"done": False, "missing": f"work on {q}", "query": q}
        return {"indices": self.picks.pop(0)}


def test_rounds_pick_papers_and_resume(tmp_path):
    lit = FakeLiterature(error=LiteratureError("grokking", {"semantic_scholar": "429 x3"}, "try later"))
    llm = ScriptedLLM(["grokking"], [])
    state = gather_citations(llm, lit, "idea", "facts", tmp_path, max_rounds=3)
    assert state.records == [] and "429 x3" in state.warning and not state.done
    # resumed with the search working again: the failed round is tried again, then two more
    lit.error = None
    llm = ScriptedLLM(["grokking", "weight decay", "anything"], [[0, 5], [2, 0], []])
    state = gather_citations(llm, lit, "idea", "facts", tmp_path, max_rounds=3)
    assert state.keys() == [PAPERS[0].bibtex_key, PAPERS[2].bibtex_key]  # index 5 does not exist; 0 is listed
    assert state.done and state.warning is None and len(state.rounds) == 3  # the budget
    assert state.records[0]["bibtex"] == PAPERS[0].bibtex()
    saved = json.loads((tmp_path / "citations.json").read_text())
    assert [r["query"] for r in saved["rounds"]] == ["grokking", "weight decay", "anything"]
    assert PAPERS[0].bibtex_key in llm.prompts[-1]  # later prompts show what is already listed
    # a finished list is not asked for again
    llm = ScriptedLLM([], [])
    assert gather_citations(llm, lit, "idea", "facts", tmp_path, max_rounds=3).keys() == state.keys()
    assert llm.prompts == []


def test_done_ends_early_and_keys_stay_unique(tmp_path):
    twin = type(PAPERS[0])(PAPERS[0].title + " Revisited", PAPERS[0].authors, PAPERS[0].year)
    assert twin.bibtex_key == PAPERS[0].bibtex_key
    lit = FakeLiterature(papers=[PAPERS[0], twin])
    llm = ScriptedLLM(["grokking", None], [[0, 1]])
    state = gather_citations(llm, lit, "idea", "facts", tmp_path, max_rounds=20)
    assert state.done and len(state.rounds) == 1 and lit.queries == ["grokking"]
    keys = state.keys()
    assert keys == [PAPERS[0].bibtex_key, PAPERS[0].bibtex_key + "b"]
    assert state.records[1]["bibtex"].startswith("@article{" + keys[1] + ",")
