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


def test_a_complete_toolchain_passes(monkeypatch, tmp_path):
    """Every program on PATH (here as stand-ins, so the test does not depend on what this machine has): nothing is
    missing and the check lets the run go on."""
    for prog in preflight.TOOLS:
        stub = tmp_path / prog
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert preflight.missing_tools() == {}
    preflight.check_tools()  # raises EngineError when it finds a program missing


def test_the_check_agrees_with_what_is_installed_here():
    """On this machine as it is: the check refuses exactly when a program of the toolchain is not on PATH."""
    absent = [prog for prog in preflight.TOOLS if shutil.which(prog) is None]
    assert list(preflight.missing_tools()) == absent
    if absent:
        with pytest.raises(EngineError, match=absent[0]):
            preflight.check_tools()
    else:
        preflight.check_tools()
