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

import re
from dataclasses import dataclass, replace
from typing import Any

from engine.writeup import terms as vocab
from engine.writeup.ledger import INTERVAL, SPREAD, Fact, Ledger
from engine.writeup.numbers import Mention, Sentence, checked_sentences
from engine.writeup.reading import (
    TEXT_GENERIC,
    Reading,
    adjacent,
    clause,
    in_scope,
    names,
    quantity_words,
    read,
    tolerance,
    window,
)
from engine.writeup.relative import trace_relative
from engine.writeup.terms import NUMBER, terms

_CHANGE_NOUNS = {"improvement", "reduction", "increase", "decrease", "drop", "gain", "speedup", "slowdown",
                 "change", "difference", "delta", "saving", "regression", "degradation", "rise", "cut"}
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


def trace(m: Mention, sentence: Sentence, reading: Reading, ledger: Ledger) -> Outcome:
    column = set(terms(sentence.column))
    if not m.label and sentence.text.strip() == m.text and m.decimals == 0 and column & {"node", "step", "seed"}:
        m = replace(m, label="seed" if "seed" in column and not column & {"node", "step"} else "node")
    if m.label == "reference":
        return Outcome("ignored", m, sentence, how="a label (figure, table, section, confidence level)")
    if m.label in ("node", "seed") and int(m.value) in ledger.ids[m.label]:
        file, key = ledger.ids[m.label][int(m.value)]
        fact = Fact(m.value, file, key, m.label, "id", frozenset(), ())
        return Outcome("traced", m, sentence, (fact,), f"an identifier: {m.label} {int(m.value)} of the run")
    if m.label in ("node", "seed") and not re.search(r"\bsteps?\W*(?:\d+\W+(?:and\W+)?)*$", sentence.text[:m.start]):
        return Outcome("untraced", m, sentence, how=f"there is no {m.label} {int(m.value)} in this run")
    relative = m.kind == "ratio" or (m.kind in ("percent", "number") and _is_relative(m, sentence, reading))
    if relative:
        status, facts, how = trace_relative(m, sentence, reading, ledger)
        outcome = Outcome(status, m, sentence, facts, how)
    else:
        outcome = _absolute(m, sentence, reading, ledger)
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
    if before and before[-1] in ("to", "from", "at"):  # "cut it to 1075": a level
        return False
    if before and before[-1] == "by":
        return True
    if len(before) >= 2 and before[-1] == "of" and before[-2] in _CHANGE_NOUNS:
        return True
    direction = vocab.UP | vocab.DOWN | vocab.GOOD | vocab.BAD | vocab.FAST | vocab.SLOW | _CHANGE_NOUNS
    if m.kind == "percent":
        return bool(set(after[:2]) & direction)
    return bool(after and (after[0] in direction or (len(after) > 1 and after[1] in direction - {"more", "less"})))


def _hint(m: Mention, sentence: Sentence, reading: Reading, ledger: Ledger) -> str:
    """spread / interval / "": from the number's form (after ±, inside a CI's brackets), from a standard error or
    deviation named since the sentence's previous quantity, or from a table cell's column header."""
    if m.hint:
        return m.hint
    lo, _ = clause(m, sentence.text)
    spread = [p for (w, p), (nxt, _) in zip(reading.words, reading.words[1:] + [("", 0)]) if lo <= p < m.start
              and (w in ("se", "sd") or (w == "standard" and nxt in ("error", "deviation")))]
    if spread and not any(spread[-1] < x.start < m.start and x.label not in ("node", "seed", "reference")
                          and x.value not in ledger.name_values for x in reading.mentions):
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
    tol, v = tolerance(m), m.value
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
    next_to = adjacent(m, sentence, reading)
    words = next_to if _counted(m, sentence) else quantity_words(m, sentence, reading, ledger)
    around = window(m, sentence, reading) - TEXT_GENERIC
    fits = [f for f in found if _fits(f, m, hint, words, next_to, around, reading, ledger)]
    if fits:
        best = sorted(fits, key=lambda f: (f.stat == "text", not (f.scope & reading.strong)))[0]
        return Outcome("traced", m, sentence, (best,), f_desc(best))
    return Outcome("untraced", m, sentence, how=_why_not(found))


def _fits(f: Fact, m: Mention, hint: str, words: set[str] | None, next_to: set[str], around: set[str],
          reading: Reading, ledger: Ledger) -> bool:
    """Whether a fact of the number's value is what the sentence states: a number in a record's prose by the
    words around it; else by its statistic, its quantity and its scope."""
    if f.stat == "text":
        own = f.context - TEXT_GENERIC
        return bool(own) and len(around & own) >= min(2, len(own)) and in_scope(f, reading)
    stats = {"spread": SPREAD, "interval": INTERVAL, "n": {"count"}}.get(hint)
    if f.stat != "name" and ((stats is not None and f.stat not in stats) or
                             (stats is None and f.stat in SPREAD | INTERVAL)):
        return False
    if hint == "n":  # 150 ± 0 (3): the number of seeds
        named = f.quantity == "seeds"
    elif f.stat == "name":  # the 99 of step_val_acc_99: "reaches 99%", or right next to the quantity's words
        named = names(f, words, ledger) and (m.kind == "percent" or any(n <= next_to for n in f.names))
    elif f.stat == "count":  # "13 programs", "budget 4"
        named = any(n <= next_to for n in f.names)
    else:
        named = names(f, words, ledger)
    if named and "tried" in f.scope:  # a changed setting: "from 1.0" is the old value, "to 2.0" the new one
        before = re.search(r"\b(from|to)\W*$", reading.text[:m.start])
        named = before is None or (before.group(1) == "from") == ("start" in f.scope)
    return named and in_scope(f, reading)


def _counted(m: Mention, sentence: Sentence) -> bool:
    """A number right before a counted noun ("13 programs", "2-layer", "4 heads") states that count."""
    nxt = re.match(r"[\s-]+([A-Za-z]+)", sentence.text[m.end:])
    return nxt is not None and vocab.canon(nxt.group(1)) in vocab.COUNTED


def f_desc(f: Fact) -> str:
    return f"{f.quantity} ({f.stat}) = {f.value:g}, {f.file}: {f.key}"


def _why_not(found: list[Fact]) -> str:
    if not found:
        return "no number of this value (at the precision written) is in the run's records"
    other = found[0]
    return (f"a number of this value is in the records, but as {other.quantity} ({other.stat}, {other.file}: "
            f"{other.key}), which is not what this sentence states")
