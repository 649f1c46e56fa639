"""The operator interface: draft / debug / improve, independent of who writes the code."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from search.journal import Journal
from search.node import Node
from search.policy import Action


@dataclass(frozen=True)
class Proposal:
    plan: str
    code: str
    change: str = ""  # the named change (hyperparameter, ablation) when the stage asks for one


@dataclass(frozen=True)
class StageBrief:
    """What the current stage asks of a proposer.

    `change_kind` is "hyperparameter" or "ablation" when each improvement must make one named change not in
    `taken`; `suggestions` are names the template declares (its tunables, its ablation switches); `notes` are
    signals for the model (e.g. "scale up")."""

    name: str = "initial"
    goal: str = ""
    change_kind: str | None = None
    taken: frozenset[str] = frozenset()
    suggestions: tuple[str, ...] = ()
    notes: str = ""


class NothingLeft(Exception):
    """The proposer has no untried named change left for this stage: the stage is complete."""


class StopSearch(Exception):
    """No program may be written any more in this run (its budget is spent): the search winds down without deciding
    the stage in progress, so that a resume with a larger budget continues it."""


class Proposer(Protocol):
    """Writes programs. The offline proposer mutates hyperparameters; the LLM proposer asks a model.

    `target` is the node being written (id, step, stage: for bookkeeping such as the cost ledger); `brief` is
    what the stage asks for (None: the plain search of stage 1)."""

    name: str

    def draft(self, journal: Journal, rng: random.Random, target: Node | None = None,
              brief: StageBrief | None = None) -> Proposal: ...

    def debug(self, journal: Journal, node: Node, rng: random.Random, target: Node | None = None,
              brief: StageBrief | None = None) -> Proposal: ...

    def improve(self, journal: Journal, node: Node, rng: random.Random, target: Node | None = None,
                brief: StageBrief | None = None) -> Proposal: ...


def propose(proposer: Proposer, journal: Journal, action: Action, rng: random.Random,
            target: Node | None = None, brief: StageBrief | None = None) -> Proposal:
    if action.operator == "draft":
        return proposer.draft(journal, rng, target, brief)
    assert action.parent_id is not None, f"{action.operator} needs a parent node"
    parent = journal.get(action.parent_id)
    if action.operator == "debug":
        # a fix keeps the change it fixes: the name stays taken by this branch
        proposal = proposer.debug(journal, parent, rng, target, brief)
        return Proposal(proposal.plan, proposal.code, proposal.change or parent.change)
    return proposer.improve(journal, parent, rng, target, brief)


class BaselineFirst:
    """Makes the first draft of a run the template's own code, unchanged: the baseline every other node is
    measured against (v1 asked users to run it by hand as run_0)."""

    PLAN = "Draft: the template's experiment, unchanged (the baseline)."

    def __init__(self, base_code: str, already_proposed: tuple[str, ...] = ()):
        self.base_code = base_code
        self.proposed: tuple[str, ...] = already_proposed

    def due(self, journal: Journal) -> bool:
        return self.base_code not in self.proposed and all(n.code != self.base_code for n in journal.drafts)

    def wrap(self, proposer: Proposer) -> Proposer:
        outer = self

        class _Wrapped:
            name = proposer.name

            def draft(self, journal: Journal, rng: random.Random, target: Node | None = None,
                      brief: StageBrief | None = None) -> Proposal:
                if outer.due(journal):
                    outer.proposed += (outer.base_code,)
                    return Proposal(outer.PLAN, outer.base_code)
                return proposer.draft(journal, rng, target, brief)

            def debug(self, journal: Journal, node: Node, rng: random.Random, target: Node | None = None,
                      brief: StageBrief | None = None) -> Proposal:
                return proposer.debug(journal, node, rng, target, brief)

            def improve(self, journal: Journal, node: Node, rng: random.Random, target: Node | None = None,
                        brief: StageBrief | None = None) -> Proposal:
                return proposer.improve(journal, node, rng, target, brief)

        return _Wrapped()
