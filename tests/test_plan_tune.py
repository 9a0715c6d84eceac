"""`choose-timesteps --tune` (winoground_eval/results/plan_tune.py): a plan and its stopping rule
chosen on a validation run by cross-fitting, with no model call."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winoground_eval.core import timestep_plan as tp
from winoground_eval.core.errors import ConfigError
from winoground_eval.results import plan_tune as pt


def _square_run(n_ex: int, n_grid: int, seed: int = 0, gap: float = 0.2):
    """Stored errors of n_ex 2 x 2 examples whose correct cells (j, j) have the lower error."""
    rng = np.random.default_rng(seed)
    errors, uncond = [], []
    for _ in range(n_ex):
        u = 1.0 + 0.3 * rng.standard_normal((2, n_grid))
        e = u[:, None, :] + 0.05 * rng.standard_normal((2, 2, n_grid))
        e[0, 1] += gap
        e[1, 0] += gap
        errors.append(e)
        uncond.append(u)
    return [str(i) for i in range(n_ex)], errors, uncond


def _outcomes(_, s):
    text = float(s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0])
    image = float(s[0, 0] > s[1, 0] and s[1, 1] > s[0, 1])
    return {"text": text, "image": image, "group": text * image}


def test_every_candidate_is_scored_held_out_and_the_cheapest_passing_is_chosen():
    ids, errors, uncond = _square_run(9, 32)
    cands = (pt.Candidate("proposal", None, True, 0.99), pt.Candidate("weights", 0.6, False, 0.9))
    res = pt.tune(ids, errors, uncond, _outcomes, normalize_uncond=True, candidates=cands)
    assert [(c["kind"], c["keep"]) for c in res["candidates"]] == [("proposal", None), ("weights", 0.6)]
    assert res["n"] == 9 and res["calls_full"] == 6 * 32 and res["plain_metrics"]["text"] == 1.0
    passing = [c for c in res["candidates"] if c["passes"]]
    assert passing and res["chosen"] is min(passing, key=lambda c: c["calls"])
    for c in res["candidates"]:
        assert c["passes"] == (c["agreement"] >= pt.AGREEMENT and c["mean_shift"] >= -pt.TOLERANCE)
        assert 0 < c["calls"] <= res["calls_full"]


def test_a_full_budget_replay_is_the_rules_full_budget():
    ids, errors, uncond = _square_run(3, 16, seed=1, gap=0.0)  # coin flips: every decision is close
    rule = tp.rule_for(None, 16, min_timesteps=16, round_size=16, futility=False)
    for e, u in zip(errors, uncond):
        r = pt.replay_example(rule, e, u, True)
        assert r.calls == 6 * 16 and r.decisions == 4 and r.agree == 4
        np.testing.assert_allclose(r.scores, r.full, atol=1e-6)  # the test keeps errors in float32


def test_refusals_name_the_fix():
    ids, errors, uncond = _square_run(9, 8)
    with pytest.raises(ConfigError, match="square"):
        pt.tune(ids, [e[:1] for e in errors], uncond, _outcomes, normalize_uncond=False)
    with pytest.raises(ConfigError, match="at least 6 examples"):
        pt.tune(ids[:4], errors[:4], uncond[:4], _outcomes, normalize_uncond=True)


@pytest.mark.slow  # diffusion runs through the CLI
def test_choose_timesteps_tune_writes_the_chosen_plan_and_prints_its_options(tmp_path, capsys):
    from winoground_eval.cli.main import main

    grid = ["-o", "n_timesteps=8", "-o", "t_range=none", "-o", "normalize=uncond", "-q", "--threads", "1"]
    out = ["--out", str(tmp_path / "runs")]
    assert (
        main(["run", "--task", "shapes", "--split", "val", "--scorer", "tiny-diffusion", "--limit", "6", *out, *grid])
        == 0
    )
    [val_dir] = (tmp_path / "runs" / "shapes" / "tiny-diffusion").iterdir()
    plan = tmp_path / "tuned.json"
    capsys.readouterr()
    assert main(["choose-timesteps", str(val_dir), "--tune", "-O", str(plan), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    chosen = shown["tune"]["chosen"]
    doc = json.loads(plan.read_text())
    assert doc["kind"] == chosen["kind"] and doc["fitted_on"]["tuned"]["chosen"]["futility"] == chosen["futility"]
    assert doc["fitted_on"]["tuned"]["candidates"] == len(pt.CANDIDATES)
    # the written plan is the chosen candidate fitted on every example of the run
    from winoground_eval.results.timestep_select import load_run

    run = load_run(val_dir)
    again = pt.fit_candidate(
        pt.Candidate(chosen["kind"], chosen["keep"], chosen["futility"], chosen["confidence"]),
        run.errors,
        run.uncond,
        8,
    )
    np.testing.assert_allclose(doc["density"], again.density, atol=1e-12)
    # the printed options run
    assert main(["choose-timesteps", str(val_dir), "--tune", "-O", str(plan)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    opts = f"-o stopping=sequential -o futility={str(chosen['futility']).lower()} -o confidence={chosen['confidence']}"
    assert f"-o plan={plan} {opts}" in printed
    run_argv = ["run", "--task", "shapes", "--split", "test", "--scorer", "tiny-diffusion", "--limit", "1", *out, *grid]
    assert main([*run_argv, "-o", f"plan={plan}", *opts.split()]) == 0
    # refusals
    capsys.readouterr()
    assert main(["choose-timesteps", str(val_dir), "--tune"]) == 2
    assert "add -O plan.json" in capsys.readouterr().err
    assert main(["choose-timesteps", str(val_dir), "--tune", "-O", str(plan), "--kind", "weights"]) == 2
    assert "drop --kind and --keep" in " ".join(capsys.readouterr().err.split())


def test_without_uncond_the_replay_settles_the_image_comparisons_too():
    """A decide=all run settles every declared comparison, image ones included, whatever the
    normalisation; the replay of --tune does the same (4 decisions per 2 x 2 example)."""
    _, errors, uncond = _square_run(2, 16, seed=2)
    rule = tp.rule_for(None, 16, min_timesteps=4, round_size=4)
    r = pt.replay_example(rule, errors[0], None, False)
    assert r.decisions == 4 and {o.comparison.metric for o in r.outcomes} == {"text", "image"}
    assert r.calls % 4 == 0  # four caption cells, no unconditional rows
