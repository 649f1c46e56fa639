"""OpenAlex: GET {base_url}/works?search=... The key (required since February 2026) goes in the api_key parameter."""
from __future__ import annotations

import json
import re
from typing import Any

from engine.literature.config import EngineConfig
from engine.literature.errors import RequestFailed
from engine.literature.paper import Paper
from engine.literature.records import BadRecord, Get, integer, items, mapping, parse_each, text

NAME = "openalex"
KEY_REQUIRED = True
MAX_LIMIT = 200  # the API's largest page
_DOI_PREFIX = re.compile(r"^https?://(dx\.)?doi\.org/", re.IGNORECASE)
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.IGNORECASE)
_ARXIV_URL = re.compile(r"arxiv\.org/(?:abs|pdf)/(.+?)(?:v\d+)?(?:\.pdf)?$")


def search(get: Get, cfg: EngineConfig, query: str, limit: int, api_key: str | None) -> list[Paper]:
    params = {"search": query, "per-page": str(min(limit, MAX_LIMIT))}
    if api_key:
        params["api_key"] = api_key
    return parse(get(f"{cfg.base_url}/works", params, {}))


def parse(body: str) -> list[Paper]:
    """Papers of a /works response; RequestFailed('malformed') when the body is not the expected JSON object."""
    try:
        data = json.loads(body)
    except ValueError as e:
        raise RequestFailed("malformed", "not JSON") from e
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise RequestFailed("malformed", "no 'results' list")
    return parse_each(NAME, data["results"], _paper)


def bare_doi(value: str) -> str:
    """'https://doi.org/10.1/x' -> '10.1/x'."""
    return _DOI_PREFIX.sub("", value.strip())


def rebuild_abstract(index: Any) -> str:
    """The abstract text from OpenAlex's inverted index {word: [positions]}."""
    placed: list[tuple[int, str]] = []
    for word, positions in mapping(index, "abstract_inverted_index").items():
        for pos in items(positions, f"positions of {word!r}"):
            placed.append((integer(pos, "word position") or 0, word))
    return " ".join(word for _, word in sorted(placed))


def _paper(r: Any) -> Paper:
    r = mapping(r, "record")
    authors = []
    for a in items(r.get("authorships"), "authorships"):
        name = text(mapping(mapping(a, "authorship").get("author"), "author").get("display_name"), "author name")
        if name:
            authors.append(name)
    location = mapping(r.get("primary_location"), "primary_location")
    venue = text(mapping(location.get("source"), "source").get("display_name"), "venue")
    doi = bare_doi(text(r.get("doi"), "doi")) or None
    landing = text(location.get("landing_page_url"), "landing_page_url")
    arxiv = _ARXIV_DOI.match(doi or "") or _ARXIV_URL.search(landing)
    work_id = text(r.get("id"), "id")
    if not work_id:
        raise BadRecord("id is missing")
    return Paper(id=work_id.rsplit("/", 1)[-1], engine=NAME, title=text(r.get("display_name"), "display_name", True),
                 authors=tuple(authors), venue=venue, year=integer(r.get("publication_year"), "publication_year"),
                 abstract=rebuild_abstract(r.get("abstract_inverted_index")),
                 citation_count=integer(r.get("cited_by_count"), "cited_by_count"), doi=doi,
                 arxiv_id=arxiv.group(1) if arxiv else None,
                 url=landing or (f"https://doi.org/{doi}" if doi else work_id))
