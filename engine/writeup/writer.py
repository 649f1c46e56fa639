"""The paper, written by the `writeup` model: a first draft of every section in one structured answer, notes of
a vision model on each figure, one refinement pass per section, then the compile loop: compile, check, and send
the errors, chktex warnings and check findings back for a corrected LaTeX, at most `writeup.compile_rounds`
times. paper/writer.json and paper/paper.tex are saved after every step, so a resumed run continues."""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.experiments.plot_critique import vision_unavailable
from engine.llm.fence import fence, with_data_rule
from engine.llm.providers import Tool
from engine.llm.service import LLM, CallContext, LLMCallError
from engine.prompts import render_from
from engine.rundir import read_json, write_atomic, write_json
from engine.writeup.checks import CheckReport, bib_keys, run_checks, write_integrity
from engine.writeup.compile import CompileResult, compile_latex
from engine.writeup.config import WriteupConfig
from engine.writeup.facts import RunFacts
from engine.writeup.latex import PAPER_DISCLOSURE, SECTIONS, fill, with_disclosure
from engine.writeup.report import figure_path, safe_label

log = logging.getLogger(__name__)
PROMPTS = Path(__file__).resolve().parent / "prompts"
CTX = CallContext(stage="writeup")
_STR = {"type": "string"}
DRAFT_TOOL = Tool("write_paper", "The paper's first draft: title, abstract and each section's LaTeX body.", {
    "type": "object", "properties": {"title": _STR, "abstract": _STR, **{s.key: _STR for s in SECTIONS}},
    "required": ["title", "abstract", *(s.key for s in SECTIONS)]})
SECTION_TOOL = Tool("revise_section", "The revised LaTeX body of one section.", {
    "type": "object", "properties": {"latex": _STR, "changes": _STR}, "required": ["latex"]})
FIX_TOOL = Tool("fixed_paper", "The complete corrected LaTeX document.", {
    "type": "object", "properties": {"latex": _STR, "changes": _STR}, "required": ["latex"]})
FIGURE_TOOL = Tool("figure_notes", "What the figure shows and what is wrong with it.", {
    "type": "object", "properties": {"shows": _STR, "caption_ok": {"type": "boolean"}, "issues": _STR},
    "required": ["shows", "caption_ok", "issues"]})
TITLES = {"abstract": "Abstract", **{s.key: s.title for s in SECTIONS}}  # what the model writes, in order
_CITE_CMD = re.compile(r"(~|\s)?\\(cite[a-zA-Z]*|nocite|Cite[a-zA-Z]*)(\*?)((?:\s*\[[^\]]*\]){0,2})\s*\{([^}]*)\}")


@dataclass
class PaperResult:
    tex: Path
    compiled: CompileResult
    checks: CheckReport
    removed_citations: list[str] = field(default_factory=list)


@dataclass
class Inputs:
    """Everything the prompts show, as text."""
    idea: str
    facts: str
    figures: str
    figure_files: str
    citations: str
    cite_keys: set[str]


def write_paper(llm: LLM, cfg: WriteupConfig, facts: RunFacts, figures: Sequence[Any], bibtex: dict[str, str],
                titles: dict[str, str], paper_dir: Path, template: str) -> PaperResult:
    """The paper in paper_dir/paper.tex and paper.pdf. `bibtex`: key -> entry of every citable paper; `titles`:
    key -> title. Raises EngineError when no version of the LaTeX compiles."""
    write_atomic(paper_dir / "references.bib", "\n\n".join(bibtex.values()) + "\n")
    keys = bib_keys((paper_dir / "references.bib").read_text())
    inputs = Inputs(json.dumps(facts.idea, indent=1), facts.prompt_text(), _figure_list(figures),
                    ", ".join(figure_path(f) for f in figures) or "(none)",
                    fence("\n".join(f"- {k}: {titles.get(k, '')}" for k in keys), "citation list") if keys
                    else "(no citations available)", keys)
    state_path = paper_dir / "writer.json"
    state: dict[str, Any] = read_json(state_path) or {}
    system = with_data_rule(render_from(PROMPTS, "write_system"))

    def save(tex: str) -> None:
        write_json(state_path, state, indent=1)
        write_atomic(paper_dir / "paper.tex", tex)

    def assemble() -> str:
        return with_disclosure(fill(template, state["title"], state["sections"]["abstract"], state["sections"]),
                               PAPER_DISCLOSURE)

    if "sections" not in state:
        draft = llm.ask_json("writeup", system, [{"role": "user", "content": render_from(
            PROMPTS, "write_draft", sections=", ".join(s.title for s in SECTIONS), page_limit=cfg.page_limit,
            idea=inputs.idea, facts=inputs.facts, figures=inputs.figures, citations=inputs.citations)}],
            DRAFT_TOOL, CTX)
        state.update(title=_unfence(str(draft["title"])).strip(), refined=[], sections={
            k: _strip_section_head(str(draft.get(k) or ""), TITLES[k]) for k in TITLES})
        save(assemble())
    if "figure_notes" not in state:
        state["figure_notes"] = review_figures(llm, figures, paper_dir.parent, inputs.facts)
        save(assemble())
    for key, title in TITLES.items():
        if "tex" in state or key in state["refined"]:
            continue
        answer = llm.ask_json("writeup", system, [{"role": "user", "content": render_from(
            PROMPTS, "write_refine", paper=assemble(), section=title, page_limit=cfg.page_limit, facts=inputs.facts,
            figures=inputs.figures, figure_notes="\n".join(state["figure_notes"]) or "(no figure review)",
            citations=inputs.citations)}], SECTION_TOOL, CTX)
        state["sections"][key] = _strip_section_head(str(answer["latex"]), title)
        state["refined"].append(key)
        save(assemble())
    if "tex" not in state:
        state.update(tex=assemble(), compile_round=0)
        save(state["tex"])
    return _compile_loop(llm, cfg, facts, inputs, paper_dir, state, save)


def _compile_loop(llm: LLM, cfg: WriteupConfig, facts: RunFacts, inputs: Inputs, paper_dir: Path,
                  state: dict[str, Any], save) -> PaperResult:
    system = with_data_rule(render_from(PROMPTS, "write_system"))
    best: tuple[int, str] | None = None  # (problems, tex) of the best version that compiled
    removed_all: list[str] = state.setdefault("removed_citations", [])
    while True:
        tex, removed = drop_unknown_citations(with_disclosure(state["tex"], PAPER_DISCLOSURE), inputs.cite_keys)
        removed_all += [k for k in removed if k not in removed_all]
        state["tex"] = tex
        save(tex)
        compiled, checks = _build(paper_dir, tex, cfg, facts, inputs.cite_keys, removed_all)
        problems = _problems(compiled, checks)
        if compiled.pdf is not None and (best is None or problems <= best[0]):
            best = (problems, tex)
        done = compiled.pdf is not None and not compiled.errors and not compiled.chktex and checks.ok
        if done or state.get("finished") or state["compile_round"] >= cfg.compile_rounds:
            break
        problems_text = "\n\n".join(p for p in (compiled.feedback(), checks.feedback()) if p)
        answer = llm.ask_json("writeup", system, [{"role": "user", "content": render_from(
            PROMPTS, "fix_compile", problems=problems_text, figure_files=inputs.figure_files,
            cite_keys=", ".join(sorted(inputs.cite_keys)) or "(none)", page_limit=cfg.page_limit,
            facts=inputs.facts, latex=tex)}], FIX_TOOL, CTX)
        state["tex"] = _unfence(str(answer["latex"]))
        state["compile_round"] += 1
        save(state["tex"])
    if best is not None and best[1] != tex and (compiled.pdf is None or problems > best[0]):
        # a later correction made things worse than a version that compiled before: go back to that one
        state["tex"] = best[1]
        save(best[1])
        compiled, checks = _build(paper_dir, best[1], cfg, facts, inputs.cite_keys, removed_all)
    state["finished"] = True
    save(state["tex"])
    if compiled.pdf is None:
        raise EngineError(f"the paper did not compile after {state['compile_round']} correction round(s): "
                          f"{(compiled.errors or ['no PDF'])[0].splitlines()[0]}; the LaTeX and its log are in "
                          f"{paper_dir} (paper.tex, paper.log)")
    return PaperResult(paper_dir / "paper.tex", compiled, checks, removed_all)


def _problems(compiled: CompileResult, checks: CheckReport) -> int:
    """How much is wrong with a compiled version (a version without a PDF counts as worst)."""
    if compiled.pdf is None:
        return 1 << 30
    return len(compiled.chktex) + sum(len(c.findings) for c in checks.checks.values() if not c.ok)


def _build(paper_dir: Path, tex: str, cfg: WriteupConfig, facts: RunFacts, keys: set[str],
           removed: list[str]) -> tuple[CompileResult, CheckReport]:
    compiled = compile_latex(paper_dir, cfg.latex_timeout_s)
    checks = run_checks(paper_dir, tex, compiled.pdf, facts.ledger, cfg.page_limit, keys)
    write_integrity(paper_dir, checks, kind="paper", removed_citations=removed, compile=compiled.to_dict())
    return compiled, checks


def review_figures(llm: LLM, figures: Sequence[Any], run_dir: Path, facts_text: str) -> list[str]:
    """A vision model's notes on each figure (an empty list, and a log line, without one)."""
    why = vision_unavailable(llm)
    if why is not None:
        log.info("writeup: figures not reviewed: %s", why)
        return []
    notes = []
    for fig in figures:
        path = run_dir / str(fig.path)
        if path.suffix.lower() != ".png" or not path.is_file():
            continue
        try:
            answer = llm.ask_json("vision", with_data_rule("You review the figures of a machine-learning paper."), [{
                "role": "user", "content": render_from(PROMPTS, "write_figure_review", caption=fence(fig.caption,
                                                                                                     "caption"),
                                                       facts=facts_text[:3000]),
                "images": [path.read_bytes()]}], FIGURE_TOOL, CTX)
        except LLMCallError as e:
            log.warning("writeup: the review of figure %s failed: %s", fig.path, e)
            continue
        verdict = "caption fits" if answer.get("caption_ok") else "CAPTION DOES NOT FIT"
        notes.append(f"- {safe_label(fig.label)} ({figure_path(fig)}): {answer.get('shows', '')} [{verdict}] "
                     f"{answer.get('issues', '')}".strip())
    return notes


def drop_unknown_citations(tex: str, keys: set[str]) -> tuple[str, list[str]]:
    """The LaTeX with every citation key not in `keys` taken out (a \\cite left empty goes entirely)."""
    removed: list[str] = []

    def fix(m: re.Match) -> str:
        cited = [k.strip() for k in m.group(5).split(",") if k.strip()]
        kept = [k for k in cited if k in keys or k == "*"]
        removed.extend(k for k in cited if k not in kept)
        if not kept:
            return ""
        return f"{m.group(1) or ''}\\{m.group(2)}{m.group(3)}{m.group(4)}{{{','.join(kept)}}}"

    return _CITE_CMD.sub(fix, tex), list(dict.fromkeys(removed))


def _figure_list(figures: Sequence[Any]) -> str:
    return "\n".join(f"- {figure_path(f)}, {safe_label(f.label)}: {f.caption}" for f in figures) or "(no figures)"


def _strip_section_head(latex: str, title: str) -> str:
    """The body without the \\section{title} line (or abstract environment) the model may have repeated."""
    latex = _unfence(latex).strip()
    latex = re.sub(r"^\\section\*?\{" + re.escape(title) + r"\}\s*", "", latex, count=1, flags=re.IGNORECASE)
    m = re.fullmatch(r"\\begin\{abstract\}(.*)\\end\{abstract\}", latex, re.DOTALL)
    return m.group(1).strip() if m else latex


def _unfence(text: str) -> str:
    m = re.fullmatch(r"\s*```(?:latex|tex)?\s*\n(.*?)\n```\s*", text, re.DOTALL)
    return m.group(1) if m else text
