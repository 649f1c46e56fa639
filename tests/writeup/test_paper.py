"""The paper written by an in-process scripted model (through the engine's own OpenAI provider) with fake
literature: citation rounds, a draft, refinement, figure notes from a vision model, and the compile loop that sends
LaTeX errors and check findings back until the paper compiles and checks out."""
import json
import subprocess
from pathlib import Path

import pytest

from engine.literature.errors import LiteratureError
from engine.writeup import run_phase
from engine.writeup.preflight import missing_tools
from tests.scripted_model import ScriptedModel
from tests.writeup.paper_model import CLEAN, FIGURE, PaperModel
from tests.writeup.support import (
    FakeLiterature,
    context,
    fake_llm,
    install_fake_figures,
    run_config,
    smoke_copy,
    with_outcome,
)

REAL_WRITES = {"write_text": Path.write_text, "write_bytes": Path.write_bytes}


class Killed(BaseException):
    """Stands in for the process being killed (a BaseException, so no handler of the engine takes it)."""


def die_while_writing(monkeypatch, name: str, at: int) -> None:
    """The `at`-th write of the file `name` (or of its temporary copy) gets half its bytes to disk, then the process
    is killed; every other write goes through."""
    seen = {"n": 0}

    def dying(kind):
        def write(self, data, *args, **kwargs):
            if self.name in (name, f".{name}.tmp"):
                seen["n"] += 1
                if seen["n"] == at:
                    raw = data.encode() if isinstance(data, str) else data
                    REAL_WRITES["write_bytes"](self, raw[: len(raw) // 2])
                    raise Killed(f"killed while writing {self.name}")
            return REAL_WRITES[kind](self, data, *args, **kwargs)
        return write
    for kind in REAL_WRITES:
        monkeypatch.setattr(Path, kind, dying(kind))

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason="TeX Live / poppler not installed")


def write(tmp_path, monkeypatch, model, *overrides, vision=False, literature=None, own_format=False, outcome=False):
    install_fake_figures(monkeypatch)
    run = with_outcome(smoke_copy(tmp_path)) if outcome else smoke_copy(tmp_path)
    cfg = run_config("writeup.num_cite_rounds=3", "writeup.compile_rounds=2", *overrides,
                     own_format=tmp_path / "bare_template" if own_format else None)
    with ScriptedModel(responder=model) as scripted:
        out = run_phase(context(run, cfg, fake_llm(scripted, vision=vision), literature or FakeLiterature()))
    integrity = json.loads((run / "paper" / "integrity.json").read_text())
    return run, out, integrity


def pdf_text(path):
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(text.split())


def test_paper_end_to_end(tmp_path, monkeypatch):
    model = PaperModel()
    run, out, integrity = write(tmp_path, monkeypatch, model, vision=True)
    assert out["kind"] == "paper" and out["why_report"] is None and out["checks_ok"]
    assert out["citations"] == 2 and out["figures"] == 1 and out["untraced_numbers"] == 0
    assert out["main_pages"] <= 4
    text = pdf_text(run / "paper" / "paper.pdf")
    assert CLEAN["title"] in text and "generated autonomously by an AI system" in text
    assert "[?]" not in text and "grokking: generalization beyond overfitting" in text.lower()  # the bibliography
    bib = (run / "paper" / "references.bib").read_text()
    assert "power2022grokking" in bib and "nanda2023progress" in bib
    assert all(c["ok"] for c in integrity["checks"].values()) and integrity["untraced"] == []
    assert {t["number"] for t in integrity["traced"]} >= {"150", "0.0038", "99%", "23", "0.003"}
    # one draft, a refinement of the abstract and each of the seven sections, no correction needed
    assert len(model.calls["write_paper"]) == 1 and len(model.calls["revise_section"]) == 8
    assert "fixed_paper" not in model.calls
    # the vision model's notes on each figure reach the refinement
    assert len(model.calls["figure_notes"]) == 2 and "VISION-NOTE" in model.calls["revise_section"][0]
    # the draft prompt carried the facts, the figures and the citation list
    draft_prompt = model.calls["write_paper"][0]
    assert "step_val_acc_99 (minimize)" in draft_prompt and "figures/seeds_initial.png" in draft_prompt
    assert "power2022grokking: Grokking" in draft_prompt
    state = json.loads((run / "paper" / "writer.json").read_text())
    assert state["finished"] and state["refined"][0] == "abstract"


def test_latex_error_is_fixed_through_the_feedback_loop(tmp_path, monkeypatch):
    draft = dict(CLEAN, results=CLEAN["results"] + "\nThe \\undefinedmacro{runs} were short.")
    model = PaperModel(draft=draft, fix=lambda latex: latex.replace("\\undefinedmacro{runs}", "runs"))
    run, out, integrity = write(tmp_path, monkeypatch, model)
    [request] = model.calls["fixed_paper"]
    assert "Undefined control sequence" in request and "\\undefinedmacro" in request
    assert out["kind"] == "paper" and (run / "paper" / "paper.pdf").is_file() and out["checks_ok"]
    assert "undefinedmacro" not in (run / "paper" / "paper.tex").read_text()
    assert "The runs were short." in pdf_text(run / "paper" / "paper.pdf")


def test_invented_number_is_flagged(tmp_path, monkeypatch):
    draft = dict(CLEAN, results=CLEAN["results"] + "\nWith a longer schedule the model reached 87.3\\% accuracy.")
    model = PaperModel(draft=draft)  # a model that will not take the number out
    run, out, integrity = write(tmp_path, monkeypatch, model)
    assert out["untraced_numbers"] == 1 and not out["checks_ok"] and out["kind"] == "paper"
    [untraced] = integrity["untraced"]
    assert untraced["number"] == "87.3%" and untraced["section"] == "section 'Results'"
    assert "reached 87.3%" in untraced["sentence"]
    assert len(model.calls["fixed_paper"]) == 2  # every correction round was asked to remove it
    assert "the number 87.3" in model.calls["fixed_paper"][0]


def test_untraced_and_wrongly_signed_claims_go_back_to_the_model(tmp_path, monkeypatch):
    wrong = "On fresh seeds the chosen program needs 8.3\\% more steps than the baseline."
    invented = "Its validation loss fell to 0.0413."
    draft = dict(CLEAN, results=CLEAN["results"] + "\n" + wrong + " " + invented)
    model = PaperModel(draft=draft, fix=lambda latex: latex.replace("8.3\\% more", "8.3\\% fewer")
                       .replace(" " + invented, ""))
    run, out, integrity = write(tmp_path, monkeypatch, model, outcome=True)
    [request] = model.calls["fixed_paper"]
    assert "the claim '8.3%' in section 'Results' has the wrong direction" in request
    assert "the number 0.0413 in section 'Results' is not in the run's results" in request
    assert "The run's result (what the paper claims): node step 0, stage initial" in model.calls["write_paper"][0]
    assert out["checks_ok"] and out["untraced_numbers"] == 0 and integrity["untraced"] == []
    [claim] = [t for t in integrity["traced"] if t["number"] == "8.3%"]
    assert [f["key"] for f in claim["facts"]] == ["result.mean", "result.baseline.mean"]
    assert "8.3\\% fewer steps" in (run / "paper" / "paper.tex").read_text()


def test_unknown_citation_is_removed(tmp_path, monkeypatch):
    draft = dict(CLEAN, introduction=CLEAN["introduction"] + " Later work confirmed it~\\cite{madeup2031}.")
    model = PaperModel(draft=draft)
    run, out, integrity = write(tmp_path, monkeypatch, model)
    assert "madeup2031" not in (run / "paper" / "paper.tex").read_text()
    assert integrity["removed_citations"] == ["madeup2031"] and integrity["checks"]["citations"]["ok"]
    text = pdf_text(run / "paper" / "paper.pdf")
    assert "[?]" not in text and "Later work confirmed it." in text


def test_duplicated_figure_is_caught(tmp_path, monkeypatch):
    twice = FIGURE.replace("fig:seeds_initial", "fig:again")
    draft = dict(CLEAN, results=CLEAN["results"] + "\n" + twice)
    model = PaperModel(draft=draft, fix=lambda latex: latex.replace(twice, ""))
    run, out, integrity = write(tmp_path, monkeypatch, model)
    [request] = model.calls["fixed_paper"]
    assert "figures/seeds_initial.png is included 2 times" in request
    assert out["checks_ok"] and out["figures"] == 1 and integrity["checks"]["duplicates"]["ok"]


def test_failed_literature_search_still_gives_a_paper(tmp_path, monkeypatch):
    lit = FakeLiterature(error=LiteratureError("grokking", {"arxiv": "timeout"}, "check the network"))
    run, out, integrity = write(tmp_path, monkeypatch, PaperModel(), literature=lit, own_format=True)
    assert out["kind"] == "paper" and out["citations"] == 0 and "timeout" in out["citation_warning"]
    assert sorted(integrity["removed_citations"]) == ["nanda2023progress", "power2022grokking"]
    assert "[?]" not in pdf_text(run / "paper" / "paper.pdf")
    assert "workshop format" in pdf_text(run / "paper" / "paper.pdf")  # our own template


def test_model_failure_falls_back_to_the_report(tmp_path, monkeypatch):
    run, out, integrity = write(tmp_path, monkeypatch, lambda path, body: {"status": 500})
    assert out["kind"] == "results report" and "the model calls failed" in out["why_report"]
    assert "A paper was not written: the model calls failed" in pdf_text(run / "paper" / "paper.pdf")


def test_resume_continues_where_the_model_failed(tmp_path, monkeypatch):
    install_fake_figures(monkeypatch)
    run = smoke_copy(tmp_path)
    cfg = run_config("writeup.num_cite_rounds=3", "writeup.compile_rounds=2")
    first, revisions = PaperModel(), []

    def flaky(path, body):  # the fourth refinement fails (a server error, no retries)
        if body["tools"][0]["function"]["name"] == "revise_section":
            revisions.append(1)
            if len(revisions) == 4:
                return {"status": 500}
        return first(path, body)

    lit = FakeLiterature()
    with ScriptedModel(responder=flaky) as scripted:
        out = run_phase(context(run, cfg, fake_llm(scripted), lit))
    assert out["kind"] == "results report" and "the model calls failed" in out["why_report"]
    assert (run / "paper" / "paper_model_draft.tex").is_file()
    assert len(first.calls["revise_section"]) == 3 and len(lit.queries) == 1
    second = PaperModel()
    with ScriptedModel(responder=second) as scripted:
        out = run_phase(context(run, cfg, fake_llm(scripted), lit))
    assert out["kind"] == "paper" and out["checks_ok"] and out["citations"] == 2
    # nothing done before is asked again: no citation round, no draft, only the five sections left to refine
    assert "next_search" not in second.calls and "write_paper" not in second.calls
    assert len(second.calls["revise_section"]) == 5 and len(lit.queries) == 1


def test_page_limit_is_enforced(tmp_path, monkeypatch):
    model = PaperModel()
    run, out, integrity = write(tmp_path, monkeypatch, model, "writeup.format=conference", "writeup.page_limit=1",
                                own_format=True)
    assert "conference format" in pdf_text(run / "paper" / "paper.pdf")
    assert out["main_pages"] == 2 and not out["checks_ok"]
    assert integrity["checks"]["page_limit"]["findings"] == [
        "the main text runs to 2 pages; the limit is 1 pages before the references: shorten it by about 1 page(s)"]
    assert "the limit is 1 pages" in model.calls["fixed_paper"][0]


@pytest.mark.parametrize("name, at", [("writer.json", 2), ("citations.json", 2)])
def test_a_kill_while_a_file_of_the_paper_is_written_does_not_break_the_resume(tmp_path, monkeypatch, name, at):
    """writer.json and citations.json are what a resumed writeup reads (paper.tex is made again from writer.json):
    each is replaced whole, so a process killed while writing one leaves the previous version, and the resumed phase
    finishes the paper."""
    install_fake_figures(monkeypatch)
    run = smoke_copy(tmp_path)
    cfg = run_config("writeup.num_cite_rounds=3", "writeup.compile_rounds=2")
    with monkeypatch.context() as m:
        die_while_writing(m, name, at)
        with ScriptedModel(responder=PaperModel()) as scripted, pytest.raises(Killed):
            run_phase(context(run, cfg, fake_llm(scripted), FakeLiterature()))
    assert (run / "paper" / name).is_file()  # the version before the kill
    with ScriptedModel(responder=PaperModel()) as scripted:
        out = run_phase(context(run, cfg, fake_llm(scripted), FakeLiterature()))
    assert out["kind"] == "paper" and out["checks_ok"] and (run / "paper" / "paper.pdf").is_file()
    assert json.loads((run / "paper" / "writer.json").read_text())["finished"]
