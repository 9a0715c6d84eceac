"""The sequential stopping procedure on synthetic per-timestep errors (numpy only, fast)."""

import math

import numpy as np
import pytest

from winoground_eval.core.errors import ConfigError
from winoground_eval.core.metrics import WINOGROUND_COMPARISONS
from winoground_eval.diffusion import scores_from_errors
from winoground_eval.diffusion.replay import replay
from winoground_eval.diffusion.sequential import (
    Comparison,
    Plan,
    default_comparisons,
    estimate,
    look_boundary,
    run_sequential,
    select_comparisons,
    significant,
    strata,
    stratified_mean,
    vdc_order,
)

WINO = select_comparisons(WINOGROUND_COMPARISONS, 2, 2, "all")


def test_vdc_order_is_a_permutation_whose_prefixes_spread_evenly():
    assert vdc_order(8).tolist() == [0, 4, 2, 6, 1, 5, 3, 7]
    for n in (1, 2, 7, 200, 1000):
        order = vdc_order(n)
        assert sorted(order.tolist()) == list(range(n))
        for m in (4, 16, 64):
            if m <= n:
                gaps = np.diff(np.sort(order[:m]).tolist() + [n])
                assert gaps.max() <= 2 * math.ceil(n / m), (n, m)  # no hole wider than two strata


def test_strata_and_estimates():
    assert strata(np.arange(10), 10).tolist() == [1.0] * 10
    sizes = strata(np.array([0, 5, 9]), 10)
    assert sizes.sum() == 10 and sizes.min() >= 1
    rng = np.random.default_rng(0)
    d = rng.normal(size=64)
    full = estimate(np.arange(64), d, 64)
    assert full.var == 0 and full.mean == pytest.approx(d.mean())
    part = estimate(vdc_order(64)[:16], d[vdc_order(64)[:16]], 64)
    assert part.var > 0 and math.isfinite(part.df)
    values = rng.normal(size=(2, 3, 64)).astype(np.float32)
    np.testing.assert_allclose(stratified_mean(values), values.astype(np.float64).mean(-1), rtol=1e-12)
    values[0, 0, vdc_order(64)[16:]] = np.nan
    assert stratified_mean(values)[0, 0] == pytest.approx(part_mean(values[0, 0]))
    np.testing.assert_allclose(scores_from_errors(values), -stratified_mean(values))


def part_mean(row):
    pos = np.flatnonzero(~np.isnan(row))
    return float(np.dot(strata(pos, len(row)), row[pos]) / len(row))


def test_boundary_lies_between_one_look_and_bonferroni():
    from statistics import NormalDist

    looks = Plan(200).looks[:-1]
    b = look_boundary(200, looks, 0.99, False)
    look_boundary.cache_clear()
    assert b == look_boundary(200, looks, 0.99, False)  # seeded: the same every time
    assert NormalDist().inv_cdf(0.99) < b < NormalDist().inv_cdf(1 - 0.01 / len(looks))
    assert look_boundary(200, looks, 0.99, True) < b  # the futility rule errs less per look
    assert Plan(50, min_timesteps=50).looks == (50,) and math.isinf(Plan(50, min_timesteps=50).boundary)
    assert Plan(100, min_timesteps=20, round_size=30, max_timesteps=70).looks == (20, 50, 70)


def synthetic(rng, n_comp, n_grid, effects):
    """Differences d(t) = effect * bump(t) + sd(t) * noise: the signal is a bump in the middle of
    the schedule, the noise is large and caption-blind at low t (as a diffusion model's errors)."""
    u = (np.arange(n_grid) + 0.5) / n_grid
    sd = 0.3 + 4.0 * np.exp(-u / 0.08)
    bump = np.exp(-(((u - 0.5) / 0.2) ** 2))
    return effects[:, None] * bump[None] + sd[None] * rng.standard_normal((n_comp, n_grid))


def simulate(d, plan):
    """(stopped sign, full-budget sign, significant at the full budget, calls) per comparison."""
    comp = Comparison("text", (0, 0), (0, 1))
    out = []
    for row in d:
        res = run_sequential(plan, ["x"], [(comp, {"x": 1.0})], lambda cells, idx, row=row: row[idx][None])
        full = estimate(np.arange(plan.n_grid), row, plan.n_grid)
        out.append(
            (
                np.sign(res.outcomes[0].estimate.mean),
                np.sign(row.mean()),
                significant(full, plan.confidence),
                res.unet_calls,
            )
        )
    return np.array(out)


CONFIDENCE, N_COMPARISONS = 0.9, 300  # a confidence low enough for errors to happen
ALPHA = 1 - CONFIDENCE
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / N_COMPARISONS)  # three binomial standard errors


def signed_effects_run(seed, magnitudes, futility):
    """(effects, simulate's rows) for N_COMPARISONS comparisons (one per draw) with effects
    drawn from ``magnitudes`` times a random sign, on a 256-point grid at CONFIDENCE."""
    rng = np.random.default_rng(seed)
    effects = rng.choice(magnitudes, size=N_COMPARISONS) * rng.choice([-1, 1], size=N_COMPARISONS)
    plan = Plan(256, confidence=CONFIDENCE, min_timesteps=16, round_size=16, futility=futility)
    return effects, simulate(synthetic(rng, N_COMPARISONS, 256, effects), plan)


@pytest.mark.parametrize("futility", [False, True])
def test_wrong_decisions_stay_within_the_stated_rate(futility):
    # effects from none to clear: the rate of decisions differing from the full budget's
    # must stay below 1 - confidence
    _, res = signed_effects_run(1, [0.0, 0.02, 0.05, 0.1, 0.3], futility)
    wrong = res[:, 0] != res[:, 1]
    if futility:  # only decisions that are significant at the full budget are guaranteed
        assert np.mean(wrong & (res[:, 2] == 1)) <= ALPHA + SLACK
        assert res[:, 3].mean() < 0.8 * 256  # and it saves calls on the hopeless ones
    else:
        assert np.mean(wrong) <= ALPHA + SLACK


@pytest.mark.parametrize("futility", [False, True])
def test_against_the_infinite_budget_sign(futility):
    # signs known by construction (no zero effects): the infinite-budget decision is the sign
    # of the effect. Without futility, stopping adds at most 1 - confidence to the full
    # budget's own error rate against it; with futility, P(stopped decision wrong while the
    # full budget is right and significant) <= 1 - confidence.
    effects, res = signed_effects_run(4, [0.02, 0.05, 0.1, 0.3, 0.6], futility)
    truth = np.sign(effects)
    stopped_wrong, full_wrong, significant_ = res[:, 0] != truth, res[:, 1] != truth, res[:, 2] == 1
    if futility:
        resolved = significant_ & ~full_wrong
        assert resolved.sum() > 50
        assert np.mean(stopped_wrong & resolved) <= ALPHA + SLACK
    else:
        assert np.mean(stopped_wrong) <= np.mean(full_wrong) + ALPHA + SLACK
    clear = np.abs(effects) == 0.6  # the full budget always gets these right
    assert not full_wrong[clear].any() and np.mean(stopped_wrong[clear]) <= ALPHA


def test_stopping_saves_calls_on_easy_comparisons():
    rng = np.random.default_rng(2)
    plan = Plan(400)
    easy = simulate(synthetic(rng, 20, 400, np.full(20, 1.5)), plan)
    assert (easy[:, 0] == easy[:, 1]).all()
    assert easy[:, 3].mean() < 0.2 * 400


def test_full_budget_replay_is_the_plain_score():
    rng = np.random.default_rng(3)
    errors = rng.random((2, 2, 40)).astype(np.float32)
    uncond = rng.random((2, 40)).astype(np.float32)
    r = replay(errors, uncond, Plan(40, min_timesteps=40), WINO, uncond=True)
    np.testing.assert_array_equal(r.errors, errors)
    np.testing.assert_allclose(r.scores, scores_from_errors(errors, uncond), rtol=1e-12)
    assert r.unet_calls == 6 * 40 and {o.stop for o in r.outcomes} == {"full"}


def test_rows_stop_independently_and_text_only_evaluates_fewer_pairs():
    rng = np.random.default_rng(4)
    n = 400
    errors = rng.normal(1.0, 0.05, size=(2, 2, n)).astype(np.float32)
    errors[0, 1] = errors[0, 0] + 0.2  # image 0: caption 0 clearly better
    errors[1, 0] = errors[1, 1] + rng.normal(0, 0.05, size=n)  # image 1: a coin flip
    uncond = rng.normal(1.0, 0.05, size=(2, n)).astype(np.float32)
    text = replay(errors, None, Plan(n), select_comparisons(WINOGROUND_COMPARISONS, 2, 2, "text"), uncond=False)
    evaluated = (~np.isnan(text.errors)).sum(-1)
    assert evaluated[0, 0] == evaluated[0, 1] == 20  # settled at the first look
    assert evaluated[1, 0] == evaluated[1, 1] > 20  # paired: both cells of a comparison alike
    assert [o.stop for o in text.outcomes][0] == "settled"
    both = replay(errors, uncond, Plan(n), WINO, uncond=True)
    assert both.unet_calls > text.unet_calls
    assert len(both.outcomes) == 4 and len(text.outcomes) == 2
    # every decision the metric reads from the matrix is the comparison's stopped decision
    for o in both.outcomes:
        (ja, ka), (jb, kb) = o.comparison.a, o.comparison.b
        assert np.sign(both.scores[ja, ka] - both.scores[jb, kb]) == np.sign(o.estimate.mean)


def test_declared_comparisons():
    assert default_comparisons(1, 3) == (
        Comparison("text", (0, 0), (0, 1)),
        Comparison("text", (0, 0), (0, 2)),
        Comparison("text", (0, 1), (0, 2)),
    )
    assert len(select_comparisons((), 2, 2, "all")) == 2  # nothing declared: caption pairs per image
    assert [c.metric for c in select_comparisons(WINOGROUND_COMPARISONS, 2, 2, "image")] == ["image", "image"]
    with pytest.raises(ConfigError, match="image"):
        select_comparisons((), 1, 2, "image")
    with pytest.raises(ConfigError, match="outside"):
        select_comparisons([("text", (0, 0), (0, 5))], 1, 2, "all")
    for bad in ({"confidence": 1.0}, {"min_timesteps": 1}, {"round_size": 0}, {"max_timesteps": 1}):
        with pytest.raises(ConfigError):
            Plan(100, **bad)


def test_a_cap_stops_open_comparisons_there():
    rng = np.random.default_rng(5)
    errors = rng.normal(1.0, 0.05, size=(2, 2, 100)).astype(np.float32)  # no signal: nothing settles early
    r = replay(errors, None, Plan(100, max_timesteps=40, futility=False), WINO, uncond=False)
    assert (~np.isnan(r.errors)).sum(-1).max() <= 40
    assert r.unet_calls <= 4 * 40 and "cap" in {o.stop for o in r.outcomes}
    assert np.isfinite(r.scores).all()


# ---------------------------------------------------------------- sequential elimination (1 x N)


def test_elimination_drops_clearly_worse_candidates_early_and_keeps_the_best():
    from winoground_eval.diffusion.grid import adaptive_scores
    from winoground_eval.diffusion.sequential import Plan, run_elimination

    rng = np.random.default_rng(0)
    n_grid = 200
    t = np.linspace(0, 1, n_grid)
    base = 1.0 + np.sin(3 * t)  # shared by all candidates (a timestep effect), cancels in paired differences
    offsets = np.array([0.0, 0.002, 0.3, 0.5, 0.8])  # candidate 0 best, 1 nearly tied, 2..4 clearly worse
    errors = base[None] + offsets[:, None] + 0.01 * rng.standard_normal((5, n_grid))
    asked = []

    def evaluate(alive, idx):
        asked.append((list(alive), len(idx)))
        return errors[np.asarray(alive)][:, idx]

    plan = Plan(n_grid, confidence=0.99, min_timesteps=10, round_size=10)
    result = run_elimination(plan, 5, evaluate)
    assert result.unet_calls == sum(len(a) * n for a, n in asked)
    assert set(asked[1][0]) <= {0, 1}  # the clearly worse ones were gone after the first look
    assert result.n_evaluated[2:].max() == plan.looks[0]
    assert result.unet_calls < 5 * n_grid / 2
    scores = adaptive_scores(result.survived, result.mean_errors)
    assert int(np.argmax(scores)) in result.remaining and np.argmax(scores) == 0
    assert list(np.argsort(-scores)[2:]) == [2, 3, 4]  # dropped together: ordered by their mean error
    # evaluated entries are the errors given; the rest NaN
    ok = ~np.isnan(result.errors)
    np.testing.assert_array_equal(result.errors[ok], errors.astype(np.float32)[ok])


def test_elimination_with_equal_candidates_runs_the_full_budget():
    from winoground_eval.diffusion.sequential import Plan, run_elimination

    n_grid = 40
    errors = np.tile(np.linspace(1, 2, n_grid), (3, 1))
    plan = Plan(n_grid, min_timesteps=10, round_size=10)
    result = run_elimination(plan, 3, lambda alive, idx: errors[np.asarray(alive)][:, idx])
    assert result.unet_calls == 3 * n_grid and sorted(result.remaining) == [0, 1, 2]


def test_a_control_variate_keeps_the_full_budget_decision_and_saves_calls():
    # d_i = signal + 2 a_i + small noise, with a_i a control measured at the same grid point
    # (as the unconditional error is): with beta = 2 and the control's full-grid mean the
    # adjusted test has the same full-budget mean (truth known), a tenth of the variance
    # per call, and stops earlier, making the full budget's decisions
    rng = np.random.default_rng(11)
    n_grid, n_comp = 256, 120
    plan = Plan(n_grid, confidence=0.99, min_timesteps=16, round_size=16, futility=False)
    comp = Comparison("text", (0, 0), (0, 1))
    effects = rng.choice([0.1, 0.2, 0.4], size=n_comp) * rng.choice([-1, 1], size=n_comp)
    beta = np.full(n_grid, 2.0)
    same = {False: 0, True: 0}
    calls = {False: 0, True: 0}
    var = {False: 0.0, True: 0.0}
    for effect in effects:
        a = rng.standard_normal(n_grid)
        d = effect + 2.0 * a + 0.3 * rng.standard_normal(n_grid)
        truth = np.sign(d.mean())  # the full-budget decision
        rows = {"x": -d, "u": a}  # d = -error_x (the comparison's term below)
        for cv in (False, True):
            controls = {0: ({"u": 1.0}, beta, float(np.mean(beta * a)))} if cv else None
            res = run_sequential(
                plan,
                ["x", "u"],
                [(comp, {"x": -1.0})],
                lambda cells, idx, rows=rows: np.stack([rows[c][idx] for c in cells]),
                [["x", "u"]],
                controls=controls,
            )
            est = res.outcomes[0].estimate
            same[cv] += np.sign(est.mean) == truth
            calls[cv] += res.evaluated["x"]
            var[cv] += float(np.var(d - (beta * a if cv else 0.0)))
            if res.evaluated["x"] == n_grid:  # at the full budget the adjusted mean is the plain one
                assert est.mean == pytest.approx(d.mean(), abs=1e-5)
    assert var[True] < 0.1 * var[False]
    assert same[True] >= 0.99 * n_comp - 1 and same[False] >= 0.99 * n_comp - 1
    assert calls[True] < 0.5 * calls[False]


def test_a_control_variate_with_a_wrong_mean_moves_the_estimand():
    # the control's mean is what keeps the estimand: an offset in it shifts every estimate by it
    n_grid = 64
    plan = Plan(n_grid, min_timesteps=n_grid)
    comp = Comparison("text", (0, 0), (0, 1))
    rng = np.random.default_rng(12)
    d, a = rng.standard_normal(n_grid), rng.standard_normal(n_grid)
    rows = {"x": -d, "u": a}
    beta = np.full(n_grid, 0.5)
    ev = lambda cells, idx: np.stack([rows[c][idx] for c in cells])
    right = run_sequential(
        plan,
        ["x", "u"],
        [(comp, {"x": -1.0})],
        ev,
        [["x", "u"]],
        controls={0: ({"u": 1.0}, beta, float(np.mean(beta * a)))},
    )
    wrong = run_sequential(
        plan,
        ["x", "u"],
        [(comp, {"x": -1.0})],
        ev,
        [["x", "u"]],
        controls={0: ({"u": 1.0}, beta, float(np.mean(beta * a)) + 0.25)},
    )
    assert right.outcomes[0].estimate.mean == pytest.approx(d.mean(), abs=1e-5)
    assert wrong.outcomes[0].estimate.mean == pytest.approx(d.mean() + 0.25, abs=1e-5)
