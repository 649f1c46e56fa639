"""The engine-scale benchmark's arithmetic (benchmarks/engine_scale.py): per-decile figures from a run's node records
and from samples of the driver process. Pure functions, no I/O, so tests can feed them made-up runs.

A run's nodes are put in finish order and cut into ten deciles; decile k's window runs from the last result of
decile k-1 (for the first: the first submission) to its own last result.

    overhead      per result, from the node records: the time from the driver taking a result (`finished_at`) to
                  its slot's next submission (`submitted_at` of the next node on the same `slot`). This is the
                  driver's own definition (engine/nodes/driver.py: `overhead_s`, whose run median is summary.json's
                  `driver_overhead_ms_median`), read from the timestamps the run records for every node.
    slot gap      per result: the program's end (`exec.started_at + exec_time_s`) to the next program's start on
                  the same slot: everything a slot spends not running a program (result transfer, a result waiting
                  while the driver is busy, the overhead above, sandbox start-up).
    slot use      two ways, over slots x the window: submission to result (what summary.json's `slot_utilization`
                  counts: a finished result waiting for the driver counts as busy) and the programs' own run time.
    per result    growth of a sampled quantity (the driver's RSS, the bytes it passed to write(), the run
                  directory's size) across the window, over the results in it; samples are interpolated linearly at
                  the window's ends.
"""
from __future__ import annotations

import bisect
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeTimes:
    """What the benchmark reads of one node's record (seconds since the epoch)."""

    submitted: float
    finished: float
    started: float  # the program's own start, as its runner measured it
    run_s: float  # the program's own run time
    slot: int | None


@dataclass(frozen=True)
class Sample:
    """The driver process at one moment: wall time, RSS, bytes passed to write(), and the run directory's size
    (None where that sample did not measure it)."""

    t: float
    rss: int
    wchar: int
    dir_bytes: int | None = None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def slot_pairs(nodes: Sequence[NodeTimes]) -> dict[int, tuple[float, float]]:
    """For each node (by index) that a later node followed on the same slot: (overhead, slot gap) in seconds."""
    by_slot: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        if n.slot is not None:
            by_slot.setdefault(n.slot, []).append(i)
    pairs = {}
    for members in by_slot.values():
        members.sort(key=lambda i: nodes[i].submitted)
        for a, b in zip(members, members[1:]):
            first, nxt = nodes[a], nodes[b]
            pairs[a] = (nxt.submitted - first.finished, nxt.started - (first.started + first.run_s))
    return pairs


def busy_share(spans: Sequence[tuple[float, float]], start: float, end: float, slots: int) -> float | None:
    """Time covered by `spans` inside [start, end], over slots x (end - start)."""
    if end <= start or slots < 1:
        return None
    busy = sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)
    return busy / (slots * (end - start))


def interpolate(samples: Sequence[Sample], t: float, field: str) -> float | None:
    """A sampled quantity at time t (linear between the samples around it; the nearest one outside them)."""
    points = [(s.t, getattr(s, field)) for s in samples if getattr(s, field) is not None]
    if not points:
        return None
    times = [p[0] for p in points]
    i = bisect.bisect_left(times, t)
    if i == 0:
        return float(points[0][1])
    if i == len(points):
        return float(points[-1][1])
    (t0, v0), (t1, v1) = points[i - 1], points[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else float(v1)


def deciles(nodes: Sequence[NodeTimes], slots: int, samples: Sequence[Sample] = (), parts: int = 10) -> list[dict]:
    """One row per decile of the run (nodes in finish order), with the figures the module docstring defines."""
    order = sorted(range(len(nodes)), key=lambda i: nodes[i].finished)
    pairs = slot_pairs(nodes)
    queued = [(n.submitted, n.finished) for n in nodes]
    running = [(n.started, n.started + n.run_s) for n in nodes]
    rows: list[dict] = []
    start = min((n.submitted for n in nodes), default=0.0)
    for k in range(parts):
        members = order[len(order) * k // parts: len(order) * (k + 1) // parts]
        if not members:
            continue
        end = nodes[members[-1]].finished
        overhead = [1000 * pairs[i][0] for i in members if i in pairs]
        gap = [1000 * pairs[i][1] for i in members if i in pairs]
        row = {"decile": k + 1, "nodes": len(members), "first_node": len(order) * k // parts + 1,
               "last_node": len(order) * k // parts + len(members), "window_s": round(end - start, 3),
               "overhead_ms_median": _round(statistics.median(overhead) if overhead else None),
               "overhead_ms_p95": _round(percentile(overhead, 95)),
               "slot_gap_ms_median": _round(statistics.median(gap) if gap else None),
               "nodes_per_min": _round(60 * len(members) / (end - start) if end > start else None),
               "slot_use_submitted": _round(busy_share(queued, start, end, slots), 4),
               "slot_use_programs": _round(busy_share(running, start, end, slots), 4)}
        row |= _growth(samples, start, end, len(members))
        rows.append(row)
        start = end
    return rows


def _growth(samples: Sequence[Sample], start: float, end: float, count: int) -> dict:
    out: dict = {}
    for field, key in (("rss", "rss_bytes_per_node"), ("wchar", "written_bytes_per_node"),
                       ("dir_bytes", "dir_growth_bytes_per_node")):
        a, b = interpolate(samples, start, field), interpolate(samples, end, field)
        out[key] = None if a is None or b is None or count == 0 else round((b - a) / count)
    rss_end = interpolate(samples, end, "rss")
    out["rss_mb_at_end"] = None if rss_end is None else round(rss_end / 2**20, 1)
    return out


def _round(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


def rss_slope(samples: Sequence[Sample], nodes: Sequence[NodeTimes], skip: float = 0.1) -> float | None:
    """The driver's memory growth in bytes per finished node: a least-squares line through (nodes finished, RSS)
    over the samples after the first `skip` share of the run (start-up allocations left out)."""
    finished = sorted(n.finished for n in nodes)
    if len(finished) < 2:
        return None
    t0 = finished[int(len(finished) * skip)]
    points = [(bisect.bisect_right(finished, s.t), s.rss) for s in samples if t0 <= s.t <= finished[-1]]
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return round(sum((x - mx) * (y - my) for x, y in points) / sxx)
