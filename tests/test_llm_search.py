"""The main job driven by a scripted fake model over the real wire format: search, costs, replay, bad keys."""
import json
import os
import re
import subprocess

import pyarrow.parquet as pq
import pytest

from tests.conftest import NO_RAY, REPO, launch_cmd, one_stage
from tests.fake_llm_server import FakeLLMServer

pytestmark = pytest.mark.slow
RATES = [0.05, 0.02, 0.03, 0.04, 0.01, 0.025]


def scripted_model(template_code):
    """Writes the toy template with a new LEARNING_RATE each time; judges every run as fine."""
    calls = {"code": 0}

    def respond(path, body):
        if body.get("tools"):
            return {"tool": {"name": "report", "input": {"is_bug": False, "analysis": "The loss moved as expected."}},
                    "usage": {"input": 300, "output": 40, "cached": 0}}
        text = json.dumps(body.get("messages"))
        if "Reply with OK." in text:
            return {"text": "OK"}
        rate = RATES[calls["code"] % len(RATES)]
        calls["code"] += 1
        code = re.sub(r"LEARNING_RATE = [0-9.]+", f"LEARNING_RATE = {rate}", template_code)
        return {"text": f"Plan: try LEARNING_RATE = {rate}.\n```python\n{code}```",
                "usage": {"input": 1200, "output": 400, "cached": 100}}
    return respond


def run_engine(*overrides, key="test-key", timeout=300):
    """The main job's experiment phase. Runs that get past the model check pass NO_RAY (Ray with a model is run by
    tests/test_sweep.py)."""
    env = os.environ | {"OPENAI_API_KEY": key, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(launch_cmd(*overrides, "tracking=none", "pipeline.phases=[experiments]"), cwd=REPO,
                          capture_output=True, text=True,
                          timeout=timeout, env=env)


def programs(run_dir):
    return {r["step"]: r["code"] for r in pq.read_table(run_dir / "journal").to_pylist()}


def test_search_through_an_openai_compatible_server_then_replay(tmp_path, quick_template):
    code = (quick_template / "experiment.py").read_text()
    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    with FakeLLMServer(responder=scripted_model(code)) as server:
        res = run_engine("+topic=template", f"topic.path={quick_template}", "topic.metric=val_loss",
                         "topic.direction=minimize", f"model.base_url={server.base_url}", "model.name=fake-model",
                         "model.prices.input=1.0", "model.prices.output=2.0", *one_stage(5),
                         "stages.tie_break_tolerance=0",
                         "search.num_drafts=2", f"hydra.run.dir={run1}",
                         # one slot and one call at a time: the order of calls, hence every prompt, is the same
                         # when replayed (with more, which parent a step expands depends on timing)
                         "cluster.slots=1", "llm.max_concurrency=1", NO_RAY)
        assert res.returncode == 0, res.stderr[-3000:]
        n_requests = len(server.requests)
    s = json.loads((run1 / "summary.json").read_text())
    assert s["proposer"] == "llm (fake-model)" and s["nodes"]["total"] == 5
    progs = programs(run1)
    assert progs[0] == code  # the baseline: the template's code, unchanged
    assert all(f"LEARNING_RATE = {r}" in progs[step] for step, r in zip(range(1, 5), RATES))
    assert s["best"]["value"] < s["baseline"]
    # costs and tokens, by role and by stage, from the ledger
    ledger = pq.read_table(run1 / "llm" / "ledger").to_pylist()
    code_calls = [r for r in ledger if r["role"] == "code"]
    assert len(code_calls) == 4 and len([r for r in ledger if r["role"] == "feedback"]) == 5
    assert s["tokens"]["input"] == 4 * 1200 + 5 * 300
    expected = (4 * (1100 * 1.0 + 100 * 1.0 + 400 * 2.0) + 5 * (300 * 1.0 + 40 * 2.0)) / 1e6
    assert s["cost_usd"] == pytest.approx(expected)
    assert set(s["llm_by_role"]) == {"code", "feedback"} and set(s["llm_by_stage"]) == {"initial"}
    assert n_requests == 4 + 5 + 1  # + the fail-fast check

    # replay: no server at all now, same programs byte for byte, experiments executed again
    res = run_engine("model=replay", f"replay.run={run1}", f"hydra.run.dir={run2}", NO_RAY, key="")
    assert res.returncode == 0, res.stderr[-3000:]
    assert programs(run2) == progs
    s2 = json.loads((run2 / "summary.json").read_text())
    assert s2["nodes"]["total"] == 5 and all(r["replayed"] for r in pq.read_table(run2 / "llm" / "ledger").to_pylist())


def test_wrong_key_fails_before_any_machinery_naming_the_variable(tmp_path, v1_template):
    """How fast is measured by benchmarks/fail_fast.py; here: the model check comes before Ray and the sandbox
    are started, it is not retried, and the run ends with one clear line."""
    with FakeLLMServer() as server:
        res = run_engine("+topic=template", f"topic.path={v1_template}", f"model.base_url={server.base_url}",
                         "model.name=fake-model", f"hydra.run.dir={tmp_path / 'r'}", key="wrong-key")
        assert len(server.requests) == 1  # the one check call, not retried
    assert res.returncode == 2
    assert "rejected the key in $OPENAI_API_KEY" in res.stderr and "Traceback" not in res.stderr
    assert "Ray:" not in res.stderr and "=== phase" not in res.stderr
    assert not (tmp_path / "r" / "journal").exists()


def test_unknown_registry_model_is_named(tmp_path):
    res = run_engine("+topic=grokking", "llm.roles.feedback=gpt-9", f"hydra.run.dir={tmp_path / 'r'}")
    assert res.returncode == 2 and "no model named 'gpt-9'" in res.stderr


def grokking_model():
    """Takes the program from the prompt (template code or the parent's) and doubles its learning rate."""
    def respond(path, body):
        text = "\n".join(m["content"] for m in body["messages"] if isinstance(m["content"], str))
        if body.get("tools"):
            return {"tool": {"name": "report", "input": {"is_bug": False, "analysis": "Trained; no grokking yet."}}}
        if "Reply with OK." in text:
            return {"text": "OK"}
        code = text.split("```python\n", 1)[1].split("```", 1)[0]
        m = re.search(r'"--learning_rate", type=float, default=([0-9.e-]+)', code)
        new = float(m.group(1)) * 2
        code = code.replace(m.group(0), f'"--learning_rate", type=float, default={new}')
        return {"text": f"Double the learning rate to {new}.\n```python\n{code}```"}
    return respond


def test_grokking_smoke_main_job_driven_by_a_scripted_model(tmp_path):
    run_dir = tmp_path / "run"
    with FakeLLMServer(responder=grokking_model()) as server:
        res = run_engine("+topic=grokking", "topic.profile=smoke", *one_stage(3), "search.num_drafts=1",
                         "stages.final_seeds=2",
                         "search.debug_prob=0", f"model.base_url={server.base_url}", "model.name=fake-coder",
                         "model.prices.input=0.5", "model.prices.output=1.5", NO_RAY, f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["proposer"] == "llm (fake-coder)"
    finals = 2 if s["result"]["node_id"] == s["result"]["baseline"]["node_id"] else 4  # on 2 fresh seeds
    assert s["nodes"] == {"total": 3, "good": 3, "buggy": 0, "copies": 0, "seed_runs": 0, "final_runs": finals}
    rows = sorted((r for r in pq.read_table(run_dir / "journal").to_pylist() if r["operator"] != "eval"),
                  key=lambda r: r["step"])
    rates = [float(re.search(r'"--learning_rate", type=float, default=([0-9.e-]+)', r["code"]).group(1))
             for r in rows]
    assert rates[0] == 0.003 and len(rates) == 3 and all(r in (0.006, 0.012) for r in rates[1:])
    # the model's programs were executed and measured: each wrote its own final_info
    assert all(r["final_info"] and json.loads(r["final_info"])["x_plus_y"]["means"]["final_train_acc"] > 0
               for r in rows)
    assert s["tokens"]["input"] > 0 and s["cost_usd"] > 0
