from search.judge import judge
from search.metric import MetricSpec
from search.node import ExecResult, Node

SPEC = MetricSpec("acc", "maximize")


def judged(**kw):
    n = Node(code="")
    judge(n, ExecResult(**kw), SPEC)
    return n


def test_good_node_gets_metric():
    n = judged(exit_code=0, final_info={"a": {"means": {"acc": 0.5}}})
    assert n.is_buggy is False and n.metric == 0.5


def test_crash_timeout_missing_file_missing_metric_nan_are_buggy():
    assert "ValueError: boom" in judged(exit_code=1, exc_type="ValueError", exc_message="boom").bug_reason
    n = judged(exit_code=-9, killed_reason="timeout", exc_type="TimeoutError", exc_message="killed after 5s")
    assert n.is_buggy and "TimeoutError" in n.bug_reason
    assert "final_info" in judged(exit_code=0).bug_reason
    assert "MetricMissing" in judged(exit_code=0, final_info={"a": {"means": {"loss": 1}}}).bug_reason
    n = judged(exit_code=0, final_info={"a": {"means": {"acc": float("nan")}}})
    assert n.is_buggy and n.metric is None and "NotFinite" in n.bug_reason
