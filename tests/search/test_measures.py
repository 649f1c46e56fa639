"""Slot use, the one definition (search/measures.py) the summary, the viewer and the benchmarks read."""
import pytest

from search.measures import busy_share, slot_utilization, spans
from search.node import ExecResult, Node


def node(submitted, finished, started, ran, operator="draft"):
    return Node(code="", operator=operator, submitted_at=submitted, finished_at=finished,
                exec=ExecResult(started_at=started, exec_time_s=ran))


def test_the_two_bases_count_different_spans_and_a_copy_counts_for_nothing():
    nodes = [node(0.0, 10.0, 1.0, 8.0), node(0.0, 4.0, 0.5, 3.0), node(5.0, 9.0, 5.5, 3.0),
             node(None, None, 0.0, 100.0, operator="copy")]
    assert spans(nodes, "submission") == [(0.0, 10.0), (0.0, 4.0), (5.0, 9.0)]
    assert spans(nodes, "program") == [(1.0, 9.0), (0.5, 3.5), (5.5, 8.5)]
    assert slot_utilization(nodes, 2, 10.0) == pytest.approx((10 + 4 + 4) / 20)
    assert slot_utilization(nodes, 2, 10.0, "program") == pytest.approx((8 + 3 + 3) / 20)
    with pytest.raises(ValueError, match="basis"):
        spans(nodes, "wall")


def test_the_steady_window_ends_at_the_last_start():
    # two slots; one busy from 0 to 10, the other from 0 to 2 and 4 to 8; the last node starts at 8
    busy = [(0.0, 10.0), (0.0, 2.0), (4.0, 8.0), (8.0, 9.0)]
    assert busy_share(busy, 2, steady=True) == pytest.approx((8.0 + 2.0 + 4.0) / 16.0)
    assert busy_share(busy, 2) == pytest.approx(17.0 / 20.0)  # whole window: first start to last end
    assert busy_share([], 2) is None and busy_share(busy, 0) is None
