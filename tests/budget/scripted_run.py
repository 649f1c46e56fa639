"""A scripted model that answers every phase of a run (ideas with literature searches, programs, feedback, the
paper, the review), and a loopback literature for its searches: for trying a capped run of the main job by hand.

    python -m tests.budget.scripted_run --conf /tmp/demo/conf &     # prints the command line to use
    OPENAI_API_KEY=test-key python -m engine.launch +topic=grokking 'hydra.searchpath=[file:///tmp/demo/conf]' \
        model=scripted-budget budget.max_usd=0.25 <the literature overrides it printed>

Every call reports 1,000 input and 1,000 output tokens; the model's conf/model file prices them at $1 and $2 per
million, so a call costs $0.003 and a budget of a few tenths of a dollar stops a run part of the way.
"""
from __future__ import annotations

import argparse
import re
import threading
from pathlib import Path

from tests.fake_llm_server import FakeLLMServer
from tests.ideas.helpers import IdeaModel
from tests.literature.fake_scholar_server import FakeScholarServer
from tests.test_sweep import SweepModel

NAME = "scripted-budget"
IDEA_TOOLS = ("propose_idea", "give_idea", "check_topic", "novelty_step", "novelty_verdict")
USAGE = {"input": 1000, "output": 1000, "cached": 0}


class RunModel:
    """Ideas from tests/ideas/helpers.IdeaModel; programs, feedback, the paper and the review from the sweep's
    scripted model (reviews with Overall 7); the plotting program declines, so the writeup draws its own figures."""

    def __init__(self) -> None:
        self.ideas, self.rest = IdeaModel(done_at=2), SweepModel()

    def __call__(self, path: str, body: dict) -> dict:
        tools = body.get("tools") or []
        tool = tools[0]["function"]["name"] if tools else None
        text = "\n".join(m["content"] for m in body["messages"] if isinstance(m["content"], str))
        system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
        if tool in IDEA_TOOLS:
            reply = self.ideas(path, body)
        elif tool == "choose":  # the tie-break at a stage's end: the first node listed
            step = int(re.search(r"- step (\d+):", text).group(1))
            reply = {"tool": {"name": "choose", "input": {"step": step, "reason": "the first listed"}}}
        elif "draws the figures of a research paper" in system + text:
            reply = {"text": "```python\nraise SystemExit('no figures from the model')\n```"}
        else:
            reply = self.rest.answer("scripted-2024", path, body)
        return reply | {"usage": USAGE}


def write_model(conf: Path, base_url: str) -> None:
    (conf / "model").mkdir(parents=True, exist_ok=True)
    (conf / "model" / f"{NAME}.yaml").write_text(
        f"name: {NAME}\nprovider: null\nbase_url: {base_url}\napi_key_env: OPENAI_API_KEY\n"
        "prices: {input: 1.0, output: 2.0, cached_input: 0.5}\nrelease_date: 2024-06-01\ncontext_window: null\n"
        "vision: false\ntool_calling: true\nstructured_output: false\nmax_output_tokens: 8192\n"
        "quirks: {system_message: true, temperature: true}\n")


def literature_overrides(scholar: FakeScholarServer) -> list[str]:
    return [f"literature.{e}.{key}" for e in ("semantic_scholar", "openalex", "arxiv")
            for key in (f"base_url={scholar.base_url(e)}", "requests_per_s=100")]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conf", type=Path, required=True, help="a folder of your own: <conf>/model/scripted-budget.yaml")
    conf_dir = ap.parse_args().conf.resolve()
    with FakeLLMServer(responder=RunModel()) as server, FakeScholarServer() as scholar:
        write_model(conf_dir, server.base_url)
        print(f"OPENAI_API_KEY=test-key python -m engine.launch +topic=grokking 'hydra.searchpath=[file://{conf_dir}]'"
              f" model={NAME} {' '.join(literature_overrides(scholar))}   (Ctrl-C stops the servers)", flush=True)
        threading.Event().wait()
