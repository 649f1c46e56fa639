"""The ICLR benchmark's report: metrics.json, report.md (what was reviewed, failed and skipped, and why; the
few-shot examples used; the figures) and the ROC and acceptance-rate plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LISTED = 50  # failures listed one by one in report.md (metrics.json has them all)


def papers_section(result: dict[str, Any]) -> list[str]:
    p, shots = result["papers"], result["fewshot"]
    lines = [f"{p['evaluated']} papers evaluated: {p['reviewed']} reviewed, {p['failed']} failed, {p['skipped']} "
             f"skipped" + (f", {p['not_attempted']} not attempted (the run stopped early)" if p["not_attempted"]
                           else "") + ". Failed and skipped papers are tried again by the next run.", ""]
    if shots["asked"] == 0:
        lines.append("Few-shot examples: none (zero-shot, --num_fs_examples 0).")
    else:
        names = ", ".join(shots["examples"]) or "none"
        lines.append(f"Few-shot examples: {shots['used']} used of {shots['asked']} asked ({names}; from "
                     f"{shots['folder']})" + (" with --allow-fewer-shots." if shots["used"] < shots["asked"]
                                              else "."))
    if shots.get("reviews_with_other_examples"):
        lines.append(f"{shots['reviews_with_other_examples']} of the reviews were made by an earlier run with other "
                     "few-shot examples (the `fewshot` column of reviews.parquet names them).")
    if result.get("integrity"):
        lines += ["", *integrity_section(result["integrity"])]
    for key, what in (("failed", "Failed reviews (the model was asked, no usable review came back)"),
                      ("skipped", "Skipped (no usable PDF: the model was not asked)")):
        items = result[key]
        if items:
            lines += ["", f"{what}:", ""] + [f"- {i['paper_id']}: {i['reason']}" for i in items[:LISTED]]
            if len(items) > LISTED:
                lines.append(f"- ... and {len(items) - LISTED} more (metrics.json lists them all)")
    return lines


def integrity_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Which reviewed papers' PDFs held hidden text or instructions to a model (rows reviewed by a version before
    the loader looked for them have no such column and are not counted)."""
    def listed(row: dict[str, Any], key: str) -> list:
        value = row.get(key)
        return (json.loads(value) if isinstance(value, str) else value) or []

    checked = [r for r in rows if r.get("hidden_text") is not None]
    return {"checked": len(checked), "hidden_text": [r["paper_id"] for r in checked if listed(r, "hidden_text")],
            "suspicious_text": [r["paper_id"] for r in checked if listed(r, "suspicious_text")]}


def integrity_section(found: dict[str, Any]) -> list[str]:
    hidden, suspicious = found["hidden_text"], found["suspicious_text"]
    fate = ("their Decision is Reject" if found.get("on_hidden_text") == "reject" else
            "their decision stays the reviewer's")
    lines = [f"Hidden text (removed before the model read the paper; --on-hidden-text {found.get('on_hidden_text')}: "
             f"{fate}): {len(hidden)} of the {found['checked']} papers read by the loader"
             + (f" ({', '.join(hidden[:LISTED])}{' ...' if len(hidden) > LISTED else ''})." if hidden else "."),
             f"Suspicious visible text (instructions to a model; flagged, not removed): {len(suspicious)} papers"
             + (f" ({', '.join(suspicious[:LISTED])}{' ...' if len(suspicious) > LISTED else ''})." if suspicious
                else "."),
             "The passages are in reviews.parquet (columns hidden_text and suspicious_text)."]
    return lines


def write_status(result: dict[str, Any], out_dir: Path, title: str) -> None:
    """metrics.json and report.md for a run with no review to score: only what happened to the papers."""
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "report.md").write_text("\n".join([f"# {title}", "", *papers_section(result)]) + "\n")


def write_report(result: dict[str, Any], rows: list[dict[str, Any]], ratings: dict, out_dir: Path,
                 title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import roc_curve

    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    ok = [r for r in rows if r.get("Overall") is not None and r["paper_id"] in ratings]
    y = np.array([ratings[r["paper_id"]]["accepted"] for r in ok])
    overall = np.array([float(r["Overall"]) for r in ok])
    fpr, tpr, _ = roc_curve(y, overall)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"Overall (AUC {result['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC of the Overall score")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "roc.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ts = sorted(set(overall.astype(int)))
    ax.plot(ts, [(overall >= t).mean() for t in ts], marker="o", label="reviewer: Overall >= t")
    ax.axhline(y.mean(), color="grey", linestyle="--", label=f"ICLR 2022 ({y.mean():.1%})")
    ax.set(xlabel="threshold t on Overall", ylabel="acceptance rate")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "acceptance_rate.png", dpi=120)
    plt.close(fig)
    ci = result["ci95"]
    lines = [f"# {title}", "", *papers_section(result), "",
             f"Scored: {result['n']} reviews ({result['n_dropped']} without a usable Overall or Decision dropped).",
             "", "| metric | value | 95% CI |", "|---|---|---|"]
    for k in ("accuracy", "balanced_accuracy", "f1", "roc_auc", "fpr", "fnr"):
        lines.append(f"| {k} | {result[k]:.3f} | {ci[k][0]:.3f} - {ci[k][1]:.3f} |")
    lines += ["", "Decisions by threshold on Overall:", "", "| Overall >= | accuracy | balanced | F1 | accept rate |",
              "|---|---|---|---|---|"]
    for t, m in result["by_threshold"].items():
        lines.append(f"| {t} | {m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | {m['f1']:.3f} | "
                     f"{m['accept_rate']:.3f} |")
    h, c = result["single_human_reviewer"], result["correlation_with_human_mean"]
    lines += ["", f"Correlation of Overall with the human mean score: Pearson {c['pearson']:.3f}, Spearman "
              f"{c['spearman']:.3f}.", f"One random human reviewer (accept at >= {h['threshold']:g}): accuracy "
              f"{h['accuracy']:.3f}, balanced {h['balanced_accuracy']:.3f}, F1 {h['f1']:.3f}."]
    if "cost_per_review_usd" in result:
        cost = result["cost_per_review_usd"]
        lines.append(f"Per review: {result['seconds_per_review']:.1f} s, cost "
                     f"{'unknown' if cost is None else f'${cost:.4f}'}.")
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
