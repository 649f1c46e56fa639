"""Replay keyed by the request: each recorded reply answers the request it was written for, whatever step asks;
a request the recorded run never made stops the replay (or, with replay.fallback=live, is asked of the model)."""
import json
import logging
import os
import re
import subprocess

import pyarrow.parquet as pq
import pytest

from engine.config import shipped_llm
from engine.errors import EngineError
from engine.llm.ledger import Ledger
from engine.llm.models import spec_from_dict
from engine.llm.service import LLM, CallContext
from engine.llm.transcripts import Recorder, Replayer
from tests.conftest import NO_RAY, REPO, launch_cmd, one_stage
from tests.fake_llm_server import FakeLLMServer
from tests.scripted_model import BASE_URL, ScriptedModel

ENV = {"OPENAI_API_KEY": "test-key"}


def child_of(text):
    """The scripted model: the child program of the parent quoted in the prompt (its VALUE doubled)."""
    value = float(re.search(r"VALUE = ([0-9.]+)", text).group(1))
    return f"```python\nVALUE = {value * 2}\n```"


def responder(path, body):
    text = "\n".join(m["content"] for m in body["messages"] if isinstance(m["content"], str))
    return {"text": child_of(text)}


def make_llm(model, run_dir, replayer=None, fallback="error"):
    """The code role answered by `model` (an in-process ScriptedModel); with None, by nothing: a port where no
    server listens, so any live call would fail."""
    spec = spec_from_dict({"name": "fake-model", "base_url": BASE_URL if model else "http://127.0.0.1:9/v1",
                           "prices": {"input": 1.0, "output": 2.0}})
    return LLM({"code": spec}, shipped_llm(max_retries=0, timeout_s=10), ENV, Ledger(run_dir, run_dir.name),
               Recorder(run_dir), replayer, providers=model.providers("code", spec=spec) if model else None,
               replay_fallback=fallback)


def improve(llm, step, parent_value):
    prompt = [{"role": "user", "content": f"Improve this program:\nVALUE = {parent_value}\n"}]
    return llm.ask_code("code", "You write programs.", prompt, CallContext(f"n{step}", step, "initial"))[1]


def test_each_parent_gets_its_own_program_whichever_step_asks(tmp_path):
    """Two slots: in the recorded run step 3 improved the parent 1.0 and step 4 the parent 5.0; in the replay the
    other experiment finished first, so step 3 improves 5.0. Keyed by (step, role, call), the replay would hand
    step 3 the child written for 1.0."""
    rec, rep = tmp_path / "rec", tmp_path / "rep"
    with ScriptedModel(responder=responder) as model:
        llm = make_llm(model, rec)
        recorded = {1.0: improve(llm, 3, 1.0), 5.0: improve(llm, 4, 5.0)}
    assert recorded == {1.0: "VALUE = 2.0\n", 5.0: "VALUE = 10.0\n"}
    replay = make_llm(None, rep, Replayer(rec))
    assert improve(replay, 3, 5.0) == recorded[5.0] and improve(replay, 4, 1.0) == recorded[1.0]
    rows = Ledger(rep, rep.name).rows()
    assert len(rows) == 2 and all(r["replayed"] for r in rows)


def test_identical_requests_keep_their_steps_and_each_reply_answers_once(tmp_path):
    rec = tmp_path / "rec"
    with ScriptedModel() as model:
        model.script = [{"text": "```python\nVALUE = 1\n```"}, {"text": "```python\nVALUE = 2\n```"}]
        llm = make_llm(model, rec)
        first = [improve(llm, step, 3.0) for step in (1, 2)]
    replay = make_llm(None, tmp_path / "rep", Replayer(rec))
    assert [improve(replay, step, 3.0) for step in (2, 1)] == first[::-1]
    with pytest.raises(EngineError, match="made this request 2 time"):
        improve(replay, 9, 3.0)


def test_a_changed_request_has_no_reply_and_the_error_names_the_step_role_and_difference(tmp_path):
    rec = tmp_path / "rec"
    with ScriptedModel(responder=responder) as model:
        improve(make_llm(model, rec), 3, 1.0)
    replay = make_llm(None, tmp_path / "rep", Replayer(rec))
    with pytest.raises(EngineError) as e:
        improve(replay, 3, 1.5)
    msg = str(e.value)
    assert "no reply for node step 3, role code" in msg and "never made this request" in msg
    assert "VALUE = 1.0" in msg and "VALUE = 1.5" in msg and "replay.fallback=live" in msg


def test_fallback_live_asks_the_model_and_says_so(tmp_path, caplog):
    rec, rep = tmp_path / "rec", tmp_path / "rep"
    with ScriptedModel(responder=responder) as model:
        improve(make_llm(model, rec), 3, 1.0)
        replay = make_llm(model, rep, Replayer(rec), fallback="live")
        n = len(model.requests)
        with caplog.at_level(logging.WARNING):
            assert improve(replay, 3, 1.0) == "VALUE = 2.0\n"  # recorded
            assert improve(replay, 4, 1.5) == "VALUE = 3.0\n"  # asked
        assert len(model.requests) == n + 1
    assert "replay.fallback=live: asking model fake-model" in caplog.text
    assert [r["replayed"] for r in sorted(Ledger(rep, rep.name).rows(), key=lambda r: r["seq"])] == [True, False]


def test_transcripts_recorded_before_hashing_replay_by_their_place(tmp_path, caplog):
    rec = tmp_path / "rec"
    with ScriptedModel(responder=responder) as model:
        llm = make_llm(model, rec)
        recorded = [improve(llm, 3, 1.0), improve(llm, 4, 5.0)]
    for f in (rec / "llm" / "transcripts").glob("*.json"):  # as written before this change
        data = json.loads(f.read_text())
        del data["request_hash"]
        f.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        replay = make_llm(None, tmp_path / "rep", Replayer(rec))
    assert "recorded before requests were hashed" in caplog.text
    assert [improve(replay, 3, 7.0), improve(replay, 4, 7.0)] == recorded
    with pytest.raises(EngineError, match="no reply for node step 5, role code"):
        improve(replay, 5, 1.0)


# -- the whole search, two slots, a model whose program depends on the parent in its prompt -------------------
def parent_model(template_code):
    """Drafts set LEARNING_RATE by draft count; an improvement halves the parent's LEARNING_RATE, read from the
    program in the prompt, so each parent has its own child."""
    drafts = {"n": 0}

    def respond(path, body):
        text = "\n".join(m["content"] for m in body["messages"] if isinstance(m["content"], str))
        if body.get("tools"):
            return {"tool": {"name": "report", "input": {"is_bug": False, "analysis": "fine"}}}
        if "Reply with OK." in text:
            return {"text": "OK"}
        code = text.split("```python\n", 1)[1].split("```", 1)[0] if "```python\n" in text else template_code
        rate = float(re.search(r"LEARNING_RATE = ([0-9.e-]+)", code).group(1))
        if "Improve the program" in text:
            new = rate / 2
        else:
            drafts["n"] += 1
            new = [0.05, 0.03, 0.04][drafts["n"] % 3]
        code = re.sub(r"LEARNING_RATE = [0-9.e-]+", f"LEARNING_RATE = {new}", code)
        return {"text": f"Set LEARNING_RATE = {new}.\n```python\n{code}```"}
    return respond


def run_engine(*overrides, key="test-key"):
    env = os.environ | {"OPENAI_API_KEY": key, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(launch_cmd(*overrides, "tracking=none", NO_RAY), cwd=REPO, capture_output=True,
                          text=True, timeout=400, env=env)


def children_by_parent(run_dir):
    rows = pq.read_table(run_dir / "journal").to_pylist()
    code = {r["id"]: r["code"] for r in rows}
    return sorted((code.get(r["parent_id"]) or "", r["code"]) for r in rows)


def rate(code):
    return float(re.search(r"LEARNING_RATE = ([0-9.e-]+)", code).group(1))


@pytest.mark.slow
def test_two_slot_search_replayed_gives_every_program_to_its_own_parent_and_a_missing_reply_stops_it(tmp_path,
                                                                                                   quick_template):
    """With two slots, which parent a step improves depends on timing (a recorded model took milliseconds to
    answer, a replay takes none), so a replay may make a request the recorded run never made. Replies are found by
    the request's content, so a replayed child is always the one written for its parent (replies keyed by
    (step, role, call) once gave children to other parents). Two replays of one recorded run, each with one
    outcome: with replay.fallback=live every request is answered (recorded, else by the model) and the whole
    search runs, each child at half its own parent's rate; with a recorded draft's reply deleted, the replay
    must stop at that request, naming the step and the role, with exit status 2 and no traceback."""
    code = (quick_template / "experiment.py").read_text()
    run1, live, missing = tmp_path / "run1", tmp_path / "live", tmp_path / "missing"
    with FakeLLMServer(responder=parent_model(code)) as server:
        res = run_engine("+topic=template", f"topic.path={quick_template}", "topic.metric=val_loss",
                         "topic.direction=minimize", f"model.base_url={server.base_url}", "model.name=fake-model",
                         *one_stage(6), "cluster.slots=2", "search.num_drafts=2", "search.debug_prob=0",
                         # no proposals written ahead: a fast model would otherwise write drafts for every step
                         # before any node finished (nothing to improve yet), and the run would improve nothing
                         "search.lookahead=0", f"hydra.run.dir={run1}")
        assert res.returncode == 0, res.stderr[-3000:]
        recorded = children_by_parent(run1)
        assert [p for p, _ in recorded if p] and all(rate(c) == rate(p) / 2 for p, c in recorded if p)
        asked_before = len(server.requests)
        res = run_engine("model=replay", f"replay.run={run1}", "replay.fallback=live", f"hydra.run.dir={live}")
        asked_live = [b for _, b, _ in server.requests[asked_before:] if "Reply with OK." not in json.dumps(b)]
    assert res.returncode == 0, res.stderr[-3000:]
    replayed = children_by_parent(live)
    assert len(replayed) == len(recorded) and [p for p, _ in replayed if p]
    assert all(rate(c) == rate(p) / 2 for p, c in replayed if p), "a replayed program went to another parent"
    ledger = pq.read_table(live / "llm" / "ledger").to_pylist()
    # what was not recorded, and only that, was asked (besides the model's check call at start-up)
    assert sum(not r["replayed"] for r in ledger) == len(asked_live)
    assert any(r["replayed"] and r["role"] == "code" for r in ledger)

    drafts = [f for f in sorted((run1 / "llm" / "transcripts").glob("*-code.json"))
              if "Improve the program" not in f.read_text()]
    drafts[0].unlink()  # every replay of this run asks for both drafts: one of them now has no recorded reply
    res = run_engine("model=replay", f"replay.run={run1}", f"hydra.run.dir={missing}", key="")
    assert res.returncode == 2, res.stderr[-3000:]
    assert re.search(r"has no reply for node step \d+, role code", res.stderr), res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    done = children_by_parent(missing) if (missing / "journal").is_dir() else []
    assert all(rate(c) == rate(p) / 2 for p, c in done if p)
