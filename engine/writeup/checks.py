"""The checks run after every compile: figures, references, citations, duplicates, the page limit, the AI
disclosure, and number integrity (every number in the abstract, the results/experiments/ablation/conclusion
sections and the tables traced back to the run's facts with its meaning, relative claims recomputed with their
sign: tracing.py). Findings go back to the model; `paper/integrity.json` keeps the last report: every traced
number with the fact (file and key) it traced to, every untraced or wrongly signed one with its sentence."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from engine.rundir import write_json
from engine.writeup.latex import DISCLOSURE_MARK, body_of
from engine.writeup.ledger import Ledger
from engine.writeup.tracing import trace_document

_CMD_ARG = r"\*?\s*(?:\[[^\]]*\]\s*){0,2}\{([^}]*)\}"
_INCLUDE = re.compile(r"\\includegraphics" + _CMD_ARG)
_LABEL = re.compile(r"\\label\{([^}]*)\}")
_REF = re.compile(r"\\(?:ref|autoref|cref|Cref|eqref|pageref|nameref|vref)\*?\{([^}]*)\}")
_CITE = re.compile(r"\\(?:cite|citep|citet|citealp|citealt|citeauthor|citeyear|citeyearpar|nocite|Cite|Citep|Citet)"
                   + _CMD_ARG)
_SECTION = re.compile(r"\\section\*?\s*\{([^}]*)\}")


@dataclass
class Check:
    ok: bool
    findings: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    checks: dict[str, Check]
    traced: list[dict]
    untraced: list[dict]  # untraced numbers and wrongly signed claims ("problem" says which)
    pages: dict[str, int | None]
    ignored: list[dict] = field(default_factory=list)  # labels and years: not quantities

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())

    def feedback(self) -> str:
        """The failed checks, for the model."""
        return "\n".join(f"- {name}: {f}" for name, c in self.checks.items() if not c.ok for f in c.findings)

    def to_dict(self) -> dict:
        return {"traced": self.traced, "untraced": self.untraced, "ignored": self.ignored, "pages": self.pages,
                "checks": {k: {"ok": c.ok, "findings": c.findings} for k, c in self.checks.items()}}


def run_checks(folder: Path, tex: str, pdf: Path | None, ledger: Ledger, page_limit: int | None,
               bib_keys: set[str]) -> CheckReport:
    """Every check on the LaTeX in `tex` (compiled, or not, into `pdf`) in the paper folder `folder`."""
    body = strip_comments(body_of(tex))
    checks = {"figures": _figures(folder, tex, body), "references": _references(body),
              "citations": _citations(body, bib_keys), "duplicates": _duplicates(body)}
    text = pdf_text(pdf) if pdf is not None else None
    pages: dict[str, int | None] = {"main": None, "total": None, "limit": page_limit}
    if text is not None:
        pages["total"], pages["main"] = main_pages(text)
        if page_limit is not None:
            checks["page_limit"] = Check(pages["main"] <= page_limit, [] if pages["main"] <= page_limit else [
                f"the main text runs to {pages['main']} pages; the limit is {page_limit} pages before the "
                f"references: shorten it by about {pages['main'] - page_limit} page(s)"])
        found = DISCLOSURE_MARK in re.sub(r"\s+", " ", re.sub(r"(\w)-\n(\w)", r"\1\2", text.split("\f")[0]))
        checks["disclosure"] = Check(found, [] if found else [
            "the disclosure that an AI system generated the paper is not on page one: keep the box after \\maketitle"])
    traced, untraced, ignored = trace_numbers(tex, ledger)
    checks["integrity"] = Check(not untraced, [_finding(u) for u in untraced])
    return CheckReport(checks, traced, untraced, pages, ignored)


def trace_numbers(tex: str, ledger: Ledger) -> tuple[list[dict], list[dict], list[dict]]:
    """(traced, untraced or wrongly signed, ignored) numbers of the checked parts of `tex`."""
    traced, untraced, ignored = [], [], []
    for o in trace_document(tex, ledger):
        entry = o.to_dict()
        if o.status == "traced":
            traced.append(entry)
        elif o.status == "ignored":
            ignored.append(entry)
        else:
            untraced.append(entry | {"problem": "wrong sign" if o.status == "wrong_sign" else "untraced"})
    return traced, untraced, ignored


def _finding(u: dict) -> str:
    if u["problem"] == "wrong sign":
        return (f"the claim '{u['number']}' in {u['section']} has the wrong direction ({u['read_as']}): "
                f"\"{u['sentence']}\" - turn the direction word around or correct the comparison")
    return (f"the number {u['number']} in {u['section']} is not in the run's results for what its sentence states "
            f"({u['read_as']}): \"{u['sentence']}\" - use the exact value from the facts for the quantity the "
            "sentence names, or remove it")


def write_integrity(folder: Path, report: CheckReport, **extra: object) -> Path:
    path = folder / "integrity.json"
    write_json(path, report.to_dict() | extra)
    return path


def strip_comments(tex: str) -> str:
    return re.sub(r"(?<!\\)%.*", "", tex)


def bib_keys(bib: str) -> set[str]:
    return set(re.findall(r"@\w+\s*\{\s*([^,\s]+)\s*,", bib))


def cite_keys(tex: str) -> list[str]:
    return [k.strip() for group in _CITE.findall(strip_comments(tex)) for k in group.split(",")
            if k.strip() and k.strip() != "*"]


def _figures(folder: Path, tex: str, body: str) -> Check:
    roots = [folder] + [folder / p for p in re.findall(r"\{([^{}]+)\}", "".join(
        re.findall(r"\\graphicspath\{((?:\{[^{}]*\})+)\}", tex)))]
    missing = []
    for name in _INCLUDE.findall(body):
        name = name.strip()
        candidates = [r / name for r in roots]
        if not Path(name).suffix:
            candidates = [r / f"{name}{ext}" for r in roots for ext in (".png", ".pdf", ".jpg", ".jpeg")]
        if not any(c.is_file() for c in candidates):
            missing.append(f"\\includegraphics{{{name}}}: no such file (figures are in figures/)")
    return Check(not missing, missing)


def _references(body: str) -> Check:
    labels = set(_LABEL.findall(body))
    refs = [k.strip() for group in _REF.findall(body) for k in group.split(",") if k.strip()]
    missing = [f"\\ref{{{k}}}: no \\label{{{k}}} is defined" for k in dict.fromkeys(refs) if k not in labels]
    return Check(not missing, missing)


def _citations(body: str, keys: set[str]) -> Check:
    unknown = [f"\\cite{{{k}}}: not in references.bib" for k in dict.fromkeys(cite_keys(body)) if k not in keys]
    return Check(not unknown, unknown)


def _duplicates(body: str) -> Check:
    found = []
    figures = [f.strip().removeprefix("./") for f in _INCLUDE.findall(body)]
    for f in dict.fromkeys(figures):
        if figures.count(f) > 1:
            found.append(f"the figure file {f} is included {figures.count(f)} times: include each figure once")
    titles = [re.sub(r"\s+", " ", t).strip().lower() for t in _SECTION.findall(body)]
    for t in dict.fromkeys(titles):
        if titles.count(t) > 1:
            found.append(f"the section title '{t}' appears {titles.count(t)} times: merge those sections")
    return Check(not found, found)


def pdf_text(pdf: Path) -> str | None:
    try:
        proc = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, timeout=60)
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return None
    return proc.stdout.decode(errors="replace") if proc.returncode == 0 else None


def main_pages(text: str) -> tuple[int, int]:
    """(total pages, pages of main text): the main text ends where the References heading is."""
    pages = text.split("\f")
    if pages and not pages[-1].strip():
        pages = pages[:-1]
    for i, page in enumerate(pages):
        lines = [ln.strip() for ln in page.splitlines()]
        for j, line in enumerate(lines):
            if line in ("References", "Bibliography"):
                before = [ln for ln in lines[:j] if ln and not ln.isdigit()]
                return len(pages), i + 1 if before else i
    return len(pages), len(pages)
