"""The few-shot examples of an ICLR benchmark run: exactly as many as asked (or an error), none of them one of
the papers being evaluated (by OpenReview id and by title), and a copy of the ones used next to the results."""
from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from engine.errors import EngineError
from engine.review.paper import clean_pages
from engine.review.reviewer import FewshotExample, guess_title, load_fewshot

log = logging.getLogger("iclr_review")
MIN_TITLE = 16  # shorter normalized titles match too much to tell anything


@dataclass(frozen=True)
class Shots:
    asked: int
    folder: Path
    examples: tuple[FewshotExample, ...]

    def summary(self) -> dict[str, Any]:
        return {"asked": self.asked, "used": len(self.examples), "examples": [e.name for e in self.examples],
                "folder": str(self.folder)}


def choose_shots(folder: Path, asked: int, allow_fewer: bool) -> Shots:
    """The first `asked` examples of `folder` (v1 layout); fewer there is an error unless `allow_fewer`."""
    if asked <= 0:
        return Shots(0, folder, ())
    examples = load_fewshot(folder, asked) if folder.is_dir() else []
    if len(examples) < asked and not allow_fewer:
        raise EngineError(
            f"--num_fs_examples {asked} asked for, but {folder} holds {len(examples)} few-shot example(s) "
            "(<name>.txt or <name>.pdf next to <name>.json). Point --fewshot-dir at a folder in that layout (for "
            "instance the original AI Scientist's fewshot_examples folder, or one made by scripts/build_fewshot.py),"
            " pass --num_fs_examples 0 for zero-shot, or --allow-fewer-shots to go on with what there is")
    return Shots(asked, folder, tuple(examples[:asked]))


def check_ids(shots: Shots, paper_ids: list[str]) -> None:
    """Refuses an example whose file name or JSON names one of the evaluated papers."""
    evaluated = set(paper_ids)
    for ex in shots.examples:
        hit = ex.paper_id if ex.paper_id in evaluated else next((p for p in evaluated if p in ex.name), None)
        if hit:
            raise EngineError(f"few-shot example {ex.name} ({shots.folder}) is paper {hit}, one of the papers "
                              "being evaluated: the reviewer would see its answer. Use another example")


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def first_page(pdf: Path) -> str:
    try:
        return clean_pages([PdfReader(str(pdf)).pages[0].extract_text() or ""])
    except (OSError, PdfReadError, ValueError, IndexError):
        return ""  # an unreadable PDF is reported when it is reviewed


def check_titles(shots: Shots, pdfs: dict[str, Path]) -> None:
    """Refuses an example whose title opens one of the evaluated papers' first page, or the reverse."""
    if not shots.examples:
        return
    log.info("checking %d paper(s) against the few-shot examples' titles", len(pdfs))
    examples = [(ex, _key(ex.title or ""), _key(ex.paper[:1500])) for ex in shots.examples]
    for pid, pdf in pdfs.items():
        page = first_page(pdf)
        head, title = _key(page)[:600], _key(guess_title(page) or "")
        for ex, ex_title, ex_head in examples:
            if (len(ex_title) >= MIN_TITLE and ex_title in head) or (len(title) >= MIN_TITLE and title in ex_head):
                raise EngineError(f"few-shot example {ex.name} ({shots.folder}) has the title of paper {pid} "
                                  f"({ex.title!r}), one of the papers being evaluated: the reviewer would see its "
                                  "answer. Use another example")


def write_used(shots: Shots, dest: Path) -> Path:
    """The examples used, as <name>.txt + <name>.json in `dest` (what the reviewers read, and a record)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for ex in shots.examples:
        (dest / f"{ex.name}.txt").write_text(ex.paper)
        meta = {"paper_id": ex.paper_id, "title": ex.title, "source": str(shots.folder)}
        (dest / f"{ex.name}.json").write_text(json.dumps(meta | {"review": ex.review}, indent=2) + "\n")
    return dest
