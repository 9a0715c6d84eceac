"""The evaluation strategies, written once for every family over :class:`~.evaluator.CellEvaluator`.

Each takes one example (images, the family's conditioning keys of its captions) and
returns a :class:`~winoground_eval.core.contracts.Scored` whose ``arrays["errors"]`` is
(n_images, n_captions, n_grid) float32 (NaN where a strategy did not evaluate) and whose
``info["unet_calls"]`` counts model evaluations (one per item); the scorer adds
``arrays["timesteps"]``, the grid those columns belong to (:func:`with_timesteps`):

- :func:`plain`: every grid position for every image x caption (and the unconditional
  condition with ``normalize=uncond``); stores a family's several terms as ``terms``;
- :func:`adaptive`: the reference's ``eval_prob_adaptive`` stages on one image;
- :func:`elimination`: sequential elimination of one image's candidates;
- :func:`sequential`: sequential stopping of the comparisons the task declares (with
  ``control_variate=uncond``: :func:`.control_variate.sequential_cv`);
- :func:`prefiltered`: another scorer keeps the best ``k`` candidates, an inner strategy
  scores them.

Captions are evaluated as ``sorted(set(keys))``, so the batches do not depend on caption
order and duplicates are computed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from ..core.contracts import Scored
from . import sequential as seq
from .evaluator import CellEvaluator
from .grid import adaptive_plan, adaptive_scores, check_noise_bank, noise_draws, scores_from_errors, timestep_grid

if TYPE_CHECKING:
    from .scorer import DiffusionScorer

# Arrays of a Scored whose axis 1 is the candidate (caption): the prefilter widens them.
PER_CANDIDATE_ARRAYS = ("errors", "terms")


def plain(scorer: "DiffusionScorer", images: Sequence[Any], keys: Sequence[str], *, uncond: bool) -> Scored:
    """Every grid position for every image x distinct key (+ the unconditional key)."""
    family = scorer.family
    unique = sorted(set(keys))
    conditions = unique + ([family.uncond_key] if uncond else [])
    grid = scorer.timesteps
    n_img, n_cond, n_t = len(images), len(conditions), len(grid)
    items = [(j, k, i) for i in range(n_t) for j in range(n_img) for k in range(n_cond)]
    ev = CellEvaluator(scorer, images, conditions)
    terms = ev.terms(items, grid)
    positions = np.asarray(items, dtype=np.int64)[:, 2]
    flat = np.asarray(family.reduce(terms, grid[positions]), dtype=np.float32)
    table = flat.reshape(n_t, n_img, n_cond).transpose(1, 2, 0)
    columns = [unique.index(c) for c in keys]
    errors = np.ascontiguousarray(table[:, columns, :])
    arrays = {"errors": errors}
    uncond_errors = None
    if uncond:
        uncond_errors = arrays["uncond_errors"] = np.ascontiguousarray(table[:, -1, :])
    if ev.n_terms > 1:  # the raw terms, to re-aggregate under another loss
        raw = terms.reshape(n_t, n_img, n_cond, ev.n_terms).transpose(1, 2, 0, 3)
        arrays["terms"] = np.ascontiguousarray(raw[:, columns])
    result = Scored(scores=scores_from_errors(errors, uncond_errors), arrays=arrays, info={"unet_calls": len(items)})
    rule = getattr(scorer, "rule", None)
    if rule is not None and rule.weights is not None:  # a weights plan's full budget: its weighted-mean estimand
        result = reweighted(result, rule.weights)
    return result


def with_timesteps(result: Scored, grid: np.ndarray) -> Scored:
    """``result`` whose arrays carry ``timesteps``: the (n_grid,) int64 timesteps the last axis
    of its ``errors`` belongs to (a strategy's own grid when it stored one), so no results
    command rebuilds the grid (:func:`.grid.stored_timesteps` reads it back)."""
    if "errors" not in result.arrays or "timesteps" in result.arrays:
        return result
    arrays = {**result.arrays, "timesteps": np.asarray(grid, dtype=np.int64)}
    return Scored(scores=result.scores, arrays=arrays, info=result.info)


def timestep_rule(opts: Any, family: Any, n_grid: int, t_range: Any, stopping: Any) -> tuple[Any, Any]:
    """(the timestep plan of ``-o plan=FILE``, its stopping rule), or (None, None): see
    :func:`winoground_eval.core.timestep_plan.plan_rule`."""
    from ..core.timestep_plan import plan_rule

    path = getattr(opts, "plan", None)
    plan, rule = plan_rule(path, family.source.as_config(), n_grid, t_range, stopping)
    if getattr(opts, "control_variate", "none") != "none":
        from .control_variate import check_plan

        check_plan(plan, path)
    return plan, rule


@dataclass(frozen=True)
class AdaptiveResult:
    """The outcome of the adaptive stages for one image (:meth:`DiffusionScorer.adaptive`).

    ``ranking``: the candidates kept after the last stage, best (lowest mean error) first.
    ``errors``: (n_candidates, n_grid) float32, NaN where a candidate was not evaluated.
    ``timesteps``: the (n_grid,) timestep grid the columns of ``errors`` belong to.
    ``survived``: per candidate, the stages it survived (its pruning stage; n_stages for the survivors).
    ``mean_errors``: per candidate, its mean error over the timesteps it was evaluated at
    (float32, as the reference's pruning computes it).
    """

    ranking: tuple[int, ...]
    errors: np.ndarray
    timesteps: np.ndarray
    unet_calls: int
    survived: np.ndarray
    mean_errors: np.ndarray

    @property
    def best(self) -> int:
        return self.ranking[0]

    @property
    def scores(self) -> np.ndarray:
        """(n_candidates,) scores ranking the candidates as the stages did (see :func:`.grid.adaptive_scores`)."""
        return adaptive_scores(self.survived, self.mean_errors)


def adaptive(
    scorer: "DiffusionScorer", image: Any, keys: Sequence[str], n_samples: Sequence[int], to_keep: Sequence[int]
) -> AdaptiveResult:
    """The reference's ``eval_prob_adaptive`` (``n_trials=1``), step for step:

    - the grid is ``max(n_samples)`` timesteps (:func:`.grid.timestep_grid`, within ``t_range``);
    - stage s evaluates its evenly spaced subset (:func:`.grid.stage_positions`) less the
      timesteps evaluated before, for every candidate still in the race, in the
      reference's item order (candidate-major, then timesteps in grid order), so the
      model batches are the reference's for the same ``batch_size``;
    - noise draw n belongs to the n-th timestep evaluated (the reference's ``noise_idx``,
      :func:`.grid.noise_draws`), shared by all candidates;
    - pruning: each candidate's float32 ``torch`` mean of its errors in evaluation
      order, then ``torch.topk`` of minus that mean (its tie-breaking);
      ``keep`` larger than the candidates left keeps them all.
    """
    n_grid, stages = adaptive_plan(n_samples, to_keep)
    grid = timestep_grid(n_grid, scorer.family.schedule.length, scorer.t_range)
    if scorer.options.noise == "shared":
        check_noise_bank(n_grid, scorer.options.noise_bank_size)
    draws = noise_draws(stages, n_grid)
    n = len(keys)
    errors = np.full((n, n_grid), np.nan, dtype=np.float32)
    survived = np.zeros(n, dtype=np.int64)
    means = np.full(n, np.nan, dtype=np.float32)
    remaining = list(range(n))
    evaluated: list[int] = []
    calls = 0
    ev = CellEvaluator(scorer, [image], keys, n_draws=n_grid)
    for s, stage in enumerate(stages):
        new = list(stage.positions)
        if new:
            items = [(0, c, p) for c in remaining for p in new]
            flat = ev.errors(items, grid, draws)
            for (_, c, p), value in zip(items, flat):
                errors[c, p] = value
            calls += len(items)
            evaluated += new
        done = np.ascontiguousarray(errors[remaining][:, evaluated])
        row_means = [torch.from_numpy(done[i].copy()).mean() for i in range(len(remaining))]
        keep = min(stage.keep, len(remaining))
        best = torch.topk(torch.tensor([-m for m in row_means]), k=keep, dim=0).indices.tolist()
        for i, c in enumerate(remaining):
            means[c] = float(row_means[i])
            survived[c] = s
        remaining = [remaining[i] for i in best]
        survived[remaining] = s + 1
    return AdaptiveResult(tuple(remaining), errors, grid, calls, survived, means)


def adaptive_scored(scorer: "DiffusionScorer", image: Any, keys: Sequence[str]) -> Scored:
    result = adaptive(scorer, image, keys, scorer.options.n_samples or (), scorer.options.to_keep or ())
    return Scored(
        scores=result.scores[None, :],
        arrays={"errors": result.errors[None], "timesteps": np.asarray(result.timesteps, dtype=np.int64)},
        info={"unet_calls": result.unet_calls, "adaptive": {"pred": result.best, "survived": result.survived.tolist()}},
    )


def elimination(
    scorer: "DiffusionScorer", image: Any, keys: Sequence[str], ranking: Sequence[int] | None = None
) -> Scored:
    """Sequential elimination of one image's candidates (:func:`.sequential.run_elimination`);
    with a timestep plan (``-o plan=``), along its order and estimand
    (:func:`winoground_eval.core.timestep_plan.run_plan_elimination`), starting from ``ranking`` (the
    prefilter's order of ``keys``, best first) when given."""
    plan = scorer.plan
    assert plan is not None
    unique = sorted(set(keys))
    columns = [unique.index(c) for c in keys]
    ev = CellEvaluator(scorer, [image], unique)

    def evaluate(alive: Sequence[int], grid_idx: np.ndarray) -> np.ndarray:
        items = [(0, int(k), int(i)) for k in alive for i in grid_idx]
        return ev.errors(items, scorer.timesteps).reshape(len(alive), len(grid_idx))

    if getattr(scorer, "rule", None) is not None:
        return _plan_elimination(scorer, unique, columns, evaluate, ranking)
    result = seq.run_elimination(plan, len(unique), evaluate)
    errors = result.errors[columns][None].astype(np.float32)
    scores = adaptive_scores(result.survived, result.mean_errors)[columns][None, :]
    info = {
        "unet_calls": result.unet_calls,
        "stopping": {
            "rule": "elimination",
            "survived": result.survived[columns].tolist(),
            "timesteps": result.n_evaluated[columns].tolist(),
            "looks": len(plan.looks),
        },
    }
    return Scored(scores=scores, arrays={"errors": errors}, info=info)


def _plan_elimination(
    scorer: "DiffusionScorer", unique: list[str], columns: list[int], evaluate: Callable, ranking: Any
) -> Scored:
    from ..core import timestep_plan as tp

    rule = scorer.rule
    first = None
    if ranking is not None:  # the prefilter's order of the captions -> of the distinct keys
        first = list(dict.fromkeys(columns[int(r)] for r in ranking))
        first += [k for k in range(len(unique)) if k not in first]
    errors_u, survived, calls = tp.run_plan_elimination(rule, len(unique), evaluate, first)
    means = tp.weighted_mean(errors_u, rule.weights)
    scores = adaptive_scores(survived, means.astype(np.float32))[columns][None, :]
    info = {
        "unet_calls": calls,
        "stopping": {
            "rule": "elimination",
            "plan": scorer.timestep_plan.kind,
            "survived": survived[columns].tolist(),
            "timesteps": (~np.isnan(errors_u[columns])).sum(axis=1).tolist(),
            "looks": len(rule.looks),
        },
    }
    return Scored(scores=scores, arrays={"errors": errors_u[columns][None].astype(np.float32)}, info=info)


def reweighted(result: Scored, weights: np.ndarray) -> Scored:
    """A plain result re-scored with a weights plan's estimand (the weighted mean error)."""
    from ..core import timestep_plan as tp

    scores = -tp.weighted_mean(result.arrays["errors"], weights)
    if "uncond_errors" in result.arrays:
        scores = scores + tp.weighted_mean(result.arrays["uncond_errors"], weights)[:, None]
    return Scored(scores=scores, arrays=result.arrays, info=result.info)


def sequential(
    scorer: "DiffusionScorer", images: Sequence[Any], keys: Sequence[str], declared: Any, *, uncond: bool
) -> Scored:
    """Sequential stopping: rounds of grid indices in van der Corput order for every cell
    still needed, until the example's comparisons are settled (:func:`.sequential.run_sequential`)."""
    plan = scorer.plan
    assert plan is not None
    if uncond and getattr(scorer.options, "control_variate", "none") != "none":
        from .control_variate import sequential_cv

        return sequential_cv(scorer, images, keys, declared)
    UNCOND = seq.UNCOND
    unique = sorted(set(keys))
    columns = [unique.index(c) for c in keys]
    n_img, n_cap = len(images), len(keys)
    comparisons = seq.select_comparisons(declared, n_img, n_cap, scorer.options.decide)

    def cell_of(j: int, k: int) -> tuple[int, int]:
        return (j, UNCOND) if k == UNCOND else (j, columns[k])

    cells, terms, links = seq.plan_cells(n_img, n_cap, comparisons, uncond, cell_of)
    conditions = unique + ([scorer.family.uncond_key] if uncond else [])
    ev = CellEvaluator(scorer, images, conditions)

    def evaluate(run_cells: Sequence[tuple[int, int]], grid_idx: np.ndarray) -> np.ndarray:
        items = [(j, len(unique) if k == UNCOND else k, int(i)) for i in grid_idx for j, k in run_cells]
        return ev.errors(items, scorer.timesteps).reshape(len(grid_idx), len(run_cells)).T

    rule = getattr(scorer, "rule", None)
    if rule is not None:  # along a timestep plan's order, with its estimand
        result = seq.run_sequential(rule, cells, terms, evaluate, links, estimator=rule.estimate)
    else:
        result = seq.run_sequential(plan, cells, terms, evaluate, links)
    errors = np.stack([np.stack([result.errors[(j, columns[k])] for k in range(n_cap)]) for j in range(n_img)])
    arrays = {"errors": errors}
    uncond_errors = None
    if uncond:
        uncond_errors = arrays["uncond_errors"] = np.stack([result.errors[(j, UNCOND)] for j in range(n_img)])
    info = {
        "unet_calls": result.unet_calls,
        "stopping": {
            "timesteps": [[result.evaluated[(j, columns[k])] for k in range(n_cap)] for j in range(n_img)],
            **({"uncond_timesteps": [result.evaluated[(j, UNCOND)] for j in range(n_img)]} if uncond else {}),
            "n_early": sum(o.early for o in result.outcomes),
            "comparisons": [o.as_info() for o in result.outcomes],
        },
    }
    if rule is not None:
        from ..core import timestep_plan as tp

        scores = -tp.weighted_mean(errors, rule.weights)
        if uncond_errors is not None:
            scores = scores + tp.weighted_mean(uncond_errors, rule.weights)[:, None]
        info["stopping"]["plan"] = scorer.timestep_plan.kind
        return Scored(scores=scores, arrays=arrays, info=info)
    return Scored(scores=scores_from_errors(errors, uncond_errors), arrays=arrays, info=info)


def prefiltered(prefilter: Any, k: int, image: Any, captions: Sequence[str], inner: Callable[..., Scored]) -> Scored:
    """Keep the prefilter's ``k`` best candidates, score them with ``inner`` (given their
    indices, in caption order, and the prefilter's ranking of them as positions in that list,
    best first), and rank the others below every kept one, in the prefilter's order."""
    n = len(captions)
    coarse = np.asarray(prefilter.score([image], list(captions)), dtype=np.float64)[0]
    order = np.argsort(-coarse, kind="stable")  # ties: the earlier candidate
    kept = sorted(int(i) for i in order[:k])
    ranking = [kept.index(int(i)) for i in order[:k]]  # the prefilter's order, as positions in kept
    result = inner(kept, ranking)
    scores = np.empty(n, dtype=np.float64)
    scores[kept] = result.scores[0]
    floor = float(np.min(result.scores[0])) - 1.0
    for rank, i in enumerate(order[k:]):
        scores[int(i)] = floor - rank / n
    arrays = {}
    for name, value in result.arrays.items():
        if name in PER_CANDIDATE_ARRAYS:  # (1, kept, ...): NaN rows for the candidates left out
            full = np.full((1, n, *value.shape[2:]), np.nan, dtype=np.float32)
            full[0, kept] = value[0]
            arrays[name] = full
        else:
            arrays[name] = value
    info = {**result.info, "prefilter": {"kept": kept, "scores": coarse.tolist()}}
    return Scored(scores=scores[None, :], arrays=arrays, info=info)
