"""Replaying the sequential stopping rule on stored per-timestep errors (numpy only): what the
scorer would have evaluated and decided, without a model. The benchmarks and the tests of
:mod:`.sequential` use it; the scorer itself drives :func:`.sequential.run_sequential` live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.errors import ConfigError
from .sequential import UNCOND, Cell, Comparison, Outcome, Plan, plan_cells, run_sequential, stratified_mean


@dataclass(frozen=True)
class Replay:
    """Stopping simulated on one example's stored full-grid errors."""

    errors: np.ndarray  # (n_images, n_captions, N), NaN where not evaluated
    uncond_errors: np.ndarray | None  # (n_images, N) or None
    scores: np.ndarray
    outcomes: tuple[Outcome, ...]
    unet_calls: int


def replay(
    errors: np.ndarray, uncond_errors: np.ndarray | None, plan: Plan, comparisons: Sequence[Comparison], *, uncond: bool
) -> Replay:
    """Run the stopping rule on stored errors, as the scorer would have on the UNet."""
    e = np.asarray(errors, dtype=np.float32)
    n_img, n_cap, n_grid = e.shape
    if n_grid != plan.n_grid:
        raise ConfigError(f"stored errors have {n_grid} timesteps but the plan is for {plan.n_grid}")
    if uncond and uncond_errors is None:
        raise ConfigError("normalize=uncond needs the stored uncond_errors")
    u = None if uncond_errors is None else np.asarray(uncond_errors, dtype=np.float32)
    cells, terms, links = plan_cells(n_img, n_cap, comparisons, uncond)

    def evaluate(run_cells: Sequence[Cell], idx: np.ndarray) -> np.ndarray:
        return np.stack([(u[j] if k == UNCOND else e[j, k])[idx] for j, k in run_cells])

    res = run_sequential(plan, cells, terms, evaluate, links)
    out = np.full_like(e, np.nan)
    out_u = None if not uncond else np.full((n_img, n_grid), np.nan, dtype=np.float32)
    for (j, k), row in res.errors.items():
        if k == UNCOND:
            out_u[j] = row
        else:
            out[j, k] = row
    scores = partial_scores(out, out_u)
    return Replay(out, out_u, scores, res.outcomes, res.unet_calls)


def partial_scores(errors: np.ndarray, uncond_errors: np.ndarray | None = None) -> np.ndarray:
    """Scores from errors with NaN where not evaluated: minus each cell's stratified mean
    (plus the image's, for ``normalize=uncond``)."""
    scores = -stratified_mean(errors)
    if uncond_errors is not None:
        scores = scores + stratified_mean(uncond_errors)[:, None]
    return scores
