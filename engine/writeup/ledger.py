"""The run's facts with their meaning: every number the records hold, with the file and key it came from, the
quantity it measures (the primary metric, another metric, a hyperparameter, a count), what statistic it is (a
single run's value, a mean over seeds, a standard error, an interval bound, a delta) and whose it is (its scope:
the result, the baseline, a stage, a node, an ablation). Pairs of facts of one quantity that a paper may compare
(the result against the baseline, a node against its stage's start, an ablation against the result) are kept as
comparisons, so that a relative claim can be recomputed with its sign.

`build_ledger` reads the records collect_facts already loaded; the number check (tracing.py) reads the ledger."""
from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.writeup.numbers import clause_of, mentions
from engine.writeup.terms import NUMBER, STOP, direction_of, name_terms, positioned_terms

HEADLINE = frozenset({"result", "best"})
# scope tags: result, best, baseline, start (a stage's or a change's starting value), run (the best program's
# settings: true of the run whatever the sentence is about), tried (a setting a node changed: true where the
# sentence speaks of trying or changing), total (counts, time and cost of the whole run: true of a sentence
# that names no stage or node), stage:<name>, node:<step>, ablation:<name>, data:<dataset>
DEFAULT_REFERENCES = frozenset({"baseline", "start", "result"})  # what a comparison is against when unnamed
SPREAD, INTERVAL = frozenset({"stderr", "sd"}), frozenset({"ci_lo", "ci_hi", "ci_delta_lo", "ci_delta_hi"})
_COUNT_NAMES = {"nodes": ({"node"},), "good": ({"good"},), "buggy": ({"bug"},), "copies": ({"copy"},),
                "seed_runs": ({"seed", "run"},), "budget": ({"budget"},), "seeds": ({"seed"}, {"run"}, {"n"}),
                "stages": ({"stage"},), "wall_time_s": ({"wall"}, {"time"}, {"sec"}), "wall_time_min": ({"min"},),
                "cost_usd": ({"cost"},), "exec_time_s": ({"time"}, {"sec"})}
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")
_PLAN_CHANGE = re.compile(r"(\w+)(?:\s+from)?\s+(-?[\d.]+(?:e-?\d+)?)\s+(?:to|->|→)\s+(-?[\d.]+(?:e-?\d+)?)")


@dataclass(frozen=True)
class Fact:
    value: float
    file: str  # relative to the run directory
    key: str  # where in the file ("result.ci95[0]", "x_plus_y.means.final_val_acc")
    quantity: str  # what it measures, as the run names it
    stat: str  # value | mean | stderr | sd | ci_lo | ci_hi | delta | ci_delta_lo | ci_delta_hi | count | setting
    #            | name (a number in a metric's name) | text (a number in a record's prose)
    scope: frozenset[str]  # result, best, baseline, start, run, stage:<name>, node:<step>, ablation:<name>, data:<d>
    names: tuple[frozenset[str], ...]  # term sets any one of which names its quantity in a sentence
    context: frozenset[str] = frozenset()  # a text fact: the words around it in its record

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "key": self.key, "value": self.value, "quantity": self.quantity, "stat": self.stat}


@dataclass(frozen=True)
class Comparison:
    """Two facts of one quantity a paper may compare: `a` (the subject) against `b` (the reference)."""
    a: Fact
    b: Fact
    direction: str | None  # of the quantity: minimize | maximize | None (unknown)


@dataclass
class Ledger:
    primary: str
    direction: str
    facts: list[Fact]
    comparisons: list[Comparison]
    scopes: dict[str, list[frozenset[str]]]  # scope tag -> the term sets that name it in a sentence
    weak: set[str]  # tags named by words that do not displace the headline ("weight decay" names node 7)
    ids: dict[str, dict[int, tuple[str, str]]]  # "node" / "seed" -> step or seed -> (file, key) it is recorded at
    _keys: list[float] = field(default_factory=list, repr=False)
    _sorted: list[Fact] = field(default_factory=list, repr=False)
    quantity_names: list[frozenset[str]] = field(default_factory=list, repr=False)
    count_names: list[frozenset[str]] = field(default_factory=list, repr=False)
    name_values: set[float] = field(default_factory=set, repr=False)  # numbers in metric names (the 99)

    def __post_init__(self) -> None:
        self._sorted = sorted(self.facts, key=lambda f: f.value)
        self._keys = [f.value for f in self._sorted]
        self.quantity_names = list(dict.fromkeys(n for f in self.facts if f.stat not in ("text", "count")
                                                 for n in f.names))
        self.count_names = list(dict.fromkeys(n for f in self.facts if f.stat == "count" for n in f.names))
        self.name_values = {f.value for f in self.facts if f.stat == "name"}

    def near(self, lo: float, hi: float) -> list[Fact]:
        """The facts whose value lies in [lo, hi]."""
        return self._sorted[bisect.bisect_left(self._keys, lo):bisect.bisect_right(self._keys, hi)]

    def names_a_quantity(self, words: set[str], counts: bool = False) -> bool:
        """Whether `words` name a measured quantity of the run (also a counted one, with `counts`)."""
        return any(n <= words for n in self.quantity_names + (self.count_names if counts else []))


class _Builder:
    def __init__(self, primary: str, direction: str):
        self.primary, self.direction = primary, direction
        self.facts: list[Fact] = []
        self.comparisons: list[Comparison] = []
        self.scopes: dict[str, list[frozenset[str]]] = {
            "baseline": [frozenset({"baseline"})], "start": [frozenset({"start"})],
            "result": [frozenset({w}) for w in ("result", "best", "chosen", "proposed", "our")],
            "tried": [frozenset({w}) for w in ("tried", "try", "tested", "explored", "change", "changed", "changing",
                                               "varied", "vary", "varying", "swept", "sweep", "tune", "tuned",
                                               "doubling", "halving", "instead", "increasing", "decreasing",
                                               "raising", "lowering")]}
        self.weak: set[str] = {"result", "tried"}
        self.ids: dict[str, dict[int, tuple[str, str]]] = {"node": {}, "seed": {}}
        self.baseline: Fact | None = None
        terms_ = name_terms(primary)
        self.primary_names = (tuple(frozenset({t}) for t in terms_) + (frozenset(terms_),) * (len(terms_) > 1)
                              + (frozenset({"metric"}), frozenset({"score"})))

    def names(self, quantity: str) -> tuple[frozenset[str], ...]:
        if quantity == self.primary:
            return self.primary_names
        if quantity in _COUNT_NAMES:
            return tuple(frozenset(n) for n in _COUNT_NAMES[quantity])
        return (name_terms(quantity),)

    def add(self, value: Any, file: str, key: str, quantity: str, stat: str, scope: Iterable[str]) -> Fact | None:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return None
        fact = Fact(float(value), file, key, quantity, stat, frozenset(scope), self.names(quantity))
        self.facts.append(fact)
        for tag in fact.scope:
            if tag.startswith("data:") and tag not in self.scopes:  # x_plus_y: named by "plus"
                self.name_scope(tag, name_terms(tag.split(":", 1)[1]))
        return fact

    def identify(self, kind: str, value: Any, file: str, key: str) -> None:
        """A node step or a seed the run has, where it is recorded (the first record found)."""
        if _int(value) is not None:
            self.ids[kind].setdefault(_int(value), (file, key))

    def name_scope(self, tag: str, *names: Iterable[str], weak: bool = False) -> None:
        self.scopes.setdefault(tag, []).extend(frozenset(n) for n in names if n)
        if weak:
            self.weak.add(tag)

    def compare(self, a: Fact | None, b: Fact | None) -> None:
        if a is not None and b is not None and a is not b:
            direction = self.direction if a.quantity == self.primary else direction_of(a.quantity)
            self.comparisons.append(Comparison(a, b, direction))

    def text(self, text: Any, file: str, key: str, scope: Iterable[str]) -> None:
        """The numbers of a record's prose, each with the words around it; 'change X from A to B' also gives
        the setting X its values and a comparison of them."""
        if not isinstance(text, str) or not text:
            return
        words = [(w, p) for w, p in positioned_terms(text) if w not in STOP and w != NUMBER]
        for m in mentions(text):
            if m.label in ("node", "seed", "reference") or m.word:
                continue
            lo, hi = clause_of(text, m.start, m.end)
            around = [w for w, p in words if lo <= p < m.start][-4:] + [w for w, p in words if m.end <= p < hi][:4]
            self.facts.append(Fact(m.value, file, key, "text", "text", frozenset(scope), (), frozenset(around)))
        for name, old, new in _PLAN_CHANGE.findall(text):
            try:
                before, after = float(old.rstrip(".")), float(new.rstrip("."))
            except ValueError:
                continue
            a = self.add(after, file, key, name, "setting", {"tried", *scope})
            self.compare(a, self.add(before, file, key, name, "setting", {"tried", "start", *scope}))


def build_ledger(summary: dict[str, Any], stage_records: dict[str, dict[str, Any]],
                 node_infos: dict[str, dict[str, Any]], tree: dict[str, Any] | None,
                 settings: dict[str, dict[str, Any]]) -> Ledger:
    """The ledger of a run from its records: summary.json, stages/<name>/summary.json, each node folder's
    final_info.json (folder -> data), tree.json and the settings of programs (file -> name -> value: the best
    program's and the baseline's)."""
    metric = summary.get("primary_metric") or {}
    b = _Builder(str(metric.get("name")), str(metric.get("direction")))
    best = summary.get("best") or {}
    base_step = re.search(r"node (\d+)", str(summary.get("baseline_source") or ""))
    baseline_node = _int(base_step.group(1)) if base_step else None
    roles = {_int(best.get("step")): "best", baseline_node: "baseline"}
    roles.pop(None, None)
    _summary(b, summary)
    for i, st in enumerate(summary.get("stages") or []):
        name = str(st.get("name"))
        _stage(b, i, name, st, stage_records.get(name) or {}, best.get("node_id"))
    node_facts = _nodes(b, node_infos, tree, roles)
    base = node_facts.get(baseline_node, {}) if baseline_node is not None else {}
    for found in node_facts.values():
        for key, fact in found.items():
            b.compare(fact, base.get(key))
    for file, found in settings.items():
        for name, value in found.items():
            b.add(value, file, name, name, "setting", {"run"})
    b.add(len(summary.get("stages") or []), "summary.json", "len(stages)", "stages", "count", {"total"})
    for quantity in {f.quantity for f in b.facts if f.stat not in ("text", "setting")}:
        for m in re.finditer(r"(?<=_)\d+(?:\.\d+)?", quantity):  # step_val_acc_99: the 99 of the name
            b.add(float(m.group()), "summary.json" if quantity == b.primary else "final_info.json",
                  f"the name {quantity}", quantity, "name", {"run"})
    return Ledger(b.primary, b.direction, b.facts, b.comparisons, b.scopes, b.weak, b.ids)


def _summary(b: _Builder, s: dict[str, Any]) -> None:
    f, p = "summary.json", b.primary
    best = s.get("best") or {}
    base = b.baseline = b.add(s.get("baseline"), f, "baseline", p, "value", {"baseline"})
    top = b.add(best.get("value"), f, "best.value", p, "value", {"best", f"node:{best.get('step')}"})
    b.compare(top, base)
    b.identify("node", best.get("step"), f, "best.step")
    for key, value in (s.get("nodes") or {}).items():
        quantity = "nodes" if key == "total" else key
        b.add(value, f, f"nodes.{key}", quantity, "count", {"total"})
    b.add(s.get("wall_time_s"), f, "wall_time_s", "wall_time_s", "value", {"total"})
    if isinstance(s.get("wall_time_s"), (int, float)):
        b.add(s["wall_time_s"] / 60, f, "wall_time_s / 60", "wall_time_min", "value", {"total"})
    b.add(s.get("cost_usd"), f, "cost_usd", "cost_usd", "value", {"total"})
    for key, value in (s.get("tokens") or {}).items():
        b.add(value, f, f"tokens.{key}", f"{key} tokens", "count", {"total"})
    b.add(s.get("llm_calls"), f, "llm_calls", "model calls", "count", {"total"})
    for i, st in enumerate(s.get("stages") or []):
        tag, k = {f"stage:{st.get('name')}"}, f"stages[{i}]"
        b.add(st.get("nodes"), f, f"{k}.nodes", "nodes", "count", tag)
        b.compare(b.add(st.get("best_value"), f, f"{k}.best_value", p, "value", tag), base)
        b.compare(b.add(st.get("seed_mean"), f, f"{k}.seed_mean", p, "mean", tag), base)
        b.add(st.get("seed_stderr"), f, f"{k}.seed_stderr", p, "stderr", tag)
        b.text(st.get("why"), f, f"{k}.why", tag)
    if isinstance(s.get("result"), dict):
        _result(b, s["result"])
    for i, ab in enumerate(s.get("ablations") or []):
        if isinstance(ab, dict):
            _ablation(b, i, ab)


def _result(b: _Builder, r: dict[str, Any]) -> None:
    """summary.json `result`: the chosen node measured on fresh seeds, the baseline on the same seeds, the
    held-out metrics."""
    f, p = "summary.json", b.primary
    mean = _stats(b, r, "result", p, {"result"})
    b.add(r.get("n"), f, "result.n", "seeds", "count", {"result"})
    b.identify("node", r.get("step"), f, "result.step")
    for key in ("seeds", "selection_seeds"):
        for k, seed in enumerate(r.get(key) or []):
            b.identify("seed", seed, f, f"result.{key}[{k}]")
    b.text(r.get("chosen_by"), f, "result.chosen_by", {"result"})
    base = r.get("baseline")
    if isinstance(base, dict):
        b.compare(mean, _stats(b, base, "result.baseline", p, {"baseline"}))
        b.add(base.get("n"), f, "result.baseline.n", "seeds", "count", {"baseline"})
    gain = r.get("improvement")
    if isinstance(gain, dict):  # the result minus the baseline, seed by seed, with its interval
        b.add(gain.get("mean"), f, "result.improvement.mean", p, "delta", {"result"})
        lo_hi = gain.get("ci95")
        if isinstance(lo_hi, (list, tuple)) and len(lo_hi) == 2:
            b.add(lo_hi[0], f, "result.improvement.ci95[0]", p, "ci_delta_lo", {"result"})
            b.add(lo_hi[1], f, "result.improvement.ci95[1]", p, "ci_delta_hi", {"result"})
        b.add(gain.get("n"), f, "result.improvement.n", "seeds", "count", {"result"})
    for name, stats in (r.get("held_out") or {}).items():
        if isinstance(stats, dict):
            _stats(b, stats, f"result.held_out.{name}", str(name), {"result"})


def _ablation(b: _Builder, i: int, ab: dict[str, Any]) -> None:
    """summary.json `ablations[i]`: an ablation's effect on the fresh seeds, against the result."""
    f, p, name = "summary.json", b.primary, str(ab.get("name"))
    tag, k = {f"ablation:{name}", "stage:ablations"}, f"ablations[{i}]"
    b.name_scope(f"ablation:{name}", name_terms(name))
    mean = _stats(b, ab, k, p, tag)
    b.add(ab.get("n"), f, f"{k}.n", "seeds", "count", tag)
    b.add(ab.get("delta"), f, f"{k}.delta", p, "delta", tag)
    lo_hi = ab.get("ci95_delta")
    if isinstance(lo_hi, (list, tuple)) and len(lo_hi) == 2:
        b.add(lo_hi[0], f, f"{k}.ci95_delta[0]", p, "ci_delta_lo", tag)
        b.add(lo_hi[1], f, f"{k}.ci95_delta[1]", p, "ci_delta_hi", tag)
    result = next((x for x in b.facts if x.key == "result.mean"), None)
    b.compare(mean, result)
    change = ab.get("change")
    if isinstance(change, dict):
        for key, value in change.items():
            b.add(value, f, f"{k}.change.{key}", str(key), "setting", {"run"})
    else:
        b.text(change, f, f"{k}.change", tag)


def _stats(b: _Builder, d: dict[str, Any], key: str, quantity: str, scope: set[str]) -> Fact | None:
    """mean, stderr and ci95 [lo, hi] of a record."""
    f = "summary.json"
    mean = b.add(d.get("mean"), f, f"{key}.mean", quantity, "mean", scope)
    b.add(d.get("stderr"), f, f"{key}.stderr", quantity, "stderr", scope)
    ci = d.get("ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        b.add(ci[0], f, f"{key}.ci95[0]", quantity, "ci_lo", scope)
        b.add(ci[1], f, f"{key}.ci95[1]", quantity, "ci_hi", scope)
    return mean


def _stage(b: _Builder, i: int, name: str, st: dict[str, Any], rec: dict[str, Any], best_id: Any) -> None:
    f, p, tag = f"stages/{name}/summary.json", b.primary, {f"stage:{name}"}
    title = str(st.get("title") or rec.get("title") or "")
    b.name_scope(f"stage:{name}", name_terms(name), name_terms(title) if title else (),
                 {_ORDINALS[i], "stage"} if i < len(_ORDINALS) else (), {"stage", str(i + 1)})
    b.add(rec.get("budget"), f, "budget", "budget", "count", tag)
    b.add(rec.get("nodes"), f, "nodes", "nodes", "count", tag)
    start = b.add((rec.get("started_from") or {}).get("value"), f, "started_from.value", p, "value", tag | {"start"})
    top = b.add((rec.get("best") or {}).get("value"), f, "best.value", p, "value", tag)
    b.compare(top, start)
    seeds = rec.get("seeds") or {}
    best_step = _int((rec.get("best") or {}).get("step"))  # the node the seeds evaluate
    stage_best = tag | ({"best"} if (rec.get("best") or {}).get("node_id") == best_id and best_id else set()) | \
        ({f"node:{best_step}"} if best_step is not None else set())
    b.add(seeds.get("asked"), f, "seeds.asked", "seeds", "count", stage_best)
    b.add(seeds.get("ok"), f, "seeds.ok", "seeds", "count", stage_best)
    for k, seed in enumerate(seeds.get("seeds") or []):
        b.identify("seed", seed, f, f"seeds.seeds[{k}]")
    for j, value in enumerate(seeds.get("values") or []):
        b.add(value, f, f"seeds.values[{j}]", p, "value", tag)
    mean = b.add(seeds.get("mean"), f, "seeds.mean", p, "mean", stage_best)
    b.compare(mean, start)
    b.compare(mean, b.baseline)
    b.add(seeds.get("stderr"), f, "seeds.stderr", p, "stderr", stage_best)
    for metric, agg in (seeds.get("aggregate") or {}).items():
        quantity = re.sub(r"\s*\(.*\)$", "", str(metric))
        data, _, quantity = quantity.rpartition("/")
        if "primary" in str(metric):
            quantity = p
        scope = stage_best | ({f"data:{data}"} if data else set())
        for stat in ("mean", "stderr"):
            b.add((agg or {}).get(stat), f, f"seeds.aggregate[{metric!r}].{stat}", quantity, stat, scope)
        b.add((agg or {}).get("n"), f, f"seeds.aggregate[{metric!r}].n", "seeds", "count", tag)
    for j, h in enumerate(rec.get("history") or []):
        step = _int(h.get("step"))
        node = {f"node:{step}"}
        b.identify("node", step, f, f"history[{j}].step")
        value = b.add(h.get("value"), f, f"history[{j}].value", p, "value", node)
        b.compare(value, start)
        b.compare(value, b.baseline)
        for key in ("plan", "bug_reason"):
            b.text(h.get(key), f, f"history[{j}].{key}", node)
        if h.get("change") and "=" not in str(h["change"]):
            b.name_scope(f"node:{step}", name_terms(str(h["change"])), weak=True)
    for key in ("why", "goal"):
        b.text(rec.get(key), f, key, tag)


def _nodes(b: _Builder, infos: dict[str, dict[str, Any]], tree: dict[str, Any] | None,
           roles: dict[int, str]) -> dict[int, dict[tuple[str, str], Fact]]:
    """Each node's metrics (final_info.json) and its tree.json record; returns step -> (data, metric) -> fact."""
    found: dict[int, dict[tuple[str, str], Fact]] = {}
    for folder, info in infos.items():
        step = _int(folder.split("-", 1)[0])
        if step is None:
            continue
        b.identify("node", step, f"nodes/{folder}", "its folder")
        scope = {f"node:{step}"} | ({roles[step]} if step in roles else set())
        for (data, metric, stat), (key, value) in _metrics(info).items():
            tags = scope | ({f"data:{data}"} if data else set())
            fact = b.add(value, f"nodes/{folder}/final_info.json", key, b.primary if metric == b.primary else metric,
                         stat, tags)
            if fact is not None and stat == "value":
                found.setdefault(step, {})[(data, metric)] = fact
    for i, node in enumerate((tree or {}).get("nodes") or []):
        step = _int(node.get("step"))
        if step is None:
            continue
        b.identify("node", step, "tree.json", f"nodes[{i}].step")
        scope = {f"node:{step}"} | ({roles[step]} if step in roles else set())
        b.add(node.get("metric"), "tree.json", f"nodes[{i}].metric", b.primary, "value", scope)
        b.add(node.get("exec_time_s"), "tree.json", f"nodes[{i}].exec_time_s", "exec_time_s", "value", scope)
        b.text(node.get("plan"), "tree.json", f"nodes[{i}].plan", scope)
    return found


def _metrics(info: dict[str, Any]) -> dict[tuple[str, str, str], tuple[str, float]]:
    """(dataset, metric, stat) -> (key, value) of a final_info.json: the v1 shape {dataset: {means, stderrs}}, or
    flat {metric: value} / {metric: {means: value}}."""
    out: dict[tuple[str, str, str], tuple[str, float]] = {}
    for top, block in info.items():
        if isinstance(block, dict) and isinstance(block.get("means"), dict):
            for stat, group in (("value", "means"), ("stderr", "stderrs")):
                for metric, value in (block.get(group) or {}).items():
                    out[(str(top), str(metric), stat)] = (f"{top}.{group}.{metric}", value)
        elif isinstance(block, dict) and "means" in block:
            out[("", str(top), "value")] = (f"{top}.means", block["means"])
        elif isinstance(block, (int, float)):
            out[("", str(top), "value")] = (str(top), block)
    return out


def _int(x: Any) -> int | None:
    try:
        return int(x) if x is not None and not isinstance(x, bool) else None
    except (TypeError, ValueError):
        return None
