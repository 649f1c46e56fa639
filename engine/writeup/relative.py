"""Relative claims ("12% fewer steps than the baseline", "2.1x faster", "improves on it by 200", "twice as fast"):
recomputed from a pair of facts the sentence names (ledger.Comparison), the subject against the reference in
the order the sentence gives them, at the precision written; the direction word is checked against the sign of
the difference, read through the quantity's direction (for a minimized metric, better is lower; for a count of
steps or a time, faster is fewer)."""
from __future__ import annotations

from engine.writeup import terms as vocab
from engine.writeup.ledger import DEFAULT_REFERENCES, HEADLINE, Comparison, Fact, Ledger
from engine.writeup.numbers import Mention, Sentence
from engine.writeup.reading import Reading, clause, in_data, names, no_other_named, quantity_words, tolerance
from engine.writeup.terms import is_time_like


def trace_relative(m: Mention, sentence: Sentence, reading: Reading, ledger: Ledger
                   ) -> tuple[str, tuple[Fact, ...], str]:
    """(traced | wrong_sign | untraced, the two facts compared, how it was read or why it did not trace)."""
    subject, reference = _roles(reading)
    words = quantity_words(m, sentence, reading, ledger, counts=True)
    wrong: tuple[Fact, Fact, str] | None = None
    unknown: tuple[Fact, Fact, str] | None = None
    for comp in ledger.comparisons:
        if not names(comp.a, words, ledger):
            continue
        for x, y in ((comp.a, comp.b), (comp.b, comp.a)):
            if not (x.scope & subject) or not (y.scope & reference if reference else
                                                   y.scope & (DEFAULT_REFERENCES | {"run"})):
                continue
            if not (in_data(x, reading) and no_other_named(x, reading) and no_other_named(y, reading)):
                continue
            size = _magnitude(m, x.value, y.value)
            if size is None or abs(size - m.value) > tolerance(m):
                continue
            claimed, word = _claimed_sign(m, sentence, reading, comp)
            actual = (x.value > y.value) - (x.value < y.value)
            if claimed == "unknown":
                unknown = unknown or (x, y, word)
            elif claimed == 0 or actual == 0 or claimed == actual:
                return "traced", (x, y), _compare_desc(m, x, y)
            elif wrong is None:
                wrong = (x, y, word)
    if wrong is not None:
        x, y, word = wrong
        said = "higher" if x.value > y.value else "lower"
        return "wrong_sign", (x, y), (f"the sentence says '{word}', but the records give {x.value:g} ({x.file}: "
                                      f"{x.key}) against {y.value:g} ({y.file}: {y.key}): {said}")
    if unknown is not None:
        x, y, word = unknown
        return "untraced", (x, y), (f"'{word}' of {x.quantity}, whose direction (higher or lower is better) the run "
                                    "does not record: say higher or lower instead")
    return "untraced", (), "no pair of facts that this sentence names differs by this much (at the precision written)"


def _roles(reading: Reading) -> tuple[set[str], set[str]]:
    """(the subject's tags, the reference's tags) of a comparison: the scope named after 'than' / 'over' /
    'compared to' is the reference; else the first scope named (by a name that is not weak) is the subject and
    the others the reference."""
    markers = [p for w, p in reading.words if w in vocab.REFERENCE_MARKERS]
    # what names a node by its change ("halving the heads") or speaks of trying: a description of the subject
    weak = {t for _, tags in reading.named for t in tags if not t.startswith("data:")} - reading.strong
    subject, reference = set(), set()
    for pos, tags in reading.named:
        after_marker = any(0 <= pos - mk <= 40 for mk in markers)
        (reference if after_marker else subject).update(t for t in tags if not t.startswith("data:"))
    strong = [tags & reading.strong for _, tags in reading.named if tags & reading.strong]
    if not markers and len(strong) > 1:  # the first named strongly: the subject; the others (or a default): reference
        subject = set(strong[0])
        reference = {t for tags in strong[1:] for t in tags} - subject
        reference |= DEFAULT_REFERENCES - subject
    context = reading.context_tags
    if not subject:
        subject = set(HEADLINE) | context | (reading.scope & reading.strong)
        if not reading.named and not context:
            subject |= {t for t in reading.scope if t.startswith("stage:") or t.startswith("node:")}
    subject |= weak - reference
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
    lo, hi = clause(m, sentence.text)
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
    return f"{size} of {x.quantity}: {x.value:g} ({x.file}: {x.key}) against {y.value:g} ({y.file}: {y.key})"
