import json
from pathlib import Path

import numpy as np
import pytest

from winoground_eval.core.errors import ScoreError, ScoreFileError
from winoground_eval.core.metrics import bootstrap_ci, has_tie, winoground_correct, winoground_metrics
from winoground_eval.results.scorefile import read_score_file, write_score_file

REF = Path(__file__).parent / "data" / "reference_scores"


def m(c0i0, c1i0, c0i1, c1i1):
    """Matrix from s(caption, image) values; rows = images, columns = captions."""
    return np.array([[c0i0, c1i0], [c0i1, c1i1]], dtype=float)


@pytest.mark.parametrize(
    "matrix, expected",
    [
        (m(1, 0, 0, 1), (True, True, True)),
        (m(0, 1, 1, 0), (False, False, False)),
        # text right (0.9>0.8, 0.85>0.7) but image wrong (c0: i0 0.9 > i1 0.7 ok; c1: i1 0.85 > i0 0.8 ok) -> all right
        (m(0.9, 0.8, 0.7, 0.85), (True, True, True)),
        # text right, image wrong: caption 1 prefers image 0
        (m(0.9, 0.95, 0.1, 1.0), (False, True, False)),
        (m(0.9, 0.1, 0.95, 0.99), (True, False, False)),
        # ties are wrong
        (m(1, 1, 0, 1), (False, False, False)),
        (m(1, 0, 1, 2), (True, False, False)),
    ],
)
def test_hand_computed_cases(matrix, expected):
    assert winoground_correct(matrix) == expected


def test_tie_counting_and_breakdown():
    scores = {"a": m(1, 0, 0, 1), "b": m(1, 1, 0, 1), "c": m(0, 1, 1, 0), "d": m(0.9, 0.1, 0.95, 0.99)}
    groups = {
        "collapsed_tag": {"a": ["Object"], "b": ["Object"], "c": ["Relation"], "d": ["Relation"]},
        "secondary_tag": {"a": ["Symbolic"]},
    }
    r = winoground_metrics(scores, groups)
    assert r["metrics"] == {"text": 0.5, "image": 0.25, "group": 0.25}
    assert r["n_ties"] == 1 and r["tie_ids"] == ["b"]
    assert r["breakdown"]["collapsed_tag"]["Object"] == {"text": 0.5, "image": 0.5, "group": 0.5, "n": 2}
    assert r["breakdown"]["collapsed_tag"]["Relation"] == {"text": 0.5, "image": 0.0, "group": 0.0, "n": 2}
    assert r["breakdown"]["secondary_tag"] == {"Symbolic": {"text": 1.0, "image": 1.0, "group": 1.0, "n": 1}}
    assert r["n_examples"] == 4
    lo, hi = r["ci95"]["text"]
    assert 0 <= lo <= 0.5 <= hi <= 1


def test_has_tie():
    assert has_tie(m(1, 1, 0, 0)) and not has_tie(m(1, 0, 0, 1))


def test_bootstrap_is_seeded_and_sane():
    x = np.r_[np.ones(30), np.zeros(70)]
    a, b = bootstrap_ci(x), bootstrap_ci(x)
    assert a == b
    assert a[0] < 0.3 < a[1] and a[1] - a[0] < 0.25
    assert bootstrap_ci([1.0]) is None
    assert bootstrap_ci([1.0, 1.0, 1.0]) == [1.0, 1.0]


def test_nonfinite_matrix_rejected_with_id():
    with pytest.raises(ScoreError, match="example 7"):
        winoground_metrics({"7": m(np.nan, 0, 0, 1)})


# The aggregates that ../shared/data/README.md says these files give (strict >).
@pytest.mark.parametrize(
    "name, text, image, group, ties",
    [
        ("clip_b32", 30.75, 10.25, 8.25, 0),
        ("clip_l14", 28.50, 11.00, 8.00, 0),
        ("clip_h14_laion", 33.00, 13.00, 10.50, 0),
        ("blip_itm_b16_coco", 48.00, 24.50, 20.00, 0),
        ("ofa_medium", 22.75, 9.00, 5.50, 7),
    ],
)
def test_reference_score_files(name, text, image, group, ties):
    scores = read_score_file(REF / f"{name}.jsonl")
    assert len(scores) == 400
    r = winoground_metrics(scores)
    got = {k: round(100 * v, 2) for k, v in r["metrics"].items()}
    assert got == {"text": text, "image": image, "group": group}
    assert r["n_ties"] == ties


def test_score_file_roundtrip(tmp_path):
    scores = {"0": m(1, 0, 0, 1), "x_1": m(0.5, 0.25, 0.125, 2.0)}
    write_score_file(tmp_path / "s.jsonl", scores)
    back = read_score_file(tmp_path / "s.jsonl")
    assert set(back) == set(scores)
    for k in scores:
        np.testing.assert_array_equal(back[k], scores[k])


def _write(tmp_path, lines):
    p = tmp_path / "bad.jsonl"
    p.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return p


@pytest.mark.parametrize(
    "lines, match",
    [
        (
            [{"label": "0_c0_i0", "score": 1}, {"label": "0_c1_i0", "score": 1}, {"label": "0_c0_i1", "score": 1}],
            "missing label 0_c1_i1",
        ),
        ([{"label": "0_c0_i0", "score": 1}, {"label": "0_c0_i0", "score": 2}], "duplicate label '0_c0_i0'"),
        ([{"label": "0_c0_i0", "score": float("nan")}], "label '0_c0_i0' has non-finite"),
        (['{"label": "0_c0_i0", "score": Infinity}'], "label '0_c0_i0' has non-finite"),
        ([{"label": "0-c0-i0", "score": 1}], "not of the form"),
        (["{not json"], "not valid JSON"),
        ([{"label": "0_c0_i0", "score": "high"}], "non-numeric"),
    ],
)
def test_bad_score_files_name_the_label(tmp_path, lines, match):
    with pytest.raises(ScoreFileError, match=match):
        read_score_file(_write(tmp_path, lines))


def test_small_n_proportions_get_wilson_intervals_not_a_collapsed_bootstrap():
    """issue 22.11: 4 right of 4 read '95% CI 100.00-100.00'; a Wilson interval is about 51-100."""
    from winoground_eval.core.metrics import metric_ci, wilson

    assert metric_ci([1.0] * 4) == wilson(1.0, 4)
    lo, hi = metric_ci([1.0] * 4)
    assert 0.45 < lo < 0.55 and hi == 1.0
    lo, hi = metric_ci([0.0] * 4)
    assert lo == 0.0 and 0.45 < hi < 0.55
    assert metric_ci([1.0] * 300)[0] < 1.0  # all equal at any n: Wilson, never a zero-width interval
    large = np.r_[np.ones(120), np.zeros(80)]
    assert metric_ci(large) == bootstrap_ci(large)  # larger runs keep the seeded bootstrap
    scores = {k: m(2, 1, 1, 2) for k in "abcd"}
    assert winoground_metrics(scores)["ci95"]["text"] == wilson(1.0, 4)
