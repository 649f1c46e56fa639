"""The real entry point, run as a user would: python -m engine.launch ... from the repo root."""
import json
import textwrap

import pyarrow.parquet as pq
import pytest

from engine.errors import EngineError
from engine.pipeline import check_inputs
from tests.conftest import NO_RAY, launch, one_stage, run_config


def summary_of(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_v1_template_without_manifest_runs_unchanged(tmp_path, v1_template):
    run_dir = tmp_path / "run"
    res = launch("+topic=template", f"topic.path={v1_template}", *one_stage(10), "search.num_drafts=2", NO_RAY,
                 f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    # no metric declared: the baseline's first metric, direction guessed from the name, with a warning
    assert "no primary metric declared: using 'val_loss', minimize" in res.stderr + res.stdout
    s = summary_of(run_dir)
    assert s["primary_metric"] == {"name": "val_loss", "direction": "minimize"}
    assert s["proposer"].startswith("offline")
    assert s["nodes"]["total"] == 10
    assert s["baseline"] == pytest.approx(0.64 + 0.75 + 0.4)  # the fixture's loss at its defaults
    assert s["best"]["value"] < s["baseline"]
    # the run directory holds what SPEC.md promises
    table = pq.read_table(run_dir / "journal")
    assert table.num_rows == 10 and len(set(table.column("id").to_pylist())) == 10
    assert (run_dir / "config.yaml").is_file() and (run_dir / ".hydra" / "config.yaml").is_file()
    assert json.loads((run_dir / "idea.json").read_text())["Name"] == "toy_lr"
    assert (run_dir / "best" / "experiment.py").read_text() == table.filter(
        table.column("id").to_numpy() == s["best"]["node_id"]).column("code")[0].as_py()
    node_dirs = sorted((run_dir / "nodes").iterdir())
    assert len(node_dirs) == 10
    assert all((d / "run_0" / "final_info.json").is_file() and (d / "val_loss.png").is_file()
               for d in node_dirs if json.loads((d / "node.json").read_text())["is_buggy"] is False)
    assert s["best"]["node_id"] in (run_dir / "viewer.html").read_text()
    tree = json.loads((run_dir / "tree.json").read_text())
    assert len(tree["nodes"]) == 10
    # tracked in wandb (offline here: no WANDB_API_KEY), one run per pipeline run
    assert (run_dir / "wandb_run_id").is_file()
    assert list((run_dir / "wandb").glob("offline-run-*")), "wandb wrote an offline run"
    # the template folder itself is untouched: no run_0 written into it
    assert not (v1_template / "run_0").exists()


def test_misspelled_key_is_rejected_by_hydra(tmp_path):
    res = launch("+topic=grokking", "search.num_draft=2", f"hydra.run.dir={tmp_path / 'r'}")
    assert res.returncode != 0
    assert "Key 'num_draft' is not in struct" in res.stderr
    assert not (tmp_path / "r" / "journal").exists()


BAD_VALUES = [
    ("search.debug_prob=2", "search.debug_prob=2: must be a number >= 0 and <= 1"),
    ("cluster.slots=0", "cluster.slots=0: must be an integer >= 1"),
    ("topic.profile=huge", "no profile 'huge' (topic.profile=huge)"),
    ("topic.path=/nonexistent/folder", "not a folder"),
    ("stages.run=[initial,tunning]", "unknown stage 'tunning'; stages, in order: initial, tuning"),
    ("stages.run=[initial,agenda]", "stages.run must be a prefix of"),
    ("stages.num_seeds=0", "stages.num_seeds=0: must be an integer >= 1"),
    ("stages.tuning.max_nodes=0", "stages.tuning.max_nodes=0: must be an integer >= 1"),
]


@pytest.mark.parametrize("override, message", BAD_VALUES)
def test_bad_values_give_one_clear_line(override, message):
    """Each value is refused by the check a launch makes before Hydra makes the run directory (the config's
    settings, then the template the experiments will load), as an EngineError: what the entry point prints as
    one line, with exit code 2 and no traceback (the two launches below check that, once for each place)."""
    with pytest.raises(EngineError) as e:
        cfg = run_config(override)
        check_inputs(cfg)
    assert message in str(e.value)


@pytest.mark.parametrize("override, message", [BAD_VALUES[6], BAD_VALUES[2]], ids=["config", "template"])
def test_a_bad_value_ends_the_launch_with_its_line_and_exit_code_2(tmp_path, override, message):
    res = launch("+topic=grokking", override, "tracking=none", f"hydra.run.dir={tmp_path / 'r'}")
    assert res.returncode == 2
    assert res.stderr.splitlines() == [f"error: {res.stderr.partition('error: ')[2].strip()}"]
    assert message in res.stderr
    assert not (tmp_path / "r").exists(), "the launch was refused before Hydra made its run directory"


def test_no_topic_says_how_to_choose_one(tmp_path):
    res = launch(f"hydra.run.dir={tmp_path / 'r'}")
    assert res.returncode == 2 and "+topic=grokking" in res.stderr


MISBEHAVING = '''
import argparse, json, os, socket, subprocess, sys, time
MODE = 0
parser = argparse.ArgumentParser()
parser.add_argument("--out_dir", required=True)
args = parser.parse_args()
if MODE == 1:
    time.sleep(10_000)                      # sleeps forever
elif MODE == 2:
    while True:                             # forks endlessly
        try:
            os.fork()
        except OSError:
            pass
elif MODE == 3:
    hog = [bytearray(2**30) for _ in range(50)]   # 50 GB
elif MODE == 4:
    socket.create_connection(("1.1.1.1", 80), timeout=5)
elif MODE == 5:
    open("/etc/escaped", "w").write("x")   # outside its directory
os.makedirs(args.out_dir, exist_ok=True)
json.dump({"toy": {"means": {"score": 1.0 + MODE}}}, open(os.path.join(args.out_dir, "final_info.json"), "w"))
'''


@pytest.mark.slow
def test_misbehaving_nodes_are_stopped_recorded_and_the_search_goes_on(tmp_path, v1_template):
    (v1_template / "experiment.py").write_text(MISBEHAVING)
    (v1_template / "plot.py").unlink()
    (v1_template / "manifest.yaml").write_text(textwrap.dedent("""
        metric: {name: score, direction: maximize}
        tunables: {MODE: {values: [1, 2, 3, 4, 5]}}
        resources: {timeout_s: 3, memory_gb: 2}
    """))
    run_dir = tmp_path / "run"
    res = launch("+topic=template", f"topic.path={v1_template}", *one_stage(12), "search.num_drafts=1",
                 "search.debug_prob=0.3", "sandbox.max_procs=64", "sandbox.use_bwrap=always",
                 f"hydra.run.dir={run_dir}", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    s = summary_of(run_dir)
    assert s["nodes"]["total"] == 12 and s["status"] == "finished"
    table = pq.read_table(run_dir / "journal").to_pylist()
    reasons = {r["bug_reason"].split(":")[0] for r in table if r["is_buggy"]}
    # every misbehaviour the search produced was stopped and named; none passed as a good node
    assert reasons and reasons <= {"TimeoutError", "ProcessLimit", "MemoryError", "OSError", "PermissionError",
                                   "ConnectionRefusedError"}
    good_scores = {r["metric"] for r in table if not r["is_buggy"]}
    assert good_scores == {1.0}
    assert len(reasons) >= 3


@pytest.mark.slow
def test_killing_a_runner_process_costs_that_node_only(tmp_path, v1_template):
    import os
    import signal
    import subprocess
    import time

    import psutil

    from tests.conftest import REPO, launch_cmd

    code = (v1_template / "experiment.py").read_text().replace("SLEEP_S = 0.0", "SLEEP_S = 2.0")
    (v1_template / "experiment.py").write_text(code)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(launch_cmd("+topic=template", f"topic.path={v1_template}", *one_stage(6),
                                       "topic.metric=val_loss", "tracking=none", f"hydra.run.dir={run_dir}"),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})
    victim, deadline = None, time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        busy = [p for p in psutil.Process(proc.pid).children(recursive=True)
                if "ray::Runner.run" in _cmdline(p)] if proc.poll() is None else []
        victim = busy[0] if busy else None
        time.sleep(0.2)
    assert victim is not None, "no runner was seen running a node"
    os.kill(victim.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    s = summary_of(run_dir)
    assert s["status"] == "finished" and s["nodes"]["total"] == 6
    rows = pq.read_table(run_dir / "journal").to_pylist()
    lost = [r for r in rows if r["is_buggy"]]
    assert len(lost) == 1 and lost[0]["bug_reason"].startswith("RunnerDied")


def _cmdline(process) -> str:
    """A process's command line; empty once it has exited (a zombie has none)."""
    import psutil
    try:
        return " ".join(process.cmdline() or [])
    except psutil.Error:
        return ""
