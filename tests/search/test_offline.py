import random

from search.code_edit import find_tunables
from search.journal import Journal
from search.node import Node
from search.offline import OfflineProposer, TunableSpec, specs_from_code
from search.operators import BaselineFirst

CODE = "lr = 0.001\nwd = 0.5\nheads = 4\nprint(lr)\n"
TUNABLES = {"lr": TunableSpec("lr", low=1e-4, high=1e-1, log=True), "heads": TunableSpec("heads", values=(1, 2, 4))}


def test_draft_then_mutated_drafts():
    p = BaselineFirst(CODE).wrap(OfflineProposer(CODE, TUNABLES))
    j = Journal()
    first = p.draft(j, random.Random(0))
    assert first.code == CODE and "baseline" in first.plan
    second = p.draft(j, random.Random(0))  # the first is still running: roots must differ
    assert second.code != CODE and "change" in second.plan


def test_improve_changes_exactly_one_tunable_within_bounds():
    p = OfflineProposer(CODE, TUNABLES)
    parent = Node(code=CODE, is_buggy=False, metric=1.0)
    j = Journal([parent])
    rng = random.Random(1)
    for _ in range(20):
        prop = p.improve(j, parent, rng)
        before, after = find_tunables(CODE), find_tunables(prop.code)
        changed = [k for k in before if before[k].value != after[k].value]
        assert len(changed) == 1 and changed[0] in TUNABLES
        assert after["wd"].value == 0.5
        assert 1e-4 <= after["lr"].value <= 1e-1 and after["heads"].value in (1, 2, 4)


def test_improve_avoids_programs_already_tried():
    p = OfflineProposer(CODE, {"heads": TunableSpec("heads", values=(2, 4, 8))})
    parent = Node(code=CODE, is_buggy=False, metric=1.0)
    j = Journal([parent])
    codes = {p.improve(j, parent, random.Random(s)).code for s in range(2)}
    assert len(codes) == 2  # heads=2 and heads=8, never the same twice


def test_debug_returns_last_good_ancestor_code():
    p = OfflineProposer(CODE, TUNABLES)
    good = Node(code="good = 1\n", is_buggy=False, metric=1.0)
    bad = Node(code="bad\n", parent_id=good.id, operator="improve", is_buggy=True, bug_reason="E")
    worse = Node(code="worse\n", parent_id=bad.id, operator="debug", is_buggy=True)
    j = Journal([good, bad, worse])
    assert p.debug(j, worse, random.Random(0)).code == "good = 1\n"
    root_bug = Node(code="oops\n", is_buggy=True)
    j.add(root_bug)
    assert p.debug(j, root_bug, random.Random(0)).code == CODE


def test_specs_from_code_for_v1_templates():
    specs = specs_from_code("import argparse\nSEED = 1\nlr = 0.1\nsteps = 10\nname = 'x'\n")
    assert set(specs) == {"lr", "steps"} and specs["steps"].integer
    rng = random.Random(0)
    assert all(isinstance(specs["steps"].propose(10, rng), int) for _ in range(10))
