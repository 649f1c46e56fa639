"""Kill a run halfway (crash or Ctrl-C), resume it, and check that nothing finished is lost or re-run."""
import json
import os
import signal
import subprocess
import time

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, launch, launch_cmd, one_stage


def start_run(template, run_dir, max_nodes):
    return subprocess.Popen(launch_cmd("+topic=template", f"topic.path={template}", "topic.metric=val_loss",
                                       "topic.direction=minimize", *one_stage(max_nodes),
                                       f"hydra.run.dir={run_dir}"),
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


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_resume_loses_nothing_and_reruns_nothing(tmp_path, v1_template, how):
    code = (v1_template / "experiment.py").read_text().replace("SLEEP_S = 0.0", "SLEEP_S = 1.5")
    (v1_template / "experiment.py").write_text(code)
    run_dir = tmp_path / "run"
    proc = start_run(v1_template, run_dir, max_nodes=10)
    wait_for_rows(run_dir, 4, proc)
    proc.send_signal(how)
    out, _ = proc.communicate(timeout=60)
    before = rows(run_dir)
    pending = {p.stem for p in (run_dir / "pending").glob("*.json")}
    assert 4 <= len(before) < 10
    assert pending, "nodes that were running when the run stopped are remembered"
    if how == signal.SIGINT:
        assert proc.returncode == 130
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
        assert "resume=" in out

    res = launch("+topic=template", f"topic.path={v1_template}", f"resume={run_dir}")
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
