"""A loopback HTTP server speaking the Semantic Scholar, OpenAlex and arXiv search wire formats.

Each engine lives under its own prefix (base_url(engine)): /semantic_scholar/paper/search,
/openalex/works, /arxiv/query. A request is answered by the next scripted reply of its engine
(server.script[engine]), else by server.default[engine]. A reply is a dict:
    {"papers": [paper, ...]}        results in the engine's own format (paper: a dict like SAMPLE below)
    {"records": [...]}              raw S2 `data` / OpenAlex `results` items (for malformed records)
    {"body": "...", "status": 200}  a raw body (malformed JSON / XML)
    {"status": 429, "retry_after": "2"}   an error status, optionally with Retry-After
    {"delay": 1.5, ...}             sleep first (a slow response)
"""
from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

Reply = dict[str, Any]
PATHS = {"semantic_scholar": "/paper/search", "openalex": "/works", "arxiv": "/query"}

SAMPLE = {"title": "Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets",
          "authors": ["Alethea Power", "Yuri Burda", "Harri Edwards", "Igor Babuschkin", "Vedant Misra"],
          "venue": "ICLR 2022 MATH-AI Workshop", "year": 2022, "citations": 350, "arxiv": "2201.02177",
          "doi": "10.48550/arXiv.2201.02177",
          "abstract": "In this paper we propose to study generalization of neural networks on small algorithmically "
                      "generated datasets."}


def paper(title: str, **overrides: Any) -> dict[str, Any]:
    return {**SAMPLE, "title": title, **overrides}


class Request:
    def __init__(self, engine: str, params: dict[str, str], headers: dict[str, str]):
        self.engine, self.params, self.headers, self.time = engine, params, headers, time.monotonic()


class FakeScholarServer:
    def __init__(self) -> None:
        self.script: dict[str, list[Reply]] = defaultdict(list)
        self.default: dict[str, Reply] = {name: {"papers": [SAMPLE]} for name in PATHS}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urlsplit(self.path)
                engine = url.path.strip("/").split("/", 1)[0]
                if engine not in PATHS or url.path != f"/{engine}{PATHS[engine]}":
                    return self._send(404, "not found", "text/plain")
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                with server._lock:
                    server.requests.append(Request(engine, params, {k.lower(): v for k, v in self.headers.items()}))
                    script = server.script[engine]
                    reply = script.pop(0) if script else server.default[engine]
                time.sleep(reply.get("delay", 0))
                status = reply.get("status", 200)
                if "body" in reply:
                    return self._send(status, reply["body"], "application/json")
                if status != 200:
                    headers = {"Retry-After": reply["retry_after"]} if "retry_after" in reply else {}
                    return self._send(status, json.dumps({"message": f"fake error {status}"}), "application/json",
                                      headers)
                body, kind = render(engine, reply)
                self._send(200, body, kind)

            def _send(self, status: int, body: str, kind: str, headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    def base_url(self, engine: str) -> str:
        return f"{self.url}/{engine}"

    def count(self, engine: str) -> int:
        with self._lock:
            return sum(r.engine == engine for r in self.requests)

    def __enter__(self) -> FakeScholarServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def render(engine: str, reply: Reply) -> tuple[str, str]:
    papers = reply.get("papers", [])
    if engine == "semantic_scholar":
        data = reply.get("records", [_s2(i, p) for i, p in enumerate(papers)])
        return json.dumps({"total": len(data), "offset": 0, "data": data}), "application/json"
    if engine == "openalex":
        results = reply.get("records", [_openalex(i, p) for i, p in enumerate(papers)])
        return json.dumps({"meta": {"count": len(results)}, "results": results}), "application/json"
    return _atom(papers), "application/atom+xml"


def _s2(i: int, p: dict[str, Any]) -> dict[str, Any]:
    return {"paperId": f"s2id{i}", "title": p["title"], "authors": [{"authorId": str(j), "name": a}
                                                                   for j, a in enumerate(p["authors"])],
            "venue": p["venue"], "year": p["year"], "abstract": p["abstract"], "citationCount": p["citations"],
            "externalIds": {"DOI": p["doi"], "ArXiv": p["arxiv"], "CorpusId": 1000 + i},
            "url": f"https://www.semanticscholar.org/paper/s2id{i}"}


def _openalex(i: int, p: dict[str, Any]) -> dict[str, Any]:
    index: dict[str, list[int]] = defaultdict(list)
    for pos, word in enumerate(p["abstract"].split()):
        index[word].append(pos)
    return {"id": f"https://openalex.org/W{4000 + i}", "display_name": p["title"], "title": p["title"],
            "authorships": [{"author_position": "first", "author": {"id": f"A{j}", "display_name": a}}
                            for j, a in enumerate(p["authors"])],
            "primary_location": {"source": {"display_name": p["venue"]},
                                 "landing_page_url": f"https://doi.org/{p['doi']}" if p["doi"] else None},
            "publication_year": p["year"], "abstract_inverted_index": dict(index), "cited_by_count": p["citations"],
            "doi": f"https://doi.org/{p['doi']}" if p["doi"] else None,
            "ids": {"openalex": f"https://openalex.org/W{4000 + i}"}}


def _atom(papers: list[dict[str, Any]]) -> str:
    entries = []
    for p in papers:
        authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in p["authors"])
        journal = f"<arxiv:journal_ref>{escape(p['journal_ref'])}</arxiv:journal_ref>" if p.get("journal_ref") else ""
        doi = f"<arxiv:doi>{escape(p['doi'])}</arxiv:doi>" if p.get("doi") else ""
        entries.append(f"""<entry><id>http://arxiv.org/abs/{p['arxiv']}v2</id>
<updated>{p['year']}-02-01T00:00:00Z</updated><published>{p['year']}-01-06T00:00:00Z</published>
<title>{escape(p['title'])}</title><summary>  {escape(p['abstract'])}
</summary>{authors}{doi}{journal}
<link href="http://arxiv.org/abs/{p['arxiv']}v2" rel="alternate" type="text/html"/>
<arxiv:primary_category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/></entry>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"
 xmlns:arxiv="http://arxiv.org/schemas/atom">
<title>arXiv Query</title><id>http://arxiv.org/api/fake</id>
<opensearch:totalResults>{len(papers)}</opensearch:totalResults>
{''.join(entries)}</feed>"""
