"""The engine-scale benchmark's arithmetic (benchmarks/scale_measures.py) on made-up runs whose answers are known."""
import pytest

from benchmarks.scale_measures import NodeTimes, Sample, deciles, interpolate, percentile, rss_slope, slot_pairs


def two_slot_run(n: int, program_s: float = 1.0, overhead_s: float = 0.1, late_from: int | None = None,
                 late_s: float = 0.0) -> list[NodeTimes]:
    """Nodes alternating between slots 0 and 1; on each slot a node is submitted `overhead_s` after the previous
    result was taken (plus `late_s` for nodes from index `late_from` on); programs start 0.05 s after submission
    and their result is taken 0.05 s after they end."""
    nodes, free_at = [], {0: 0.0, 1: 0.5}
    for i in range(n):
        slot = i % 2
        extra = late_s if late_from is not None and i >= late_from else 0.0
        submitted = free_at[slot] + (overhead_s + extra if i >= 2 else 0.0)
        started = submitted + 0.05
        finished = started + program_s + 0.05
        nodes.append(NodeTimes(submitted, finished, started, program_s, slot))
        free_at[slot] = finished
    return nodes


def test_overhead_is_the_time_from_a_result_to_its_slots_next_submission():
    nodes = two_slot_run(6, overhead_s=0.1)
    pairs = slot_pairs(nodes)
    assert sorted(pairs) == [0, 1, 2, 3]  # the last node of each slot has no successor
    for overhead, gap in pairs.values():
        assert overhead == pytest.approx(0.1)
        assert gap == pytest.approx(0.05 + 0.1 + 0.05)  # result taken, overhead, sandbox start


def test_slot_pairs_follow_the_slot_not_the_list_order():
    a = NodeTimes(0.0, 1.0, 0.1, 0.8, 0)
    b = NodeTimes(0.0, 2.0, 0.1, 1.8, 1)
    c = NodeTimes(2.5, 3.0, 2.6, 0.3, 1)  # follows b on slot 1 (0.5 s after b's result)
    d = NodeTimes(1.2, 4.0, 1.3, 2.6, 0)  # follows a on slot 0 (0.2 s after a's result)
    pairs = slot_pairs([c, a, d, b])
    assert pairs[1][0] == pytest.approx(0.2) and pairs[3][0] == pytest.approx(0.5)
    assert set(pairs) == {1, 3}


def test_deciles_show_an_overhead_that_grows_late_in_the_run():
    nodes = two_slot_run(100, overhead_s=0.01, late_from=90, late_s=0.4)
    rows = deciles(nodes, slots=2)
    assert [r["nodes"] for r in rows] == [10] * 10 and rows[-1]["last_node"] == 100
    assert rows[0]["overhead_ms_median"] == pytest.approx(10, abs=0.01)
    # nodes 88 and 89 are followed on their slots by late nodes 90 and 91: two of the ninth decile's ten
    assert rows[8]["overhead_ms_median"] == pytest.approx(10, abs=0.01)
    assert rows[9]["overhead_ms_median"] == pytest.approx(410, abs=0.01)
    assert rows[9]["nodes_per_min"] < rows[0]["nodes_per_min"]
    # each window counts only the part of a run inside it: busy almost all the time, never more than the slots
    assert all(0.95 < r["slot_use_submitted"] <= 1.0 for r in rows[:9])


def test_slot_use_counts_a_waiting_result_as_busy_only_the_submitted_way():
    # one slot; each program runs 1 s, its result waits 1 s for the driver, then the next is submitted at once
    nodes = [NodeTimes(2.0 * i, 2.0 * i + 2.0, 2.0 * i, 1.0, 0) for i in range(10)]
    row = deciles(nodes, slots=1, parts=1)[0]
    assert row["slot_use_submitted"] == pytest.approx(1.0)
    assert row["slot_use_programs"] == pytest.approx(0.5)


def test_per_result_growth_comes_from_the_samples_at_the_window_ends():
    nodes = [NodeTimes(float(i), float(i) + 1.0, float(i), 0.9, 0) for i in range(10)]  # results at 1..10 s
    samples = [Sample(t, rss=1000 + 100 * t, wchar=5000 * t, dir_bytes=None if t % 2 else 300 * t)
               for t in range(0, 12)]
    row = deciles(nodes, slots=1, samples=samples, parts=1)[0]  # window 0 .. 10 s, 10 results
    assert row["rss_bytes_per_node"] == 100
    assert row["written_bytes_per_node"] == 5000
    assert row["dir_growth_bytes_per_node"] == 300  # from the samples that measured the directory only


def test_interpolate_and_percentile():
    samples = [Sample(0.0, 0, 0), Sample(10.0, 100, 1000)]
    assert interpolate(samples, 2.5, "rss") == pytest.approx(25)
    assert interpolate(samples, -1.0, "wchar") == 0 and interpolate(samples, 99.0, "wchar") == 1000
    assert interpolate(samples, 5.0, "dir_bytes") is None
    assert percentile([1, 2, 3, 4, 5], 50) == 3 and percentile([0, 10], 95) == pytest.approx(9.5)
    assert percentile([], 95) is None


def test_rss_slope_leaves_out_the_start_up():
    nodes = [NodeTimes(float(i), float(i) + 1.0, float(i), 0.9, 0) for i in range(100)]  # results at 1..100 s
    # 50 MB at start-up within the first tenth, then 2,000 bytes per finished node
    samples = [Sample(t / 2, rss=(50_000_000 if t > 10 else 0) + 2000 * int(t / 2), wchar=0) for t in range(201)]
    assert rss_slope(samples, nodes) == pytest.approx(2000, rel=0.01)
