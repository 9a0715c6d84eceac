"""`stopping=sequential` in the diffusion scorer and `wg-eval choose-timesteps`, on tiny random models."""

import argparse
import json

import numpy as np
import pytest

from winoground_eval.cli import choose as choose_cli
from winoground_eval.cli.main import main
from winoground_eval.core.contracts import Example
from winoground_eval.core.errors import ConfigError
from winoground_eval.core.metrics import WINOGROUND_COMPARISONS, winoground_correct
from winoground_eval.core.overrides import parse_overrides
from winoground_eval.diffusion import DiffusionScorer, scores_from_errors
from winoground_eval.diffusion.loading import load_components
from winoground_eval.diffusion.presets import sd2, sd2_fast
from winoground_eval.results import timestep_select
from winoground_eval.tasks.winoground import WinogroundTask


@pytest.fixture(scope="module")
def model(tiny_sd):
    return tiny_sd(seed=0)


@pytest.fixture(scope="module")
def components(model):
    return load_components(str(model))


def make(components, **options):
    parts, source = components
    return DiffusionScorer(**parts, source=source, **{"device": "cpu", "batch_size": 16, **options})


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    data = write_winoground_sample(tmp_path_factory.mktemp("sample") / "s", n_examples=3, seed=0)
    return list(WinogroundTask(data_dir=str(data)).examples())


def test_winoground_declares_text_and_image_comparisons(examples):
    assert examples[0].comparisons == WINOGROUND_COMPARISONS
    assert {m for m, _, _ in WINOGROUND_COMPARISONS} == {"text", "image"}


def test_full_budget_equals_the_plain_scorer(components, examples):
    plain = make(components, n_timesteps=24, normalize="uncond").evaluate(examples)
    full = make(components, n_timesteps=24, normalize="uncond", stopping="sequential", min_timesteps=24).evaluate(
        examples
    )
    for a, b in zip(plain, full):
        # other batches than the plain scorer's: the batch-size tolerance of the plain tests
        np.testing.assert_allclose(b.arrays["errors"], a.arrays["errors"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.arrays["uncond_errors"], a.arrays["uncond_errors"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.scores, a.scores, rtol=1e-5, atol=1e-6)
        assert winoground_correct(b.scores) == winoground_correct(a.scores)
        assert b.info["unet_calls"] == a.info["unet_calls"]
        assert {c["stop"] for c in b.info["stopping"]["comparisons"]} == {"full"}


def test_stopping_stores_nan_and_scores_from_what_was_evaluated(components, examples):
    scorer = make(components, n_timesteps=64, normalize="uncond", stopping="sequential", min_timesteps=8, round_size=8)
    for scored in scorer.evaluate(examples):
        e, u = scored.arrays["errors"], scored.arrays["uncond_errors"]
        per_cell = (~np.isnan(e)).sum(-1)
        assert per_cell.tolist() == scored.info["stopping"]["timesteps"]
        assert scored.info["unet_calls"] == per_cell.sum() + (~np.isnan(u)).sum()
        np.testing.assert_allclose(scored.scores, scores_from_errors(e, u))
        assert np.isfinite(scored.scores).all()
        for c in scored.info["stopping"]["comparisons"]:
            (ja, ka), (jb, kb) = c["a"], c["b"]
            assert np.sign(scored.scores[ja, ka] - scored.scores[jb, kb]) == np.sign(c["diff"])
        assert scored.info["stopping"]["n_early"] == sum(
            c["stop"] in ("settled", "futile") for c in scored.info["stopping"]["comparisons"]
        )


def test_text_only_runs_evaluate_fewer_pairs(components, examples):
    ex = examples[0]
    options = dict(n_timesteps=32, stopping="sequential", min_timesteps=32)  # full budget: the cells alone differ
    [every] = make(components, normalize="uncond", **options).evaluate([ex])
    [text] = make(components, decide="text", **options).evaluate([ex])
    assert every.info["unet_calls"] == 6 * 32 and text.info["unet_calls"] == 4 * 32
    assert [c["metric"] for c in text.info["stopping"]["comparisons"]] == ["text", "text"]
    one_image = Example("one", ex.images[:1], ex.captions)  # a 1-image task compares captions only
    [single] = make(components, **options).evaluate([one_image])
    assert single.info["unet_calls"] == 2 * 32 and len(single.info["stopping"]["comparisons"]) == 1


def test_config_keys_only_when_stopping_is_on(components):
    plain = make(components, n_timesteps=16)
    assert "stopping" not in plain.config()
    assert make(components, n_timesteps=16, stopping="none").config() == plain.config()
    on = make(components, n_timesteps=16, stopping="sequential", max_timesteps=99).config()
    assert {k: v for k, v in on.items() if k != "stopping"} == plain.config()
    assert on["stopping"] == {
        "rule": "sequential",
        "version": 1,
        "confidence": 0.99,
        "min_timesteps": 20,
        "max_timesteps": None,
        "round_size": 20,
        "futility": True,
        "decide": "all",
    }
    assert make(components, n_timesteps=16, stopping="sequential", confidence=0.95).config() != on
    with pytest.raises(ConfigError, match="stopping=sequential"):
        make(components, n_timesteps=16, confidence=0.95)
    for bad in ({"confidence": 1.5}, {"min_timesteps": 1}, {"decide": "group"}, {"stopping": "yes"}):
        with pytest.raises(ConfigError):
            make(components, n_timesteps=16, **{"stopping": "sequential", **bad})


def test_sd2_fast_is_sd2_with_stopping_on():
    import inspect

    fast, paper = inspect.signature(sd2_fast).parameters, inspect.signature(sd2).parameters
    assert fast["stopping"].default == "sequential" and paper["stopping"].default == "none"
    assert [p for p in fast if fast[p].default != paper[p].default] == ["stopping"]
    parsed = parse_overrides(
        sd2_fast,
        [
            "confidence=0.95",
            "min_timesteps=10",
            "max_timesteps=500",
            "round_size=10",
            "futility=false",
            "decide=text",
            "stopping=none",
        ],
        what="scorer",
    )
    assert parsed == {
        "confidence": 0.95,
        "min_timesteps": 10,
        "max_timesteps": 500,
        "round_size": 10,
        "futility": False,
        "decide": "text",
        "stopping": "none",
    }


@pytest.mark.slow  # a diffusion run through the CLI, then choose-timesteps (one is fast elsewhere)
def test_run_records_calls_and_choose_timesteps(model, sample_dir, tmp_path, capsys):
    common = [
        "run",
        "--task",
        "winoground",
        "--scorer",
        f"diffusers:{model}",
        "--data-dir",
        str(sample_dir),
        "-q",
        "-o",
        "device=cpu",
        "-o",
        "n_timesteps=20",
        "-o",
        "normalize=uncond",
    ]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert (
        main(
            [
                *common,
                "--out",
                str(tmp_path / "fast"),
                "-o",
                "stopping=sequential",
                "-o",
                "min_timesteps=5",
                "-o",
                "round_size=5",
            ]
        )
        == 0
    )
    [plain_dir] = (tmp_path / "plain").glob("winoground/*/*")
    [fast_dir] = (tmp_path / "fast").glob("winoground/*/*")
    result = json.loads((fast_dir / "result.json").read_text())
    lines = [json.loads(line) for line in (fast_dir / "scores.jsonl").read_text().splitlines()]
    calls = [line["info"]["unet_calls"] for line in lines]
    assert result["compute"]["unet_calls_total"] == sum(calls) and result["compute"][
        "unet_calls_per_example"
    ] == np.mean(calls)
    assert json.loads((fast_dir / "run.json").read_text())["scorer"]["config"]["stopping"]["min_timesteps"] == 5
    capsys.readouterr()

    parser = argparse.ArgumentParser()
    choose_cli.register(parser.add_subparsers(dest="command"))
    ids = tmp_path / "val.txt"
    ids.write_text("0\n1\n2\n3 # a comment\n")
    args = parser.parse_args(
        ["choose-timesteps", str(plain_dir), "--val-ids", str(ids), "--json", "--n-timesteps", "5"]
    )
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_examples"] == 4 and report["full"]["n_timesteps"] == 20
    assert report["full"]["unet_calls_per_example"] == 2 * 3 * 20
    assert any(r["n_timesteps"] == 5 for r in report["rows"])
    assert report["best"]["text"] == max(r["text"] for r in report["rows"])
    with pytest.raises(ConfigError, match="early stopping"):
        timestep_select.evaluate_candidates(timestep_select.load_run(fast_dir), [(0, 1000)])
    args = parser.parse_args(["choose-timesteps", str(plain_dir), "--window", "0,500", "--window", "500,1000"])
    assert args.func(args) == 0
    assert "chosen by text: -o t_range=" in capsys.readouterr().out
