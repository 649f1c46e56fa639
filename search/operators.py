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


class Proposer(Protocol):
    """Writes programs. The offline proposer mutates hyperparameters; an LLM proposer (later) writes code."""

    name: str

    def draft(self, journal: Journal, rng: random.Random) -> Proposal: ...

    def debug(self, journal: Journal, node: Node, rng: random.Random) -> Proposal: ...

    def improve(self, journal: Journal, node: Node, rng: random.Random) -> Proposal: ...


def propose(proposer: Proposer, journal: Journal, action: Action, rng: random.Random) -> Proposal:
    if action.operator == "draft":
        return proposer.draft(journal, rng)
    assert action.parent_id is not None, f"{action.operator} needs a parent node"
    parent = journal.get(action.parent_id)
    if action.operator == "debug":
        return proposer.debug(journal, parent, rng)
    return proposer.improve(journal, parent, rng)
