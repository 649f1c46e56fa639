"""Reading a sentence for the number check: its terms with their positions; the scopes it names (the result, the
baseline, a stage, a node, an ablation, a dataset) or inherits from its context and the sentence before it; and,
for one of its numbers, the clause, the words that name the number's quantity and the words right next to it;
whether a fact is of a quantity and a scope the sentence names."""
from __future__ import annotations

import re
from dataclasses import dataclass

from engine.writeup import terms as vocab
from engine.writeup.ledger import HEADLINE, Fact, Ledger
from engine.writeup.numbers import Mention, Sentence, clause_of, mentions
from engine.writeup.terms import NUMBER, positioned_terms, terms

TEXT_GENERIC = {"node", "stage", "run", "step", "change", "value", "best", "result", "improve", "tune", "draft"}


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
    mentions: list[Mention]  # its numbers
    text: str


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
    return Reading(words, context, named, scope - data, data, strong, ctx_tags - data, mentions(sentence.text),
                   sentence.text)


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
    trying = any(n <= first.keys() for n in ledger.scopes.get("tried", []))
    for tag, names in ledger.scopes.items():
        if tag.startswith("node:") and tag in ledger.weak and not trying:
            continue  # "learning rate" names the nodes that changed it only where the sentence speaks of changing
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


def quantity_words(m: Mention, sentence: Sentence, reading: Reading, ledger: Ledger,
                    counts: bool = False) -> set[str] | None:
    """The terms that name the mention's quantity: its clause's (with a table cell's column header), else those
    of its sentence before it; a bare table cell or sentence ("150 ± 0 (2)") also its context's (caption, row
    label, heading). None when none names a quantity of the run: then the primary metric is meant."""
    lo, hi = clause(m, sentence.text)
    column = set(terms(sentence.column))
    own = {w for w, p in reading.words if w != NUMBER}
    if bare(reading):  # a table cell "0.93" or "150 ± 0 (2)": its column, else (or for a mean) its caption
        stat = re.match(r"\s*±", sentence.text[m.end:]) or sentence.text[:m.start].rstrip().endswith("±")
        column_names = column and ledger.names_a_quantity(own | column, counts=True)
        if column_names and not stat:
            return own | column
        choices = [own | column | reading.context]
    else:
        earlier = {w for w, p in reading.words if p < m.start and w != NUMBER}  # "Its validation accuracy: 0.70"
        choices = [{w for w, p in reading.words if lo <= p < hi and w != NUMBER} | column, earlier | column]
    return next((words for words in choices if ledger.names_a_quantity(words, counts)), None)


def bare(reading: Reading) -> bool:
    return sum(w != NUMBER for w, _ in reading.words) <= 3


def clause(m: Mention, text: str) -> tuple[int, int]:
    return clause_of(text, m.start, m.end)


def adjacent(m: Mention, sentence: Sentence, reading: Reading) -> set[str]:
    """The words right next to a count ("13 programs", "budget 4", "n = 3"); for a table cell ("4 / 9") its column
    header ("nodes / budget")."""
    if sentence.table and bare(reading):
        return {w for w, _ in reading.words if w != NUMBER} | set(terms(sentence.column))
    before = [w for w, p in reading.words if p < m.start and w != NUMBER][-1:]
    after = [w for w, p in reading.words if p >= m.end and w != NUMBER][:2]
    if re.match(r"\s*[,;.)]", sentence.text[m.end:]):  # "budget 4," "(4 ran)": only the word before
        after = []
    return set(before + after) | set(terms(sentence.column))


def window(m: Mention, sentence: Sentence, reading: Reading) -> set[str]:
    """Up to four words either side of the number, within its clause."""
    lo, hi = clause(m, sentence.text)
    words = [(w, p) for w, p in reading.words if lo <= p < hi and w not in vocab.STOP and w != NUMBER]
    before = [w for w, p in words if p < m.start][-4:]
    after = [w for w, p in words if p >= m.end][:4]
    return set(before + after)


def names(f: Fact, quantity_words: set[str] | None, ledger: Ledger) -> bool:
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


def in_data(f: Fact, reading: Reading) -> bool:
    data = {t for t in f.scope if t.startswith("data:")}
    return not (data and reading.data and not data & reading.data)


def in_scope(f: Fact, reading: Reading) -> bool:
    """The fact is of a scope the sentence names or inherits, and not of another node, ablation or stage than the
    ones it names."""
    return no_other_named(f, reading) and in_data(f, reading) and bool(f.scope & reading.scope)


def no_other_named(f: Fact, reading: Reading) -> bool:
    """The fact is not of another node, ablation or stage than those the sentence (or its context) names."""
    named = reading.strong | reading.context_tags
    for kind in ("node:", "ablation:", "stage:"):
        mine = {t for t in f.scope if t.startswith(kind)}
        theirs = {t for t in named if t.startswith(kind)}
        if mine and theirs and not mine & theirs:
            return False
    return True


def tolerance(m: Mention) -> float:
    """Half a unit of the last digit written: 0.93 stands for 0.925 to 0.935; 3e-4 for 2.5e-4 to 3.5e-4."""
    return 0.5 * 10 ** (m.exponent - m.decimals) * (1 + 1e-9)
