"""The task-metrics contract: Metric, summarize, the reusable rules, result.json v2."""

import numpy as np
import pytest

from winoground_eval.core.contracts import Metric
from winoground_eval.core.errors import ScoreError
from winoground_eval.core.metrics import (
    ranked_comparisons,
    ranked_has_tie,
    ranked_outcome,
    shape_rule,
    summarize,
    winoground_metrics,
    winoground_outcomes,
)


def test_ranked_outcome_strict_and_ties_wrong():
    assert ranked_outcome(np.array([[3.0, 1.0, 2.0]])) == {"accuracy": 1.0}
    assert ranked_outcome(np.array([[2.0, 1.0, 2.0]])) == {"accuracy": 0.0}  # tie with the best negative
    assert ranked_has_tie(np.array([[2.0, 1.0, 2.0]])) and not ranked_has_tie(np.array([[2.0, 2.0, 3.0]]))
    assert ranked_outcome(np.array([[1.0, 5.0]])) == {"accuracy": 0.0}
    assert ranked_comparisons(3) == (("accuracy", (0, 0), (0, 1)), ("accuracy", (0, 0), (0, 2)))


def test_winoground_outcomes():
    assert winoground_outcomes(np.array([[2.0, 1.0], [0.0, 3.0]])) == {"text": 1.0, "image": 1.0, "group": 1.0}
    assert winoground_outcomes(np.array([[2.0, 1.0], [3.0, 4.0]])) == {"text": 1.0, "image": 0.0, "group": 0.0}


def test_summarize_layout_breakdown_ties_and_aggregates():
    specs = (Metric("acc", primary=True), Metric("macro", per_example=False))
    out = {"a": {"acc": 1.0}, "b": {"acc": 0.0}, "c": {"acc": 1.0}}
    r = summarize(
        specs, out, groups={"kind": {"a": ["x"], "b": ["x", "y"]}}, tie_ids=["b", "zz"], aggregates={"macro": 0.25}
    )
    assert r["metrics"] == {"acc": pytest.approx(2 / 3), "macro": 0.25}
    assert [m["name"] for m in r["metric_specs"]] == ["acc", "macro"] and r["metric_specs"][0]["primary"]
    assert r["breakdown"]["kind"] == {"x": {"acc": 0.5, "n": 2}, "y": {"acc": 0.0, "n": 1}}
    assert r["ci95"]["macro"] is None and len(r["ci95"]["acc"]) == 2
    assert r["n_examples"] == 3 and r["tie_ids"] == ["b"] and r["n_ties"] == 1
    assert r["per_example"] == out


def test_summarize_rejects_bad_declarations():
    with pytest.raises(ScoreError, match="exactly one metric primary"):
        summarize((Metric("a"), Metric("b")), {"x": {"a": 1.0, "b": 1.0}})
    with pytest.raises(ScoreError, match="lack metric"):
        summarize((Metric("a", primary=True),), {"x": {"b": 1.0}})


def test_winoground_metrics_carry_specs_and_per_example():
    r = winoground_metrics({"0": np.array([[2.0, 1.0], [0.0, 3.0]])})
    assert [m["name"] for m in r["metric_specs"]] == ["text", "image", "group"]
    assert [m["name"] for m in r["metric_specs"] if m["primary"]] == ["group"]
    assert r["per_example"] == {"0": {"text": 1.0, "image": 1.0, "group": 1.0}}


def test_shape_rule():
    assert [m.name for m in shape_rule((2, 2))[0]] == ["text", "image", "group"]
    assert [m.name for m in shape_rule((1, 5))[0]] == ["accuracy"]
    assert shape_rule((3, 3)) is None and shape_rule((1, 1)) is None
