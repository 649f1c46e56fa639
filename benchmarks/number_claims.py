"""The sentences the number-check benchmark works on, from a run's records: the results report the engine writes
for the run (its own LaTeX, read as the check reads a paper), and claims written by fixed templates from the
run's facts: absolute ("the best program reaches a validation accuracy of 0.7045") and relative ("the result
needs 12.5% fewer steps than the baseline", "2.31x faster", "improves on the baseline by 200").

Each sentence comes with the reading of the one before it, so that a variant of it is traced as the check would
trace it in place."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from engine.writeup.facts import RunFacts, fmt
from engine.writeup.latex import TEMPLATE_DIR
from engine.writeup.ledger import Comparison, Fact
from engine.writeup.numbers import Sentence, checked_sentences
from engine.writeup.report import report_latex
from engine.writeup.terms import is_time_like

_WORDS = {"acc": "accuracy", "val": "validation", "lr": "learning rate", "num": "number of", "dim": "width"}


@dataclass
class Source:
    kind: str  # "report" | "template claims"
    sentences: list[Sentence]


def report_sentences(facts: RunFacts) -> list[Sentence]:
    """The sentences and table cells of the results report the engine writes for this run."""
    template = (TEMPLATE_DIR / "workshop.tex").read_text()
    return checked_sentences(report_latex(template, facts, []))


def paper_sentences(run_dir: Path) -> list[Sentence]:
    """The sentences of a paper a model wrote for the run (paper/paper.tex), if there is one."""
    tex = run_dir / "paper" / "paper.tex"
    if not tex.is_file() or "Results report" in tex.read_text():
        return []
    return checked_sentences(tex.read_text())


def template_claims(facts: RunFacts, rng: random.Random, limit: int) -> list[Sentence]:
    """Claims written from the run's facts: up to `limit` absolute and `limit` relative ones."""
    ledger = facts.ledger
    absolute = [f for f in ledger.facts if f.stat in ("value", "mean", "stderr", "setting", "ci_lo", "delta")
                and f.quantity not in ("wall_time_min",)]
    rng.shuffle(absolute)
    out = [Sentence("template claims", _absolute(f, ledger.facts)) for f in absolute[:limit]]
    pairs = [c for c in ledger.comparisons if c.a.value != c.b.value and c.b.value and c.a.value > 0 < c.b.value]
    rng.shuffle(pairs)
    for i, comp in enumerate(pairs[:limit]):
        out.append(Sentence("template claims", _relative(comp, i)))
    return out


def scope_phrase(f: Fact) -> str:
    tags = set(f.scope)
    if "start" in tags and "tried" in tags:
        return "the value it started from"
    for prefix, phrase in (("ablation:", "the ablation {}"), ("node:", "node {}")):
        tag = next((t for t in tags if t.startswith(prefix)), None)
        if tag:
            return phrase.format(tag.split(":", 1)[1].replace("_", " "))
    stage = next((t.split(":", 1)[1] for t in tags if t.startswith("stage:")), None)
    if stage and "start" in tags:
        return f"the starting node of the {stage} stage"
    if stage:
        return f"the best node of the {stage} stage"
    for tag, phrase in (("result", "the chosen program on fresh seeds"), ("best", "the best program"),
                        ("baseline", "the baseline")):
        if tag in tags:
            return phrase
    return "the run"


def quantity_phrase(f: Fact) -> str:
    """The quantity in words (`final_val_acc`: final validation accuracy); a name with digits as it is written
    (`step_val_acc_99`), as a paper quotes it."""
    words = f.quantity.replace("/", " ").replace("_", " ").split()
    data = next((t.split(":", 1)[1] for t in f.scope if t.startswith("data:")), None)
    text = f.quantity if any(w.isdigit() for w in words) else " ".join(_WORDS.get(w, w) for w in words)
    return f"{text} on {data.replace('_', ' ')}" if data else text


def _absolute(f: Fact, facts: list[Fact]) -> str:
    who, what, value = scope_phrase(f), quantity_phrase(f), fmt(f.value)
    if f.stat == "setting":
        node = next((t.split(":", 1)[1] for t in f.scope if t.startswith("node:")), "")
        if "tried" in f.scope and "start" in f.scope:
            return f"Node {node} changed the {what} from {value}."
        if "tried" in f.scope:
            return f"Node {node} tried a {what} of {value}."
        return f"The best program used a {what} of {value}."
    if f.stat == "mean":
        return f"Over its seeds, {who} reaches a mean {what} of {value}."
    if f.stat == "stderr":
        return f"Over its seeds, the standard error of the {what} of {who} is {value}."
    if f.stat == "ci_lo":
        hi = next((x for x in facts if x.stat == "ci_hi" and x.key == f.key.replace("[0]", "[1]")), None)
        return f"The {what} of {who} has a 95% confidence interval of [{value}, {fmt(hi.value if hi else 0)}]."
    if f.stat == "delta":
        return f"Against the result, {who} changes the {what} by a delta of {value}."
    return f"In a single run, {who} reaches a {what} of {value}."


def _relative(comp: Comparison, i: int) -> str:
    """One of four phrasings of a true comparison, each with its direction word."""
    x, y = comp.a, comp.b
    who, ref, what = scope_phrase(x), scope_phrase(y), quantity_phrase(x)
    up = x.value > y.value
    pct = f"{abs(x.value - y.value) / abs(y.value) * 100:.1f}%"
    ratio = f"{max(x.value, y.value) / min(x.value, y.value):.2f}x"
    diff = fmt(abs(x.value - y.value))
    better = None if comp.direction not in ("minimize", "maximize") else up == (comp.direction == "maximize")
    style = i % 4
    if style == 1 and better is not None:
        verb = "improves on" if better else "falls behind"
        return f"{who[0].upper()}{who[1:]} {verb} {ref} by {pct} in {what}."
    if style == 2:
        if is_time_like(x.quantity):
            return f"{who[0].upper()}{who[1:]} reaches its {what} {ratio} {'slower' if up else 'faster'} than {ref}."
        return f"{who[0].upper()}{who[1:]} has a {ratio} {'higher' if up else 'lower'} {what} than {ref}."
    if style == 3:
        return f"The {what} of {who} is {diff} {'higher' if up else 'lower'} than that of {ref}."
    return f"{who[0].upper()}{who[1:]} gives a {what} {pct} {'higher' if up else 'lower'} than {ref}."
