import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import shipped_policy
from search.journal import Journal
from search.metric import MetricSpec
from search.node import Node
from search.policy import PolicyConfig, select_action

SPEC = MetricSpec("m", "maximize")


def node(parent=None, op="draft", buggy=False, metric=0.0):
    return Node(code="c", parent_id=parent, operator=op, is_buggy=buggy, metric=None if buggy else metric)


def test_drafts_first_counting_pending():
    cfg = shipped_policy(num_drafts=2, debug_prob=0.0)
    j = Journal()
    assert select_action(j, [], cfg, SPEC, random.Random(0)).operator == "draft"
    pending = [node(), node()]
    # two drafts are already running: the policy must not draft a third
    a = select_action(j, pending, cfg, SPEC, random.Random(0))
    assert a.operator == "draft"  # nothing finished and nothing to debug: a fresh tree is the only move
    j.add(n1 := node(metric=1.0))
    j.add(node(metric=2.0))
    a = select_action(j, [], cfg, SPEC, random.Random(0))
    assert a.operator == "improve" and a.parent_id != n1.id


def test_improve_prefers_trees_not_being_expanded():
    cfg = shipped_policy(num_drafts=2, debug_prob=0.0)
    j = Journal()
    j.add(low := node(metric=1.0))
    j.add(high := node(metric=5.0))
    busy = [node(parent=high.id, op="improve")]
    assert select_action(j, busy, cfg, SPEC, random.Random(0)).parent_id == low.id
    busy.append(node(parent=low.id, op="improve"))
    # every tree busy: improve the best anyway
    assert select_action(j, busy, cfg, SPEC, random.Random(0)).parent_id == high.id


def test_debug_respects_depth_and_pending():
    cfg = shipped_policy(num_drafts=1, debug_prob=1.0, max_debug_depth=2)
    j = Journal()
    j.add(root := node(metric=1.0))
    j.add(b0 := node(parent=root.id, op="improve", buggy=True))
    a = select_action(j, [], cfg, SPEC, random.Random(0))
    assert (a.operator, a.parent_id) == ("debug", b0.id)
    # already being debugged: improve instead
    a = select_action(j, [node(parent=b0.id, op="debug")], cfg, SPEC, random.Random(0))
    assert a.operator == "improve"
    j.add(b1 := node(parent=b0.id, op="debug", buggy=True))
    j.add(node(parent=b1.id, op="debug", buggy=True))  # depth 2 = max: give up this branch
    assert select_action(j, [], cfg, SPEC, random.Random(0)).operator == "improve"


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans(), st.floats(0, 10)), max_size=25),
       st.integers(1, 4), st.floats(0, 1), st.integers(0, 3), st.integers(0, 2**31))
def test_actions_are_always_valid(spec, num_drafts, debug_prob, depth, seed):
    cfg = PolicyConfig(num_drafts, debug_prob, depth, None)
    j = Journal()
    for parent_pick, buggy, value in spec:
        parent = j.nodes[parent_pick % len(j)].id if j.nodes and parent_pick % 3 else None
        op = "draft" if parent is None else ("debug" if j.get(parent).is_buggy else "improve")
        j.add(node(parent, op, buggy, value))
    a = select_action(j, [], cfg, SPEC, random.Random(seed))
    if a.operator == "draft":
        assert a.parent_id is None
    else:
        parent = j.get(a.parent_id)
        if a.operator == "debug":
            assert parent.is_buggy and not j.children(parent.id)
            assert j.debug_depth(parent.id) < depth
        else:
            assert parent.is_buggy is False
            assert len(j.drafts) >= num_drafts
