"""A paper found by a literature engine, and the text made from it: a BibTeX entry and a few lines for a prompt."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from typing import Any

# title words that do not make a citation key memorable
_STOPWORDS = frozenset("""a an the on of in for to and or with without from by at as is are be via towards toward
    into onto over under about do does can how what when why which we our their its this that these those""".split())
# venue words of a conference / workshop (matched as whole words, lowercase)
_CONFERENCE_WORDS = frozenset("""conference proceedings workshop symposium meeting congress neurips nips icml iclr
    cvpr iccv eccv acl emnlp naacl eacl coling aaai ijcai kdd colt aistats uai interspeech icassp sigir www wsdm
    corl icra iros miccai wacv bmvc sigmod vldb icde chi uist siggraph""".split())
_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\textbraceleft{}",
                  "}": r"\textbraceright{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "\\": r"\textbackslash{}"}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))
# identifiers written unescaped (styles print url/doi verbatim): kept only when every character is harmless in TeX
_SAFE_URL = re.compile(r"https?://[A-Za-z0-9._~:/?=&+\-]+")
_SAFE_DOI = re.compile(r"10\.\d{4,9}/[A-Za-z0-9._:;()/\-]+")
_SAFE_EPRINT = re.compile(r"[A-Za-z0-9.\-/]+")
PROMPT_ABSTRACT_CHARS = 600


def latex_escape(text: str) -> str:
    """`text` with LaTeX's special characters escaped, braces included (so the result's braces stay balanced)."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], text)


def _ascii_words(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text.replace("ł", "l").replace("Ł", "L").replace("ø", "o")
                                  .replace("Ø", "O").replace("ß", "ss"))
    return re.findall(r"[a-z0-9]+", plain.encode("ascii", "ignore").decode().lower())


def is_arxiv_venue(venue: str) -> bool:
    """True for venues that only say 'it is on arXiv' ('arXiv', 'arXiv.org', 'arXiv (Cornell University)', 'CoRR')."""
    v = venue.strip().lower()
    return "arxiv" in v or v == "corr"


def is_conference_venue(venue: str) -> bool:
    return any(w in _CONFERENCE_WORDS for w in re.findall(r"[a-z]+", venue.lower()))


@dataclass(frozen=True)
class Paper:
    id: str  # the engine's own id (Semantic Scholar paperId, OpenAlex W-id, arXiv id)
    engine: str  # which engine found it
    title: str
    authors: tuple[str, ...] = ()
    venue: str = ""
    year: int | None = None
    abstract: str = ""
    citation_count: int | None = None  # None: the engine does not know (arXiv)
    doi: str | None = None  # bare, e.g. "10.1000/xyz"
    arxiv_id: str | None = None  # without version, e.g. "2201.02177"
    url: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.authors, tuple):  # a list from JSON or a caller
            object.__setattr__(self, "authors", tuple(self.authors))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["authors"] = list(self.authors)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Paper:
        """The inverse of to_dict; keys it does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def bibtex_key(self) -> str:
        """First author's last name + year + first significant title word, lowercase ascii: 'power2022grokking'."""
        name = "".join(_ascii_words(_last_name(self.authors[0]))) if self.authors else ""
        name = name or "anon"
        words = _ascii_words(self.title)
        word = next((w for w in words if w not in _STOPWORDS and not w.isdigit()), words[0] if words else "untitled")
        return f"{name}{self.year if self.year else 'nd'}{word}"

    def entry_type(self) -> str:
        """'misc' for arXiv-only or venue-less papers, 'inproceedings' for conference-like venues, else 'article'."""
        if not self.venue.strip() or is_arxiv_venue(self.venue):
            return "misc"
        return "inproceedings" if is_conference_venue(self.venue) else "article"

    def bibtex(self) -> str:
        """A BibTeX entry; text fields LaTeX-escaped, identifiers kept only when safe to print verbatim."""
        kind = self.entry_type()
        items: list[tuple[str, str]] = [("title", "{" + latex_escape(self.title) + "}")]  # {{..}} keeps its case
        if self.authors:
            items.append(("author", " and ".join(_bib_name(a) for a in self.authors)))
        if kind == "article":
            items.append(("journal", latex_escape(self.venue)))
        elif kind == "inproceedings":
            items.append(("booktitle", latex_escape(self.venue)))
        if self.year:
            items.append(("year", str(self.year)))
        arxiv = self.arxiv_id if self.arxiv_id and _SAFE_EPRINT.fullmatch(self.arxiv_id) else None
        if arxiv:
            items += [("eprint", arxiv), ("archivePrefix", "arXiv")]
            if kind == "misc":
                items.append(("howpublished", f"arXiv preprint arXiv:{arxiv}"))
        if self.doi and _SAFE_DOI.fullmatch(self.doi):
            items.append(("doi", self.doi))
        if self.url and _SAFE_URL.fullmatch(self.url):
            items.append(("url", self.url))
        body = ",\n".join(f"  {k} = {{{v}}}" for k, v in items)
        return f"@{kind}{{{self.bibtex_key},\n{body}\n}}\n"

    def prompt_text(self) -> str:
        """A few lines for a prompt: title, authors, venue and year, citations, abstract cut to ~600 characters."""
        authors = ", ".join(self.authors[:6]) + (", et al." if len(self.authors) > 6 else "")
        where = ", ".join(x for x in (self.venue, str(self.year) if self.year else "") if x) or "venue unknown"
        cites = "citations unknown" if self.citation_count is None else f"{self.citation_count} citations"
        abstract = " ".join(self.abstract.split())
        if len(abstract) > PROMPT_ABSTRACT_CHARS:
            abstract = abstract[:PROMPT_ABSTRACT_CHARS].rsplit(" ", 1)[0] + " ..."
        return "\n".join([f"Title: {self.title}", f"Authors: {authors or 'unknown'}", f"Venue: {where}; {cites}",
                          f"Abstract: {abstract or '(none)'}"])


def _last_name(author: str) -> str:
    """'Alethea Power' -> 'Power'; 'Power, Alethea' -> 'Power'."""
    if "," in author:
        return author.split(",")[0]
    parts = author.split()
    return parts[-1] if parts else ""


def _bib_name(name: str) -> str:
    """One author for BibTeX: escaped, and braced when the name itself contains ' and '."""
    text = latex_escape(" ".join(name.split()))
    return "{" + text + "}" if " and " in text.lower() else text
