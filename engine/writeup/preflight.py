"""The TeX toolchain the writeup needs, checked at start-up before any model call is paid for."""
from __future__ import annotations

import shutil

from engine.errors import EngineError

# program -> the Debian/Ubuntu package that provides it
TOOLS = {
    "pdflatex": "texlive-latex-base",
    "bibtex": "texlive-binaries",
    "chktex": "chktex",
    "pdftotext": "poppler-utils",
}
# what a paper also needs from TeX Live beyond the base (geometry, hyperref, booktabs, natbib ...)
EXTRA_PACKAGES = ("texlive-latex-recommended", "texlive-latex-extra", "texlive-fonts-recommended")


def missing_tools() -> dict[str, str]:
    """program -> package, for every program of the toolchain not found on PATH."""
    return {prog: pkg for prog, pkg in TOOLS.items() if shutil.which(prog) is None}


def check_tools() -> None:
    """EngineError naming each missing program, its package and the command that installs them."""
    missing = missing_tools()
    if not missing:
        return
    listed = ", ".join(f"{prog} (package {pkg})" for prog, pkg in missing.items())
    packages = " ".join(dict.fromkeys([*missing.values(), *EXTRA_PACKAGES]))
    raise EngineError(f"the writeup needs programs that are not installed: {listed}. Install them with "
                      f"`sudo apt-get install -y {packages}` (or run scripts/setup.sh as root), or leave the "
                      f"writeup out with pipeline.phases=[ideas,experiments]")
