"""LaTeX plumbing shared by the paper and the results report: choosing the template, the AI disclosure, filling
the placeholders, escaping text that comes from the run, and the BibTeX file."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from engine.writeup.config import WriteupConfig

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
DISCLOSURE_MARK = "generated autonomously by an AI system"
PAPER_DISCLOSURE = (
    r"\begin{center}\fbox{\parbox{0.95\linewidth}{\small\hyphenpenalty=10000\textbf{AI-generated manuscript.} "
    r"This paper was "
    + DISCLOSURE_MARK + r" (the AI Scientist engine): the idea, the experiments, the figures and the text were "
    r"produced by the system without human involvement. It has not been reviewed or checked by humans.}}"
    r"\end{center}")
REPORT_DISCLOSURE = (
    r"\begin{center}\fbox{\parbox{0.95\linewidth}{\small\hyphenpenalty=10000\textbf{Automatically generated "
    r"results report.} The "
    r"experiments below were run and this document was " + DISCLOSURE_MARK + r" (the AI Scientist engine). "
    r"It contains no model-written prose: every sentence, table and number is generated from the run's records. "
    r"It has not been reviewed by humans.}}\end{center}")


@dataclass(frozen=True)
class Section:
    key: str  # the name the model and the state files use
    title: str
    placeholder: str  # the v1 template's marker


SECTIONS = (
    Section("introduction", "Introduction", "INTRO HERE"),
    Section("related_work", "Related Work", "RELATED WORK HERE"),
    Section("background", "Background", "BACKGROUND HERE"),
    Section("method", "Method", "METHOD HERE"),
    Section("experimental_setup", "Experimental Setup", "EXPERIMENTAL SETUP HERE"),
    Section("results", "Results", "RESULTS HERE"),
    Section("conclusion", "Conclusions and Future Work", "CONCLUSIONS HERE"),
)


def template_source(cfg: WriteupConfig, topic_path: Path | None) -> tuple[str, Path]:
    """(the LaTeX template, where it came from): the template folder's own latex/template.tex, else our format."""
    if topic_path is not None and (topic_path / "latex" / "template.tex").is_file():
        path = topic_path / "latex" / "template.tex"
    else:
        path = TEMPLATE_DIR / f"{cfg.format}.tex"
    return path.read_text(), path


def with_disclosure(tex: str, disclosure: str = PAPER_DISCLOSURE) -> str:
    """The disclosure on page one: in place of DISCLOSURE HERE, else after \\maketitle, else after
    \\begin{document}; unchanged when it is already there."""
    if DISCLOSURE_MARK in _squash(tex):
        return tex.replace("DISCLOSURE HERE", "")
    if "DISCLOSURE HERE" in tex:
        return tex.replace("DISCLOSURE HERE", disclosure, 1)
    for anchor in (r"\maketitle", r"\begin{document}"):
        if anchor in tex:
            return tex.replace(anchor, f"{anchor}\n{disclosure}\n", 1)
    return disclosure + "\n" + tex


def fill(tex: str, title: str, abstract: str, sections: dict[str, str], bibliography: bool = True) -> str:
    """The template with its placeholders replaced (all values are LaTeX already). A section the template has no
    placeholder for is appended with its own \\section before the bibliography."""
    tex = tex.replace("TITLE HERE", title).replace("ABSTRACT HERE", abstract)
    extra = []
    for s in SECTIONS:
        body = sections.get(s.key, "")
        if s.placeholder in tex:
            tex = tex.replace(s.placeholder, body)
        elif body.strip():
            extra.append(f"\\section{{{s.title}}}\n{body}\n")
    if extra:
        tex = insert_before_end(tex, "\n".join(extra), before_bibliography=True)
    if bibliography and r"\bibliography{" not in tex:
        style = "plainnat" if "natbib" in tex else "plain"
        tex = insert_before_end(tex, f"\\bibliographystyle{{{style}}}\n\\bibliography{{references}}\n")
    elif not bibliography:
        tex = re.sub(r"^\\bibliographystyle\{[^}]*\}\s*$|^\\bibliography\{[^}]*\}\s*$", "", tex, flags=re.MULTILINE)
    tex = ensure_packages(tex, ("graphicx", "booktabs"))
    return with_natbib(tex) if bibliography else tex


def with_natbib(tex: str) -> str:
    """natbib (numbers) loaded, so \\citep and \\citet work, with its plainnat style in place of plain; a template
    that loads a citation package of its own is left alone."""
    preamble = tex.split(r"\begin{document}", 1)[0]
    if re.search(r"\\usepackage(\[[^\]]*\])?\{(natbib|biblatex|cite)\}", preamble) or r"\begin{document}" not in tex:
        return tex
    tex = tex.replace(r"\begin{document}", "\\usepackage[numbers]{natbib}\n\\begin{document}", 1)
    return tex.replace(r"\bibliographystyle{plain}", r"\bibliographystyle{plainnat}")


def insert_before_end(tex: str, text: str, before_bibliography: bool = False) -> str:
    anchors = [r"\bibliographystyle", r"\bibliography{"] if before_bibliography else []
    for anchor in [*anchors, r"\end{document}"]:
        i = tex.find(anchor)
        if i >= 0:
            return tex[:i] + text + "\n" + tex[i:]
    return tex + "\n" + text


def ensure_packages(tex: str, packages: tuple[str, ...]) -> str:
    """\\usepackage lines for those of `packages` the preamble does not load yet."""
    missing = [p for p in packages if not re.search(r"\\usepackage(\[[^\]]*\])?\{[^}]*\b" + p + r"\b", tex)]
    if not missing or r"\begin{document}" not in tex:
        return tex
    lines = "".join(f"\\usepackage{{{p}}}\n" for p in missing)
    return tex.replace(r"\begin{document}", lines + r"\begin{document}", 1)


def body_of(tex: str) -> str:
    """What lies between \\begin{document} and \\end{document}."""
    start = tex.find(r"\begin{document}")
    end = tex.rfind(r"\end{document}")
    return tex[start + len(r"\begin{document}"):end if end >= 0 else None] if start >= 0 else tex


_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
            ">": r"\textgreater{}", "|": r"\textbar{}", "\"": "''"}
_UNICODE = {"±": r"$\pm$", "→": r"$\rightarrow$", "←": r"$\leftarrow$", "×": r"$\times$", "≤": r"$\leq$",
            "≥": r"$\geq$", "≈": r"$\approx$", "µ": r"$\mu$", "–": "--", "—": "---", "‘": "`", "’": "'", "“": "``",
            "”": "''", "…": r"\ldots{}", "°": r"$^\circ$", "·": r"$\cdot$"}


def escape(text: object) -> str:
    """Any text from the run as LaTeX that prints it literally (specials escaped, non-ASCII made safe)."""
    out = []
    for ch in str(text).replace("->", "→").replace("<-", "←"):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _UNICODE:
            out.append(_UNICODE[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            ascii_form = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(escape(ascii_form) if ascii_form else "?")
    return "".join(out)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)
