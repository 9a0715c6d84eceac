"""`-o control_variate=uncond`: the unconditional error as a control variate in the sequential test
(docs/timestep-plans.md, "Control variate"): the plan key, the per-cell scores, the scorer, the
refusals, re-aggregation and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winoground_eval.core import timestep_plan as tp
from winoground_eval.core.errors import ConfigError
from winoground_eval.diffusion import sequential as sq
from winoground_eval.diffusion.grid import scores_from_arrays
from winoground_eval.diffusion.options import DiffusionOptions

N = 32
COMPS = (
    ("text", (0, 0), (0, 1)),
    ("text", (1, 1), (1, 0)),
    ("image", (0, 0), (1, 0)),
    ("image", (1, 1), (0, 1)),
)


def _example(rng, n_grid=N, shift=0.2):
    u = 1.0 + 0.3 * rng.standard_normal((2, n_grid))
    e = u[:, None, :] + 0.05 * rng.standard_normal((2, 2, n_grid))
    e[0, 1] += shift
    e[1, 0] += shift
    return e.astype(np.float32), u.astype(np.float32)  # as the scorer stores them


def _weights(n_grid=N):
    w = np.linspace(0.2, 1.0, n_grid)
    w[: n_grid // 4] = 0.0  # a weights plan's support: points with w = 0 are never evaluated
    return w


def _replay(e, u, rule, beta, comps=COMPS):
    """The scorer's control-variate rule on stored errors: (errors, outcomes, means)."""
    cells, terms, links = sq.plan_cells(2, 2, sq.select_comparisons(comps, 2, 2, "all"), True)
    means = tp.cv_means(beta, u, rule.weights)
    controls = tp.cv_controls(terms, beta, means)

    def evaluate(run_cells, idx):
        return np.stack([(u[j] if k == sq.UNCOND else e[j, k])[idx] for j, k in run_cells])

    errs, outcomes, _ = tp.run_plan_sequential(rule, cells, terms, evaluate, links, controls)
    out = np.stack([np.stack([errs[(j, k)] for k in range(2)]) for j in range(2)])
    return out, outcomes, means, controls


@pytest.mark.parametrize("weights", [None, "weights"])
def test_cell_scores_are_the_tests_estimates_and_the_full_budget_is_the_plain_score(weights):
    rng = np.random.default_rng(0)
    w = None if weights is None else _weights()
    beta = rng.uniform(0.2, 1.2, N)
    e, u = _example(rng)
    # full budget: every cell is the plain (uniform) or weighted normalize=uncond score
    full = tp.cv_cell_scores(np.where(np.isnan(_mask(w)), np.nan, e), u, beta, tp.cv_means(beta, u, w), w)
    plain = (
        -tp.weighted_mean(np.where(np.isnan(_mask(w)), np.nan, e), w)
        + tp.weighted_mean(np.where(np.isnan(_mask(w))[0, 0], np.nan, u), w)[:, None]
    )
    np.testing.assert_allclose(full, plain, rtol=0, atol=1e-12)
    # stopped: each comparison's estimate (the test's adjusted difference) is the scores' difference
    density = np.ones(N) if w is None else w.copy()
    plan = tp.TimestepPlan(
        weights or "proposal", N, None, density=tuple(density), weights=None if w is None else tuple(w)
    )
    rule = tp.rule_for(plan, N, confidence=0.9, min_timesteps=6, round_size=4, futility=True)
    out, outcomes, means, controls = _replay(e, u, rule, beta)
    assert np.isnan(out).any(), "the test should stop before the full budget on these examples"
    scores = tp.cv_cell_scores(out, u, beta, means, w)
    assert sorted(controls) == [2, 3]  # the image comparisons only
    for o in outcomes:
        a, b = o.comparison.a, o.comparison.b
        assert scores[a] - scores[b] == pytest.approx(o.estimate.mean, abs=1e-9)


def _mask(w):
    m = np.zeros((2, 2, N))
    if w is not None:
        m[..., w == 0] = np.nan
    return m


def test_the_control_enters_image_comparisons_with_the_scores_sign():
    """Pin the sign conventions: on caption k, image a against image b, the adjusted difference
    is d - beta (u_a - u_b) + (C_a - C_b), d = s_a - s_b with s = -e + u (either order declared)."""
    rng = np.random.default_rng(1)
    e, u = _example(rng)
    beta = np.full(N, 0.7)
    rule = tp.rule_for(None, N, confidence=0.99, min_timesteps=N, round_size=N, futility=False)
    for comps in (COMPS, tuple((m, b, a) for m, a, b in COMPS)):
        _, outcomes, means, _ = _replay(e, u, rule, beta, comps)
        for o in outcomes:
            (ja, ka), (jb, kb) = o.comparison.a, o.comparison.b
            e64, u64 = e.astype(np.float64), u.astype(np.float64)
            d = (-e64[ja, ka] + u64[ja]) - (-e64[jb, kb] + u64[jb])
            want = d.mean() - (beta * (u64[ja] - u64[jb])).mean() + (means[ja] - means[jb])
            assert o.estimate.mean == pytest.approx(want, abs=1e-12)
            assert o.estimate.mean == pytest.approx(d.mean(), abs=1e-12)  # the full budget: the plain difference


def test_fit_control_variate_uses_the_image_comparisons_of_square_examples():
    rng = np.random.default_rng(2)
    ex = [_example(rng) for _ in range(6)]
    errors, uncond = [e for e, _ in ex], [u for _, u in ex]
    cv = tp.fit_control_variate(errors, uncond)
    d, a = [], []
    for e, u in ex:
        dd, aa = tp.image_differences(e, u)
        d += dd
        a += aa
        np.testing.assert_allclose(dd[0], (u[0] - e[0, 0]) - (u[1] - e[1, 0]))  # aligned: correct side positive
    assert cv["control"] == "uncond" and len(cv["beta"]) == N
    np.testing.assert_allclose(cv["beta"], tp.fit_cv_beta_grid(d, a))
    assert tp.fit_control_variate(errors, [None] * 6) is None  # normalize=none: nothing to fit
    assert tp.fit_control_variate([np.zeros((1, 5, N))], [np.zeros((1, N))]) is None  # 1 x N: u cancels


def test_the_plan_key_round_trips_enters_the_hash_and_plans_without_it_are_unchanged(tmp_path):
    density = tuple(np.full(N, 1.0 / N))
    bare = tp.TimestepPlan("proposal", N, (0, 1000), density=density)
    assert "control_variate" not in bare.to_json()  # old plan files: same JSON, same content hash
    beta = tuple(np.linspace(0.1, 0.9, N))
    withcv = tp.TimestepPlan(
        "proposal", N, (0, 1000), density=density, control_variate={"control": "uncond", "beta": beta}
    )
    assert withcv.content_hash != bare.content_hash
    back = tp.read_plan(tp.write_plan(withcv, tmp_path / "p.json"))
    assert back.content_hash == withcv.content_hash and back.version == tp.PLAN_VERSION == 1
    np.testing.assert_allclose(back.cv_beta, beta, atol=1e-9)
    for bad in ({"control": "text", "beta": beta}, {"control": "uncond", "beta": beta[:-1]}):
        with pytest.raises(ConfigError, match="control_variate"):
            tp.TimestepPlan("proposal", N, (0, 1000), density=density, control_variate=bad)


@pytest.mark.parametrize(
    "options, missing",
    [
        ({"stopping": "sequential", "plan": "p.json"}, "normalize=uncond"),
        ({"normalize": "uncond", "plan": "p.json"}, "stopping=sequential"),
        ({"normalize": "uncond", "stopping": "sequential"}, "plan=FILE"),
    ],
)
def test_the_option_names_what_it_needs(options, missing):
    with pytest.raises(ConfigError, match=f"control_variate=uncond needs.*{missing}.*choose-timesteps"):
        DiffusionOptions(control_variate="uncond", **options)
    with pytest.raises(ConfigError, match="choose one of none, uncond"):
        DiffusionOptions(control_variate="text")
    with pytest.raises(ConfigError, match="decide=text: the control acts on image comparisons only"):
        DiffusionOptions(
            control_variate="uncond", normalize="uncond", stopping="sequential", plan="p.json", decide="text"
        )


# --------------------------------------------------------------------------- the scorer, on a tiny model


@pytest.fixture(scope="module")
def components(tiny_sd):
    from winoground_eval.diffusion.loading import load_components

    return load_components(str(tiny_sd(seed=0)))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    from winoground_eval.tasks.winoground import WinogroundTask
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    data = write_winoground_sample(tmp_path_factory.mktemp("sample") / "s", n_examples=2, seed=0)
    return list(WinogroundTask(data_dir=str(data)).examples())


def make(components, **options):
    from winoground_eval.diffusion import DiffusionScorer

    parts, source = components
    return DiffusionScorer(**parts, source=source, **{"device": "cpu", "batch_size": 64, **options})


def write(components, path, kind, n_grid, cv=True):
    source = make(components, n_timesteps=n_grid).family.source.as_config()
    rng = np.random.default_rng(3)
    density = rng.uniform(0.5, 1.5, n_grid)
    weights = None
    if kind == "weights":
        weights = np.linspace(0.3, 1.0, n_grid)
        weights[: n_grid // 4] = 0
        density = density * (weights > 0)
    plan = tp.TimestepPlan(
        kind,
        n_grid,
        (0, 1000),
        density=tuple(density / density.sum()),
        weights=None if weights is None else tuple(weights),
        model={"model": source.get("model"), "fingerprint": source.get("fingerprint")},
        control_variate={"control": "uncond", "beta": tuple(rng.uniform(0.3, 1.0, n_grid))} if cv else None,
    )
    return tp.write_plan(plan, path), plan


CV = {"normalize": "uncond", "stopping": "sequential", "control_variate": "uncond"}


@pytest.mark.parametrize("kind", ["proposal", "weights"])
def test_full_budget_scores_are_the_plain_or_weighted_scores(components, examples, tmp_path, kind):
    n = 16
    path, plan = write(components, tmp_path / "p.json", kind, n)
    scorer = make(components, n_timesteps=n, min_timesteps=n, plan=str(path), **CV)
    plain = make(components, n_timesteps=n, normalize="uncond").evaluate(examples)
    support = n if plan.weights is None else int((np.asarray(plan.weights) > 0).sum())
    for cv, ref in zip(scorer.evaluate(examples), plain):
        w = None if plan.weights is None else np.asarray(plan.weights)
        e, u = cv.arrays["errors"], cv.arrays["uncond_errors"]
        own = -tp.weighted_mean(e, w) + tp.weighted_mean(u, w)[:, None]  # its own errors, the plan's estimand
        np.testing.assert_allclose(cv.scores, own, rtol=0, atol=1e-12)
        # the same errors as the plain scorer (other batches: the batch-size tolerance)
        ref_u = ref.arrays["uncond_errors"]
        ref_scores = -tp.weighted_mean(ref.arrays["errors"], w) + tp.weighted_mean(ref_u, w)[:, None]
        np.testing.assert_allclose(cv.scores, ref_scores, rtol=1e-5, atol=1e-5)
        assert {c["stop"] for c in cv.info["stopping"]["comparisons"]} == {"full"}
        assert cv.info["unet_calls"] == 2 * support + 4 * support  # u once per image and support point
        assert cv.info["stopping"]["control_variate"] == "uncond"
        np.testing.assert_array_equal(scores_from_arrays(cv.arrays), cv.scores)


@pytest.mark.slow  # a tiny diffusion model over several examples
def test_a_stopped_run_counts_its_calls_and_reaggregates_to_its_stored_scores(components, examples, tmp_path):
    n = 64
    path, plan = write(components, tmp_path / "p.json", "proposal", n)
    scorer = make(components, n_timesteps=n, min_timesteps=8, round_size=8, plan=str(path), **CV)
    config = scorer.config()
    assert config["control_variate"] == "uncond" and config["plan"]["sha256"] == plan.content_hash
    assert "control_variate" not in make(components, n_timesteps=n).config()  # other run ids unchanged
    early = 0
    for scored in scorer.evaluate(examples):
        e, u = scored.arrays["errors"], scored.arrays["uncond_errors"]
        assert not np.isnan(u).any()  # the full rows: paid for first
        caption_calls = int((~np.isnan(e)).sum())
        assert scored.info["unet_calls"] == 2 * n + caption_calls
        assert scored.info["stopping"]["control_calls"] == 2 * n
        np.testing.assert_array_equal(scores_from_arrays(scored.arrays), scored.scores)
        for c in scored.info["stopping"]["comparisons"]:
            (ja, ka), (jb, kb) = c["a"], c["b"]
            assert scored.scores[ja, ka] - scored.scores[jb, kb] == pytest.approx(c["diff"], abs=1e-9)
            early += c["stop"] in ("settled", "futile")
    assert early > 0
    with pytest.raises(ConfigError, match="subset of the grid"):
        scores_from_arrays(scored.arrays, timesteps=[0, 1])


def test_plans_without_coefficients_and_one_image_examples_are_refused(components, examples, tmp_path):
    n = 16
    bare, _ = write(components, tmp_path / "bare.json", "proposal", n, cv=False)
    with pytest.raises(ConfigError, match="carries no control-variate coefficients.*choose-timesteps"):
        make(components, n_timesteps=n, plan=str(bare), **CV)
    window = tp.TimestepPlan(
        "window",
        n,
        (0, 1000),
        window=(0, 1000),
        window_n_timesteps=n,
        model=dict(tp.read_plan(bare).model),
    )
    with pytest.raises(ConfigError, match="window plan"):
        make(components, n_timesteps=n, t_range=(0, 1000), plan=str(tp.write_plan(window, tmp_path / "w.json")), **CV)
    path, _ = write(components, tmp_path / "p.json", "proposal", n)
    scorer = make(components, n_timesteps=n, plan=str(path), **CV)
    counted = []
    original = scorer._unet.forward

    def counting(*a, **k):
        counted.append(1)
        return original(*a, **k)

    scorer._unet.forward = counting
    ex = examples[0]
    with pytest.raises(ConfigError, match="one image.*cancels from every comparison"):
        scorer.score(ex.images[:1], ex.captions)
    assert counted == []  # refused before any model call


@pytest.mark.slow  # a tiny diffusion model over several examples
def test_choose_timesteps_writes_the_key_and_a_run_with_it_resumes(tmp_path, capsys):
    from winoground_eval.cli.main import main

    grid = ["-o", "n_timesteps=8", "-o", "t_range=none", "-o", "normalize=uncond", "-q", "--threads", "1"]

    def run(split, limit, *extra):
        args = ["run", "--task", "shapes", "--split", split, "--scorer", "tiny-diffusion", "--limit", str(limit)]
        return main([*args, "--out", str(tmp_path / "runs"), *grid, *extra])

    assert run("val", 2) == 0
    [val_dir] = (tmp_path / "runs" / "shapes" / "tiny-diffusion").iterdir()
    plan = tmp_path / "plan.json"
    capsys.readouterr()
    assert main(["choose-timesteps", str(val_dir), "-O", str(plan), "--kind", "proposal"]) == 0
    assert "-o control_variate=uncond" in " ".join(capsys.readouterr().out.split())
    doc = json.loads(plan.read_text())
    assert doc["control_variate"]["control"] == "uncond" and len(doc["control_variate"]["beta"]) == 8
    stop = ["-o", "stopping=sequential", "-o", "min_timesteps=2", "-o", "round_size=2"]
    cv = [*stop, "-o", f"plan={plan}", "-o", "control_variate=uncond"]
    assert run("test", 1, *cv) == 0
    dirs = {p.name for p in (tmp_path / "runs" / "shapes" / "tiny-diffusion").iterdir()} - {val_dir.name}
    assert run("test", 2, *cv) == 0  # resumes in the same run directory
    again = {p.name for p in (tmp_path / "runs" / "shapes" / "tiny-diffusion").iterdir()} - {val_dir.name}
    assert again == dirs and len(dirs) == 1
    run_dir = tmp_path / "runs" / "shapes" / "tiny-diffusion" / dirs.pop()
    assert json.loads((run_dir / "run.json").read_text())["scorer"]["config"]["control_variate"] == "uncond"
    recs = [json.loads(x) for x in (run_dir / "scores.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["info"]["stopping"]["control_variate"] == "uncond" for r in recs)
    capsys.readouterr()
    # a 1 x N task: refused before a run directory exists, naming the task
    args = ["run", "--task", "shapes-classify", "--scorer", "tiny-diffusion", "--limit", "1"]
    assert main([*args, "--out", str(tmp_path / "runs"), *grid, *cv]) == 2
    assert "task shapes-classify has one image per example" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "runs" / "shapes-classify").exists()
