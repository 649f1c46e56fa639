"""The writeup phase: figures, then a paper written by the `writeup` model (citations from the literature search,
a compile-and-check loop), or, offline, a results report generated from the run's records alone.

Outputs (kept in phases/writeup.json): pdf, tex, kind ("paper" | "results report"), pages, main_pages, figures,
citations, untraced_numbers, checks_ok, why_report (why a report and not a paper; None for a paper)."""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError
from engine.writeup.config import WriteupConfig

if TYPE_CHECKING:  # engine.config imports engine.writeup.config: the phase's own imports wait until it runs
    from engine.phase import PhaseContext
    from engine.writeup.checks import CheckReport
    from engine.writeup.facts import RunFacts

log = logging.getLogger(__name__)


def run_phase(ctx: PhaseContext) -> dict[str, Any]:
    from engine.llm.service import LLMCallError
    from engine.phase import PhaseSkipped
    from engine.rundir import read_json
    from engine.writeup.facts import collect_facts
    from engine.writeup.figures import make_figures  # written separately; imported late so tests can replace it
    from engine.writeup.latex import template_source
    from engine.writeup.preflight import check_tools
    from engine.writeup.report import build_report

    run_dir = ctx.run_dir
    summary = read_json(run_dir / "summary.json")
    if not isinstance(summary, dict) or "primary_metric" not in summary:
        raise PhaseSkipped("no experiment results to write about (summary.json has none: the experiments phase "
                           "has not run)")
    facts = collect_facts(run_dir)
    if facts.best.get("value") is None:
        raise PhaseSkipped("the experiments found no working program: there are no results to write about")
    check_tools()
    paper_dir = run_dir / "paper"
    paper_dir.mkdir(parents=True, exist_ok=True)
    settings = WriteupConfig.of(ctx.cfg)
    figures = list(make_figures(ctx, paper_dir / "figures"))[:settings.max_figures]
    template, template_path = template_source(settings, ctx.cfg.topic.path)
    why_report = _why_no_paper(ctx)
    if why_report is None:
        try:
            return _paper(ctx, facts, figures, template, template_path, paper_dir)
        except LLMCallError as e:
            stop = ctx.budget.stopped_in("writeup") if ctx.budget is not None else None
            why_report = f"the budget stopped the paper ({stop})" if stop else f"the model calls failed ({e})"
            log.warning("writeup: %s; writing the results report instead", why_report)
            draft = paper_dir / "paper.tex"
            if draft.is_file():
                shutil.copy(draft, paper_dir / "paper_model_draft.tex")
    doc = build_report(paper_dir, template, facts, figures, settings.latex_timeout_s, why=why_report)
    if doc.compiled.pdf is None and template_path.parent.name == "latex":
        # the template folder's own LaTeX does not compile with the report in it: our own format instead
        log.warning("writeup: the report in %s did not compile (%s); using the %s format instead", template_path,
                    (doc.compiled.errors or ["no PDF"])[0], settings.format)
        template, template_path = template_source(settings, None)
        doc = build_report(paper_dir, template, facts, figures, settings.latex_timeout_s, why=why_report)
    if doc.compiled.pdf is None:
        raise EngineError(f"the results report did not compile: {(doc.compiled.errors or ['no PDF'])[0]}; the "
                          f"LaTeX and its log are in {paper_dir} (paper.tex, paper.log)")
    out = _outputs(run_dir, doc.tex, doc.checks, "results report", why_report, citations=0)
    ctx.tracker.log_event("writeup", out)
    return out


def _why_no_paper(ctx: PhaseContext) -> str | None:
    if ctx.llm is None:
        return "no model is configured (offline run), and the paper's prose needs one"
    if not ctx.llm.has("writeup"):
        return "no model is configured for the writeup role (llm.roles.writeup)"
    if ctx.budget is not None and (why := ctx.budget.afford_phase("writeup", "the paper")):
        return f"the budget cannot pay for the paper: {why}"
    return None


def _paper(ctx: PhaseContext, facts: RunFacts, figures: list, template: str, template_path: Path,
           paper_dir: Path) -> dict[str, Any]:
    from engine.writeup.checks import cite_keys
    from engine.writeup.citations import gather_citations
    from engine.writeup.writer import write_paper

    cfg = WriteupConfig.of(ctx.cfg)
    state = gather_citations(ctx.llm, ctx.literature(), _idea_text(facts), facts.prompt_text()[:4000], paper_dir,
                             cfg.num_cite_rounds)
    bibtex = {r["key"]: r["bibtex"] for r in state.records}
    titles = {r["key"]: r["title"] for r in state.records}
    if template_path.parent.name == "latex":  # a template folder's own LaTeX: its references.bib too
        for key, (entry, title) in bib_entries(template_path.parent / "references.bib").items():
            if key not in bibtex:
                bibtex[key], titles[key] = entry, title
    result = write_paper(ctx.llm, cfg, facts, figures, bibtex, titles, paper_dir, template)
    out = _outputs(ctx.run_dir, result.tex, result.checks, "paper", None,
                   citations=len(set(cite_keys(result.tex.read_text()))))
    out.update(removed_citations=result.removed_citations, citation_warning=state.warning)
    ctx.tracker.log_event("writeup", out)
    return out


def _outputs(run_dir: Path, tex: Path, checks: CheckReport, kind: str, why: str | None, citations: int
             ) -> dict[str, Any]:
    body = tex.read_text()
    return {"pdf": str(tex.with_suffix(".pdf").relative_to(run_dir)), "tex": str(tex.relative_to(run_dir)),
            "kind": kind, "pages": checks.pages.get("total"), "main_pages": checks.pages.get("main"),
            "figures": len(re.findall(r"\\includegraphics", body)), "citations": citations,
            "untraced_numbers": len(checks.untraced), "checks_ok": checks.ok,
            "integrity": str((tex.parent / "integrity.json").relative_to(run_dir)), "why_report": why}


def _idea_text(facts: RunFacts) -> str:
    return "\n".join(f"{k}: {'; '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in facts.idea.items()
                     if isinstance(v, (str, int, float, list)))


def bib_entries(path: Path) -> dict[str, tuple[str, str]]:
    """key -> (entry, title) of a BibTeX file ({} when there is none)."""
    if not path.is_file():
        return {}
    found = {}
    for entry in re.split(r"\n(?=@)", "\n" + path.read_text()):
        m = re.match(r"\s*@\w+\s*\{\s*([^,\s]+)\s*,", entry)
        if m:
            title = re.search(r"title\s*=\s*[{\"](.+?)[}\"]\s*,?\s*$", entry, re.MULTILINE | re.IGNORECASE)
            found[m.group(1)] = (entry.strip(), re.sub(r"[{}]", "", title.group(1)) if title else "")
    return found
