"""The phase mechanism: order, done-markers, resume, failures and the phases list in summary.json."""
import json

import pytest

from engine import pipeline
from engine.errors import EngineError
from engine.phase import PhaseContext, PhaseSkipped, PipelineSettings, read_marker
from engine.tracking import NullTracker
from tests.conftest import run_config


class Phases:
    """Stand-in phase entry points that record their calls; `behaviour[name]` says what each does."""

    def __init__(self, monkeypatch, **behaviour):
        self.calls: list[str] = []
        self.behaviour = behaviour
        monkeypatch.setattr(pipeline, "entry_point", lambda name: lambda ctx: self._run(name, ctx))

    def _run(self, name, ctx):
        self.calls.append(name)
        what = self.behaviour.get(name, "done")
        if what == "skip":
            raise PhaseSkipped(f"{name} cannot run here")
        if what == "fail":
            raise EngineError(f"{name} broke: fix it\nsecond line")
        if what == "interrupt":
            raise KeyboardInterrupt
        (ctx.run_dir / f"{name}.out").write_text(name)
        return {"file": f"{name}.out"}


def ctx_for(tmp_path, *overrides):
    return PhaseContext(tmp_path, run_config(*overrides), None, NullTracker())


def summary(tmp_path):
    return json.loads((tmp_path / "summary.json").read_text())


def test_phases_run_in_order_and_leave_markers_and_a_summary(tmp_path, monkeypatch):
    phases = Phases(monkeypatch, review="skip")
    out = pipeline.run_pipeline(ctx_for(tmp_path))
    assert phases.calls == ["ideas", "experiments", "writeup", "review"]
    assert [(p["name"], p["status"]) for p in out["phases"]] == [
        ("ideas", "done"), ("experiments", "done"), ("writeup", "done"), ("review", "skipped")]
    assert out["phases"][3]["why"] == "review cannot run here"
    assert out["status"] == "finished"
    marker = read_marker(tmp_path, "writeup")
    assert marker["outputs"] == {"file": "writeup.out"} and marker["wall_time_s"] >= 0
    assert marker["cost_usd"] == 0.0  # offline: no model, no cost
    assert summary(tmp_path)["phases"] == out["phases"]
    assert "Phases" in (tmp_path / "viewer.html").read_text()


def test_resume_skips_finished_phases_and_continues_the_interrupted_one(tmp_path, monkeypatch):
    phases = Phases(monkeypatch, writeup="interrupt")
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(ctx_for(tmp_path))
    assert read_marker(tmp_path, "writeup")["status"] == "interrupted"
    assert summary(tmp_path)["status"] == "interrupted"
    phases.calls.clear()
    phases.behaviour = {}
    out = pipeline.run_pipeline(ctx_for(tmp_path))
    assert phases.calls == ["writeup", "review"]  # ideas and experiments were done
    marker = read_marker(tmp_path, "writeup")
    assert marker["status"] == "done" and len(marker["attempts"]) == 2
    assert out["status"] == "finished"


def test_a_failed_phase_skips_the_rest_and_raises_its_error(tmp_path, monkeypatch):
    phases = Phases(monkeypatch, experiments="fail")
    with pytest.raises(EngineError, match="experiments broke"):
        pipeline.run_pipeline(ctx_for(tmp_path))
    assert phases.calls == ["ideas", "experiments"]
    s = summary(tmp_path)
    assert s["status"] == "failed"
    assert {p["name"]: (p["status"], p.get("why")) for p in s["phases"]} == {
        "ideas": ("done", None), "experiments": ("failed", "experiments broke: fix it"),
        "writeup": ("skipped", "the experiments phase failed"), "review": ("skipped", "the experiments phase failed")}


def test_one_phase_on_an_existing_run_and_redo(tmp_path, monkeypatch):
    phases = Phases(monkeypatch)
    pipeline.run_pipeline(ctx_for(tmp_path))
    phases.calls.clear()
    pipeline.run_pipeline(ctx_for(tmp_path, "pipeline.phases=[writeup]"))
    assert phases.calls == []  # done already
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "old.tex").write_text("from the first writeup")
    pipeline.run_pipeline(ctx_for(tmp_path, "pipeline.phases=[writeup]", "pipeline.redo=[writeup]"))
    assert phases.calls == ["writeup"]
    assert not (tmp_path / "paper").exists()  # redo starts afresh, not from the earlier checkpoints
    # a phase whose inputs this run never made is skipped with the reason
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    out = pipeline.run_pipeline(ctx_for(fresh, "pipeline.phases=[review]"))
    assert out["phases"] == [{"name": "review", "status": "skipped", "wall_time_s": 0, "cost_usd": 0.0,
                              "why": "needs the writeup phase's outputs, and this run has none"}]


@pytest.mark.parametrize("override, message", [
    ("pipeline.phases=[ideas,papers]", r"pipeline.phases=\['ideas', 'papers'\]: unknown 'papers'"),
    ("pipeline.redo=[review,x]", r"pipeline.redo=\['review', 'x'\]: unknown 'x'"),
    ("pipeline.redo=[experiments]", "the experiments cannot be redone in place"),
])
def test_bad_phase_names_are_named(override, message):
    with pytest.raises(EngineError, match=message):
        run_config(override)


def test_phases_always_run_in_pipeline_order():
    assert PipelineSettings.of(run_config("pipeline.phases=[review,ideas]")).phases == ("ideas", "review")
