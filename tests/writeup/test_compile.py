"""pdflatex / bibtex runs: errors read back from the log with their line, warnings, chktex, and no stale PDF."""
import pytest

from engine.writeup.compile import compile_latex
from engine.writeup.preflight import missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason="TeX Live / poppler not installed")

GOOD = r"""\documentclass{article}
\begin{document}
Grokking was reported by \cite{power2022}. See Section~\ref{sec:a}.
\section{A}\label{sec:a}
Text.
\bibliographystyle{plain}
\bibliography{references}
\end{document}
"""
BIB = "@article{power2022,\n  title={Grokking},\n  author={Power, Alethea},\n  journal={arXiv},\n  year={2022}\n}\n"


def test_compiles_with_bibliography(tmp_path):
    (tmp_path / "paper.tex").write_text(GOOD)
    (tmp_path / "references.bib").write_text(BIB)
    result = compile_latex(tmp_path, 60)
    assert result.ok and result.pdf == tmp_path / "paper.pdf" and result.pdf.is_file()
    assert result.warnings == [] and (tmp_path / "paper.bbl").is_file()


def test_error_with_its_line_and_no_stale_pdf(tmp_path):
    (tmp_path / "paper.tex").write_text(GOOD)
    (tmp_path / "references.bib").write_text(BIB)
    assert compile_latex(tmp_path, 60).pdf is not None
    (tmp_path / "paper.tex").write_text(GOOD.replace("Text.", "Text \\undefinedmacro{x}."))
    result = compile_latex(tmp_path, 60)
    assert result.pdf is None and not (tmp_path / "paper.pdf").exists()
    assert "! Undefined control sequence." in result.errors[0] and "l.5" in result.errors[0]
    assert "undefinedmacro" in result.errors[0] and "Undefined control sequence" in result.feedback()
    assert "paper.log" not in result.errors[0] and result.log_tail


def test_undefined_citation_and_chktex(tmp_path):
    (tmp_path / "paper.tex").write_text(GOOD.replace("\\cite{power2022}", "\\cite{nobody1999} (unclosed")
                                        .replace("Text.", "Text with ``bad quotes\" here."))
    (tmp_path / "references.bib").write_text(BIB)
    result = compile_latex(tmp_path, 60)
    assert result.pdf is not None
    assert "undefined citation 'nobody1999'" in result.warnings
    assert any("nobody1999" in w and "bibtex" in w for w in result.warnings)
    assert any("line 3" in w for w in result.chktex)  # the unmatched parenthesis
    assert any("line 5" in w for w in result.chktex)  # the " instead of ''


@pytest.mark.parametrize("body", [r"\input{/etc/hostname}", r"\input{../secret.txt}",
                                  r"\immediate\write18{cat /etc/hostname > leaked.tex}\input{leaked}"])
def test_model_latex_cannot_read_files_outside_the_paper_folder(tmp_path, body):
    paper = tmp_path / "paper"
    paper.mkdir()
    (tmp_path / "secret.txt").write_text("SECRET-TOKEN-42")
    (paper / "paper.tex").write_text(r"\documentclass{article}\begin{document}" + body + r" x\end{document}")
    result = compile_latex(paper, 60, bibtex=False, chktex=False)
    assert not result.ok and any("not found" in e for e in result.errors)
    assert not (paper / "leaked.tex").exists()
    log = (paper / "paper.log").read_text(errors="replace")
    assert "SECRET-TOKEN-42" not in log and open("/etc/hostname").read().strip() + " x" not in log
