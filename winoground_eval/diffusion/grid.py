"""The timestep grid, the adaptive stages' plan, and scores from stored errors (numpy only).

Nothing here imports torch, so reading and re-aggregating finished runs stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.errors import ConfigError
from . import sequential


def resolve_t_range(t_range: tuple[int, int] | None, num_train_timesteps: int = 1000) -> tuple[int, int]:
    """``t_range`` checked, None meaning the whole schedule ``(0, T)``."""
    if t_range is None:
        return (0, num_train_timesteps)
    lo, hi = (int(t) for t in t_range)
    if not 0 <= lo < hi <= num_train_timesteps:
        raise ConfigError(
            f"option t_range={lo},{hi}: need 0 <= lo < hi <= {num_train_timesteps} "
            f"(the window [lo, hi) of the model's {num_train_timesteps}-step schedule), e.g. t_range=250,650"
        )
    return (lo, hi)


def timestep_grid(
    n_timesteps: int, num_train_timesteps: int = 1000, t_range: tuple[int, int] | None = None
) -> np.ndarray:
    """The reference grid: ``t_i = lo + interval // 2 + i * interval``, ``interval = (hi - lo) // n``.

    ``t_range = (lo, hi)`` restricts the grid to the window ``[lo, hi)``; None is the whole
    schedule ``(0, T)``, which gives the reference code's
    ``list(range(T // n // 2, T, T // n))[:n]`` (``eval_prob_adaptive``'s ``t_to_eval``).
    """
    lo, hi = resolve_t_range(t_range, num_train_timesteps)
    if not 1 <= n_timesteps <= hi - lo:
        window = "the model's schedule" if (lo, hi) == (0, num_train_timesteps) else f"t_range [{lo}, {hi})"
        raise ConfigError(
            f"option n_timesteps={n_timesteps}: the grid cannot have more timesteps than {window} holds "
            f"({hi - lo}; num_train_timesteps={num_train_timesteps}); choose 1..{hi - lo}"
        )
    interval = (hi - lo) // n_timesteps
    return lo + interval // 2 + interval * np.arange(n_timesteps, dtype=np.int64)


def config_grid(config: Mapping[str, Any]) -> np.ndarray:
    """The grid a diffusion scorer's ``config`` describes: the scorer's own
    :func:`timestep_grid` of its ``n_timesteps``, ``num_train_timesteps`` and ``t_range``.

    Only for runs stored before each example carried its timesteps (read them with
    :func:`stored_timesteps`). A config whose ``timesteps`` summary (first, last, count)
    contradicts the grid is a ConfigError rather than a guess.
    """
    try:
        n, length = int(config["n_timesteps"]), int(config.get("num_train_timesteps") or 1000)
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            "the run's scorer config records no n_timesteps, and its examples store no timesteps: "
            "not a diffusion run's config"
        ) from None
    t_range = config.get("t_range")
    grid = timestep_grid(n, length, tuple(t_range) if t_range else None)
    summary = config.get("timesteps")
    if isinstance(summary, Mapping) and (summary.get("first"), summary.get("last"), summary.get("count")) != (
        int(grid[0]),
        int(grid[-1]),
        len(grid),
    ):
        raise ConfigError(
            f"the run's config describes the grid {summary} but n_timesteps={n}, t_range={t_range} give "
            f"{int(grid[0])}..{int(grid[-1])} ({len(grid)}); its examples store no timesteps to settle it"
        )
    return grid


def stored_timesteps(arrays: Mapping[str, Any], config: Mapping[str, Any]) -> np.ndarray:
    """(n_grid,) int64: the timesteps the last axis of an example's stored ``errors`` belongs to.

    The example's own ``timesteps`` array (every diffusion scorer stores it next to the
    errors); for a run stored before that, :func:`config_grid` of the run's config. Every
    results command reads a run's timesteps here, so none rebuilds a grid of its own.
    """
    if "timesteps" in arrays:
        return np.asarray(arrays["timesteps"], dtype=np.int64)
    grid = config_grid(config)
    errors = arrays.get("errors")
    if errors is not None and np.shape(errors)[-1] != len(grid):
        raise ConfigError(
            f"an example stores {np.shape(errors)[-1]} timesteps but the run's config describes a grid of "
            f"{len(grid)} (n_timesteps={config.get('n_timesteps')}, t_range={config.get('t_range')})"
        )
    return grid


def check_noise_bank(n_grid: int, noise_bank_size: int) -> None:
    """ConfigError when the grid has more timesteps than the bank has draws."""
    if noise_bank_size < n_grid:
        raise ConfigError(
            f"option noise_bank_size={noise_bank_size} is smaller than the grid ({n_grid} timesteps); "
            f"each grid timestep needs its own noise draw: use noise_bank_size={n_grid} or more, or fewer timesteps"
        )


# --------------------------------------------------------------------------- adaptive stages


@dataclass(frozen=True)
class Stage:
    """One adaptive stage: the grid positions it evaluates that no earlier stage did (in
    grid order), and how many candidates it keeps."""

    positions: tuple[int, ...]
    keep: int


def stage_positions(n_grid: int, n_samples: int) -> list[int]:
    """The reference's evenly spaced subset of ``n_samples`` of a grid of ``n_grid``:
    ``t_to_eval[step // 2 :: step][:n_samples]`` with ``step = n_grid // n_samples``."""
    if not 1 <= n_samples <= n_grid:
        raise ConfigError(f"option n_samples: each stage needs 1..{n_grid} timesteps, not {n_samples}")
    step = n_grid // n_samples
    return list(range(step // 2, n_grid, step))[:n_samples]


def adaptive_plan(n_samples: Sequence[int], to_keep: Sequence[int]) -> tuple[int, list[Stage]]:
    """(grid size = max(n_samples), the stages), as ``eval_prob_adaptive`` runs them.

    Positions already evaluated by an earlier stage are skipped (their errors are reused).
    """
    if len(n_samples) != len(to_keep) or not n_samples:
        raise ConfigError("options n_samples and to_keep need one value per stage (equal lengths)")
    n_grid = max(n_samples)
    seen: set[int] = set()
    stages = []
    for n, keep in zip(n_samples, to_keep):
        new = [p for p in stage_positions(n_grid, n) if p not in seen]
        seen.update(new)
        stages.append(Stage(tuple(new), int(keep)))
    return n_grid, stages


def noise_draws(stages: Sequence[Stage], n_grid: int) -> np.ndarray:
    """(n_grid,) the noise draw index of each grid position: the reference's ``noise_idx``
    counts timesteps in the order they are first evaluated (stage by stage, in grid order
    within a stage); -1 for positions no stage evaluates."""
    draws = np.full(n_grid, -1, dtype=np.int64)
    count = 0
    for stage in stages:
        for p in stage.positions:
            draws[p] = count
            count += 1
    return draws


def planned_unet_calls(stages: Sequence[Stage], n_candidates: int) -> int:
    """UNet evaluations the stages spend on ``n_candidates`` (one image)."""
    alive, calls = n_candidates, 0
    for stage in stages:
        calls += alive * len(stage.positions)
        alive = min(alive, stage.keep)
    return calls


def adaptive_scores(level: np.ndarray, mean_error: np.ndarray) -> np.ndarray:
    """(n,) scores that order candidates as the adaptive stages ranked them.

    ``level``: how many stages the candidate survived (0 = pruned after the first; -1 =
    removed by a prefilter before any stage); ``mean_error``: its mean error over the
    timesteps it was evaluated at (NaN for prefiltered ones). The score is
    ``level + 1 / (1 + mean_error)``: a candidate that survived more stages ranks higher,
    and among those pruned at the same stage (evaluated at the same timesteps), the lower
    mean error ranks higher; errors are non-negative, so the second term lies in (0, 1].
    Prefiltered candidates score ``-1 - rank / n`` with their prefilter rank.
    """
    level = np.asarray(level, dtype=np.float64)
    m = np.asarray(mean_error, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return level + 1.0 / (1.0 + m)


# --------------------------------------------------------------------------- scores


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


def scores_from_arrays(arrays: Mapping[str, Any], timesteps: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """An example's scores recomputed from its stored arrays (``arrays/<id>.npz``).

    A ``control_variate=uncond`` run stores ``cv_beta``, ``cv_mean`` and ``cv_weights``: its
    scores are the per-cell control-variate form
    (:func:`winoground_eval.core.timestep_plan.cv_cell_scores`), reproduced exactly; they
    belong to the whole grid, so ``timesteps`` (a subset) is refused for them. Otherwise
    :func:`scores_from_errors` of ``errors`` and, when stored, ``uncond_errors``."""
    if "cv_beta" in arrays:
        if timesteps is not None:
            raise ConfigError(
                "a control_variate=uncond run's scores include each image's control mean over the plan's whole "
                "support; they cannot be re-aggregated on a subset of the grid (use a full-budget run, stopping=none)"
            )
        from ..core.timestep_plan import cv_cell_scores

        return cv_cell_scores(
            arrays["errors"], arrays["uncond_errors"], arrays["cv_beta"], arrays["cv_mean"], arrays["cv_weights"]
        )
    u = arrays.get("uncond_errors")
    return scores_from_errors(arrays["errors"], None if u is None else u, timesteps)


def _grid_mean(values: np.ndarray) -> np.ndarray:
    """The mean over the last axis; with NaN (not evaluated), the stratified estimate."""
    return sequential.stratified_mean(values) if np.isnan(values).any() else values.mean(axis=-1)
