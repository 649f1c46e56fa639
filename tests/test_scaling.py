"""The scaling analysis (benchmarks/scaling.py) on synthetic sweep folders: run directories with a config.yaml, a
summary.json and a ledger, as the pipeline writes them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import wandb
import yaml

from benchmarks.scaling import analyse, calibration, main
from engine.llm.ledger import CallRecord, Ledger


def make_run(sweep: Path, name: str, model: str, released: str | None, overall: float | None, tokens: int,
             seed: int = 0, budget: float = 1.0, nodes: int = 4, status: str = "finished",
             tracking: dict | None = None) -> Path:
    run = sweep / name
    run.mkdir(parents=True)
    config = {"model": {"name": model, "release_date": released}, "llm": {"roles": {"review": None}},
              "search": {"budget_scale": budget}, "seed": seed, "tracking": tracking or {"kind": "none"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    review = {"name": "review", "status": "done", "wall_time_s": 2.0} if overall is not None else \
        {"name": "review", "status": "skipped", "why": "the writeup phase failed", "wall_time_s": 0.0}
    phases = [{"name": "experiments", "status": "done", "wall_time_s": 30.0},
              {"name": "writeup", "status": "done" if overall is not None else "failed",
               "why": None if overall is not None else "the paper did not compile", "wall_time_s": 5.0}, review]
    summary = {"status": status, "phases": phases, "best": {"value": 150.0},
               "primary_metric": {"name": "step_val_acc_99", "direction": "minimize"}, "nodes": {"total": nodes}}
    if overall is not None:
        summary["review"] = {"Overall": overall, "Decision": "Accept" if overall >= 6 else "Reject"}
    (run / "summary.json").write_text(json.dumps(summary))
    Ledger(run, name).append(CallRecord(
        run=name, seq=0, node=None, step=None, stage="initial", role="code", model=model, provider="openai",
        input_tokens=tokens, output_tokens=tokens // 4, cached_tokens=0, cost_usd=tokens * 1e-6, latency_s=0.1,
        ok=True, error=None, replayed=False, time=0.0))
    return run


def test_scores_against_release_date_and_compute_with_intervals(tmp_path):
    rng = np.random.default_rng(0)
    sweep = tmp_path / "sweep"
    for year in (2021, 2022, 2023, 2024):
        for seed in (0, 1):
            overall = 2 + 1.5 * (year - 2021) + rng.normal(0, 0.4)
            make_run(sweep, f"model=m{year},seed={seed}", f"m{year}", f"{year}-03-01", round(overall, 1),
                     tokens=1000 + 10 * seed, seed=seed)
    # one model swept over compute, where more compute scored worse: the fit's sign comes from the data
    for budget, tokens, overall in ((0.5, 1000, 6.0), (1.0, 2000, 5.0), (2.0, 4000, 4.5), (4.0, 8000, 3.0)):
        make_run(sweep, f"model=m2022,budget={budget}", "m2022", "2022-03-01", overall, tokens, budget=budget,
                 nodes=int(8 * budget))
    result = analyse([sweep], tmp_path / "out", [], tracking="none")
    fits = {f["against"]: f for f in result["fits"]}
    date = fits["release date"]
    assert date["n"] == 12 and date["slope"] > 0 and date["ci95"][0] > 0 and date["p_value"] < 0.01
    assert date["ci95"][0] < date["slope"] < date["ci95"][1] and date["spearman_rho"] > 0
    within = fits["log10 tokens (model m2022)"]
    assert within["n"] == 6 and within["slope"] < 0  # the two seeds at budget 1 and the four budgets
    assert fits["log10 nodes"]["n"] == 12
    rows = pq.read_table(tmp_path / "out" / "runs.parquet").to_pylist()
    assert len(rows) == 12 and {r["budget_scale"] for r in rows} == {0.5, 1.0, 2.0, 4.0}
    r = next(r for r in rows if r["run"] == "model=m2022,budget=4.0")
    assert (r["tokens"], r["cost_usd"], r["nodes"], r["wall_time_s"]) == (10000, 0.008, 32, 37.0)
    for png in ("scaling_release_date.png", "scaling_compute.png"):
        assert (tmp_path / "out" / png).stat().st_size > 10_000
    assert "| release date | 12 | +" in (tmp_path / "out" / "report.md").read_text()


def test_runs_without_a_review_are_listed_and_too_few_points_say_so(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    make_run(sweep, "model=a", "a", "2023-01-01", 4, 1000)
    make_run(sweep, "model=b", "b", "2024-01-01", 6, 2000)
    make_run(sweep, "model=c", "c", None, None, 3000, status="failed")
    # a point whose config never composed: in sweep.json only
    (sweep / "sweep.json").write_text(json.dumps({"launches": [{"wall_time_s": 50.0}], "points": {
        "model=d": {"status": "failed", "error": "its config does not compose: Could not find 'model/d'",
                    "run_dir": str(sweep / "model=d")}}}))
    assert main([str(sweep), "--out", str(tmp_path / "out"), "--tracking", "none"]) == 0
    rows = {r["run"]: r for r in pq.read_table(tmp_path / "out" / "runs.parquet").to_pylist()}
    assert set(rows) == {"model=a", "model=b", "model=c", "model=d"}
    assert rows["model=c"]["why_no_review"] == "review skipped: the writeup phase failed"
    assert "Could not find 'model/d'" in rows["model=d"]["why_no_review"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "- `model=c` (failed): review skipped" in report and "- `model=d` (failed): its config" in report
    assert "too few points for a fit: 2 reviewed run(s), at least 3 needed" in report
    assert "no reviewer benchmark was given" in report.lower() and "2 different reviewers" in report
    assert "took 50 s; its runs took 109 s together" in report  # the sweep's wall time against its runs'
    assert "Paper quality" in capsys.readouterr().out


def test_reviewer_calibration_from_the_iclr_benchmark(tmp_path):
    bench = tmp_path / "iclr2022_gpt-4o_fs1_refl5_ens5_t0.1" / "metrics.json"
    bench.parent.mkdir()
    bench.write_text(json.dumps({"n": 500, "balanced_accuracy": 0.602, "accuracy": 0.696, "f1": 0.372,
                                 "roc_auc": 0.691, "ci95": {"balanced_accuracy": [0.56, 0.64]},
                                 "by_threshold": {"6": {"balanced_accuracy": 0.651}}}))
    text = "\n".join(calibration([bench], ["gpt-4o-2024-08-06"]))
    assert "balanced accuracy **0.602** (95% CI 0.560-0.640)" in text and "reviewer `gpt-4o`" in text
    assert "Overall >= 6: balanced accuracy 0.651" in text and "not the reviewer" not in text
    other = "\n".join(calibration([bench], ["claude-3-5-sonnet-20241022"]))
    assert "This benchmark measured `gpt-4o`, not the reviewer of these runs" in other


def test_the_table_and_plots_go_to_the_sweeps_wandb_group(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_SERVICE", raising=False)  # see tests/engine/test_tracking.py
    sweep = tmp_path / "sweep"
    tracking = {"kind": "wandb", "project": "p", "entity": None, "group": "sweep-7", "mode": "offline"}
    for i, year in enumerate((2022, 2023, 2024)):
        make_run(sweep, f"model=m{year}", f"m{year}", f"{year}-01-01", 3 + i, 1000 * (i + 1), tracking=tracking)
    result = analyse([sweep], tmp_path / "out", [])
    wandb.teardown()
    assert result["wandb_group"] == "sweep-7"
    logged = b"".join(p.read_bytes() for p in (tmp_path / "out" / "wandb").glob("offline-run-*/*.wandb"))
    assert b"sweep-7" in logged and b"analysis" in logged and b"table/scaling_runs" in logged
    media = tmp_path / "out" / "wandb"
    assert list(media.glob("offline-run-*/files/media/table/**/scaling_runs_*.table.json"))
    assert list(media.glob("offline-run-*/files/media/images/**/scaling_release_date_*.png"))
