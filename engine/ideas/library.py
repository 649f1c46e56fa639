"""The literature as the ideas phase uses it: one client for all ideas, results as prompt text and as records,
and a search that stays down once every engine has failed (the other ideas record that instead of waiting)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from engine.errors import EngineError
from engine.llm.fence import fence

log = logging.getLogger(__name__)


class LiteratureDown(Exception):
    """Every literature engine failed; the message is the client's (it names each engine and its status)."""


class Library:
    def __init__(self, client: Callable[[], Any]):
        self._make_client = client  # made on first use: a run that searches nothing needs no client
        self._client: Any = None
        self._lock = threading.Lock()
        self.error: str | None = None

    def search(self, query: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The results as dicts (Paper.to_dict() plus `prompt_text`); LiteratureDown when the search fails."""
        with self._lock:
            if self.error is not None:
                raise LiteratureDown(self.error)
            try:
                if self._client is None:
                    self._client = self._make_client()
            except EngineError as e:
                self._fail(e)
            client = self._client
        try:
            papers = list(client.search(query, limit=limit))
        except EngineError as e:  # LiteratureError: all engines failed (or the client could not be made)
            with self._lock:
                self._fail(e)
        return [p.to_dict() | {"prompt_text": p.prompt_text()} for p in papers]

    def _fail(self, e: Exception) -> None:
        if self.error is None:
            self.error = str(e)
            log.warning("literature search failed, the ideas phase goes on without it: %s", e)
        raise LiteratureDown(self.error) from None


def paper_record(result: dict[str, Any]) -> dict[str, Any]:
    """A result as stored in ideas.json: Paper.to_dict(), without the prompt text."""
    return {k: v for k, v in result.items() if k != "prompt_text"}


def render_results(results: list[dict[str, Any]], numbers: list[int] | None = None) -> str:
    if not results:
        return "(no results)"
    labels = [f"[{n}]" for n in numbers] if numbers else ["-"] * len(results)
    return fence("\n\n".join(f"{label} {r['prompt_text']}" for label, r in zip(labels, results)), "search results")
