import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from search.metric import MetricSpec, MetricValue, flatten_final_info, metric_names

INFO = {
    "x_plus_y": {"means": {"val_acc": 1.0, "step": 100}, "stderrs": {"val_acc": 0.0}},
    "x_minus_y": {"means": {"val_acc": 0.5, "step": 300}, "stderrs": {}},
}


def test_plain_name_averages_groups_and_group_name_reads_one():
    assert MetricSpec("val_acc").extract(INFO) == pytest.approx(0.75)
    assert MetricSpec("x_minus_y/step").extract(INFO) == 300


def test_missing_metric_names_what_exists():
    with pytest.raises(KeyError, match="val_loss.*x_plus_y/val_acc"):
        MetricSpec("val_loss").extract(INFO)


def test_v1_flat_shape_reads_group_as_metric():
    assert flatten_final_info({"loss": {"means": 2.5}}) == {"loss/loss": 2.5}
    assert metric_names({"loss": {"means": 2.5}, "acc": {"means": 0.1}}) == ["loss", "acc"]


def test_no_numbers_is_an_error():
    with pytest.raises(ValueError, match="no numeric means"):
        flatten_final_info({"a": {"means": {"x": "text"}}})


def test_bad_direction_rejected():
    with pytest.raises(ValueError, match="maximize"):
        MetricSpec("x", "up")


@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=False)), min_size=1, max_size=20),
       st.sampled_from(["maximize", "minimize"]))
def test_ordering_is_by_quality_and_buggy_is_worst(values, direction):
    spec = MetricSpec("m", direction)
    mvs = [MetricValue(v, spec) for v in values]
    best = max(mvs)
    numbers = [v for v in values if v is not None and not math.isnan(v)]
    if numbers:
        expected = max(numbers) if direction == "maximize" else min(numbers)
        assert best.value == expected
        assert all(mv > MetricValue(None, spec) for mv in mvs if not mv.is_worst)
    else:
        assert best.is_worst


def test_finite_number_reads_numbers_and_numeric_text_only():
    from search.metric import finite_number

    assert finite_number(3) == 3.0 and finite_number("2.5") == 2.5 and finite_number(0) == 0.0
    assert [finite_number(v) for v in (None, True, "abc", float("nan"), float("inf"), "-inf", [1])] == [None] * 7
