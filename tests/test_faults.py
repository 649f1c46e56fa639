"""The fault benchmark: its fast subset finds nothing escaping the sandbox, and its detectors are not blind (an
unsandboxed node reading a planted secret, writing outside its folder or reaching a loopback listener counts)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.faults.attack import Plant, run_attack, sandbox_config
from benchmarks.faults.record import Kind, Sentinel, Trial, markdown, summarize
from tests.conftest import REPO

UNSANDBOXED = sandbox_config(use_bwrap="never")


@pytest.mark.slow
def test_fast_subset_finds_no_escape(tmp_path):
    # holds for the hardened sandbox (issue 12, items 1-4); the sandbox before it leaks the home secret,
    # /etc/shadow, host unix sockets and symlinked results, and dies on a deeply nested final_info
    res = subprocess.run([sys.executable, "-m", "benchmarks.faults", "--fast", "--repeat", "1",
                          "--out", str(tmp_path / "faults")], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env=os.environ | {"PYTHONUNBUFFERED": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "faults.json").read_text())
    rows = {r["key"]: r for r in report["kinds"]}
    assert {"home", "shadow", "write", "unix", "tcp", "link", "deep", "llm-401"} <= set(rows)
    assert report["totals"] == {"escapes": 0, "nodes_lost": 0, "procs_touched": 0}, \
        [r["escape_details"] for r in report["kinds"] if r["escape_details"]]
    # every hostile program actually ran, and each fault ended as it should
    assert all(r["finished"] in ("yes", "expected error") for r in report["kinds"]), \
        {k: (r["finished"], r["note"]) for k, r in rows.items()}
    assert rows["deep"]["note"].startswith("buggy node")  # one buggy node, not an exception out of execute_node
    # ended at once: after the one model check at start-up, before any call of the search (a count, not seconds)
    assert rows["llm-401"]["finished"] == "expected error" and rows["llm-401"]["error_s_max"] is not None
    assert [t["figures"]["requests"] for t in rows["llm-401"]["trials"]] == [1]
    assert "rejected the key" in rows["llm-401"]["note"]
    table = (tmp_path / "faults.md").read_text()
    assert table.count("\n| ") == len(rows) and "| read a secret in the home directory | 1 | 0 |" in table
    assert table in res.stdout


def test_an_unsandboxed_node_reading_a_planted_secret_counts_as_an_escape():
    plant = Plant()
    plant.home_dir.chmod(0o755)  # readable by whatever user the unsandboxed program runs as
    for f in plant.home_dir.iterdir():
        f.chmod(0o755)
    trial = Trial("home")
    run_attack("read_secrets.py", {}, UNSANDBOXED, trial, plant=plant)
    assert trial.finished == "yes", trial.notes  # the program ran
    assert "planted home secret in the node's output" in trial.escapes
    assert not plant.home_dir.exists(), "the plant is removed"


def test_unsandboxed_writes_outside_and_connections_count_as_escapes():
    write, connect, plant = Trial("write"), Trial("tcp"), Plant()
    run_attack("write_outside.py", {}, UNSANDBOXED, write, plant=plant)
    run_attack("connect_out.py", {"unix": []}, UNSANDBOXED, connect)
    assert "wrote /tmp/faults-<token>" in write.escapes
    assert any(e.startswith("host listener got a connection: port") for e in connect.escapes)
    assert not [p for p in plant.targets if os.path.lexists(p)], "the marker files are removed"


def test_a_stopped_sentinel_counts_as_touched_and_rows_count_trials():
    sentinel = Sentinel("SENTINEL-x")
    try:
        assert sentinel.touched() is None
        os.kill(sentinel.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while sentinel.touched() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "stopped" in (sentinel.touched() or "")
    finally:
        sentinel.close()
    trials = [Trial("k", escapes=["a", "b"]), Trial("k", notes=["fine"]), Trial("k", procs_touched=1)]
    row = summarize(Kind("k", "a kind", "sandbox", lambda t: None), trials)
    assert (row["runs"], row["escapes"], row["procs_touched"]) == (3, 1, 1)
    assert "| a kind | 3 | 1 | 0 | 1 | yes |  | 0.0 | ESCAPED: a; b; fine (1/3) |" in markdown([row])
