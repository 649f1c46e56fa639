"""Review a PDF:  python -m engine.review PAPER.pdf --model gpt-4o [--out review.json]

Prints a readable review and writes the JSON (the 16 NeurIPS-form fields, plus the ensemble's members, and what
the PDF's loader kept from the model: hidden_text, suspicious_text, integrity_flag)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from engine.config import shipped, shipped_llm
from engine.errors import EngineError
from engine.inputs.files import output_file
from engine.inputs.values import ArgumentParser, at_least, number_in
from engine.llm.ledger import Ledger, cost_summary
from engine.llm.models import ModelSpec
from engine.llm.service import LLM
from engine.review.config import HIDDEN_TEXT_POLICIES
from engine.review.integrity import with_findings
from engine.review.paper import read_paper
from engine.review.reviewer import FIELDS, cli_model, perform_review
from engine.rundir import write_atomic


def model_spec(args: argparse.Namespace) -> ModelSpec:
    if not args.model:
        raise EngineError("the reviewer needs a model: --model NAME (a conf/model entry or an API model name; "
                          "with --base-url URL for any OpenAI-compatible server), with its API key set")
    return cli_model(args.model, args.base_url, args.api_key_env)


def readable(review: dict) -> str:
    lines = [f"Decision: {review['Decision']}   Overall: {review['Overall']}/10   Confidence: {review['Confidence']}/5",
             "Originality {Originality}  Quality {Quality}  Clarity {Clarity}  Significance {Significance}  "
             "Soundness {Soundness}  Presentation {Presentation}  Contribution {Contribution}  (1-4)".format(**review),
             "", "Summary:", f"  {review['Summary']}"]
    for key in ("Strengths", "Weaknesses", "Questions", "Limitations"):
        items = review[key] if isinstance(review[key], list) else [review[key]]
        lines += ["", f"{key}:"] + [f"  - {item}" for item in items]
    lines += ["", f"Ethical concerns: {'yes' if review['Ethical Concerns'] else 'no'}"]
    if review.get("integrity_flag"):
        lines += ["", f"Integrity: {review['integrity_flag']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m engine.review", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pdf", type=Path)
    ap.add_argument("--model", help="conf/model name or API model name (e.g. gpt-4o, claude-3-5-sonnet)")
    ap.add_argument("--base-url", help="an OpenAI-compatible server (vLLM, Ollama, ...)")
    ap.add_argument("--api-key-env", default="OPENAI_API_KEY", help="the variable holding the key (--base-url)")
    ap.add_argument("--out", type=Path, default=Path("review.json"))
    ap.add_argument("--num-reflections", type=at_least(1), default=5)
    ap.add_argument("--num-fs-examples", type=at_least(0), default=1)
    ap.add_argument("--fewshot-dir", type=Path, default=None,
                    help="few-shot examples in the v1 layout (<name>.pdf or .txt next to <name>.json)")
    ap.add_argument("--num-reviews-ensemble", type=at_least(1), default=5)
    ap.add_argument("--temperature", type=number_in(0, 2), default=0.1)
    ap.add_argument("--pages", type=at_least(1), default=None, help="read only the first N pages")
    ap.add_argument("--on-hidden-text", choices=HIDDEN_TEXT_POLICIES, default=shipped("review")["on_hidden_text"],
                    help="a PDF with hidden text: reject it, or only flag it (default: conf/review/default.yaml)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a damaged PDF is named in one line, not in pypdf's warnings
    try:
        out = output_file(args.out, f"--out {args.out}")  # before anything is paid for
        spec = model_spec(args)
        paper = read_paper(args.pdf, num_pages=args.pages)
        with tempfile.TemporaryDirectory(prefix="review-") as tmp:
            ledger = Ledger(Path(tmp), "review")
            llm = LLM({"review": spec}, shipped_llm(), os.environ, ledger)
            llm.preflight()
            review = perform_review(paper.text, spec.name, None, args.num_reflections, args.num_fs_examples,
                                    args.num_reviews_ensemble, args.temperature, llm=llm,
                                    fewshot_dir=args.fewshot_dir)
            review = with_findings(review, paper, args.on_hidden_text)
            costs = cost_summary(ledger.rows())
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_atomic(out, json.dumps(review, indent=2) + "\n")
    print(readable({k: review[k] for k in (*FIELDS, "integrity_flag")}))
    cost = "unknown (no prices for this model)" if costs["cost_usd"] is None else f"${costs['cost_usd']:.4f}"
    print(f"\n{costs['llm_calls']} model calls, {costs['tokens']['input']} input / {costs['tokens']['output']} "
          f"output tokens, cost {cost}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
