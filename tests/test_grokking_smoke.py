"""End to end on the shipped grokking template, smoke profile: real training, sandboxed, with plots."""
import json

import pyarrow.parquet as pq
import pytest

from tests.conftest import launch


@pytest.mark.slow
def test_grokking_smoke_run(tmp_path):
    run_dir = tmp_path / "run"
    res = launch("+topic=grokking", "topic.profile=smoke", "search.max_nodes=5", f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["topic"] == "grokking" and s["profile"] == "smoke" and s["status"] == "finished"
    assert s["primary_metric"] == {"name": "step_val_acc_99", "direction": "minimize"}
    assert s["nodes"]["total"] == 5 and s["nodes"]["good"] >= 1
    assert s["baseline"] is not None and s["baseline_source"].startswith("node 0")
    best_dir = next((run_dir / "nodes").glob(f"*-{s['best']['node_id']}"))
    info = json.loads((best_dir / "run_0" / "final_info.json").read_text())
    assert info["x_plus_y"]["means"]["final_train_acc"] > 0
    assert (best_dir / "acc_curves.png").read_bytes()[:4] == b"\x89PNG"
    # progress was shown while it ran
    assert "[5/5]" in res.stderr and "best" in res.stderr
    # every node says who proposed it
    assert {r["proposer"] for r in pq.read_table(run_dir / "journal").to_pylist()} == {s["proposer"]}
