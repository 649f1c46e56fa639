"""Held-out metrics leave a result before anything reads it (search/held_out.py)."""
from search.held_out import WITHHELD, redact, split

INFO = {"a": {"means": {"loss": 1.0, "test_acc": 0.5}, "stderrs": {"loss": 0.1, "test_acc": 0.01}},
        "b": {"means": {"loss": 3.0, "test_acc": 0.7}}}


def test_split_removes_the_metric_everywhere_and_keeps_its_mean_over_groups():
    visible, hidden = split(INFO, ["test_acc"])
    assert visible == {"a": {"means": {"loss": 1.0}, "stderrs": {"loss": 0.1}}, "b": {"means": {"loss": 3.0}}}
    assert hidden == {"test_acc": 0.6}
    assert split(INFO, []) == (INFO, {}) and split(None, ["test_acc"]) == (None, {})
    assert split(INFO, ["absent"])[1] == {}  # a name the program never writes is simply not there


def test_redact_withholds_every_line_naming_a_held_out_metric():
    text = "a: loss=1, test_acc=0.5\ntotal time 3s\nb: test_acc 0.7"
    assert redact(text, ["test_acc"]).split("\n") == [WITHHELD, "total time 3s", WITHHELD]
    assert redact(text, []) == text
