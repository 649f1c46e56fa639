"""The Automated Reviewer: an ensemble of NeurIPS-form reviews, each revised over reflection rounds, and an
area chair's meta-review. Numeric scores are the rounded mean of the valid ensemble reviews; text and
Decision come from the meta-review. A malformed ensemble member is dropped, not fatal."""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import shipped_llm
from engine.errors import EngineError
from engine.inputs.files import read_text
from engine.llm.fence import fence, with_data_rule
from engine.llm.models import MODEL_DIR, ModelSpec, load_registered
from engine.llm.parsing import ParseError, extract_json
from engine.llm.providers import AnthropicProvider, OpenAIProvider
from engine.llm.service import LLM, CallContext, LLMCallError
from engine.prompts import render_from

log = logging.getLogger(__name__)
PROMPTS = Path(__file__).resolve().parent / "prompts"
FEWSHOT_DIR = Path(__file__).resolve().parent / "fewshot"
SCORES = {"Originality": (1, 4), "Quality": (1, 4), "Clarity": (1, 4), "Significance": (1, 4),
          "Soundness": (1, 4), "Presentation": (1, 4), "Contribution": (1, 4), "Overall": (1, 10),
          "Confidence": (1, 5)}
TEXT_FIELDS = ("Summary", "Strengths", "Weaknesses", "Questions", "Limitations", "Ethical Concerns", "Decision")
FIELDS = ("Summary", "Strengths", "Weaknesses", "Originality", "Quality", "Clarity", "Significance", "Questions",
          "Limitations", "Ethical Concerns", "Soundness", "Presentation", "Contribution", "Overall", "Confidence",
          "Decision")
DONE = "I am done"


class ReviewError(EngineError):
    pass


def perform_review(paper_txt: str, model: str, client: Any, num_reflections: int = 5, num_fs_examples: int = 1,
                   num_reviews_ensemble: int = 5, temperature: float = 0.1, *, llm: LLM | None = None,
                   fewshot_dir: Path | None = None, max_concurrency: int = 4) -> dict[str, Any]:
    """Review a paper's text. `client` is an openai.OpenAI or anthropic.Anthropic client (as in the original);
    alternatively pass this project's `llm` (its `review` role is used, with the run's ledger). The first
    `num_fs_examples` examples of `fewshot_dir` (default engine/review/fewshot/; the v1 layout, see
    load_fewshot) are shown before the paper; with fewer there it reviews with those and warns.

    Returns the 16 NeurIPS-form fields, plus "Ensemble": the member reviews it was built from."""
    llm = llm or llm_for_client(model, client, max_concurrency)
    examples = fewshot_examples(fewshot_dir or FEWSHOT_DIR, num_fs_examples)
    prompt = render_from(PROMPTS, "review", examples=examples, paper=fence(paper_txt, "paper under review"))
    system = with_data_rule(render_from(PROMPTS, "system"))

    def member(i: int) -> dict[str, Any] | None:
        try:
            return _review_with_reflections(llm, system, prompt, num_reflections, temperature, i)
        except (LLMCallError, ParseError, ValueError) as e:
            log.warning("ensemble review %d dropped: %s", i + 1, e)
            return None

    workers = max(1, min(num_reviews_ensemble, llm.settings.max_concurrency))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="review") as pool:
        reviews = [r for r in pool.map(member, range(num_reviews_ensemble)) if r is not None]
    if not reviews:
        raise ReviewError(f"none of the {num_reviews_ensemble} ensemble reviews was usable (see the warnings)")
    if num_reviews_ensemble == 1:
        return reviews[0] | {"Ensemble": reviews}
    meta = _meta_review(llm, system, reviews, temperature)
    final = {k: meta[k] for k in TEXT_FIELDS} if meta else {k: reviews[0][k] for k in TEXT_FIELDS}
    for score in SCORES:  # numbers: the rounded mean of the ensemble
        final[score] = int(round(sum(r[score] for r in reviews) / len(reviews)))
    return {k: final[k] for k in FIELDS} | {"Ensemble": reviews}


def _review_with_reflections(llm: LLM, system: str, prompt: str, rounds: int, temperature: float,
                             member: int) -> dict[str, Any]:
    ctx = CallContext(node=f"review-{member}", step=member, stage="review")
    convo = [{"role": "user", "content": prompt}]
    text = llm.ask("review", system, convo, ctx, temperature=temperature).text
    review = _parse_or_reask(llm, system, convo, text, ctx, temperature)
    for r in range(2, rounds + 1):
        convo = convo + [{"role": "assistant", "content": text},
                         {"role": "user", "content": render_from(PROMPTS, "reflection", round=r, rounds=rounds)}]
        text = llm.ask("review", system, convo, ctx, temperature=temperature).text
        try:
            review = validate(extract_json(text))
        except (ParseError, ValueError) as e:
            if DONE not in text:
                log.info("reflection %d of member %d unusable (%s); keeping the previous review", r, member + 1, e)
        if DONE in text:
            break
    return review


def _parse_or_reask(llm: LLM, system: str, convo: list[dict], text: str, ctx: CallContext,
                    temperature: float) -> dict[str, Any]:
    try:
        return validate(extract_json(text))
    except (ParseError, ValueError) as e:
        again = convo + [{"role": "assistant", "content": text},
                         {"role": "user", "content": f"The review could not be used: {e}. Give the complete review "
                                                     "again as ONE ```json block with all the fields."}]
        return validate(extract_json(llm.ask("review", system, again, ctx, temperature=temperature).text))


def _meta_review(llm: LLM, system: str, reviews: list[dict[str, Any]], temperature: float) -> dict[str, Any] | None:
    body = "\n\n".join(f"Review {i + 1}:\n```json\n{json.dumps(r, indent=1)}\n```" for i, r in enumerate(reviews))
    ctx = CallContext(node="meta-review", step=-1, stage="review")
    try:
        text = llm.ask("review", system, [{"role": "user", "content": render_from(
            PROMPTS, "meta", n=len(reviews), reviews=body)}], ctx, temperature=temperature).text
        return validate(extract_json(text))
    except (LLMCallError, ParseError, ValueError) as e:
        log.warning("meta-review unusable (%s): text and decision from the first review", e)
        return None


def validate(review: Any) -> dict[str, Any]:
    """The review with its scores as integers in range; ValueError naming the first problem."""
    if not isinstance(review, dict):
        raise ValueError("the review is not a JSON object")
    missing = [f for f in FIELDS if f not in review]
    if missing:
        raise ValueError(f"the review lacks {missing}")
    out = dict(review)
    for name, (lo, hi) in SCORES.items():
        try:
            value = int(round(float(review[name])))
        except (TypeError, ValueError):
            raise ValueError(f"{name} is not a number: {review[name]!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"{name} = {value} is outside {lo}..{hi}")
        out[name] = value
    decision = str(review["Decision"]).strip().capitalize()
    if decision not in ("Accept", "Reject"):
        raise ValueError(f"Decision must be Accept or Reject, got {review['Decision']!r}")
    out["Decision"] = decision
    if isinstance(out["Ethical Concerns"], str):
        out["Ethical Concerns"] = out["Ethical Concerns"].strip().lower() in ("true", "yes")
    return out


@dataclass(frozen=True)
class FewshotExample:
    """One few-shot pair: a paper's text and a review of it in the NeurIPS-form fields."""
    name: str             # the file stem shared by <name>.json and <name>.txt / <name>.pdf
    paper: str
    review: dict[str, Any]
    paper_id: str | None  # "paper_id" in the JSON (scripts/build_fewshot.py writes it), when given
    title: str | None     # "title" in the JSON, else a guess from the paper's first lines


def load_fewshot(folder: Path, limit: int | None = None) -> list[FewshotExample]:
    """The examples in `folder`, in file-name order (the first `limit` of them; all when None). The v1 layout
    is read unchanged: <name>.json next to <name>.txt or <name>.pdf (the text file wins when both are there; a
    PDF is read with load_paper). The JSON is either the review itself or {"review": <the review, or it as a
    JSON string>, ...}. A JSON file without a paper beside it is not an example; a review that is not a
    complete NeurIPS-form review is an error."""
    from engine.review.paper import load_paper

    folder = Path(folder)
    if not folder.is_dir():
        raise ReviewError(f"{folder}: the few-shot folder does not exist")
    examples = []
    for js in sorted(folder.glob("*.json")):
        txt, pdf = js.with_suffix(".txt"), js.with_suffix(".pdf")
        if not (txt.is_file() or pdf.is_file()):
            continue
        if limit is not None and len(examples) >= limit:
            break
        paper = read_text(txt) if txt.is_file() else load_paper(pdf)
        try:
            raw = json.loads(read_text(js))
            review = raw.get("review", raw) if isinstance(raw, dict) else raw
            review = validate(json.loads(review) if isinstance(review, str) else review)
        except (json.JSONDecodeError, ValueError) as e:
            raise ReviewError(f"{js}: not a usable few-shot review ({e}); it must hold the NeurIPS-form fields "
                              f"{list(FIELDS)}, at the top level or under \"review\"") from None
        meta = raw if isinstance(raw, dict) and "review" in raw else {}
        examples.append(FewshotExample(js.stem, paper, {k: review[k] for k in FIELDS},
                                       meta.get("paper_id"), meta.get("title") or guess_title(paper)))
    return examples


def guess_title(text: str) -> str | None:
    """The first line of a paper's text that reads like a title (not a venue banner), or None."""
    banner = ("published as", "under review", "accepted at", "proceedings", "arxiv", "preprint", "workshop")
    for line in text.splitlines()[:15]:
        line = line.strip()
        if len(line.split()) >= 2 and not any(b in line.lower() for b in banner):
            return line[:200]
    return None


def fewshot_prompt(examples: list[FewshotExample]) -> str:
    return "".join(render_from(PROMPTS, "example", index=i + 1, paper=fence(ex.paper, "example paper"),
                               review=json.dumps(ex.review, indent=1)) + "\n\n" for i, ex in enumerate(examples))


def fewshot_examples(folder: Path, n: int) -> str:
    """The first `n` examples of `folder` (see load_fewshot) as prompt text; with fewer there, what there is,
    and a warning (the ICLR benchmark makes that an error instead)."""
    if n <= 0:
        return ""
    examples = load_fewshot(folder, n) if Path(folder).is_dir() else []
    if len(examples) < n:
        log.warning("%d few-shot example(s) asked for, %d found in %s (see engine/review/fewshot/README.md for "
                    "how to get some); reviewing with what there is", n, len(examples), folder)
    return fewshot_prompt(examples[:n])


def cli_model(name: str, base_url: str | None, api_key_env: str) -> ModelSpec:
    """The reviewer's model as a command line names it (python -m engine.review, benchmarks.iclr_review): any
    OpenAI-compatible server with `base_url`, else a conf/model entry or an API model name."""
    if base_url:
        return ModelSpec(name=name, provider="openai", base_url=base_url, api_key_env=api_key_env)
    return spec_for(name, "anthropic" if name.startswith("claude") else "openai")


def spec_for(model: str, provider: str) -> ModelSpec:
    """The registry entry whose API name is `model`, or a bare spec (unknown prices) for an unlisted one."""
    for file in sorted(MODEL_DIR.glob("*.yaml")):
        if file.stem in ("none", "replay"):
            continue
        try:
            spec = load_registered(file.stem)
        except EngineError:  # a preset for a server of your own (vllm, ollama, llamacpp): no name until given one
            continue
        if spec.name == model or file.stem == model:
            return spec
    return ModelSpec(name=model, provider=provider)


def llm_for_client(model: str, client: Any, max_concurrency: int = 4) -> LLM:
    """Our call path around a client the caller made (openai.OpenAI, anthropic.Anthropic / Bedrock / Vertex)."""
    import anthropic

    is_anthropic = isinstance(client, (anthropic.Anthropic, anthropic.AnthropicBedrock, anthropic.AnthropicVertex))
    spec = spec_for(model, "anthropic" if is_anthropic else "openai")
    provider = AnthropicProvider.wrap(spec, client) if is_anthropic else OpenAIProvider.wrap(spec, client)
    return LLM({"review": spec}, shipped_llm(max_concurrency=max_concurrency), dict(os.environ),
               providers={"review": provider})
