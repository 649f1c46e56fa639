"""Build few-shot examples for the reviewer from public OpenReview data (needs network access).

    python scripts/build_fewshot.py --ids <openreview paper id> [...] [--out engine/review/fewshot]

For each paper it downloads the PDF and the official reviews (OpenReview API v1, as ICLR 2022 used), keeps the
review whose recommendation is closest to the reviewers' median, and writes <id>.txt (the paper's text, via
load_paper) and <id>.json (that review in this project's NeurIPS-form fields). Fields the ICLR form lacks
(Clarity, Presentation) are set from the nearest ICLR ones and say so in the file.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

API = "https://api.openreview.net/notes?forum={id}"
PDF = "https://openreview.net/pdf?id={id}"


def leading_int(text: Any) -> int | None:
    """'6: marginally above the acceptance threshold' -> 6."""
    m = re.match(r"\s*(\d+)", str(text or ""))
    return int(m.group(1)) if m else None


def ethics_flagged(flags: Any) -> bool:
    """ICLR's flag_for_ethics_review is ["NO."] or a list of concerns."""
    items = flags if isinstance(flags, list) else [flags] if flags else []
    return any(not str(f).strip().upper().startswith("NO") for f in items)


def to_review(content: dict[str, Any], decision: str | None) -> dict[str, Any]:
    """An ICLR 2022 official review (note content) in the NeurIPS-form fields of engine.review."""
    correctness = leading_int(content.get("correctness"))
    technical = leading_int(content.get("technical_novelty_and_significance"))
    empirical = leading_int(content.get("empirical_novelty_and_significance"))
    main = str(content.get("main_review", "")).strip()
    overall = leading_int(content.get("recommendation"))
    return {
        "Summary": str(content.get("summary_of_the_paper", "")).strip(),
        "Strengths": [main] if main else [],
        "Weaknesses": [str(content.get("summary_of_the_review", "")).strip()],
        "Originality": technical, "Quality": correctness, "Clarity": correctness, "Significance": empirical,
        "Questions": [], "Limitations": [],
        "Ethical Concerns": ethics_flagged(content.get("flag_for_ethics_review")),
        "Soundness": correctness, "Presentation": correctness, "Contribution": technical,
        "Overall": overall, "Confidence": leading_int(content.get("confidence")),
        "Decision": "Accept" if decision and decision.startswith("Accept") else "Reject",
        "Note": "converted from the ICLR 2022 form: Strengths holds the main review; Clarity and Presentation "
                "repeat Correctness, which the ICLR form has instead",
    }


def pick_review(notes: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    reviews = [n["content"] for n in notes if str(n.get("invitation", "")).endswith("Official_Review")]
    decisions = [n["content"].get("decision") for n in notes if str(n.get("invitation", "")).endswith("Decision")]
    if not reviews:
        raise ValueError("no official reviews in the forum")
    median = statistics.median(leading_int(r.get("recommendation")) or 0 for r in reviews)
    best = min(reviews, key=lambda r: abs((leading_int(r.get("recommendation")) or 0) - median))
    return best, decisions[0] if decisions else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", nargs="+", required=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "engine" / "review" / "fewshot")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from engine.review.paper import load_paper

    args.out.mkdir(parents=True, exist_ok=True)
    for pid in args.ids:
        try:
            with urllib.request.urlopen(API.format(id=pid), timeout=30) as resp:
                notes = json.load(resp)["notes"]
            with urllib.request.urlopen(PDF.format(id=pid), timeout=60) as resp:
                pdf = resp.read()
        except OSError as e:
            print(f"{pid}: cannot reach OpenReview ({e}); this script needs network access", file=sys.stderr)
            return 2
        review, decision = pick_review(notes)
        with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
            f.write(pdf)
            f.flush()
            text = load_paper(f.name)
        (args.out / f"{pid}.txt").write_text(text)
        (args.out / f"{pid}.json").write_text(json.dumps(to_review(review, decision), indent=2) + "\n")
        print(f"{pid}: wrote {pid}.txt and {pid}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
