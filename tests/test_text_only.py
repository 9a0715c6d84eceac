"""SugarCrepe++'s text-only task (TOT): caption x caption similarities from a scorer that has
text embeddings (the optional ``text_similarity`` of the scorer contract), stored per example in
scores.jsonl and reduced from there; a scorer without it gives an undefined TOT that says why."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from winoground_eval.baselines.dummy import DummyScorer
from winoground_eval.baselines.tiny_clip import TINY_ARCH, write_tiny_clip
from winoground_eval.cli import main as cli
from winoground_eval.core import contracts
from winoground_eval.results.export import schema
from winoground_eval.tasks import sugarcrepe_pp


def _records(out):
    (path,) = list(out.rglob("result.json"))
    rows = [json.loads(line) for p in path.parent.glob("scores*.jsonl") for line in p.read_text().splitlines() if line]
    return json.loads(path.read_text()), {r["id"]: r for r in rows}


def test_tiny_clip_stores_caption_similarities_and_tot_is_counted_from_them(tmp_path, capsys):
    _, kwargs = sugarcrepe_pp.offline_fixture(tmp_path / "data", "sugarcrepe-pp")
    config, ckpt = write_tiny_clip(tmp_path / "clip")
    out = tmp_path / "runs"
    assert (
        cli.main(
            [
                "run",
                "--task",
                "sugarcrepe-pp",
                "--data-dir",
                kwargs["data_dir"],
                "--scorer",
                f"open_clip:{TINY_ARCH}/{ckpt}",
                "-o",
                f"arch_config={config}",
                "-o",
                "device=cpu",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    result, records = _records(out)
    assert len(records) == 15  # 5 subsets x 3 cases
    hand = {}
    for ex_id, rec in records.items():
        t = np.asarray(rec["info"]["text_scores"], dtype=np.float64)
        assert t.shape == (3, 3) and np.allclose(np.diag(t), 1.0) and np.allclose(t, t.T)  # cosines of [P1, P2, N]
        hand[ex_id] = float(t[0, 1] > t[0, 2] and t[0, 1] > t[1, 2])
    # case 0 of each subset: the negative is the same text as P1, so cos(P1, N) = 1 beats cos(P1, P2)
    assert all(hand[f"{s}-0"] == 0.0 for s in sugarcrepe_pp.SugarCrepePPTask.SUBSETS)
    assert result["metrics"]["tot"] == pytest.approx(np.mean(list(hand.values())))
    low, high = result["ci95"]["tot"]
    assert low <= result["metrics"]["tot"] <= high
    assert "undefined_metrics" not in result and "tot" in [m["name"] for m in result["metric_specs"]]
    for subset, cell in result["breakdown"]["subset"].items():
        assert cell["tot"] == pytest.approx(np.mean([v for i, v in hand.items() if i.startswith(subset + "-")]))
    # the ITT figures are unchanged by the extra scores: still from the image x caption matrices
    itt = np.mean(
        [
            float(r["scores"][0][0] > r["scores"][0][2] and r["scores"][0][1] > r["scores"][0][2])
            for r in records.values()
        ]
    )
    assert result["metrics"]["itt"] == pytest.approx(itt)
    # results commands rebuild it from the stored scores alone (no model)
    run_dir = next(out.rglob("result.json")).parent
    capsys.readouterr()
    assert cli.main(["show", str(run_dir)]) == 0
    assert "tot" in capsys.readouterr().out
    board = tmp_path / "board.json"
    assert cli.main(["export", str(out), "-O", str(board)]) == 0
    (entry,) = json.loads(board.read_text())["entries"]
    jsonschema.Draft202012Validator(schema(2)).validate(json.loads(board.read_text()))
    assert entry["metrics"]["tot"] == pytest.approx(result["metrics"]["tot"])


def test_a_scorer_without_text_embeddings_leaves_tot_undefined_with_the_reason(tmp_path, capsys):
    assert contracts.text_similarity(DummyScorer(), ["a"], ["b"]) is None  # the default: not supported
    _, kwargs = sugarcrepe_pp.offline_fixture(tmp_path / "data", "sugarcrepe-pp")
    out = tmp_path / "runs"
    assert (
        cli.main(
            [
                "run",
                "--task",
                "sugarcrepe-pp",
                "--data-dir",
                kwargs["data_dir"],
                "--scorer",
                "dummy",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    result, records = _records(out)
    assert all("text_scores" not in r["info"] for r in records.values())
    assert result["metrics"]["tot"] is None and result["metrics"]["itt"] is not None
    assert "text_similarity" in result["undefined_metrics"]["tot"]
    run_dir = next(out.rglob("result.json")).parent
    capsys.readouterr()
    assert cli.main(["show", str(run_dir)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "tot: undefined: the scorer gives no text-text similarity" in shown  # the dash has its reason beside it


def test_tot_is_undefined_when_some_examples_lack_stored_text_scores(tmp_path):
    task = sugarcrepe_pp.SugarCrepePPTask(**sugarcrepe_pp.offline_fixture(tmp_path, "sugarcrepe-pp")[1])
    ids = list(task.metadata())
    scores = {i: np.array([[2.0, 1.5, 1.0]]) for i in ids}
    right = [[1.0, 0.9, 0.2], [0.9, 1.0, 0.3], [0.2, 0.3, 1.0]]
    wrong = [[1.0, 0.5, 0.6], [0.5, 1.0, 0.1], [0.6, 0.1, 1.0]]  # cos(P1, N) above cos(P1, P2)
    tie = [[1.0, 0.5, 0.5], [0.5, 1.0, 0.1], [0.5, 0.1, 1.0]]  # strict '>' as the authors' code: a tie is wrong
    infos = {i: {"text_scores": (right, wrong, tie)[k % 3]} for k, i in enumerate(ids)}
    result = task.metrics_from_run(scores, infos)
    assert result["metrics"]["tot"] == pytest.approx(sum(1 for k in range(len(ids)) if k % 3 == 0) / len(ids))
    del infos[ids[1]]["text_scores"]
    result = task.metrics_from_run(scores, infos)
    assert result["metrics"]["tot"] is None and f"1 of {len(ids)}" in result["undefined_metrics"]["tot"]


class _TextScorer:
    """A scorer with the optional capability; ``shape`` lets it break the contract."""

    def __init__(self, shape=None):
        self.shape, self.calls = shape, 0

    def config(self):
        return {"kind": "fake"}

    def score(self, images, captions):
        return np.zeros((len(images), len(captions)))

    def text_similarity(self, a, b):
        self.calls += 1
        return np.ones(self.shape or (len(a), len(b)))


def test_text_scores_are_asked_only_for_tasks_that_need_them_and_checked():
    from PIL import Image

    from winoground_eval.core.errors import ScoreError

    image = Image.new("RGB", (4, 4))
    plain = contracts.Example("a", (image,), ("x", "y"))
    wanted = contracts.Example("b", (image,), ("x", "y", "z"), text_scores=True)
    scorer = _TextScorer()
    out = contracts.evaluate_examples(scorer, [plain])
    assert "text_scores" not in out[0].info and scorer.calls == 0  # other tasks' runs store nothing new
    out = contracts.evaluate_examples(scorer, [plain, wanted])
    assert "text_scores" not in out[0].info and np.asarray(out[1].info["text_scores"]).shape == (3, 3)
    with pytest.raises(ScoreError, match="expected \\(3, 3\\)"):
        contracts.evaluate_examples(_TextScorer(shape=(2, 2)), [wanted])
