"""How well the paper's number check (engine/writeup/tracing.py) tells a run's numbers from others, on sentences
from real run records (the results report the engine writes for each run, and claims written by fixed templates
from the run's facts; see number_claims.py):

- true numbers traced: every number of those sentences, as written, should trace (a miss is a false alarm);
- false traces: a random number put in place of a traced one must not trace (goal <= 2%), for three kinds of
  random numbers: integers 1-100, two-decimal numbers 0.00-0.99, and numbers of the slot's own form and
  magnitude (the original times 10^U(-1, 1), at its precision);
- fabricated claims caught: a number the run did not produce must not trace (goal >= 98%): the original moved by
  2-50% at its precision, or a number of the forms a writer model slipped into a paper in issue 20 (a percentage,
  a decimal with four places, a multiplier like 4.86x, an integer with a thousands separator);
- misattributed numbers caught (no goal set; reported): a real number of the run that states something else put
  in place of the original (another distinct value of the records; for a relative claim another comparison's
  change). Runs whose facts share values (a smoke run's every node gives 150) make this the hardest case;
- sign flips caught: a true relative claim with its direction word turned around (lower/higher, fewer/more,
  faster/slower, better/worse, improves/falls behind) must be flagged (goal 100%).

    python -m benchmarks.number_check --out number_check.json [--run RUN_DIR ...] [--draws 10] [--seed 0]

The fixture run of the writeup tests is always included."""
from __future__ import annotations

import argparse
import json
import math
import platform
import random
import re
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.number_claims import paper_sentences, report_sentences, template_claims
from engine.writeup.facts import RunFacts, collect_facts
from engine.writeup.ledger import Ledger
from engine.writeup.numbers import Mention, Sentence, mentions
from engine.writeup.reading import Reading, read
from engine.writeup.tracing import Outcome, candidates, trace

# the tests' finished smoke run (benchmarks/data/smoke_run, a link to tests/writeup/fixtures/smoke_run in a
# checkout, a copy in an installed wheel)
FIXTURE = Path(__file__).resolve().parent / "data" / "smoke_run"
GOALS = {"false traces": 0.02, "fabricated caught": 0.98, "sign flips caught": 1.0}
FLIP = {"lower": "higher", "higher": "lower", "fewer": "more", "more": "fewer", "less": "more", "faster": "slower",
        "slower": "faster", "better": "worse", "worse": "better", "improves on": "falls behind",
        "falls behind": "improves on", "smaller": "larger", "larger": "smaller", "reduces": "increases",
        "increases": "reduces", "halved": "doubled", "doubled": "halved"}
_FLIP = re.compile(r"\b(" + "|".join(sorted(FLIP, key=len, reverse=True)) + r")\b")


class Slot:
    """A traced number of a sentence, and the means to trace a variant of the sentence with another number there."""

    def __init__(self, sentence: Sentence, mention: Mention, outcome: Outcome, previous: Reading | None,
                 source: str):
        self.sentence, self.mention, self.outcome, self.previous, self.source = \
            sentence, mention, outcome, previous, source
        self.relative = len(outcome.facts) == 2

    def retrace(self, ledger: Ledger, text: str | None = None, number: str | None = None) -> Outcome | None:
        """The outcome for the number at this slot in the sentence with `number` in place of the original (or the
        whole sentence replaced by `text`, the number still at the slot's start)."""
        m = self.mention
        new = text if text is not None else self.sentence.text[:m.start] + number + self.sentence.text[m.end:]
        sentence = replace(self.sentence, text=new)
        if text is None:
            found = [x for x in mentions(new) if x.start == m.start]
        else:  # the same number, counted among its namesakes
            nth = sum(x.text == m.text and x.start < m.start for x in mentions(self.sentence.text))
            found = [x for x in mentions(new) if x.text == m.text][nth:]
        if not found:
            return None
        return trace(found[0], sentence, read(sentence, ledger, self.previous), ledger)


def slots_of(sentences: list[Sentence], ledger: Ledger, source: str) -> tuple[list[Slot], list[dict]]:
    """(the traced quantity numbers of the sentences, the numbers that did not trace as written)."""
    slots, misses, readings = [], [], {}
    for s in sentences:
        previous = readings.get(id(s.previous))
        reading = read(s, ledger, previous)
        readings[id(s)] = reading
        for m in mentions(s.text):
            o = trace(m, s, reading, ledger)
            if o.status == "ignored" or (o.facts and o.facts[0].stat == "id"):
                continue
            if o.status == "traced":
                slots.append(Slot(s, m, o, previous, source))
            else:
                misses.append({"source": source, **o.to_dict()})
    return slots, misses


def form(m: Mention, value: float) -> str:
    """`value` written as the slot's number is: its decimals, its exponent, its %, x or ×, its sign."""
    decimals = max(m.decimals, 0)
    if m.exponent:
        text = f"{value / 10 ** m.exponent:.{decimals}f}e{m.exponent}"
    else:
        text = f"{abs(value):,.{decimals}f}" if "," in m.text else f"{abs(value):.{decimals}f}"
        text = ("-" if value < 0 else "") + text
    if m.kind == "percent":
        text += "%"
    elif m.kind == "ratio":
        text += "×" if "×" in m.text else "x"
    return text


def random_number(m: Mention, family: str, rng: random.Random) -> str:
    if family == "integers 1-100":
        return form(replace(m, decimals=0, exponent=0, text=m.text.replace(",", "")), rng.randint(1, 100))
    if family == "two-decimal 0.00-0.99":
        return form(replace(m, decimals=2, exponent=0, text=m.text.replace(",", "")), rng.randint(0, 99) / 100)
    magnitude = abs(m.value) or 1.0
    return form(m, math.copysign(magnitude * 10 ** rng.uniform(-1, 1), m.value or 1))


def fabricated_number(slot: Slot, kind: str, rng: random.Random) -> str:
    """A number the run did not produce, in the slot's form: the original moved by 2-50%, or a number of one of
    the forms the writer model slipped into a paper in issue 20 (a percentage, a decimal with four places, a
    multiplier, an integer with a thousands separator)."""
    m = slot.mention
    if kind == "moved 2-50%":
        return form(m, m.value * (1 + rng.choice((-1, 1)) * rng.uniform(0.02, 0.5)))
    shape = rng.choice(("percent", "four places", "multiplier", "thousands"))
    if shape == "percent":
        return f"{rng.uniform(1, 99):.1f}%"
    if shape == "four places":
        return f"{rng.uniform(0, 1):.4f}"
    if shape == "multiplier":
        return f"{rng.uniform(1.1, 9.9):.2f}x"
    return f"{rng.randint(1000, 99999):,}"


def misattributed_number(slot: Slot, values: list[float], ratios: list[float], rng: random.Random) -> str:
    """A real number of the run that states something else: another distinct value of its records (for a relative
    claim, another comparison's change), in the slot's form."""
    m = slot.mention
    if slot.relative:
        return form(m, rng.choice(ratios if m.kind == "ratio" else values))
    value = rng.choice(values)
    value = value * 100 if m.kind == "percent" and abs(value) <= 1 else value
    return form(m, value if m.value >= 0 else -abs(value))


def measure(slots: list[Slot], ledger: Ledger, rng: random.Random, draws: int) -> dict:
    out: dict = {"false traces": {}, "fabricated caught": {}, "misattributed caught": {}, "sign flips caught": {},
                 "examples": []}
    for family in ("integers 1-100", "two-decimal 0.00-0.99", "own form and magnitude"):
        def make(s: Slot, family: str = family) -> str:
            return random_number(s.mention, family, rng)
        out["false traces"][family] = _rate(slots, ledger, draws, make, "traced", out["examples"], f"random {family}")
    for kind in ("moved 2-50%", "issue 20's forms"):
        def fake(s: Slot, kind: str = kind) -> str:
            return fabricated_number(s, kind, rng)
        out["fabricated caught"][kind] = _rate(slots, ledger, draws, fake, "caught", out["examples"],
                                               f"fabricated: {kind}")
    values = sorted({f.value for f in ledger.facts if f.stat not in ("text", "name")})
    changes = sorted({abs(c.a.value - c.b.value) / abs(c.b.value) * 100 for c in ledger.comparisons if c.b.value}
                     | {abs(c.a.value - c.b.value) for c in ledger.comparisons})
    ratios = sorted({max(c.a.value, c.b.value) / min(c.a.value, c.b.value) for c in ledger.comparisons
                     if c.a.value > 0 and c.b.value > 0})

    def other(s: Slot) -> str:
        return misattributed_number(s, changes if s.relative else values, ratios, rng)
    out["misattributed caught"] = _rate(slots, ledger, draws, other, "caught", out["examples"], "misattributed")
    flips = caught = wrong_sign = 0
    for slot in slots:
        if not slot.relative or slot.outcome.facts[0].value == slot.outcome.facts[1].value:
            continue
        flipped = _FLIP.sub(lambda x: FLIP[x.group(1)], slot.sentence.text)
        if flipped == slot.sentence.text:
            continue
        o = slot.retrace(ledger, text=flipped)
        flips += 1
        caught += o is not None and o.status != "traced"
        wrong_sign += o is not None and o.status == "wrong_sign"
        if o is not None and o.status == "traced" and len(out["examples"]) < 200:
            out["examples"].append({"test": "sign flip", "sentence": flipped, "read_as": o.how})
    out["sign flips caught"] = {"flips": flips, "caught": caught, "as wrong sign": wrong_sign,
                                "rate": caught / flips if flips else None}
    return out


def _rate(slots: list[Slot], ledger: Ledger, draws: int, make, want: str, examples: list, test: str) -> dict:
    """Over `draws` numbers from `make` per slot: how many traced (want="traced") or did not (want="caught");
    and how many a fact of the same value at the precision written would let through (meaning not read)."""
    n = hits = by_value = 0
    for slot in slots:
        for _ in range(draws):
            number = next((x for x in (make(slot) for _ in range(20)) if x != slot.mention.text), None)
            if number is None:
                continue
            o = slot.retrace(ledger, number=number)
            if o is None:
                continue
            n += 1
            traced = o.status == "traced"
            hits += traced if want == "traced" else not traced
            value_only = bool(candidates(o.mention, ledger)) or (slot.relative and o.status == "wrong_sign")
            by_value += value_only if want == "traced" else not value_only
            if traced and len(examples) < 200:
                examples.append({"test": test, "number": number, "sentence": o.sentence.text, "read_as": o.how})
    return {"draws": n, want: hits, "rate": hits / n if n else None,
            "by value alone": by_value / n if n else None}


def run_one(run_dir: Path, rng: random.Random, draws: int, claims: int) -> dict:
    facts: RunFacts = collect_facts(run_dir)
    sources = {"results report": report_sentences(facts), "model-written paper": paper_sentences(run_dir),
               "template claims": template_claims(facts, rng, claims)}
    slots, misses, counts = [], [], {}
    for name, sentences in sources.items():
        found, missed = slots_of(sentences, facts.ledger, name)
        slots += found
        misses += missed
        counts[name] = {"sentences": len(sentences), "numbers": len(found) + len(missed), "traced": len(found)}
    result = measure(slots, facts.ledger, rng, draws)
    return {"run": str(run_dir), "facts": len(facts.ledger.facts), "comparisons": len(facts.ledger.comparisons),
            "sources": counts, "true numbers traced": {"numbers": len(slots) + len(misses), "traced": len(slots),
                                                        "rate": len(slots) / max(1, len(slots) + len(misses))},
            "relative slots": sum(s.relative for s in slots), "misses": misses} | result


def pooled(runs: list[dict]) -> dict:
    """The rates over all runs together."""
    total: dict = {"true numbers traced": _sum(r["true numbers traced"] for r in runs)}
    for test in ("false traces", "fabricated caught"):
        families = runs[0][test].keys()
        total[test] = {f: _sum(r[test][f] for r in runs) for f in families}
        total[test]["all"] = _sum(total[test][f] for f in families)
    total["misattributed caught"] = _sum(r["misattributed caught"] for r in runs)
    total["sign flips caught"] = _sum((r["sign flips caught"] for r in runs), n_key="flips", hit_key="caught")
    return total


def _sum(parts, n_key: str | None = None, hit_key: str | None = None) -> dict:
    parts = list(parts)
    n_key = n_key or next(k for k in ("draws", "numbers") if k in parts[0])
    hit_key = hit_key or next(k for k in parts[0] if k not in (n_key, "rate", "by value alone"))
    n, hits = sum(p[n_key] for p in parts), sum(p[hit_key] for p in parts)
    out = {n_key: n, hit_key: hits, "rate": hits / n if n else None}
    if all(p.get("by value alone") is not None for p in parts) and n:
        out["by value alone"] = sum(p["by value alone"] * p[n_key] for p in parts) / n
    return out


def table(runs: list[dict], total: dict) -> str:
    rows = [("measure", "goal", *[Path(r["run"]).name for r in runs], "all runs", "all runs, by value alone")]

    def cell(d: dict) -> str:
        n = d.get("draws", d.get("numbers", d.get("flips")))
        return "n/a" if d["rate"] is None else f"{100 * d['rate']:.1f}% of {n}"

    def alone(d: dict) -> str:
        return "" if d.get("by value alone") is None else f"{100 * d['by value alone']:.1f}%"
    rows.append(("true numbers traced", "100%", *[cell(r["true numbers traced"]) for r in runs],
                 cell(total["true numbers traced"]), ""))
    for family in total["false traces"]:
        per_run = [cell(r["false traces"][family]) for r in runs] if family != "all" else [""] * len(runs)
        rows.append((f"false traces: {family}", "<= 2%", *per_run, cell(total["false traces"][family]),
                     alone(total["false traces"][family])))
    for kind in total["fabricated caught"]:
        per_run = [cell(r["fabricated caught"][kind]) for r in runs] if kind != "all" else [""] * len(runs)
        rows.append((f"fabricated caught: {kind}", ">= 98%", *per_run, cell(total["fabricated caught"][kind]),
                     alone(total["fabricated caught"][kind])))
    rows.append(("misattributed real numbers caught", "(none set)",
                 *[cell(r["misattributed caught"]) for r in runs], cell(total["misattributed caught"]),
                 alone(total["misattributed caught"])))
    rows.append(("sign flips caught", "100%", *[cell(r["sign flips caught"]) for r in runs],
                 cell(total["sign flips caught"]), "0.0%"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.number_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, action="append", default=[], help="a finished run directory (repeatable)")
    p.add_argument("--draws", type=int, default=10, help="random / fabricated numbers per slot and kind")
    p.add_argument("--claims", type=int, default=150, help="template claims per run, absolute and relative each")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    start = time.monotonic()
    runs = [run_one(d, rng, args.draws, args.claims) for d in [FIXTURE, *args.run]]
    total = pooled(runs)
    text = table(runs, total)
    print(text)
    for r in runs:
        print(f"{r['run']}: {r['facts']} facts, {r['comparisons']} comparisons; sentences: "
              + ", ".join(f"{k} {v['sentences']} ({v['numbers']} numbers)" for k, v in r["sources"].items()))
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()} ({platform.machine()}, "
              f"{platform.python_version()})", "seconds": round(time.monotonic() - start, 1), "goals": GOALS,
              "args": {k: str(v) for k, v in vars(args).items()}, "table": text, "all runs": total, "runs": runs}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
