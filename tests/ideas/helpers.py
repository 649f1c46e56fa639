"""Shared pieces of the ideas-phase tests: a run config, a fake literature, a scripted ideation model."""
from __future__ import annotations

import dataclasses
import json
import re
import threading
from functools import cache
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from engine import config as config_mod
from engine.config import RunConfig, TopicConfig, shipped_llm
from engine.ideas.config import IdeasConfig
from engine.literature import Paper
from engine.llm.models import spec_from_dict
from engine.llm.service import LLM
from engine.phase import PhaseContext
from tests.conftest import REPO
from tests.scripted_model import BASE_URL, ScriptedModel

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"


@cache
def _resolved() -> str:
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("config", overrides=["+topic=grokking", "tracking=none"])
    return json.dumps(OmegaConf.to_container(cfg, resolve=True))


def run_config(topic_file: Path | None = None, concurrency: int = 4, **ideas: Any) -> RunConfig:
    """The grokking run config (or a template-free one on `topic_file`) with `ideas.*` replaced."""
    cfg = config_mod.build(json.loads(_resolved()))
    if topic_file is not None:
        cfg = dataclasses.replace(cfg, topic=TopicConfig("topic", None, None, None, None, topic_file))
    cfg = cfg.with_section("ideas", dataclasses.replace(IdeasConfig.of(cfg), **ideas))
    return dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, max_concurrency=concurrency))


def make_llm(model: ScriptedModel, concurrency: int = 4) -> LLM:
    """The run's LLM with the code and ideation roles answered by `model`, in this process."""
    spec = spec_from_dict({"name": "fake-model", "base_url": BASE_URL})
    return LLM({"code": spec, "ideation": spec}, shipped_llm(max_concurrency=concurrency, max_retries=0,
                                                             timeout_s=10),
               {"OPENAI_API_KEY": "test-key"}, providers=model.providers("code", "ideation", spec=spec))


class RecordingTracker:
    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}

    def log_node(self, node: Any, best: float | None) -> None:
        pass

    def log_event(self, name: str, data: dict[str, Any]) -> None:
        pass

    def log_table(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.tables[name] = rows

    def finish(self, summary: dict[str, Any]) -> None:
        pass


def context(run_dir: Path, cfg: RunConfig, llm: LLM | None, literature: Any = None) -> PhaseContext:
    return PhaseContext(run_dir, cfg, llm, RecordingTracker(), _literature=literature)


# -- literature --------------------------------------------------------------------------------------
class FakeLiterature:
    """Three papers per query, their titles naming the query; `fail` is raised by every search instead."""

    def __init__(self, fail: Exception | None = None):
        self.queries: list[str] = []
        self.fail = fail
        self._lock = threading.Lock()

    def search(self, query: str, limit: int | None = None) -> list[Paper]:
        with self._lock:
            self.queries.append(query)
        if self.fail is not None:
            raise self.fail
        papers = [Paper(f"fake:{query}:{j}", "fake", f"Paper {j} on {query}", ("A. Author", "B. Author"),
                            "NeurIPS", 2022, f"An abstract about {query}.", 10 * j) for j in range(3)]
        return papers[:limit] if limit else papers


# -- the scripted model ------------------------------------------------------------------------------
def contents(body: dict) -> list[str]:
    return [m["content"] if isinstance(m["content"], str) else "" for m in body["messages"]
            if m["role"] != "system"]


def idea_json(name: str, title: str, interest: int = 7) -> dict[str, Any]:
    return {"Name": name, "Title": title, "Short Hypothesis": f"{title} holds.", "Related Work": "None close.",
            "Abstract": f"We study {title}.", "Experiments": f"Run the experiment for {name}.",
            "Risk Factors and Limitations": "It may not work.", "Interestingness": interest, "Feasibility": 8,
            "Novelty": 6}


class IdeaModel:
    """A responder(path, body) for ScriptedModel (or FakeLLMServer) that answers from the request alone (no hidden
    state), so a rerun gets the same answers: round 1 searches once then drafts; later rounds search once then
    refine; done from round `done_at`. `shared` slots all draft the same idea first; `off_topic` slots drift."""

    def __init__(self, done_at: int = 2, shared: tuple[int, ...] = (), off_topic: tuple[int, ...] = (),
                 not_novel: tuple[str, ...] = ()):
        self.done_at, self.shared, self.off_topic, self.not_novel = done_at, shared, off_topic, not_novel

    def __call__(self, path: str, body: dict) -> dict[str, Any]:
        tool = body["tools"][0]["function"]["name"]
        texts = contents(body)
        first, rest = texts[0], texts[1:]
        searched = any("Results for" in t for t in rest)
        if tool in ("propose_idea", "give_idea"):
            slot = int(re.search(r"idea (\d+) of \d+", first).group(1))
            rnd = int(re.search(r"round (\d+) of", first).group(1))
            if tool == "propose_idea" and not searched:
                return _call(tool, {"action": "search", "query": f"query idea {slot} round {rnd}"})
            if rest and rest[-1].startswith("That answer cannot be used"):
                name, title = f"idea_{slot}_alt", f"Idea {slot} alternative"
            elif rnd == 1 and slot in self.shared:
                name, title = "shared_idea", "Shared Idea"
            elif rnd == 1:
                name, title = f"idea_{slot}", ("Off Topic " if slot in self.off_topic else "") + f"Idea {slot}"
            else:
                current = json.loads(first.split("```json\n", 1)[1].split("```", 1)[0])
                name, title = current["Name"], current["Title"]
            done = rnd >= self.done_at
            return _call(tool, {"action": "idea", "idea": idea_json(name, title, 5 + slot), "done": done})
        if tool == "check_topic":
            off = "Off Topic" in first
            return _call(tool, {"on_topic": not off, "reason": "it studies cooking" if off else "on the topic"})
        if tool in ("novelty_step", "novelty_verdict"):
            name = re.search(r'"Name": "([^"]+)"', first).group(1)
            if tool == "novelty_step" and not searched:
                return _call(tool, {"action": "search", "query": f"novelty {name}"})
            novel = name not in self.not_novel
            return _call(tool, {"action": "decide", "novel": novel, "reason": f"verdict on {name}", "papers": [1, 2]})
        raise AssertionError(f"unexpected tool {tool}")


def _call(tool: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"tool": {"name": tool, "input": data}}


class Killer:
    """Wraps a responder: every request from the `after`-th on is refused (401), as if the run died there."""

    def __init__(self, responder: Any, after: int):
        self.responder, self.after, self.count = responder, after, 0
        self._lock = threading.Lock()

    def __call__(self, path: str, body: dict) -> dict[str, Any]:
        with self._lock:
            self.count += 1
            dead = self.count >= self.after
        return {"status": 401} if dead else self.responder(path, body)
