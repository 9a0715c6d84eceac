"""Timestep plans (winoground_eval/core/timestep_plan.py) on synthetic errors: estimands, orders,
the error rate of the sequential test along a plan, the plan file, the model check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winoground_eval.core import timestep_plan as tp
from winoground_eval.core.errors import ConfigError
from winoground_eval.diffusion import sequential as sq

N = 200


def _profile() -> np.ndarray:
    """sd of the differences along the grid: large in the middle, ~0 at the top (as diffusion errors)."""
    t = np.arange(N) / N
    return 0.05 + np.exp(-(((t - 0.4) / 0.12) ** 2))


def _diffs(rng, n: int, mu: float = 0.3) -> list[np.ndarray]:
    sd = _profile()
    return [mu * sd + sd * rng.standard_normal(N) for _ in range(n)]


def test_uniform_weights_are_the_plain_estimate_and_boundary():
    rng = np.random.default_rng(0)
    d = rng.normal(0.1, 1, N)
    order = sq.vdc_order(N)
    for n in (2, 17, 60, N - 1, N):
        a, b = sq.estimate(order[:n], d[order[:n]], N), tp.weighted_estimate(order[:n], d[order[:n]], None, N)
        assert (a.mean, a.var, a.df, a.se_full) == pytest.approx((b.mean, b.var, b.df, b.se_full))
    plain = sq.Plan(N, min_timesteps=20, round_size=20)
    assert tp.rule_for(None, N).boundary == pytest.approx(plain.boundary)


def test_a_proposal_keeps_the_estimand_and_a_full_budget_is_the_plain_scorer():
    rng = np.random.default_rng(1)
    q = tp.fit_proposal(_diffs(rng, 30))
    assert q.min() > 0 and q.sum() == pytest.approx(1)
    assert q[80] > 3 * q[199]  # dense where the differences vary, sparse where they do not
    q10 = tp.fit_proposal(_diffs(rng, 30), floor=0.1)
    assert q10[80] > 5 * q10[199]
    order = tp.proposal_order(q)
    assert sorted(order.tolist()) == list(range(N))  # the whole grid, each point once
    e = rng.normal(size=N)
    est = tp.weighted_estimate(order, e[order], None, N)
    assert est.mean == pytest.approx(e.mean()) and est.var == 0.0
    # an early prefix follows the density: more points where q is large
    first = order[:40]
    assert ((first > 40) & (first < 120)).mean() > 0.6


def test_a_weights_plan_is_the_declared_weighted_mean_and_skips_zero_weights():
    rng = np.random.default_rng(2)
    t = np.arange(N) / N
    signal = np.exp(-(((t - 0.4) / 0.1) ** 2))  # the correct side ahead only in the middle of the schedule
    diffs = [signal * rng.uniform(0.5, 1.5) + 0.3 * rng.standard_normal(N) for _ in range(40)]
    w, q = tp.fit_weights(diffs)
    assert w[80] > 0.8 and w[199] == 0 and w[0] == 0
    assert (w == 0).any() and (w > 0).any()
    order = tp.proposal_order(q)
    assert set(order.tolist()) == set(np.flatnonzero(w > 0).tolist())  # zero weight: never evaluated
    e = rng.normal(size=N)
    est = tp.weighted_estimate(order, e[order], w, N)
    assert est.mean == pytest.approx(np.dot(w, e) / w.sum()) and est.var == 0.0


def test_sequential_test_along_a_plan_keeps_its_error_rate_and_saves_calls():
    """Against the full budget of the same rule, at most ~1 - confidence of the significant
    decisions differ; the proposal spends fewer calls than the plain order on the same draws."""
    rng = np.random.default_rng(3)
    q = tp.fit_proposal(_diffs(rng, 40))
    plan = tp.TimestepPlan("proposal", N, None, density=tuple(q))
    rules = {
        "plain": tp.rule_for(None, N, min_timesteps=10, round_size=10),
        "proposal": tp.rule_for(plan, N, min_timesteps=10, round_size=10),
    }
    sd = _profile()
    wrong = {k: 0 for k in rules}
    calls = {k: 0 for k in rules}
    n_sig = 0
    for _ in range(200):
        mu = rng.choice([0.0, 0.05, 0.1, 0.2])
        d = mu + sd * rng.standard_normal(N)
        full = tp.weighted_estimate(np.arange(N), d, None, N)
        sig = sq.significant(sq.Estimate(full.n, full.mean, full.var, full.df, full.se_full), 0.99)
        n_sig += sig
        for k, rule in rules.items():
            cells = ["a", "b"]
            comp = sq.Comparison("text", (0, 0), (0, 1))
            e = {"a": np.zeros(N), "b": d}
            _, (o,), c = tp.run_plan_sequential(
                rule, cells, [(comp, {"a": -1.0, "b": 1.0})], lambda cs, idx: np.stack([e[x][idx] for x in cs])
            )
            calls[k] += c
            wrong[k] += bool(sig and np.sign(o.estimate.mean) != np.sign(full.mean))
    assert n_sig > 60, (n_sig, wrong, calls)
    for k in rules:
        assert wrong[k] <= max(2, 0.02 * n_sig), (k, wrong[k], n_sig)
    assert calls["proposal"] < 0.9 * calls["plain"]


def test_elimination_along_a_plan_finds_the_best_and_takes_a_ranking():
    rng = np.random.default_rng(4)
    sd = _profile()
    e = 1 + sd * rng.standard_normal((6, N))
    e[3] -= 0.5 * sd  # candidate 3 has the lowest error
    rule = tp.rule_for(None, N, min_timesteps=5, round_size=5)
    errs, survived, calls = tp.run_plan_elimination(rule, 6, lambda c, g: e[list(c)][:, g])
    assert survived.argmax() == 3 and calls < 6 * N
    errs2, survived2, _ = tp.run_plan_elimination(rule, 6, lambda c, g: e[list(c)][:, g], first=[3, 0, 1, 2, 4, 5])
    assert survived2.argmax() == 3


def test_control_variate_stats_measure_the_variance_removed():
    rng = np.random.default_rng(5)
    u = [rng.normal(size=N) for _ in range(20)]
    d = [0.8 * x + 0.6 * rng.normal(size=N) for x in u]
    u2 = [rng.normal(size=N) for _ in range(20)]
    d2 = [0.8 * x + 0.6 * rng.normal(size=N) for x in u2]
    beta = tp.fit_cv_beta(d, u)  # fitted on other examples than those measured
    assert tp.control_variate_stats(d2, u2, beta)["ratio"] == pytest.approx(0.36, abs=0.08)
    unrelated = [rng.normal(size=N) for _ in range(20)]
    assert tp.control_variate_stats(d2, unrelated, tp.fit_cv_beta(d, unrelated[::-1]))["ratio"] > 0.95


def test_a_control_variate_along_a_weights_plan_keeps_its_estimand():
    # beta fitted on other comparisons recovers the slope; with control_mean the adjusted test's
    # full-budget estimate is the plan's weighted mean of d, and it stops sooner than without
    rng = np.random.default_rng(7)
    w = np.where(np.arange(N) < N // 2, 1.0, 0.0)
    plan = tp.TimestepPlan("weights", N, None, density=tuple(w / w.sum()), weights=tuple(w))
    fit_u = [rng.normal(size=N) for _ in range(10)]
    beta = tp.fit_cv_beta_grid([1.5 * x + 0.2 * rng.normal(size=N) for x in fit_u], fit_u)
    assert beta == pytest.approx(np.full(N, 1.5), abs=0.1)
    comp = sq.Comparison("text", (0, 0), (0, 1))
    calls = {}
    for cv in (False, True):
        for rule in (
            tp.rule_for(plan, N, min_timesteps=10, round_size=10, futility=False),
            tp.rule_for(plan, N, min_timesteps=N, futility=False),
        ):
            total = 0
            for seed in range(10):
                r = np.random.default_rng(100 + seed)
                a = r.normal(size=N)
                d = 0.3 + 1.5 * a + 0.2 * r.normal(size=N)
                rows = {"x": -d, "u": a}
                controls = {0: ({"u": 1.0}, beta, tp.control_mean(beta, a, w))} if cv else None
                _, outcomes, c = tp.run_plan_sequential(
                    rule,
                    ["x", "u"],
                    [(comp, {"x": -1.0})],
                    lambda cells, idx, rows=rows: np.stack([rows[k][idx] for k in cells]),
                    [["x", "u"]],
                    controls,
                )
                total += c
                if rule.looks == (N // 2,):  # the full budget of the plan: its weighted mean of d exactly
                    assert outcomes[0].estimate.mean == pytest.approx(float(np.dot(w, d) / w.sum()), abs=1e-5)
            calls[cv, len(rule.looks)] = total
    assert calls[True, 1] == calls[False, 1]
    assert calls[True, max(k for _, k in calls)] < 0.6 * calls[False, max(k for _, k in calls)]


def test_plan_file_round_trip_hash_and_model_check(tmp_path):
    q = tp.fit_proposal(_diffs(np.random.default_rng(6), 10))
    model = {"name": "tiny-diffusion", "model": "weights/tiny-diffusion", "fingerprint": "abc123"}
    plan = tp.TimestepPlan(
        "proposal", N, None, density=tuple(q), fitted_on={"run_id": "r1", "split": "val"}, model=model
    )
    path = tp.write_plan(plan, tmp_path / "plan.json")
    back = tp.read_plan(path)
    assert back.content_hash == plan.content_hash and back.fitted_on["run_id"] == "r1"
    other = tp.TimestepPlan("proposal", N, None, density=tuple(np.full(N, 1.0 / N)), model=model)
    assert other.content_hash != plan.content_hash
    tp.check_model(back, model)
    with pytest.raises(ConfigError, match="fitted on model .*fingerprint abc123.*does not carry over"):
        tp.check_model(back, {"name": "tiny-dit", "model": "weights/tiny-dit", "fingerprint": "zzz"})
    with pytest.raises(ConfigError, match="n_timesteps=200"):
        tp.check_grid(back, 1000, None)
    doc = json.loads(path.read_text())
    doc["density"] = doc["density"][:-1]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="density"):
        tp.read_plan(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="choose-timesteps"):
        tp.read_plan(tmp_path / "missing.json")
