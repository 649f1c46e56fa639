"""Reviewer accuracy on 500 ICLR 2022 papers (the original's flags), or scoring an existing table.

    python -m benchmarks.iclr_review --model gpt-4o --num_reviews 500 --batch_size 100 --num_fs_examples 1 \\
        --num_reflections 5 --temperature 0.1 --num_reviews_ensemble 5 --fewshot-dir DIR [--papers-dir DIR]
    python -m benchmarks.iclr_review --score TABLE.csv --out scores.json

First every paper's PDF is found: in --papers-dir (<paper_id>.pdf), in --cache-dir, or downloaded from OpenReview
(--openreview-url) into the cache, several at a time, with a User-Agent, a per-host request rate and bounded
retries that honour Retry-After; a paper that cannot be fetched is skipped and listed with the reason. Then the
papers are reviewed concurrently on Ray with at most --max-llm-calls model calls in flight (a 429 is retried by
the model SDK, --max-retries times, with its back-off). Each review is saved to <out-dir>/reviews/ as it
finishes; a failed one is saved to <out-dir>/failed/ instead, and the next run reviews it again (and skips the
reviewed ones). The first --num_fs_examples examples of --fewshot-dir (the v1 layout: <name>.txt or <name>.pdf
next to <name>.json) are shown to the reviewer; fewer is an error unless --allow-fewer-shots, and an example
that is one of the evaluated papers is refused. Each PDF is read as the review phase reads it (engine/review/
paper.py: visible text only; hidden text removed and listed, instructions to a model flagged) and
--on-hidden-text decides what a paper with hidden text gets. The report (markdown, JSON, ROC and acceptance-rate
PNGs, a Parquet table) is written to <out-dir>, with how many papers held hidden or suspicious text.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.downloads import OPENREVIEW, Downloads, DownloadSettings, fetch_pdfs, local_pdf
from benchmarks.iclr_fewshot import Shots, check_ids, check_titles, choose_shots, write_used
from benchmarks.iclr_report import integrity_counts, write_report, write_status
from benchmarks.review_metrics import DEFAULT_RATINGS, load_ratings, read_reviews, score
from engine.config import shipped
from engine.errors import EngineError
from engine.inputs.files import output_file, output_folder
from engine.inputs.values import ArgumentParser, at_least, number_in
from engine.review.config import HIDDEN_TEXT_POLICIES
from engine.review.reviewer import FEWSHOT_DIR
from engine.rundir import write_atomic

log = logging.getLogger("iclr_review")
SCORE_COLUMNS = ("Originality", "Quality", "Clarity", "Significance", "Soundness", "Presentation", "Contribution",
                 "Overall", "Confidence")


def review_paper(paper_id: str, pdf: bytes, settings: dict[str, Any]) -> dict[str, Any]:
    """One paper, on a Ray worker: the full reviewer with its own ledger; returns a table row, or a row with
    "error" and "stage" ("pdf": no usable text, the model was not asked; "review": the model part failed)."""
    from engine.config import shipped_llm
    from engine.llm.ledger import Ledger, cost_summary
    from engine.llm.models import ModelSpec
    from engine.llm.service import LLM
    from engine.review.integrity import with_findings
    from engine.review.paper import PaperError, read_paper
    from engine.review.reviewer import FIELDS, perform_review

    start = time.monotonic()
    row: dict[str, Any] = {"paper_id": paper_id}
    with tempfile.TemporaryDirectory(prefix="iclr-") as tmp:
        path = Path(tmp) / f"{paper_id}.pdf"
        path.write_bytes(pdf)
        try:
            paper = read_paper(path, num_pages=settings["pages"])
        except PaperError as e:
            return row | {"error": str(e).replace(str(path), f"{paper_id}.pdf"), "stage": "pdf"}
        try:
            ledger = Ledger(Path(tmp), paper_id)
            spec = ModelSpec(**settings["spec"])
            llm = LLM({"review": spec}, shipped_llm(max_concurrency=settings["ensemble"],
                                                    max_retries=settings["max_retries"]), os.environ, ledger)
            review = perform_review(paper.text, spec.name, None, settings["reflections"], settings["fs_examples"],
                                    settings["ensemble"], settings["temperature"], llm=llm,
                                    fewshot_dir=Path(settings["fewshot_dir"]))
            review = with_findings(review, paper, settings["on_hidden_text"])
            row |= {k: review[k] for k in (*FIELDS, "hidden_text", "suspicious_text", "integrity_flag")}
            costs = cost_summary(ledger.rows())
            row |= {"cost_usd": costs["cost_usd"], "input_tokens": costs["tokens"]["input"],
                    "output_tokens": costs["tokens"]["output"], "fewshot": ",".join(settings["fewshot_names"])}
        except Exception as e:  # noqa: BLE001 - one paper's failure is recorded, the benchmark goes on
            return row | {"error": f"{type(e).__name__}: {e}"[:500], "stage": "review"}
    return row | {"seconds": time.monotonic() - start}


class ReviewStore:
    """<out-dir>/reviews/<id>.parquet: a finished review each. <out-dir>/failed/<id>.json: the last failure of
    a paper not reviewed yet (stage download, pdf or review); it never stops a later run from trying again."""

    def __init__(self, out_dir: Path):
        self.reviews, self.failed = out_dir / "reviews", out_dir / "failed"
        self.reviews.mkdir(parents=True, exist_ok=True)
        self.failed.mkdir(parents=True, exist_ok=True)

    def reviewed(self) -> dict[str, dict[str, Any]]:
        rows = {}
        for part in sorted(self.reviews.glob("*.parquet")):
            row = pq.read_table(part).to_pylist()[0]
            if row.get("error"):  # saved as done by an older version: a failure, reviewed again
                self.fail(row["paper_id"], "review", row["error"])
                part.unlink()
                continue
            rows[row["paper_id"]] = row
        return rows

    def save(self, row: dict[str, Any]) -> None:
        if row.get("error"):
            self.fail(row["paper_id"], row.get("stage", "review"), row["error"])
            return
        flat = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()}
        for k in SCORE_COLUMNS:
            flat[k] = None if flat.get(k) is None else float(flat[k])
        tmp = self.reviews / f".{row['paper_id']}.tmp"
        pq.write_table(pa.Table.from_pylist([flat]), tmp)
        os.replace(tmp, self.reviews / f"{row['paper_id']}.parquet")
        (self.failed / f"{row['paper_id']}.json").unlink(missing_ok=True)

    def fail(self, paper_id: str, stage: str, reason: str) -> None:
        record = {"paper_id": paper_id, "stage": stage, "reason": reason, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (self.failed / f"{paper_id}.json").write_text(json.dumps(record) + "\n")

    def failures(self) -> dict[str, dict[str, Any]]:
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.failed.glob("*.json"))}


def status(paper_ids: list[str], store: ReviewStore, shots: Shots) -> dict[str, Any]:
    """What happened to each evaluated paper: reviewed, failed (the model part), skipped (no usable PDF)."""
    reviewed, failures = store.reviewed(), store.failures()
    failed, skipped, missing = [], [], 0
    for pid in paper_ids:
        if pid in reviewed:
            continue
        rec = failures.get(pid)
        if rec is None:
            missing += 1
            continue
        if rec["stage"] == "review":
            failed.append({"paper_id": pid, "reason": rec["reason"]})
        else:
            skipped.append({"paper_id": pid, "reason": f"{rec['stage']}: {rec['reason']}"})
    counts = {"evaluated": len(paper_ids), "reviewed": sum(p in reviewed for p in paper_ids), "failed": len(failed),
              "skipped": len(skipped), "not_attempted": missing}
    names = ",".join(e.name for e in shots.examples)
    other = sum(reviewed[p].get("fewshot", names) != names for p in paper_ids if p in reviewed)
    return {"papers": counts, "failed": failed, "skipped": skipped,
            "fewshot": shots.summary() | {"reviews_with_other_examples": other}}


def model_spec(args: argparse.Namespace):
    from engine.review.reviewer import cli_model

    return cli_model(args.model, args.base_url, args.api_key_env)


def download_settings(args: argparse.Namespace) -> DownloadSettings:
    return DownloadSettings(base_url=args.openreview_url, concurrency=args.download_concurrency,
                            per_host_rate=args.download_rate, attempts=args.download_attempts,
                            timeout_s=args.download_timeout_s, backoff_s=args.download_backoff_s)


def run_reviews(args: argparse.Namespace, out_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Downloads, then reviews, the papers not reviewed yet; returns the reviews and the papers' status."""
    ratings = load_ratings(args.ratings)
    paper_ids = list(ratings)[: args.num_reviews]
    shots = choose_shots(args.fewshot_dir, args.num_fs_examples, args.allow_fewer_shots)
    check_ids(shots, paper_ids)
    store = ReviewStore(out_dir)
    done = store.reviewed()
    todo = [p for p in paper_ids if p not in done]
    log.info("%d papers: %d reviewed before, %d to review", len(paper_ids), len(paper_ids) - len(todo), len(todo))
    downloads = fetch_pdfs(todo, args.cache_dir, download_settings(args), args.papers_dir) if todo else Downloads()
    for pid, reason in downloads.failed.items():
        store.fail(pid, "download", reason)
    at_hand = dict(downloads.paths)
    for pid in done:
        if (path := local_pdf(pid, [args.papers_dir, args.cache_dir])) is not None:
            at_hand[pid] = path
    check_titles(shots, at_hand)
    queue = [p for p in todo if p in downloads.paths]
    if todo and not queue and not done:
        write_status(status(paper_ids, store, shots), out_dir, "ICLR 2022 reviewer benchmark: nothing reviewed")
        first = next(iter(downloads.failed.items()))
        raise EngineError(f"none of the {len(todo)} PDFs could be downloaded from {args.openreview_url} (e.g. "
                          f"{first[0]}: {first[1]}); offline? Put the PDFs in a folder as <paper_id>.pdf and pass "
                          "--papers-dir")
    if queue:
        review_all(queue, downloads.paths, settings_for(args, shots, out_dir), store, args)
    reviewed = store.reviewed()
    table = pa.Table.from_pylist(list(reviewed.values())) if reviewed else None
    if table is not None:
        pq.write_table(table, out_dir / "reviews.parquet")
    return [reviewed[p] for p in paper_ids if p in reviewed], status(paper_ids, store, shots)


def settings_for(args: argparse.Namespace, shots: Shots, out_dir: Path) -> dict[str, Any]:
    spec = model_spec(args)
    return {"spec": {k: getattr(spec, k) for k in spec.__dataclass_fields__}, "pages": args.pages,
            "ensemble": args.num_reviews_ensemble, "reflections": args.num_reflections,
            "fs_examples": len(shots.examples), "fewshot_dir": str(write_used(shots, out_dir / "fewshot_used")),
            "fewshot_names": [e.name for e in shots.examples], "temperature": args.temperature,
            "max_retries": args.max_retries, "on_hidden_text": args.on_hidden_text}


def review_all(queue: list[str], pdfs: dict[str, Path], settings: dict[str, Any], store: ReviewStore,
               args: argparse.Namespace) -> None:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when Ray is imported: loopback only
    import ray

    from engine.config import shipped_llm
    from engine.llm.models import ModelSpec
    from engine.llm.service import LLM

    LLM({"review": ModelSpec(**settings["spec"])}, shipped_llm(), os.environ).preflight()  # a bad key ends it here
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    task = ray.remote(num_cpus=0)(review_paper)
    in_flight_max = papers_in_flight(args)
    started, total, pending = time.monotonic(), len(queue), {}
    queue = list(queue)
    try:
        while queue or pending:
            while queue and len(pending) < in_flight_max:
                pid = queue.pop(0)
                pending[task.remote(pid, pdfs[pid].read_bytes(), settings)] = pid
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=args.paper_timeout_s)
            if not ready:
                raise EngineError(f"no review finished in {args.paper_timeout_s:.0f}s; is the model reachable?")
            for ref in ready:
                pid = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayError as e:  # the worker died or could not start: this paper failed
                    row = {"paper_id": pid, "error": f"{type(e).__name__}: {e}"[:500], "stage": "review"}
                store.save(row)
                finished = total - len(queue) - len(pending)
                outcome = (f"Overall {row.get('Overall')}, {row.get('Decision')}" if not row.get("error")
                           else f"failed at the {row['stage']} stage ({row['error'][:100]})")
                log.info("[%d/%d] %s: %s | %.1f papers/min", finished, total, pid, outcome,
                         finished / (time.monotonic() - started) * 60)
    finally:
        ray.shutdown()


def papers_in_flight(args: argparse.Namespace) -> int:
    """Papers in review at once: --batch_size at most, and no more than --max-llm-calls ensembles' worth."""
    return min(args.batch_size, max(1, args.max_llm_calls // args.num_reviews_ensemble))


def parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m benchmarks.iclr_review", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="conf/model name or API model name")
    ap.add_argument("--base-url", help="an OpenAI-compatible server")
    ap.add_argument("--api-key-env", default="OPENAI_API_KEY")
    ap.add_argument("--num_reviews", type=at_least(1), default=500)
    ap.add_argument("--batch_size", type=at_least(1), default=100, help="papers in review at once, at most (the "
                    "model calls in flight are bounded by --max-llm-calls too)")
    ap.add_argument("--num_fs_examples", type=at_least(0), default=1)
    ap.add_argument("--fewshot-dir", type=Path, default=FEWSHOT_DIR, help="few-shot examples in the v1 layout: "
                    "<name>.txt or <name>.pdf next to <name>.json (default: engine/review/fewshot, empty as shipped)")
    ap.add_argument("--allow-fewer-shots", action="store_true",
                    help="go on with fewer few-shot examples than --num_fs_examples asks for")
    ap.add_argument("--num_reflections", type=at_least(1), default=5)
    ap.add_argument("--temperature", type=number_in(0, 2), default=0.1)
    ap.add_argument("--num_reviews_ensemble", type=at_least(1), default=5)
    ap.add_argument("--max-llm-calls", type=at_least(1), default=16, help="model calls in flight at once")
    ap.add_argument("--max-retries", type=at_least(0), default=5, help="retries of a model call on 429 / 5xx / network "
                    "errors, by the SDK with its back-off (honouring Retry-After)")
    ap.add_argument("--pages", type=at_least(1), default=None)
    ap.add_argument("--on-hidden-text", choices=HIDDEN_TEXT_POLICIES, default=shipped("review")["on_hidden_text"],
                    help="a paper whose PDF has hidden text: Decision Reject, or flagged only (default: "
                         "review.on_hidden_text in conf/review/default.yaml)")
    ap.add_argument("--papers-dir", type=Path, default=None, help="a folder of <paper_id>.pdf, used first")
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "ai-scientist-engine" / "iclr2022")
    ap.add_argument("--openreview-url", default=OPENREVIEW, help="where PDFs come from: <url>/pdf?id=<paper_id>")
    ap.add_argument("--download-concurrency", type=at_least(1), default=4, help="PDF downloads in flight at once")
    ap.add_argument("--download-rate", type=number_in(0.001), default=1.0, help="PDF requests per second to one host")
    ap.add_argument("--download-attempts", type=at_least(1), default=4, help="tries per PDF (429, 5xx, network errors)")
    ap.add_argument("--download-timeout-s", type=number_in(0.001), default=60.0)
    ap.add_argument("--download-backoff-s", type=number_in(0), default=2.0,
                    help="first wait before a retry when the server sends no Retry-After (doubling after)")
    ap.add_argument("--paper-timeout-s", type=number_in(0.001), default=1800)
    ap.add_argument("--ratings", type=Path, default=DEFAULT_RATINGS)
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--score", type=Path, help="score this table of reviews (CSV/Parquet) instead; no model")
    ap.add_argument("--out", type=Path, help="with --score: the JSON file for the figures")
    ap.add_argument("--bootstrap", type=at_least(1), default=1000)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ratings = load_ratings(args.ratings)
        if args.score:
            out = output_file(args.out or args.score.with_suffix(".scores.json"), "--out")
            result = score(read_reviews(args.score), ratings, n_boot=args.bootstrap)
            write_atomic(out, json.dumps(result, indent=2) + "\n")
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
        output_folder(out_dir, f"--out-dir {out_dir}")  # before anything is paid for
        title = f"ICLR 2022 reviewer benchmark: {args.model}"
        rows, state = run_reviews(args, out_dir)
        if not rows:
            write_status(state, out_dir, title)
            raise EngineError(f"no paper was reviewed ({state['papers']['failed']} failed, "
                              f"{state['papers']['skipped']} skipped); the reasons are in {out_dir / 'report.md'}")
        result = score(rows, ratings, n_boot=args.bootstrap) | state | {
            "model": model_spec(args).name,
            "integrity": integrity_counts(rows) | {"on_hidden_text": args.on_hidden_text}}
        costs = [r.get("cost_usd") for r in rows]
        result["cost_per_review_usd"] = None if None in costs else sum(costs) / len(rows)
        result["seconds_per_review"] = sum(r["seconds"] for r in rows) / len(rows)
        write_report(result, rows, ratings, out_dir, title)
        print((out_dir / "report.md").read_text())
        return 0
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
