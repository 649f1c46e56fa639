"""Which node to expand next (AIDE / AI-Scientist-v2 policy), answerable while other nodes still run."""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from search.journal import Journal
from search.metric import MetricSpec
from search.node import Node, Operator


@dataclass(frozen=True)
class PolicyConfig:
    """search.* (conf/search/bfts.yaml holds the defaults and their meaning; engine.config builds this)."""

    num_drafts: int
    debug_prob: float
    max_debug_depth: int
    lookahead: int | None  # proposals written beyond the free slots (None: one per slot with a model, 0 offline)

    def __post_init__(self) -> None:
        if self.num_drafts < 1:
            raise ValueError(f"search.num_drafts must be >= 1, got {self.num_drafts}")
        if not 0.0 <= self.debug_prob <= 1.0:
            raise ValueError(f"search.debug_prob must be in [0, 1], got {self.debug_prob}")
        if self.lookahead is not None and self.lookahead < 0:
            raise ValueError(f"search.lookahead must be >= 0 or null, got {self.lookahead}")
        if self.max_debug_depth < 0:
            raise ValueError(f"search.max_debug_depth must be >= 0, got {self.max_debug_depth}")


@dataclass(frozen=True)
class Action:
    operator: Operator
    parent_id: str | None = None


def select_action(journal: Journal, pending: Sequence[Node], cfg: PolicyConfig, spec: MetricSpec,
                  rng: random.Random, anchor: str | None = None) -> Action:
    """The next thing to try.

    `pending` are nodes already handed out but not finished; they count as drafts, block their parent from
    being debugged twice, and mark their tree as being expanded. With `anchor` (a node id), every improvement
    expands that node: the ablation stage varies its starting point, never an ablation of an ablation.
    """
    drafts = len(journal.drafts) + sum(1 for n in pending if n.parent_id is None)
    if drafts < cfg.num_drafts:
        return Action("draft")

    debuggable = _debuggable(journal, pending, cfg)
    good = journal.ranked_good_nodes(spec)
    if debuggable and (not good or rng.random() < cfg.debug_prob):
        return Action("debug", rng.choice(debuggable).id)
    if not good:
        # nothing works and nothing can be debugged further: start a fresh tree
        return Action("draft")
    if anchor is not None:
        return Action("improve", anchor)

    busy_trees = {journal.root_of(n.parent_id) for n in pending if n.parent_id in journal}
    busy_trees |= {n.id for n in pending if n.parent_id is None}
    for node in good:
        if journal.root_of(node.id) not in busy_trees:
            return Action("improve", node.id)
    return Action("improve", good[0].id)


def _debuggable(journal: Journal, pending: Sequence[Node], cfg: PolicyConfig) -> list[Node]:
    """Buggy leaves (no finished or pending child) whose debug chain is still short enough; a proposal that was
    never run (no program, a repeated change) has nothing to debug."""
    pending_parents = {n.parent_id for n in pending}
    return [
        n for n in journal.buggy_nodes
        if not journal.children(n.id) and n.id not in pending_parents and n.exec.killed_reason != "proposal"
        and journal.debug_depth(n.id) < cfg.max_debug_depth
    ]
