"""Start-up: a missing TeX program is named before any model call. A topic file without a template: offline it
stops at once with a clear error; with a model, the model drafts
the first program from the idea alone and the primary metric comes from the first working program."""
import json
import os
import subprocess

import pyarrow.parquet as pq
import pytest

from tests.conftest import NO_RAY, REPO, launch, launch_cmd
from tests.fake_llm_server import FakeLLMServer

TOPIC = REPO / "tests" / "fixtures" / "topics" / "tiny_regression.md"

BROKEN = "raise RuntimeError('first try: the model forgot something')\n"
WORKING = """
import argparse, json, os
import numpy as np
p = argparse.ArgumentParser(); p.add_argument("--out_dir", default="run_0"); a = p.parse_args()
os.makedirs(a.out_dir, exist_ok=True)
rng = np.random.default_rng(0)
x = rng.normal(size=(8, 3)); w = np.array([1.0, -2.0, 0.5]); y = x @ w + 0.3 * rng.normal(size=8)
LAMBDA = 0.1
w_hat = np.linalg.solve(x.T @ x + LAMBDA * np.eye(3), x.T @ y)
xt = rng.normal(size=(100, 3))
err = float(np.mean((xt @ w_hat - xt @ w) ** 2))
json.dump({"ridge": {"means": {"test_mse": err}, "stderrs": {"test_mse": 0.0}}},
          open(os.path.join(a.out_dir, "final_info.json"), "w"))
"""


def test_offline_topic_file_without_template_stops_at_once(tmp_path):
    res = launch("+topic=file", f"topic.file={TOPIC}", f"hydra.run.dir={tmp_path / 'r'}", "tracking=none")
    assert res.returncode == 2
    assert "has no template, so a model must write the first program" in res.stderr
    assert "Traceback" not in res.stderr
    # at once: before any phase started (no phase markers, no journal), not after some work
    assert "=== phase" not in res.stderr and not (tmp_path / "r" / "phases").exists()
    assert not (tmp_path / "r" / "journal").exists()


@pytest.mark.slow
def test_template_free_run_drafts_from_the_idea(tmp_path):
    """The model writes the first program from the idea alone (a draft's prompt says there is no template), the
    broken one is debugged with its error in the prompt, and each node's prompt is the one of its operator. The
    prompts are recorded by the server and checked here, after the run: an assert inside the server's handler would
    only drop the connection (the client retries) and could never fail the test."""
    prompts: list[str] = []

    def respond(path, body):
        text = json.dumps(body.get("messages"))
        if body.get("tools"):
            return {"tool": {"name": "report", "input": {"is_bug": False, "analysis": "fine"}}}
        if "Reply with OK." in text:
            return {"text": "OK"}
        prompts.append(text)
        code = BROKEN if len(prompts) == 1 else WORKING.replace("LAMBDA = 0.1", f"LAMBDA = {0.1 * len(prompts):.2f}")
        return {"text": f"Plan: ridge regression.\n```python\n{code}```"}

    run_dir = tmp_path / "run"
    with FakeLLMServer(responder=respond) as server:
        env = os.environ | {"OPENAI_API_KEY": "test-key", "PYTHONUNBUFFERED": "1"}
        res = subprocess.run(launch_cmd(
            "+topic=file", f"topic.file={TOPIC}", f"model.base_url={server.base_url}", "model.name=fake-model",
            "pipeline.phases=[experiments]", "stages.run=[initial]", "stages.initial.max_nodes=3",
            "stages.initial.run_to_budget=true", "stages.num_seeds=1", "search.num_drafts=1", "tracking=none", NO_RAY,
            # one node at a time, none written ahead: the three prompts come in the order the policy asks for them
            "cluster.slots=1", "search.lookahead=0", f"hydra.run.dir={run_dir}"),
            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
        assert res.returncode == 0, res.stderr[-3000:]
    nodes = sorted(pq.read_table(run_dir / "journal").to_pylist(), key=lambda n: n["step"])
    operators = [n["operator"] for n in nodes]
    assert len(prompts) == len(nodes) == 3 and operators[:2] == ["draft", "debug"]  # one program asked per node
    marks = {"draft": "There is no template program", "debug": "first try: the model forgot something",
             "improve": "Improve the program"}
    for operator, prompt in zip(operators, prompts):
        assert marks[operator] in prompt, f"the {operator} prompt: {prompt[:300]}"
        assert all(marks[o] not in prompt for o in marks if o != operator), f"the {operator} prompt: {prompt[:300]}"
    assert "Regularisation in tiny linear regressions" in prompts[0]  # the topic reached the model
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["primary_metric"] == {"name": "test_mse", "direction": "minimize"}
    assert s["baseline"] is None and s["nodes"]["total"] == 3 and s["nodes"]["buggy"] == 1
    assert s["best"]["value"] > 0


def test_missing_pdflatex_is_reported_before_any_model_call(tmp_path):
    import shutil
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bibtex", "chktex", "pdftotext", "bwrap"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    with FakeLLMServer() as server:
        env = os.environ | {"OPENAI_API_KEY": "test-key", "PATH": str(bin_dir)}
        res = subprocess.run(launch_cmd("+topic=grokking", f"model.base_url={server.base_url}", "model.name=m",
                                        "tracking=none", f"hydra.run.dir={tmp_path / 'r'}"),
                             cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
        assert server.requests == []  # not even the model check was paid for
    assert res.returncode == 2
    assert "pdflatex (package texlive-latex-base)" in res.stderr and "apt-get install" in res.stderr
    assert "Traceback" not in res.stderr
