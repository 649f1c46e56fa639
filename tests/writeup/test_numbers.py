"""Reading the numbers of a paper's LaTeX: every form a result is written in, and the labels that are not
quantities (figure and section numbers, years, node ids, citations, lengths)."""
import pytest

from engine.writeup.numbers import checked_sentences, mentions


def doc(abstract: str, results: str, other: str = "", conclusion: str = "") -> str:
    return ("\\documentclass{article}\\begin{document}\\begin{abstract}" + abstract + "\\end{abstract}"
            "\\section{Introduction}" + other + "\\section{Results}" + results +
            "\\section{Conclusion}" + conclusion + "\\bibliography{references}\\end{document}")


def read(latex_sentence: str) -> list[tuple[str, float, str, int, int]]:
    """(text, value, kind, decimals, exponent) of each number of one results sentence."""
    [sentence] = checked_sentences(doc("", latex_sentence))
    return [(m.text, m.value, m.kind, m.decimals, m.exponent) for m in mentions(sentence.text)]


@pytest.mark.parametrize("latex,expected", [
    ("It needed 150 steps.", [("150", 150, "number", 0, 0)]),
    ("Accuracy was 0.9312.", [("0.9312", 0.9312, "number", 4, 0)]),
    ("It reached 93.1\\% accuracy.", [("93.1%", 93.1, "percent", 1, 0)]),
    ("It reached 93 percent accuracy.", [("93 percent", 93, "percent", 0, 0)]),
    ("It took 1,442 steps.", [("1,442", 1442, "number", 0, 0)]),
    ("It took $1{,}442$ steps.", [("1,442", 1442, "number", 0, 0)]),
    ("It took 1\\,442 steps.", [("1442", 1442, "number", 0, 0)]),
    ("It is 2x faster.", [("2x", 2, "ratio", 0, 0)]),
    ("It is 4.86× faster.", [("4.86×", 4.86, "ratio", 2, 0)]),
    ("It is 4.86$\\times$ faster.", [("4.86 ×", 4.86, "ratio", 2, 0)]),
    ("It is $4.86\\times$ faster.", [("4.86×", 4.86, "ratio", 2, 0)]),
    ("A 3-fold gain.", [("3-fold", 3, "ratio", 0, 0)]),
    ("Learning rate 1e-3.", [("1e-3", 0.001, "number", 0, -3)]),
    ("Learning rate $3 \\times 10^{-4}$.", [("3e-4", 3e-4, "number", 0, -4)]),
    ("Learning rate $10^{-3}$.", [("1e-3", 0.001, "number", 0, -3)]),
    ("The delta was $-0.5$.", [("-0.5", -0.5, "number", 1, 0)]),
    ("It groks twice as fast.", [("twice", 2, "ratio", 0, 0)]),
    ("It groks three times faster.", [("three times", 3, "ratio", 0, 0)]),
    ("Weight decay halved the steps.", [("halved", 2, "ratio", 0, 0)]),
    ("We ran two seeds.", [("two", 2, "number", 0, 0)]),
])
def test_every_form_of_a_number_is_read(latex, expected):
    found = read(latex)
    assert [(t, pytest.approx(v), k, d, e) for t, v, k, d, e in found] == expected


def test_words_that_state_no_result_are_prose():
    assert read("We make two contributions and discuss one idea in three ways.") == []


def test_labels_are_not_quantities():
    [sentence] = checked_sentences(doc("", "As Figure~2, Table 3 and Section 4 show (since 2019), node 3 and seeds "
                                       "0, 1 and 2 ran 150 steps \\cite{smith2020} \\vspace{3pt} in "
                                       "\\includegraphics[width=0.7\\linewidth]{f7.png}, id 6b6f9c1845f4."))
    labels = [(m.text, m.label) for m in mentions(sentence.text)]
    assert labels == [("2", "reference"), ("3", "reference"), ("4", "reference"), ("2019", "year"), ("3", "node"),
                      ("0", "seed"), ("1", "seed"), ("2", "seed"), ("150", "")]


def test_identifiers_lengths_and_tex_assignments_are_not_numbers():
    [sentence] = checked_sentences(doc("", "The metric step\\_val\\_acc\\_99 of GPT-4 is top-1 at \\hfill "
                                       "\\hyphenpenalty=10000 0.5\\linewidth 12pt (1439e3519430)."))
    assert mentions(sentence.text) == []


def test_checked_parts_and_tables():
    tex = doc("We reach 87.3\\% accuracy.", "It needed 150 steps.",
              other="Numbers in the introduction (like 777) are not checked. \\begin{table}\\caption{Settings of "
                    "the runs.}\\begin{tabular}{lr}\\toprule setting & value \\\\\\midrule learning rate & 0.003 "
                    "\\\\ batch size & 128 \\\\\\bottomrule\\end{tabular}\\end{table}",
              conclusion="The best program is 4.86x faster.")
    found = {(s.section, m.text): s for s in checked_sentences(tex) for m in mentions(s.text)}
    assert set(found) == {("abstract", "87.3%"), ("section 'Results'", "150"),
                          ("section 'Conclusion'", "4.86x"), ("table in section 'Introduction'", "0.003"),
                          ("table in section 'Introduction'", "128")}
    cell = found[("table in section 'Introduction'", "0.003")]
    assert cell.table and cell.column == "value" and "learning rate" in cell.context and "Settings" in cell.context


def test_sentences_keep_the_one_before():
    tex = doc("", "The tuning stage tried four changes. None beat its start at 150 steps, e.g. a larger batch. "
                  "Fig. 2 shows it.\n\nA new paragraph.")
    sentences = checked_sentences(tex)
    assert [s.text for s in sentences] == ["The tuning stage tried four changes.",
                                           "None beat its start at 150 steps, e.g. a larger batch.",
                                           "Fig. 2 shows it.", "A new paragraph."]
    assert sentences[1].previous is sentences[0] and sentences[3].previous is None


def test_the_four_numbers_issue_20_found_unread_are_read():
    """The writer model slipped these into a paper; only the percentage was flagged before."""
    [sentence] = checked_sentences(doc("", "It reached 97.2\\% accuracy with a loss of 0.0413, 4.86x faster than "
                                           "the baseline, in 12,500 steps."))
    assert [(m.text, m.kind) for m in mentions(sentence.text)] == [
        ("97.2%", "percent"), ("0.0413", "number"), ("4.86x", "ratio"), ("12,500", "number")]
