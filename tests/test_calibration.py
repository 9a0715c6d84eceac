"""Temperature scaling (winoground_eval/results/calibration.py) and `wg-eval calibrate`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from winoground_eval.cli.main import main
from winoground_eval.core.errors import ConfigError
from winoground_eval.results import calibration as cal


def _synthetic(n: int, temperature: float, seed: int) -> list[cal.Row]:
    """Images whose label is drawn from softmax(scores / temperature): T is then the true temperature."""
    rng = np.random.default_rng(seed)
    rows = []
    classes = np.arange(5)
    for i in range(n):
        s = rng.normal(0, 0.01, 5)
        z = s / temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        rows.append(cal.Row(f"x{i}", 0, s, classes, int(rng.choice(5, p=p))))
    return rows


def test_fit_recovers_the_temperature_the_labels_were_drawn_with():
    rows = _synthetic(3000, 0.004, seed=1)
    t = cal.fit_temperature(rows)
    assert 0.0034 < t < 0.0047
    assert cal.nll(rows, t) < cal.nll(rows, 1.0) - 0.1  # T = 1 gives ~uniform probabilities on these scores


def test_temperature_halves_ece_on_held_out_rows():
    fit, held = _synthetic(1500, 0.004, seed=2), _synthetic(1500, 0.004, seed=3)
    t = cal.fit_temperature(fit)
    before, after = cal.summary(held, 1.0), cal.summary(held, t)
    assert after["ece"] < before["ece"] / 2
    assert before["ci95"]["ece"][0] <= before["ece"] <= before["ci95"]["ece"][1]
    assert after["top1"] == before["top1"]  # a temperature never changes the argmax


def _scaled_errors(n: int, seed: int) -> list[cal.Row]:
    """Minus mean errors whose size differs 10x between images while the label follows the
    RELATIVE error differences (as a diffusion model's: a bigger error, bigger differences)."""
    rng = np.random.default_rng(seed)
    rows = []
    classes = np.arange(5)
    for i in range(n):
        level = 10 ** rng.uniform(-3.5, -2.5)
        rel = rng.normal(0, 0.02, 5)
        z = -rel / 0.01
        p = np.exp(z - z.max())
        p /= p.sum()
        rows.append(cal.Row(f"x{i}", 0, -level * (1 + rel), classes, int(rng.choice(5, p=p))))
    return rows


def test_the_relative_scale_is_chosen_for_errors_of_different_size_and_helps_held_out():
    fit, held = _scaled_errors(800, 4), _scaled_errors(800, 5)
    scale, t = cal.fit_calibration(fit)
    assert scale == "relative"
    raw_t = cal.fit_temperature(fit)
    assert cal.nll(cal.scaled(held, "relative"), t) < cal.nll(held, raw_t) - 0.1
    rel = cal.summary(cal.scaled(held, "relative"), t)
    assert rel["ece"] < cal.summary(held, raw_t)["ece"]
    assert rel["top1"] == cal.summary(held, 1.0)["top1"]  # the order of the captions is unchanged
    # scores that are not minus errors (CLIP's logits) stay raw; the relative scale refuses them
    clip = _synthetic(300, 0.004, seed=6)
    assert cal.fit_calibration(clip)[0] == "raw"
    with pytest.raises(ConfigError, match="negative scores"):
        cal.scaled(clip, "relative")
    # where the size does not vary, the raw scale may win: the choice is the fitting NLL's
    same = [cal.Row(r.example_id, 0, r.scores - 1.0, r.classes, r.correct) for r in _synthetic(800, 0.004, seed=7)]
    scale_same, _ = cal.fit_calibration(same)
    nlls = {s: cal.nll(cal.scaled(same, s), cal.fit_temperature(cal.scaled(same, s))) for s in cal.SCALES}
    assert scale_same == min(nlls, key=nlls.get)


def test_ece_of_known_bins():
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    hit = np.array([1.0, 1.0, 1.0, 0.0])
    assert cal.ece(conf, hit) == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)


def test_classes_from_correct_caption_sets_and_class_probabilities():
    cls = cal.classes_of(5, [[2, 3], [0], [2, 3]])
    assert cls.tolist() == [1, 2, 0, 0, 3]
    row = cal.Row("a", 0, np.zeros(5), cls, 0)
    assert cal.class_probabilities(row, 1.0).tolist() == pytest.approx([0.4, 0.2, 0.2, 0.2])
    with pytest.raises(ConfigError, match="overlap"):
        cal.classes_of(4, [[0, 1], [1, 2]])


def test_elimination_and_adaptive_rows_are_undefined_not_invented():
    e = np.ones((1, 4, 10))
    e[0, 2, 3:] = np.nan
    why = cal.undefined_rows({"stopping": {"rule": "sequential"}}, {"errors": e}, 1)
    assert 0 in why and "[2]" in why[0]
    assert cal.undefined_rows({"stopping": {"rule": "sequential"}}, {"errors": np.ones((1, 4, 10))}, 1) == {}
    assert cal.undefined_rows({"n_samples": [2, 5], "to_keep": [2, 1]}, None, 1)[0].startswith("adaptive")
    scores = {"a": np.array([[0.1, 0.2, 0.3, 0.0]]), "b": np.array([[0.3, 0.2, 0.1, 0.0]])}
    rows, undefined = cal.run_rows(scores, lambda i, j: [0], {"n_samples": [2, 5]})
    assert rows == [] and [u["id"] for u in undefined] == ["a", "b"]


def test_calibrate_end_to_end_on_a_tiny_run(tmp_path, capsys):
    out = str(tmp_path)
    for split in ("val", "test"):
        assert (
            main(
                [
                    "run",
                    "--task",
                    "shapes-classify",
                    "--split",
                    split,
                    "--scorer",
                    "tiny-clip",
                    "--limit",
                    "40",
                    "--out",
                    out,
                    "-q",
                    "--threads",
                    "1",
                ]
            )
            == 0
        )
    runs = {
        json.loads((p / "run.json").read_text())["task"]["split"]: p
        for p in tmp_path.glob("shapes-classify/tiny-clip/*")
    }
    capsys.readouterr()
    assert main(["calibrate", str(runs["test"]), "--val-run", str(runs["val"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fitted_on"]["run_id"] == runs["val"].name and doc["fitted_on"]["split"] == "val"
    assert doc["fitted_on"]["n"] == 40 and doc["held_out"]["n_images"] == 40
    assert math.isfinite(doc["temperature"]) and doc["temperature"] > 0
    assert doc["fitted_on"]["nll_after"] <= doc["fitted_on"]["nll_before"]
    stored = json.loads((runs["test"] / "calibration.json").read_text())
    assert len(stored["probabilities"]) == 40
    assert all(abs(sum(p) - 1) < 1e-4 and len(p) == 10 for p in stored["probabilities"].values())
    # show prints the figures; export carries them
    assert main(["show", str(runs["test"])]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "calibration: T =" in shown and "ECE" in shown
    board = tmp_path / "board.json"
    assert main(["export", out, "-O", str(board), "--include-partial"]) == 0
    entries = json.loads(board.read_text())["entries"]
    test_entry = next(e for e in entries if e["run_id"] == runs["test"].name)
    assert test_entry["calibration"]["temperature"] == pytest.approx(doc["temperature"])
    html = tmp_path / "report.html"
    assert main(["report", str(runs["test"]), "-O", str(html), "--include-partial"]) == 0
    text = html.read_text()
    assert '"calibration": {' in text or '"calibration":{' in text
    assert repr(round(doc["temperature"], 6))[:6] in text and "ECE held out" in text
    capsys.readouterr()
    # fitting on ids of the run itself: the rest is held out; a wrong id is named
    ids = tmp_path / "ids.txt"
    scored = [json.loads(line)["id"] for line in (runs["test"] / "scores.jsonl").read_text().splitlines()]
    ids.write_text("\n".join(scored[:20]))
    assert main(["calibrate", str(runs["test"]), "--val-ids", str(ids), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fitted_on"]["n"] == 20 and doc["held_out"]["n_images"] == 20
    ids.write_text("nope-1\n")
    assert main(["calibrate", str(runs["test"]), "--val-ids", str(ids)]) == 2
    assert "nope-1" in capsys.readouterr().err
