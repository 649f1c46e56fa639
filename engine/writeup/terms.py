"""The words the number check reads: how a sentence names a quantity (a metric, a hyperparameter, a count), a
scope (the result, the baseline, a stage, a node) and a direction (higher, fewer, better, faster).

Everything is compared as canonical terms: lower case, singular, common abbreviations unified (`acc` for
accuracy, `val` for validation, `lr` for learning rate), so that `final_val_acc` in a record and "final
validation accuracies" in a sentence name the same thing."""
from __future__ import annotations

import re

# spelled-out forms and abbreviations -> one canonical term (applied after the plural is removed)
CANON = {
    "accuracy": "acc", "accuracie": "acc", "validation": "val", "valid": "val", "training": "train",
    "trained": "train", "learning": "lr", "width": "dim", "dimension": "dim", "dimensionality": "dim",
    "embedding": "dim", "modulu": "prime", "modulo": "prime", "mod": "prime", "program": "node", "iteration": "step",
    "second": "sec", "s": "sec", "minute": "min", "mins": "min", "failed": "bug", "failing": "bug", "failure": "bug",
    "crash": "bug", "crashed": "bug", "buggy": "bug", "working": "good", "successful": "good", "repeat": "seed",
    "repetition": "seed", "dollar": "cost", "usd": "cost", "without": "no", "removing": "no", "removed": "no",
    "remove": "no", "single": "one", "warm": "warmup", "stderr": "se", "sem": "se", "std": "sd",
    "deviation": "sd", "gpus": "gpu", "ablated": "ablation", "ablating": "ablation", "lrs": "lr", "started": "start",
    "starting": "start",
}
# words a record's key carries that say nothing about what is measured
GENERIC = {"final", "mean", "avg", "average", "total", "value", "num", "number", "of", "the", "x", "y", "size",
           "rate", "model", "n", "per", "max", "best", "last", "overall", "metric", "primary", "minimize", "maximize",
           "and", "a", "to", "in", "run", "means", "stderrs"}
NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20}
# counted nouns after which a number word states a quantity ("two seeds"); elsewhere ("two ideas") it is prose
COUNTED = {"seed", "stage", "node", "run", "layer", "head", "step", "epoch", "dataset", "ablation", "change", "copy",
           "gpu", "setting"}
# multiplier words: (ratio, raw sign or 0 when the sentence's other words give it)
MULTIPLIER_WORDS = {"twice": (2, 0), "double": (2, 1), "doubled": (2, 1), "doubles": (2, 1), "doubling": (2, 1),
                    "triple": (3, 1), "tripled": (3, 1), "triples": (3, 1), "tripling": (3, 1),
                    "quadrupled": (4, 1), "halved": (2, -1), "halves": (2, -1), "halving": (2, -1),
                    "half": (2, -1)}
UP = {"higher", "more", "larger", "greater", "increase", "increased", "increasing", "rise", "rose", "risen",
      "grew", "grow", "raise", "raised", "longer", "bigger", "above", "exceed", "exceeded", "up", "added", "adds"}
DOWN = {"lower", "fewer", "less", "smaller", "decrease", "decreased", "decreasing", "reduce", "reduced", "reduction",
        "reducing", "drop", "dropped", "fell", "fall", "cut", "shorter", "below", "down", "lowered", "saving",
        "saved", "shrank", "shrink", "lowering", "declined"}
GOOD = {"better", "improve", "improved", "improvement", "improving", "outperform", "outperformed", "beat", "beats",
        "gain", "helped", "help", "superior", "advantage"}
BAD = {"worse", "behind", "trail", "trails", "degrade", "degraded", "degradation", "hurt", "hurts", "underperform",
       "underperformed", "regression", "inferior", "penalty", "harm", "harmed"}
FAST = {"faster", "quicker", "sooner", "earlier", "speedup", "fast", "quickly", "quick"}
SLOW = {"slower", "later", "slowdown", "slow"}
NEGATION = {"no", "not", "never", "nor", "neither", "without"}
# a quantity whose name says so is a time or a count of steps: "faster" means fewer of it
TIME_LIKE = {"step", "sec", "time", "min", "epoch", "hour", "latency", "ms"}
MINIMIZED = TIME_LIKE | {"loss", "error", "err", "perplexity", "ppl", "mse", "mae", "rmse", "nll", "bpc", "cost"}
MAXIMIZED = {"acc", "score", "reward", "f1", "auc", "bleu", "precision", "recall", "return", "throughput", "r2",
             "map", "iou", "success"}
# words after which a number is a label, not a quantity: Figure 2, Table 1, Section 3, Eq. 4
REFERENCE_WORDS = {"figure", "fig", "figs", "table", "tab", "section", "sec", "eq", "equation", "appendix",
                   "algorithm", "line", "chapter", "stage", "listing", "footnote", "page", "item", "part"}
ID_WORDS = {"node", "step", "seed", "nodes", "steps", "seeds"}  # "node 3", "seed 1": identifiers of the run
# words after which the scope named next is the reference of a comparison ("than the baseline")
REFERENCE_MARKERS = {"than", "over", "versus", "vs", "against", "relative", "compared", "from"}
NUMBER = "<n>"  # a number standing alone in a text, as a term
STOP = {"the", "a", "an", "of", "to", "in", "on", "at", "by", "for", "and", "or", "with", "is", "was", "were",
        "are", "be", "been", "it", "its", "this", "that", "as", "from", "we", "our", "which"}


def canon(word: str) -> str:
    """One word as a canonical term: lower case, singular, abbreviation."""
    w = word.lower()
    if w in CANON:
        return CANON[w]
    if len(w) > 3 and not w.isdigit():
        if w.endswith("sses"):
            w = w[:-2]
        elif w.endswith("ies"):
            w = w[:-3] + "y"
        elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
    return CANON.get(w, w)


def terms(text: str) -> list[str]:
    """The canonical terms of a text, in order (identifiers split at underscores: step_val_acc_99)."""
    text = re.sub(r"warm-up", "warmup", text, flags=re.IGNORECASE)
    return [canon(t) for t in re.findall(r"[A-Za-z]+|\d+", text.replace("_", " "))]


def positioned_terms(text: str) -> list[tuple[str, int]]:
    """(term, offset) of each word of a text; a number standing alone is NUMBER (it names nothing), a digit
    attached to a name stays ("beta2": beta, 2)."""
    text = re.sub(r"(?i)warm-up", "warmup ", text)
    out = []
    for m in re.finditer(r"[A-Za-z]+|\d+(?:[.,]\d+)*", text):
        alone = m.group()[0].isdigit() and (m.start() == 0 or not (text[m.start() - 1].isalpha()
                                                                    or text[m.start() - 1] == "_"))
        out.append((NUMBER if alone else canon(m.group()), m.start()))
    return out


def name_terms(key: str) -> frozenset[str]:
    """What a record's key names: its terms less the generic ones (all of them when every one is generic)."""
    found = [t for t in terms(key)]
    return frozenset(t for t in found if t not in GENERIC) or frozenset(found)


def direction_of(quantity: str) -> str | None:
    """'minimize' / 'maximize' as a quantity's name implies (val_loss, final_acc), else None."""
    found = set(terms(quantity))
    if found & TIME_LIKE:  # steps to an accuracy, time to a score: fewer is better
        return "minimize"
    if found & MAXIMIZED and not found & MINIMIZED:
        return "maximize"
    if found & MINIMIZED:
        return "minimize"
    return None


def is_time_like(quantity: str) -> bool:
    return bool(set(terms(quantity)) & TIME_LIKE)
