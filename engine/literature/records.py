"""Checked reads of one engine record: a record with a missing title or a wrong type is skipped, not fatal."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from engine.literature.paper import Paper

log = logging.getLogger(__name__)

# one GET: (url, query parameters, headers) -> response body; raises RequestFailed (the client retries inside it)
Get = Callable[[str, dict[str, str], dict[str, str]], str]


class BadRecord(ValueError):
    """One record of a response does not have the expected shape."""


def text(value: Any, what: str, required: bool = False) -> str:
    """A string field ('' when absent); BadRecord when it is not a string, or empty and required."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadRecord(f"{what} is {type(value).__name__}, not a string")
    value = " ".join(value.split())
    if required and not value:
        raise BadRecord(f"{what} is missing")
    return value


def integer(value: Any, what: str) -> int | None:
    """An int field (None when absent); BadRecord on another type (bool included)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRecord(f"{what} is {type(value).__name__}, not an integer")
    return value


def mapping(value: Any, what: str) -> dict[str, Any]:
    """A JSON object field ({} when absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRecord(f"{what} is {type(value).__name__}, not an object")
    return value


def items(value: Any, what: str) -> list[Any]:
    """A JSON array field ([] when absent)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRecord(f"{what} is {type(value).__name__}, not a list")
    return value


def parse_each(engine: str, records: Iterable[Any], parse: Callable[[Any], Paper]) -> list[Paper]:
    """`parse` applied to every record; records that raise BadRecord are left out (logged at DEBUG)."""
    papers, skipped = [], 0
    for record in records:
        try:
            papers.append(parse(record))
        except BadRecord as e:
            skipped += 1
            log.debug("%s: skipped a malformed record: %s", engine, e)
    if skipped:
        log.info("%s: skipped %d malformed record(s)", engine, skipped)
    return papers
