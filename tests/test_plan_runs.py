"""`wg-eval choose-timesteps RUN -O plan.json` and `wg-eval run ... -o plan=plan.json` end to end
on the shipped tiny models (small grids, a few examples)."""

from __future__ import annotations

import json

import pytest

from winoground_eval.cli.main import main

GRID = ["-o", "n_timesteps=8", "-o", "t_range=none", "-o", "normalize=uncond"]
STOP = ["-o", "stopping=sequential", "-o", "min_timesteps=2", "-o", "round_size=2"]


def _bench():
    """benchmarks/bench_plan.py as a module."""
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_plan", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_plan.py"
    )
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_plan"] = bench
    spec.loader.exec_module(bench)
    return bench


def _synthetic_2x2(n_ex: int, n_grid: int, seed: int):
    """Stored float32 errors of 2 x 2 examples whose correct cells (j, j) have the lower error."""
    import numpy as np

    rng = np.random.default_rng(seed)
    errors, uncond = [], []
    for _ in range(n_ex):
        u = 1.0 + 0.3 * rng.standard_normal((2, n_grid))
        e = u[:, None, :] + 0.05 * rng.standard_normal((2, 2, n_grid))
        e[0, 1] += 0.2
        e[1, 0] += 0.2
        errors.append(e.astype(np.float32))
        uncond.append(u.astype(np.float32))
    return errors, uncond


def _run(tmp_path, split, limit, *extra):
    return main(
        [
            "run",
            "--task",
            "shapes",
            "--split",
            split,
            "--scorer",
            "tiny-diffusion",
            "--limit",
            str(limit),
            "--out",
            str(tmp_path / "runs"),
            "-q",
            "--threads",
            "1",
            *GRID,
            *extra,
        ]
    )


def _dirs(tmp_path):
    return {
        p.name: json.loads((p / "run.json").read_text()) for p in (tmp_path / "runs").glob("shapes/tiny-diffusion/*")
    }


@pytest.mark.slow  # several diffusion runs through the CLI
def test_a_plan_fitted_on_one_run_is_used_by_another_resumes_and_is_refused_for_another_model(tmp_path, capsys):
    assert _run(tmp_path, "val", 3) == 0
    [(val_id, _)] = _dirs(tmp_path).items()
    val_dir = tmp_path / "runs" / "shapes" / "tiny-diffusion" / val_id
    plan = tmp_path / "plan.json"
    capsys.readouterr()
    assert main(["choose-timesteps", str(val_dir), "-O", str(plan), "--kind", "proposal", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    doc = json.loads(plan.read_text())
    assert doc["kind"] == "proposal" and doc["fitted_on"]["run_id"] == val_id and doc["fitted_on"]["split"] == "val"
    assert doc["fitted_on"]["ids"]["n"] == 3 and doc["model"]["fingerprint"] and shown["plan"]["sha256"]
    assert len(doc["density"]) == 8 and abs(sum(doc["density"]) - 1) < 1e-6

    # used by a run on another split; its config records the plan's hash (so its run id differs)
    assert _run(tmp_path, "test", 1, *STOP, "-o", f"plan={plan}") == 0
    assert _run(tmp_path, "test", 1, *STOP) == 0
    runs = {i: c for i, c in _dirs(tmp_path).items() if c["task"]["split"] == "test"}
    with_plan = [i for i, c in runs.items() if "plan" in c["scorer"]["config"]]
    assert len(runs) == 2 and len(with_plan) == 1
    entry = runs[with_plan[0]]["scorer"]["config"]["plan"]
    assert (
        entry["sha256"] == shown["plan"]["sha256"] and entry["fitted_on_run"] == val_id and entry["kind"] == "proposal"
    )
    run_dir = tmp_path / "runs" / "shapes" / "tiny-diffusion" / with_plan[0]
    rec = [json.loads(x) for x in (run_dir / "scores.jsonl").read_text().splitlines()]
    assert len(rec) == 1 and rec[0]["info"]["stopping"]["plan"] == "proposal"

    # resume with the plan: the same run directory goes on from where it stopped
    assert _run(tmp_path, "test", 2, *STOP, "-o", f"plan={plan}") == 0
    rec = [json.loads(x) for x in (run_dir / "scores.jsonl").read_text().splitlines()]
    assert len(rec) == 2 and len([i for i, c in _dirs(tmp_path).items() if "plan" in c["scorer"]["config"]]) == 1

    # a weights plan: a declared estimand, recorded as such
    wplan = tmp_path / "wplan.json"
    assert main(["choose-timesteps", str(val_dir), "-O", str(wplan), "--kind", "weights"]) == 0
    assert json.loads(wplan.read_text())["estimand"].startswith("the weighted mean")
    capsys.readouterr()

    # another model: refused with a clear message
    code = main(
        [
            "run",
            "--task",
            "digits",
            "--scorer",
            "tiny-dit",
            "--limit",
            "1",
            "--out",
            str(tmp_path / "runs"),
            "-q",
            "-o",
            "n_timesteps=8",
            "-o",
            "t_range=none",
            *STOP,
            "-o",
            f"plan={plan}",
        ]
    )
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "fitted on model" in err and "does not carry over" in err

    # another grid of the same model: refused, naming the options to set
    code = main(
        [
            "run",
            "--task",
            "shapes",
            "--split",
            "test",
            "--scorer",
            "tiny-diffusion",
            "--limit",
            "1",
            "--out",
            str(tmp_path / "runs"),
            "-q",
            "-o",
            "n_timesteps=16",
            "-o",
            "t_range=none",
            *STOP,
            "-o",
            f"plan={plan}",
        ]
    )
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "n_timesteps=8" in err


@pytest.mark.slow  # several diffusion runs through the CLI
def test_elimination_with_a_plan_takes_the_prefilters_ranking(tmp_path, capsys):
    """1 x N: the CLIP prefilter keeps 3 of 5 captions, elimination runs along a plan fitted on val."""
    out = str(tmp_path / "runs")
    grid = ["-o", "n_timesteps=8", "-o", "t_range=none"]
    assert (
        main(
            [
                "run",
                "--task",
                "shapes-ranked",
                "--split",
                "val",
                "--scorer",
                "tiny-diffusion",
                "--limit",
                "3",
                "--out",
                out,
                "-q",
                "--threads",
                "1",
                *grid,
            ]
        )
        == 0
    )
    [val_dir] = (tmp_path / "runs").glob("shapes-ranked/tiny-diffusion/*")
    plan = tmp_path / "plan.json"
    assert main(["choose-timesteps", str(val_dir), "-O", str(plan), "--kind", "proposal"]) == 0
    assert (
        main(
            [
                "run",
                "--task",
                "shapes-ranked",
                "--split",
                "test",
                "--scorer",
                "tiny-diffusion",
                "--limit",
                "2",
                "--out",
                out,
                "-q",
                "--threads",
                "1",
                *grid,
                *STOP,
                "-o",
                "prefilter=tiny-clip",
                "-o",
                "prefilter_k=3",
                "-o",
                f"plan={plan}",
            ]
        )
        == 0
    )
    capsys.readouterr()
    [run_dir] = [p for p in (tmp_path / "runs").glob("shapes-ranked/tiny-diffusion/*") if p != val_dir]
    config = json.loads((run_dir / "run.json").read_text())["scorer"]["config"]
    assert config["plan"]["kind"] == "proposal" and config["prefilter"]["k"] == 3
    for line in (run_dir / "scores.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert rec["info"]["stopping"]["rule"] == "elimination" and rec["info"]["stopping"]["plan"] == "proposal"
        assert len(rec["info"]["prefilter"]["kept"]) == 3 and len(rec["scores"][0]) == 5


def test_bench_plan_replays_2x2_with_both_references_and_the_control_variate():
    """benchmarks/bench_plan.py's 2 x 2 replay on synthetic stored errors: at a full budget every
    decision is the reference's (with and without the control variate), and stopping saves calls."""
    from pathlib import Path

    import numpy as np

    from winoground_eval.core import timestep_plan as tp
    from winoground_eval.diffusion.replay import partial_scores
    from winoground_eval.results.timestep_select import StoredRun

    bench = _bench()
    n_grid, n_ex = 64, 12
    errors, uncond = _synthetic_2x2(n_ex, n_grid, seed=0)
    scores = [partial_scores(e, u) for e, u in zip(errors, uncond)]
    info = {"scorer": {"config": {"normalize": "uncond"}}}
    run = StoredRun(
        Path("."), info, [str(i) for i in range(n_ex)], errors, uncond, scores, [None] * n_ex, np.arange(n_grid)
    )
    diffs, aux = bench.aligned_2x2(errors, uncond)
    cv = bench.fit_cv(errors, uncond)  # the plan's beta: the image comparisons (aligned_2x2's 3rd and 4th)
    image = [i for i in range(len(diffs)) if i % 4 in (2, 3)]
    np.testing.assert_allclose(cv, tp.fit_cv_beta_grid([diffs[i] for i in image], [aux[i] for i in image]))
    full = tp.rule_for(None, n_grid, confidence=0.99, min_timesteps=n_grid, round_size=n_grid, futility=False)
    for c in (None, cv):
        r = bench.replay_2x2(run, full, c)
        assert r["agree"] == 1.0 and r["agree_uniform"] == 1.0 and r["misses"] == []
        assert r["calls"] == r["calls_full"] == 6 * n_grid
        assert r["calls_control"] == (None if c is None else 2 * n_grid)  # u on the whole grid, paid for first
    stopped = bench.replay_2x2(run, tp.rule_for(None, n_grid, confidence=0.99, min_timesteps=8, round_size=8), None)
    assert stopped["calls"] < stopped["calls_full"] and stopped["decisions"] == 4 * n_ex
    assert stopped["metrics_stopped"]["text"] == stopped["metrics_plain_full"]["text"] == 1.0


@pytest.mark.slow  # two diffusion runs through the CLI
def test_choose_timesteps_keep_sets_the_weights_plans_support(tmp_path, capsys):
    """--keep FRACTION: bands of t under FRACTION x the largest weight get weight 0 (never
    evaluated); a higher fraction keeps a subset of the support. --keep without --kind weights
    is refused."""
    assert _run(tmp_path, "val", 3) == 0
    [(val_id, _)] = _dirs(tmp_path).items()
    val_dir = tmp_path / "runs" / "shapes" / "tiny-diffusion" / val_id
    supports = {}
    for keep in ("0", "0.2", "0.9"):
        out = tmp_path / f"w{keep}.json"
        assert main(["choose-timesteps", str(val_dir), "-O", str(out), "--kind", "weights", "--keep", keep]) == 0
        w = json.loads(out.read_text())["weights"]
        kept = [x for x in w if x > 0]
        assert kept and min(kept) >= float(keep) * max(w) - 1e-12
        supports[keep] = {i for i, x in enumerate(w) if x > 0}
    assert supports["0.9"] <= supports["0.2"] <= supports["0"]
    # a full-budget run with a weights plan stores the weighted mean: not re-aggregated on windows
    assert _run(tmp_path, "test", 1, "-o", f"plan={tmp_path / 'w0.2.json'}") == 0
    [weighted] = [i for i, c in _dirs(tmp_path).items() if c["task"]["split"] == "test"]
    capsys.readouterr()
    assert main(["choose-timesteps", str(tmp_path / "runs" / "shapes" / "tiny-diffusion" / weighted)]) == 2
    assert "weights plan" in " ".join(capsys.readouterr().err.split())
    code = main(
        ["choose-timesteps", str(val_dir), "-O", str(tmp_path / "p.json"), "--kind", "proposal", "--keep", "0.4"]
    )
    assert code == 2 and "--kind weights" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit) as bad:
        main(["choose-timesteps", str(val_dir), "--kind", "weights", "--keep", "1.5"])
    assert bad.value.code == 2 and "--keep 1.5: give a fraction" in " ".join(capsys.readouterr().err.split())


@pytest.mark.slow  # a stopping boundary is simulated per candidate and fold
def test_bench_plan_selection_uses_held_out_folds_and_picks_the_cheapest_passing_setting(monkeypatch):
    """bench_plan --select on synthetic stored errors: every candidate is scored on held-out folds
    of the fit run, and the chosen one is the cheapest of those that pass."""
    from pathlib import Path

    import numpy as np

    from winoground_eval.diffusion.replay import partial_scores
    from winoground_eval.results.timestep_select import StoredRun

    bench = _bench()
    from winoground_eval.results import plan_tune as pt

    monkeypatch.setattr(pt, "RULES", ((True, 0.99), (False, 0.9)))
    monkeypatch.setattr(pt, "CANDIDATES", (pt.Candidate("weights", 0.5, False, 0.9),))
    n_grid, n_ex = 32, 9
    errors, uncond = _synthetic_2x2(n_ex, n_grid, seed=1)
    scores = [partial_scores(e, u) for e, u in zip(errors, uncond)]
    info = {"scorer": {"config": {"normalize": "uncond"}}}
    from winoground_eval.core.metrics import WINOGROUND_METRICS

    ids = [str(i) for i in range(n_ex)]
    run = StoredRun(Path("."), info, ids, errors, uncond, scores, [None] * n_ex, np.arange(n_grid), WINOGROUND_METRICS)
    sel = bench.select_2x2(run)
    # the plain order under each rule, then the library's candidates
    kinds = [(c["kind"], c["keep"], c["futility"], c["confidence"]) for c in sel["candidates"]]
    assert kinds == [("none", None, True, 0.99), ("none", None, False, 0.9), ("weights", 0.5, False, 0.9)]
    assert sel["n"] == n_ex and sel["calls_full"] == 6 * n_grid
    passing = [c for c in sel["candidates"] if c["passes"]]
    assert passing and sel["chosen"] is min(passing, key=lambda c: c["calls"])
