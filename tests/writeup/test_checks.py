"""The checks after each compile, without compiling: number integrity, references, citations, duplicates,
pages; and the facts they check against, read from a real run directory."""
import pytest

from engine.writeup.checks import main_pages, run_checks, trace_numbers
from engine.writeup.facts import collect_facts
from engine.writeup.latex import escape, fill, with_disclosure
from engine.writeup.writer import drop_unknown_citations
from tests.writeup.support import SMOKE_RUN


def doc(abstract: str, results: str, other: str = "") -> str:
    return ("\\documentclass{article}\\begin{document}\\begin{abstract}" + abstract + "\\end{abstract}"
            "\\section{Introduction}" + other + "\\section{Results}" + results + "\\end{document}")


@pytest.fixture(scope="module")
def ledger():
    return collect_facts(SMOKE_RUN).ledger


@pytest.mark.parametrize("quantity,written,key", [
    ("final training accuracy", "0.64", "x_plus_y.means.final_train_acc"),
    ("final training accuracy", "0.6402", "x_plus_y.means.final_train_acc"),
    ("final training accuracy", "64.0\\%", "x_plus_y.means.final_train_acc"),
    ("final training accuracy", "64\\%", "x_plus_y.means.final_train_acc"),
    ("final training loss", "1.6", "x_plus_y.means.final_train_loss")])
def test_trace_at_written_precision(ledger, quantity, written, key):
    tex = doc("", f"The best program reached a {quantity} of {written}.")
    [entry], untraced, _ = trace_numbers(tex, ledger)
    assert untraced == [] and entry["facts"][0]["key"] == key


@pytest.mark.parametrize("written", ["0.65", "0.6403", "64.1\\%", "1", "0.64\\%", "64"])
def test_untraceable_at_written_precision(ledger, written):
    _, [entry], _ = trace_numbers(doc("", f"The best program reached a final training accuracy of {written}."), ledger)
    assert entry["problem"] == "untraced"


def test_integrity_ignores_references_lengths_years_and_identifiers(ledger):
    tex = doc("Since 2019 we reach 99\\% validation accuracy in 150 steps (Figure~2, Table 3).",
              "See Figure~\\ref{fig:x2} and \\cite{smith2020}. \\includegraphics[width=0.7\\linewidth]{f7.png}"
              "\\vspace{3pt} step\\_val\\_acc\\_99 after 150 steps, learning rate $3 \\times 10^{-3}$ or 3e-3, "
              "Section 4.",
              other="Numbers outside the checked sections (like 777) are not checked.")
    traced, untraced, ignored = trace_numbers(tex, ledger)
    assert untraced == []
    assert sorted(t["number"] for t in traced) == ["150", "150", "3e-3", "3e-3", "99%"]
    assert sorted(i["number"] for i in ignored) == ["2", "2019", "3", "4"]


def test_a_node_id_that_reads_as_an_exponent_is_no_number(ledger):
    # the results report quotes node ids (12 hex digits); about 1 id in 280 is digits, an e, digits, and a float
    # of it overflowed: the writeup crashed for such a run
    tex = doc("The best run took 150 steps.", "Nodes (1439e3519430) and (0e123456) ran 150 steps.")
    traced, untraced, _ = trace_numbers(tex, ledger)
    assert untraced == [] and [t["number"] for t in traced] == ["150", "150"]


def test_invented_numbers_are_reported_with_their_sentence(ledger):
    tex = doc("We reach 87.3\\% accuracy.", "The loss fell to 0.042 after 150 steps.")
    _, untraced, _ = trace_numbers(tex, ledger)
    assert [(u["number"], u["section"]) for u in untraced] == [("87.3%", "abstract"),
                                                                ("0.042", "section 'Results'")]
    assert untraced[1]["sentence"] == "The loss fell to 0.042 after 150 steps."


def test_structure_checks(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(b"png")
    tex = doc("", "\\includegraphics{figures/a.png}\\includegraphics{figures/a.png}\\includegraphics{figures/b.png}"
              "\\label{fig:a} \\ref{fig:a} \\ref{fig:missing} \\citep{known,unknown2020}"
              "\\section{Results} again", other="% \\ref{commented_out}\n")
    report = run_checks(tmp_path, tex, None, collect_facts(SMOKE_RUN).ledger, 4, {"known"})
    c = report.checks
    assert c["figures"].findings == ["\\includegraphics{figures/b.png}: no such file (figures are in figures/)"]
    assert c["references"].findings == ["\\ref{fig:missing}: no \\label{fig:missing} is defined"]
    assert c["citations"].findings == ["\\cite{unknown2020}: not in references.bib"]
    assert any("figures/a.png is included 2 times" in f for f in c["duplicates"].findings)
    assert any("'results' appears 2 times" in f for f in c["duplicates"].findings)
    assert not report.ok and "figures/b.png" in report.feedback()


def test_unknown_citations_are_removed():
    tex = "as shown~\\cite{madeup2031}. Both \\citep[see][]{known, fake1} and \\citet{known}."
    fixed, removed = drop_unknown_citations(tex, {"known"})
    assert fixed == "as shown. Both \\citep[see][]{known} and \\citet{known}."
    assert removed == ["madeup2031", "fake1"]


def test_main_pages_end_at_references():
    pages = ["Title\nIntro text\n1", "More text\n2", "Results\n3", "end of conclusion\nReferences\n[1] A.\n4",
             "Appendix\n5"]
    assert main_pages("\f".join(pages) + "\f") == (5, 4)
    pages[3] = "References\n[1] A.\n4"  # the references start on a fresh page
    assert main_pages("\f".join(pages)) == (5, 3)


def test_facts_of_a_real_run():
    facts = collect_facts(SMOKE_RUN)
    assert facts.metric == "step_val_acc_99" and facts.direction == "minimize" and facts.baseline == 150.0
    assert [s.name for s in facts.stages] == ["initial", "tuning", "agenda", "ablations"]
    tuning = facts.stages[1]
    assert tuning.budget == 4 and tuning.nodes == 4 and not tuning.completed
    assert [c.change for c in tuning.history][1:] == ["num_heads", "learning_rate", "warmup_steps", "weight_decay"]
    assert tuning.seed_mean == 150.0 and tuning.seeds_ok == 2
    assert facts.settings["prime"] == 23 and facts.settings["learning_rate"] == 0.003
    assert len(facts.node_metrics) == 17
    # every metric of every node is a fact with its meaning, and so is the 99 of the metric's name
    found = {(f.value, f.quantity, f.stat) for f in facts.ledger.facts}
    assert {(0.6401515007019043, "final_train_acc", "value"), (4.383667945861816, "final_val_loss", "value"),
            (0.016981132328510284, "final_val_acc", "mean"), (99.0, "step_val_acc_99", "name"),
            (23.0, "prime", "setting")} <= found
    assert 3149.0 not in {f.value for f in facts.ledger.facts}  # digits of node ids are not facts
    assert facts.result is None and facts.ablations == []  # a run from before summary.json had them
    assert "Stage tuning (Hyperparameter tuning): budget 4, 4 nodes" in facts.prompt_text()


def test_escape_and_fill():
    assert escape("a_b & 50% {x} ~ -> #1") == "a\\_b \\& 50\\% \\{x\\} \\textasciitilde{} $\\rightarrow$ \\#1"
    tex = with_disclosure(fill("\\begin{document}\\maketitle TITLE HERE|ABSTRACT HERE|INTRO HERE\\end{document}",
                               "T", "A", {"introduction": "I", "results": "R"}))
    assert "T|A|I" in tex and "\\section{Results}\nR" in tex and "\\bibliography{references}" in tex
    assert tex.index("generated autonomously by an AI system") < tex.index("T|A|I")
    assert "\\usepackage{graphicx}" in tex
