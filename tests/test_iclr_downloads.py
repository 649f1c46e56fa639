"""The ICLR benchmark's PDF downloads against a loopback OpenReview stand-in: retries that honour Retry-After,
a paper that never comes (listed, the others go on), a slow one, a User-Agent, a per-host rate; and the whole
benchmark: downloads before reviews, failed reviews retried by the next run and not counted as done."""
import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import downloads
from benchmarks.downloads import USER_AGENT, DownloadSettings, fetch_pdfs, retry_after_seconds
from tests.fake_llm_server import FakeLLMServer
from tests.test_iclr_benchmark import bench, make_pdfs, needs_tex, ratings_subset, reviewer_model

PDF = b"%PDF-1.4 tiny\n"


class PaperServer:
    """GET /pdf?id=<id>. `plan[id]` is a list of answers used in turn (the last one repeats): "ok", "429"
    (with Retry-After: 1), "500", "404", "slow" (the PDF once the paper `release_on` is asked for again, or after
    10 s). Unlisted ids get "ok"."""

    def __init__(self, pdfs: dict[str, bytes] | None = None, plan: dict[str, list[str]] | None = None,
                 release_on: str | None = None):
        self.pdfs, self.plan, self.release_on = pdfs or {}, plan or {}, release_on
        self.requests: list[tuple[float, str, dict]] = []  # (monotonic time, id, headers)
        self.answered: list[tuple[float, str]] = []  # (monotonic time a held "slow" answer was let go, id)
        self.lock = threading.Lock()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                pid = parse_qs(urlparse(self.path).query).get("id", [""])[0]
                with server.lock:
                    n = sum(1 for _, p, _ in server.requests if p == pid)
                    server.requests.append((time.monotonic(), pid, {k.lower(): v for k, v in self.headers.items()}))
                    answers = server.plan.get(pid, ["ok"])
                    answer = answers[min(n, len(answers) - 1)]
                    if pid == server.release_on and n >= 1:
                        server.release.set()
                if answer == "slow":
                    server.release.wait(10)
                    with server.lock:
                        server.answered.append((time.monotonic(), pid))
                status = {"429": 429, "500": 500, "404": 404}.get(answer, 200)
                body = server.pdfs.get(pid, PDF) if status == 200 else b"<html>busy</html>"
                self.send_response(status)
                self.send_header("Content-Type", "application/pdf" if status == 200 else "text/html")
                self.send_header("Content-Length", str(len(body)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()  # a quick shutdown()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def times(self, pid):
        return [t for t, p, _ in self.requests if p == pid]


def settings(url, **kw):
    return DownloadSettings(**({"base_url": url, "concurrency": 4, "per_host_rate": 50.0, "attempts": 3,
                                "timeout_s": 10.0, "backoff_s": 0.05} | kw))


def test_retries_honour_retry_after_a_failing_paper_is_listed_and_the_rest_go_on(tmp_path):
    plan = {"busy": ["429", "ok"], "broken": ["500"], "gone": ["404"], "slow": ["slow"]}
    ids = ["ok1", "busy", "broken", "gone", "slow", "ok2"]
    with PaperServer(plan=plan, release_on="busy") as server:
        got = fetch_pdfs(ids, tmp_path / "cache", settings(server.url))
        assert sorted(got.paths) == ["busy", "ok1", "ok2", "slow"]
        assert all(p.read_bytes() == PDF for p in got.paths.values())
        assert set(got.failed) == {"broken", "gone"}
        assert "HTTP 500" in got.failed["broken"] and "3 attempts" in got.failed["broken"]
        assert "HTTP 404" in got.failed["gone"]
        busy = server.times("busy")
        assert len(busy) == 2 and busy[1] - busy[0] >= 0.95  # waited the server's Retry-After: 1
        assert len(server.times("broken")) == 3 and len(server.times("gone")) == 1  # bounded; 404 not retried
        assert {h["user-agent"] for _, _, h in server.requests} == {USER_AGENT}
        # concurrent: the slow paper is answered only once the busy paper's retry (after its 1 s Retry-After) has
        # come, so a client that waited for one before the other would get it 10 s late (the server's own record)
        [slow_start], [slow_end] = server.times("slow"), [t for t, p in server.answered if p == "slow"]
        assert slow_start < busy[1] < slow_end
        # a second run fetches only what is not in the cache yet
        before = len(server.requests)
        again = fetch_pdfs(ids, tmp_path / "cache", settings(server.url))
        assert sorted(p for _, p, _ in server.requests[before:]) == ["broken", "broken", "broken", "gone"]
        assert sorted(again.paths) == sorted(got.paths)


def test_requests_to_one_host_keep_to_the_rate(tmp_path, monkeypatch):
    # a frozen event-loop clock: all six ask for a start at the same instant, so the limiter's sleeps are exactly
    # the slots it hands out (without a rate they would all be 0)
    slept: list[float] = []

    async def sleep(seconds):
        slept.append(seconds)
        await asyncio.sleep(0)

    clock = type("FrozenLoop", (), {"time": staticmethod(lambda: 0.0)})()
    frozen = type(asyncio)("asyncio_frozen_clock")
    frozen.__dict__.update(vars(asyncio))
    frozen.sleep, frozen.get_running_loop = sleep, lambda: clock
    monkeypatch.setattr(downloads, "asyncio", frozen)
    ids = [f"p{i}" for i in range(6)]
    with PaperServer() as server:
        got = fetch_pdfs(ids, tmp_path / "cache", settings(server.url, per_host_rate=10.0, concurrency=6))
    assert len(server.requests) == 6 and sorted(got.paths) == ids
    assert sorted(slept) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])  # 10 requests/s: one every 0.1 s


def test_papers_dir_and_cache_are_used_without_the_network(tmp_path):
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "a.pdf").write_bytes(PDF)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "b.pdf").write_bytes(b"<html>an error page saved by an old version</html>")
    with PaperServer() as server:
        got = fetch_pdfs(["a", "b"], tmp_path / "cache", settings(server.url), papers_dir=tmp_path / "papers")
        assert [p for _, p, _ in server.requests] == ["b"]  # a broken cached file is fetched again
    assert got.paths["a"] == tmp_path / "papers" / "a.pdf" and (tmp_path / "cache" / "b.pdf").read_bytes() == PDF


def test_retry_after_as_seconds_or_date():
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert retry_after_seconds("soon") is None


def review_gate(fail_for: set[str], stamps: list[float]):
    """The fake reviewer, answering 429 for the papers in `fail_for` and noting when each request came."""
    good = reviewer_model()

    def respond(path, body):
        stamps.append(time.monotonic())
        text = json.dumps(body["messages"])
        if any(pid in text for pid in fail_for):
            return {"status": 429}
        return good(path, body)
    return respond


@needs_tex
@pytest.mark.slow
def test_benchmark_downloads_first_lists_skips_and_retries_failed_reviews(tmp_path):
    ratings, picked = ratings_subset(tmp_path)  # 4 papers: accept, reject, accept, reject
    a, b, c, d = (r["paper_id"] for r in picked)
    pdfs = {p.stem: p.read_bytes() for p in make_pdfs(tmp_path, picked).glob("*.pdf")}
    fewshot = tmp_path / "fewshot"  # one example in the v1 layout; two asked, allowed to run with one
    fewshot.mkdir()
    (fewshot / "toy.txt").write_text("A toy paper about sorting numbers with a heap. " * 20)
    (fewshot / "toy.json").write_text(json.dumps({"review": json.dumps(
        {"Summary": "Sorting with heaps.", "Strengths": ["simple"], "Weaknesses": ["not new"], "Originality": 1,
         "Quality": 2, "Clarity": 3, "Significance": 1, "Questions": [], "Limitations": [], "Ethical Concerns": False,
         "Soundness": 2, "Presentation": 3, "Contribution": 1, "Overall": 2, "Confidence": 5,
         "Decision": "Reject"})}))
    out, stamps, fail_for = tmp_path / "out", [], {c}
    args = ["--model", "fake-model", "--ratings", str(ratings), "--out-dir", str(out), "--cache-dir",
            str(tmp_path / "cache"), "--num_reviews", "4", "--num_reviews_ensemble", "1", "--num_reflections", "1",
            "--fewshot-dir", str(fewshot), "--num_fs_examples", "2", "--allow-fewer-shots", "--bootstrap", "20",
            "--download-attempts", "2", "--download-backoff-s", "0.05", "--download-rate", "20", "--max-retries", "1",
            "--max-llm-calls", "2"]  # two papers at a time: concurrent, without a Ray worker per paper
    with FakeLLMServer(responder=review_gate(fail_for, stamps)) as llm, \
            PaperServer(pdfs, plan={a: ["429", "ok"], b: ["500", "500", "ok"]}) as papers:
        res = bench("--base-url", llm.base_url, "--openreview-url", papers.url, *args)
        assert res.returncode == 0, res.stderr[-3000:]
        assert max(t for t, _, _ in papers.requests) < min(stamps), "every download ends before the first review"
        c_calls = [body for _, body, _ in llm.requests if c in json.dumps(body)]
        assert len(c_calls) == 2, "a 429 on a review is retried by the SDK (--max-retries 1), then recorded"
        assert "Sorting with heaps." in json.dumps(llm.requests[-1][1])  # the few-shot example reached the model
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["papers"] == {"evaluated": 4, "reviewed": 2, "failed": 1, "skipped": 1, "not_attempted": 0}
        assert metrics["n"] == 2 and [f["paper_id"] for f in metrics["failed"]] == [c]
        assert metrics["skipped"][0]["paper_id"] == b and "HTTP 500" in metrics["skipped"][0]["reason"]
        assert metrics["fewshot"]["used"] == 1 and metrics["fewshot"]["examples"] == ["toy"]
        report = (out / "report.md").read_text()
        assert "4 papers evaluated: 2 reviewed, 1 failed, 1 skipped" in report
        assert f"- {b}: download: HTTP 500" in report and f"- {c}: " in report
        assert "1 used of 2 asked (toy" in report and "--allow-fewer-shots" in report
        assert sorted(p.stem for p in (out / "reviews").glob("*.parquet")) == sorted([a, d])

        fail_for.clear()  # the rate limit is over, and the PDF server works again
        mark = len(llm.requests)
        res = bench("--base-url", llm.base_url, "--openreview-url", papers.url, *args)
        assert res.returncode == 0, res.stderr[-3000:]
        again = {p for p in (a, b, c, d) if any(p in json.dumps(body) for _, body, _ in llm.requests[mark:])}
    assert again == {b, c}, "the next run reviews the failed and the skipped papers, and only those"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["papers"]["reviewed"] == 4 and metrics["failed"] == [] and metrics["skipped"] == []
    assert metrics["n"] == 4 and not list((out / "failed").glob("*.json"))
    assert len(pq.read_table(out / "reviews.parquet")) == 4


def test_a_failed_review_is_recorded_as_failed_and_tried_again(tmp_path):
    from benchmarks.iclr_fewshot import Shots
    from benchmarks.iclr_review import ReviewStore, status

    store = ReviewStore(tmp_path)
    good = {"paper_id": "a", "Overall": 7, "Decision": "Accept", "Strengths": ["x"], "seconds": 1.0}
    store.save(good)
    store.save({"paper_id": "b", "error": "LLMCallError: 429 Too Many Requests", "stage": "review"})
    store.save({"paper_id": "c", "error": "c.pdf: only 3 characters of text", "stage": "pdf"})
    store.fail("d", "download", "HTTP 500, gave up after 4 attempts")
    # a failure saved as a finished review by an older version counts as a failure, not as done
    pq.write_table(pa.Table.from_pylist([{"paper_id": "e", "Overall": None, "error": "ReviewError: none usable"}]),
                   tmp_path / "reviews" / "e.parquet")
    assert sorted(store.reviewed()) == ["a"]
    state = status(["a", "b", "c", "d", "e", "f"], store, Shots(0, tmp_path, ()))
    assert state["papers"] == {"evaluated": 6, "reviewed": 1, "failed": 2, "skipped": 2, "not_attempted": 1}
    assert [f["paper_id"] for f in state["failed"]] == ["b", "e"]
    assert {s["paper_id"]: s["reason"].split(":")[0] for s in state["skipped"]} == {"c": "pdf", "d": "download"}
    store.save(good | {"paper_id": "b"})  # the next run's retry worked
    assert sorted(store.reviewed()) == ["a", "b"] and not (tmp_path / "failed" / "b.json").exists()
