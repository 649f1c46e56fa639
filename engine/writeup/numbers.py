"""Every number a paper states in its abstract, results, conclusion and tables, read from the LaTeX: integers,
decimals, percentages (`12\\%`, `12 percent`), thousands separators (`1,442`, `1{,}442`, `1\\,442`), multipliers
(`2x`, `4.86×`, `4.86$\\times$`, `3-fold`), scientific notation (`1e-3`, `3 \\times 10^{-4}`), and numbers in
words where they state results ("twice as fast", "halved", "three seeds").

Each sentence keeps what names its quantities and scopes besides its own words (a table cell its column header,
row label and caption; a paragraph its heading) and the sentence before it. Labels are not quantities: Figure 2,
Table 1, Section 3 and years are skipped, and node 3 / step 3 / seed 1 are marked as identifiers."""
from __future__ import annotations

import re
from dataclasses import dataclass

from engine.writeup.latex import body_of
from engine.writeup.terms import COUNTED, MULTIPLIER_WORDS, NUMBER_WORDS, REFERENCE_WORDS, canon

CHECKED_SECTION = re.compile(r"abstract|result|experiment|evaluation|ablation|conclusion|discussion|summary|finding",
                             re.IGNORECASE)
_HEADING = re.compile(r"\\(section|subsection|subsubsection|paragraph)\*?\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_TABLE_ENV = re.compile(r"\\begin\{(table\*?)\}(.*?)\\end\{\1\}", re.DOTALL)
_TABULAR = re.compile(r"\\begin\{(tabular\*?|tabularx|longtable)\}(?:\[[^\]]*\])?(?:\{(?:[^{}]|\{[^{}]*\})*\})+"
                      r"(.*?)\\end\{\1\}", re.DOTALL)
_CAPTION = re.compile(r"\\caption\*?\s*(?:\[[^\]]*\])?\{((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}")
_NUM = re.compile(r"(?P<body>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?P<exp>e[-+]?\d+)?")
_COMPARE_NEXT = r"(?=\s+(?:as|more|less|fewer|higher|lower|faster|slower|larger|smaller|longer|shorter|the|over)\b)"
_SUFFIX = re.compile(r"\s?(?P<pct>%|percent\b|per cent\b)|(?P<mul>\s?[x×](?![A-Za-z0-9])|-?fold\b)|(?P<times>\s+times)"
                     + _COMPARE_NEXT)
_WORD_NUM = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b(?P<mul>[ -]?fold\b|\s+times" + _COMPARE_NEXT + ")?",
                       re.IGNORECASE)
_WORD_MUL = re.compile(r"\b(" + "|".join(MULTIPLIER_WORDS) + r")\b", re.IGNORECASE)
_ABBREV = re.compile(r"\b(e\.g|i\.e|et al|vs|cf|approx|resp|Fig|Figs|Eq|Eqs|Sec|Tab|No|etc)\.", re.IGNORECASE)
_STRIP = [  # (pattern, replacement), in order, before numbers are read
    (re.compile(r"\\(?:ref|autoref|cref|Cref|eqref|pageref|nameref|vref|label|url|includegraphics|cite\w*|nocite|"
                r"Cite\w*|input|include|bibliography\w*|graphicspath|vspace|hspace|setlength|addtolength|"
                r"fontsize|rule|cmidrule|cline|resizebox|scalebox|renewcommand|newcommand|href|small|"
                r"footnotesize|centering|toprule|midrule|bottomrule|hline|caption|maketitle)\*?\s*(?:\([^)]*\))?"
                r"(?:\[[^\]]*\]\s*)*(?:\{[^{}]*\}\s*){0,2}"), " "),
    (re.compile(r"\\[A-Za-z]+\s*=\s*-?[\d.]+[a-z]*"), " "),  # TeX assignments: \hyphenpenalty=10000
    (re.compile(r"\\(?:multicolumn|multirow)\s*\{[^{}]*\}\s*\{[^{}]*\}"), " "),
    (re.compile(r"\\(?:begin|end)\{[^}]*\}(?:\[[^\]]*\])?(?:\{[^{}]*\})?"), " "),
    (re.compile(r"\d*\.?\d+\s*(?:pt|em|ex|cm|mm|bp|pc|sp|mu|in)\b"), " "),
    (re.compile(r"\d*\.?\d+\s*\\(?:line|text|column|paper)(?:width|height)|\\hsize|\\baselineskip"), " "),
    (re.compile(r"(\d+(?:\.\d+)?)\s*\$?\s*(?:\\times|\\cdot|×)\s*10\^\{?\s*([-−]?\d+)\s*\}?"), r"\1e\2"),
    (re.compile(r"(?<![\d.])10\^\{?\s*([-−]?\d+)\s*\}?"), r"1e\1"),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"(?<=\d)\\,(?=\d{3}(?!\d))"), ""),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\\\$"), " USD "),
    (re.compile(r"\\(?:times|texttimes)\b"), "×"),
    (re.compile(r"\\(?:pm|mp)\b|\\textpm\b"), " ± "),
    (re.compile(r"\\textminus\b|−"), "-"),
    (re.compile(r"\\(?:approx|sim)\b"), " ≈ "),
    (re.compile(r"\\(?:rightarrow|to)\b|->|→"), " to "),
    (re.compile(r"\\_"), "_"),
    (re.compile(r"\^\{[^{}]*\}|\^\w"), " "),  # superscripts left in math
    (re.compile(r"\\\\"), " "),
    (re.compile(r"\\[A-Za-z]+\*?"), " "),  # remaining command names (their arguments stay)
    (re.compile(r"[{}$~]|\\[,;! ]"), " "),
]


@dataclass
class Sentence:
    section: str  # "abstract", "section 'Results'", "table in section 'Method'"
    text: str  # plain text, as the numbers were read
    context: str = ""  # what else names its quantities and scopes: heading, caption, column header, row label
    column: str = ""  # a table cell's column header
    previous: Sentence | None = None  # the sentence before it in its paragraph
    table: bool = False


@dataclass(frozen=True)
class Mention:
    text: str  # as written, after the LaTeX is read: "4.86×", "1,442", "12%", "twice"
    value: float  # signed
    decimals: int  # digits after the point (0 for an integer or a word)
    exponent: int  # the power of ten written (1e-3: -3), else 0
    kind: str  # number | percent | ratio
    start: int
    end: int
    hint: str = ""  # spread (after ±) | interval (a bound of a confidence interval) | n (150 ± 0 (2)) | ""
    word: bool = False  # written in words
    word_sign: int = 0  # the direction a multiplier word carries itself (halved: -1, doubled: +1)
    label: str = ""  # node | seed: the number names one ("node 3", "seed 1"); reference (Figure 2); year


def checked_sentences(tex: str) -> list[Sentence]:
    """The sentences of the abstract, of the results/experiments/ablation/conclusion sections and of every table
    before the bibliography."""
    body = re.sub(r"(?<!\\)%.*", "", body_of(tex))
    end = re.search(r"\\bibliography\{|\\begin\{thebibliography\}", body)
    body = body[:end.start()] if end else body
    out: list[Sentence] = []
    for m in re.finditer(r"\\begin\{abstract\}(.*?)\\end\{abstract\}", body, re.DOTALL):
        out += _block_sentences("abstract", m.group(1), "", tables=True)
    body = re.sub(r"\\begin\{abstract\}.*?\\end\{abstract\}", " ", body, flags=re.DOTALL)
    heads = [m for m in _HEADING.finditer(body) if m.group(1) == "section"]
    if not heads or heads[0].start() > 0:
        out += _block_sentences("the text before the first section", body[:heads[0].start() if heads else None], "",
                                tables=False)
    for i, m in enumerate(heads):
        stop = heads[i + 1].start() if i + 1 < len(heads) else len(body)
        title = _plain(m.group(2)).strip()
        checked = CHECKED_SECTION.search(title) is not None
        out += _block_sentences(f"section '{title}'", body[m.end():stop], title, tables=True, prose=checked)
    return out


def _block_sentences(section: str, text: str, heading: str, tables: bool, prose: bool = True) -> list[Sentence]:
    """Sentences of a stretch of LaTeX: its prose (when `prose`) and its tables (when `tables`)."""
    out: list[Sentence] = []
    for env in list(_TABLE_ENV.finditer(text)) or []:
        caption = _CAPTION.search(env.group(2))
        for tab in _TABULAR.finditer(env.group(2)):
            if tables:
                out += _table(section if prose else f"table in {section}", tab.group(2),
                              _plain(caption.group(1)) if caption else "", heading)
    text = _TABLE_ENV.sub(lambda m: _TABULAR.sub(" ", m.group(0)), text)
    for tab in _TABULAR.finditer(text):  # a tabular outside a table environment
        if tables:
            out += _table(section if prose else f"table in {section}", tab.group(2), "", heading)
    if not prose:
        return out
    text = _TABULAR.sub("\n\n", text)
    parts = re.split(r"(\\(?:sub)*section\*?\s*\{(?:[^{}]|\{[^{}]*\})*\}|\\paragraph\*?\s*\{(?:[^{}]|\{[^{}]*\})*\})",
                     text)
    context = heading
    for part in parts:
        head = _HEADING.fullmatch(part.strip())
        if head:
            context = f"{heading} {_plain(head.group(2))}"
            continue
        for para in re.split(r"\n\s*\n|\\item\b|\\par\b|\\(?:begin|end)\{[^}]*\}", part):
            previous = None
            for sent in split_sentences(_plain(para)):
                previous = Sentence(section, sent, context, previous=previous)
                out.append(previous)
    return out


def _table(section: str, body: str, caption: str, heading: str) -> list[Sentence]:
    """A table's cells as sentences: each with its column header, its row's label and the caption as context."""
    chunks = re.split(r"\\\\(?:\s*\[[^\]]*\])?", body)
    rule = re.compile(r"^\s*(?:\\(?:hline|midrule|toprule|bottomrule|cmidrule\s*(?:\([^)]*\))?\{[^}]*\}|cline\{[^}]*\})"
                      r"\s*)+")
    rows, header_end = [], None
    for chunk in chunks:
        if rule.match(chunk) and re.search(r"\\(?:midrule|hline)", rule.match(chunk).group(0)) and rows \
                and header_end is None:
            header_end = len(rows)
        chunk = rule.sub("", chunk).strip()
        if chunk:
            rows.append([_plain(c).strip() for c in re.split(r"(?<!\\)&", chunk)])
    header_end = header_end or 1
    header = [" ".join(r[j] for r in rows[:header_end] if j < len(r)) for j in range(max(map(len, rows), default=0))]
    out = [Sentence(section, cell, f"{heading} {caption}", table=True) for cell in header if cell]
    for row in rows[header_end:]:
        for j, cell in enumerate(row):
            col = header[j] if j < len(header) else ""
            label = f"{header[0] if header else ''} {row[0]}" if j > 0 else ""
            out.append(Sentence(section, cell, f"{heading} {caption} {col} {label}", column=col, table=True))
    return out


def _plain(latex: str) -> str:
    """LaTeX as the plain text the numbers are read from."""
    text = latex
    for pattern, repl in _STRIP:
        text = pattern.sub(repl, text)
    return re.sub(r"\s+", " ", text)


def split_sentences(text: str) -> list[str]:
    guarded = _ABBREV.sub(lambda m: m.group(0)[:-1] + "\x00", text)
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z(\d\[])", guarded)
    return [p.replace("\x00", ".").strip() for p in parts if p.strip()]


_CLAUSE_END = re.compile(r"[;:]|,\s+(?:but|while|whereas|so|which|although|though)\b|\s+(?:but|whereas|while)\s+")


def clause_of(text: str, start: int, end: int) -> tuple[int, int]:
    """(start, end) of the clause of `text` that holds [start, end): split at ; and : and before but / while /
    whereas / so / which / although."""
    bounds = [0] + [x.end() for x in _CLAUSE_END.finditer(text)] + [len(text)]
    lo = max(b for b in bounds if b <= start)
    hi = min((b for b in bounds if b >= end), default=len(text))
    return lo, hi


def mentions(text: str) -> list[Mention]:
    """The numbers a sentence states, in order."""
    found: list[Mention] = []
    for m in _NUM.finditer(text):
        mention = _numeral(text, m)
        if mention is not None:
            found.append(mention)
    for m in _WORD_MUL.finditer(text):
        word = m.group(1).lower()
        if word == "half" and not re.match(r"\s+as\b", text[m.end():]) \
                and not re.search(r"\b(?:by|in)\s+$", text[:m.start()]):
            continue
        ratio, sign = MULTIPLIER_WORDS[word]
        found.append(Mention(m.group(0), float(ratio), 0, 0, "ratio", m.start(), m.end(), word=True, word_sign=sign))
    for m in _WORD_NUM.finditer(text):
        value = float(NUMBER_WORDS[m.group(1).lower()])
        if m.group("mul"):  # "three times", "two-fold"
            found.append(Mention(m.group(0), value, 0, 0, "ratio", m.start(), m.end(), word=True))
        elif {canon(w) for w in re.findall(r"[A-Za-z]+", text[m.end():m.end() + 30])[:2]} & COUNTED:
            found.append(Mention(m.group(1), value, 0, 0, "number", m.start(), m.end(), word=True))
    return sorted(found, key=lambda x: x.start)


def _numeral(text: str, m: re.Match) -> Mention | None:
    start, end = m.start(), m.end()
    before = text[start - 1] if start else " "
    if before.isalnum() or before in "_.":
        return None
    run = re.match(r"\w*", text[start:]).group(0)
    if len(run) >= 8 and not run.isdigit() and re.fullmatch(r"[0-9a-f]+", run):
        return None  # a node id (hex)
    negative = False
    if before == "-":
        if start >= 2 and (text[start - 2].isalnum() or text[start - 2] in "_"):
            return None  # a compound: GPT-4, top-1
        negative = True
    after = text[end:end + 1]
    suffix = _SUFFIX.match(text, end)
    if after.isalpha() and not (suffix and suffix.group("mul")):
        return None  # 3rd, 2D, 10k
    body, exp = m.group("body"), m.group("exp")
    mantissa = float(body.replace(",", ""))
    exponent = int(exp[1:]) if exp else 0
    if abs(exponent) > 300:
        return None
    value = mantissa * 10 ** exponent * (-1 if negative else 1)
    decimals = len(body.partition(".")[2])
    kind, stop = "number", end
    if suffix and (suffix.group("pct") or suffix.group("mul") or suffix.group("times")):
        kind, stop = "percent" if suffix.group("pct") else "ratio", suffix.end()
    written = text[start - negative:stop].strip()
    return Mention(written, value, decimals, exponent, kind, start - negative, stop, hint=_hint(text, start - negative),
                   label=_label(text, start, kind, body, exp))


def _hint(text: str, start: int) -> str:
    """spread: right after ±; interval: a bound of a confidence interval. (A standard error named in words is read
    with the sentence's other numbers: tracing.py.)"""
    before = text[:start].rstrip()
    if before.endswith("±"):
        return "spread"
    if re.search(r"±\s*[\d.]+\s*\($", before):
        return "n"  # 150 ± 0 (2): the number of runs
    opening = max(before.rfind("["), before.rfind("("))
    if opening > max(before.rfind("]"), before.rfind(")")):
        lead = before[max(0, opening - 60):opening + 1].lower()
        if re.search(r"\bci\b|interval|confidence", lead):
            return "interval"
    if re.search(r"(?:\bci\b|interval)[^.;]{0,30}\b(?:from|between)\s*$|(?:\bci\b|interval)[^.;]{0,40}\b(?:to|and)\s*$",
                 before[-80:].lower()):
        return "interval"
    return ""


_REFERENCE_BEFORE = re.compile(r"\b(?:" + "|".join(sorted(REFERENCE_WORDS)) + r")s?\.?\s*\(?\s*$", re.IGNORECASE)
_ID_BEFORE = re.compile(r"\b(node|step|seed)s?\s*(?:#|no\.)?\s*\(?\s*(?:\d+\s*(?:,|and|,\s*and)\s*)*$", re.IGNORECASE)


def _label(text: str, start: int, kind: str, body: str, exp: str | None) -> str:
    """node / seed when the words before name one ("node 3", "seeds 0, 1 and 2"); reference for Figure 2 or
    Section 3 or the level of a 95% CI; year for 1900-2100."""
    before = text[max(0, start - 60):start]
    if kind == "percent" and re.match(r"\s*(?:%|percent)?\s*(?:ci\b|confidence)", text[start + len(body):].lower()):
        return "reference"
    if kind != "number" or exp or "." in body:
        return ""
    if _REFERENCE_BEFORE.search(before):
        return "reference"
    m = _ID_BEFORE.search(before)
    if m:
        return "seed" if m.group(1).lower() == "seed" else "node"
    return "year" if re.fullmatch(r"(19|20)\d\d", body) else ""
