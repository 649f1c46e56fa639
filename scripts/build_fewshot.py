"""Build few-shot examples for the reviewer from ICLR 2022 papers on OpenReview (needs network access).

    python scripts/build_fewshot.py --ids <openreview paper id> [...] [--out DIR]

For each paper it fetches the PDF and the forum's notes (OpenReview API v1, which ICLR 2022 used; the same
polite client as the benchmark's downloads), picks one official review and writes, in the v1 layout that
`--fewshot-dir` and engine/review read: <id>.pdf, <id>.txt (the text, via load_paper) and <id>.json
({"paper_id", "title", "iclr": the review's ICLR fields, "imputed", "review": the NeurIPS-form review}).
Papers of the ICLR benchmark (benchmarks/data/iclr2022_ratings.tsv) are refused: an example must not be one of
the papers it helps to review.

The review picked: the one whose recommendation is closest to the median of the paper's reviews; ties go to
one that agrees with the decision, then to one whose main review has Strengths/Weaknesses headings.

ICLR 2022 form -> the NeurIPS-form fields the reviewer writes:

  Summary            <- summary_of_the_paper
  Strengths          <- main_review, the part under a Strengths / Pros / Strong points heading
  Weaknesses         <- main_review, the parts under Weaknesses / Cons / Weak points / Concerns / Minor comments
                        headings; the whole main review when it has none (ICLR 2022 asks for strengths and
                        weaknesses in one free-text field, so they cannot be told apart then)
  Questions          <- main_review, the part under a Questions heading; else empty (no ICLR field)
  Limitations        no source (no ICLR 2022 field): empty
  Ethical Concerns   <- flag_for_ethics_review: true unless it is "NO."
  Soundness (1-4)    <- correctness (1-4): both ask whether the claims are supported and correct
  Quality (1-4)      <- correctness (1-4): NeurIPS's Quality asks whether the work is technically sound
  Originality (1-4)  <- technical_novelty_and_significance (1-4) (ICLR rates novelty and significance together)
  Significance (1-4) <- the rounded mean of technical_ and empirical_novelty_and_significance (1-4; an empirical
                        "Not applicable" is left out)
  Contribution (1-4) <- the same mean (the overall contribution)
  Clarity (1-4)      no source (ICLR 2022 has no clarity or presentation score): imputed as the rounded mean of
  Presentation (1-4)    the review's ICLR 1-4 scores, so they carry no information of their own; the JSON lists
                        them under "imputed"
  Overall (1-10)     <- recommendation, by the meaning of its label, not its number: 1 strong reject -> 2 strong
                        reject, 3 reject -> 3 reject, 5 marginally below the acceptance threshold -> 4 borderline
                        reject, 6 marginally above -> 5 borderline accept, 8 accept -> 7 accept, 10 strong accept
                        -> 8 strong accept
  Confidence (1-5)   <- confidence (1-5), the same scale
  Decision           <- the paper's decision (Accept for any "Accept (...)"); from the recommendation (>= 6)
                        when the forum has no decision
  (not used)         summary_of_the_review has no NeurIPS field: kept under "iclr" in the JSON, not shown to the
                        model; text before the first heading of main_review (usually a restated summary) is left out
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OVERALL = {1: 2, 3: 3, 5: 4, 6: 5, 8: 7, 10: 8}  # ICLR 2022 recommendation -> NeurIPS Overall, by label
HEADINGS = {"strengths": "Strengths", "strength": "Strengths", "pros": "Strengths", "strong points": "Strengths",
            "weaknesses": "Weaknesses", "weakness": "Weaknesses", "cons": "Weaknesses", "weak points": "Weaknesses",
            "concerns": "Weaknesses", "minor comments": "Weaknesses", "minor issues": "Weaknesses",
            "questions": "Questions", "questions for the authors": "Questions"}
_HEADING = re.compile(r"^[\s#*_>\d.)-]*(?P<name>[a-z ]+?)[\s*_]*(:|$)\s*[*_]*\s*(?P<rest>.*)$", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\(?\d+[.)]|\(?[a-z][.)])\s+")


def leading_int(text: Any) -> int | None:
    """'6: marginally above the acceptance threshold' -> 6; 'Not applicable' -> None."""
    m = re.match(r"\s*(\d+)", str(text or ""))
    return int(m.group(1)) if m else None


def ethics_flagged(flags: Any) -> bool:
    """ICLR's flag_for_ethics_review is ["NO."] or a list of concerns."""
    items = flags if isinstance(flags, list) else [flags] if flags else []
    return any(not str(f).strip().upper().startswith("NO") for f in items)


def sections(main_review: str) -> dict[str, list[str]]:
    """The main review's parts under known headings, each as a list of items (bullets, else paragraphs)."""
    parts: dict[str, list[str]] = {}
    current: str | None = None
    for line in main_review.splitlines():
        m = _HEADING.match(line)
        name = HEADINGS.get(m.group("name").strip().lower()) if m else None
        if name:
            current = name
            parts.setdefault(name, [])
            line = m.group("rest")
            if not line.strip():
                continue
        if current is not None:
            parts[current].append(line)
    return {k: items(lines) for k, lines in parts.items() if items(lines)}


def items(lines: list[str]) -> list[str]:
    out: list[str] = []
    fresh = True
    for line in lines:
        if not line.strip():
            fresh = True
            continue
        if _BULLET.match(line) or fresh:
            out.append(_BULLET.sub("", line).strip())
        else:
            out[-1] += " " + line.strip()
        fresh = False
    return [i for i in out if i]


def to_review(content: dict[str, Any], decision: str | None) -> dict[str, Any]:
    """An ICLR 2022 official review (note content) in the NeurIPS-form fields of engine.review (see above)."""
    correctness = leading_int(content.get("correctness"))
    technical = leading_int(content.get("technical_novelty_and_significance"))
    empirical = leading_int(content.get("empirical_novelty_and_significance"))
    recommendation, confidence = leading_int(content.get("recommendation")), leading_int(content.get("confidence"))
    if None in (correctness, technical, confidence) or recommendation not in OVERALL:
        raise ValueError("the review lacks correctness, technical_novelty_and_significance, confidence or a "
                         "recommendation of 1, 3, 5, 6, 8 or 10: not an ICLR 2022 review")
    novelty = [s for s in (technical, empirical) if s is not None]
    significance = round(statistics.mean(novelty))
    imputed = round(statistics.mean([correctness, *novelty]))
    main = str(content.get("main_review", "")).strip()
    parts = sections(main)
    strengths, weaknesses = parts.get("Strengths", []), parts.get("Weaknesses", [])
    if not strengths and not weaknesses:
        weaknesses = [main] if main else []
    accepted = decision.startswith("Accept") if decision else recommendation >= 6
    return {
        "Summary": str(content.get("summary_of_the_paper", "")).strip(),
        "Strengths": strengths, "Weaknesses": weaknesses,
        "Originality": technical, "Quality": correctness, "Clarity": imputed, "Significance": significance,
        "Questions": parts.get("Questions", []), "Limitations": [],
        "Ethical Concerns": ethics_flagged(content.get("flag_for_ethics_review")),
        "Soundness": correctness, "Presentation": imputed, "Contribution": significance,
        "Overall": OVERALL[recommendation], "Confidence": confidence,
        "Decision": "Accept" if accepted else "Reject",
    }


def pick_review(notes: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """The forum's official review closest to the median recommendation (see the module docstring), and the
    paper's decision (None when the forum has none)."""
    reviews = [n["content"] for n in notes if str(n.get("invitation", "")).endswith("Official_Review")
               and leading_int(n["content"].get("recommendation")) is not None]
    decisions = [n["content"].get("decision") for n in notes if str(n.get("invitation", "")).endswith("Decision")]
    if not reviews:
        raise ValueError("no official reviews with a recommendation in the forum")
    decision = decisions[0] if decisions else None
    median = statistics.median(leading_int(r["recommendation"]) for r in reviews)

    def rank(r: dict[str, Any]) -> tuple:
        rec = leading_int(r["recommendation"])
        agrees = decision is None or (rec >= 6) == decision.startswith("Accept")
        split = bool(sections(str(r.get("main_review", ""))))
        return abs(rec - median), not agrees, not split
    return min(reviews, key=rank), decision


def paper_title(notes: list[dict[str, Any]], paper_id: str) -> str | None:
    for n in notes:
        if n.get("id") == paper_id and n.get("content", {}).get("title"):
            return str(n["content"]["title"]).strip()
    return None


def example(paper_id: str, title: str | None, content: dict[str, Any], decision: str | None) -> dict[str, Any]:
    """The <id>.json of a few-shot example: provenance, the ICLR fields, and the converted review."""
    iclr = {k: content.get(k) for k in ("recommendation", "confidence", "correctness",
                                        "technical_novelty_and_significance", "empirical_novelty_and_significance",
                                        "summary_of_the_review")}
    return {"paper_id": paper_id, "title": title, "source": "ICLR 2022 official review on OpenReview",
            "decision": decision, "iclr": iclr, "imputed": ["Clarity", "Presentation"],
            "review": to_review(content, decision)}


def benchmark_ids(ratings: Path) -> set[str]:
    with open(ratings, newline="") as f:
        return {row["paper_id"] for row in csv.DictReader(f, delimiter="\t")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", nargs="+", required=True, help="OpenReview ids of ICLR 2022 papers")
    ap.add_argument("--out", type=Path, default=REPO / "engine" / "review" / "fewshot")
    ap.add_argument("--openreview-url", default="https://openreview.net", help="PDFs: <url>/pdf?id=<id>")
    ap.add_argument("--openreview-api", default="https://api.openreview.net", help="notes: <api>/notes?forum=<id>")
    ap.add_argument("--ratings", type=Path, default=REPO / "benchmarks" / "data" / "iclr2022_ratings.tsv",
                    help="the benchmark's papers, refused as examples")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import httpx

    from benchmarks.downloads import DownloadSettings, Refused, Retryable, fetch_json, fetch_pdfs
    from engine.errors import EngineError
    from engine.review.paper import load_paper

    leaked = sorted(set(args.ids) & benchmark_ids(args.ratings))
    if leaked:
        print(f"error: {', '.join(leaked)}: among the ICLR benchmark's papers ({args.ratings}); an example must not "
              "be one of the papers it helps to review. Pick other ICLR 2022 papers", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    settings = DownloadSettings(base_url=args.openreview_url, concurrency=2)
    pdfs = fetch_pdfs(args.ids, args.out, settings)
    failed = 0
    for pid in args.ids:
        try:
            if pid not in pdfs.paths:
                raise EngineError(f"no PDF: {pdfs.failed[pid]}")
            notes = fetch_json(f"{args.openreview_api.rstrip('/')}/notes?forum={pid}", settings)["notes"]
            content, decision = pick_review(notes)
            record = example(pid, paper_title(notes, pid), content, decision)
            text = load_paper(pdfs.paths[pid])
        except (EngineError, ValueError, KeyError, Retryable, Refused, httpx.TransportError) as e:
            print(f"{pid}: skipped: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
            continue
        (args.out / f"{pid}.txt").write_text(text)
        (args.out / f"{pid}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"{pid}: wrote {pid}.pdf, {pid}.txt and {pid}.json ({record['title']!r}, Overall "
              f"{record['review']['Overall']}, {record['review']['Decision']})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
