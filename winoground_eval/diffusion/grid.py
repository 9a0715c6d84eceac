"""The timestep grid and scores from stored per-timestep errors: numpy only, so that
results commands (report, choose-timesteps) re-aggregate diffusion runs without torch."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError
from . import sequential


def resolve_t_range(t_range: tuple[int, int] | None, num_train_timesteps: int = 1000) -> tuple[int, int]:
    """``t_range`` checked, None meaning the whole schedule ``(0, T)``."""
    if t_range is None:
        return (0, num_train_timesteps)
    lo, hi = (int(t) for t in t_range)
    if not 0 <= lo < hi <= num_train_timesteps:
        raise ConfigError(f"option t_range={lo},{hi}: need 0 <= lo < hi <= {num_train_timesteps} (the window [lo, hi))")
    return (lo, hi)


def timestep_grid(n_timesteps: int, num_train_timesteps: int = 1000, t_range: tuple[int, int] | None = None) -> np.ndarray:
    """The reference grid: ``t_i = lo + interval // 2 + i * interval``, ``interval = (hi - lo) // n``.

    ``t_range = (lo, hi)`` restricts the grid to the window ``[lo, hi)``; None is the whole
    schedule ``(0, T)``, which gives the reference code's ``range(interval // 2, T, interval)``.
    """
    lo, hi = resolve_t_range(t_range, num_train_timesteps)
    if not 1 <= n_timesteps <= hi - lo:
        raise ConfigError(f"option n_timesteps={n_timesteps}: choose 1..{hi - lo} (the timesteps in [{lo}, {hi}))")
    interval = (hi - lo) // n_timesteps
    return lo + interval // 2 + interval * np.arange(n_timesteps, dtype=np.int64)


def scores_from_errors(
    errors: np.ndarray, uncond_errors: np.ndarray | None = None, timesteps: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """(n_images, n_captions) float64 scores from stored per-timestep errors.

    ``-mean_i errors[j, k, i]``, plus ``mean_i uncond_errors[j, i]`` when given (the
    ``normalize=uncond`` score: each error minus the same image's unconditional error).
    ``timesteps`` selects grid positions, to re-aggregate a finished run on a subset.

    NaN marks a grid position a run with ``stopping=sequential`` did not evaluate: such a
    cell's mean is the stratified estimate of its full-grid mean from the positions it has
    (each stands for the grid points nearest to it; see :mod:`.sequential`).
    """
    e = np.asarray(errors, dtype=np.float64)
    select = slice(None) if timesteps is None else np.asarray(timesteps)
    scores = -_grid_mean(e[..., select])
    if uncond_errors is not None:
        u = np.asarray(uncond_errors, dtype=np.float64)
        scores = scores + _grid_mean(u[..., select])[:, None]
    return scores


def _grid_mean(values: np.ndarray) -> np.ndarray:
    """The mean over the last axis; with NaN (not evaluated), the stratified estimate."""
    return sequential.stratified_mean(values) if np.isnan(values).any() else values.mean(axis=-1)
