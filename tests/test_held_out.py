"""A held-out metric never reaches a model: a whole search with a model over the real wire format, and not one
request containing the metric's name or its value; the result reports it from the final evaluation's fresh runs
only. The template's sealed evaluator (held_out.py) computes it, in those runs only; a program that writes a
held-out metric itself (and prints it) has it taken out of everything the search keeps."""
import json
import os
import subprocess

import pytest

from tests.conftest import NO_RAY, REPO, launch_cmd
from tests.fake_llm_server import FakeLLMServer
from tests.test_llm_search import scripted_model

pytestmark = pytest.mark.slow
SECRET = 0.987654321

PROGRAM = """import argparse, json, os
LEARNING_RATE = 0.1
SEED = 0
p = argparse.ArgumentParser()
p.add_argument("--out_dir", required=True)
out = p.parse_args().out_dir
os.makedirs(out, exist_ok=True)
info = {"toy": {"means": {"val_loss": (LEARNING_RATE - 0.02) ** 2 + SEED / 1000}}}
json.dump(info, open(os.path.join(out, "final_info.json"), "w"))
json.dump({"seed": SEED}, open(os.path.join(out, "answers.json"), "w"))
print(json.dumps(info))
"""
EVALUATOR = f"""import json
seed = json.load(open("run_0/answers.json"))["seed"]
json.dump({{"secret_acc": {SECRET} + seed * 1e-9}}, open("run_0/held_out.json", "w"))
"""
MANIFEST = """metric: {name: val_loss, direction: minimize}
held_out: [secret_acc]
seed_param: SEED
tunables: {LEARNING_RATE: {values: [0.05, 0.02, 0.03]}}
"""


def template(tmp_path):
    t = tmp_path / "held_out_template"
    t.mkdir()
    (t / "experiment.py").write_text(PROGRAM)
    (t / "manifest.yaml").write_text(MANIFEST)
    (t / "held_out.py").write_text(EVALUATOR)
    (t / "prompt.json").write_text(json.dumps({"system": "You are a researcher.", "task_description": "Tune it."}))
    (t / "seed_ideas.json").write_text(json.dumps([{"Name": "tune", "Title": "Tune", "Experiment": "Tune."}]))
    return t


def test_no_model_request_of_a_search_holds_a_held_out_metric(tmp_path):
    t = template(tmp_path)
    run = tmp_path / "run"
    with FakeLLMServer(responder=scripted_model(PROGRAM)) as server:
        res = subprocess.run(
            launch_cmd("+topic=template", f"topic.path={t}", "tracking=none", "pipeline.phases=[experiments]",
                       f"model.base_url={server.base_url}", "model.name=fake-model", "stages.run=[initial,tuning]",
                       "stages.initial.max_nodes=2", "stages.tuning.max_nodes=1", "stages.num_seeds=2",
                       "stages.final_seeds=2", "sandbox.use_bwrap=auto", f"hydra.run.dir={run}", NO_RAY),
            cwd=REPO, capture_output=True, text=True, timeout=600,
            env=os.environ | {"OPENAI_API_KEY": "test-key", "PYTHONUNBUFFERED": "1"})
        requests = [json.dumps(body) for _, body, _ in server.requests]
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(requests) >= 4  # code, feedback on each run, the check
    leaks = [r[:200] for r in requests if "secret_acc" in r or "0.98765" in r or "0.9877" in r]
    assert leaks == []
    summary = json.loads((run / "summary.json").read_text())
    held = summary["result"]["held_out"]["secret_acc"]
    assert held["n"] == 2 and held["mean"] == pytest.approx(SECRET, abs=1e-6)
    # nor is it in what the run keeps of the search's own runs
    nodes = [json.loads(p.read_text()) for p in run.glob("nodes/*/node.json")]
    assert all("secret_acc" not in json.dumps(n["final_info"]) for n in nodes)
    assert all(n["held_out"] is None for n in nodes if n["operator"] != "eval")
    # the evaluator ran in the final evaluation's runs only
    evals = [n for n in nodes if n["operator"] == "eval"]
    assert evals and all(n["held_out"]["secret_acc"] == pytest.approx(SECRET, abs=1e-6) for n in evals)
    ran = {p.parent.name for p in run.glob("nodes/*/held_out_stdout.txt")}
    assert ran == {p.parent.name for p in run.glob("nodes/*/node.json")
                   if json.loads(p.read_text())["operator"] == "eval"}


def test_a_program_that_prints_a_held_out_metric_has_it_taken_out_of_what_the_search_keeps(tmp_path):
    """No sealed evaluator: the program writes and prints the metric itself; the search's runs keep neither."""
    t = template(tmp_path)
    (t / "held_out.py").unlink()
    (t / "manifest.yaml").write_text(MANIFEST.replace("held_out: [secret_acc]", "held_out: [secret_acc, absent_acc]"))
    program = PROGRAM.replace('"val_loss": (LEARNING_RATE - 0.02) ** 2 + SEED / 1000',
                              f'"val_loss": (LEARNING_RATE - 0.02) ** 2, "secret_acc": {SECRET}')
    (t / "experiment.py").write_text(program.replace("print(json.dumps(info))",
                                                     "print(json.dumps(info))\nprint('secret_acc', 1)"))
    run = tmp_path / "run"
    res = subprocess.run(launch_cmd("+topic=template", f"topic.path={t}", "tracking=none",
                                    "pipeline.phases=[experiments]", "stages.run=[initial]",
                                    "stages.initial.offline_max_nodes=1", "stages.num_seeds=2",
                                    "stages.final_seeds=2", "sandbox.use_bwrap=auto", f"hydra.run.dir={run}", NO_RAY),
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    # a held-out name the program never writes: one line, naming it and the template
    warned = [line for line in res.stderr.splitlines() if "held-out metric absent_acc" in line]
    assert len(warned) == 1 and str(t) in warned[0]
    for p in run.glob("nodes/*/node.json"):
        node = json.loads(p.read_text())
        kept = json.dumps(node["final_info"]) + node["stdout_tail"] + (p.parent / "stdout.txt").read_text()
        assert "secret_acc" not in kept and str(SECRET)[:6] not in kept
        assert "secret_acc" not in (p.parent / "run_0" / "final_info.json").read_text()
    held = json.loads((run / "summary.json").read_text())["result"]["held_out"]["secret_acc"]
    assert held["mean"] == pytest.approx(SECRET) and held["n"] == 2
