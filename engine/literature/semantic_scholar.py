"""Semantic Scholar Graph API: GET {base_url}/paper/search. The key (optional) goes in the x-api-key header."""
from __future__ import annotations

import json
from typing import Any

from engine.literature.config import EngineConfig
from engine.literature.errors import RequestFailed
from engine.literature.paper import Paper
from engine.literature.records import Get, integer, items, mapping, parse_each, text

NAME = "semantic_scholar"
KEY_REQUIRED = False
MAX_LIMIT = 100  # the API's largest page
FIELDS = "title,authors,venue,year,abstract,citationCount,externalIds,url"


def search(get: Get, cfg: EngineConfig, query: str, limit: int, api_key: str | None) -> list[Paper]:
    params = {"query": query, "limit": str(min(limit, MAX_LIMIT)), "fields": FIELDS}
    headers = {"x-api-key": api_key} if api_key else {}
    return parse(get(f"{cfg.base_url}/paper/search", params, headers))


def parse(body: str) -> list[Paper]:
    """Papers of a search response; RequestFailed('malformed') when the body is not the expected JSON object."""
    try:
        data = json.loads(body)
    except ValueError as e:
        raise RequestFailed("malformed", "not JSON") from e
    if not isinstance(data, dict) or not isinstance(data.get("data") or [], list):
        raise RequestFailed("malformed", "no 'data' list")
    return parse_each(NAME, data.get("data") or [], _paper)


def _paper(r: Any) -> Paper:
    r = mapping(r, "record")
    ids = mapping(r.get("externalIds"), "externalIds")
    authors = tuple(text(mapping(a, "author").get("name"), "author name") for a in items(r.get("authors"), "authors"))
    return Paper(id=text(r.get("paperId"), "paperId"), engine=NAME, title=text(r.get("title"), "title", True),
                 authors=tuple(a for a in authors if a), venue=text(r.get("venue"), "venue"),
                 year=integer(r.get("year"), "year"), abstract=text(r.get("abstract"), "abstract"),
                 citation_count=integer(r.get("citationCount"), "citationCount"),
                 doi=text(ids.get("DOI"), "DOI") or None, arxiv_id=text(ids.get("ArXiv"), "ArXiv") or None,
                 url=text(r.get("url"), "url") or None)
