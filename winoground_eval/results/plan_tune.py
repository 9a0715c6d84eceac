"""Tuning a timestep plan and its stopping rule on validation data (``choose-timesteps --tune``).

A plan (:mod:`winoground_eval.core.timestep_plan`) has a knob of its own (a weights plan's
``keep``: how few timesteps it evaluates) and runs under the sequential test's options
(``futility``, ``confidence``). Which setting is cheapest while keeping the decisions depends on
the model and the data, so it is chosen on a validation run's stored per-timestep errors by
cross-fitting: the run's examples are dealt into ``folds`` folds (example i to fold i mod folds);
each candidate's plan is fitted on the other folds and the scorer's sequential test is replayed
along it on the held-out fold (no model call: noise draw i stays with grid index i, so the
errors a stopped run would compute are the stored ones). Pooled over the held-out folds, a
candidate passes when its decisions agree with the full budget of its own scoring rule at
least ``agreement`` of the time and the run's per-example metrics are on average at most
``tolerance`` below the plain full budget; the cheapest that passes is chosen (ties: the
earlier candidate). Nothing here reads a test split: tune on validation data, report on test.

Square (n x n) examples only, comparing each image's correct caption (caption j of image j)
with the others and each caption's correct image with the others, as Winoground-style pair
tasks declare them (a ``decide=all`` run settles both). The figures and the procedure:
docs/early-stopping.md ("Timestep plans, held out").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core import timestep_plan as tp
from ..core.errors import ConfigError
from ..diffusion import sequential as sq
from ..diffusion.grid import scores_from_errors


@dataclass(frozen=True)
class Candidate:
    """One setting: the plan kind (``none``: the plain order), a weights plan's keep, and the
    sequential test's futility and confidence."""

    kind: str
    keep: float | None
    futility: bool
    confidence: float

    def options(self) -> dict[str, Any]:
        """The run's ``-o`` options of this setting (besides ``plan=``)."""
        return {"stopping": "sequential", "futility": self.futility, "confidence": self.confidence}


KEEPS = (0.2, 0.4, 0.6, 0.8)
RULES = ((True, 0.99), (False, 0.99), (False, 0.95), (False, 0.9))
PLAN_KINDS = (("proposal", None), *(("weights", k) for k in KEEPS))
CANDIDATES = tuple(Candidate(kind, keep, f, c) for kind, keep in PLAN_KINDS for f, c in RULES)
AGREEMENT = 0.995  # a 99% target with a margin for the validation estimate's own error
TOLERANCE = 0.01  # the mean of the per-example metrics at most 1 point below the plain full budget
FOLDS = 3


def square_comparisons(n: int) -> tuple[sq.Comparison, ...]:
    """Image j's correct caption j against each other caption (``text``) and caption k's correct
    image k against each other image (``image``): what a pair task declares, all of which a
    ``decide=all`` run settles (image comparisons are meaningful with ``normalize=uncond``)."""
    text = [sq.Comparison("text", (j, j), (j, k)) for j in range(n) for k in range(n) if k != j]
    image = [sq.Comparison("image", (k, k), (j, k)) for k in range(n) for j in range(n) if j != k]
    return tuple(text + image)


def fit_candidate(
    candidate: Candidate, errors: Sequence[np.ndarray], uncond: Sequence[np.ndarray | None], n_grid: int
) -> tp.TimestepPlan | None:
    """The candidate's plan fitted on these examples (None for ``none``: the plain order)."""
    if candidate.kind == "none":
        return None
    correct = [[[j] for j in range(e.shape[0])] for e in errors]
    diffs, _ = tp.aligned_differences(errors, uncond, correct)
    if candidate.kind == "proposal":
        return tp.TimestepPlan("proposal", n_grid, None, density=tuple(float(x) for x in tp.fit_proposal(diffs)))
    w, q = tp.fit_weights(diffs, keep=float(candidate.keep if candidate.keep is not None else 0.2))
    return tp.TimestepPlan(
        "weights", n_grid, None, density=tuple(float(x) for x in q), weights=tuple(float(x) for x in w)
    )


@dataclass(frozen=True)
class Replayed:
    """One example replayed: the stopped scores, its rule's full-budget scores, the calls spent
    (with the control variate: its precomputation included, ``control_calls`` of them), the
    test's outcomes, and how many of its decisions equal the full budget's."""

    scores: np.ndarray
    full: np.ndarray
    calls: int
    agree: int
    decisions: int
    outcomes: tuple[Any, ...] = ()
    control_calls: int = 0


def replay_example(
    rule: tp.Rule, e: np.ndarray, u: np.ndarray | None, uncond: bool, cv: np.ndarray | None = None
) -> Replayed:
    """The scorer's sequential test along ``rule`` on one example's stored full-grid errors.
    ``cv``: the control variate's beta per grid point (``-o control_variate=uncond``): each
    image's unconditional error on the plan's support is paid for first, the test runs with the
    control, and the scores are the per-cell form (:func:`timestep_plan.cv_cell_scores`)."""
    e = np.asarray(e, dtype=np.float64)
    n = e.shape[0]
    comps = square_comparisons(n)
    cells, terms, links = sq.plan_cells(n, n, comps, uncond)

    def evaluate(run_cells, idx):
        return np.stack([(u[j] if k == sq.UNCOND else e[j, k])[idx] for j, k in run_cells])

    controls = means = None
    if cv is not None and uncond:
        means = tp.cv_means(cv, u, rule.weights)
        controls = tp.cv_controls(terms, cv, means)
    errs, outcomes, calls = tp.run_plan_sequential(rule, cells, terms, evaluate, links, controls)
    out = np.stack([np.stack([errs[(j, k)] for k in range(n)]) for j in range(n)])
    full = -tp.weighted_mean(e, rule.weights)
    if uncond:
        full = full + tp.weighted_mean(np.asarray(u, dtype=np.float64), rule.weights)[:, None]
    control_calls = 0
    if controls is not None:  # the precomputation, and the caption cells (u is not evaluated twice)
        seen = sum(int(np.count_nonzero(~np.isnan(errs[(j, sq.UNCOND)]))) for j in range(n))
        control_calls = tp.cv_calls(n, rule.weights, rule.n_grid)
        calls = calls - seen + control_calls
        scores = tp.cv_cell_scores(out, u, cv, means, rule.weights)
    else:
        scores = -tp.weighted_mean(out, rule.weights)
        if uncond:
            uncond_rows = np.stack([errs[(j, sq.UNCOND)] for j in range(n)])
            scores = scores + tp.weighted_mean(uncond_rows, rule.weights)[:, None]
    agree = sum(
        bool(
            np.sign(scores[o.comparison.a] - scores[o.comparison.b])
            == np.sign(full[o.comparison.a] - full[o.comparison.b])
        )
        for o in outcomes
    )
    return Replayed(scores, full, int(calls), agree, len(outcomes), tuple(outcomes), control_calls)


def _mean_metrics(outcomes: Callable[[str, np.ndarray], Mapping[str, float]], scores: Mapping[str, np.ndarray]) -> dict:
    rows = [dict(outcomes(i, s)) for i, s in scores.items()]
    names = list(dict.fromkeys(k for r in rows for k in r))  # the task's order (text, image, group)
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in names}


def tune(
    ids: Sequence[str],
    errors: Sequence[np.ndarray],
    uncond: Sequence[np.ndarray | None],
    outcomes: Callable[[str, np.ndarray], Mapping[str, float]],
    *,
    normalize_uncond: bool,
    candidates: Sequence[Candidate] = CANDIDATES,
    folds: int = FOLDS,
    agreement: float = AGREEMENT,
    tolerance: float = TOLERANCE,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every candidate scored on held-out folds of these examples, and the chosen one (None when
    none passes). ``outcomes(id, scores)``: the run's per-example metrics of a score matrix;
    ``base``: further stopping-rule options (min_timesteps, round_size)."""
    shapes = {tuple(np.shape(e)[:2]) for e in errors}
    if any(a != b or a < 2 for a, b in shapes):
        shown = ", ".join(f"{a}x{b}" for a, b in sorted(shapes))
        raise ConfigError(
            f"--tune replays pairwise stopping on square (n x n, n >= 2) examples; this run's are {shown}. "
            "Fit a plan with --kind proposal|weights instead"
        )
    if normalize_uncond and any(u is None for u in uncond):
        raise ConfigError("--tune: a normalize=uncond run must store every example's uncond_errors")
    if len(ids) < 2 * folds:
        raise ConfigError(f"--tune needs at least {2 * folds} examples ({folds} folds); this run has {len(ids)}")
    n_grid = int(np.shape(errors[0])[-1])
    parts = [[i for i in range(len(ids)) if i % folds == f] for f in range(folds)]
    plain = {ids[i]: scores_from_errors(errors[i], uncond[i] if normalize_uncond else None) for i in range(len(ids))}
    plain_metrics = _mean_metrics(outcomes, plain)
    rows = []
    for c in candidates:
        calls = agree = decisions = 0
        stopped: dict[str, np.ndarray] = {}
        for f in range(folds):
            train = [i for g in range(folds) if g != f for i in parts[g]]
            plan = fit_candidate(c, [errors[i] for i in train], [uncond[i] for i in train], n_grid)
            rule = tp.rule_for(plan, n_grid, **{**(base or {}), "futility": c.futility, "confidence": c.confidence})
            for i in parts[f]:
                r = replay_example(rule, errors[i], uncond[i], normalize_uncond)
                calls += r.calls
                agree += r.agree
                decisions += r.decisions
                stopped[ids[i]] = r.scores
        metrics = _mean_metrics(outcomes, stopped)
        shift = float(np.mean([metrics[k] - plain_metrics[k] for k in plain_metrics])) if plain_metrics else 0.0
        share = agree / max(decisions, 1)
        rows.append(
            {
                **asdict(c),
                "calls": calls / len(ids),
                "agreement": share,
                "metrics": metrics,
                "mean_shift": shift,
                "passes": share >= agreement and shift >= -tolerance,
            }
        )
    passing = [r for r in rows if r["passes"]]
    chosen = min(passing, key=lambda r: r["calls"]) if passing else None
    n_rows = 2 if normalize_uncond else 1
    return {
        "folds": folds,
        "n": len(ids),
        "criterion": {"agreement": agreement, "tolerance": tolerance},
        "calls_full": float(max(a for a, _ in shapes) ** 2 + (max(a for a, _ in shapes) if n_rows == 2 else 0))
        * n_grid,
        "plain_metrics": plain_metrics,
        "candidates": rows,
        "chosen": chosen,
    }
