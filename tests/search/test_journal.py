import pytest
from hypothesis import given
from hypothesis import strategies as st

from search.journal import Journal
from search.metric import MetricSpec
from search.node import Node


def make(code="x", parent=None, op="draft", buggy=False, metric=1.0, step=0):
    return Node(code=code, parent_id=parent, operator=op, is_buggy=buggy, metric=None if buggy else metric,
                step=step)


def test_tree_queries():
    j = Journal()
    root = make()
    j.add(root)
    bad = make(parent=root.id, op="improve", buggy=True)
    j.add(bad)
    fix1 = make(parent=bad.id, op="debug", buggy=True)
    j.add(fix1)
    fix2 = make(parent=fix1.id, op="debug", metric=3.0)
    j.add(fix2)
    assert j.root_of(fix2.id) == root.id
    assert j.debug_depth(fix2.id) == 2 and j.debug_depth(bad.id) == 0
    assert [n.id for n in j.children(root.id)] == [bad.id]
    assert j.drafts == [root]
    assert {n.id for n in j.buggy_nodes} == {bad.id, fix1.id}
    assert j.best_node(MetricSpec("m", "maximize")) is fix2
    assert j.best_node(MetricSpec("m", "minimize")) is root


def test_unknown_parent_and_duplicate_rejected():
    j = Journal()
    with pytest.raises(ValueError, match="not in the journal"):
        j.add(make(parent="nope"))
    n = make()
    j.add(n)
    with pytest.raises(ValueError, match="already"):
        j.add(n)


@given(st.lists(st.tuples(st.booleans(), st.floats(-1e6, 1e6)), min_size=1, max_size=30))
def test_best_node_is_best_good_node(entries):
    j = Journal()
    for buggy, value in entries:
        j.add(make(buggy=buggy, metric=value))
    good = [v for b, v in entries if not b]
    best = j.best_node(MetricSpec("m", "minimize"))
    if good:
        assert best is not None and best.metric == min(good)
    else:
        assert best is None
