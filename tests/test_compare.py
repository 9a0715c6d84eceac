"""`wg-eval compare`: paired bootstrap intervals, exact McNemar tests, per tag, disagreeing ids."""

import json

import numpy as np
import pytest
from scipy import stats

from winoground_eval.cli import main as cli
from winoground_eval.results.compare import (
    CompareError,
    compare_outcomes,
    compare_scores,
    correctness,
    mcnemar_exact,
    paired,
)
from winoground_eval.results.scorefile import write_score_file
from winoground_eval.results.scoreimport import save_score_file_run
from winoground_eval.testing.winoground_sample import write_winoground_sample

RIGHT = np.array([[2.0, 1.0], [1.0, 2.0]])  # text, image and group right
TEXT_ONLY = np.array([[2.0, 1.0], [3.0, 4.0]])  # text right; image wrong (c0 prefers i1)
WRONG = np.array([[1.0, 2.0], [2.0, 1.0]])  # all wrong


def wg(argv):
    """`wg-eval ARGV` through cli.main."""
    return cli.main([str(a) for a in argv])


def test_correctness_follows_the_metric_rules():
    assert correctness({"a": RIGHT, "b": TEXT_ONLY, "c": WRONG}) == {
        "a": (True, True, True),
        "b": (True, False, False),
        "c": (False, False, False),
    }
    assert correctness({"tie": np.ones((2, 2))})["tie"] == (False, False, False)  # a tie counts as wrong


def test_mcnemar_is_the_exact_binomial_test():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(8, 2) == pytest.approx(0.109375)  # 2 * P(X <= 2), X ~ Bin(10, 1/2) = 2 * 56/1024
    assert mcnemar_exact(8, 2) == mcnemar_exact(2, 8)
    assert mcnemar_exact(30, 10) == pytest.approx(stats.binomtest(30, 40, 0.5).pvalue)


def test_paired_difference_and_seeded_bootstrap():
    rng = np.random.default_rng(3)
    a = rng.random(200) < 0.6
    b = a.copy()
    flip = rng.choice(200, 30, replace=False)
    b[flip] = ~b[flip]
    r = paired(a, b)
    assert r["n"] == 200 and r["diff"] == pytest.approx(a.mean() - b.mean())
    assert r["a_right_b_wrong"] == int(np.sum(a & ~b)) and r["a_wrong_b_right"] == int(np.sum(~a & b))
    assert r["a_right_b_wrong"] + r["a_wrong_b_right"] == 30
    lo, hi = r["ci95"]
    # paired: only the 30 discordant examples vary (two independent samples would give about 0.19)
    assert lo <= r["diff"] <= hi and hi - lo < 0.15
    assert paired(a, b) == r  # seeded: the same numbers every time
    same = paired(a, a)
    assert same["diff"] == 0 and same["ci95"] == [0.0, 0.0] and same["p_mcnemar"] == 1.0


def test_compare_scores_overall_by_tag_and_ids():
    a = {"0": RIGHT, "1": RIGHT, "2": TEXT_ONLY, "3": WRONG, "4": RIGHT, "9": RIGHT}
    b = {"0": WRONG, "1": RIGHT, "2": WRONG, "3": RIGHT, "4": TEXT_ONLY, "7": WRONG}
    tags = {i: {"collapsed_tag": ["Object" if i in ("0", "1") else "Relation"]} for i in "012347"}
    r = compare_scores(a, b, tags)
    assert r["n_common"] == 5 and r["n_only_a"] == 1 and r["n_only_b"] == 1
    text = r["overall"]["text"]
    assert (text["a"], text["b"], text["diff"]) == (0.8, 0.6, pytest.approx(0.2))
    assert r["disagree"]["text"] == {"a_right_b_wrong": ["0", "2"], "a_wrong_b_right": ["3"]}
    assert r["disagree"]["group"] == {"a_right_b_wrong": ["0", "4"], "a_wrong_b_right": ["3"]}
    assert text["p_mcnemar"] == pytest.approx(stats.binomtest(2, 3, 0.5).pvalue)
    by_tag = r["breakdown"]["collapsed_tag"]
    assert set(by_tag) == {"Object", "Relation"} and by_tag["Object"]["n"] == 2
    assert by_tag["Object"]["group"]["diff"] == 0.5
    with pytest.raises(CompareError, match="no scored example in common"):
        compare_scores({"0": RIGHT}, {"1": RIGHT})


def test_compare_real_valued_outcomes_get_no_mcnemar():
    r = compare_outcomes({"0": {"m": 0.5}, "1": {"m": 1.0}}, {"0": {"m": 0.25}, "1": {"m": 1.0}}, ["m"])
    m = r["overall"]["m"]
    assert m["diff"] == pytest.approx(0.125) and m["p_mcnemar"] is None and m["a_right_b_wrong"] is None
    assert r["disagree"]["m"] == {"a_right_b_wrong": ["0"], "a_wrong_b_right": []}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    data = write_winoground_sample(root / "data", n_examples=9, seed=0)
    other = write_winoground_sample(root / "other", n_examples=3, seed=5)
    out = root / "runs"
    paths = {}
    rng = np.random.default_rng(0)
    ids = [str(i) for i in range(9)]
    for name in ("model-a", "model-b"):
        scores = {i: rng.normal(size=(2, 2)) for i in ids}
        write_score_file(root / f"{name}.jsonl", scores)
        paths[name] = save_score_file_run(
            "winoground", root / f"{name}.jsonl", out, name, metadata=data / "examples.jsonl"
        )
        paths[name + ":scores"] = scores
    assert (
        cli.main(
            ["run", "--task", "winoground", "--scorer", "dummy", "--data-dir", str(other), "--out", str(out), "-q"]
        )
        == 0
    )
    [paths["other"]] = list((out / "winoground" / "dummy").iterdir())
    return {"data": data, **paths}


def test_compare_cli_json_matches_the_library(runs, capsys):
    assert wg(["compare", runs["model-a"], runs["model-b"], "--json", "--data-dir", runs["data"]]) == 0
    r = json.loads(capsys.readouterr().out)
    want = compare_scores(runs["model-a:scores"], runs["model-b:scores"])
    assert r["overall"] == json.loads(json.dumps(want["overall"])) and r["disagree"] == want["disagree"]
    assert r["a"]["scorer"] == "model-a" and r["b"]["scorer"] == "model-b" and r["n_common"] == 9
    by_tag = r["breakdown"]["collapsed_tag"]
    assert set(by_tag) == {"Object", "Relation", "Both"} and by_tag["Object"]["n"] == 3
    assert r["metrics"] == ["text", "image", "group"]
    assert r["note"] is None


def test_compare_cli_table_and_missing_tags(runs, capsys):
    assert wg(["compare", runs["model-a"], runs["model-b"]]) == 0
    captured = capsys.readouterr()
    assert "McNemar" in captured.out and "overall" in captured.out
    assert "A right, B wrong" in captured.out
    assert "--data-dir" in captured.err  # per-tag rows need the data: said, not silently dropped


def test_compare_refuses_runs_on_other_data(runs, capsys):
    assert wg(["compare", runs["model-a"], runs["other"]]) == 2
    err = capsys.readouterr().err
    assert "different data" in err and "only runs on the same task" in err
    assert wg(["compare", runs["model-a"], runs["data"]]) == 4
    assert "not a run directory" in capsys.readouterr().err
