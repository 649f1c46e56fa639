"""The BibTeX entries go through real bibtex + pdflatex (natbib, plainnat) without errors."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.literature import Paper

PAPERS = [
    Paper("1", "semantic_scholar", "Grokking: Generalization Beyond Overfitting", ("Alethea Power", "Yuri Burda"),
          "arXiv.org", 2022, arxiv_id="2201.02177", doi="10.48550/arXiv.2201.02177",
          url="https://arxiv.org/abs/2201.02177"),
    Paper("2", "openalex", "50% of R&D: $x_1$ #1 {braces} ~tilde^ back\\slash", ("Łukasz Müller", "Smith, John"),
          "Journal of R&D_Science", 2020, doi="10.1000/a_b", url="https://x.org/a%20b"),
    Paper("3", "openalex", "A Conference Paper", ("Ann Lee",), "International Conference on Machine Learning", 2019),
    Paper("4", "arxiv", "No Venue Here", ("Tom and Jerry Lab",), "", None),
]


@pytest.mark.skipif(not (shutil.which("pdflatex") and shutil.which("bibtex")), reason="needs pdflatex and bibtex")
def test_entries_compile(tmp_path: Path):
    (tmp_path / "refs.bib").write_text("\n".join(p.bibtex() for p in PAPERS))
    cites = ",".join(p.bibtex_key for p in PAPERS)
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\\usepackage[T1]{fontenc}\\usepackage{natbib}"
                                      "\\usepackage{url}\\begin{document}\\citet{" + cites + "}"
                                      "\\bibliographystyle{plainnat}\\bibliography{refs}\\end{document}\n")

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert run("pdflatex", "-interaction=nonstopmode", "doc.tex").returncode == 0
    bib = run("bibtex", "doc")
    assert bib.returncode == 0 and "error" not in bib.stdout.lower(), bib.stdout
    for _ in range(2):
        tex = run("pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex")
        assert tex.returncode == 0, tex.stdout[-2000:]
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert not re.search(r"Citation .* undefined", log)
    assert all(f"{{{p.bibtex_key}}}" in (tmp_path / "doc.bbl").read_text() for p in PAPERS)
    assert (tmp_path / "doc.pdf").is_file()
