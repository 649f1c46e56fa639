"""Each engine's request and parsing, against the fake server speaking its wire format."""
from __future__ import annotations

import json

import pytest

from engine.literature import LiteratureError
from engine.literature import arxiv as arxiv_engine
from engine.literature.errors import RequestFailed
from engine.literature.openalex import bare_doi, rebuild_abstract
from tests.literature.fake_scholar_server import SAMPLE, paper, render

ABSTRACT = SAMPLE["abstract"]


def test_semantic_scholar_request_and_parsing(server, make_client):
    client = make_client(engines=["semantic_scholar"])
    papers = client.search("grokking", limit=7)
    (req,) = server.requests
    assert req.params == {"query": "grokking", "limit": "7", "fields": "title,authors,venue,year,abstract,"
                          "citationCount,externalIds,url"}
    assert req.headers["x-api-key"] == "s2-key"
    (p,) = papers
    assert (p.engine, p.id, p.title, p.year, p.citation_count) == ("semantic_scholar", "s2id0", SAMPLE["title"],
                                                                   2022, 350)
    assert p.authors[0] == "Alethea Power" and len(p.authors) == 5
    assert (p.doi, p.arxiv_id, p.venue, p.abstract) == (SAMPLE["doi"], "2201.02177", SAMPLE["venue"], ABSTRACT)


def test_semantic_scholar_without_key_sends_no_header(server, make_client):
    make_client(env={}, engines=["semantic_scholar"]).search("grokking")
    assert "x-api-key" not in server.requests[0].headers


def test_openalex_rebuilds_abstract_and_strips_doi(server, make_client):
    client = make_client(engines=["openalex"])
    (p,) = client.search("grokking", limit=4)
    (req,) = server.requests
    assert req.params == {"search": "grokking", "per-page": "4", "api_key": "oa-key"}
    assert p.abstract == ABSTRACT  # rebuilt from the inverted index
    assert p.doi == "10.48550/arXiv.2201.02177" and p.arxiv_id == "2201.02177"
    assert (p.id, p.venue, p.year, p.citation_count) == ("W4000", SAMPLE["venue"], 2022, 350)
    assert p.bibtex_key == "power2022grokking" and "@inproceedings{power2022grokking," in p.bibtex()


def test_openalex_helpers():
    assert bare_doi("https://doi.org/10.1038/nature14539") == "10.1038/nature14539"
    assert bare_doi("http://dx.doi.org/10.1/x") == "10.1/x"
    assert rebuild_abstract({"world": [1, 3], "hello": [0], "again": [2]}) == "hello world again world"
    assert rebuild_abstract(None) == ""


def test_arxiv_parsing_drops_the_version(server, make_client):
    server.default["arxiv"] = {"papers": [SAMPLE, paper("Second   paper\n title", arxiv="hep-th/9901001", doi=None,
                                                        journal_ref="Phys. Rev. D 76, 013009 (2007)")]}
    client = make_client(engines=["arxiv"])
    first, second = client.search("grokking (small): data", limit=5)
    (req,) = server.requests
    assert req.params == {"search_query": "all:grokking small data", "start": "0", "max_results": "5"}
    assert (first.arxiv_id, first.id, first.year, first.citation_count) == ("2201.02177", "2201.02177", 2022, None)
    assert first.abstract == ABSTRACT and first.authors[-1] == "Vedant Misra" and first.venue == ""
    assert first.doi == SAMPLE["doi"] and first.url == "https://arxiv.org/abs/2201.02177"
    assert first.bibtex().startswith("@misc{")
    assert (second.arxiv_id, second.title, second.doi) == ("hep-th/9901001", "Second paper title", None)
    assert second.bibtex().startswith("@article{")


def test_arxiv_error_entry_and_bad_xml():
    error_feed = ('<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/api/errors#bad</id>'
                  '<title>Error</title><summary>malformed query</summary></entry></feed>')
    assert arxiv_engine.parse(error_feed) == []
    with pytest.raises(RequestFailed) as e:
        arxiv_engine.parse("<html>oops")
    assert e.value.status == "malformed"
    with pytest.raises(RequestFailed):
        arxiv_engine.parse("<html></html>")


@pytest.mark.parametrize("engine", ["semantic_scholar", "openalex"])
def test_malformed_records_are_skipped_one_by_one(server, make_client, engine):
    valid = json.loads(render(engine, {"papers": [SAMPLE]})[0])["data" if engine == "semantic_scholar" else "results"]
    title_key = "title" if engine == "semantic_scholar" else "display_name"
    authors_key = "authors" if engine == "semantic_scholar" else "authorships"
    year_key = "year" if engine == "semantic_scholar" else "publication_year"
    bad = [{**valid[0], title_key: None}, {**valid[0], title_key: 5}, {**valid[0], authors_key: "Power"},
           {**valid[0], year_key: "2022"}, "not a record", None]
    server.default[engine] = {"records": [*bad, valid[0]]}
    papers = make_client(engines=[engine]).search("grokking")
    assert [p.title for p in papers] == [SAMPLE["title"]]


def test_arxiv_entry_without_title_is_skipped(server, make_client):
    server.default["arxiv"] = {"papers": [paper(""), paper("Kept")]}
    assert [p.title for p in make_client(engines=["arxiv"]).search("x")] == ["Kept"]


@pytest.mark.parametrize("engine,body", [("semantic_scholar", "not json"), ("semantic_scholar", '{"data": 3}'),
                                         ("openalex", "[]"), ("arxiv", "<feed")])
def test_malformed_body_fails_that_engine(server, make_client, engine, body):
    server.default[engine] = {"body": body}
    with pytest.raises(LiteratureError) as e:
        make_client(engines=[engine]).search("grokking")
    assert f"{engine}: malformed" in str(e.value)
    assert server.count(engine) == 1  # not retried


def test_empty_answer_is_an_answer(server, make_client):
    server.default["semantic_scholar"] = {"body": '{"total": 0, "offset": 0}'}
    assert make_client().search("nothing matches this") == []
    assert server.count("openalex") == server.count("arxiv") == 0
