"""The review phase: the run's own paper through the Automated Reviewer (the same code as the ICLR benchmark),
plus a review of each figure and its caption when a vision model is configured. Writes review.json."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.experiments.plot_critique import vision_unavailable
from engine.llm.fence import fence, with_data_rule
from engine.llm.providers import Tool
from engine.llm.service import LLM, CallContext, LLMCallError
from engine.phase import PhaseContext, PhaseSkipped
from engine.prompts import render_from
from engine.review.config import ReviewConfig
from engine.review.integrity import with_findings
from engine.review.paper import read_paper
from engine.review.reviewer import ReviewError, perform_review
from engine.rundir import read_json, write_json

log = logging.getLogger(__name__)
PROMPTS = Path(__file__).resolve().parent / "prompts"

FIGURE_TOOL = Tool(
    name="figure_review",
    description="Judge one figure of a paper against its caption.",
    parameters={"type": "object", "properties": {
        "description": {"type": "string", "description": "what the figure actually shows, in 1-3 sentences"},
        "caption_matches": {"type": "boolean", "description": "true if the caption describes what is shown"},
        "issues": {"type": "array", "items": {"type": "string"},
                   "description": "concrete problems: unreadable labels, missing legend or units, misleading scale"},
        "informative": {"type": "boolean", "description": "true if the figure earns its place in the paper"},
    }, "required": ["description", "caption_matches", "issues", "informative"]})


def run_phase(ctx: PhaseContext) -> dict[str, Any]:
    if ctx.llm is None:
        raise PhaseSkipped("no model configured: a review needs one (model=<name>, or llm.roles.review=<name>)")
    if not ctx.llm.has("review"):
        raise PhaseSkipped("no model for the review role (llm.roles.review=<name>)")
    paper = ctx.done("writeup")
    if not paper or not paper.get("pdf") or not (ctx.run_dir / paper["pdf"]).is_file():
        raise PhaseSkipped("the writeup made no PDF to review")
    if paper.get("kind") != "paper":
        raise PhaseSkipped(f"the writeup made a {paper.get('kind', 'report')}, not a paper written by a model "
                           f"({paper.get('why_report') or 'see phases/writeup.json'}); there is nothing to review")
    cfg = ReviewConfig.of(ctx.cfg)
    out = ctx.run_dir / "review.json"
    review = read_json(out) or {}
    if "Overall" not in review and ctx.budget is not None and (why := ctx.budget.afford_phase("review", "a review")):
        raise PhaseSkipped(f"the budget cannot pay for a review: {why}")
    if "Overall" not in review:  # a resumed phase keeps a review already written
        found = read_paper(ctx.run_dir / paper["pdf"])
        log.info("reviewing %s with %s (ensemble %d, %d reflections, %d few-shot)", paper["pdf"],
                 ctx.llm.model_name("review"), cfg.num_reviews_ensemble, cfg.num_reflections, cfg.num_fs_examples)
        try:
            review = perform_review(found.text, ctx.llm.model_name("review"), None, num_reflections=cfg.num_reflections,
                                    num_fs_examples=cfg.num_fs_examples, num_reviews_ensemble=cfg.num_reviews_ensemble,
                                    temperature=cfg.temperature, llm=ctx.llm,
                                    max_concurrency=ctx.cfg.llm.max_concurrency)
        except (ReviewError, LLMCallError) as e:
            stop = ctx.budget.stopped_in("review") if ctx.budget is not None else None
            if stop:  # every member the budget let through failed or was refused
                raise PhaseSkipped(f"the budget stopped the review: {stop}") from None
            raise EngineError(f"the review of {paper['pdf']} failed: {e}") from None
        review = {"paper": paper["pdf"], "model": ctx.llm.model_name("review")} | with_findings(
            review, found, cfg.on_hidden_text)
        if review["integrity_flag"]:
            log.warning("review of %s: %s (see review.json)", paper["pdf"], review["integrity_flag"])
        write_json(out, review)
    if cfg.figure_review and "Figures" not in review:
        review["Figures"] = review_figures(ctx.llm, ctx.run_dir)
        write_json(out, review)
    log.info("review: Overall %s, Decision %s", review["Overall"], review["Decision"])
    return {"file": "review.json", "Overall": review["Overall"], "Decision": review["Decision"],
            "figures_reviewed": len(review.get("Figures") or [])}


def review_figures(llm: LLM, run_dir: Path) -> list[dict[str, Any]] | str:
    """Each paper figure with its caption, judged by the vision model; a string saying why when skipped."""
    why = vision_unavailable(llm)
    if why:
        log.info("figure review skipped: %s", why)
        return f"skipped: {why}"
    listing = read_json(run_dir / "paper" / "figures" / "figures.json") or {}
    figures = listing.get("figures", []) if isinstance(listing, dict) else listing
    results = []
    for i, fig in enumerate(figures):
        image = run_dir / fig["path"]
        if not image.is_file():
            continue
        try:
            verdict = llm.ask_json("vision", with_data_rule("You review the figures of machine-learning papers."), [
                {"role": "user", "content": render_from(PROMPTS, "figure", caption=fence(fig.get("caption", ""),
                                                                                          "caption")),
                 "images": [image.read_bytes()]}], FIGURE_TOOL, CallContext(node=f"figure-{i}", stage="review"))
        except LLMCallError as e:
            log.warning("figure review of %s failed: %s", fig["path"], e)
            continue
        results.append({"figure": fig["path"], **{k: verdict.get(k) for k in FIGURE_TOOL.parameters["required"]}})
    return results
