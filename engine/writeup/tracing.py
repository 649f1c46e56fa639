"""Tracing a paper's numbers to the run's facts with their meaning.

A number traces only to a fact (ledger.py) of the same kind: the quantity its clause names (the primary metric
when it names none), a scope its sentence names or inherits (the result, the baseline, a stage, a node; the
result and the baseline when it names none), the statistic its form implies (after ± a standard error, inside a
confidence interval a bound), the sign written, and the precision written (0.93 is 0.925 to 0.935; 150 is a whole
150, or a fractional fact of 10 or more rounded). A percentage is a fraction times 100. A relative claim ("12%
fewer steps than the baseline", "4.86x faster", "improves by 200", "twice as fast") is recomputed from a pair of
facts its sentence names, in the order it names them, and its direction word is checked against the sign of the
difference, read through the metric's direction (better is lower for a minimized metric)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from engine.writeup import terms as vocab
from engine.writeup.ledger import DEFAULT_REFERENCES, HEADLINE, INTERVAL, SPREAD, Comparison, Fact, Ledger
from engine.writeup.numbers import Mention, Sentence, checked_sentences, clause_of, mentions
from engine.writeup.terms import NUMBER, is_time_like, positioned_terms, terms

_CHANGE_NOUNS = {"improvement", "reduction", "increase", "decrease", "drop", "gain", "speedup", "slowdown",
                 "change", "difference", "delta", "saving", "regression", "degradation", "rise", "cut"}
_TEXT_GENERIC = {"node", "stage", "run", "step", "change", "value", "best", "result", "improve", "tune", "draft"}
_HEDGES = {"about", "approximately", "roughly", "nearly", "almost", "around", "some", "over", "only", "just"}


@dataclass
class Outcome:
    status: str  # traced | untraced | wrong_sign | ignored
    mention: Mention
    sentence: Sentence
    facts: tuple[Fact, ...] = ()  # the fact it traced to; for a relative claim the two it compares
    how: str = ""  # what it was read as, or why it did not trace

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"number": self.mention.text, "section": self.sentence.section,
                               "sentence": self.sentence.text, "read_as": self.how}
        if self.facts:
            out["facts"] = [f.to_dict() for f in self.facts]
        return out


@dataclass
class Reading:
    """What a sentence names: its terms with their positions, the scopes it names, and those it inherits."""
    words: list[tuple[str, int]]  # canonical term, start offset
    context: set[str]
    named: list[tuple[int, frozenset[str]]]  # (position, scope tags) in the order written
    scope: set[str]  # every tag a fact of this sentence may have
    data: set[str]  # datasets named: a fact of another dataset does not trace
    strong: set[str]  # tags named by the sentence itself, not its context (inherited by the next sentence)
    context_tags: set[str]  # tags its context names (heading, caption, a table row's label)
    mentions: list[Mention]


def trace_document(tex: str, ledger: Ledger) -> list[Outcome]:
    """Every number of the checked parts of `tex`, traced."""
    outcomes: list[Outcome] = []
    readings: dict[int, Reading] = {}
    for sentence in checked_sentences(tex):
        reading = read(sentence, ledger, readings.get(id(sentence.previous)))
        readings[id(sentence)] = reading
        for mention in reading.mentions:
            outcomes.append(trace(mention, sentence, reading, ledger))
    return outcomes


def read(sentence: Sentence, ledger: Ledger, previous: Reading | None = None) -> Reading:
    words = positioned_terms(sentence.text)
    context = {w for w, _ in positioned_terms(sentence.context)} - {NUMBER}
    named, strong_named = _named_scopes(words, ledger, sentence)
    own = {t for _, tags in named for t in tags}
    ctx_tags = _context_tags(sentence, ledger)
    data = {t for t in own | ctx_tags if t.startswith("data:")}
    strong = {t for t in strong_named if not t.startswith("data:")}
    explicit = strong | {t for t in ctx_tags if not t.startswith("data:") and t not in ledger.weak}
    scope = own | ctx_tags | {"run"} | (previous.strong if previous else set())
    if not explicit:
        scope |= HEADLINE | {"baseline"}
    if not {t for t in explicit if t.split(":")[0] in ("stage", "node", "ablation")} or \
            {w for w, _ in words} & {"run", "total", "overall", "all"}:
        scope.add("total")
    if "result" in scope:
        scope |= HEADLINE
    return Reading(words, context, named, scope - data, data, strong, ctx_tags - data, mentions(sentence.text))


def _tags_in(found: set[str], ledger: Ledger) -> list[frozenset[str]]:
    return [frozenset({tag}) for tag, names in ledger.scopes.items() if any(n and n <= found for n in names)]


def _named_scopes(words: list[tuple[str, int]], ledger: Ledger, sentence: Sentence
                  ) -> tuple[list[tuple[int, frozenset[str]]], set[str]]:
    """((position, tags) of each scope the sentence names, by name or a node by its number ("node 3"); the tags
    named strongly: by a name that is not weak, or by number)."""
    first: dict[str, int] = {}
    for w, p in words:
        first.setdefault(w, p)
    named, strong = [], set()
    for tag, names in ledger.scopes.items():
        spots = [max(first[t] for t in n) for n in names if n and all(t in first for t in n)]
        if spots:
            named.append((min(spots), frozenset({tag})))
            strong |= set() if tag in ledger.weak else {tag}
    for m in mentions(sentence.text):
        if m.label == "node" and int(m.value) in ledger.ids["node"]:
            named.append((m.start, frozenset({f"node:{int(m.value)}"})))
            strong.add(f"node:{int(m.value)}")
    return sorted(named, key=lambda x: x[0]), strong


def _context_tags(sentence: Sentence, ledger: Ledger) -> set[str]:
    """The scopes its context names: a heading's stage, a table row's label (a stage, or a node by its step); not
    the weak ones ("Results" names no result)."""
    found = {t for tags in _tags_in(set(terms(sentence.context)), ledger) for t in tags} - ledger.weak
    return found | {f"node:{int(m.value)}" for m in mentions(sentence.context)
                    if m.label == "node" and int(m.value) in ledger.ids["node"]}


def trace(m: Mention, sentence: Sentence, reading: Reading, ledger: Ledger) -> Outcome:
    column = set(terms(sentence.column))
    if not m.label and sentence.text.strip() == m.text and m.decimals == 0 and column & {"node", "step", "seed"}:
        m = replace(m, label="seed" if "seed" in column and not column & {"node", "step"} else "node")
    if m.label == "reference":
        return Outcome("ignored", m, sentence, how="a label (figure, table, section, confidence level)")
    if m.label in ("node", "seed") and int(m.value) in ledger.ids[m.label]:
        fact = Fact(m.value, "tree.json" if m.label == "node" else "summary.json", f"{m.label} {int(m.value)}",
                    m.label, "id", frozenset(), ())
        return Outcome("traced", m, sentence, (fact,), f"an identifier: {m.label} {int(m.value)} of the run")
    relative = m.kind == "ratio" or (m.kind in ("percent", "number") and _is_relative(m, sentence, reading))
    outcome = _relative(m, sentence, reading, ledger) if relative else _absolute(m, sentence, reading, ledger)
    if outcome.status == "untraced" and m.label == "year":
        return Outcome("ignored", m, sentence, how="a year")
    if outcome.status == "untraced" and m.label in ("node", "seed"):
        outcome.how = f"there is no {m.label} {int(m.value)} in this run, and no fact of that value fits"
    return outcome


def _is_relative(m: Mention, sentence: Sentence, reading: Reading) -> bool:
    """'by 12%', '12% fewer', 'a reduction of 12%', '200 steps fewer': a change, not a level."""
    before = [w for w, p in reading.words if p < m.start][-3:]
    after = [w for w, p in reading.words if p >= m.end][:3]
    before = [w for w in before if w not in _HEDGES and w != NUMBER]
    if before and before[-1] == "by":
        return True
    if len(before) >= 2 and before[-1] == "of" and before[-2] in _CHANGE_NOUNS:
        return True
    direction = vocab.UP | vocab.DOWN | vocab.GOOD | vocab.BAD | vocab.FAST | vocab.SLOW | _CHANGE_NOUNS
    if m.kind == "percent":
        return bool(set(after[:2]) & direction)
    return bool(after and (after[0] in direction or (len(after) > 1 and after[1] in direction - {"more", "less"})))


def _tolerance(m: Mention, scale: float = 1.0) -> float:
    return 0.5 * 10 ** (m.exponent - m.decimals) * scale * (1 + 1e-9)


def _hint(m: Mention, sentence: Sentence, reading: Reading, ledger: Ledger) -> str:
    """spread / interval / "": from the number's form (after ±, inside a CI's brackets), from a standard error or
    deviation named since the sentence's previous quantity, or from a table cell's column header."""
    if m.hint:
        return m.hint
    lo, _ = _clause(m, sentence.text)
    spread = [p for (w, p), (nxt, _) in zip(reading.words, reading.words[1:] + [("", 0)]) if lo <= p < m.start
              and (w in ("se", "sd") or (w == "standard" and nxt in ("error", "deviation")))]
    names = {f.value for f in ledger.near(0, math.inf) if f.stat == "name"}
    if spread and not any(spread[-1] < x.start < m.start and x.label not in ("node", "seed", "reference")
                          and x.value not in names for x in reading.mentions):
        return "spread"
    if not sentence.column:
        return ""
    col = set(terms(sentence.column))
    if col & {"se", "sd"} or "standard error" in sentence.column.lower():
        return "spread"
    return "interval" if col & {"ci", "interval", "confidence"} else ""


def candidates(m: Mention, ledger: Ledger) -> list[Fact]:
    """The facts whose value the number states at its written precision, sign included: a percentage as a
    fraction times 100 (or a number that is a percentage in its record); a whole number as a whole fact, or a
    fractional one of 10 or more rounded (1442 for 1441.7)."""
    tol, v = _tolerance(m), m.value
    if m.kind == "percent":
        found = ledger.near((v - tol) / 100, (v + tol) / 100) + \
            [f for f in ledger.near(v - tol, v + tol) if f.stat in ("name", "text")]
    else:
        found = ledger.near(v - tol, v + tol)
        if m.decimals == 0 and m.exponent == 0:
            found = [f for f in found if f.value == v or (not float(f.value).is_integer() and abs(f.value) >= 10)]
    return found


def _absolute(m: Mention, sentence: Sentence, reading: Reading, ledger: Ledger) -> Outcome:
    found = candidates(m, ledger)
    hint = _hint(m, sentence, reading, ledger)
    stats = {"spread": SPREAD, "interval": INTERVAL, "n": {"count"}}.get(hint)
    adjacent = _adjacent(m, sentence, reading)
    quantity_words = adjacent if _counted(m, sentence) else _quantity_words(m, sentence, reading, ledger)
    window = _window(m, sentence, reading) - _TEXT_GENERIC
    fits = []
    for f in found:
        if f.stat == "text":
            own = f.context - _TEXT_GENERIC
            if own and len(window & own) >= min(2, len(own)) and _in_scope(f, reading):
                fits.append(f)
            continue
        if f.stat != "name" and ((stats is not None and f.stat not in stats) or
                                 (stats is None and f.stat in SPREAD | INTERVAL)):
            continue
        if hint == "n":
            named = f.quantity == "seeds"
        elif f.stat == "name":  # the 99 of step_val_acc_99: "reaches 99%", or right next to the quantity's words
            named = _names(f, quantity_words, ledger) and (m.kind == "percent" or any(n <= adjacent for n in f.names))
        elif f.stat == "count":
            named = any(n <= adjacent for n in f.names)
        else:
            named = _names(f, quantity_words, ledger)
        if named and _in_scope(f, reading):
            fits.append(f)
    if fits:
        best = sorted(fits, key=lambda f: (f.stat == "text", not (f.scope & reading.strong)))[0]
        return Outcome("traced", m, sentence, (best,), f"{f_desc(best)}")
    return Outcome("untraced", m, sentence, how=_why_not(m, found, quantity_words))


def _counted(m: Mention, sentence: Sentence) -> bool:
    """A number right before a counted noun ("13 programs", "2-layer", "4 heads") states that count."""
    nxt = re.match(r"[\s-]+([A-Za-z]+)", sentence.text[m.end:])
    return nxt is not None and vocab.canon(nxt.group(1)) in vocab.COUNTED


def _quantity_words(m: Mention, sentence: Sentence, reading: Reading, ledger: Ledger,
                    counts: bool = False) -> set[str] | None:
    """The terms that name the mention's quantity: its clause's (with a table cell's column header), else its
    sentence's; a bare table cell or sentence ("150 ± 0 (2)") also its context's (caption, row label, heading).
    None when none names a quantity of the run: then the primary metric is meant."""
    lo, hi = _clause(m, sentence.text)
    column = set(terms(sentence.column))
    own = {w for w, p in reading.words if w != NUMBER}
    if _bare(reading):  # a table cell "0.93" or "150 ± 0 (2)": its column, else (or for a mean) its caption
        stat = re.match(r"\s*±", sentence.text[m.end:]) or sentence.text[:m.start].rstrip().endswith("±")
        column_names = column and ledger.names_a_quantity(own | column, counts=True)
        if column_names and not stat:
            return own | column
        choices = [own | column | reading.context]
    else:
        choices = [{w for w, p in reading.words if lo <= p < hi and w != NUMBER} | column, own | column]
    return next((words for words in choices if ledger.names_a_quantity(words, counts)), None)


def _bare(reading: Reading) -> bool:
    return sum(w != NUMBER for w, _ in reading.words) <= 3


def _clause(m: Mention, text: str) -> tuple[int, int]:
    return clause_of(text, m.start, m.end)


def _adjacent(m: Mention, sentence: Sentence, reading: Reading) -> set[str]:
    """The words right next to a count ("13 programs", "budget 4", "n = 3"), and its table column."""
    if sentence.table and _bare(reading):
        return {w for w, _ in reading.words if w != NUMBER} | set(terms(sentence.column))
    if re.match(r"\s*[,;.)]", sentence.text[m.end:]):  # "budget 4," "(4 ran)": only the word before
        return {w for w, p in reading.words if p < m.start and w != NUMBER}.intersection(
            [w for w, p in reading.words if p < m.start and w != NUMBER][-1:]) | set(terms(sentence.column))
    before = [w for w, p in reading.words if p < m.start and w != NUMBER][-1:]
    after = [w for w, p in reading.words if p >= m.end and w != NUMBER][:2]
    return set(before + after) | set(terms(sentence.column))


def _window(m: Mention, sentence: Sentence, reading: Reading) -> set[str]:
    """Up to four words either side of the number, within its clause."""
    lo, hi = _clause(m, sentence.text)
    words = [(w, p) for w, p in reading.words if lo <= p < hi and w not in vocab.STOP and w != NUMBER]
    before = [w for w, p in words if p < m.start][-4:]
    after = [w for w, p in words if p >= m.end][:4]
    return set(before + after)


def _names(f: Fact, quantity_words: set[str] | None, ledger: Ledger) -> bool:
    """The words name the fact's quantity (None: no quantity named, the primary metric is meant), and no other
    quantity more fully: "validation loss" names final_val_loss, not the primary metric step_val_acc_99 through
    its "val"; "step_val_acc_99" names the primary metric, not final_val_acc."""
    if quantity_words is None:
        return f.quantity == ledger.primary
    matched = [n for n in f.names if n and n <= quantity_words]
    if not matched:
        return False
    others = [n for n in ledger.quantity_names if n <= quantity_words and n not in f.names]
    return any(not any(n < o for o in others) for n in matched)


def _in_data(f: Fact, reading: Reading) -> bool:
    data = {t for t in f.scope if t.startswith("data:")}
    return not (data and reading.data and not data & reading.data)


def _in_scope(f: Fact, reading: Reading) -> bool:
    """The fact is of a scope the sentence names or inherits, and not of another node, ablation or stage than the
    ones it names."""
    return _same_node(f, reading) and _in_data(f, reading) and bool(f.scope & reading.scope)


def _same_node(f: Fact, reading: Reading) -> bool:
    named = reading.strong | reading.context_tags
    for kind in ("node:", "ablation:", "stage:"):
        mine = {t for t in f.scope if t.startswith(kind)}
        theirs = {t for t in named if t.startswith(kind)}
        if mine and theirs and not mine & theirs:
            return False
    return True


def f_desc(f: Fact) -> str:
    return f"{f.quantity} ({f.stat}) = {f.value:g}, {f.file}: {f.key}"


def _why_not(m: Mention, found: list[Fact], quantity_words: set[str] | None) -> str:
    if not found:
        return "no number of this value (at the precision written) is in the run's records"
    other = found[0]
    return (f"a number of this value is in the records, but as {other.quantity} ({other.stat}, {other.file}: "
            f"{other.key}), which is not what this sentence states")


def _relative(m: Mention, sentence: Sentence, reading: Reading, ledger: Ledger) -> Outcome:
    subject, reference = _roles(m, sentence, reading)
    quantity_words = _quantity_words(m, sentence, reading, ledger, counts=True)
    wrong: tuple[Comparison, Fact, Fact, str] | None = None
    unknown = None
    for comp in ledger.comparisons:
        if not _names(comp.a, quantity_words, ledger):
            continue
        for x, y in ((comp.a, comp.b), (comp.b, comp.a)):
            if not (x.scope & subject) or not (y.scope & reference if reference else
                                                   y.scope & (DEFAULT_REFERENCES | {"run"})):
                continue
            if not (_in_data(x, reading) and _same_node(x, reading) and _same_node(y, reading)):
                continue
            size = _magnitude(m, x.value, y.value)
            if size is None or abs(size - m.value) > _tolerance(m):
                continue
            claimed, word = _claimed_sign(m, sentence, reading, comp)
            actual = (x.value > y.value) - (x.value < y.value)
            if claimed == "unknown":
                unknown = unknown or (x, y, word)
            elif claimed == 0 or actual == 0 or claimed == actual:
                return Outcome("traced", m, sentence, (x, y), _compare_desc(m, x, y))
            elif wrong is None:
                wrong = (comp, x, y, word)
    if wrong is not None:
        _, x, y, word = wrong
        said = "higher" if x.value > y.value else "lower"
        return Outcome("wrong_sign", m, sentence, (x, y), f"the sentence says '{word}', but the records give "
                       f"{x.value:g} ({x.file}: {x.key}) against {y.value:g} ({y.file}: {y.key}): {said}")
    if unknown is not None:
        x, y, word = unknown
        return Outcome("untraced", m, sentence, (x, y), f"'{word}' of {x.quantity}, whose direction (higher or "
                       "lower is better) the run does not record: say higher or lower instead")
    return Outcome("untraced", m, sentence, how="no pair of facts that this sentence names differs by this much "
                   "(recomputed at the precision written)")


def _roles(m: Mention, sentence: Sentence, reading: Reading) -> tuple[set[str], set[str]]:
    """(the subject's tags, the reference's tags) of a comparison: the scope named after 'than' / 'over' /
    'compared to' is the reference; else the first scope named is the subject and the others the reference."""
    markers = [p for w, p in reading.words if w in vocab.REFERENCE_MARKERS]
    subject, reference = set(), set()
    for pos, tags in reading.named:
        after_marker = any(0 <= pos - mk <= 40 for mk in markers)
        (reference if after_marker else subject).update(t for t in tags if not t.startswith("data:"))
    if not markers and len(reading.named) > 1:  # first named: the subject; the others (or a default): the reference
        subject = {t for t in reading.named[0][1] if not t.startswith("data:")}
        reference = {t for _, tags in reading.named[1:] for t in tags if not t.startswith("data:")} - subject
        reference |= DEFAULT_REFERENCES - subject
    context = reading.context_tags
    if not subject:
        subject = set(HEADLINE) | context | (reading.scope & reading.strong)
        if not reading.named and not context:
            subject |= {t for t in reading.scope if t.startswith("stage:") or t.startswith("node:")}
    if "result" in subject:
        subject |= HEADLINE
    if "result" in reference:
        reference |= HEADLINE
    return subject | {"run"}, reference


def _magnitude(m: Mention, x: float, y: float) -> float | None:
    if m.kind == "percent":
        return abs(x - y) / abs(y) * 100 if y else None
    if m.kind == "ratio":
        if x <= 0 or y <= 0:
            return None
        return max(x, y) / min(x, y) if m.value >= 1 else x / y
    return abs(x - y)


def _claimed_sign(m: Mention, sentence: Sentence, reading: Reading, comp: Comparison) -> tuple[int | str, str]:
    """(the raw sign the sentence claims for subject minus reference: +1, -1, 0 when it claims none, or 'unknown'
    when it says better/worse of a quantity whose direction is not known; the word that says so)."""
    if m.word_sign:
        return m.word_sign, m.text
    lo, hi = _clause(m, sentence.text)
    words = [(w, p) for w, p in reading.words if lo <= p < hi]
    signed = [(w, p) for w, p in words if w in vocab.UP | vocab.DOWN | vocab.GOOD | vocab.BAD | vocab.FAST | vocab.SLOW]
    if not signed:
        return 0, ""
    word, pos = min(signed, key=lambda wp: (wp[1] < m.start, abs(wp[1] - m.start)))
    ahead = [w for w, p in words if p < pos][-2:]
    if set(ahead) & vocab.NEGATION:
        return 0, word
    if word in vocab.FAST | vocab.SLOW:
        if is_time_like(comp.a.quantity):
            return (-1 if word in vocab.FAST else 1), word
        word_class = vocab.GOOD if word in vocab.FAST else vocab.BAD
    else:
        word_class = None
    if word in vocab.UP:
        return 1, word
    if word in vocab.DOWN:
        return -1, word
    good = word in vocab.GOOD if word_class is None else word_class is vocab.GOOD
    if comp.direction not in ("minimize", "maximize"):
        return "unknown", word
    return (1 if (comp.direction == "maximize") == good else -1), word


def _compare_desc(m: Mention, x: Fact, y: Fact) -> str:
    size = {"percent": "relative change", "ratio": "ratio"}.get(m.kind, "difference")
    return (f"{size} of {x.quantity}: {x.value:g} ({x.file}: {x.key}) against {y.value:g} ({y.file}: {y.key})"
            if math.isfinite(x.value) else size)
