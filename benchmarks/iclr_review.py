"""Reviewer accuracy on 500 ICLR 2022 papers (the original's flags), or scoring an existing table.

    python -m benchmarks.iclr_review --model gpt-4o --num_reviews 500 --batch_size 100 --num_fs_examples 1 \\
        --num_reflections 5 --temperature 0.1 --num_reviews_ensemble 5 [--papers-dir DIR]
    python -m benchmarks.iclr_review --score TABLE.csv --out scores.json

PDFs come from --papers-dir (<paper_id>.pdf) or are downloaded once from OpenReview into --cache-dir. Papers are
reviewed concurrently on Ray with at most --max-llm-calls model calls in flight; each review is appended to
<out-dir>/reviews/ (Parquet) as it finishes, and a rerun skips papers already reviewed. The report (markdown,
JSON, ROC and acceptance-rate PNGs, a Parquet table) is written to <out-dir>.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.review_metrics import DEFAULT_RATINGS, load_ratings, read_reviews, score
from engine.errors import EngineError

log = logging.getLogger("iclr_review")
PDF_URL = "https://openreview.net/pdf?id={id}"
SCORE_COLUMNS = ("Originality", "Quality", "Clarity", "Significance", "Soundness", "Presentation", "Contribution",
                 "Overall", "Confidence")


def fetch_pdf(paper_id: str, papers_dir: Path | None, cache_dir: Path, url_template: str) -> Path:
    for folder in (papers_dir, cache_dir):
        if folder is not None and (folder / f"{paper_id}.pdf").is_file():
            return folder / f"{paper_id}.pdf"
    url = url_template.format(id=paper_id)
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            data = resp.read()
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise EngineError(f"cannot download {url} ({e}); offline? Put the PDFs in a folder as <paper_id>.pdf and "
                          f"pass --papers-dir") from None
    if not data.startswith(b"%PDF"):
        raise EngineError(f"{url} did not return a PDF; download it by hand into --papers-dir")
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / f"{paper_id}.pdf"
    dest.write_bytes(data)
    return dest


def review_paper(paper_id: str, pdf: bytes, settings: dict[str, Any]) -> dict[str, Any]:
    """One paper, on a Ray worker: the full reviewer with its own ledger; returns a table row."""
    from engine.llm.ledger import Ledger, cost_summary
    from engine.llm.models import ModelSpec
    from engine.llm.service import LLM, LLMSettings
    from engine.review.paper import load_paper
    from engine.review.reviewer import FIELDS, perform_review

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="iclr-") as tmp:
        path = Path(tmp) / f"{paper_id}.pdf"
        path.write_bytes(pdf)
        row: dict[str, Any] = {"paper_id": paper_id}
        try:
            text = load_paper(path, num_pages=settings["pages"])
            ledger = Ledger(Path(tmp), paper_id)
            spec = ModelSpec(**settings["spec"])
            llm = LLM({"review": spec}, LLMSettings(max_concurrency=settings["ensemble"]), os.environ, ledger)
            review = perform_review(text, spec.name, None, settings["reflections"], settings["fs_examples"],
                                    settings["ensemble"], settings["temperature"], llm=llm)
            row |= {k: review[k] for k in FIELDS} | {"error": None}
            costs = cost_summary(ledger.rows())
            row |= {"cost_usd": costs["cost_usd"], "input_tokens": costs["tokens"]["input"],
                    "output_tokens": costs["tokens"]["output"]}
        except Exception as e:  # noqa: BLE001 - one paper's failure is recorded, the benchmark goes on
            row |= {"error": f"{type(e).__name__}: {e}"[:500]}
    return row | {"seconds": time.monotonic() - start}


def _row_table(row: dict[str, Any]) -> pa.Table:
    flat = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()}
    for k in SCORE_COLUMNS:
        flat[k] = None if flat.get(k) is None else float(flat[k])
    flat["Decision"] = flat.get("Decision")
    return pa.Table.from_pylist([flat])


def run_reviews(args: argparse.Namespace, out_dir: Path) -> list[dict[str, Any]]:
    import ray

    from engine.review.reviewer import spec_for

    ratings = load_ratings(args.ratings)
    paper_ids = list(ratings)[: args.num_reviews]
    part_dir = out_dir / "reviews"
    part_dir.mkdir(parents=True, exist_ok=True)
    done = {p.stem for p in part_dir.glob("*.parquet")}
    todo = [p for p in paper_ids if p not in done]
    log.info("%d papers: %d reviewed before, %d to review", len(paper_ids), len(paper_ids) - len(todo), len(todo))
    if args.base_url:
        from engine.llm.models import ModelSpec
        spec = ModelSpec(name=args.model, provider="openai", base_url=args.base_url, api_key_env=args.api_key_env)
    else:
        spec = spec_for(args.model, "anthropic" if args.model.startswith("claude") else "openai")
    settings = {"spec": {k: getattr(spec, k) for k in spec.__dataclass_fields__}, "pages": args.pages,
                "ensemble": args.num_reviews_ensemble, "reflections": args.num_reflections,
                "fs_examples": args.num_fs_examples, "temperature": args.temperature}
    if todo:
        from engine.llm.service import LLM, LLMSettings
        LLM({"review": spec}, LLMSettings(), os.environ).preflight()  # a bad key ends it here
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False, _node_ip_address="127.0.0.1")
        task = ray.remote(num_cpus=0)(review_paper)
        in_flight_max = max(1, args.max_llm_calls // max(1, args.num_reviews_ensemble))
        started, finished, pending = time.monotonic(), 0, {}
        queue = list(todo)
        try:
            while queue or pending:
                while queue and len(pending) < in_flight_max:
                    pid = queue.pop(0)
                    pdf = fetch_pdf(pid, args.papers_dir, args.cache_dir, args.pdf_url).read_bytes()
                    pending[task.remote(pid, pdf, settings)] = pid
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=args.paper_timeout_s)
                if not ready:
                    raise EngineError(f"no review finished in {args.paper_timeout_s:.0f}s; is the model reachable?")
                for ref in ready:
                    pid = pending.pop(ref)
                    row = ray.get(ref)
                    tmp = part_dir / f".{pid}.tmp"
                    pq.write_table(_row_table(row), tmp)
                    os.replace(tmp, part_dir / f"{pid}.parquet")
                    finished += 1
                    rate = finished / (time.monotonic() - started)
                    log.info("[%d/%d] %s: %s%s | %.1f papers/min, %d left", len(paper_ids) - len(queue) -
                             len(pending), len(paper_ids), pid,
                             f"Overall {row.get('Overall')}, {row.get('Decision')}" if not row.get("error")
                             else "failed", f" ({row['error'][:100]})" if row.get("error") else "", rate * 60,
                             len(queue) + len(pending))
        finally:
            ray.shutdown()
    table = pq.read_table(part_dir)
    pq.write_table(table, out_dir / "reviews.parquet")
    return [r for r in table.to_pylist() if r["paper_id"] in set(paper_ids)]


def write_report(result: dict[str, Any], rows: list[dict[str, Any]], ratings: dict, out_dir: Path, title: str) -> None:
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
    lines = [f"# {title}", "", f"{result['n']} papers ({result['n_dropped']} without a usable review dropped).", "",
             "| metric | value | 95% CI |", "|---|---|---|"]
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.iclr_review", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="conf/model name or API model name")
    ap.add_argument("--base-url", help="an OpenAI-compatible server")
    ap.add_argument("--api-key-env", default="OPENAI_API_KEY")
    ap.add_argument("--num_reviews", type=int, default=500)
    ap.add_argument("--batch_size", type=int, default=100, help="papers handed out at a time (kept for the "
                    "original's command line; concurrency is --max-llm-calls)")
    ap.add_argument("--num_fs_examples", type=int, default=1)
    ap.add_argument("--num_reflections", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--num_reviews_ensemble", type=int, default=5)
    ap.add_argument("--max-llm-calls", type=int, default=16, help="model calls in flight at once")
    ap.add_argument("--pages", type=int, default=None)
    ap.add_argument("--papers-dir", type=Path, default=None)
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "ai-scientist-engine" / "iclr2022")
    ap.add_argument("--pdf-url", default=PDF_URL, help="URL template for a paper's PDF ({id})")
    ap.add_argument("--paper-timeout-s", type=float, default=1800)
    ap.add_argument("--ratings", type=Path, default=DEFAULT_RATINGS)
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--score", type=Path, help="score this table of reviews (CSV/Parquet) instead; no model")
    ap.add_argument("--out", type=Path, help="with --score: the JSON file for the figures")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ratings = load_ratings(args.ratings)
        if args.score:
            result = score(read_reviews(args.score), ratings, n_boot=args.bootstrap)
            out = args.out or args.score.with_suffix(".scores.json")
            out.write_text(json.dumps(result, indent=2) + "\n")
            print(f"n={result['n']} accuracy={result['accuracy']:.3f} balanced={result['balanced_accuracy']:.3f} "
                  f"f1={result['f1']:.3f} roc_auc={result['roc_auc']:.3f}; Overall>=6: "
                  f"accuracy={result['by_threshold']['6']['accuracy']:.3f} "
                  f"balanced={result['by_threshold']['6']['balanced_accuracy']:.3f} "
                  f"f1={result['by_threshold']['6']['f1']:.3f}; wrote {out}")
            return 0
        if not args.model:
            raise EngineError("give --model NAME (with its API key set), or --score TABLE to score existing reviews")
        out_dir = args.out_dir or Path("benchmark_results") / (
            f"iclr2022_{args.model.replace('/', '_')}_fs{args.num_fs_examples}_refl{args.num_reflections}_"
            f"ens{args.num_reviews_ensemble}_t{args.temperature:g}")
        rows = run_reviews(args, out_dir)
        result = score(rows, ratings, n_boot=args.bootstrap)
        done = [r for r in rows if not r.get("error")]
        costs = [r.get("cost_usd") for r in done]
        result["cost_per_review_usd"] = None if not done or None in costs else sum(costs) / len(done)
        result["seconds_per_review"] = sum(r["seconds"] for r in done) / max(1, len(done))
        result["failed_reviews"] = len(rows) - len(done)
        write_report(result, rows, ratings, out_dir, f"ICLR 2022 reviewer benchmark: {args.model}")
        print((out_dir / "report.md").read_text())
        return 0
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
