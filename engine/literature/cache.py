"""The on-disk cache of answered queries: one JSON file per (normalized query, limit), written atomically, so a
resumed run (a new client over the same folder) never sends a request twice."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from engine.literature.paper import Paper

log = logging.getLogger(__name__)


def normalize(query: str) -> str:
    """The query as the cache sees it: whitespace collapsed, lowercase."""
    return " ".join(query.split()).lower()


class QueryCache:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, query: str, limit: int) -> Path:
        digest = hashlib.sha256(f"{normalize(query)}\n{limit}".encode()).hexdigest()[:32]
        return self.folder / f"{digest}.json"

    def get(self, query: str, limit: int) -> list[Paper] | None:
        """The cached answer, or None (also for an unreadable file, which the next answer overwrites)."""
        f = self.path(query, limit)
        if not f.is_file():
            return None
        try:
            return [Paper.from_dict(p) for p in json.loads(f.read_text())["papers"]]
        except (ValueError, KeyError, TypeError) as e:
            log.warning("literature cache: ignoring unreadable %s (%s)", f, e)
            return None

    def put(self, query: str, limit: int, engine: str, papers: list[Paper]) -> None:
        f = self.path(query, limit)
        record = {"query": normalize(query), "limit": limit, "engine": engine, "papers": [p.to_dict() for p in papers]}
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(record, out, indent=1)
            os.replace(tmp, f)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
