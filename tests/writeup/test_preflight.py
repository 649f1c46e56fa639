"""The TeX toolchain check names each missing program, its package and the command that installs it."""
import shutil

import pytest

from engine.errors import EngineError
from engine.writeup import preflight


def test_missing_pdflatex_is_named_with_its_package(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(preflight.shutil, "which", lambda prog: None if prog == "pdflatex" else real(prog))
    with pytest.raises(EngineError) as err:
        preflight.check_tools()
    msg = str(err.value)
    assert "pdflatex (package texlive-latex-base)" in msg and "apt-get install" in msg
    assert "chktex (package" not in msg  # only what is missing


def test_empty_path_names_every_program(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineError) as err:
        preflight.check_tools()
    msg = str(err.value)
    for prog, pkg in (("pdflatex", "texlive-latex-base"), ("bibtex", "texlive-binaries"), ("chktex", "chktex"),
                      ("pdftotext", "poppler-utils")):
        assert f"{prog} (package {pkg})" in msg


def test_installed_toolchain_passes():
    if preflight.missing_tools():
        pytest.skip("TeX Live / poppler not installed here")
    preflight.check_tools()
