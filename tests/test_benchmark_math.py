from benchmarks.engine_throughput import _max_overlap, utilization, workload


def test_utilization_counts_busy_slot_time_until_the_last_start():
    # two slots; one busy from 0 to 10, the other idle from 2 to 4; the last node starts at 8
    intervals = [(0.0, 10.0), (0.0, 2.0), (4.0, 8.0), (8.0, 9.0)]
    util, makespan, window = utilization(intervals, slots=2)
    assert window == 8.0 and makespan == 10.0
    assert util == (8.0 + 2.0 + 4.0) / 16.0


def test_max_overlap_and_workload():
    assert _max_overlap([(0, 2), (1, 3), (2.5, 4), (5, 6)]) == 2
    w = workload(50, 1.0, 0.8, seed=1)
    assert w == workload(50, 1.0, 0.8, seed=1) and min(w) > 0 and len(set(w)) > 40
