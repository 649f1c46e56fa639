"""The model faults, against the loopback server (engine/llm/loopback.py, the real OpenAI wire format):
a rejected key, a 429 storm, 500s, replies slower than llm.timeout_s, malformed and truncated replies.

The model check at start-up is answered normally (except for the rejected key); the fault hits the calls of
the search that follow. A run must either end with one clear error within bounded time, or go on and finish
its budget (failed calls making buggy nodes); which of the two, and the seconds, are recorded. These runs use
the thread executor (`cluster=threads`): the model is what fails here, not Ray.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.faults.launcher import expect_clear_error, finished_run, guarded, launch, one_stage, template
from benchmarks.faults.record import Kind, Trial
from engine.llm.loopback import FakeLLMServer

NODES = 3
Fault = Callable[[int], dict | None]  # the n-th search request (from 1) -> a faulty reply, or None for a good one


def toy_model(code: str):
    """Answers like a working model: the toy template with a new learning rate; every run judged fine."""
    calls = {"n": 0}

    def respond(path: str, body: dict) -> dict:
        if body.get("tools"):
            return {"tool": {"name": "report", "input": {"is_bug": False, "analysis": "The loss moved."}}}
        calls["n"] += 1
        rate = round(0.01 * (calls["n"] % 9 + 1), 2)
        new = re.sub(r"LEARNING_RATE = [0-9.]+", f"LEARNING_RATE = {rate}", code)
        return {"text": f"Plan: try LEARNING_RATE = {rate}.\n```python\n{new}```"}
    return respond


def with_fault(fault: Fault, inner):
    seen = {"n": 0}

    def respond(path: str, body: dict) -> dict:
        if "Reply with OK." in json.dumps(body.get("messages")):
            return {"text": "OK"}
        seen["n"] += 1
        reply = fault(seen["n"])
        return inner(path, body) if reply is None else reply
    return respond


def slow(n: int) -> dict | None:
    if n <= 3:
        time.sleep(4)  # past llm.timeout_s=2
    return None


def malformed(n: int) -> dict | None:
    if n <= 2:
        return {"raw": '{"id": "chatcmpl-x", "choices": [{"message": ', "status": 200}
    if n <= 4:
        return {"text": "Plan: a cut reply.\n```python\nimport os\nprint(", "finish": "length"}
    return None


def llm_run(fault: Fault | None, key: str = "test-key", *overrides: str):
    def scenario(trial: Trial, folder: Path) -> None:
        tpl, run_dir = template(folder), folder / "run"
        responder = toy_model((tpl / "experiment.py").read_text())
        server = FakeLLMServer(responder=with_fault(fault, responder) if fault else responder)
        server.httpd.handle_error = lambda request, address: None  # a client that gave up: a broken pipe here
        with server:
            res, seconds = launch("+topic=template", f"topic.path={tpl}", *one_stage(NODES), "cluster=threads",
                                  "search.num_drafts=1", f"model.base_url={server.base_url}",
                                  "model.name=fake-model", f"hydra.run.dir={run_dir}", *overrides,
                                  OPENAI_API_KEY=key)
            requests = len(server.requests)
        if res.returncode == 0:
            rows = finished_run(res, run_dir, trial, NODES)
            buggy = [r for r in rows.values() if r["is_buggy"]]
            trial.note(f"went on: {len(buggy)} of {len(rows)} nodes buggy" + (
                f" ({buggy[0]['bug_reason'].split(':')[0]})" if buggy else ""))
        else:
            expect_clear_error(res, seconds, trial)
        trial.figures["requests"] = requests
    return scenario


KINDS = [
    Kind("llm-401", "LLM 401 (rejected key)", "llm", guarded(llm_run(None, "wrong-key")), fast=True),
    Kind("llm-429", "LLM 429 storm", "llm", guarded(llm_run(lambda n: {"status": 429} if n <= 12 else None))),
    Kind("llm-500", "LLM 500s", "llm", guarded(llm_run(lambda n: {"status": 500} if n <= 8 else None))),
    Kind("llm-timeout", "LLM reply past llm.timeout_s", "llm", guarded(llm_run(slow, "test-key", "llm.timeout_s=2"))),
    Kind("llm-malformed", "LLM malformed / truncated reply", "llm", guarded(llm_run(malformed))),
]
