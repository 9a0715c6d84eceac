"""Sequential early stopping for the Diffusion Classifier (numpy and scipy.special only).

The full-budget decision of a comparison between two cells a, b of an example's score
matrix is the sign of the mean, over the N points of the timestep grid, of the paired
score difference ``d_i = s_a(i) - s_b(i)`` (``s = -error``, minus the image's
unconditional error with ``normalize=uncond``), all at the same timestep t_i and noise
draw eps_i. This module estimates that finite-population mean from a prefix of an
evaluation order and stops when the full-budget decision is settled:

- **order**: grid indices in van der Corput (bit-reversal) order, so every prefix is
  spread evenly over t; each evaluated index i keeps its own noise draw, so the whole
  order is the whole grid, and a full budget is the plain scorer exactly.
- **estimate**: each evaluated index stands for the grid points nearest to it (its stratum,
  N_h points, weight w_h = N_h / N): ``D = sum_h w_h d_h``.
- **uncertainty**: what the N - n points not yet evaluated can still add,
  ``V = sum_h w_h^2 (1 - 1/N_h) sigma_h^2``, with sigma_h^2 the local successive-difference
  variance (half the mean squared difference to the neighbouring evaluated points, in t
  order), a Student t with Satterthwaite's degrees of freedom. V is 0 when n = N.
- **rule**: at the looks of a fixed schedule (after ``min_timesteps``, then every
  ``round_size``), ``p = T_df(-(|D| + c) / sqrt(V))`` is the probability that the full
  budget decides the other way by more than c; stop when ``p <= Phi(-b)``. Without
  futility c = 0: the full-budget sign itself is settled. With futility,
  ``c = z_{(1+confidence)/2} * se_N`` (se_N^2 = sum_h w_h sigma_h^2 / N, the full budget's own
  standard error): stop as soon as the rest of the grid can only turn the decision into
  one that would not be significant at the full budget.
- **boundary** and **guarantee**: b accounts for the repeated looks (:func:`look_boundary`);
  per comparison, P(stopped decision differs from the full-budget one) <= 1 - confidence
  (with futility: and the full-budget decision is significant). Derivation, assumptions and
  the ``max_timesteps`` caveat: docs/early-stopping.md.

:func:`run_sequential` drives rounds over the cells of one example through a callback, so
the scorer runs the UNet and :func:`replay` reads stored per-timestep errors instead.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Literal, Mapping, Sequence

import numpy as np

from ..core.errors import ConfigError
from .stopping_rule import (  # noqa: F401  (re-exported: the rule is part of this module's API)
    BOUNDARY_DRAWS,
    BOUNDARY_SEED,
    Estimate,
    Plan,
    check_stopping_options,
    estimate,
    look_boundary,
    look_weights,
    p_opposite,
    significant,
    strata,
    stratified_mean,
    vdc_order,
    z_two_sided,
)

Decide = Literal["all", "text", "image"]
SEQUENTIAL_VERSION = 1  # bump when a change alters which timesteps are evaluated or the decisions
UNCOND = -1  # caption index of an image's unconditional (empty prompt) cell

Cell = Hashable
PairIndex = tuple[int, int]


# --------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Comparison:
    """Cell ``a`` vs cell ``b`` of the score matrix (row = image, column = caption)."""

    metric: str
    a: PairIndex
    b: PairIndex


def default_comparisons(n_images: int, n_captions: int) -> tuple[Comparison, ...]:
    """Every pair of captions on each image (what a caption-choosing metric needs)."""
    return tuple(
        Comparison("text", (j, k), (j, l))
        for j in range(n_images)
        for k in range(n_captions)
        for l in range(k + 1, n_captions)
    )


def select_comparisons(
    declared: Iterable[Any], n_images: int, n_captions: int, decide: Decide
) -> tuple[Comparison, ...]:
    """The declared comparisons (``(metric, (j, k), (j2, k2))`` triples) a run with ``decide`` needs.

    Nothing declared: every caption pair per image, as ``text``.
    """
    comps = tuple(c if isinstance(c, Comparison) else Comparison(str(c[0]), tuple(c[1]), tuple(c[2])) for c in declared)
    if not comps:
        comps = default_comparisons(n_images, n_captions)
    for c in comps:
        for j, k in (c.a, c.b):
            if not (0 <= j < n_images and 0 <= k < n_captions):
                raise ConfigError(
                    f"comparison {c} names cell ({j}, {k}) outside the {n_images}x{n_captions} score matrix"
                )
    if decide != "all":
        comps = tuple(c for c in comps if c.metric == decide)
        if not comps:
            raise ConfigError(f"decide={decide}: the example declares no {decide!r} comparisons")
    return comps


def difference_terms(
    comp: Comparison, uncond: bool, cell_of: Callable[[int, int], Cell] = lambda j, k: (j, k)
) -> dict[Cell, float]:
    """``d = s_a - s_b`` as {cell: coefficient} over errors, s = -error (+ the image's unconditional error)."""
    terms: dict[Cell, float] = {}
    for (j, k), sign in ((comp.a, 1.0), (comp.b, -1.0)):
        cell = cell_of(j, k)
        terms[cell] = terms.get(cell, 0.0) - sign
        if uncond:
            u = cell_of(j, UNCOND)
            terms[u] = terms.get(u, 0.0) + sign
    return {c: v for c, v in terms.items() if v != 0.0}


# --------------------------------------------------------------------------- the driver


@dataclass(frozen=True)
class Outcome:
    """What happened to one comparison: its last estimate and why it stopped.

    ``stop``: ``settled`` (the full-budget sign is settled), ``futile`` (only an insignificant
    full-budget decision could still differ), ``full`` (the whole grid was evaluated),
    ``cap`` (max_timesteps reached first) or ``tie`` (both sides are the same cell).
    """

    comparison: Comparison
    stop: str
    estimate: Estimate | None

    @property
    def early(self) -> bool:
        return self.stop in ("settled", "futile")

    def as_info(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "metric": self.comparison.metric,
            "a": list(self.comparison.a),
            "b": list(self.comparison.b),
            "stop": self.stop,
            "timesteps": 0 if e is None else e.n,
            "diff": 0.0 if e is None else e.mean,
            "sd": 0.0 if e is None else math.sqrt(e.var) if math.isfinite(e.var) else None,
        }


@dataclass(frozen=True)
class SequentialResult:
    errors: dict[Cell, np.ndarray]  # cell -> (N,) float32, NaN where not evaluated
    outcomes: tuple[Outcome, ...]
    evaluated: dict[Cell, int]  # cell -> grid points evaluated
    unet_calls: int


Evaluate = Callable[[Sequence[Cell], np.ndarray], np.ndarray]


def _components(cells: Sequence[Cell], groups: Sequence[Sequence[Cell]]) -> list[list[Cell]]:
    parent = {c: c for c in cells}

    def find(c: Cell) -> Cell:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for group in groups:
        for c in group[1:]:
            parent[find(c)] = find(group[0])
    out: dict[Cell, list[Cell]] = {}
    for c in cells:
        out.setdefault(find(c), []).append(c)
    return list(out.values())


def run_sequential(
    plan: Plan,
    cells: Sequence[Cell],
    comparisons: Sequence[tuple[Comparison, Mapping[Cell, float]]],
    evaluate: Evaluate,
    links: Sequence[Sequence[Cell]] = (),
    estimator: Callable[[np.ndarray, np.ndarray], Estimate] | None = None,
    controls: Mapping[int, tuple[Mapping[Cell, float], np.ndarray, float]] | None = None,
) -> SequentialResult:
    """Evaluate ``cells`` round by round along ``plan.order`` until every comparison is settled.

    ``comparisons``: (comparison, {cell: coefficient}) with d = sum coefficient * error.
    ``evaluate(cells, grid_indices)`` returns their (len(cells), len(grid_indices)) errors.
    Cells linked by comparisons form a component and stop together, at the first look where
    every comparison of the component has a verdict, so that each comparison is always
    computed from paired errors on the same timesteps. ``links`` are further groups of cells
    that stop together (an image's unconditional cell with its captions). Cells in no
    comparison or link stop at the first look. ``estimator(positions, d)``: the estimate at a
    look (default :func:`estimate`; a timestep plan's ``Rule.estimate`` is weighted).

    ``controls``: {comparison index: (control terms, beta, mean)}, a control variate per
    comparison: with ``a_i`` = sum coefficient * error over the control terms (cells of the
    same component, e.g. the unconditional cells) the test runs on ``d_i - (beta_i a_i - mean)``,
    whose full-budget mean is the full-budget mean of d exactly when ``mean`` is the full-budget
    mean of ``beta_i a_i`` (``beta`` fixed in advance, one value per grid point). The decisions'
    estimand is then unchanged and the guarantee carries over (the adjusted differences are
    still independent across grid points given t); only their variance changes.
    """
    n_grid = plan.n_grid
    estimator = estimator or functools.partial(estimate, n_grid=n_grid)
    errors = {c: np.full(n_grid, np.nan, dtype=np.float32) for c in cells}
    evaluated = {c: 0 for c in cells}
    live = [(comp, dict(terms)) for comp, terms in comparisons if terms]
    outcomes: dict[int, Outcome] = {
        i: Outcome(comp, "tie", None) for i, (comp, terms) in enumerate(comparisons) if not terms
    }
    comps_by_component = []
    for component in _components(list(cells), [list(t) for _, t in live] + [list(g) for g in links if g]):
        members = set(component)
        mine = [(i, comp, terms) for i, (comp, terms) in enumerate(comparisons) if terms and set(terms) <= members]
        comps_by_component.append((component, mine))
    active = list(range(len(comps_by_component)))
    calls, prev = 0, 0
    for look in plan.looks:
        run_cells = [c for a in active for c in comps_by_component[a][0]]
        grid_idx = plan.order[prev:look]
        if run_cells and len(grid_idx):
            values = np.asarray(evaluate(run_cells, grid_idx), dtype=np.float32).reshape(len(run_cells), len(grid_idx))
            for c, row in zip(run_cells, values):
                errors[c][grid_idx] = row
                evaluated[c] = look
            calls += len(run_cells) * len(grid_idx)
        prev = look
        positions = plan.order[:look]
        still = []
        for a in active:
            component, mine = comps_by_component[a]
            verdicts = []
            for i, comp, terms in mine:
                d = sum(coef * errors[c][positions].astype(np.float64) for c, coef in terms.items())
                if controls is not None and i in controls:
                    c_terms, beta, mean = controls[i]
                    ctl = sum(coef * errors[c][positions].astype(np.float64) for c, coef in c_terms.items())
                    d = d - (np.asarray(beta, dtype=np.float64)[positions] * ctl - mean)
                est = estimator(positions, d)
                verdicts.append((i, comp, plan.verdict(est), est))
            last = look >= plan.cap
            if all(v is not None for _, _, v, _ in verdicts) or last:
                for i, comp, v, est in verdicts:
                    outcomes[i] = Outcome(comp, v if v is not None else "cap", est)
            else:
                still.append(a)
        active = still
        if not active:
            break
    return SequentialResult(errors, tuple(outcomes[i] for i in sorted(outcomes)), evaluated, calls)


# --------------------------------------------------------------------------- elimination (1 x N)


@dataclass(frozen=True)
class EliminationResult:
    """Sequential elimination of one image's candidates.

    ``errors``: (n, N) float32, NaN where not evaluated; ``survived``: per candidate, the
    looks it survived (len(looks) for the ones left at the end); ``mean_errors``: its
    stratified mean error over the positions it has; ``n_evaluated``: grid points evaluated.
    """

    errors: np.ndarray
    survived: np.ndarray
    mean_errors: np.ndarray
    n_evaluated: np.ndarray
    unet_calls: int

    @property
    def remaining(self) -> list[int]:
        top = self.survived.max()
        return [int(c) for c in np.flatnonzero(self.survived == top)]


def run_elimination(
    plan: Plan, n_candidates: int, evaluate: Callable[[Sequence[int], np.ndarray], np.ndarray]
) -> EliminationResult:
    """Evaluate the live candidates of one image round by round along ``plan.order``; at each
    look drop every candidate confidently worse than the current best.

    The current best is the live candidate with the lowest estimated mean error. For each
    other live candidate c the paired differences ``d_i = error_c(i) - error_best(i)`` (the
    same timesteps and noise draws: live candidates share the evaluated prefix) give the
    :class:`Estimate` of the full-budget difference, and c is dropped when
    ``plan.verdict`` settles it (``settled``, or ``futile`` with futility on): the
    same rule, boundary and confidence as the pairwise comparisons. It stops when one
    candidate is left or at the cap. ``evaluate(candidates, grid_indices)`` returns their
    (len(candidates), len(grid_indices)) errors.
    """
    n_grid = plan.n_grid
    errors = np.full((n_candidates, n_grid), np.nan, dtype=np.float32)
    survived = np.zeros(n_candidates, dtype=np.int64)
    n_evaluated = np.zeros(n_candidates, dtype=np.int64)
    alive = list(range(n_candidates))
    calls, prev = 0, 0
    for look_i, look in enumerate(plan.looks):
        grid_idx = plan.order[prev:look]
        if len(grid_idx):
            values = np.asarray(evaluate(alive, grid_idx), dtype=np.float32).reshape(len(alive), len(grid_idx))
            for c, row in zip(alive, values):
                errors[c, grid_idx] = row
            n_evaluated[alive] = look
            calls += len(alive) * len(grid_idx)
        prev = look
        positions = plan.order[:look]
        means = stratified_mean(errors[alive].astype(np.float64))
        best = alive[int(np.argmin(means))]
        dropped = []
        if look < n_grid:
            for c in alive:
                if c == best:
                    continue
                d = errors[c, positions].astype(np.float64) - errors[best, positions].astype(np.float64)
                est = estimate(positions, d, n_grid)
                if est.mean > 0 and plan.verdict(est) in ("settled", "futile"):
                    dropped.append(c)
        survived[dropped] = look_i
        alive = [c for c in alive if c not in dropped]
        survived[alive] = look_i + 1
        if len(alive) == 1:
            break
    mean_errors = stratified_mean(errors.astype(np.float64))
    return EliminationResult(errors, survived, mean_errors, n_evaluated, calls)


# --------------------------------------------------------------------------- replaying stored errors


def plan_cells(
    n_images: int,
    n_captions: int,
    comparisons: Sequence[Comparison],
    uncond: bool,
    cell_of: Callable[[int, int], Cell] = lambda j, k: (j, k),
) -> tuple[list[Cell], list[tuple[Comparison, dict[Cell, float]]], list[list[Cell]]]:
    """(cells, comparisons with their terms, links) for one example.

    Cells: every caption cell, and with ``uncond`` (``normalize=uncond``) every image's
    unconditional cell, linked to that image's caption cells: the score matrix needs it,
    and only comparisons across images use it in their differences.
    """
    with_terms = [(c, difference_terms(c, uncond and c.a[0] != c.b[0], cell_of)) for c in comparisons]
    cells: list[Cell] = []
    links: list[list[Cell]] = []
    for j in range(n_images):
        row = list(dict.fromkeys(cell_of(j, k) for k in range(n_captions)))
        cells += [c for c in row if c not in cells]
        if uncond:
            u = cell_of(j, UNCOND)
            cells.append(u)
            links.append([u, *row])
    return cells, with_terms, links
