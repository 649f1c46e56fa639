"""The journal: every node of a run, in creation order, with tree queries over them."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from search.metric import MetricSpec, MetricValue
from search.node import RERUNS, Node


class Journal:
    def __init__(self, nodes: Iterable[Node] = ()):
        self._nodes: dict[str, Node] = {}
        for node in nodes:
            self.add(node)

    def add(self, node: Node) -> None:
        if node.id in self._nodes:
            raise ValueError(f"node {node.id} is already in the journal")
        if node.parent_id is not None and node.parent_id not in self._nodes:
            raise ValueError(f"node {node.id} names parent {node.parent_id}, which is not in the journal")
        self._nodes[node.id] = node

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes.values())

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._nodes

    def get(self, node_id: str) -> Node:
        return self._nodes[node_id]

    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def children(self, node_id: str) -> list[Node]:
        return [n for n in self._nodes.values() if n.parent_id == node_id]

    def root_of(self, node_id: str) -> str:
        node = self._nodes[node_id]
        while node.parent_id is not None:
            node = self._nodes[node.parent_id]
        return node.id

    def debug_depth(self, node_id: str) -> int:
        """How many debug steps in a row led to this node."""
        depth, node = 0, self._nodes[node_id]
        while node.operator == "debug" and node.parent_id is not None:
            depth += 1
            node = self._nodes[node.parent_id]
        return depth

    @property
    def drafts(self) -> list[Node]:
        return [n for n in self._nodes.values() if n.parent_id is None]

    @property
    def good_nodes(self) -> list[Node]:
        """Working candidates; seed and final evaluation runs evaluate a candidate, they are not candidates."""
        return [n for n in self._nodes.values() if n.is_buggy is False and n.operator not in RERUNS]

    @property
    def buggy_nodes(self) -> list[Node]:
        return [n for n in self._nodes.values() if n.is_buggy is True]

    def metric_of(self, node: Node, spec: MetricSpec) -> MetricValue:
        return MetricValue(None if node.is_buggy else node.metric, spec)

    def best_node(self, spec: MetricSpec) -> Node | None:
        """The good node with the best primary metric (the earliest created wins a tie)."""
        ranked = self.ranked_good_nodes(spec)
        return ranked[0] if ranked else None

    def ranked_good_nodes(self, spec: MetricSpec) -> list[Node]:
        """Good nodes, best first; ties in creation order."""
        by_step = sorted(self.good_nodes, key=lambda n: n.step)
        return sorted(by_step, key=lambda n: self.metric_of(n, spec), reverse=True)
