"""arXiv API: GET {base_url}/query?search_query=all:<query>, an Atom feed. No key; arXiv asks for one request
every 3 s (the configured requests_per_s). Citation counts are unknown (None)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from engine.literature.config import EngineConfig
from engine.literature.errors import RequestFailed
from engine.literature.paper import Paper
from engine.literature.records import BadRecord, Get, parse_each, text

NAME = "arxiv"
KEY_REQUIRED = False
NS = {"atom": "http://www.w3.org/2005/Atom", "arxiv": "http://arxiv.org/schemas/atom"}
_ID = re.compile(r"arxiv\.org/abs/(.+?)(?:v\d+)?$")
_QUERY_SYNTAX = re.compile(r'[():"\[\]]')  # characters arXiv's query parser would read as syntax


def search(get: Get, cfg: EngineConfig, query: str, limit: int, api_key: str | None) -> list[Paper]:
    terms = " ".join(_QUERY_SYNTAX.sub(" ", query).split())
    params = {"search_query": f"all:{terms}", "start": "0", "max_results": str(limit)}
    return parse(get(f"{cfg.base_url}/query", params, {}))


def parse(body: str) -> list[Paper]:
    """Papers of an Atom feed; RequestFailed('malformed') when the body is not an Atom feed."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise RequestFailed("malformed", "not XML") from e
    if root.tag != f"{{{NS['atom']}}}feed":
        raise RequestFailed("malformed", f"root element {root.tag!r} is not an Atom feed")
    entries = [e for e in root.findall("atom:entry", NS) if "/api/errors" not in (e.findtext("atom:id", "", NS))]
    return parse_each(NAME, entries, _paper)


def _paper(entry: ET.Element) -> Paper:
    m = _ID.search(text(entry.findtext("atom:id", None, NS), "id", True))
    if not m:
        raise BadRecord("id is not an arXiv abstract URL")
    published = text(entry.findtext("atom:published", None, NS), "published")
    year = int(published[:4]) if re.match(r"\d{4}", published) else None
    authors = [text(a.findtext("atom:name", None, NS), "author name") for a in entry.findall("atom:author", NS)]
    return Paper(id=m.group(1), engine=NAME, title=text(entry.findtext("atom:title", None, NS), "title", True),
                 authors=tuple(a for a in authors if a), venue=text(entry.findtext("arxiv:journal_ref", None, NS),
                                                                    "journal_ref"),
                 year=year, abstract=text(entry.findtext("atom:summary", None, NS), "summary"), citation_count=None,
                 doi=text(entry.findtext("arxiv:doi", None, NS), "doi") or None, arxiv_id=m.group(1),
                 url=f"https://arxiv.org/abs/{m.group(1)}")
