"""The offline writeup: a results report compiled from a real run directory, every word generated from data."""
import json
import subprocess

import pytest

from engine.phase import PhaseSkipped
from engine.writeup import run_phase
from engine.writeup.preflight import missing_tools
from tests.writeup.support import context, install_fake_figures, run_config, smoke_copy, with_outcome

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason="TeX Live / poppler not installed")


def pdf_text(path):
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("own_format", [False, True], ids=["template-latex", "workshop-format"])
def test_offline_report_from_a_real_run(tmp_path, monkeypatch, own_format):
    install_fake_figures(monkeypatch)
    run = with_outcome(smoke_copy(tmp_path))
    summary = json.loads((run / "summary.json").read_text())
    cfg = run_config(own_format=tmp_path / "bare_template" if own_format else None)
    out = run_phase(context(run, cfg))
    assert out["kind"] == "results report" and out["pdf"] == "paper/paper.pdf"
    assert "no model is configured" in out["why_report"]
    assert out["figures"] == 2 and out["citations"] == 0 and out["untraced_numbers"] == 0 and out["checks_ok"]
    # (with OT1 fonts, as in the template's own LaTeX, pdftotext reads an underscore as a space)
    flat = " ".join(pdf_text(run / out["pdf"]).replace("_", " ").split())
    assert "Batch Size and the Timing of Grokking" in flat  # the idea's title
    assert "automatically generated results report" in flat and "no model-written prose" in flat
    assert "generated autonomously by an AI system" in flat
    # the abstract quotes the result: its fresh-seed mean with its interval, and how it compares with the baseline
    r = summary["result"]
    abstract = flat[flat.index("Abstract"):flat.index("The idea under test")]
    assert f"{r['mean']:g} ± {r['stderr']:.4g} (95% CI [{r['ci95'][0]:.4g}, {r['ci95'][1]:.4g}]" in abstract
    assert f"{r['n']} seeds)" in abstract and r["improvement"]["text"].split(":")[0] in abstract
    tex = (run / "paper" / "paper.tex").read_text()
    assert "ablation & mean & stderr & n & delta & 95\\% CI of delta & verdict" in tex  # one table, these columns
    assert all(a["name"].replace("_", " ") in flat and a["verdict"] in flat for a in summary["ablations"])
    for stage in summary["stages"]:
        assert f"Stage {stage['name']}: {stage['title']}" in flat
    assert "weight decay from 1.0 to 2.0" in flat  # what tuning tried
    assert "Seed evaluation of stage initial" in flat  # a figure's caption
    integrity = json.loads((run / "paper" / "integrity.json").read_text())
    assert integrity["untraced"] == [] and len(integrity["traced"]) > 20
    assert integrity["kind"] == "results report"
    assert "\\section{Run facts}" in (run / "paper" / "paper.tex").read_text()


def test_special_characters_from_the_run_are_escaped(tmp_path, monkeypatch):
    install_fake_figures(monkeypatch)
    run = smoke_copy(tmp_path)
    idea = json.loads((run / "idea.json").read_text())
    idea["Title"] = "50% of R&D: x_1 ~ {#} $5 ^ <a> \\ \"q\" µ→ ✓"
    (run / "idea.json").write_text(json.dumps(idea))
    out = run_phase(context(run, run_config()))
    assert "50% of R&D: x 1" in " ".join(pdf_text(run / out["pdf"]).replace("_", " ").split())


def test_no_experiments_means_skipped(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(PhaseSkipped, match="the experiments phase has not run"):
        run_phase(context(tmp_path / "run", run_config()))
    # the pipeline writes a summary of its own before any experiment ran
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"topic": "grokking", "phases": []}))
    with pytest.raises(PhaseSkipped, match="the experiments phase has not run"):
        run_phase(context(tmp_path / "run", run_config()))


def test_buggy_nodes_and_skipped_seeds(tmp_path, monkeypatch):
    install_fake_figures(monkeypatch)
    run = smoke_copy(tmp_path)
    path = run / "stages" / "tuning" / "summary.json"
    stage = json.loads(path.read_text())
    stage["seeds"] = {"skipped": "stages.num_seeds=1", "asked": 1}
    stage["seed_mean"] = stage["seed_stderr"] = None
    stage["history"][1].update(buggy=True, value=None, bug_reason="RuntimeError: CUDA out of memory; 100% of 8_GB")
    path.write_text(json.dumps(stage))
    summary = json.loads((run / "summary.json").read_text())
    summary["stages"][1].update(seed_mean=None, seed_stderr=None)
    (run / "summary.json").write_text(json.dumps(summary))
    out = run_phase(context(run, run_config(own_format=tmp_path / "bare")))
    flat = " ".join(pdf_text(run / out["pdf"]).split())
    assert "(buggy: RuntimeError: CUDA out of memory; 100% of 8_GB)" in flat
    assert "skipped: stages.num_seeds=1" in flat and out["untraced_numbers"] == 0


def test_a_template_latex_that_cannot_hold_the_report_falls_back_to_our_format(tmp_path, monkeypatch):
    """A v1 template's latex/template.tex can be anything; one the report cannot compile in (here: no
    \\documentclass preamble worth the name, as in the tests' toy template) must not cost the run its PDF."""
    install_fake_figures(monkeypatch)
    run = smoke_copy(tmp_path)
    template = tmp_path / "odd_template"
    (template / "latex").mkdir(parents=True)
    (template / "latex" / "template.tex").write_text("\\begin{document}x\\end{document}")
    cfg = run_config(own_format=template)
    out = run_phase(context(run, cfg))
    assert out["kind"] == "results report" and (run / out["pdf"]).read_bytes()[:4] == b"%PDF"
    assert "Results by stage" in pdf_text(run / out["pdf"])
