"""Paper text from a PDF (pypdf) for a reviewer: only what a reader sees on the pages (engine/review/visible.py),
cleaned (hyphenation across lines joined, ligatures expanded, running headers, footers and page numbers removed),
with what was kept from the model listed: hidden text (drawn invisibly, or in places a reader does not see:
annotations, form fields, metadata that addresses a model) and visible passages that read as instructions to it.

Bad input (not a PDF, encrypted, too many pages, no text layer) is one PaperError line naming the file, raised
before anything is sent to a model."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.errors import DependencyError, PyPdfError
from pypdf.generic import NameObject

from engine.errors import EngineError
from engine.review.suspicious import Suspicious, find_instructions
from engine.review.visible import WHY_TINY, page_text

LIGATURES = {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "st",
             "\ufb06": "st", "\u00ad": ""}
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_PAGE_NUMBER = re.compile(r"^\s*(page\s*)?\d{1,4}(\s*(of|/)\s*\d{1,4})?\s*$", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}")
MAX_PAGES = 100  # a longer PDF is refused unless the caller asks for its first pages only
TINY_WORDS = 8  # tiny text (figure labels, mostly) is reported when a line of it is a sentence this long
PASSAGE_CHARS = 1000  # hidden text shown in a report, per page and reason
_PDF_ERRORS = (OSError, PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError)


class PaperError(EngineError):
    pass


@dataclass(frozen=True)
class Hidden:
    """Text in the PDF that a reader does not see; it never reaches the model."""
    page: int | None  # 1-based; None for the document's metadata and form fields
    text: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"page": self.page, "text": self.text, "why": self.why}


@dataclass(frozen=True)
class PaperText:
    text: str  # what the reviewer model reads
    hidden: list[Hidden]
    suspicious: list[Suspicious]
    pages: int  # pages read


def load_paper(pdf_path: str | Path, num_pages: int | None = None, min_size: int = 100) -> str:
    """The visible text of the first `num_pages` pages (all when None); PaperError naming the file when the PDF
    cannot be read, is encrypted, has more than MAX_PAGES pages (and no `num_pages`) or holds less than
    `min_size` characters of text (a scanned paper, say). read_paper also says what was left out, and why."""
    return read_paper(pdf_path, num_pages, min_size).text


def read_paper(pdf_path: str | Path, num_pages: int | None = None, min_size: int = 100,
               max_pages: int = MAX_PAGES) -> PaperText:
    """The paper's visible text, its hidden text and its suspicious passages (see the module's docstring)."""
    path = Path(pdf_path)
    reader = _open(path)
    try:
        total = len(reader.pages)
        if num_pages is None and total > max_pages:
            raise PaperError(f"{path}: {total} pages, more than the {max_pages} a review reads; review its first "
                             "pages only (--pages N) or split the PDF")
        pages, hidden = [], []
        for number, page in enumerate(reader.pages[:num_pages], start=1):
            visible, invisible = page_text(page)
            pages.append(visible)
            hidden += [Hidden(number, _passage(text), why) for why, text in invisible.items()
                       if _worth_reporting(why, text)]
            hidden += _annotations(page, number)
        hidden += _fields(reader) + _metadata(reader)
    except PaperError:
        raise
    except _PDF_ERRORS as e:
        raise PaperError(f"{path}: cannot read the PDF: {type(e).__name__}: {e}") from None
    text = clean_pages(pages)
    if len(text) < min_size:
        raise PaperError(f"{path}: only {len(text)} characters of visible text (fewer than {min_size}); is it a "
                         "scanned PDF without a text layer? Run OCR on it first (e.g. ocrmypdf): the reviewer reads "
                         "text, and a review from the page images alone would need a vision model")
    suspicious = [s for number, page in enumerate(pages, start=1)
                  for s in find_instructions(_HYPHEN_BREAK.sub(r"\1\2", _ligatures(page)), number)]
    return PaperText(text, hidden, suspicious, len(pages))


def _open(path: Path) -> PdfReader:
    try:
        with path.open("rb") as f:
            head = f.read(1024)
    except OSError as e:
        raise PaperError(f"{path}: cannot read the file: {e.strerror or e}") from None
    if b"%PDF-" not in head:
        raise PaperError(f"{path}: not a PDF (it does not begin with %PDF-; it begins with {head[:16]!r})")
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise PaperError(f"{path}: the PDF is encrypted with a password; decrypt it first (e.g. qpdf "
                             "--decrypt --password=PASSWORD in.pdf out.pdf)")
    except DependencyError as e:
        raise PaperError(f"{path}: the PDF is encrypted and pypdf needs a crypto package to open it ({e}); "
                         "pip install cryptography") from None
    except PaperError:
        raise
    except _PDF_ERRORS as e:
        raise PaperError(f"{path}: cannot read the PDF: {type(e).__name__}: {e}") from None
    return reader


def _passage(text: str) -> str:
    lines = [" ".join(line.split()) for line in _ligatures(text).splitlines()]
    passage = "\n".join(line for line in lines if line)
    return passage if len(passage) <= PASSAGE_CHARS else passage[:PASSAGE_CHARS] + " [...]"


def _worth_reporting(why: str, text: str) -> bool:
    """Hidden text with a word in it is reported; tiny text only when a line of it is a sentence or an instruction
    (small labels of scaled-down figures are tiny too: they are left out of the text, not reported)."""
    if why != WHY_TINY:
        return bool(_WORD.search(text))
    return any(len(_WORD.findall(line)) >= TINY_WORDS for line in text.splitlines()) or bool(find_instructions(text))


def _text(value: Any) -> str:
    """A PDF string as text; names (/Off, /Yes) and other objects give ''."""
    value = value.get_object() if hasattr(value, "get_object") else value
    return "" if isinstance(value, NameObject) or not isinstance(value, str) else " ".join(value.split())


def _annotations(page: Any, number: int) -> list[Hidden]:
    """The text of the page's annotations (notes, pop-ups' parents, free text, links' tooltips): not part of the
    page's text. Form widgets are read as fields."""
    found = []
    for ref in page.get("/Annots") or []:
        annot = ref.get_object()
        kind = str(annot.get("/Subtype", "/Annot"))
        if kind in ("/Popup", "/Widget"):
            continue
        text = _text(annot.get("/Contents")) or _text(annot.get("/RC"))
        if _WORD.search(text):
            found.append(Hidden(number, text[:PASSAGE_CHARS], f"annotation ({kind.lstrip('/')}), not part of the "
                                                              "page's text"))
    return found


def _fields(reader: PdfReader) -> list[Hidden]:
    found = []
    for name, field in (reader.get_fields() or {}).items():
        for key, what in (("/V", "value"), ("/TU", "tooltip")):
            text = _text(field.get(key))
            if _WORD.search(text):
                found.append(Hidden(None, f"{name}: {text}"[:PASSAGE_CHARS], f"form field {what}"))
    return found


def _metadata(reader: PdfReader) -> list[Hidden]:
    """Metadata (the document information and the XMP packet) that addresses a model. Titles, authors and
    keywords are ordinary and are not reported."""
    entries = [(str(k), _text(v)) for k, v in (reader.metadata or {}).items()]
    xmp = reader.trailer["/Root"].get("/Metadata")
    if xmp is not None:
        raw = xmp.get_object().get_data().decode("utf-8", "replace")
        entries.append(("XMP", " ".join(re.sub(r"<[^>]*>", " ", raw).split())))
    return [Hidden(None, f"{key}: {text}"[:PASSAGE_CHARS], f"document metadata ({key.lstrip('/')}) addressed to a "
                                                             "model")
            for key, text in entries if text and find_instructions(text)]


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
