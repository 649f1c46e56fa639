"""The offline proposer: an honest baseline search that needs no model.

draft   = the template's code with one hyperparameter changed, so that roots differ (the run's first draft,
          the unchanged template code, comes from operators.BaselineFirst);
improve = change one tunable hyperparameter of the parent by rewriting its syntax tree;
debug   = go back to the last good code on the path to the root.
"""
from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

from search import code_edit
from search.code_edit import Scalar
from search.journal import Journal
from search.node import Node
from search.operators import NothingLeft, Proposal, StageBrief

NAME = "offline (no model: hyperparameter mutation)"
SEED_NAMES = ("seed_offset", "seed", "random_seed")  # set by the multi-seed evaluation, never tuned


@dataclass(frozen=True)
class TunableSpec:
    """How the search may vary one hyperparameter: a list of `values`, or a range [low, high]."""

    name: str
    values: tuple[Scalar, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    def propose(self, current: Scalar, rng: random.Random) -> Scalar:
        """A value different from `current` (or `current` itself when there is no other)."""
        if self.values:
            others = [v for v in self.values if v != current]
            return rng.choice(others) if others else current
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            return current
        factor = rng.choice([0.5, 2.0]) if self.log or self.low is None else None
        if factor is not None and current != 0:
            new = current * factor
        else:  # linear range, or a zero that a factor cannot move
            lo = self.low if self.low is not None else 0.0
            hi = self.high if self.high is not None else max(1.0, abs(current) * 2)
            new = current + rng.choice([-1, 1]) * (hi - lo) / 4
        if self.low is not None:
            new = max(self.low, new)
        if self.high is not None:
            new = min(self.high, new)
        if self.integer or (isinstance(current, int) and self.values == ()):
            new = max(1, int(round(new))) if current >= 1 else int(round(new))
        else:
            new = float(f"{new:.3g}")
        return new


def specs_from_code(code: str) -> dict[str, TunableSpec]:
    """For a template without a manifest: every numeric constant, argparse default, function default and inline
    number literal (`odeint.args[0]`, see code_edit.literal_tunables), varied by x0.5 / x2."""
    specs = {}
    for name, tun in code_edit.numeric_tunables(code).items():
        if name.lower() in SEED_NAMES:
            continue
        specs[name] = TunableSpec(name, log=True, integer=isinstance(tun.value, int))
    return specs


class OfflineProposer:
    name = NAME

    def __init__(self, base_code: str, tunables: dict[str, TunableSpec], max_tries: int = 30,
                 already_proposed: tuple[str, ...] = (), ablations: dict[str, dict[str, Scalar]] | None = None):
        present = code_edit.find_tunables(base_code)
        missing = sorted(set(tunables) - set(present))
        if missing:
            raise ValueError(f"tunables {missing} are not hyperparameters of experiment.py "
                             "(argparse defaults, module constants or function defaults)")
        self.base_code = base_code
        self.tunables = tunables
        self.ablations = dict(ablations or {})
        self.max_tries = max_tries
        # without a tunable, only the baseline runs: every draft and improvement ends its stage with this reason
        self.nothing_to_change = None if tunables else (
            "the template has no tunable hyperparameter (no numeric constant, argparse default, function default "
            "or number literal in a call, tuple or list), so the offline proposer can change nothing after the "
            "baseline; declare `tunables` in a manifest.yaml, or run with a model")
        # programs handed out that the journal may not hold yet (still running, or unfinished at a resume)
        self.proposed: set[str] = set(already_proposed)
        # named changes handed out per stage: proposals are written in parallel from the same brief, so the
        # brief's `taken` cannot know about a sibling written a moment ago
        self._claimed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def draft(self, journal: Journal, rng: random.Random, target: Node | None = None,
              brief: StageBrief | None = None) -> Proposal:
        if self.nothing_to_change:
            raise NothingLeft(self.nothing_to_change)
        return self._mutate(self.base_code, journal, rng, "Draft: the template's experiment with",
                            sorted(self.tunables))

    def improve(self, journal: Journal, node: Node, rng: random.Random, target: Node | None = None,
                brief: StageBrief | None = None) -> Proposal:
        kind = brief.change_kind if brief else None
        if self.nothing_to_change and kind != "ablation":
            raise NothingLeft(self.nothing_to_change)
        if kind is None:
            return self._mutate(node.code, journal, rng, f"Improve node {node.step} ({node.id}):",
                                sorted(self.tunables))
        with self._lock:
            taken = brief.taken | {name for stage, name in self._claimed if stage == brief.name}
            if kind == "ablation":
                proposal = self._ablate(node, taken)
            else:
                present = code_edit.find_tunables(node.code)
                names = [n for n in sorted(self.tunables) if n not in taken and n in present]
                if not names:
                    raise NothingLeft(f"every tunable hyperparameter has been tried once ({', '.join(sorted(taken))})")
                proposal = self._mutate(node.code, journal, rng, f"Tune node {node.step} ({node.id}):", names)
            self._claimed.add((brief.name, proposal.change))
            return proposal

    def debug(self, journal: Journal, node: Node, rng: random.Random, target: Node | None = None,
              brief: StageBrief | None = None) -> Proposal:
        ancestor = node
        while ancestor.parent_id is not None:
            ancestor = journal.get(ancestor.parent_id)
            if ancestor.is_buggy is False:
                return self._give(Proposal(f"Debug node {node.step} ({node.bug_reason or 'buggy'}): go back "
                                           f"to the last good code, node {ancestor.step}.", ancestor.code))
        return self._give(Proposal(f"Debug node {node.step} ({node.bug_reason or 'buggy'}): no good ancestor; "
                                   "go back to the template's code.", self.base_code))

    def _give(self, proposal: Proposal) -> Proposal:
        self.proposed.add(proposal.code)
        return proposal

    def _ablate(self, node: Node, taken: frozenset[str]) -> Proposal:
        """The next ablation switch of the manifest, in declared order, that this stage has not run."""
        present = code_edit.find_tunables(node.code)
        for name, settings in self.ablations.items():
            if name in taken or not set(settings) <= set(present):
                continue
            what = ", ".join(f"{k} {present[k].value!r} -> {v!r}" for k, v in settings.items())
            return self._give(Proposal(f"Ablation {name} of node {node.step}: {what}.",
                                       code_edit.set_values(node.code, settings), name))
        if not self.ablations:
            raise NothingLeft("the template declares no ablation switches (manifest.yaml `ablations`)")
        raise NothingLeft(f"every ablation switch of the template has been run ({', '.join(self.ablations)})")

    def _mutate(self, code: str, journal: Journal, rng: random.Random, prefix: str,
                names: list[str]) -> Proposal:
        """Change one of the tunables `names`, preferring a program not already in the journal."""
        seen = {n.code for n in journal} | self.proposed
        current = code_edit.find_tunables(code)
        names = [n for n in names if n in current]
        new_code, plan, changed = code, f"{prefix} no tunable could be changed.", ""
        for _ in range(self.max_tries if names else 0):
            name = rng.choice(names)
            old = current[name].value
            value = self.tunables[name].propose(old, rng)
            if value == old or (isinstance(value, float) and not math.isfinite(value)):
                continue
            new_code = code_edit.set_values(code, {name: value})
            plan, changed = f"{prefix} change {name} from {old!r} to {value!r}.", name
            if new_code not in seen:
                break
        return self._give(Proposal(plan, new_code, changed))
