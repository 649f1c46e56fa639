"""How busy a search kept its slots: one definition, used by the run's summary, the viewer (which shows the
summary's figures) and the benchmarks.

A slot's busy spans can be counted on two bases:
  submission   from a node's submission to its result reaching the driver: what the engine holds a slot for
               (summary.json `slot_utilization`)
  program      only while the node's program runs: sandbox start-up, result transfer and the driver's own time
               count as idle (summary.json `program_slot_utilization`; a lower bound of the first)
and over two windows:
  whole        the search's wall time (or, without it, the first span's start to the last one's end)
  steady       the first start to the last start: the drain at the end, when fewer nodes than slots are left,
               does not count (the benchmarks' steady state)
"""
from __future__ import annotations

from collections.abc import Sequence

from search.node import Node

Span = tuple[float, float]


def spans(nodes: Sequence[Node], basis: str = "submission") -> list[Span]:
    """The busy spans of the nodes that ran (a stage's starting copy ran nothing)."""
    if basis == "submission":
        return [(n.submitted_at, n.finished_at) for n in nodes
                if n.operator != "copy" and n.submitted_at is not None and n.finished_at is not None]
    if basis == "program":
        return [(n.exec.started_at, n.exec.started_at + n.exec.exec_time_s) for n in nodes
                if n.operator != "copy" and n.exec.started_at is not None]
    raise ValueError(f"basis must be submission or program, got {basis!r}")


def busy_share(busy: Sequence[Span], slots: int, wall_s: float | None = None, steady: bool = False) -> float | None:
    """Busy slot-seconds over slots x the window: `wall_s` when given, else first start to last end (or, with
    `steady`, to the last start, the spans clipped there). None when there is no window."""
    if not busy or slots < 1:
        return None
    first = min(s for s, _ in busy)
    if steady:
        last_start = max(s for s, _ in busy)
        window = last_start - first
        total = sum(max(0.0, min(e, last_start) - s) for s, e in busy)
    else:
        window = wall_s if wall_s is not None else max(e for _, e in busy) - first
        total = sum(e - s for s, e in busy)
    return None if window <= 0 else total / (slots * window)


def slot_utilization(nodes: Sequence[Node], slots: int, wall_s: float | None = None,
                     basis: str = "submission") -> float | None:
    """The share of slot time the search kept busy, on `basis`, over `wall_s` (the search's wall time)."""
    share = busy_share(spans(nodes, basis), slots, wall_s)
    return None if share is None else round(share, 4)
