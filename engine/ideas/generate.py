"""Ideation with a model: one idea per slot, drafted in round 1 and refined in later rounds (ideas.num_reflections
rounds in all, fewer when the model says it is done), with literature searches as a tool within each round
(at most MAX_SEARCHES per round), then a check that the idea keeps to the topic.

Slots run concurrently; a shared register of names and titles keeps two slots (or a slot and a template seed
idea) from giving the same idea: a clash is sent back to the model once, and the idea is dropped if it persists.
Each finished round and each search is checkpointed (state.py) and a round's conversation is rebuilt from the
checkpoint, so a rerun repeats no finished round and no finished search.
"""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.ideas.config import IdeasConfig
from engine.ideas.library import Library, LiteratureDown, render_results
from engine.ideas.novelty import idea_text
from engine.ideas.schema import TOPIC_TOOL, clean_model_idea, idea_tool
from engine.ideas.topic import Topic
from engine.llm.fence import with_data_rule
from engine.llm.service import LLM, CallContext
from engine.prompts import render_from

PROMPTS = Path(__file__).resolve().parent / "prompts"
ROLE = "ideation"
MAX_SEARCHES = 3  # literature searches per ideation round
MAX_FIXES = 1  # re-asks per round for an unusable idea (missing fields, a name or title already taken)
SEED = -1  # the owner of the template's seed ideas in the register


def _title_key(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


class NameRegister:
    """Names and titles taken, and by which slot; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: dict[str, int] = {}  # "name:<Name>" / "title:<title>" -> slot
        self._ideas: dict[int, list[tuple[str, str]]] = {}  # slot -> [(Name, Title)]

    def claim(self, slot: int, name: str, title: str) -> str | None:
        """Take the name and title for `slot` (releasing its old ones); the clashing idea if one is taken."""
        keys = [f"name:{name}", f"title:{_title_key(title)}"]
        with self._lock:
            for key in keys:
                owner = self._owner.get(key, slot)
                if owner != slot:
                    other = next((f"{n}: {t}" for n, t in self._ideas.get(owner, []) if key in
                                  (f"name:{n}", f"title:{_title_key(t)}")), key)
                    return other
            if slot != SEED:
                self._owner = {k: s for k, s in self._owner.items() if s != slot}
                self._ideas[slot] = []
            self._owner.update(dict.fromkeys(keys, slot))
            self._ideas.setdefault(slot, []).append((name, title))
            return None

    def taken(self, slot: int) -> str:
        with self._lock:
            lines = [f"- {n}: {t}" for s, ideas in sorted(self._ideas.items()) if s != slot for n, t in ideas]
        return "\n".join(lines) or "(none yet)"


@dataclass
class Ideation:
    llm: LLM
    topic: Topic
    cfg: IdeasConfig
    library: Library
    names: NameRegister
    check: Callable[[], None]  # raises when the phase is stopping

    def run_slot(self, slot: int, state: dict[str, Any], save: Callable[[], None]) -> None:
        """Rounds until the idea is finished (or dropped), then the topic check; progress in `state`."""
        call = CallContext(node=f"idea-{slot}", stage="ideas")
        while not state.get("finished") and not state.get("dropped"):
            self.check()
            self._round(slot, state.get("rounds_done", 0) + 1, state, save, call)
        if state.get("dropped") or state.get("drift"):
            return
        self.check()
        verdict = self.llm.ask_json(ROLE, render_from(PROMPTS, "topic_system"), [
            {"role": "user", "content": render_from(PROMPTS, "topic_check", topic=self.topic.describe(),
                                                    idea=idea_text(state["idea"]))}], TOPIC_TOOL, call)
        on_topic = verdict["on_topic"] is True or str(verdict["on_topic"]).lower() == "true"
        state["drift"] = {"on_topic": on_topic, "reason": str(verdict.get("reason", ""))}
        if not state["drift"]["on_topic"]:
            state["dropped"] = f"off topic: {state['drift']['reason']}"
        save()

    def _round(self, slot: int, rnd: int, state: dict[str, Any], save: Callable[[], None],
               call: CallContext) -> None:
        turns = state.setdefault("turns", [])
        fixes: list[dict[str, Any]] = []  # re-asks for an unusable answer (not checkpointed)
        while True:
            self.check()
            if turns and turns[-1]["results"] is None:
                self._search(turns[-1])
                save()
            allow = len(turns) < MAX_SEARCHES and self.library.error is None
            messages = self._conversation(slot, rnd, state) + fixes
            answer = self.llm.ask_json(ROLE, self._system(), messages, idea_tool(allow), call)
            query = answer.get("query")
            if answer.get("action") == "search" and allow and isinstance(query, str) and query.strip():
                turns.append({"query": query.strip(), "results": None})
                state.setdefault("searches", []).append(query.strip())
                save()
                continue
            idea, problems = clean_model_idea(answer.get("idea"))
            if not problems:
                clash = self.names.claim(slot, idea["Name"], idea["Title"])
                if clash:
                    problems.append(f"the idea's Name or Title is already taken ({clash}): propose a different "
                                    "idea with its own Name and Title, not a variation of a taken one")
            if not problems:
                state.update(idea=idea, rounds_done=rnd, turns=[],
                             finished=bool(answer.get("done")) or rnd >= self.cfg.num_reflections)
                save()
                return
            if len(fixes) // 2 >= MAX_FIXES:
                if state.get("idea") is None:
                    state["dropped"] = f"no usable idea: {'; '.join(problems)}"
                else:  # keep the idea of the last good round; refinement ends here
                    state.update(rounds_done=rnd, turns=[], finished=True)
                save()
                return
            fixes += [{"role": "assistant", "content": json.dumps(answer)},
                      {"role": "user", "content": f"That answer cannot be used: {'; '.join(problems)}. "
                                                  "Give the whole idea again with every field."}]

    def _search(self, turn: dict[str, Any]) -> None:
        try:
            turn["results"] = self.library.search(turn["query"])
        except LiteratureDown as e:
            turn.update(results=[], error=str(e))

    def _system(self) -> str:
        return with_data_rule(render_from(PROMPTS, "system", template_system=self.topic.system))

    def _conversation(self, slot: int, rnd: int, state: dict[str, Any]) -> list[dict[str, Any]]:
        common = {"slot": slot + 1, "num_ideas": self.cfg.num_ideas, "rounds": self.cfg.num_reflections,
                  "topic": self.topic.describe(), "taken": self.names.taken(slot), "max_searches": MAX_SEARCHES}
        if rnd == 1:
            t = self.topic
            code = f"\n# The code the experiments start from\n```python\n{t.code.rstrip()}\n```\n" if t.code else ""
            examples = f"\n# Example ideas (the template's own; yours must differ)\n{t.examples()}\n" \
                if t.seed_ideas else ""
            note = " The experiments will be changes to the code above." if t.code else ""
            first = render_from(PROMPTS, "draft", code=code, examples=examples, code_note=note, **common)
        else:
            first = render_from(PROMPTS, "reflect", round=rnd, idea=idea_text(state["idea"], scores=True), **common)
        messages = [{"role": "user", "content": first}]
        turns = state.get("turns", [])
        for i, turn in enumerate(turns):
            if turn["results"] is None:
                break
            left = 0 if turn.get("error") else MAX_SEARCHES - i - 1
            budget = ("No searches left this round: give the idea now." if left <= 0 else
                      f"You can search {left} more time{'s' if left > 1 else ''} this round, or give the idea.")
            results = (f"The literature search is unavailable ({turn['error']}); go on without it."
                       if turn.get("error") else render_results(turn["results"]))
            messages += [{"role": "assistant", "content": json.dumps({"action": "search", "query": turn["query"]})},
                         {"role": "user", "content": render_from(PROMPTS, "search_results", query=turn["query"],
                                                                 results=results, budget=budget)}]
        return messages
