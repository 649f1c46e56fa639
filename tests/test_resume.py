"""Kill a run halfway (crash or Ctrl-C), resume it, and check that nothing finished is lost or re-run."""
import json
import os
import signal
import subprocess
import threading
import time

import pyarrow.parquet as pq
import pytest

from tests.conftest import NO_RAY, REPO, launch, launch_cmd, one_stage

pytestmark = pytest.mark.slow


def start_run(template, run_dir, max_nodes, *overrides):
    return subprocess.Popen(launch_cmd("+topic=template", f"topic.path={template}", "topic.metric=val_loss",
                                       "topic.direction=minimize", *one_stage(max_nodes), "tracking=none",
                                       *overrides, f"hydra.run.dir={run_dir}"),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})


def wait_for_rows(run_dir, n, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list((run_dir / "journal").glob("*.parquet"))) >= n if (run_dir / "journal").is_dir() else False:
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} nodes finished in {timeout}s")


def rows(run_dir):
    return {r["id"]: r for r in pq.read_table(run_dir / "journal").to_pylist()}


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_resume_loses_nothing_and_reruns_nothing(tmp_path, quick_template, how):
    # each node takes a second: the signal (sent after 4 of 10) finds nodes running, at least 3 s before the last
    code = (quick_template / "experiment.py").read_text().replace("SLEEP_S = 0.0", "SLEEP_S = 1.0")
    (quick_template / "experiment.py").write_text(code)
    run_dir = tmp_path / "run"
    # SIGTERM on a Ray run: Ray's own SIGTERM handler must have been taken back (engine/interrupt.py); the other
    # signals are about the driver's records, whatever runs the nodes (the resume keeps the saved cluster)
    proc = start_run(quick_template, run_dir, 10, *([] if how == signal.SIGTERM else [NO_RAY]))
    wait_for_rows(run_dir, 4, proc)
    proc.send_signal(how)
    out, _ = proc.communicate(timeout=60)
    before = rows(run_dir)
    pending = {p.stem for p in (run_dir / "pending").glob("*.json")}
    assert 4 <= len(before) < 10
    assert pending, "nodes that were running when the run stopped are remembered"
    if how in (signal.SIGINT, signal.SIGTERM):  # SIGTERM (Slurm, Kubernetes, `timeout`) is handled like Ctrl-C
        assert proc.returncode == 128 + how
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
        assert json.loads((run_dir / "phases" / "experiments.json").read_text())["status"] == "interrupted"
        assert f"python -m engine.launch resume={run_dir}" in out
        assert f"python -m engine.launch resume={run_dir}" in (run_dir / "launch.log").read_text()
        assert "SIGTERM received" not in out and "Traceback" not in out, out[-3000:]
    if how == signal.SIGTERM:
        return  # it left the run as Ctrl-C does; resuming an interrupted run is the SIGINT case's (one launch less)

    res = launch("+topic=template", f"topic.path={quick_template}", f"resume={run_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    after = rows(run_dir)
    assert len(after) == 10
    for node_id, row in before.items():  # finished nodes kept exactly as they were, not re-run
        assert after[node_id]["finished_at"] == row["finished_at"]
        assert after[node_id]["code"] == row["code"]
    assert pending <= set(after), "the half-finished nodes ran again"
    assert sorted(r["step"] for r in after.values()) == list(range(10))
    assert not list((run_dir / "pending").glob("*.json"))
    assert len(list((run_dir / "nodes").iterdir())) == 10
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["nodes"]["total"] == 10
    # the saved config was used: metric and budget from the first command
    assert summary["primary_metric"] == {"name": "val_loss", "direction": "minimize"}


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    res = launch("+topic=grokking", f"resume={tmp_path}")
    assert res.returncode == 2 and "no config.yaml there" in res.stderr


def test_resume_in_a_later_stage_keeps_finished_stages(tmp_path, quick_template):
    """Killed during stage 2 of a four-stage run: stage 1's record, copies and seed runs are kept; the run
    continues stage 2 within its budget and finishes the rest."""
    code = (quick_template / "experiment.py").read_text()
    code = code.replace("SLEEP_S = 0.0", "SLEEP_S = 1.0").replace("NUM_UNITS = 8", "NUM_UNITS = 8\nSEED = 0")
    (quick_template / "experiment.py").write_text(code)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(launch_cmd("+topic=template", f"topic.path={quick_template}", "topic.metric=val_loss",
                                       "topic.direction=minimize", "stages.tuning.run_to_budget=true",
                                       "stages.tuning.offline_max_nodes=4", "stages.num_seeds=2", NO_RAY,
                                       "tracking=none", f"hydra.run.dir={run_dir}"),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 180
    while not any(r["stage"] == "tuning" and r["operator"] == "improve" for r in
                  (rows(run_dir).values() if (run_dir / "journal").is_dir() else [])):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "slow"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    # stage 1 was decided (tuning started from its choice); its seed runs may still have been running beside tuning
    initial_decision = (run_dir / "stages" / "initial" / "search.json").read_bytes()
    assert not (run_dir / "stages" / "tuning" / "summary.json").exists()
    before = rows(run_dir)

    res = launch("+topic=template", f"topic.path={quick_template}", f"resume={run_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    after = rows(run_dir)
    assert all(after[i]["finished_at"] == r["finished_at"] for i, r in before.items())
    assert (run_dir / "stages" / "initial" / "search.json").read_bytes() == initial_decision  # not decided again
    initial = json.loads((run_dir / "stages" / "initial" / "summary.json").read_text())
    assert initial["best"] == json.loads(initial_decision)["best"] and initial["seeds"]["ok"] == 2
    assert "stage initial decided before the resume" in res.stderr or \
        "stage initial finished before the resume" in res.stderr
    s = json.loads((run_dir / "summary.json").read_text())
    assert [st["name"] for st in s["stages"]] == ["initial", "tuning", "agenda", "ablations"]
    per_stage = {}
    for r in after.values():
        per_stage.setdefault((r["stage"], r["operator"]), []).append(r)
    assert all(len(per_stage[(st, "copy")]) == 1 for st in ("tuning", "agenda", "ablations"))
    searched = per_stage[("tuning", "improve")] + per_stage.get(("tuning", "debug"), [])
    assert len(searched) == 4  # the budget, over both processes: nothing re-run, nothing extra
    assert len({r["change"] for r in per_stage[("tuning", "improve")]}) == len(per_stage[("tuning", "improve")])
    assert sorted(r["step"] for r in after.values()) == sorted({r["step"] for r in after.values()})
    # seeds: SEED is found in the v1 code and set to 1 for the second seed
    assert json.loads((run_dir / "stages" / "tuning" / "summary.json").read_text())["seeds"]["seeds"] == [0, 1]
    # no ablation switches in a v1 template: stage 4 says so instead of inventing any
    assert "declares no ablation switches" in s["stages"][3]["why"]


def test_resume_with_a_model_runs_nothing_twice_though_more_nodes_were_pending_than_slots(tmp_path, quick_template):
    """Killed while several finished runs await the model's (slow) feedback, more of them than slots: the resume
    asks for their feedback without running them again, and runs the rest as slots free."""
    from tests.fake_llm_server import FakeLLMServer
    from tests.test_llm_search import scripted_model

    code = (quick_template / "experiment.py").read_text().replace("SLEEP_S = 0.0", "SLEEP_S = 0.5")
    (quick_template / "experiment.py").write_text(code)
    model, killed = scripted_model(code), threading.Event()

    def respond(path, body):
        if body.get("tools"):
            killed.wait(120)  # the feedback call: unanswered while the first run lives, at once in the resume
        return model(path, body)

    run_dir = tmp_path / "run"
    overrides = ["+topic=template", f"topic.path={quick_template}", "topic.metric=val_loss", "topic.direction=minimize",
                 *one_stage(6), "cluster.slots=1", "search.num_drafts=1", "tracking=none", NO_RAY,
                 "stages.tie_break_tolerance=0", f"hydra.run.dir={run_dir}"]
    env = os.environ | {"OPENAI_API_KEY": "test-key", "PYTHONUNBUFFERED": "1"}
    with FakeLLMServer(responder=respond) as server:
        proc = subprocess.Popen(launch_cmd(*overrides, f"model.base_url={server.base_url}", "model.name=fake-model"),
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + 180
        while len(list((run_dir / "pending").glob("*.run"))) < 2:  # two finished runs await feedback, 1 slot
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.1)
        proc.kill()
        proc.communicate(timeout=60)
        saved = {p.name.removesuffix(".run"): json.loads((p / "result.json").read_text())["result"]["started_at"]
                 for p in (run_dir / "pending").glob("*.run")}
        pending = {p.stem for p in (run_dir / "pending").glob("*.json")}
        assert len(pending) > 1  # more pending nodes than the one slot
        killed.set()
        res = subprocess.run(launch_cmd(f"resume={run_dir}"), cwd=REPO, capture_output=True, text=True, env=env,
                             timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
    after = rows(run_dir)
    assert len(after) == 6 and pending <= set(after)
    for node_id, started_at in saved.items():  # its run was kept: feedback only, not run again
        assert after[node_id]["started_at"] == started_at
    assert "all slots are busy" not in res.stderr
    assert not list((run_dir / "pending").iterdir())
