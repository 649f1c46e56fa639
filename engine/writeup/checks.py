"""The checks run after every compile: figures, references, citations, duplicates, the page limit, the AI
disclosure, and number integrity (every number in the abstract and the results/experiments sections traced
back to the run's facts). Findings go back to the model; `paper/integrity.json` keeps the last report."""
from __future__ import annotations

import bisect
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from engine.rundir import write_json
from engine.writeup.latex import DISCLOSURE_MARK, body_of

_CMD_ARG = r"\*?\s*(?:\[[^\]]*\]\s*){0,2}\{([^}]*)\}"
_INCLUDE = re.compile(r"\\includegraphics" + _CMD_ARG)
_LABEL = re.compile(r"\\label\{([^}]*)\}")
_REF = re.compile(r"\\(?:ref|autoref|cref|Cref|eqref|pageref|nameref|vref)\*?\{([^}]*)\}")
_CITE = re.compile(r"\\(?:cite|citep|citet|citealp|citealt|citeauthor|citeyear|citeyearpar|nocite|Cite|Citep|Citet)"
                   + _CMD_ARG)
_SECTION = re.compile(r"\\section\*?\s*\{([^}]*)\}")
_CHECKED_SECTION = re.compile(r"result|experiment|evaluation|ablation", re.IGNORECASE)
_NUM = re.compile(r"(?<![\w.\\])(?:\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:e[-+]?\d+)?)(?![\w])")
_REFERS = re.compile(r"(?:Figure|Fig\.|Figs\.|Table|Tab\.|Section|Sec\.|Eq\.|Equation|Appendix|Algorithm|Line|Stage"
                     r"|Chapter)[~\s]*(?:\\ )?$", re.IGNORECASE)
_STRIP = [  # (pattern, replacement) applied in order before numbers are read
    (re.compile(r"(?<!\\)%.*"), ""),
    (re.compile(r"\\(?:ref|autoref|cref|Cref|eqref|pageref|nameref|vref|label|url|includegraphics|cite\w*|nocite|"
                r"Cite\w*|input|include|bibliography\w*|graphicspath|vspace|hspace|setlength|addtolength|"
                r"fontsize|rule|cmidrule|cline|multicolumn|multirow|resizebox|scalebox|renewcommand|newcommand|"
                r"href|small|footnotesize)\*?\s*(?:\([^)]*\))?(?:\[[^\]]*\]\s*)*(?:\{[^{}]*\}\s*){0,2}"), " "),
    (re.compile(r"\\begin\{(?:tabular\*?|tabularx|array|longtable)\}(?:\[[^\]]*\])?(?:\{[^{}]*\})+"), " "),
    (re.compile(r"\\(?:begin|end)\{[^}]*\}(?:\[[^\]]*\])?"), " "),
    (re.compile(r"\\\\\s*\[[^\]]*\]"), " "),
    (re.compile(r"\d*\.?\d+(?:pt|em|ex|cm|mm|bp|pc|sp|mu|in)\b"), " "),
    (re.compile(r"\d*\.?\d+\s*\\(?:line|text|column|paper)(?:width|height)|\\hsize|\\baselineskip"), " "),
    (re.compile(r"(\d+(?:\.\d+)?)\s*(?:\\times|\\cdot)\s*10\^\{?\s*(-?\d+)\s*\}?"), r" \1e\2 "),
    (re.compile(r"(?<![\d.])10\^\{?\s*(-?\d+)\s*\}?"), r" 1e\1 "),
    (re.compile(r"[A-Za-z]+(?:\\_[A-Za-z0-9]+)+"), " "),  # identifiers: step\_val\_acc\_99
    (re.compile(r"[_^](?:\{[^{}]*\}|\w)"), " "),  # sub- and superscripts in math
    (re.compile(r"\\[A-Za-z]+\*?"), " "),  # remaining command names (their arguments stay)
]


@dataclass
class Check:
    ok: bool
    findings: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    checks: dict[str, Check]
    traced: list[dict]
    untraced: list[dict]
    pages: dict[str, int | None]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())

    def feedback(self) -> str:
        """The failed checks, for the model."""
        return "\n".join(f"- {name}: {f}" for name, c in self.checks.items() if not c.ok for f in c.findings)

    def to_dict(self) -> dict:
        return {"traced": self.traced, "untraced": self.untraced, "pages": self.pages,
                "checks": {k: {"ok": c.ok, "findings": c.findings} for k, c in self.checks.items()}}


def run_checks(folder: Path, tex: str, pdf: Path | None, numbers: dict[float, str], page_limit: int | None,
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
    traced, untraced = trace_numbers(tex, numbers)
    checks["integrity"] = Check(not untraced, [
        f"the number {u['number']} in {u['section']} ('{u['context']}') is not in the run's results: use the "
        f"exact value from the facts or remove it" for u in untraced])
    return CheckReport(checks, traced, untraced, pages)


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


def checked_parts(tex: str) -> list[tuple[str, str]]:
    """(name, text) of the abstract and of every results/experiments section."""
    body = strip_comments(body_of(tex))
    parts = [("abstract", m) for m in re.findall(r"\\begin\{abstract\}(.*?)\\end\{abstract\}", body, re.DOTALL)]
    end = re.search(r"\\bibliography\{|\\appendix|\\begin\{thebibliography\}", body)
    body = body[:end.start()] if end else body
    heads = list(_SECTION.finditer(body))
    for i, m in enumerate(heads):
        if _CHECKED_SECTION.search(m.group(1)):
            stop = heads[i + 1].start() if i + 1 < len(heads) else len(body)
            parts.append((f"section '{m.group(1).strip()}'", body[m.end():stop]))
    return parts


def trace_numbers(tex: str, numbers: dict[float, str]) -> tuple[list[dict], list[dict]]:
    """(traced, untraced) numbers of the abstract and the results/experiments sections."""
    traced, untraced = [], []
    index = FactIndex(numbers)
    for section, text in checked_parts(tex):
        clean = text
        for pattern, repl in _STRIP:
            clean = pattern.sub(repl, clean)
        clean = re.sub(r"[{}$~]", " ", clean)
        clean = re.sub(r"\s+", " ", clean)
        for m in _NUM.finditer(clean):
            token = m.group()
            if _ignored(token, clean[:m.start()]):
                continue
            context = clean[max(0, m.start() - 50):m.end() + 50].strip()
            source = trace(token, index)
            if source is None:
                untraced.append({"number": token, "context": context, "section": section})
            else:
                traced.append({"number": token, "section": section, "value": source[0], "source": source[1]})
    return traced, untraced


def _ignored(token: str, before: str) -> bool:
    if re.fullmatch(r"(19|20)\d\d", token):  # a year
        return True
    exponent = token.lower().partition("e")[2]
    if exponent and abs(int(exponent)) > 300:  # no number a run writes: a node id such as 1439e3519430
        return True
    return _REFERS.search(before[-20:]) is not None  # Figure 2, Table 1, Section 3, Stage 2


class FactIndex:
    """The run's numbers sorted, for range look-ups (a long run has thousands)."""

    def __init__(self, numbers: dict[float, str]):
        self.items = sorted(numbers.items())
        self.keys = [k for k, _ in self.items]

    def within(self, lo: float, hi: float) -> list[tuple[float, str]]:
        return self.items[bisect.bisect_left(self.keys, lo):bisect.bisect_right(self.keys, hi)]


def trace(token: str, numbers: dict[float, str] | FactIndex) -> tuple[float, str] | None:
    """(the fact, where it is from) that `token` states at its written precision, or None. A fact also matches
    as a percentage (93.1 for 0.931); an integer matches a whole fact exactly, or a fractional fact of 10 or more
    rounded (1442 for 1441.7)."""
    index = numbers if isinstance(numbers, FactIndex) else FactIndex(numbers)
    text = token.replace("{,}", "").replace(",", "")
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    value = float(text)
    scale = 10 ** int(exponent) if exponent else 1
    tol = 0.5 * 10 ** -decimals * scale * (1 + 1e-9)
    whole = decimals == 0 and not exponent
    for factor, how in ((1, ""), (100, " (as a percentage)")):
        for fact, where in index.within((value - tol) / factor, (value + tol) / factor):
            cand = round(fact * factor, 9)  # 0.07 * 100 is 7.000000000000001
            if not whole or cand == value or (not float(cand).is_integer() and cand >= 10):
                return fact, where + how
    return None
