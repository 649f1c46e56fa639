"""pdflatex / bibtex / pdflatex / pdflatex in the paper folder, with what went wrong read back from the logs.

Nothing here raises when no PDF comes out: the result says why (errors with their `l.<n>` lines, the log's tail),
and the caller decides; the logs stay in the folder."""
from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# chktex warnings worth a model's attention (the rest are typographic nits): unbalanced braces and brackets,
# math mode left open, wrong quote characters, $$ display math
IMPORTANT_CHKTEX = {9, 10, 15, 16, 17, 18, 32, 33, 34, 45}
MAX_CHKTEX = 20
_UNDEFINED = re.compile(r"LaTeX Warning: (Reference|Citation) [`']([^']+)' on page \d+ undefined")
_MULTIPLY = re.compile(r"LaTeX Warning: Label [`']([^']+)' multiply defined")
_BIB_MISSING = re.compile(r"Warning--I didn't find a database entry for \"([^\"]+)\"")


@dataclass
class CompileResult:
    pdf: Path | None  # None: no PDF came out
    errors: list[str] = field(default_factory=list)  # "! message ... l.<n> context"
    warnings: list[str] = field(default_factory=list)  # undefined references / citations, bibtex trouble
    chktex: list[str] = field(default_factory=list)  # "line <n>: message"
    log_tail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.pdf is not None and not self.errors

    def feedback(self) -> str:
        """What the model is told about this compile."""
        parts = []
        if self.errors:
            parts.append("LaTeX errors (the compile stopped):\n" + "\n\n".join(self.errors))
        if self.warnings:
            parts.append("LaTeX warnings:\n" + "\n".join(f"- {w}" for w in self.warnings))
        if self.chktex:
            parts.append("chktex warnings:\n" + "\n".join(f"- {w}" for w in self.chktex))
        return "\n\n".join(parts)

    def to_dict(self) -> dict:
        return {"pdf": str(self.pdf) if self.pdf else None, "errors": self.errors, "warnings": self.warnings,
                "chktex": self.chktex, "seconds": round(self.seconds, 2)}


def compile_latex(folder: Path, timeout_s: float, tex_name: str = "paper.tex", bibtex: bool = True,
                  chktex: bool = True) -> CompileResult:
    """Compile `folder/tex_name` there; bibtex runs when `bibtex` and the document cites something."""
    start = time.monotonic()
    job = Path(tex_name).stem
    pdf = folder / f"{job}.pdf"
    pdf.unlink(missing_ok=True)  # never mistake an old PDF for this compile's
    tex = (folder / tex_name).read_text(errors="replace")
    result = CompileResult(pdf=None)
    cites = bibtex and r"\bibliography{" in tex and re.search(r"\\(no)?cite", tex) is not None
    steps = ["pdflatex", "bibtex", "pdflatex", "pdflatex"] if cites else ["pdflatex", "pdflatex"]
    for program in steps:
        argv = ["bibtex", job] if program == "bibtex" else [
            "pdflatex", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", tex_name]
        failed = _run(argv, folder, timeout_s)
        if program == "bibtex":
            blg = _read(folder / f"{job}.blg")
            result.warnings += [f"bibtex: no entry for citation key {k!r} in references.bib"
                                for k in _BIB_MISSING.findall(blg)]
            if failed:
                result.warnings.append(f"bibtex failed: {_bibtex_errors(blg) or failed}")
            continue
        if failed:
            log = _read(folder / f"{job}.log")
            result.errors = [_with_source(e, tex) for e in log_errors(log)] or [failed]
            result.log_tail = _tail(log)
            break
    else:
        log = _read(folder / f"{job}.log")
        result.log_tail = _tail(log)
        result.warnings += log_warnings(log)
        result.pdf = pdf if pdf.is_file() else None
        if result.pdf is None:
            result.errors.append("pdflatex finished but wrote no PDF (an empty document?)")
    if chktex:
        result.chktex = run_chktex(folder, tex_name, timeout_s)
    if result.pdf is None:
        pdf.unlink(missing_ok=True)
    result.warnings = list(dict.fromkeys(result.warnings))
    result.seconds = time.monotonic() - start
    return result


# LaTeX written by a model is untrusted: TeX may read and write only files of the paper's folder and TeX's own
# trees (kpathsea's "paranoid" mode: no absolute paths, no parent folders, no dot files), so that a prompt-injected
# \input{/home/me/.netrc} cannot copy a secret into the PDF, which goes on to the reviewer model
TEX_PARANOID = {"openin_any": "p", "openout_any": "p"}


def _run(argv: list[str], cwd: Path, timeout_s: float) -> str | None:
    """None when the program succeeded, else a one-line reason."""
    try:
        proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s,
                              env=os.environ | TEX_PARANOID)
    except subprocess.TimeoutExpired:
        return f"{argv[0]} timed out after {timeout_s:g} s (writeup.latex_timeout_s); the log is in {cwd}"
    except FileNotFoundError:
        return f"{argv[0]} is not installed (see the writeup's start-up check)"
    if proc.returncode != 0:
        out = (proc.stdout or b"").decode(errors="replace")
        return f"{argv[0]} exited with status {proc.returncode}: {_tail(out, 5)}"
    return None


def log_errors(log: str) -> list[str]:
    """Each error of a pdflatex log: the '!' line and what follows up to its 'l.<n>' line."""
    lines = log.splitlines()
    errors = []
    for i, line in enumerate(lines):
        if not line.startswith("!"):
            continue
        block = [line]
        for nxt in lines[i + 1:i + 12]:
            if nxt.startswith("!"):
                break
            block.append(nxt)
            if re.match(r"l\.\d+", nxt):
                break
        errors.append("\n".join(b for b in block if b.strip()))
    return list(dict.fromkeys(errors))[:5]


def _with_source(error: str, tex: str) -> str:
    """The error with the source line its 'l.<n>' names (pdflatex shows only the part up to the error)."""
    m = re.search(r"^l\.(\d+)", error, re.MULTILINE)
    lines = tex.splitlines()
    if m and 0 < int(m.group(1)) <= len(lines):
        return f"{error}\n(line {m.group(1)} of the LaTeX: {lines[int(m.group(1)) - 1].strip()[:200]})"
    return error


def log_warnings(log: str) -> list[str]:
    found = [f"undefined {kind.lower()} {key!r}" for kind, key in _UNDEFINED.findall(log)]
    found += [f"label {key!r} defined more than once" for key in _MULTIPLY.findall(log)]
    return list(dict.fromkeys(found))


def run_chktex(folder: Path, tex_name: str, timeout_s: float) -> list[str]:
    """The important chktex warnings as 'line <n>: message: <the line>'."""
    try:
        proc = subprocess.run(["chktex", "-q", "-v0", tex_name], cwd=folder, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=min(timeout_s or 60, 60))
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return []
    source = (folder / tex_name).read_text(errors="replace").splitlines()
    found = []
    for line in proc.stdout.decode(errors="replace").splitlines():
        parts = line.split(":", 4)
        if len(parts) < 5 or not parts[1].isdigit() or not parts[3].isdigit():
            continue
        lineno, number, message = int(parts[1]), int(parts[3]), parts[4].strip()
        if number in IMPORTANT_CHKTEX:
            text = source[lineno - 1].strip()[:160] if 0 < lineno <= len(source) else ""
            found.append(f"line {lineno}: {message} [{text}]")
    return found[:MAX_CHKTEX]


def _bibtex_errors(blg: str) -> str:
    errs = [line.strip() for line in blg.splitlines() if "error" in line.lower() or line.startswith("I ")]
    return "; ".join(errs[:4])


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])
