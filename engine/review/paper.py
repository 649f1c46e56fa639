"""Paper text from a PDF (pypdf), cleaned for a reviewer: hyphenation across lines joined, ligatures
expanded, running headers, footers and page numbers removed."""
from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from engine.errors import EngineError
from engine.inputs import read_bytes

LIGATURES = {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "st",
             "\ufb06": "st", "\u00ad": ""}
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_PAGE_NUMBER = re.compile(r"^\s*(page\s*)?\d{1,4}(\s*(of|/)\s*\d{1,4})?\s*$", re.IGNORECASE)


class PaperError(EngineError):
    pass


def load_paper(pdf_path: str | Path, num_pages: int | None = None, min_size: int = 100) -> str:
    """The text of the first `num_pages` pages (all when None); PaperError naming the file when the PDF
    cannot be read or holds less than `min_size` characters of text (a scanned paper, say)."""
    path = Path(pdf_path)
    try:
        data = read_bytes(path)  # missing, a folder, not readable: named as such
    except EngineError as e:
        raise PaperError(str(e)) from None
    if not data.startswith(b"%PDF-") and b"%PDF-" not in data[:1024]:
        raise PaperError(f"{path}: not a PDF (it does not start with %PDF-)")
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages[:num_pages]]
    except (PdfReadError, ValueError) as e:
        raise PaperError(f"{path}: cannot read the PDF: {e}") from None
    except Exception as e:  # pypdf meets a broken file with many kinds of error: each is this file's fault
        raise PaperError(f"{path}: cannot read the PDF ({type(e).__name__}: {e})") from None
    text = clean_pages(pages)
    if len(text) < min_size:
        raise PaperError(f"{path}: only {len(text)} characters of text (fewer than {min_size}); is it a scanned "
                         "PDF without a text layer? Run OCR on it first (e.g. ocrmypdf)")
    return text


def clean_pages(pages: list[str]) -> str:
    pages = [_ligatures(p) for p in pages]
    repeated = _running_lines(pages)
    cleaned = []
    for page in pages:
        lines = [ln for ln in page.splitlines()
                 if ln.strip() not in repeated and not _PAGE_NUMBER.match(ln)]
        cleaned.append("\n".join(lines))
    text = "\n\n".join(cleaned)
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _ligatures(text: str) -> str:
    for lig, plain in LIGATURES.items():
        text = text.replace(lig, plain)
    return text


def _running_lines(pages: list[str]) -> set[str]:
    """Lines at the top or bottom of most pages (headers and footers), when there are 3 pages or more."""
    if len(pages) < 3:
        return set()
    counts: Counter[str] = Counter()
    for page in pages:
        lines = [ln.strip() for ln in page.splitlines() if ln.strip()]
        counts.update(set(lines[:2] + lines[-2:]))
    return {line for line, n in counts.items() if n >= max(3, 0.6 * len(pages)) and len(line) < 120}
